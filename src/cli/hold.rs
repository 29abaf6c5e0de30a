//! `hydrant hold` and `hydrant release-hold`: one commit to `holds.yaml` on
//! the base branch ([`crate::delivery::holds`]). What they hold is taken
//! from the command line only, never from a settings file or a variable.

use std::process::ExitCode;

use clap::Args;
use clap::parser::ValueSource;

use super::reconcile::{ReconcileArgs, prepare};
use crate::delivery::holds::{Change, Edit, commit};
use crate::rollout::holds::{Hold, Scope};

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("scope").args(["envs", "wave", "all"]).required(true))]
#[command(mut_arg("envs", |a| a.env(None).help("An environment; repeat or separate with commas")))]
#[command(mut_arg("all", |a| a.env(None).help("Every environment: the stop switch")))]
#[command(mut_arg("output", |a| a.hide(true)))]
pub struct HoldArgs {
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    /// A wave of `rollout.waves`.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["envs", "all"])]
    pub wave: Option<String>,
    /// Why (one line of plain text): it goes into the commit message and the
    /// descriptions of the pull requests it holds back.
    #[arg(long)]
    pub reason: Option<String>,
    /// Who holds or releases [default: `--author-name` when set, else `$USER`].
    #[arg(long, env = "HYDRANT_HOLD_BY", value_name = "NAME")]
    pub by: Option<String>,
}

/// The scopes the command line names: `--env`, `--wave` or `--all` as typed.
fn scopes(args: &HoldArgs, m: &clap::ArgMatches) -> Vec<Scope> {
    let typed = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
    if typed("all") && args.reconcile.all {
        return vec![Scope::All];
    }
    if let Some(w) = args.wave.clone().filter(|_| typed("wave")) {
        return vec![Scope::Wave(w)];
    }
    let envs = args.reconcile.envs.iter().filter(|_| typed("envs"));
    envs.map(|e| Scope::Environment(e.trim().to_string()))
        .collect()
}

pub fn run(args: HoldArgs, matches: &clap::ArgMatches, holding: bool) -> anyhow::Result<ExitCode> {
    let name = if holding { "hold" } else { "release-hold" };
    let m = matches.subcommand_matches(name).unwrap_or(matches);
    let scopes = scopes(&args, m);
    if args.reconcile.dry_run || (!holding && args.reason.is_some()) {
        eprintln!(
            "error: `{name}` commits at once: it takes no `--dry-run`, and only `hold` takes `--reason`"
        );
        return Ok(ExitCode::from(2));
    }
    if scopes.is_empty() {
        eprintln!("error: say what to {name}: `--env NAME`, `--wave NAME` or `--all`");
        return Ok(ExitCode::from(2));
    }
    let author_set = m.value_source("author_name") != Some(ValueSource::DefaultValue);
    let by = args
        .by
        .clone()
        .or_else(|| author_set.then(|| args.reconcile.author_name.clone()))
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| args.reconcile.author_name.clone());
    let by = by.trim().to_string();
    let change = if holding {
        let Some(reason) = args.reason.as_deref().map(str::trim) else {
            eprintln!("error: say why with `--reason TEXT`");
            return Ok(ExitCode::from(2));
        };
        let holds: Result<Vec<Hold>, String> = scopes
            .into_iter()
            .map(|s| Hold::new(s, reason, &by, None))
            .collect();
        Change::Hold(holds.map_err(|e| anyhow::anyhow!("{e}"))?)
    } else {
        for s in &scopes {
            s.check("the command line")
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Change::Release(scopes)
    };
    let (session, opts) = prepare(&args.reconcile)?;
    let edit = Edit {
        change,
        by,
        base: opts.base,
        author_name: opts.author_name,
        author_email: opts.author_email,
    };
    let done = commit(&session.workspace, &edit)?;
    match &done.commit {
        Some(c) => println!(
            "committed {} to `{}`: {}",
            &c[..12.min(c.len())],
            done.branch,
            done.message.lines().next().unwrap_or("")
        ),
        None => println!("nothing to change on `{}`: {}", done.branch, done.message),
    }
    Ok(ExitCode::SUCCESS)
}
