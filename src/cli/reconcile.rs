use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;

use super::{ChannelArgs, OutputFormat};
use crate::forge::{Forge, LocalForge};
use crate::git::{Credentials, Workspace, default_work_dir};
use crate::reconcile::{self, Action, Options, Outcome};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ForgeKind {
    /// Pull requests as JSON files in `--state-dir` (offline, no hosting service).
    Local,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Run one cycle and exit (the entry point for cron and CI).
    #[arg(long)]
    pub once: bool,
    /// The config repository: a path, or a `file://`, `http(s)://` or `ssh://` URL.
    #[arg(long, env = "HYDRANT_REPO", default_value = ".")]
    pub repo: String,
    /// The branch pull requests target [default: the remote's default branch].
    #[arg(long, env = "HYDRANT_BASE")]
    pub base: Option<String>,
    /// An environment; repeat or separate with commas [default: all].
    #[arg(long = "env", env = "HYDRANT_ENV", value_delimiter = ',')]
    pub envs: Vec<String>,
    /// Every environment (the default when no `--env` is given).
    #[arg(long, env = "HYDRANT_ALL", conflicts_with = "envs")]
    pub all: bool,
    /// Where pull requests are opened.
    #[arg(long, env = "HYDRANT_FORGE", value_enum, default_value = "local")]
    pub forge: ForgeKind,
    /// The local forge's state directory [default: `<work-dir>/local-forge`].
    #[arg(long, env = "HYDRANT_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// hydrant's clone of the repository [default: under the user's cache directory].
    #[arg(long, env = "HYDRANT_WORK_DIR", value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    #[command(flatten)]
    pub channel: ChannelArgs,
    /// Output format of the summary.
    #[arg(long, env = "HYDRANT_OUTPUT", value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Look, don't touch: fetch, render and print what would happen; push
    /// nothing and write no pull request.
    #[arg(long, env = "HYDRANT_DRY_RUN")]
    pub dry_run: bool,
    /// A file holding the HTTPS token for the git remote (or set `HYDRANT_GIT_TOKEN`).
    #[arg(long, env = "HYDRANT_GIT_TOKEN_FILE", value_name = "FILE")]
    pub git_token_file: Option<PathBuf>,
    /// The user name sent with the token.
    #[arg(long, env = "HYDRANT_GIT_USERNAME", default_value = "x-access-token")]
    pub git_username: String,
    /// SSH private key for `ssh://` remotes.
    #[arg(long, env = "HYDRANT_SSH_KEY", value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// Commit author name.
    #[arg(long, env = "HYDRANT_AUTHOR_NAME", default_value = "hydrant")]
    pub author_name: String,
    /// Commit author email.
    #[arg(
        long,
        env = "HYDRANT_AUTHOR_EMAIL",
        default_value = "hydrant@noreply.invalid"
    )]
    pub author_email: String,
    /// How long to wait for another run holding the work directory, in seconds.
    #[arg(long, env = "HYDRANT_LOCK_TIMEOUT", default_value_t = 600)]
    pub lock_timeout: u64,
}

fn token(args: &ReconcileArgs) -> anyhow::Result<Option<String>> {
    if let Some(path) = &args.git_token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the git token file `{}`", path.display()))?;
        return Ok(Some(text.trim().to_string()));
    }
    Ok(std::env::var("HYDRANT_GIT_TOKEN")
        .ok()
        .filter(|t| !t.is_empty()))
}

fn print_text(outcomes: &[Outcome]) {
    let width = outcomes.iter().map(|o| o.env.len()).max().unwrap_or(0);
    for o in outcomes {
        let version = match (&o.version.from, &o.version.to) {
            (Some(f), Some(t)) if f != t => format!("{f} → {t}"),
            (None, Some(t)) => format!("(new) → {t}"),
            (_, Some(t)) => t.clone(),
            _ => String::new(),
        };
        let channel = o.channel.as_deref().unwrap_or("");
        let mut line = format!(
            "{:width$}  {:9}  {channel} {version}",
            o.env,
            o.action.to_string()
        );
        if let Some(c) = &o.commit {
            line.push_str(&format!("  {}@{}", o.branch, &c[..12.min(c.len())]));
        }
        if let Some(pr) = &o.pull_request {
            line.push_str(&format!("  PR #{} {}", pr.number, pr.url));
        }
        println!("{}", line.trim_end());
        if let Some(note) = &o.note {
            println!("{:width$}  {note}", "");
        }
        if let Some(e) = &o.error {
            println!("{:width$}  error: {e}", "");
        }
    }
}

pub fn run(args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| default_work_dir(&args.repo));
    let creds = Credentials {
        token: token(&args)?,
        username: args.git_username.clone(),
        ssh_key: args.ssh_key.clone(),
    };
    let ws = Workspace::open(
        &work_dir,
        &args.repo,
        creds,
        Duration::from_secs(args.lock_timeout),
    )?;
    let forge: Box<dyn Forge> = match args.forge {
        ForgeKind::Local => {
            let dir = args
                .state_dir
                .clone()
                .unwrap_or_else(|| work_dir.join("local-forge"));
            Box::new(LocalForge::open(&dir)?)
        }
    };
    let opts = Options {
        base: args.base.clone(),
        envs: args.envs.clone(),
        channel: args.channel.settings()?,
        dry_run: args.dry_run,
        author_name: args.author_name.clone(),
        author_email: args.author_email.clone(),
    };
    let outcomes = match reconcile::run_cycle(&ws, forge.as_ref(), &opts) {
        Ok(o) => o,
        Err(e) if args.output == OutputFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"environments": [], "error": e.to_string()}))?
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({"environments": outcomes}))?
        ),
        OutputFormat::Text => print_text(&outcomes),
    }
    let failed = outcomes
        .iter()
        .filter(|o| o.action == Action::Failed)
        .count();
    if failed > 0 {
        eprintln!("error: {failed} of {} environments failed", outcomes.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
