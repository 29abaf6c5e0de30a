use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::{ChannelArgs, OutputFormat, secret_source};
use crate::delivery::connect::{
    ApiOptions, ConnectError, ForgeKind, ForgeSettings, GitSettings, GithubApp, Session, Settings,
    api_defaults,
};
use crate::reconcile::{self, Action, Options};

/// `hydrant reconcile`: always one cycle; `--once` is kept for the command
/// lines (cron, CI) that say so.
#[derive(Debug, Args)]
pub struct ReconcileCommand {
    /// Run one cycle and exit (the entry point for cron and CI).
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub args: ReconcileArgs,
}

/// The repository, forge and credentials of a cycle: the flags of
/// `reconcile`, `plan`, `status` and `run`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The credentials health gates use: bound in the operator's settings
    /// file (`credentials:`), never a flag.
    #[arg(skip)]
    pub credentials: crate::gates::Credentials,
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
    #[arg(long, env = "HYDRANT_FORGE_MAX_WAIT", default_value_t = api_defaults::MAX_WAIT_SECS)]
    pub forge_max_wait: u64,
    /// The first wait before retrying a failed forge call, in milliseconds.
    #[arg(long, env = "HYDRANT_FORGE_BACKOFF_MS", default_value_t = api_defaults::BACKOFF_MS)]
    pub forge_backoff_ms: u64,
    /// Total timeout of one forge API request, in seconds.
    #[arg(long, env = "HYDRANT_FORGE_TIMEOUT", default_value_t = api_defaults::TIMEOUT_SECS)]
    pub forge_timeout: u64,
    /// The most new pull requests hydrant opens in any hour: the forge
    /// token's budget. Over it, environments wait in wave order; a forge's
    /// secondary rate limit halves it for an hour. An operator's setting.
    #[arg(
        long,
        env = "HYDRANT_MAX_NEW_PULL_REQUESTS_PER_HOUR",
        value_name = "N",
        default_value_t = crate::rollout::budget::DEFAULT_PER_HOUR,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_new_pull_requests_per_hour: u32,
    /// The most of hydrant's pull requests open at once [default: no limit].
    /// An operator's setting.
    #[arg(long, env = "HYDRANT_MAX_OPEN_PULL_REQUESTS", value_name = "N")]
    pub max_open_pull_requests: Option<u32>,
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
    /// Deliver, for this run, a change that deletes more of an environment's
    /// resources than its `maxDeletions` (more than half by default), or all
    /// of them; its pull request opens with a warning.
    #[arg(long, env = "HYDRANT_ALLOW_MASS_DELETION")]
    pub allow_mass_deletion: bool,
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

impl ReconcileArgs {
    /// The forge `--forge` names, or the one the repository's host tells.
    pub(crate) fn forge_kind(&self) -> Result<ForgeKind, ConnectError> {
        self.settings().forge.resolved_kind()
    }

    /// The settings that open the repository and the forge.
    fn settings(&self) -> Settings {
        let github_app = self.github_app_id.as_ref().map(|app_id| GithubApp {
            app_id: app_id.clone(),
            key_file: self.github_app_key_file.clone(),
            installation_id: self.github_installation_id,
        });
        Settings {
            work_dir: self.work_dir.clone(),
            git: GitSettings {
                token: secret_source(&self.git_token_file, "HYDRANT_GIT_TOKEN"),
                username: self.git_username.clone(),
                ssh_key: self.ssh_key.clone(),
                timeout: Duration::from_secs(self.git_timeout.max(1)),
                lock_timeout: Duration::from_secs(self.lock_timeout),
            },
            forge: ForgeSettings {
                kind: self.forge,
                repo: self.repo.clone(),
                repository: self.forge_repository.clone(),
                github_api_url: self.github_api_url.clone(),
                github_token: secret_source(&self.github_token_file, "HYDRANT_GITHUB_TOKEN"),
                github_app,
                gitlab_url: self.gitlab_url.clone(),
                gitlab_token: secret_source(&self.gitlab_token_file, "HYDRANT_GITLAB_TOKEN"),
                gitlab_oauth: self.gitlab_oauth,
                gitea_url: self.gitea_url.clone(),
                gitea_token: secret_source(&self.gitea_token_file, "HYDRANT_GITEA_TOKEN"),
                api: ApiOptions {
                    max_wait: Duration::from_secs(self.forge_max_wait),
                    backoff: Duration::from_millis(self.forge_backoff_ms),
                    timeout: Duration::from_secs(self.forge_timeout.max(1)),
                    ..Default::default()
                },
                state_dir: self.state_dir.clone(),
            },
        }
    }
}

/// The work directory, forge and options a cycle needs, from the flags.
pub fn prepare(args: &ReconcileArgs) -> anyhow::Result<(Session, Options)> {
    let session = crate::delivery::connect::open(&args.settings())?;
    let opts = Options {
        base: args.base.clone(),
        envs: args.envs.clone(),
        channel: args.channel.settings()?,
        dry_run: args.dry_run,
        allow_mass_deletion: args.allow_mass_deletion,
        author_name: args.author_name.clone(),
        author_email: args.author_email.clone(),
        credentials: args.credentials.clone(),
        budget: crate::rollout::budget::Budget {
            per_hour: args.max_new_pull_requests_per_hour,
            max_open: args.max_open_pull_requests,
        },
    };
    Ok((session, opts))
}

pub fn run(args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let (Session { workspace, forge }, opts) = prepare(&args)?;
    let cycle = match reconcile::run_cycle(&workspace, forge.as_ref(), &opts) {
        Ok(cycle) => cycle,
        Err(e) if args.output == OutputFormat::Json => {
            let failed = json!({"environments": [], "error": e.to_string()});
            println!("{}", serde_json::to_string_pretty(&failed)?);
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    match args.output {
        OutputFormat::Json => crate::output::print_json(&cycle.json())?,
        OutputFormat::Text => print!("{}", cycle.text(opts.dry_run)),
    }
    let outcomes = &cycle.outcomes;
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
