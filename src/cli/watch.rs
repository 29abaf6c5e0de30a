//! `hydrant watch`: keeps the working tree's `rendered/<env>/` in step with
//! its inputs; [`crate::watch`] does it, this prints what it tells.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::{RepoArgs, report_error, report_problems};
use crate::watch::{self, Event, Options};

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// An environment to keep rendered; repeat for several [default: every one].
    #[arg(long = "env", env = "HYDRANT_ENV", value_delimiter = ',')]
    pub envs: Vec<String>,
}

pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let options = Options {
        repo: args.repo.repo.clone(),
        channel: args.repo.channel.settings()?,
        envs: args.envs,
    };
    watch::watch(options, |event| match event {
        // Flushed at once: someone is watching.
        Event::Said(text) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
        Event::Warning(text) => eprintln!("warning: {text}"),
        Event::Problems { env, problems } => report_problems(&env, &problems),
        Event::Failed(e) => report_error(&e),
    })?;
    Ok(ExitCode::SUCCESS)
}
