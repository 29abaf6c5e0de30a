//! A commit of the config repository, read as a [`crate::tree::Store`]: each
//! file is read from the object database when hydrant asks for it, so a
//! cycle costs what hydrant reads (settings, templates, environments, the
//! channel directory), not what the repository holds beside them.
//! The rules for links and sizes are [`crate::tree::Linked`]'s.

use std::path::Path;
use std::sync::Mutex;

use git2::{ObjectType, Oid, Repository};

use crate::tree::{Entry, Linked, Store, TreeError};

/// A commit's tree, read on demand.
pub type Snapshot = Linked<CommitStore>;

pub struct CommitStore {
    /// Its own handle on the clone: git2 handles are not shared across threads.
    repo: Mutex<Repository>,
    tree: Oid,
    /// How the commit is shown in errors (`main@1a2b3c4d5e6f`).
    shown: String,
}

impl CommitStore {
    pub(super) fn open(
        git_dir: &Path,
        tree: Oid,
        shown: String,
    ) -> Result<CommitStore, git2::Error> {
        Ok(CommitStore {
            repo: Mutex::new(Repository::open_bare(git_dir)?),
            tree,
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
        let repo = self
            .repo
            .lock()
            .map_err(|_| self.error(path, "the repository handle is poisoned"))?;
        f(&repo).map_err(|e| self.error(path, e.message()))
    }
}

/// The entry of a tree entry, reading a link's target (a small blob).
fn entry_of(
    repo: &Repository,
    mode: i32,
    kind: Option<ObjectType>,
    id: Oid,
) -> Result<Option<Entry>, git2::Error> {
    Ok(match kind {
        Some(ObjectType::Tree) => Some(Entry::Dir),
        Some(ObjectType::Blob) if mode == 0o120000 => {
            let blob = repo.find_blob(id)?;
            Some(Entry::Link(
                String::from_utf8_lossy(blob.content()).into_owned(),
            ))
        }
        Some(ObjectType::Blob) => {
            let (size, _) = repo.odb()?.read_header(id)?;
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
        self.with_repo(path, |repo| {
            let root = repo.find_tree(self.tree)?;
            match root.get_path(Path::new(path)) {
                Ok(e) => entry_of(repo, e.filemode(), e.kind(), e.id()),
                Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn entries(&self, dir: &str) -> Result<Vec<(String, Entry)>, TreeError> {
        self.with_repo(dir, |repo| {
            let root = repo.find_tree(self.tree)?;
            let tree = if dir.is_empty() {
                root
            } else {
                repo.find_tree(root.get_path(Path::new(dir))?.id())?
            };
            let mut out = Vec::new();
            for e in tree.iter() {
                let Ok(name) = e.name() else { continue };
                if let Some(entry) = entry_of(repo, e.filemode(), e.kind(), e.id())? {
                    out.push((name.to_string(), entry));
                }
            }
            Ok(out)
        })
    }

    fn content(&self, path: &str, limit: u64) -> Result<Vec<u8>, TreeError> {
        self.with_repo(path, |repo| {
            let id = repo.find_tree(self.tree)?.get_path(Path::new(path))?.id();
            let blob = repo.find_blob(id)?;
            let end = usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .min(blob.content().len());
            Ok(blob.content()[..end].to_vec())
        })
    }
}
