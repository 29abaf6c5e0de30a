//! The command line: clap types, and one file per command.
//!
//! Data goes to stdout (rendered YAML, `--output json`); messages, errors and
//! hints go to stderr. Exit codes: 0 success, 1 a problem with the input or
//! an environment, 2 a usage error or an unexpected failure.

mod channel;
mod config;
mod diff;
mod explain;
mod hold;
mod import;
pub(crate) mod reconcile;
mod render;
mod run;
mod status;
mod validate;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::pipeline::Problem;
use crate::settings;

/// hydrant: a GitOps reconciliation daemon. It renders a vendor's release
/// channel, layered with per-environment overrides kept in git, into
/// Kubernetes manifests for Argo CD or Flux.
#[derive(Debug, Parser)]
#[command(name = "hydrant", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Log level (error, warn, info, debug, trace); `RUST_LOG` overrides it.
    /// `hydrant run` logs at `info` unless one is given.
    #[arg(long, global = true, env = "HYDRANT_LOG_LEVEL", default_value = "warn")]
    pub log_level: String,
    /// Log lines as text for people, or as JSON objects for log pipelines.
    #[arg(
        long,
        global = true,
        env = "HYDRANT_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: LogFormat,
    /// The settings file [default: `hydrant.yaml` in `--repo` when it is a
    /// directory]. Flags and `HYDRANT_*` variables win over it.
    #[arg(long, global = true, env = "HYDRANT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render environments to Kubernetes manifests.
    Render(render::RenderArgs),
    /// Show how a key got its value: the final value, the layer, file and line
    /// that set it, and what it overrode.
    Explain(explain::ExplainArgs),
    /// Render and check environments; list every problem.
    Validate(validate::ValidateArgs),
    /// Render every environment from the base branch and deliver each change as
    /// a commit on `hydrant/<env>` with one pull request.
    Reconcile(Box<reconcile::ReconcileCommand>),
    /// Show what a reconcile would do to each environment and why (open,
    /// update, close, nothing, leave alone, failed), with the version change
    /// and the files it would change; changes nothing. Takes the flags of
    /// `reconcile`; `reconcile --dry-run` prints the same plan.
    Plan(Box<reconcile::ReconcileArgs>),
    /// Show the unified diff between a fresh render and `rendered/<env>/`.
    Diff(diff::DiffArgs),
    /// Release channels: show the spec in use, or mirror specs for air-gapped installs.
    Channel(channel::ChannelCommand),
    /// Run as a daemon: reconcile on a schedule and on webhooks, serving
    /// health, readiness and metrics.
    Run(Box<run::RunArgs>),
    /// Per environment: the version its channel offers, the version rendered
    /// on the base branch, and its open pull request (age, waiting for review).
    /// Takes the flags of `reconcile`; changes nothing. With `--serve`, serves
    /// the fleet page for the repository without the daemon.
    Status(Box<status::StatusArgs>),
    /// Settings: `hydrant config show` lists each one, its value and where the
    /// value came from (flag, env, file or default).
    Config(config::ConfigCommand),
    /// Stop new versions from reaching environments, a wave or everything: a
    /// commit to `holds.yaml` straight to the base branch, naming who and
    /// why. Override and template changes still flow.
    Hold(Box<hold::HoldArgs>),
    /// Release holds set with `hydrant hold`: a commit to `holds.yaml` on the
    /// base branch.
    ReleaseHold(Box<hold::HoldArgs>),
    /// Render environments into the working tree's `rendered/`, then re-render
    /// the ones a change affects as templates, overrides or channel specs are edited.
    Watch(watch::WatchArgs),
    /// Make an environment of the operator's `WeightsAndBiases` resource or `helm get values`
    /// output, its credentials moved to a Secret manifest outside the repository.
    Import(Box<crate::import::write::Request>),
}

/// Where the config repository is.
#[derive(Debug, Args)]
pub struct RepoArgs {
    /// The config repository: a directory (its working tree, read as it is)
    /// or a git URL (its base branch, fetched as `reconcile` fetches it).
    #[arg(long, env = "HYDRANT_REPO", default_value = ".")]
    pub repo: PathBuf,
    /// Read this branch of `--repo` instead [default: the remote's default
    /// branch for a git URL, the working tree for a directory].
    #[arg(long = "ref", env = "HYDRANT_REF", value_name = "BRANCH")]
    pub git_ref: Option<String>,
    #[command(flatten)]
    pub channel: ChannelArgs,
}

impl RepoArgs {
    /// The config repository these flags name, opened for reading.
    pub fn open(&self) -> anyhow::Result<crate::project::Project> {
        Ok(crate::project::Project::locate(
            &self.repo.to_string_lossy(),
            self.git_ref.as_deref(),
            &self.channel.settings()?,
        )?)
    }
}

/// Which environments to work on.
#[derive(Debug, Args)]
pub struct EnvSelection {
    /// An environment (a directory of `environments/`); repeat for several.
    #[arg(
        long = "env",
        env = "HYDRANT_ENV",
        value_delimiter = ',',
        required_unless_present = "all"
    )]
    pub envs: Vec<String>,
    /// Every environment of the repository.
    #[arg(long, env = "HYDRANT_ALL", conflicts_with = "envs")]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

pub use crate::auth::{read_file, secret, secret_source};
pub use crate::channel::flags::ChannelArgs;

/// Sets up logging to stderr.
pub fn init_logging(global: &GlobalArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&global.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match global.log_format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

/// The process: reads the settings file, parses the command line over it,
/// sets up logging and runs the command.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let file = match settings::load(&args) {
        Ok(file) => file,
        Err(e) => {
            report_error(&e);
            return ExitCode::from(2);
        }
    };
    let mut command = Cli::command();
    if let Some(f) = &file {
        if let Err(e) = settings::check(&command, f) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        command = settings::apply(command, f);
    }
    let parsed = command
        .try_get_matches_from(&args)
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            if let Some(note) = settings::blame(&e, file.as_ref()) {
                eprintln!("{note}");
            }
            e.exit()
        }
    };
    if let Err(e) = settings::check_values(&Cli::command(), &matches, file.as_ref()) {
        let hint = e.source.hint();
        report_error(&e.into());
        if let Some(hint) = hint {
            eprintln!("hint: {hint}");
        }
        return ExitCode::from(2);
    }
    let (mut cli, matches) = (cli, matches);
    // The daemon says what it did at its default level: `info`, unless a
    // flag, `HYDRANT_LOG_LEVEL` or the settings file chose one.
    if matches!(cli.command, Command::Run(_))
        && matches.value_source("log_level") == Some(clap::parser::ValueSource::DefaultValue)
        && file.as_ref().is_none_or(|f| f.get("logLevel").is_none())
    {
        cli.global.log_level = "info".to_string();
    }
    init_logging(&cli.global);
    run(cli, &matches, file.as_ref())
}

/// Runs a command and returns the process exit code.
pub fn run(
    cli: Cli,
    matches: &clap::ArgMatches,
    file: Option<&settings::SettingsFile>,
) -> ExitCode {
    let credentials = file.map(|f| f.credentials.clone()).unwrap_or_default();
    let result = match cli.command {
        Command::Render(args) => render::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Reconcile(mut command) => {
            command.args.credentials = credentials;
            reconcile::run(command.args)
        }
        Command::Plan(mut args) => {
            args.dry_run = true;
            args.credentials = credentials;
            reconcile::run(*args)
        }
        Command::Diff(args) => diff::run(args),
        Command::Channel(args) => channel::run(args),
        Command::Run(mut args) => {
            args.daemon.reconcile.credentials = credentials;
            run::run(*args)
        }
        Command::Status(mut args) => {
            args.args.credentials = credentials;
            status::run(*args)
        }
        Command::Config(args) => config::run(args, matches, file),
        Command::Watch(args) => watch::run(args),
        Command::Import(args) => import::run(*args),
        Command::Hold(args) => hold::run(*args, matches, true),
        Command::ReleaseHold(args) => hold::run(*args, matches, false),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            report_error(&e);
            ExitCode::from(1)
        }
    }
}

/// Prints `error:` with the causes worth reading.
pub fn report_error(e: &anyhow::Error) {
    eprint!("{}", crate::report::error(e));
}

/// Prints what an environment's render let pass but a person should see.
pub fn report_warnings(env: &str, warnings: &[String]) {
    eprint!("{}", crate::report::warnings(env, warnings));
}

/// Prints an environment's problems, each with its hint.
pub fn report_problems(env: &str, problems: &[Problem]) {
    eprint!("{}", crate::report::problems(env, problems));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_defaults_are_the_library_defaults() {
        let cli = Cli::try_parse_from(["hydrant", "render", "--env", "dev"]).expect("parses");
        let Command::Render(args) = cli.command else {
            panic!("not render")
        };
        let flags = args.repo.channel.settings().expect("settings").http;
        let library = crate::channel::HttpOptions::new(PathBuf::new());
        assert_eq!(flags.timeout, library.timeout);
        assert_eq!(flags.connect_timeout, library.connect_timeout);
        assert_eq!(flags.retries, library.retries);
        assert_eq!(flags.backoff, library.backoff);
        assert_eq!(flags.max_wait, library.max_wait);
        assert_eq!(flags.max_bytes, library.max_bytes);

        let cli = Cli::try_parse_from(["hydrant", "reconcile"]).expect("parses");
        let Command::Reconcile(command) = cli.command else {
            panic!("not reconcile")
        };
        let args = command.args;
        let library = crate::delivery::connect::ApiOptions::default();
        assert_eq!(
            std::time::Duration::from_secs(args.forge_timeout),
            library.timeout
        );
        assert_eq!(
            std::time::Duration::from_millis(args.forge_backoff_ms),
            library.backoff
        );
        assert_eq!(
            std::time::Duration::from_secs(args.forge_max_wait),
            library.max_wait
        );
    }
}
