//! `hydrant status`: per environment, the version its channel offers, the
//! version rendered on the base branch, and its open pull request.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::OutputFormat;
use super::reconcile::{ReconcileArgs, prepare};
use super::run::UiArgs;
use crate::delivery::{status, text};
use crate::settings::parse_interval;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub args: ReconcileArgs,
    /// Serve the fleet page and `/api/v1/status` for this repository on
    /// this address (`127.0.0.1:8080`), without the daemon, until interrupted.
    #[arg(long, env = "HYDRANT_STATUS_SERVE", value_name = "ADDRESS")]
    pub serve: Option<SocketAddr>,
    /// With `--serve`: how often the repository is observed again.
    #[arg(long, env = "HYDRANT_STATUS_REFRESH", default_value = "1m", value_parser = parse_interval)]
    pub refresh: Duration,
    #[command(flatten)]
    pub ui: UiArgs,
}

pub fn run(
    StatusArgs {
        args,
        serve,
        refresh,
        ui,
    }: StatusArgs,
) -> anyhow::Result<ExitCode> {
    if let Some(listen) = serve {
        let (session, opts) = prepare(&args)?;
        let ui = ui.options()?;
        crate::daemon::serve_status(session.workspace, session.forge, opts, listen, refresh, ui)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (
        crate::delivery::connect::Session {
            workspace: ws,
            forge,
        },
        opts,
    ) = prepare(&args)?;
    let status = status::status(&ws, forge.as_ref(), &opts)?;
    if args.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", text::pacing(status.freeze.as_ref(), None));
        print!("{}", text::status(&status));
        for s in status.environments.iter().filter(|s| s.error.is_some()) {
            eprintln!("error: {}: {}", s.env, s.error.as_deref().unwrap_or(""));
        }
    }
    let statuses = &status.environments;
    Ok(if statuses.iter().any(|s| s.error.is_some()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
