use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;

use super::{ChannelArgs, OutputFormat, RepoArgs};
use crate::mirror::{self, Event};
use crate::project::Project;

#[derive(Debug, Args)]
pub struct ChannelCommand {
    #[command(subcommand)]
    pub command: ChannelSub,
}

#[derive(Debug, Subcommand)]
pub enum ChannelSub {
    /// Show the spec an environment (or a channel) would use, where it came
    /// from (network, 304 cache, stale cache, file or mirror) and its version.
    Show(ShowArgs),
    /// Save channel specs (latest and pinned releases) into a directory that
    /// `--channel DIR` reads: a mirror for installations without egress.
    Mirror(MirrorArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The environment whose channel (and pin) to show.
    #[arg(
        long,
        env = "HYDRANT_ENV",
        conflicts_with = "name",
        required_unless_present = "name"
    )]
    pub env: Option<String>,
    /// A channel by name (its latest spec).
    #[arg(long)]
    pub name: Option<String>,
    /// Output format.
    #[arg(long, env = "HYDRANT_OUTPUT", value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// The channel source to copy from (a URL, or a directory or file).
    #[arg(long)]
    pub from: String,
    /// The mirror directory to write.
    #[arg(long)]
    pub to: PathBuf,
    /// A channel to mirror; repeat for several [default: every channel and
    /// pinned release the repository's environments use].
    #[arg(long = "name", value_delimiter = ',')]
    pub names: Vec<String>,
    /// A pinned release to mirror too, as `CHANNEL=RELEASE`; repeat for several.
    #[arg(long = "release")]
    pub releases: Vec<String>,
    /// The config repository whose environments say what to mirror.
    #[arg(long, env = "HYDRANT_REPO", default_value = ".")]
    pub repo: PathBuf,
    #[command(flatten)]
    pub channel: ChannelArgs,
}

pub fn run(cmd: ChannelCommand) -> anyhow::Result<ExitCode> {
    match cmd.command {
        ChannelSub::Show(args) => show(args),
        ChannelSub::Mirror(args) => mirror(args),
    }
}

fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let project = args.repo.open()?;
    let (channel, release, origin) = match (&args.env, &args.name) {
        (Some(env), _) => {
            let (channel, release) = project.environment_channel(env)?;
            (channel, release, format!("environment `{env}`"))
        }
        (None, Some(name)) => (name.clone(), None, "`--name`".to_string()),
        (None, None) => bail!("pass `--env NAME` or `--name CHANNEL`"),
    };
    let spec = project.channel_spec(&channel, release.as_deref(), &origin)?;
    let source = project.channel_source();
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "channel": channel,
                "release": release,
                "version": spec.version,
                "source": source,
                "fetch": spec.fetch.to_string(),
                "metadata": spec.metadata,
                "chart": spec.chart,
            }))?
        ),
        OutputFormat::Text => {
            println!("channel: {channel}");
            println!("release: {}", release.as_deref().unwrap_or("latest"));
            println!("version: {}", spec.version);
            println!("source:  {source} ({})", spec.fetch);
            println!("values:  {} top-level keys", spec.values.values.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn mirror(args: MirrorArgs) -> anyhow::Result<ExitCode> {
    let mut settings = args.channel.settings()?;
    settings.source = Some(args.from.clone());
    let project = Project::open(&args.repo, &settings)?;
    let repo = args.repo.display().to_string();
    let wanted = mirror::wanted(&project, &args.names, &args.releases, &repo)?;
    let failed = mirror::mirror(&project, &wanted, &args.to, |event| match event {
        Event::Mirrored {
            channel,
            version,
            path,
        } => eprintln!("mirrored {channel} {version} → {}", path.display()),
        Event::Failed {
            channel,
            release,
            error,
        } => {
            let release = release.map(|r| format!(" release `{r}`"));
            eprintln!(
                "error: channel `{channel}`{}: {error}",
                release.unwrap_or_default()
            );
        }
    })?;
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
