//! Channel specs from a file or a directory (a bundled or mirrored channel).
//!
//! A directory holds `<channel>.yaml` (or `.yml`, `.json`) for the latest spec
//! of each channel and, for pinned releases, `<channel>/releases/<id>.yaml`.
//! A single file serves as the spec of whichever channel is asked for.

use std::path::{Path, PathBuf};

use super::{ChannelError, ChannelSpec, Source, parse_spec};

const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

pub struct FileSource {
    path: PathBuf,
    shown: String,
}

impl FileSource {
    /// `shown` is how the path appears in messages (relative to the repository).
    pub fn new(path: PathBuf, shown: String) -> FileSource {
        FileSource { path, shown }
    }

    fn read(&self, channel: &str, path: &Path) -> Result<ChannelSpec, ChannelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ChannelError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let shown = match path.strip_prefix(&self.path) {
            Ok(rel) if !rel.as_os_str().is_empty() => {
                format!("{}/{}", self.shown.trim_end_matches('/'), rel.display())
            }
            _ => self.shown.clone(),
        };
        parse_spec(channel, &shown, &text)
    }

    fn first_existing(&self, stem: &Path) -> Option<PathBuf> {
        EXTENSIONS
            .iter()
            .map(|ext| {
                let mut name = stem.as_os_str().to_owned();
                name.push(format!(".{ext}"));
                PathBuf::from(name)
            })
            .find(|p| p.is_file())
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
        let mut names: Vec<String> = std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let p = e.path();
                let ext = p.extension()?.to_str()?;
                EXTENSIONS
                    .contains(&ext)
                    .then(|| p.file_stem()?.to_str().map(String::from))?
            })
            .collect();
        names.sort();
        names
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
        if self.path.is_file() {
            let spec = self.read(channel, &self.path)?;
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
        if !self.path.is_dir() {
            return Err(ChannelError::Io {
                path: self.shown.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file or directory",
                ),
            });
        }
        if let Some(release) = release {
            let stem = self.path.join(channel).join("releases").join(release);
            if let Some(path) = self.first_existing(&stem) {
                return self.read(channel, &path);
            }
            // The latest spec may be the pinned release itself.
            if let Some(path) = self.first_existing(&self.path.join(channel)) {
                let spec = self.read(channel, &path)?;
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
        match self.first_existing(&self.path.join(channel)) {
            Some(path) => self.read(channel, &path),
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
        let s = FileSource::new(d.path().to_path_buf(), "channels".into());
        assert_eq!(s.fetch("stable", None).unwrap().version, "1.0.0");
        assert_eq!(s.fetch("stable", Some("0.9.0")).unwrap().version, "0.9.0");
        assert_eq!(s.fetch("stable", Some("1.0.0")).unwrap().version, "1.0.0");
        let err = s.fetch("stable", Some("0.1.0")).unwrap_err();
        assert!(err.to_string().contains("release `0.1.0`"), "{err}");
    }

    #[test]
    fn an_unknown_channel_lists_the_known_ones() {
        let d = dir();
        let s = FileSource::new(d.path().to_path_buf(), "channels".into());
        let err = s.fetch("beta", None).unwrap_err().to_string();
        assert!(
            err.contains("`beta`") && err.contains("channels there: stable"),
            "{err}"
        );
    }

    #[test]
    fn channel_names_cannot_leave_the_directory() {
        let d = dir();
        let s = FileSource::new(d.path().to_path_buf(), "channels".into());
        assert!(s.fetch("../etc/passwd", None).is_err());
        assert!(s.fetch("stable", Some("../../x")).is_err());
    }
}
