use std::process::ExitCode;

use clap::Args;

use super::{RepoArgs, report_problems};
use crate::manifest::layout;

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The environment.
    #[arg(long, env = "HYDRANT_ENV")]
    pub env: String,
    /// Exit with 1 when the render differs from `rendered/<env>/`.
    #[arg(long)]
    pub exit_code: bool,
}

pub fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let project = args.repo.open()?;
    let envs = project.select(std::slice::from_ref(&args.env), false)?;
    let (env, result) = project.render(&envs).remove(0);
    let rendered = match result {
        Ok(r) => r,
        Err(problems) => {
            report_problems(&env, &problems);
            return Ok(ExitCode::from(1));
        }
    };
    let dir = format!("rendered/{env}");
    let current = project.rendered_files(&env)?;
    let diffs = layout::diff(&dir, &current, &rendered.files);
    let differs = !diffs.is_empty();
    for (_, text) in diffs {
        print!("{text}");
    }
    if !differs {
        eprintln!("{dir}/ is up to date");
    }
    Ok(if differs && args.exit_code {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
