use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::{ChannelArgs, OutputFormat, RepoArgs};
use crate::names::{self, NameKind};
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

fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), text)?;
    tmp.persist(path)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

fn mirror(args: MirrorArgs) -> anyhow::Result<ExitCode> {
    let mut settings = args.channel.settings()?;
    settings.source = Some(args.from.clone());
    let project = Project::open(&args.repo, &settings)?;
    let mut wanted: Vec<(String, Option<String>, String)> = args
        .names
        .iter()
        .map(|n| (n.clone(), None, "`--name`".to_string()))
        .collect();
    for pin in &args.releases {
        let (channel, release) = pin
            .split_once('=')
            .context("`--release`: write it as CHANNEL=RELEASE")?;
        wanted.push((
            channel.to_string(),
            Some(release.to_string()),
            "`--release`".to_string(),
        ));
    }
    if wanted.is_empty() {
        wanted = project
            .channels_in_use()?
            .into_iter()
            .map(|(c, r)| (c, r, format!("`{}`", args.repo.display())))
            .collect();
    }
    // Every name becomes a path below `--to`: check them all before writing any.
    for (channel, release, origin) in &wanted {
        names::check(NameKind::Channel, channel, origin)?;
        if let Some(release) = release {
            names::check(NameKind::Release, release, origin)?;
        }
    }
    let mut failed = 0;
    for (channel, release, origin) in &wanted {
        let spec = match project.channel_spec(channel, release.as_deref(), origin) {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "error: channel `{channel}`{}: {e}",
                    release
                        .as_deref()
                        .map(|r| format!(" release `{r}`"))
                        .unwrap_or_default()
                );
                failed += 1;
                continue;
            }
        };
        let rel = match release {
            Some(r) => format!("{channel}/releases/{r}.json"),
            None => format!("{channel}.json"),
        };
        // The exact bytes as served, so that signatures still verify.
        write_atomic(&args.to.join(&rel), &spec.raw)?;
        if let Some(sig) = &spec.signature {
            write_atomic(&args.to.join(format!("{rel}.sig")), &format!("{sig}\n"))?;
        }
        eprintln!(
            "mirrored {channel} {} → {}",
            spec.version,
            args.to.join(&rel).display()
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
