use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::reconcile::{ReconcileArgs, prepare};
use super::secret;
use crate::daemon::{self, DaemonOptions};

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    /// Time between cycles (`30s`, `5m`, `1h`; at least `1s`), with up to 10%
    /// jitter. An environment that fails is retried on its own: a transient
    /// failure with a backoff from 5 s up to the interval, a permanent one
    /// when its inputs change.
    #[arg(long, env = "HYDRANT_INTERVAL", default_value = "5m", value_parser = parse_interval)]
    pub interval: Duration,
    /// Where `/healthz`, `/readyz`, `/metrics`, `/trigger` and the webhooks listen.
    #[arg(long, env = "HYDRANT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// How long the cycle in flight may take to finish after SIGTERM.
    #[arg(long, env = "HYDRANT_SHUTDOWN_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// How often the channels are polled between cycles. A new release
    /// reconciles only the environments that follow it. `0` turns polling
    /// off: channels are then fetched only in each cycle, every `--interval`.
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

/// `--interval`: a duration of at least a second.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    if interval < Duration::from_secs(1) {
        return Err(format!(
            "`{text}` is under a second: the interval is the time between cycles, each of which fetches the repository and the channels (hint: use `30s`, `5m` or `1h`; `--once` runs one cycle and exits)"
        ));
    }
    Ok(interval)
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.reconcile.once {
        return super::reconcile::run(args.reconcile);
    }
    let (
        crate::delivery::connect::Session {
            workspace: ws,
            forge,
        },
        opts,
    ) = prepare(&args.reconcile)?;
    let options = DaemonOptions {
        interval: args.interval,
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
    Ok(match daemon::serve_repository(ws, forge, opts, options)? {
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

    #[test]
    fn an_interval_under_a_second_is_refused_with_a_hint() {
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        for text in ["0s", "0", "999ms", "100ms"] {
            let error = parse_interval(text).unwrap_err();
            assert!(error.contains("under a second"), "{text}: {error}");
            assert!(error.contains("hint:"), "{text}: {error}");
        }
    }
}
