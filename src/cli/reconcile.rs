use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;

use super::{ChannelArgs, OutputFormat, secret};
use std::sync::Arc;

use crate::auth::{Token, fixed};
use crate::forge::github_app::AppToken;
use crate::forge::{Forge, GitHub, GitLab, Gitea, LocalForge};
use crate::git::{Credentials, Workspace, default_work_dir};
use crate::reconcile::{self, Action, Options, Outcome};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ForgeKind {
    /// From the repository URL: `github.com` is GitHub, a path or `file://` is local.
    Auto,
    /// Pull requests as JSON files in `--state-dir` (offline, no hosting service).
    Local,
    /// GitHub or GitHub Enterprise (`--github-api-url`).
    Github,
    /// GitLab merge requests (GitLab.com or self-managed).
    Gitlab,
    /// Gitea or Forgejo pull requests.
    Gitea,
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
    #[arg(long, env = "HYDRANT_FORGE", value_enum, default_value = "auto")]
    pub forge: ForgeKind,
    /// GitHub's REST API (GitHub Enterprise: `https://HOST/api/v3`).
    #[arg(
        long,
        env = "HYDRANT_GITHUB_API_URL",
        value_name = "URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,
    /// A file holding the GitHub token (or set `HYDRANT_GITHUB_TOKEN`); it also
    /// authenticates the git push when no git token is given.
    #[arg(long, env = "HYDRANT_GITHUB_TOKEN_FILE", value_name = "FILE")]
    pub github_token_file: Option<PathBuf>,
    /// The GitLab server [default: from `--repo`, else `https://gitlab.com`].
    #[arg(long, env = "HYDRANT_GITLAB_URL", value_name = "URL")]
    pub gitlab_url: Option<String>,
    /// A file holding the GitLab token (or set `HYDRANT_GITLAB_TOKEN`).
    #[arg(long, env = "HYDRANT_GITLAB_TOKEN_FILE", value_name = "FILE")]
    pub gitlab_token_file: Option<PathBuf>,
    /// Send the GitLab token as an OAuth bearer token instead of `PRIVATE-TOKEN`.
    #[arg(long, env = "HYDRANT_GITLAB_OAUTH")]
    pub gitlab_oauth: bool,
    /// The Gitea or Forgejo server [default: from `--repo`].
    #[arg(long, env = "HYDRANT_GITEA_URL", value_name = "URL")]
    pub gitea_url: Option<String>,
    /// A file holding the Gitea token (or set `HYDRANT_GITEA_TOKEN`).
    #[arg(long, env = "HYDRANT_GITEA_TOKEN_FILE", value_name = "FILE")]
    pub gitea_token_file: Option<PathBuf>,
    /// Authenticate to GitHub as this GitHub App (with `--github-app-key-file`)
    /// instead of with a token; its installation token also pushes.
    #[arg(long, env = "HYDRANT_GITHUB_APP_ID", value_name = "ID")]
    pub github_app_id: Option<String>,
    /// The GitHub App's private key (PEM).
    #[arg(
        long,
        env = "HYDRANT_GITHUB_APP_KEY_FILE",
        value_name = "FILE",
        requires = "github_app_id"
    )]
    pub github_app_key_file: Option<PathBuf>,
    /// The App's installation [default: the one covering the repository].
    #[arg(long, env = "HYDRANT_GITHUB_INSTALLATION_ID", value_name = "ID")]
    pub github_installation_id: Option<u64>,
    /// The repository on the forge as `owner/name` [default: from `--repo`].
    #[arg(long, env = "HYDRANT_FORGE_REPOSITORY", value_name = "OWNER/NAME")]
    pub forge_repository: Option<String>,
    /// The longest single wait for a forge rate limit, in seconds; a longer
    /// limit fails the call and the next cycle tries again.
    #[arg(long, env = "HYDRANT_FORGE_MAX_WAIT", default_value_t = crate::forge::api::defaults::MAX_WAIT_SECS)]
    pub forge_max_wait: u64,
    /// The first wait before retrying a failed forge call, in milliseconds.
    #[arg(long, env = "HYDRANT_FORGE_BACKOFF_MS", default_value_t = crate::forge::api::defaults::BACKOFF_MS)]
    pub forge_backoff_ms: u64,
    /// Total timeout of one forge API request, in seconds.
    #[arg(long, env = "HYDRANT_FORGE_TIMEOUT", default_value_t = crate::forge::api::defaults::TIMEOUT_SECS)]
    pub forge_timeout: u64,
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
    /// How long the git remote may stay silent, connecting or in the middle
    /// of a fetch or push, before the operation fails, in seconds.
    #[arg(long, env = "HYDRANT_GIT_TIMEOUT", default_value_t = 60)]
    pub git_timeout: u64,
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

/// `owner/name` on the forge: `--forge-repository`, else from `--repo`.
fn repository_path(args: &ReconcileArgs) -> Option<String> {
    args.forge_repository
        .clone()
        .or_else(|| crate::forge::repository_of(&args.repo).map(|(_, p)| p))
}

/// GitHub credentials: an App's renewing installation token, or a fixed token.
fn github_token(args: &ReconcileArgs) -> anyhow::Result<Option<Token>> {
    if let Some(app_id) = &args.github_app_id {
        let key_file = args
            .github_app_key_file
            .as_ref()
            .context("`--github-app-id` needs `--github-app-key-file`")?;
        let pem = std::fs::read(key_file)
            .with_context(|| format!("cannot read the GitHub App key `{}`", key_file.display()))?;
        let path = repository_path(args)
            .context("cannot tell the GitHub repository; pass `--forge-repository OWNER/NAME`")?;
        let (owner, name) = path
            .split_once('/')
            .context("`--forge-repository` is OWNER/NAME")?;
        let app = AppToken::new(
            app_id,
            &pem,
            &args.github_api_url,
            owner,
            name,
            args.github_installation_id,
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        return Ok(Some(Arc::new(app)));
    }
    Ok(secret(&args.github_token_file, "HYDRANT_GITHUB_TOKEN")?.map(fixed))
}

/// Which forge: `--forge`, or told by the repository URL's host.
pub(crate) fn forge_kind(args: &ReconcileArgs) -> anyhow::Result<ForgeKind> {
    if args.forge != ForgeKind::Auto {
        return Ok(args.forge);
    }
    Ok(
        match crate::forge::repository_of(&args.repo)
            .as_ref()
            .map(|(host, _)| host.as_str())
        {
            None => ForgeKind::Local,
            Some("github.com") => ForgeKind::Github,
            Some("gitlab.com") => ForgeKind::Gitlab,
            Some("codeberg.org") => ForgeKind::Gitea,
            Some(host) => anyhow::bail!(
                "cannot tell which forge `{host}` is; pass `--forge github`, `gitlab`, `gitea` or `local`"
            ),
        },
    )
}

/// The forge's token, which also pushes when no git token is given.
fn forge_token(args: &ReconcileArgs, kind: ForgeKind) -> anyhow::Result<Option<Token>> {
    Ok(match kind {
        ForgeKind::Github => github_token(args)?,
        ForgeKind::Gitlab => secret(&args.gitlab_token_file, "HYDRANT_GITLAB_TOKEN")?.map(fixed),
        ForgeKind::Gitea => secret(&args.gitea_token_file, "HYDRANT_GITEA_TOKEN")?.map(fixed),
        ForgeKind::Auto | ForgeKind::Local => None,
    })
}

fn forge(
    args: &ReconcileArgs,
    kind: ForgeKind,
    work_dir: &std::path::Path,
    token: Option<Token>,
) -> anyhow::Result<Box<dyn Forge>> {
    if matches!(kind, ForgeKind::Auto | ForgeKind::Local) {
        let dir = args
            .state_dir
            .clone()
            .unwrap_or_else(|| work_dir.join("local-forge"));
        return Ok(Box::new(LocalForge::open(&dir)?));
    }
    let name = format!("{kind:?}").to_lowercase();
    let token = token.with_context(|| {
        let var = format!("HYDRANT_{}_TOKEN", name.to_uppercase());
        format!("{name} needs a token: set `{var}` or pass `--{name}-token-file`")
    })?;
    let path = repository_path(args).context(
        "cannot tell the repository from `--repo`; pass `--forge-repository OWNER/NAME`",
    )?;
    let options = crate::forge::api::ApiOptions {
        max_wait: Duration::from_secs(args.forge_max_wait),
        backoff: Duration::from_millis(args.forge_backoff_ms),
        timeout: Duration::from_secs(args.forge_timeout.max(1)),
        ..Default::default()
    };
    let server = |flag: &Option<String>, default: Option<&str>| -> anyhow::Result<String> {
        flag.clone()
            .or_else(|| crate::forge::server_of(&args.repo))
            .or(default.map(String::from))
            .with_context(|| {
                format!("cannot tell the {name} server from `--repo`; pass `--{name}-url`")
            })
    };
    Ok(match kind {
        ForgeKind::Github => {
            let (owner, repo) = path
                .split_once('/')
                .context("`--forge-repository` is OWNER/NAME")?;
            Box::new(GitHub::new(
                &args.github_api_url,
                owner,
                repo,
                token,
                options,
            )?)
        }
        ForgeKind::Gitlab => {
            let url = server(&args.gitlab_url, Some("https://gitlab.com"))?;
            Box::new(GitLab::new(&url, &path, token, args.gitlab_oauth, options)?)
        }
        ForgeKind::Gitea => {
            let url = server(&args.gitea_url, None)?;
            let (owner, repo) = path
                .split_once('/')
                .context("`--forge-repository` is OWNER/NAME")?;
            Box::new(Gitea::new(&url, owner, repo, token, options)?)
        }
        ForgeKind::Auto | ForgeKind::Local => unreachable!("handled above"),
    })
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
        if o.action == Action::Skipped {
            println!("{:width$}  {}", "", o.reason);
        }
        if let Some(e) = &o.error {
            println!("{:width$}  error: {e}", "");
        }
    }
}

/// The work directory, forge and options a cycle needs, from the flags.
pub fn prepare(args: &ReconcileArgs) -> anyhow::Result<(Workspace, Box<dyn Forge>, Options)> {
    crate::git::set_timeout(Duration::from_secs(args.git_timeout.max(1)));
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| default_work_dir(&args.repo));
    let kind = forge_kind(args)?;
    let forge_token = forge_token(args, kind)?;
    let git_token = secret(&args.git_token_file, "HYDRANT_GIT_TOKEN")?;
    let creds = Credentials {
        token: git_token.map(fixed).or_else(|| forge_token.clone()),
        username: args.git_username.clone(),
        ssh_key: args.ssh_key.clone(),
    };
    let ws = Workspace::open(
        &work_dir,
        &args.repo,
        creds,
        Duration::from_secs(args.lock_timeout),
    )?;
    let forge = forge(args, kind, &work_dir, forge_token)?;
    let opts = Options {
        base: args.base.clone(),
        envs: args.envs.clone(),
        channel: args.channel.settings()?,
        dry_run: args.dry_run,
        author_name: args.author_name.clone(),
        author_email: args.author_email.clone(),
    };
    Ok((ws, forge, opts))
}

/// Prints what each environment's plan decided, why, and what it changes:
/// `hydrant plan`, and `hydrant reconcile --dry-run`.
fn print_plan(outcomes: &[Outcome]) {
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
            "{:width$}  {:13}  {channel} {version}",
            o.env,
            o.decision.to_string()
        );
        if let Some(pr) = &o.pull_request {
            line.push_str(&format!("  PR #{}", pr.number));
        }
        println!("{}", line.trim_end());
        println!("{:width$}  {}", "", o.reason);
        for f in &o.files {
            let mark = match f.change {
                crate::delivery::plan::Change::Added => '+',
                crate::delivery::plan::Change::Removed => '-',
                crate::delivery::plan::Change::Changed => '~',
            };
            println!("{:width$}  {mark} {}", "", f.path);
        }
        if let Some(e) = &o.error {
            println!("{:width$}  error: {e}", "");
        }
    }
}

pub fn run(args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let (ws, forge, opts) = prepare(&args)?;
    let outcomes = match reconcile::run_cycle(&ws, forge.as_ref(), &opts) {
        Ok(cycle) => cycle.outcomes,
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
        OutputFormat::Text if opts.dry_run => print_plan(&outcomes),
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
