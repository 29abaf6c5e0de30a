use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::reconcile::{ReconcileArgs, prepare};
use super::secret;
use crate::daemon::{self, DaemonOptions};
use crate::settings::{parse_duration, parse_interval};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run one cycle and exit (the entry point for cron and CI).
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// The settings of the daemon: those of a cycle, and its schedule, listener
/// and secrets (what `hydrant config show` lists).
#[derive(Debug, Args)]
pub struct DaemonArgs {
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
    #[command(flatten)]
    pub ui: UiArgs,
}

/// The fleet page's settings, shared by `run` and `status --serve`.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// A file holding the token of the fleet page and `/api/v1/status` (or
    /// set `HYDRANT_UI_TOKEN`): a bearer token, or a cookie set by
    /// `/login?token=`. With it, holds can be set and released from the page.
    #[arg(long, env = "HYDRANT_UI_TOKEN_FILE", value_name = "FILE")]
    pub ui_token_file: Option<std::path::PathBuf>,
    /// Turn the fleet page off: `/`, `/environments/*` and `/login` answer
    /// `404` (`/api/v1/status` stays).
    #[arg(long, env = "HYDRANT_NO_UI")]
    pub no_ui: bool,
}

impl UiArgs {
    pub fn options(&self) -> anyhow::Result<crate::ui::UiOptions> {
        Ok(crate::ui::UiOptions {
            disabled: self.no_ui,
            token: secret(&self.ui_token_file, "HYDRANT_UI_TOKEN")?,
        })
    }
}

pub fn run(RunArgs { once, daemon: args }: RunArgs) -> anyhow::Result<ExitCode> {
    if once {
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
        ui: args.ui.options()?,
    };
    Ok(match daemon::serve_repository(ws, forge, opts, options)? {
        daemon::Stopped::Clean => ExitCode::SUCCESS,
        daemon::Stopped::Cut => ExitCode::FAILURE,
    })
}
