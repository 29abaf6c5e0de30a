use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::{RepoArgs, report_problems};
use crate::project::Project;
use crate::tree::{DiskTree, Kind, Tree};

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
    let project = Project::open(&args.repo.repo, &args.repo.channel.settings()?)?;
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
    let current = rendered_files(&args.repo.repo, &env)?;
    let names: std::collections::BTreeSet<&String> =
        current.keys().chain(rendered.files.keys()).collect();
    let mut differs = false;
    for name in names {
        let old = current.get(name).map(String::as_str).unwrap_or("");
        let new = rendered.files.get(name).map(String::as_str).unwrap_or("");
        if old == new {
            continue;
        }
        differs = true;
        let path = format!("{dir}/{name}");
        print!(
            "{}",
            similar::TextDiff::from_lines(old, new)
                .unified_diff()
                .context_radius(3)
                .header(&format!("a/{path}"), &format!("b/{path}"))
        );
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

/// The files of `rendered/<env>/` in the working tree at `repo`, by name (none
/// when the directory does not exist).
pub(super) fn rendered_files(repo: &Path, env: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let tree = DiskTree::new(repo)?;
    let dir = format!("rendered/{env}");
    let mut files = BTreeMap::new();
    for (name, kind) in tree.list(&dir)? {
        if kind == Kind::File
            && let Some(text) = tree.read(&format!("{dir}/{name}"))?
        {
            files.insert(name, text);
        }
    }
    Ok(files)
}
