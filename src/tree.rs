//! The files of a config repository, wherever they are: a directory on disk
//! (`hydrant render` reads the working tree as it is) or a commit loaded into
//! memory (`hydrant reconcile` reads the base branch, never a checkout).
//!
//! Paths are relative, `/`-separated and may not climb out (`..`) or be
//! absolute. A symbolic link is followed only while it stays inside the tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(
        "`{path}` is a link to `{target}`, outside the config repository; hydrant reads only files inside it"
    )]
    OutsideRepo { path: String, target: String },
    #[error("`{path}` is not a safe path inside the config repository")]
    BadPath { path: String },
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
}

pub trait Tree: Send + Sync {
    /// A file's text; `None` when there is no such file.
    fn read(&self, path: &str) -> Result<Option<String>, TreeError>;
    /// What is at `path`, if anything.
    fn kind(&self, path: &str) -> Option<Kind>;
    /// The entries of a directory, sorted by name; empty when it does not exist.
    fn list(&self, dir: &str) -> Result<Vec<(String, Kind)>, TreeError>;
}

/// Checks a relative path and returns its components.
fn components(path: &str) -> Result<Vec<&str>, TreeError> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let bad = path.starts_with('/') || path.contains('\0') || parts.contains(&"..");
    if bad {
        return Err(TreeError::BadPath {
            path: path.to_string(),
        });
    }
    Ok(parts)
}

/// A directory on disk.
pub struct DiskTree {
    root: PathBuf,
    canonical_root: PathBuf,
}

impl DiskTree {
    pub fn new(root: &Path) -> std::io::Result<DiskTree> {
        Ok(DiskTree {
            root: root.to_path_buf(),
            canonical_root: root.canonicalize()?,
        })
    }

    fn resolve(&self, path: &str) -> Result<PathBuf, TreeError> {
        let mut p = self.root.clone();
        p.extend(components(path)?);
        Ok(p)
    }
}

impl Tree for DiskTree {
    fn read(&self, path: &str) -> Result<Option<String>, TreeError> {
        let full = self.resolve(path)?;
        let io = |source| TreeError::Io {
            path: path.to_string(),
            source,
        };
        match std::fs::symlink_metadata(&full) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
            Ok(_) => {}
        }
        // Any link on the way (the file or a directory above it) must stay inside.
        let target = full.canonicalize().map_err(io)?;
        if !target.starts_with(&self.canonical_root) {
            return Err(TreeError::OutsideRepo {
                path: path.to_string(),
                target: target.display().to_string(),
            });
        }
        std::fs::read_to_string(&target).map(Some).map_err(io)
    }

    fn kind(&self, path: &str) -> Option<Kind> {
        let meta = std::fs::metadata(self.resolve(path).ok()?).ok()?;
        Some(if meta.is_dir() { Kind::Dir } else { Kind::File })
    }

    fn list(&self, dir: &str) -> Result<Vec<(String, Kind)>, TreeError> {
        let full = self.resolve(dir)?;
        let entries = match std::fs::read_dir(&full) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(TreeError::Io {
                    path: dir.to_string(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(String::from) else {
                continue;
            };
            let is_dir = std::fs::metadata(entry.path())
                .map(|m| m.is_dir())
                .unwrap_or(false);
            out.push((name, if is_dir { Kind::Dir } else { Kind::File }));
        }
        out.sort();
        Ok(out)
    }
}

/// Files held in memory, as read from a commit. Links are kept as links.
#[derive(Debug, Default, Clone)]
pub struct MemTree {
    files: BTreeMap<String, String>,
    links: BTreeMap<String, String>,
}

impl MemTree {
    pub fn insert_file(&mut self, path: String, text: String) {
        self.files.insert(path, text);
    }

    pub fn insert_link(&mut self, path: String, target: String) {
        self.links.insert(path, target);
    }

    /// Follows links until a file path, refusing any that leave the tree.
    fn follow(&self, path: &str) -> Result<String, TreeError> {
        let mut current = components(path)?.join("/");
        for _ in 0..16 {
            let Some(target) = self.links.get(&current) else {
                return Ok(current);
            };
            let outside = || TreeError::OutsideRepo {
                path: path.to_string(),
                target: target.clone(),
            };
            if target.starts_with('/') {
                return Err(outside());
            }
            let mut parts: Vec<&str> = current.split('/').collect();
            parts.pop();
            for part in target.split('/') {
                match part {
                    "" | "." => {}
                    ".." => {
                        if parts.pop().is_none() {
                            return Err(outside());
                        }
                    }
                    p => parts.push(p),
                }
            }
            current = parts.join("/");
        }
        Err(TreeError::BadPath {
            path: path.to_string(),
        })
    }
}

impl Tree for MemTree {
    fn read(&self, path: &str) -> Result<Option<String>, TreeError> {
        let resolved = self.follow(path)?;
        Ok(self.files.get(&resolved).cloned())
    }

    fn kind(&self, path: &str) -> Option<Kind> {
        let resolved = self.follow(path).ok()?;
        if self.files.contains_key(&resolved) {
            return Some(Kind::File);
        }
        let prefix = format!("{resolved}/");
        let is_dir = resolved.is_empty()
            || self
                .files
                .range(prefix.clone()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&prefix))
            || self
                .links
                .range(prefix.clone()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&prefix));
        is_dir.then_some(Kind::Dir)
    }

    fn list(&self, dir: &str) -> Result<Vec<(String, Kind)>, TreeError> {
        let dir = self.follow(dir)?;
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut out: BTreeMap<String, Kind> = BTreeMap::new();
        for key in self.files.keys().chain(self.links.keys()) {
            let Some(rest) = key.strip_prefix(&prefix) else {
                continue;
            };
            match rest.split_once('/') {
                Some((name, _)) => {
                    out.insert(name.to_string(), Kind::Dir);
                }
                None => {
                    let kind = self.kind(key).unwrap_or(Kind::File);
                    out.insert(rest.to_string(), kind);
                }
            }
        }
        Ok(out.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_climb_out() {
        for bad in ["../x", "a/../../x", "/etc/passwd", "a\0b"] {
            assert!(components(bad).is_err(), "{bad}");
        }
        assert_eq!(components("a/./b/").unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn a_memory_tree_lists_and_reads() {
        let mut t = MemTree::default();
        t.insert_file("environments/dev/environment.yaml".into(), "x".into());
        t.insert_file("hydrant.yaml".into(), "y".into());
        assert_eq!(
            t.list("").unwrap(),
            vec![
                ("environments".into(), Kind::Dir),
                ("hydrant.yaml".into(), Kind::File)
            ]
        );
        assert_eq!(t.kind("environments/dev"), Some(Kind::Dir));
        assert_eq!(
            t.read("environments/dev/environment.yaml")
                .unwrap()
                .as_deref(),
            Some("x")
        );
        assert_eq!(t.read("nope").unwrap(), None);
    }

    #[test]
    fn memory_links_resolve_inside_and_are_refused_outside() {
        let mut t = MemTree::default();
        t.insert_file("shared/values.yaml".into(), "v".into());
        t.insert_link(
            "environments/dev/values.yaml".into(),
            "../../shared/values.yaml".into(),
        );
        t.insert_link(
            "environments/prod/values.yaml".into(),
            "../../../etc/passwd".into(),
        );
        t.insert_link("environments/qa/values.yaml".into(), "/etc/passwd".into());
        assert_eq!(
            t.read("environments/dev/values.yaml").unwrap().as_deref(),
            Some("v")
        );
        assert!(matches!(
            t.read("environments/prod/values.yaml"),
            Err(TreeError::OutsideRepo { .. })
        ));
        assert!(matches!(
            t.read("environments/qa/values.yaml"),
            Err(TreeError::OutsideRepo { .. })
        ));
    }

    #[test]
    fn disk_links_leaving_the_tree_are_refused() {
        let inside = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), inside.path().join("link"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), inside.path().join("dirlink")).unwrap();
        let t = DiskTree::new(inside.path()).unwrap();
        assert!(matches!(t.read("link"), Err(TreeError::OutsideRepo { .. })));
        assert!(matches!(
            t.read("dirlink/secret"),
            Err(TreeError::OutsideRepo { .. })
        ));
    }
}
