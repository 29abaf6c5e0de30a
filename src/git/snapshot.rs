//! A commit of the config repository, read as a [`crate::tree::Store`]: each
//! file is read from the object database when hydrant asks for it, so a
//! cycle costs what hydrant reads (settings, templates, environments, the
//! channel directory), not what the repository holds beside them.
//! The rules for links and sizes are [`crate::tree::Linked`]'s.
//!
//! Each directory is read from git once per snapshot and kept by its path, so
//! that reading a file looks its name up in its directory rather than walking
//! the commit's tree from the root; and each thread that reads at the same
//! time has its own handle on the clone.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use git2::{ObjectType, Oid, Repository};

use super::GitError;

use crate::tree::{Entry, Linked, Store, TreeError};

/// A commit's tree, read on demand.
pub type Snapshot = Linked<CommitStore>;

/// Handles on a clone, for reading it from several threads: git2 handles are
/// not shared across threads, so a read takes one (or opens one) and puts it
/// back.
pub struct Handles {
    git_dir: PathBuf,
    /// The handles not in use.
    idle: Mutex<Vec<Repository>>,
}

impl Handles {
    pub(super) fn open(git_dir: &Path) -> Result<Handles, git2::Error> {
        let repo = Repository::open_bare(git_dir)?;
        Ok(Handles {
            git_dir: git_dir.to_path_buf(),
            idle: Mutex::new(vec![repo]),
        })
    }

    /// Runs `f` with a handle of its own.
    fn with<T>(
        &self,
        f: impl FnOnce(&Repository) -> Result<T, git2::Error>,
    ) -> Result<T, git2::Error> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let repo = match idle {
            Some(repo) => repo,
            None => Repository::open_bare(&self.git_dir)?,
        };
        let result = f(&repo);
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(repo);
        result
    }
}

/// The directories of `rendered/` in one commit, read from several threads:
/// `rendered/` is listed once (at 10,000 environments its tree is some
/// 400 KB, too costly to read again for each one).
pub struct RenderedDirs {
    handles: Handles,
    /// Each environment's directory, by name.
    dirs: HashMap<String, Oid>,
}

impl RenderedDirs {
    pub(super) fn open(git_dir: &Path, commit: Oid) -> Result<RenderedDirs, git2::Error> {
        let handles = Handles::open(git_dir)?;
        let dirs = handles.with(|repo| {
            let tree = repo.find_commit(commit)?.tree()?;
            let mut dirs = HashMap::new();
            let Ok(entry) = tree.get_path(Path::new("rendered")) else {
                return Ok(dirs);
            };
            if let Some(rendered) = entry.to_object(repo)?.as_tree() {
                for e in rendered.iter() {
                    if let (Ok(name), Some(ObjectType::Tree)) = (e.name(), e.kind()) {
                        dirs.insert(name.to_string(), e.id());
                    }
                }
            }
            Ok(dirs)
        })?;
        Ok(RenderedDirs { handles, dirs })
    }

    /// The files of `rendered/<env>/`, as
    /// [`super::Workspace::rendered_files`] reads them.
    pub fn files(&self, env: &str) -> Result<BTreeMap<String, String>, GitError> {
        let Some(id) = self.dirs.get(env) else {
            return Ok(BTreeMap::new());
        };
        Ok(self
            .handles
            .with(|repo| super::workspace::files_of(repo, *id))?)
    }
}

pub struct CommitStore {
    handles: Handles,
    tree: Oid,
    /// The directories read so far, by path (`""` is the root).
    dirs: Mutex<HashMap<String, Arc<Dir>>>,
    /// How the commit is shown in errors (`main@1a2b3c4d5e6f`).
    shown: String,
}

/// A directory's entries, by name.
type Dir = HashMap<String, Raw>;

/// The mode git gives a symbolic link.
const LINK_MODE: i32 = 0o120000;

/// A tree entry as git holds it.
#[derive(Debug, Clone, Copy)]
struct Raw {
    mode: i32,
    kind: Option<ObjectType>,
    id: Oid,
}

impl CommitStore {
    pub(super) fn open(
        git_dir: &Path,
        tree: Oid,
        shown: String,
    ) -> Result<CommitStore, git2::Error> {
        Ok(CommitStore {
            handles: Handles::open(git_dir)?,
            tree,
            dirs: Mutex::new(HashMap::new()),
            shown,
        })
    }

    fn error(&self, path: &str, e: impl std::fmt::Display) -> TreeError {
        TreeError::Io {
            path: format!("{}:{path}", self.shown),
            source: std::io::Error::other(e.to_string()),
        }
    }

    fn with_repo<T>(
        &self,
        path: &str,
        f: impl FnOnce(&Repository) -> Result<T, git2::Error>,
    ) -> Result<T, TreeError> {
        self.handles
            .with(f)
            .map_err(|e| self.error(path, e.message()))
    }

    /// The directory at `path`, read once; `None` when there is none.
    fn dir(&self, path: &str) -> Result<Option<Arc<Dir>>, TreeError> {
        let known = self
            .dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .cloned();
        if let Some(dir) = known {
            return Ok(Some(dir));
        }
        let id = if path.is_empty() {
            self.tree
        } else {
            match self.raw(path)? {
                Some(Raw {
                    kind: Some(ObjectType::Tree),
                    id,
                    ..
                }) => id,
                _ => return Ok(None),
            }
        };
        let dir = self.with_repo(path, |repo| {
            let tree = repo.find_tree(id)?;
            let mut dir = Dir::with_capacity(tree.len());
            for e in tree.iter() {
                let Ok(name) = e.name() else { continue };
                let raw = Raw {
                    mode: e.filemode(),
                    kind: e.kind(),
                    id: e.id(),
                };
                dir.insert(name.to_string(), raw);
            }
            Ok(Arc::new(dir))
        })?;
        self.dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_string(), dir.clone());
        Ok(Some(dir))
    }

    /// The tree entry at `path` (not the root), if there is one.
    fn raw(&self, path: &str) -> Result<Option<Raw>, TreeError> {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        Ok(self.dir(parent)?.and_then(|dir| dir.get(name).copied()))
    }
}

/// The entry of a tree entry, reading a link's target (a small blob).
fn entry_of(repo: &Repository, raw: Raw) -> Result<Option<Entry>, git2::Error> {
    Ok(match raw.kind {
        Some(ObjectType::Tree) => Some(Entry::Dir),
        Some(ObjectType::Blob) if raw.mode == LINK_MODE => {
            let blob = repo.find_blob(raw.id)?;
            Some(Entry::Link(
                String::from_utf8_lossy(blob.content()).into_owned(),
            ))
        }
        Some(ObjectType::Blob) => {
            let (size, _) = repo.odb()?.read_header(raw.id)?;
            Some(Entry::File(size as u64))
        }
        // A submodule (a commit) holds nothing hydrant reads.
        _ => None,
    })
}

impl Store for CommitStore {
    fn entry(&self, path: &str) -> Result<Option<Entry>, TreeError> {
        if path.is_empty() {
            return Ok(Some(Entry::Dir));
        }
        match self.raw(path)? {
            None => Ok(None),
            Some(Raw {
                kind: Some(ObjectType::Tree),
                ..
            }) => Ok(Some(Entry::Dir)),
            Some(raw) => self.with_repo(path, |repo| entry_of(repo, raw)),
        }
    }

    fn entries(&self, dir: &str) -> Result<Vec<(String, Entry)>, TreeError> {
        let listed = self
            .dir(dir)?
            .ok_or_else(|| self.error(dir, "no such directory"))?;
        self.with_repo(dir, |repo| {
            let mut out = Vec::with_capacity(listed.len());
            for (name, raw) in listed.iter() {
                if let Some(entry) = entry_of(repo, *raw)? {
                    out.push((name.clone(), entry));
                }
            }
            Ok(out)
        })
    }

    fn dir_id(&self, dir: &str) -> Option<String> {
        match self.raw(dir).ok()?? {
            Raw {
                kind: Some(ObjectType::Tree),
                id,
                ..
            } => Some(id.to_string()),
            _ => None,
        }
    }

    fn holds_link(&self, dir: &str) -> bool {
        match self.dir(dir) {
            Ok(Some(entries)) => entries.values().any(|raw| raw.mode == LINK_MODE),
            _ => true,
        }
    }

    fn content(&self, path: &str, limit: u64) -> Result<Vec<u8>, TreeError> {
        let raw = self
            .raw(path)?
            .ok_or_else(|| self.error(path, "no such file"))?;
        self.with_repo(path, |repo| {
            let blob = repo.find_blob(raw.id)?;
            let end = usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .min(blob.content().len());
            Ok(blob.content()[..end].to_vec())
        })
    }
}
