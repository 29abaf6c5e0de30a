use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;

use super::reconcile::{ReconcileArgs, prepare};
use super::secret;
use crate::daemon::{self, CycleReport, DaemonOptions, Jobs, PollReport, Scope};
use crate::project::{ChannelFetch, ChannelKey, Project};
use crate::reconcile;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    /// Time between cycles (`30s`, `5m`, `1h`), with up to 10% jitter.
    #[arg(long, env = "HYDRANT_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub interval: Duration,
    /// Where `/healthz`, `/readyz`, `/metrics`, `/trigger` and the webhooks listen.
    #[arg(long, env = "HYDRANT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// How long the cycle in flight may take to finish after SIGTERM.
    #[arg(long, env = "HYDRANT_SHUTDOWN_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// How often the channels are polled between cycles (`0` turns polling
    /// off). A new release reconciles only the environments that follow it.
    #[arg(long, env = "HYDRANT_CHANNEL_POLL_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub channel_poll_interval: Duration,
    /// A file holding the bearer token of `POST /trigger` (or set `HYDRANT_TRIGGER_TOKEN`).
    #[arg(long, env = "HYDRANT_TRIGGER_TOKEN_FILE", value_name = "FILE")]
    pub trigger_token_file: Option<std::path::PathBuf>,
    /// A file holding the GitHub webhook secret (or set `HYDRANT_GITHUB_WEBHOOK_SECRET`).
    #[arg(long, env = "HYDRANT_GITHUB_WEBHOOK_SECRET_FILE", value_name = "FILE")]
    pub github_webhook_secret_file: Option<std::path::PathBuf>,
    /// A file holding the GitLab webhook token (or set `HYDRANT_GITLAB_WEBHOOK_TOKEN`).
    #[arg(long, env = "HYDRANT_GITLAB_WEBHOOK_TOKEN_FILE", value_name = "FILE")]
    pub gitlab_webhook_token_file: Option<std::path::PathBuf>,
}

/// `90s`, `5m`, `1h`, `250ms`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = t
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| t.split_at(i))
        .unwrap_or((t, "s"));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 30s, 5m or 1h"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("`{text}`: use ms, s, m or h")),
    })
}

/// The last fingerprint seen of each channel (and pinned release).
#[derive(Debug, Default)]
struct Seen(HashMap<ChannelKey, String>);

impl Seen {
    /// Records a fetch; true when it shows something new since the last one.
    /// A first sighting is not news: the cycle that made it rendered it.
    fn news(&mut self, fetch: &ChannelFetch) -> bool {
        let Some(now) = &fetch.fingerprint else {
            return false;
        };
        match self.0.insert(fetch.key.clone(), now.clone()) {
            Some(before) => &before != now,
            None => false,
        }
    }
}

/// What the daemon's cycles and polls share.
struct State {
    ws: Mutex<crate::git::Workspace>,
    forge: Box<dyn crate::forge::Forge>,
    opts: reconcile::Options,
    /// The repository as the last cycle read it: what polls look at.
    project: Mutex<Option<Arc<Project>>>,
    seen: Mutex<Seen>,
}

fn fetches_shown(fetches: &[ChannelFetch]) -> Vec<(String, &'static str)> {
    fetches
        .iter()
        .map(|f| (f.key.0.clone(), f.result))
        .collect()
}

impl State {
    /// Only environments the command line allows (all when it names none).
    fn allowed(&self, env: &str) -> bool {
        self.opts.envs.is_empty() || self.opts.envs.iter().any(|e| e == env)
    }

    fn cycle(&self, scope: &Scope) -> daemon::CycleResult {
        let mut opts = self.opts.clone();
        if let Scope::Envs(envs) = scope {
            opts.envs = envs.iter().filter(|e| self.allowed(e)).cloned().collect();
            if opts.envs.is_empty() {
                return Ok(CycleReport::default());
            }
        }
        // A cycle that panicked (isolated per environment by reconcile, so
        // this is a last resort) must not wedge every later cycle: the next
        // one starts by fetching afresh, whatever state the last left.
        let ws = self
            .ws
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cycle =
            reconcile::run_cycle(&ws, self.forge.as_ref(), &opts).map_err(|e| e.to_string())?;
        if let Ok(mut seen) = self.seen.lock() {
            for f in &cycle.fetches {
                seen.news(f);
            }
        }
        if let Ok(mut p) = self.project.lock() {
            *p = Some(Arc::new(cycle.project));
        }
        let (calls, waits) = self.forge.api_stats().map_or((0, 0), |s| {
            use std::sync::atomic::Ordering::Relaxed;
            (s.calls.load(Relaxed), s.rate_limit_waits.load(Relaxed))
        });
        Ok(CycleReport {
            channel_fetches: fetches_shown(&cycle.fetches),
            outcomes: cycle.outcomes,
            forge_calls: calls,
            forge_rate_limit_waits: waits,
        })
    }

    fn poll(&self) -> Result<PollReport, String> {
        let Some(project) = self.project.lock().ok().and_then(|p| p.clone()) else {
            return Ok(PollReport::default());
        };
        let probes = project.probe_channels().map_err(|e| e.to_string())?;
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut changed = BTreeSet::new();
        for (fetch, envs) in &probes {
            if seen.news(fetch) {
                tracing::info!(channel = %fetch.key.0, release = ?fetch.key.1, found = ?fetch.fingerprint, "the channel published something new");
                changed.extend(envs.iter().filter(|e| self.allowed(e)).cloned());
            }
        }
        let fetches: Vec<ChannelFetch> = probes.into_iter().map(|(f, _)| f).collect();
        Ok(PollReport {
            channel_fetches: fetches_shown(&fetches),
            changed,
        })
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (
        crate::delivery::connect::Session {
            workspace: ws,
            forge,
        },
        opts,
    ) = prepare(&args.reconcile)?;
    let options = DaemonOptions {
        interval: args.interval.max(Duration::from_millis(100)),
        listen: args.listen,
        shutdown_timeout: args.shutdown_timeout,
        channel_poll: Some(args.channel_poll_interval)
            .filter(|d| !d.is_zero())
            .map(|d| d.max(Duration::from_millis(100))),
        trigger_token: secret(&args.trigger_token_file, "HYDRANT_TRIGGER_TOKEN")?,
        github_secret: secret(
            &args.github_webhook_secret_file,
            "HYDRANT_GITHUB_WEBHOOK_SECRET",
        )?,
        gitlab_token: secret(
            &args.gitlab_webhook_token_file,
            "HYDRANT_GITLAB_WEBHOOK_TOKEN",
        )?,
        base: opts.base.clone(),
    };
    // One workspace for the daemon's life: cycles never overlap.
    let state = Arc::new(State {
        ws: Mutex::new(ws),
        forge,
        opts,
        project: Mutex::new(None),
        seen: Mutex::new(Seen::default()),
    });
    let (for_cycle, for_poll) = (state.clone(), state);
    let stopped = daemon::run(
        options,
        Jobs {
            cycle: Box::new(move |scope| for_cycle.cycle(scope)),
            poll: Box::new(move || for_poll.poll()),
        },
    )?;
    Ok(match stopped {
        daemon::Stopped::Clean => ExitCode::SUCCESS,
        daemon::Stopped::Cut => ExitCode::FAILURE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("soon").is_err());
    }

    fn fetch(channel: &str, fingerprint: Option<&str>) -> ChannelFetch {
        ChannelFetch {
            key: (channel.to_string(), None),
            result: "200",
            version: None,
            fingerprint: fingerprint.map(String::from),
        }
    }

    #[test]
    fn only_a_changed_fingerprint_is_news() {
        let mut seen = Seen::default();
        assert!(
            !seen.news(&fetch("stable", Some("0.62.1@aa"))),
            "first sighting"
        );
        assert!(!seen.news(&fetch("stable", Some("0.62.1@aa"))));
        assert!(
            !seen.news(&fetch("stable", None)),
            "a failed fetch says nothing"
        );
        assert!(seen.news(&fetch("stable", Some("0.63.0@bb"))));
        assert!(
            !seen.news(&fetch("canary", Some("0.63.0@bb"))),
            "another channel"
        );
        assert!(!seen.news(&fetch("stable", Some("0.63.0@bb"))));
    }
}
