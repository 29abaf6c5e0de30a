use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use super::{EnvSelection, RepoArgs, report_problems, report_warnings};
use crate::manifest::layout;
use crate::output::{self, rendered_line};
use crate::pipeline::Problem;

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
    let project = args.repo.open()?;
    let envs = project.select(&args.select.envs, args.select.all)?;
    if args.out.is_none() && envs.len() != 1 {
        bail!(
            "without `--out`, render prints one environment; pass `--out DIR` to render {} environments",
            envs.len()
        );
    }
    if let Some(dir) = &args.out {
        // Render and write in parallel; keep only a line per environment.
        let outcomes = project.render_each(
            &envs,
            |env, result| -> anyhow::Result<Result<String, Vec<Problem>>> {
                let rendered = match result {
                    Ok(r) => r,
                    Err(problems) => return Ok(Err(problems)),
                };
                let target = dir.join(env);
                output::replace_dir(&target, &rendered.files)
                    .with_context(|| format!("cannot write `{}`", target.display()))?;
                let mut line = rendered_line(env, &rendered, &target);
                for w in &rendered.warnings {
                    line.push_str(&format!("\nwarning: environment `{env}`: {w}"));
                }
                Ok(Ok(line))
            },
        );
        let mut failed = 0;
        for (env, outcome) in envs.iter().zip(outcomes) {
            match outcome? {
                Ok(line) => eprintln!("{line}"),
                Err(problems) => {
                    failed += 1;
                    report_problems(env, &problems);
                }
            }
        }
        return Ok(if failed > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let (env, result) = project.render(&envs).remove(0);
    let rendered = match result {
        Ok(r) => r,
        Err(problems) => {
            report_problems(&env, &problems);
            return Ok(ExitCode::from(1));
        }
    };
    report_warnings(&env, &rendered.warnings);
    let mut out = std::io::stdout().lock();
    for (name, text) in &rendered.files {
        if name == layout::KUSTOMIZATION || name == layout::METADATA {
            continue;
        }
        out.write_all(b"---\n")?;
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
