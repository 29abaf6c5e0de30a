//! `hydrant status`: per environment, the version its channel offers, the
//! version rendered on the base branch, and its open pull request.

use std::process::ExitCode;

use super::OutputFormat;
use super::reconcile::{ReconcileArgs, prepare};
use crate::delivery::{status, text};

pub fn run(args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let (
        crate::delivery::connect::Session {
            workspace: ws,
            forge,
        },
        opts,
    ) = prepare(&args)?;
    let status = status::status(&ws, forge.as_ref(), &opts)?;
    if args.output == OutputFormat::Json {
        let shown = text::with_pacing(
            text::json(&status.waves, &status.environments),
            status.freeze.as_ref(),
            None,
        );
        println!("{}", serde_json::to_string_pretty(&shown)?);
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
