use std::process::ExitCode;

use clap::Args;

use super::{EnvSelection, RepoArgs, report_problems, report_warnings};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub select: EnvSelection,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let project = args.repo.open()?;
    let envs = project.select(&args.select.envs, args.select.all)?;
    let mut failed = 0;
    for (env, result) in project.render(&envs) {
        match result {
            Ok(rendered) => {
                report_warnings(&env, &rendered.warnings);
                eprintln!(
                    "ok: {env}: {} resources valid ({} {})",
                    rendered.manifests.len(),
                    rendered.metadata.channel.name,
                    rendered.metadata.channel.version
                )
            }
            Err(problems) => {
                failed += 1;
                report_problems(&env, &problems);
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} environments have problems", envs.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
