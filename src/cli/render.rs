use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use super::{EnvSelection, RepoArgs, report_problems};
use crate::manifest::layout;
use crate::output;
use crate::project::Project;

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub select: EnvSelection,
    /// Write `DIR/<env>/` (one file per resource, kustomization.yaml,
    /// hydrant.metadata) instead of printing one environment's manifests.
    #[arg(long, env = "HYDRANT_OUT", value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(args: RenderArgs) -> anyhow::Result<ExitCode> {
    let project = Project::open(&args.repo.repo, args.repo.channel)?;
    let envs = project.select(&args.select.envs, args.select.all)?;
    if args.out.is_none() && envs.len() != 1 {
        bail!(
            "without `--out`, render prints one environment; pass `--out DIR` to render {} environments",
            envs.len()
        );
    }
    let results = project.render(&envs);
    let mut failed = 0;
    let stdout = std::io::stdout();
    for (env, result) in results {
        match result {
            Err(problems) => {
                failed += 1;
                report_problems(&env, &problems);
            }
            Ok(rendered) => match &args.out {
                Some(dir) => {
                    let target = dir.join(&env);
                    output::replace_dir(&target, &rendered.files)
                        .with_context(|| format!("cannot write `{}`", target.display()))?;
                    eprintln!(
                        "rendered {env}: {} resources, {} {} → {}",
                        rendered.manifests.len(),
                        rendered.metadata.channel.name,
                        rendered.metadata.channel.version,
                        target.display()
                    );
                }
                None => {
                    let mut out = stdout.lock();
                    for (name, text) in &rendered.files {
                        if name == layout::KUSTOMIZATION || name == layout::METADATA {
                            continue;
                        }
                        out.write_all(b"---\n")?;
                        out.write_all(text.as_bytes())?;
                    }
                    out.flush()?;
                }
            },
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
