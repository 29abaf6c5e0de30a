//! The daemon: `hydrant run`.
//!
//! It runs reconcile cycles on a schedule (an interval with jitter), at once on
//! a trigger (a verified webhook, `POST /trigger`), never two at a time (a
//! trigger during a cycle queues exactly one more), and backs off
//! exponentially with jitter after a failed cycle, resetting after a success.
//! It serves `/healthz`, `/readyz` and `/metrics`. On SIGTERM or SIGINT it
//! stops taking triggers, lets the cycle in flight finish (bounded by the
//! shutdown timeout) and exits 0; a second signal exits at once.
//!
//! The daemon knows nothing of git or forges: it drives a cycle function that
//! the caller builds, and records what each cycle reports.

mod http;
mod metrics;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

pub use metrics::Metrics;

use crate::reconcile::Outcome;

/// What one cycle reports: the environments' outcomes, or why it could not run.
pub type CycleResult = Result<Vec<Outcome>, String>;

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub interval: Duration,
    pub listen: SocketAddr,
    pub shutdown_timeout: Duration,
    /// Bearer token for `POST /trigger`; without one the endpoint is off.
    pub trigger_token: Option<String>,
    /// Secret of GitHub push webhooks (`X-Hub-Signature-256`).
    pub github_secret: Option<String>,
    /// Token of GitLab push webhooks (`X-Gitlab-Token`).
    pub gitlab_token: Option<String>,
    /// The base branch: push events to other branches are ignored.
    pub base: Option<String>,
}

/// State shared by the scheduler and the HTTP endpoints.
pub struct Shared {
    pub options: DaemonOptions,
    pub metrics: Mutex<Metrics>,
    trigger: Notify,
    stopping: AtomicBool,
}

impl Shared {
    /// Asks for a cycle as soon as possible; several requests during a cycle
    /// make exactly one more.
    pub fn trigger(&self, why: &str) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        tracing::info!(reason = why, "cycle requested");
        self.trigger.notify_one();
    }

    /// Ready when the last cycle succeeded and finished within three intervals.
    pub fn ready(&self) -> Result<(), String> {
        let m = self
            .metrics
            .lock()
            .map_err(|_| "metrics lock poisoned".to_string())?;
        match (&m.last_finished, m.last_ok) {
            (None, _) => Err("no cycle has finished yet".to_string()),
            (Some(at), _) if at.elapsed() > self.options.interval * 3 => Err(format!(
                "the last cycle finished {}s ago, more than three intervals",
                at.elapsed().as_secs()
            )),
            (Some(_), false) => Err("the last cycle failed".to_string()),
            (Some(_), true) => Ok(()),
        }
    }
}

/// The wait before the next scheduled cycle: the interval plus up to 10%
/// jitter, or after failures an exponential backoff from 5 s (capped at the interval).
fn next_delay(interval: Duration, failures: u32) -> Duration {
    match failures {
        0 => interval + crate::backoff::jitter(interval / 10),
        n => crate::backoff::delay(Duration::from_secs(5), n - 1, interval),
    }
}

/// Runs the daemon until a signal stops it.
pub fn run(
    options: DaemonOptions,
    cycle: impl Fn() -> CycleResult + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()?;
    runtime.block_on(serve(options, Arc::new(cycle)))
}

async fn serve(
    options: DaemonOptions,
    cycle: Arc<dyn Fn() -> CycleResult + Send + Sync>,
) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        options: options.clone(),
        metrics: Mutex::new(Metrics::default()),
        trigger: Notify::new(),
        stopping: AtomicBool::new(false),
    });
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on `{}`: {e}", options.listen))?;
    tracing::info!(listen = %options.listen, interval_secs = options.interval.as_secs(), "hydrant daemon started");
    eprintln!("hydrant: serving on http://{}", listener.local_addr()?);
    let app = http::router(shared.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    });

    let scheduler = {
        let shared = shared.clone();
        tokio::spawn(async move { schedule(shared, cycle).await })
    };
    wait_for_signal().await;
    tracing::info!("stopping: no more triggers; finishing the cycle in flight");
    shared.stopping.store(true, Ordering::SeqCst);
    shared.trigger.notify_one();
    tokio::select! {
        _ = scheduler => tracing::info!("stopped"),
        _ = tokio::time::sleep(options.shutdown_timeout) => {
            tracing::warn!(timeout_secs = options.shutdown_timeout.as_secs(), "the cycle in flight did not finish in time; exiting");
        }
        _ = wait_for_signal() => {
            tracing::warn!("second signal: exiting at once");
            std::process::exit(1);
        }
    }
    Ok(())
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

async fn schedule(shared: Arc<Shared>, cycle: Arc<dyn Fn() -> CycleResult + Send + Sync>) {
    let mut failures = 0u32;
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let started = Instant::now();
        let c = cycle.clone();
        let result = tokio::task::spawn_blocking(move || c())
            .await
            .unwrap_or_else(|e| Err(format!("the cycle panicked: {e}")));
        let ok = matches!(&result, Ok(outcomes) if outcomes.iter().all(|o| o.error.is_none()));
        match &result {
            Ok(outcomes) => tracing::info!(
                environments = outcomes.len(),
                ok,
                seconds = started.elapsed().as_secs_f64(),
                "cycle finished"
            ),
            Err(e) => tracing::error!(error = %e, "cycle failed"),
        }
        if let Ok(mut m) = shared.metrics.lock() {
            m.record(&result, started.elapsed());
        }
        failures = if ok { 0 } else { failures.saturating_add(1) };
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let delay = next_delay(shared.options.interval, failures);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shared.trigger.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_jitter_around_the_interval_and_back_off_after_failures() {
        let i = Duration::from_secs(300);
        for _ in 0..20 {
            let d = next_delay(i, 0);
            assert!(d >= i && d <= i + i / 10, "{d:?}");
        }
        assert!(
            next_delay(i, 1) >= Duration::from_secs(5)
                && next_delay(i, 1) <= Duration::from_secs(10)
        );
        assert!(next_delay(i, 3) >= Duration::from_secs(20));
        assert!(
            next_delay(i, 30) <= i + i / 2,
            "backoff is capped by the interval"
        );
    }
}
