//! `hydrant import`: its arguments are [`crate::import::write::Request`].

use std::process::ExitCode;

use crate::import::write;

pub fn run(req: write::Request) -> anyhow::Result<ExitCode> {
    let report = write::run(&req).map_err(|e| match e.hint() {
        Some(hint) => anyhow::anyhow!("{e}\nhint: {hint}"),
        None => e.into(),
    })?;
    eprintln!("{report}");
    Ok(ExitCode::SUCCESS)
}
