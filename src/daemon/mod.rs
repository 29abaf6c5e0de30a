//! The daemon: `hydrant run`.
//!
//! It runs reconcile cycles on a schedule (an interval with jitter), at once on
//! a trigger (a verified webhook, `POST /trigger`), never two at a time (a
//! trigger during a cycle queues exactly one more), and backs off
//! exponentially with jitter after a cycle that could not run (the repository
//! unreachable), resetting after a success. A failing environment does not
//! hold back the others: [`retry`] keeps its own backoff (transient) or holds
//! it until its inputs change (permanent). It serves `/healthz`, `/readyz`
//! (the daemon's own health: it reaches the repository and the channel) and
//! `/metrics`, and `/api/v1/holds` ([`api`]), which commits holds to the
//! base branch between cycles and triggers one. On SIGTERM or SIGINT it
//! stops taking triggers, lets the cycle in flight finish and exits 0; when
//! the shutdown timeout passes first, or a second signal comes, it exits 1 at
//! once, whatever the cycle in flight is doing.
//!
//! A cycle covers a [`Scope`]: every environment (the timer, webhooks), or
//! some (`POST /trigger?env=NAME`, or a channel poll that found a new release
//! of the channels those environments follow). Requests made during a cycle
//! merge into the one that follows.
//!
//! The scheduler knows nothing of git or forges: it drives a cycle function
//! and a channel poll function, and records what they report; [`controller`]
//! builds them over a config repository ([`serve_repository`]).

mod api;
mod controller;
mod http;
mod metrics;
mod retry;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

pub use controller::serve_repository;
pub use metrics::Metrics;

use crate::reconcile::{Outcome, Waiting};

/// Which environments a cycle covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Envs(BTreeSet<String>),
}

impl Scope {
    /// The scope covering both.
    pub fn merge(self, other: Scope) -> Scope {
        match (self, other) {
            (Scope::Envs(mut a), Scope::Envs(b)) => {
                a.extend(b);
                Scope::Envs(a)
            }
            _ => Scope::All,
        }
    }
}

/// What a cycle covers, and the failing environments it leaves out.
#[derive(Debug, Clone)]
pub struct Request {
    pub scope: Scope,
    pub waiting: Waiting,
}

/// What one cycle did.
#[derive(Debug, Default)]
pub struct CycleReport {
    pub outcomes: Vec<Outcome>,
    /// Each reconciled environment's inputs signal (see [`Waiting`]).
    pub inputs: std::collections::BTreeMap<String, String>,
    /// Whether a channel published something new since the last fetch.
    pub channel_news: bool,
    /// Channel fetches: the channel, and `200`, `304`, `stale`, `file` or `error`.
    pub channel_fetches: Vec<(String, &'static str)>,
    /// The forge's API calls and rate-limit waits since the daemon started.
    pub forge_calls: u64,
    pub forge_rate_limit_waits: u64,
    /// Each rollout wave's progress (empty without a `rollout:` block).
    pub waves: Vec<crate::rollout::WaveSummary>,
    /// The (channel, version) rollouts a failed health gate halted.
    pub halted: Vec<(String, String)>,
    /// Each health gate's definite failures since the daemon started.
    pub gate_failures: std::collections::BTreeMap<String, u64>,
    /// Releases skipped (`skip` in `holds.yaml`).
    pub skipped: Vec<String>,
    /// Environments going back to their previous release.
    pub rollbacks: Vec<String>,
    /// Whether a freeze window keeps new versions back.
    pub frozen: bool,
    /// The pull-request budget, when an environment would have opened one.
    pub budget: Option<crate::delivery::pace::BudgetUse>,
}

/// What one cycle reports, or why it could not run.
pub type CycleResult = Result<CycleReport, String>;

/// What a channel poll found: its fetches, and the environments whose channel
/// published something new.
#[derive(Debug, Default)]
pub struct PollReport {
    pub channel_fetches: Vec<(String, &'static str)>,
    pub changed: BTreeSet<String>,
}

/// A change of `holds.yaml` asked for through the API, and who asks.
pub type HoldsJob = dyn Fn(
        crate::delivery::holds::Change,
        String,
    ) -> Result<crate::delivery::holds::Committed, crate::delivery::holds::HoldsError>
    + Send
    + Sync;

/// The work the daemon drives.
pub struct Jobs {
    pub cycle: Box<dyn Fn(&Request) -> CycleResult + Send + Sync>,
    pub poll: Box<dyn Fn() -> Result<PollReport, String> + Send + Sync>,
    /// Commits a change of `holds.yaml` to the base branch (between cycles).
    pub holds: Box<HoldsJob>,
    /// Observes the fleet after a cycle, for the fleet page (`None`: it
    /// could not be observed; the page keeps the last model).
    pub observe: Box<dyn Fn() -> Option<crate::ui::Snapshot> + Send + Sync>,
}

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub interval: Duration,
    pub listen: SocketAddr,
    pub shutdown_timeout: Duration,
    /// How often channels are polled for a new release; `None`: only in cycles.
    pub channel_poll: Option<Duration>,
    /// Bearer token for `POST /trigger`; without one the endpoint is off.
    pub trigger_token: Option<String>,
    /// Secret of GitHub push webhooks (`X-Hub-Signature-256`).
    pub github_secret: Option<String>,
    /// Token of GitLab push webhooks (`X-Gitlab-Token`).
    pub gitlab_token: Option<String>,
    /// The base branch: push events to other branches are ignored.
    pub base: Option<String>,
    /// The fleet page: on or off, and its token.
    pub ui: crate::ui::UiOptions,
}

/// State shared by the scheduler and the HTTP endpoints.
pub struct Shared {
    pub options: DaemonOptions,
    pub metrics: Mutex<Metrics>,
    /// The failing environments and when each is tried again.
    retries: Mutex<retry::Retries>,
    trigger: Notify,
    /// What the next cycle covers, when one was asked for.
    pending: Mutex<Option<Scope>>,
    stopping: AtomicBool,
    /// Webhook deliveries handled lately: a replay triggers nothing.
    deliveries: Mutex<http::Deliveries>,
    /// What the API's edits run.
    jobs: Arc<Jobs>,
    /// The latest model of the fleet, for the page and `/api/v1/status`.
    pub board: Arc<crate::ui::Board>,
}

impl Shared {
    /// Asks for a cycle as soon as possible; several requests during a cycle
    /// make exactly one more, covering them all.
    pub fn trigger(&self, why: &str, scope: Scope) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        tracing::info!(reason = why, scope = ?scope, "cycle requested");
        if let Ok(mut pending) = self.pending.lock() {
            *pending = Some(match pending.take() {
                Some(p) => p.merge(scope),
                None => scope,
            });
        }
        self.trigger.notify_one();
    }

    /// Takes what the next cycle covers: what was asked for, or everything.
    fn next_scope(&self, timer: bool) -> Scope {
        let asked = self.pending.lock().ok().and_then(|mut p| p.take());
        match asked {
            Some(scope) if !timer => scope,
            _ => Scope::All,
        }
    }

    /// Whether the daemon knows this environment (from its cycles).
    pub fn knows(&self, env: &str) -> bool {
        self.metrics.lock().is_ok_and(|m| m.knows(env))
    }

    /// Ready when the last cycle reached the repository and the channel,
    /// and finished within three intervals. An environment that fails (a
    /// typo in its values, a refused push) does not make the daemon unready:
    /// it shows in `/metrics` and the logs.
    pub fn ready(&self) -> Result<(), String> {
        let m = self
            .metrics
            .lock()
            .map_err(|_| "metrics lock poisoned".to_string())?;
        match (&m.last_finished, &m.unhealthy) {
            (None, _) => Err("no cycle has finished yet".to_string()),
            (Some(at), _) if at.elapsed() > self.options.interval * 3 => Err(format!(
                "the last cycle finished {}s ago, more than three intervals",
                at.elapsed().as_secs()
            )),
            (Some(_), Some(why)) => Err(why.clone()),
            (Some(_), None) => Ok(()),
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

/// The last cycle and the next one, as the fleet page shows them.
fn cycle_state(result: &CycleResult, delay: Duration) -> crate::delivery::status::CycleState {
    let now = jiff::Timestamp::now();
    let next = jiff::SignedDuration::try_from(delay)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(now);
    let second = |t: jiff::Timestamp| {
        jiff::Timestamp::from_second(t.as_second())
            .map_or_else(|_| t.to_string(), |t| t.to_string())
    };
    let (outcome, error) = match result {
        Ok(r) if r.outcomes.iter().any(|o| o.error.is_some()) => ("failed", None),
        Ok(_) => ("ok", None),
        Err(e) => ("error", Some(e.clone())),
    };
    crate::delivery::status::CycleState {
        finished_at: second(now),
        outcome,
        error,
        next_at: second(next),
    }
}

/// How the daemon stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The cycle in flight finished.
    Clean,
    /// The shutdown timeout passed, or a second signal came, first.
    Cut,
}

/// Runs the daemon until a signal stops it. It returns as soon as it has
/// stopped, without waiting for a cycle still blocked in its thread (the
/// process exits with it).
pub fn run(options: DaemonOptions, jobs: Jobs) -> anyhow::Result<Stopped> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()?;
    let stopped = runtime.block_on(serve(options, Arc::new(jobs)));
    // Dropping the runtime would wait for the blocking cycle thread: a cycle
    // stuck in a read would keep the process alive past the shutdown timeout.
    runtime.shutdown_background();
    stopped
}

async fn serve(options: DaemonOptions, jobs: Arc<Jobs>) -> anyhow::Result<Stopped> {
    let shared = Arc::new(Shared {
        options: options.clone(),
        metrics: Mutex::new(Metrics::default()),
        retries: Mutex::new(retry::Retries::default()),
        trigger: Notify::new(),
        pending: Mutex::new(None),
        stopping: AtomicBool::new(false),
        deliveries: Mutex::new(http::Deliveries::default()),
        jobs: jobs.clone(),
        board: Arc::new(crate::ui::Board::new(options.ui.clone(), true)),
    });
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on `{}`: {e}", options.listen))?;
    tracing::info!(listen = %options.listen, interval_secs = options.interval.as_secs(), "hydrant daemon started");
    eprintln!("hydrant: serving on http://{}", listener.local_addr()?);
    tokio::spawn(http::serve(listener, http::router(shared.clone())));

    if let Some(every) = options.channel_poll {
        let (shared, jobs) = (shared.clone(), jobs.clone());
        tokio::spawn(async move { poll(shared, jobs, every).await });
    }
    let scheduler = {
        let shared = shared.clone();
        tokio::spawn(async move { schedule(shared, jobs).await })
    };
    wait_for_signal().await;
    tracing::info!("stopping: no more triggers; finishing the cycle in flight");
    shared.stopping.store(true, Ordering::SeqCst);
    shared.trigger.notify_one();
    let stopped = tokio::select! {
        _ = scheduler => {
            tracing::info!("stopped");
            Stopped::Clean
        }
        _ = tokio::time::sleep(options.shutdown_timeout) => {
            tracing::warn!(timeout_secs = options.shutdown_timeout.as_secs(), "the cycle in flight did not finish in time; exiting");
            Stopped::Cut
        }
        _ = wait_for_signal() => {
            tracing::warn!("second signal: exiting at once");
            Stopped::Cut
        }
    };
    Ok(stopped)
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

/// Polls the channels every `every`; a new release triggers a cycle of the
/// environments that follow the channel.
async fn poll(shared: Arc<Shared>, jobs: Arc<Jobs>, every: Duration) {
    loop {
        tokio::time::sleep(every + crate::backoff::jitter(every / 10)).await;
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let j = jobs.clone();
        let found = tokio::task::spawn_blocking(move || (j.poll)())
            .await
            .unwrap_or_else(|e| Err(format!("the channel poll panicked: {e}")));
        match found {
            Ok(report) => {
                if let Ok(mut m) = shared.metrics.lock() {
                    m.record_fetches(&report.channel_fetches);
                }
                if !report.changed.is_empty() {
                    if let Ok(mut r) = shared.retries.lock() {
                        r.release_held();
                    }
                    shared.trigger(
                        "a channel published a new release",
                        Scope::Envs(report.changed),
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "channel poll failed"),
        }
    }
}

/// What woke the scheduler up.
enum Wake {
    /// The interval passed: a cycle over every environment.
    Timer,
    /// A trigger: the scope asked for.
    Trigger,
    /// Transient failures are due to be retried: a cycle over them.
    Retry,
}

async fn schedule(shared: Arc<Shared>, jobs: Arc<Jobs>) {
    let mut failures = 0u32;
    let mut scope = Scope::All;
    let mut number = 0u64;
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        number += 1;
        let started = Instant::now();
        let waiting = shared
            .retries
            .lock()
            .map(|r| r.waiting(started))
            .unwrap_or_default();
        let span = tracing::info_span!("cycle", cycle = number, scope = ?scope);
        let j = jobs.clone();
        let request = Request {
            scope: scope.clone(),
            waiting,
        };
        let result = tokio::task::spawn_blocking(move || span.in_scope(|| (j.cycle)(&request)))
            .await
            .unwrap_or_else(|e| Err(format!("the cycle panicked: {e}")));
        match &result {
            Ok(r) => {
                let failed: Vec<&str> = r
                    .outcomes
                    .iter()
                    .filter(|o| o.error.is_some())
                    .map(|o| o.env.as_str())
                    .collect();
                tracing::info!(
                    cycle = number,
                    environments = r.outcomes.len(),
                    ok = failed.is_empty(),
                    failed = ?failed,
                    seconds = started.elapsed().as_secs_f64(),
                    "cycle finished"
                );
                if let Ok(mut retries) = shared.retries.lock() {
                    if r.channel_news {
                        retries.release_held();
                    }
                    retries.record(
                        &r.outcomes,
                        &r.inputs,
                        shared.options.interval,
                        Instant::now(),
                    );
                }
            }
            Err(e) => tracing::error!(cycle = number, error = %e, "cycle failed"),
        }
        if let Ok(mut m) = shared.metrics.lock() {
            m.record(&result, started.elapsed());
            if let Ok(retries) = shared.retries.lock() {
                m.set_failing(retries.failing());
            }
        }
        // Only a cycle that could not run at all backs the whole schedule
        // off; a failing environment has its own retries.
        failures = if result.is_ok() {
            0
        } else {
            failures.saturating_add(1)
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let delay = next_delay(shared.options.interval, failures);
        shared.board.set_cycle(cycle_state(&result, delay));
        if result.is_ok() {
            // Beside the schedule: the next cycle waits for the workspace
            // only if this is still running when it starts.
            let (j, shared) = (jobs.clone(), shared.clone());
            tokio::task::spawn_blocking(move || {
                if let Some(snapshot) = (j.observe)() {
                    // Its channel fetches are counted like any other.
                    if let Ok(mut m) = shared.metrics.lock() {
                        m.record_fetches(&snapshot.fetches);
                    }
                    shared.board.update(snapshot);
                }
            });
        }
        // After a cycle that could not run at all, its backoff holds for the
        // environments due a retry too: they are in the next cycle's scope.
        let retry_at = match failures {
            0 => shared.retries.lock().ok().and_then(|r| r.next_due()),
            _ => None,
        };
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        let wake = tokio::select! {
            _ = tokio::time::sleep(delay) => Wake::Timer,
            _ = shared.trigger.notified() => Wake::Trigger,
            _ = retry => Wake::Retry,
        };
        scope = match wake {
            Wake::Timer => shared.next_scope(true),
            Wake::Trigger => shared.next_scope(false),
            Wake::Retry => {
                let due = shared
                    .retries
                    .lock()
                    .map(|r| r.due(Instant::now()))
                    .unwrap_or_default();
                tracing::debug!(environments = ?due, "retrying environments after a transient failure");
                Scope::Envs(due)
            }
        };
    }
}

/// `hydrant status --serve`: serves the page and `/api/v1/status` for a
/// repository without the daemon, observing it at start and every
/// `refresh`, until interrupted.
pub fn serve_status(
    ws: crate::git::Workspace,
    forge: Box<dyn crate::forge::Forge>,
    opts: crate::reconcile::Options,
    listen: SocketAddr,
    refresh: Duration,
    options: crate::ui::UiOptions,
) -> anyhow::Result<()> {
    let board = Arc::new(crate::ui::Board::new(options, false));
    let first = crate::ui::observe(&ws, forge.as_ref(), &opts)?;
    board.update(first);
    {
        let board = board.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(refresh);
                match crate::ui::observe(&ws, forge.as_ref(), &opts) {
                    Ok(s) => board.update(s),
                    Err(e) => tracing::warn!(error = %e, "observing the fleet failed"),
                }
            }
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on `{listen}`: {e}"))?;
        eprintln!(
            "hydrant: serving the fleet page on http://{}",
            listener.local_addr()?
        );
        tokio::select! {
            _ = http::serve(listener, crate::ui::routes(board)) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        anyhow::Ok(())
    })?;
    runtime.shutdown_background();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envs(names: &[&str]) -> Scope {
        Scope::Envs(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn scopes_merge_into_what_covers_both() {
        assert_eq!(envs(&["a"]).merge(envs(&["b", "a"])), envs(&["a", "b"]));
        assert_eq!(envs(&["a"]).merge(Scope::All), Scope::All);
        assert_eq!(Scope::All.merge(envs(&["a"])), Scope::All);
    }

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
