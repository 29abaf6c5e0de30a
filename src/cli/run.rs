use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;

use super::reconcile::{ReconcileArgs, prepare};
use super::secret;
use crate::daemon::{self, DaemonOptions};
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

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (ws, forge, opts) = prepare(&args.reconcile)?;
    let options = DaemonOptions {
        interval: args.interval.max(Duration::from_millis(100)),
        listen: args.listen,
        shutdown_timeout: args.shutdown_timeout,
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
    let ws = Mutex::new(ws);
    daemon::run(options, move || {
        let ws = ws
            .lock()
            .map_err(|_| "the work directory lock was poisoned".to_string())?;
        reconcile::run_cycle(&ws, forge.as_ref(), &opts).map_err(|e| e.to_string())
    })?;
    Ok(ExitCode::SUCCESS)
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
}
