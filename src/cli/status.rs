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

pub fn run(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let (session, opts) = prepare(&a.args)?;
    let (ws, forge) = (session.workspace, session.forge);
    if let Some(listen) = a.serve {
        crate::daemon::serve_status(ws, forge, opts, listen, a.refresh, a.ui.options()?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let status = status::status(&ws, forge.as_ref(), &opts)?;
    match a.args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        OutputFormat::Text => {
            print!("{}", text::pacing(status.freeze.as_ref(), None));
            print!("{}", text::status(&status));
            eprint!("{}", text::status_errors(&status));
        }
    }
    let failed = status.environments.iter().any(|s| s.error.is_some());
    Ok(ExitCode::from(u8::from(failed)))
}
