//! Channel specs from a file or a directory (a bundled or mirrored channel).
//!
//! A directory holds `<channel>.yaml` (or `.yml`, `.json`) for the latest spec
//! of each channel and, for pinned releases, `<channel>/releases/<id>.yaml`.
//! A single file serves as the spec of whichever channel is asked for.

use std::sync::Arc;

use super::{ChannelError, ChannelSpec, Source, Verifier, parse_spec};
use crate::tree::{Kind, Tree};

/// The extensions of a spec file, in the order a directory is read.
pub const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

pub struct FileSource {
    tree: Arc<dyn Tree>,
    /// A directory or a file inside `tree` ("" for the tree's root).
    base: String,
    shown: String,
    verifier: Option<Verifier>,
}

impl FileSource {
    /// Specs at `base` inside `tree`; `shown` is how the source appears in messages.
    pub fn new(tree: Arc<dyn Tree>, base: &str, shown: String) -> FileSource {
        FileSource {
            tree,
            base: base.trim_end_matches('/').to_string(),
            shown,
            verifier: None,
        }
    }

    /// Requires every spec to carry a valid signature in `<file>.sig`.
    pub fn verified_by(mut self, verifier: Option<Verifier>) -> FileSource {
        self.verifier = verifier;
        self
    }

    fn join(&self, rel: &str) -> String {
        if self.base.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.base)
        }
    }

    fn read(&self, channel: &str, path: &str, shown: &str) -> Result<ChannelSpec, ChannelError> {
        let text = self
            .tree
            .read(path)
            .map_err(|e| ChannelError::Invalid {
                origin: shown.to_string(),
                message: e.to_string(),
            })?
            .ok_or_else(|| ChannelError::Io {
                path: shown.to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            })?;
        let mut signature = None;
        if let Some(verifier) = &self.verifier {
            let refused = |message: String| ChannelError::Invalid {
                origin: shown.to_string(),
                message,
            };
            let sig = self
                .tree
                .read(&format!("{path}.sig"))
                .map_err(|e| refused(e.to_string()))?
                .ok_or_else(|| refused(format!("the spec is not signed: no `{shown}.sig`")))?;
            verifier.verify(text.as_bytes(), &sig).map_err(refused)?;
            signature = Some(sig.trim().to_string());
        }
        let mut spec = parse_spec(channel, shown, &text)?;
        spec.signature = signature;
        Ok(spec)
    }

    /// The first of `<stem>.yaml`, `.yml`, `.json` that exists, with its shown name.
    fn first_existing(&self, stem: &str) -> Option<(String, String)> {
        EXTENSIONS.iter().find_map(|ext| {
            let rel = format!("{stem}.{ext}");
            (self.tree.kind(&self.join(&rel)) == Some(Kind::File)).then(|| {
                (
                    self.join(&rel),
                    format!("{}/{rel}", self.shown.trim_end_matches('/')),
                )
            })
        })
    }

    fn candidates(stem: &str) -> String {
        EXTENSIONS
            .iter()
            .map(|e| format!("`{stem}.{e}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The channels a directory holds.
    fn known(&self) -> Vec<String> {
        self.tree
            .list(&self.base)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, kind)| *kind == Kind::File)
            .filter_map(|(name, _)| {
                let (stem, ext) = name.rsplit_once('.')?;
                EXTENSIONS.contains(&ext).then(|| stem.to_string())
            })
            .collect()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.')
}

impl Source for FileSource {
    fn fetch(&self, channel: &str, release: Option<&str>) -> Result<ChannelSpec, ChannelError> {
        for name in std::iter::once(channel).chain(release) {
            if !valid_name(name) {
                return Err(ChannelError::Invalid {
                    origin: self.shown.clone(),
                    message: format!(
                        "`{name}` is not a valid channel or release name (letters, digits, `-`, `_`, `.`)"
                    ),
                });
            }
        }
        match self.tree.kind(&self.base) {
            Some(Kind::File) => {
                let spec = self.read(channel, &self.base, &self.shown)?;
                return match release {
                    Some(r) if r != spec.version => Err(ChannelError::ReleaseNotFound {
                        channel: channel.to_string(),
                        release: r.to_string(),
                        source_name: self.shown.clone(),
                        looked_for: format!(
                            "version `{r}` in `{}`, which holds `{}`",
                            self.shown, spec.version
                        ),
                    }),
                    _ => Ok(spec),
                };
            }
            Some(Kind::Dir) => {}
            None => {
                return Err(ChannelError::Io {
                    path: self.shown.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such file or directory",
                    ),
                });
            }
        }
        if let Some(release) = release {
            if let Some((path, shown)) =
                self.first_existing(&format!("{channel}/releases/{release}"))
            {
                return self.read(channel, &path, &shown);
            }
            // The latest spec may be the pinned release itself.
            if let Some((path, shown)) = self.first_existing(channel) {
                let spec = self.read(channel, &path, &shown)?;
                if spec.version == release {
                    return Ok(spec);
                }
            }
            return Err(ChannelError::ReleaseNotFound {
                channel: channel.to_string(),
                release: release.to_string(),
                source_name: self.shown.clone(),
                looked_for: Self::candidates(&format!("{channel}/releases/{release}")),
            });
        }
        match self.first_existing(channel) {
            Some((path, shown)) => self.read(channel, &path, &shown),
            None => Err(ChannelError::NotFound {
                channel: channel.to_string(),
                source_name: self.shown.clone(),
                looked_for: Self::candidates(channel),
                known: self.known(),
            }),
        }
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("stable.yaml"),
            "metadata: {version: 1.0.0}\nvalues: {a: 1}\n",
        )
        .unwrap();
        std::fs::create_dir_all(d.path().join("stable/releases")).unwrap();
        std::fs::write(
            d.path().join("stable/releases/0.9.0.json"),
            r#"{"metadata": {"version": "0.9.0"}, "values": {"a": 0}}"#,
        )
        .unwrap();
        d
    }

    #[test]
    fn a_directory_serves_latest_and_pinned_releases() {
        let d = dir();
        let s = FileSource::new(
            Arc::new(crate::tree::DiskTree::new(d.path()).unwrap()),
            "",
            "channels".into(),
        );
        assert_eq!(s.fetch("stable", None).unwrap().version, "1.0.0");
        assert_eq!(s.fetch("stable", Some("0.9.0")).unwrap().version, "0.9.0");
        assert_eq!(s.fetch("stable", Some("1.0.0")).unwrap().version, "1.0.0");
        let err = s.fetch("stable", Some("0.1.0")).unwrap_err();
        assert!(err.to_string().contains("release `0.1.0`"), "{err}");
    }

    #[test]
    fn an_unknown_channel_lists_the_known_ones() {
        let d = dir();
        let s = FileSource::new(
            Arc::new(crate::tree::DiskTree::new(d.path()).unwrap()),
            "",
            "channels".into(),
        );
        let err = s.fetch("beta", None).unwrap_err().to_string();
        assert!(
            err.contains("`beta`") && err.contains("channels there: stable"),
            "{err}"
        );
    }

    #[test]
    fn channel_names_cannot_leave_the_directory() {
        let d = dir();
        let s = FileSource::new(
            Arc::new(crate::tree::DiskTree::new(d.path()).unwrap()),
            "",
            "channels".into(),
        );
        assert!(s.fetch("../etc/passwd", None).is_err());
        assert!(s.fetch("stable", Some("../../x")).is_err());
    }
}
