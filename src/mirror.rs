//! `hydrant channel mirror`: copies channel specs (latest and pinned
//! releases) into a directory that `--channel DIR` reads, for installations
//! without egress. It writes the exact bytes as served (and their
//! signatures), so that a verifying reader still verifies them. It says
//! what it did through [`Event`]s and prints nothing.

use std::path::{Path, PathBuf};

use crate::channel::{ChannelSpec, EXTENSIONS};
use crate::names::{self, NameError, NameKind};
use crate::project::{Project, ProjectError};
use crate::repo::RepoError;

/// A spec to copy: a channel's latest (no release) or a pinned release, and
/// where the names came from, for the error when one breaks the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub channel: String,
    pub release: Option<String>,
    pub origin: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("`--release`: write it as CHANNEL=RELEASE")]
    ReleaseForm,
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(
        "{} hold one channel spec in two formats, and a reader sees only the first: remove all but one, then mirror again",
        files.iter().map(|f| format!("`{}`", f.display())).collect::<Vec<_>>().join(" and ")
    )]
    TwoFormats { files: Vec<PathBuf> },
    #[error("cannot write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the mirror did with one spec.
#[derive(Debug)]
pub enum Event {
    /// The spec of `channel` at `version` was written to `path`.
    Mirrored {
        channel: String,
        version: String,
        path: PathBuf,
    },
    /// The spec could not be fetched; the others are still copied.
    Failed {
        channel: String,
        release: Option<String>,
        error: ProjectError,
    },
}

/// The specs to copy: the channels `names` and the `CHANNEL=RELEASE` pins of
/// `releases`, or, when both are empty, every channel and pinned release the
/// project's environments use (`repo` names the project in errors).
pub fn wanted(
    project: &Project,
    names: &[String],
    releases: &[String],
    repo: &str,
) -> Result<Vec<Wanted>, MirrorError> {
    let mut wanted: Vec<Wanted> = names
        .iter()
        .map(|n| Wanted {
            channel: n.clone(),
            release: None,
            origin: "`--name`".to_string(),
        })
        .collect();
    for pin in releases {
        let (channel, release) = pin.split_once('=').ok_or(MirrorError::ReleaseForm)?;
        wanted.push(Wanted {
            channel: channel.to_string(),
            release: Some(release.to_string()),
            origin: "`--release`".to_string(),
        });
    }
    if wanted.is_empty() {
        wanted = project
            .channels_in_use()?
            .into_iter()
            .map(|(channel, release)| Wanted {
                channel,
                release,
                origin: format!("`{repo}`"),
            })
            .collect();
    }
    Ok(wanted)
}

/// Copies each of `wanted` below `to` as `<channel>.json` or
/// `<channel>/releases/<release>.json` (with `.sig` beside it when signed),
/// or in the format of the file already there (`.yaml`, `.yml`).
/// Every name becomes a path below `to`, so all are checked before any is
/// written. Returns how many could not be fetched.
pub fn mirror(
    project: &Project,
    wanted: &[Wanted],
    to: &Path,
    mut on_event: impl FnMut(Event),
) -> Result<usize, MirrorError> {
    for w in wanted {
        names::check(NameKind::Channel, &w.channel, &w.origin)?;
        if let Some(release) = &w.release {
            names::check(NameKind::Release, release, &w.origin)?;
        }
    }
    let mut failed = 0;
    for w in wanted {
        let spec = match project.channel_spec(&w.channel, w.release.as_deref(), &w.origin) {
            Ok(s) => s,
            Err(error) => {
                on_event(Event::Failed {
                    channel: w.channel.clone(),
                    release: w.release.clone(),
                    error,
                });
                failed += 1;
                continue;
            }
        };
        let path = write_spec(&spec, w, to)?;
        on_event(Event::Mirrored {
            channel: w.channel.clone(),
            version: spec.version,
            path,
        });
    }
    Ok(failed)
}

/// Writes one spec (and its signature) below `to`; returns the spec's path.
///
/// A reader takes `<stem>.yaml` before `.yml` before `.json`, so a second
/// format beside the first would hide the mirrored spec: the file already
/// there is overwritten in its own format (the bytes as served are JSON, which
/// is YAML too), and two formats already side by side are refused.
fn write_spec(spec: &ChannelSpec, w: &Wanted, to: &Path) -> Result<PathBuf, MirrorError> {
    let stem = match &w.release {
        Some(r) => format!("{}/releases/{r}", w.channel),
        None => w.channel.clone(),
    };
    let rel = format!("{stem}.{}", extension(to, &stem)?);
    let write = |path: PathBuf, text: &str| {
        crate::output::write_file(&path, text).map_err(|source| MirrorError::Write {
            path: path.clone(),
            source,
        })
    };
    // The exact bytes as served, so that signatures still verify.
    write(to.join(&rel), &spec.raw)?;
    if let Some(sig) = &spec.signature {
        write(to.join(format!("{rel}.sig")), &format!("{sig}\n"))?;
    }
    Ok(to.join(rel))
}

/// The extension to write `<stem>` with below `to`: the one of the file
/// already there, else `json`.
fn extension(to: &Path, stem: &str) -> Result<&'static str, MirrorError> {
    let there: Vec<&'static str> = EXTENSIONS
        .into_iter()
        .filter(|ext| to.join(format!("{stem}.{ext}")).is_file())
        .collect();
    match there.as_slice() {
        [] => Ok("json"),
        [one] => Ok(one),
        [..] => Err(MirrorError::TwoFormats {
            files: there
                .iter()
                .map(|ext| to.join(format!("{stem}.{ext}")))
                .collect(),
        }),
    }
}
