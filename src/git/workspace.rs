//! The work directory: a bare clone, its lock, and the git operations hydrant needs.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use git2::{
    AutotagOption, Cred, CredentialType, Direction, FetchOptions, FetchPrune, ObjectType, Oid,
    PushOptions, RemoteCallbacks, Repository, Signature,
};

use super::{ENV_TRAILER, GitError, branch_name};

mod batch;

pub use batch::{Batch, RefUpdate};

/// What a directory of a commit holds (see [`Workspace::each_subdir`]).
pub struct Subdir {
    /// Each entry's name and object id (a sub-directory's id is prefixed
    /// `tree:`).
    pub entries: Vec<(String, String)>,
    /// The text of the file asked for, if the directory has it.
    pub file: Option<String>,
}

/// Below how many directories [`Workspace::each_subdir`] reads on one core.
const SUBDIRS_ON_ONE_CORE: usize = 512;

/// What the tree `id` holds, with the text of its file `file`.
fn read_subdir(repo: &Repository, id: Oid, file: &str) -> Result<Subdir, GitError> {
    let tree = repo.find_tree(id)?;
    let mut entries = Vec::with_capacity(tree.len());
    let mut text = None;
    for e in tree.iter() {
        let name = e.name().unwrap_or("");
        let id = match e.kind() {
            Some(ObjectType::Blob) => {
                if name == file {
                    let blob = repo.find_blob(e.id())?;
                    text = Some(String::from_utf8_lossy(blob.content()).into_owned());
                }
                e.id().to_string()
            }
            _ => format!("tree:{}", e.id()),
        };
        entries.push((name.to_string(), id));
    }
    Ok(Subdir {
        entries,
        file: text,
    })
}

/// How hydrant authenticates to the remote. `Debug` never shows the token.
#[derive(Clone, Default)]
pub struct Credentials {
    /// HTTPS token, sent as the password of `username`.
    pub token: Option<crate::auth::Token>,
    pub username: String,
    /// SSH private key for `ssh://` remotes.
    pub ssh_key: Option<PathBuf>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("username", &self.username)
            .field("ssh_key", &self.ssh_key)
            .finish()
    }
}

/// What a fetch found.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub base_branch: String,
    pub base_commit: Oid,
}

/// The tip of a `hydrant/<env>` branch on the remote.
#[derive(Debug, Clone)]
pub struct Tip {
    pub commit: Oid,
    pub tree: Oid,
    pub parents: Vec<Oid>,
    /// Made by hydrant for this environment (carries the trailer).
    pub is_hydrant: bool,
    pub author: String,
}

/// One commit of a branch above its base, as [`Workspace::commits_above`]
/// lists it.
#[derive(Debug, Clone)]
pub struct BranchCommit {
    pub commit: Oid,
    pub tree: Oid,
    pub parents: Vec<Oid>,
    pub author: String,
    pub message: String,
}

pub struct Workspace {
    /// The work directory.
    dir: PathBuf,
    repo: Repository,
    /// The remote as shown to people: a URL without credentials, or a path.
    url: String,
    creds: Credentials,
    /// The git directory of a remote on this machine (a path or a `file://`
    /// URL), found once: where a killed push may have left a ref lock.
    local_git_dir: Option<PathBuf>,
    /// That remote, opened at its first push without hooks and kept for the
    /// cycle's other pushes.
    local_remote: std::cell::OnceCell<Repository>,
    _lock: File,
}

const REMOTE: &str = "origin";

/// A remote URL as git takes it: URLs as they are, local paths made absolute.
fn remote_url(repo: &str) -> Result<String, GitError> {
    if repo.contains("://")
        || (repo.contains('@') && repo.contains(':') && !Path::new(repo).exists())
    {
        return Ok(repo.to_string());
    }
    let path = Path::new(repo)
        .canonicalize()
        .map_err(|e| GitError::Unreachable {
            url: repo.to_string(),
            message: e.to_string(),
            source: None,
        })?;
    Ok(path.display().to_string())
}

/// The git directory of a remote on this machine (a path or a `file://` URL).
fn local_git_dir(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("file://").unwrap_or(url);
    if path.contains("://") || !Path::new(path).exists() {
        return None;
    }
    Repository::open(path).ok().map(|r| r.path().to_path_buf())
}

/// Takes the work directory's lock, waiting up to `timeout` for another run.
fn lock(dir: &Path, timeout: Duration) -> Result<File, GitError> {
    let path = dir.join("hydrant.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| GitError::WorkDir {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
    let start = Instant::now();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                if start.elapsed() >= timeout {
                    return Err(GitError::Locked {
                        path: path.display().to_string(),
                        waited_secs: start.elapsed().as_secs(),
                    });
                }
                if !told {
                    tracing::warn!(lock = %path.display(), "another hydrant run is using the work directory; waiting");
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(GitError::WorkDir {
                    path: path.display().to_string(),
                    message: e.to_string(),
                });
            }
        }
    }
}

/// Removes the `.lock` files that a run killed while it updated a ref (or
/// the config) left in the clone below `dir`: git refuses to update a locked
/// ref, so one left behind would fail every later run. Only the holder of the
/// work directory's lock calls this, so no other run is writing them.
fn remove_stale_locks(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let (path, name) = (entry.path(), entry.file_name());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if name != "objects" {
                remove_stale_locks(&path);
            }
        } else if name.to_string_lossy().ends_with(".lock") {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::warn!(path = %path.display(), "removed a lock file left by a run that was stopped")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a lock file left by a run that was stopped")
                }
            }
        }
    }
}

/// How long a ref lock may stand before it is taken for one that a killed
/// process left: git holds one for milliseconds while it moves the ref.
const STALE_LOCK: Duration = Duration::from_secs(2);

/// Removes a ref's lock in a repository on this machine once it is stale.
/// Left by a process killed while it moved the ref (a hydrant run stopped
/// mid-push, say), it would refuse every later push of the branch; a live
/// one goes away while this waits.
fn clear_stale_lock(lock: &Path) {
    let started = Instant::now();
    while started.elapsed() <= STALE_LOCK {
        let Ok(modified) = std::fs::metadata(lock).and_then(|m| m.modified()) else {
            return;
        };
        if modified.elapsed().is_ok_and(|age| age >= STALE_LOCK) {
            match std::fs::remove_file(lock) {
                Ok(()) => {
                    tracing::warn!(path = %lock.display(), "removed a stale ref lock from the remote")
                }
                Err(e) => {
                    tracing::warn!(path = %lock.display(), error = %e, "cannot remove a stale ref lock from the remote")
                }
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Workspace {
    /// Opens (or creates) the bare clone of `repo` in `dir`. A corrupt clone is
    /// thrown away and made anew: it only caches the remote. Lock files a
    /// killed run left in it are removed.
    pub fn open(
        dir: &Path,
        repo: &str,
        creds: Credentials,
        lock_timeout: Duration,
    ) -> Result<Workspace, GitError> {
        std::fs::create_dir_all(dir).map_err(|e| GitError::WorkDir {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let lock = lock(dir, lock_timeout)?;
        let url = remote_url(repo)?;
        let git_dir = dir.join("repo.git");
        remove_stale_locks(&git_dir);
        batch::remove_temporary(&git_dir);
        let opened = Repository::open_bare(&git_dir).and_then(|r| {
            // A clone whose objects cannot be read is as good as none.
            r.odb()?;
            Ok(r)
        });
        let repo = match opened {
            Ok(r) => r,
            Err(e) => {
                if git_dir.exists() {
                    tracing::warn!(path = %git_dir.display(), error = %e.message(), "work directory is unusable; cloning afresh");
                    std::fs::remove_dir_all(&git_dir).map_err(|e| GitError::WorkDir {
                        path: git_dir.display().to_string(),
                        message: e.to_string(),
                    })?;
                }
                Repository::init_bare(&git_dir)?
            }
        };
        match repo.find_remote(REMOTE) {
            Ok(remote) if remote.url().ok() == Some(url.as_str()) => {}
            Ok(_) => repo.remote_set_url(REMOTE, &url)?,
            Err(_) => {
                repo.remote_with_fetch(REMOTE, &url, "+refs/heads/*:refs/remotes/origin/*")?;
            }
        }
        Ok(Workspace {
            dir: dir.to_path_buf(),
            local_git_dir: local_git_dir(&url),
            local_remote: std::cell::OnceCell::new(),
            repo,
            url,
            creds,
            _lock: lock,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The work directory: hydrant's own, locked while this is open.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn callbacks<'a>(&'a self, attempts: &'a Cell<u32>) -> RemoteCallbacks<'a> {
        let mut cb = RemoteCallbacks::new();
        let creds = &self.creds;
        cb.credentials(move |_url, username, allowed| {
            attempts.set(attempts.get() + 1);
            // A renewable token (a GitHub App's) gets one more try, renewed.
            let renewable = creds.token.as_ref().is_some_and(|t| t.renewable());
            if attempts.get() > 1 + u32::from(renewable) {
                return Err(git2::Error::from_str("the remote refused the credentials"));
            }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
                && let Some(source) = &creds.token
            {
                if attempts.get() > 1 {
                    source.refused();
                }
                let token = source.token().map_err(|e| git2::Error::from_str(&e))?;
                return Cred::userpass_plaintext(&creds.username, &token);
            }
            if allowed.contains(CredentialType::SSH_KEY) {
                if let Some(key) = &creds.ssh_key {
                    return Cred::ssh_key(username.unwrap_or("git"), None, key, None);
                }
                return Cred::ssh_key_from_agent(username.unwrap_or("git"));
            }
            if allowed.contains(CredentialType::USERNAME) {
                return Cred::username(username.unwrap_or(&creds.username));
            }
            Err(git2::Error::from_str(
                "the remote asks for credentials: set `HYDRANT_GIT_TOKEN`, pass `--git-token-file`, or `--ssh-key`",
            ))
        });
        cb
    }

    fn classify(&self, e: git2::Error, attempts: &Cell<u32>) -> GitError {
        let message = e.message().to_string();
        let auth = e.class() == git2::ErrorClass::Http
            && (message.contains("401") || message.contains("403"))
            || e.code() == git2::ErrorCode::Auth
            || attempts.get() > 1
            || message.contains("credentials");
        let source = Some(e);
        if auth {
            GitError::Auth {
                url: self.url.clone(),
                message,
                source,
            }
        } else {
            GitError::Unreachable {
                url: self.url.clone(),
                message,
                source,
            }
        }
    }

    /// Fetches the base branch (the remote's default when `base` is `None`) and
    /// every `hydrant/*` branch, pruning those deleted on the remote.
    pub fn fetch(&self, base: Option<&str>) -> Result<Fetched, GitError> {
        let attempts = Cell::new(0);
        let mut remote = self.repo.find_remote(REMOTE)?;
        let (base_branch, heads) = {
            let conn = remote
                .connect_auth(Direction::Fetch, Some(self.callbacks(&attempts)), None)
                .map_err(|e| self.classify(e, &attempts))?;
            let heads: Vec<String> = conn
                .list()?
                .iter()
                .filter_map(|h| h.name().strip_prefix("refs/heads/").map(String::from))
                .collect();
            let base_branch = match base {
                Some(b) => b.to_string(),
                None => conn
                    .default_branch()
                    .ok()
                    .and_then(|b| {
                        b.as_str()
                            .ok()
                            .and_then(|s| s.strip_prefix("refs/heads/"))
                            .map(String::from)
                    })
                    .unwrap_or_else(|| "main".to_string()),
            };
            (base_branch, heads)
        };
        // hydrant deletes and rewrites `hydrant/*` branches: one of them as
        // the base would be deleted under its own pull requests.
        if base_branch.starts_with("hydrant/") {
            return Err(GitError::HydrantBase {
                branch: base_branch,
                url: self.url.clone(),
            });
        }
        if !heads.contains(&base_branch) {
            return Err(GitError::MissingBase {
                branch: base_branch,
                url: self.url.clone(),
                known: heads
                    .into_iter()
                    .filter(|h| !h.starts_with("hydrant/"))
                    .collect(),
            });
        }
        let refspecs = [
            format!("+refs/heads/{base_branch}:refs/remotes/origin/{base_branch}"),
            "+refs/heads/hydrant/*:refs/remotes/origin/hydrant/*".to_string(),
        ];
        let attempts = Cell::new(0);
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(self.callbacks(&attempts))
            .prune(FetchPrune::On)
            .download_tags(AutotagOption::None);
        remote
            .fetch(&refspecs, Some(&mut options), None)
            .map_err(|e| self.classify(e, &attempts))?;
        let base_commit = self
            .repo
            .refname_to_id(&format!("refs/remotes/origin/{base_branch}"))?;
        Ok(Fetched {
            base_branch,
            base_commit,
        })
    }

    /// A commit's files, read as hydrant asks for them (see [`super::Snapshot`]).
    pub fn snapshot(&self, commit: Oid) -> Result<super::Snapshot, GitError> {
        let tree = self.repo.find_commit(commit)?.tree_id();
        let shown = Workspace::short(commit);
        let store = super::snapshot::CommitStore::open(self.repo.path(), tree, shown)?;
        Ok(crate::tree::Linked::from_store(store))
    }

    /// A file of a commit, if it is there.
    pub fn file_at(&self, commit: Oid, path: &str) -> Result<Option<String>, GitError> {
        let tree = self.repo.find_commit(commit)?.tree()?;
        let Ok(entry) = tree.get_path(Path::new(path)) else {
            return Ok(None);
        };
        match entry.to_object(&self.repo)?.into_blob() {
            Ok(blob) => Ok(Some(String::from_utf8_lossy(blob.content()).into_owned())),
            Err(_) => Ok(None),
        }
    }

    /// The entries of a directory of a commit: each name with its object id
    /// (a sub-directory's id is prefixed `tree:`). Reads no file.
    pub fn entries_at(&self, commit: Oid, dir: &str) -> Result<Vec<(String, String)>, GitError> {
        let tree = self.repo.find_commit(commit)?.tree()?;
        let Ok(entry) = tree.get_path(Path::new(dir)) else {
            return Ok(Vec::new());
        };
        let Ok(dir) = entry.to_object(&self.repo)?.into_tree() else {
            return Ok(Vec::new());
        };
        Ok(dir
            .iter()
            .map(|e| {
                let id = match e.kind() {
                    Some(ObjectType::Blob) => e.id().to_string(),
                    _ => format!("tree:{}", e.id()),
                };
                (e.name().unwrap_or("").to_string(), id)
            })
            .collect())
    }

    /// Hands `each` what `<dir>/<name>/` holds in a commit, for each of
    /// `names` (by its index): its entries, as [`Workspace::entries_at`]
    /// gives them, and the text of its file `file`; `None` where it is not a
    /// directory. `<dir>` is read once for all names rather than walked from
    /// the root for each, and a large list is read on every core, each with
    /// its own handle on the clone. What `each` returns, in `names`' order.
    pub fn each_subdir<T: Send>(
        &self,
        commit: Oid,
        dir: &str,
        names: &[String],
        file: &str,
        each: impl Fn(usize, Option<Subdir>) -> T + Sync,
    ) -> Result<Vec<T>, GitError> {
        use rayon::prelude::*;
        let root = self.repo.find_commit(commit)?.tree()?;
        let parent = match root.get_path(Path::new(dir)) {
            Ok(e) if e.kind() == Some(ObjectType::Tree) => e.id(),
            _ => return Ok((0..names.len()).map(|i| each(i, None)).collect()),
        };
        let read = |repo: &Repository, first: usize, names: &[String]| {
            let parent = repo.find_tree(parent)?;
            let mut out = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                let sub = match parent.get_name(name) {
                    Some(e) if e.kind() == Some(ObjectType::Tree) => {
                        Some(read_subdir(repo, e.id(), file)?)
                    }
                    _ => None,
                };
                out.push(each(first + i, sub));
            }
            Ok::<_, GitError>(out)
        };
        let threads = rayon::current_num_threads();
        if names.len() < SUBDIRS_ON_ONE_CORE || threads < 2 {
            return read(&self.repo, 0, names);
        }
        let chunk = names.len().div_ceil(threads);
        let git_dir = self.repo.path().to_path_buf();
        let parts: Vec<Result<Vec<T>, GitError>> = names
            .par_chunks(chunk)
            .enumerate()
            .map(|(c, names)| read(&Repository::open_bare(&git_dir)?, c * chunk, names))
            .collect();
        let mut out = Vec::with_capacity(names.len());
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// The files of `rendered/<env>/` in a commit, by name (empty when absent).
    pub fn rendered_files(
        &self,
        commit: Oid,
        env: &str,
    ) -> Result<BTreeMap<String, String>, GitError> {
        let tree = self.repo.find_commit(commit)?.tree()?;
        let Ok(entry) = tree.get_path(Path::new(&format!("rendered/{env}"))) else {
            return Ok(BTreeMap::new());
        };
        match entry.kind() {
            Some(ObjectType::Tree) => Ok(files_of(&self.repo, entry.id())?),
            _ => Ok(BTreeMap::new()),
        }
    }

    /// The directories of `rendered/` in `commit`, for reading them from
    /// other threads.
    pub fn rendered_dirs(&self, commit: Oid) -> Result<super::snapshot::RenderedDirs, GitError> {
        Ok(super::snapshot::RenderedDirs::open(
            self.repo.path(),
            commit,
        )?)
    }

    /// Walks the first parents of `commit` (newest first, at most `limit`
    /// commits) once for all `paths`, and gives for each the commit time (in
    /// seconds since the epoch) of the oldest commit from which on the file
    /// satisfies `keeps(index, content)` at every commit: when it first
    /// showed what it shows now. `None` where the file at `commit` does not.
    /// A walk that reaches `limit` gives the time of the last commit read.
    pub fn first_shown(
        &self,
        commit: Oid,
        paths: &[String],
        limit: usize,
        keeps: impl Fn(usize, &str) -> bool,
    ) -> Result<Vec<Option<i64>>, GitError> {
        let mut since: Vec<Option<i64>> = vec![None; paths.len()];
        let mut open: Vec<bool> = vec![true; paths.len()];
        let mut blobs: Vec<Option<Oid>> = vec![None; paths.len()];
        // When every path is below one directory and its tree did not change
        // between two commits, no file below it did.
        let top = paths
            .first()
            .and_then(|p| p.split('/').next())
            .filter(|t| paths.iter().all(|p| p.split('/').next() == Some(*t)));
        let mut last_top: Option<Oid> = None;
        let mut next = Some(self.repo.find_commit(commit)?);
        let mut walked = 0;
        while let Some(c) = next {
            if walked >= limit || !open.iter().any(|o| *o) {
                break;
            }
            let tree = c.tree()?;
            let time = c.time().seconds();
            let top_id = top.and_then(|t| tree.get_name(t)).map(|e| e.id());
            let unchanged = walked > 0 && top_id.is_some() && top_id == last_top;
            for (i, path) in paths.iter().enumerate() {
                if !open[i] {
                    continue;
                }
                if !unchanged {
                    let blob = tree
                        .get_path(Path::new(path))
                        .ok()
                        .filter(|e| e.kind() == Some(ObjectType::Blob))
                        .map(|e| e.id());
                    let same = walked > 0 && blob == blobs[i];
                    let ok = match blob {
                        None => false,
                        Some(_) if same => true,
                        Some(id) => {
                            let b = self.repo.find_blob(id)?;
                            keeps(i, &String::from_utf8_lossy(b.content()))
                        }
                    };
                    blobs[i] = blob;
                    if !ok {
                        open[i] = false;
                        continue;
                    }
                }
                since[i] = Some(time);
            }
            last_top = top_id;
            walked += 1;
            next = c.parent(0).ok();
        }
        Ok(since)
    }

    /// The first-parent commits from `tip` down to (not including) the first
    /// one `base` contains, newest first; `None` when there are more than
    /// `limit`.
    pub fn commits_above(
        &self,
        tip: Oid,
        base: Oid,
        limit: usize,
    ) -> Result<Option<Vec<BranchCommit>>, GitError> {
        let mut out = Vec::new();
        let mut next = Some(tip);
        while let Some(id) = next {
            if self.contains(base, id) {
                break;
            }
            if out.len() == limit {
                return Ok(None);
            }
            let c = self.repo.find_commit(id)?;
            let parents: Vec<Oid> = c.parent_ids().collect();
            next = parents.first().copied();
            out.push(BranchCommit {
                commit: id,
                tree: c.tree_id(),
                parents,
                author: c.author().name().unwrap_or("").to_string(),
                message: c.message().unwrap_or("").to_string(),
            });
        }
        Ok(Some(out))
    }

    /// The names of the remote's branches (as last fetched) that start with
    /// `prefix`, such as `hydrant/wave-`.
    pub fn branches_starting(&self, prefix: &str) -> Result<Vec<String>, GitError> {
        let tracking = "refs/remotes/origin/";
        let mut out = Vec::new();
        let mut refs = self.repo.references_glob(&format!("{tracking}{prefix}*"))?;
        for name in refs.names() {
            if let Some(name) = name?.strip_prefix(tracking) {
                out.push(name.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Walks the first parents of `commit` (newest first, at most `limit`
    /// commits) and gives the content of `path` at the newest commit where
    /// `keeps(content)` is false: what the file said before what `keeps`
    /// accepts. `None` when the file is absent there, or the walk ends first.
    pub fn first_other(
        &self,
        commit: Oid,
        path: &str,
        limit: usize,
        keeps: impl Fn(&str) -> bool,
    ) -> Result<Option<String>, GitError> {
        let mut next = Some(self.repo.find_commit(commit)?);
        let mut last: Option<Oid> = None;
        let mut walked = 0;
        while let Some(c) = next {
            if walked >= limit {
                break;
            }
            let Some(id) = c
                .tree()?
                .get_path(Path::new(path))
                .ok()
                .filter(|e| e.kind() == Some(ObjectType::Blob))
                .map(|e| e.id())
            else {
                return Ok(None);
            };
            if last != Some(id) {
                let blob = self.repo.find_blob(id)?;
                let text = String::from_utf8_lossy(blob.content());
                if !keeps(&text) {
                    return Ok(Some(text.into_owned()));
                }
                last = Some(id);
            }
            walked += 1;
            next = c.parent(0).ok();
        }
        Ok(None)
    }

    /// The tip of `hydrant/<env>` on the remote, as last fetched.
    pub fn tip(&self, env: &str) -> Result<Option<Tip>, GitError> {
        let name = format!("refs/remotes/origin/{}", branch_name(env));
        let Ok(oid) = self.repo.refname_to_id(&name) else {
            return Ok(None);
        };
        let commit = self.repo.find_commit(oid)?;
        let marker = format!("{ENV_TRAILER}: {env}");
        Ok(Some(Tip {
            commit: oid,
            tree: commit.tree_id(),
            parents: commit.parent_ids().collect(),
            is_hydrant: commit
                .message()
                .is_ok_and(|m| m.lines().any(|l| l.trim() == marker)),
            author: commit.author().name().unwrap_or("").to_string(),
        }))
    }

    /// The tree of `base` with `rendered/<env>/` replaced by exactly `files`.
    pub fn tree_with(
        &self,
        base: Oid,
        env: &str,
        files: &BTreeMap<String, String>,
    ) -> Result<Oid, GitError> {
        let root = self.repo.find_commit(base)?.tree()?;
        let mut env_tree = self.repo.treebuilder(None)?;
        for (name, text) in files {
            let blob = self.repo.blob(text.as_bytes())?;
            env_tree.insert(name, blob, 0o100644)?;
        }
        let env_oid = env_tree.write()?;
        let rendered = match root.get_name("rendered") {
            Some(e) if e.kind() == Some(ObjectType::Tree) => Some(self.repo.find_tree(e.id())?),
            _ => None,
        };
        let mut rendered_builder = self.repo.treebuilder(rendered.as_ref())?;
        rendered_builder.insert(env, env_oid, 0o040000)?;
        let rendered_oid = rendered_builder.write()?;
        let mut root_builder = self.repo.treebuilder(Some(&root))?;
        root_builder.insert("rendered", rendered_oid, 0o040000)?;
        Ok(root_builder.write()?)
    }

    /// The tree of `base` with the file `name` at its root set to `text`,
    /// or removed for `None`.
    pub fn tree_with_root_file(
        &self,
        base: Oid,
        name: &str,
        text: Option<&str>,
    ) -> Result<Oid, GitError> {
        let root = self.repo.find_commit(base)?.tree()?;
        let mut builder = self.repo.treebuilder(Some(&root))?;
        match text {
            Some(text) => {
                let blob = self.repo.blob(text.as_bytes())?;
                builder.insert(name, blob, 0o100644)?;
            }
            None if builder.get(name)?.is_some() => builder.remove(name)?,
            None => {}
        }
        Ok(builder.write()?)
    }

    /// The id of the tree at `path` inside tree `root`, if there is one.
    pub fn subtree(&self, root: Oid, path: &str) -> Option<Oid> {
        let tree = self.repo.find_tree(root).ok()?;
        let entry = tree.get_path(Path::new(path)).ok()?;
        (entry.kind() == Some(ObjectType::Tree)).then(|| entry.id())
    }

    /// Whether `descendant` is `ancestor` or has it in its history.
    pub fn contains(&self, descendant: Oid, ancestor: Oid) -> bool {
        descendant == ancestor
            || self
                .repo
                .graph_descendant_of(descendant, ancestor)
                .unwrap_or(false)
    }

    /// The tree of a commit.
    pub fn tree_of(&self, commit: Oid) -> Result<Oid, GitError> {
        Ok(self.repo.find_commit(commit)?.tree_id())
    }

    /// Writes a commit of `tree` on top of `parent` (no ref is moved).
    pub fn commit(
        &self,
        parent: Oid,
        tree: Oid,
        message: &str,
        author: &Signature<'_>,
    ) -> Result<Oid, GitError> {
        let parent = self.repo.find_commit(parent)?;
        let tree = self.repo.find_tree(tree)?;
        Ok(self
            .repo
            .commit(None, author, author, message, &tree, &[&parent])?)
    }

    /// The remote's current value of `hydrant/<env>` (asks the remote).
    fn remote_value(&self, branch: &str) -> Result<Option<Oid>, GitError> {
        let attempts = Cell::new(0);
        let mut remote = self.repo.find_remote(REMOTE)?;
        let conn = remote
            .connect_auth(Direction::Push, Some(self.callbacks(&attempts)), None)
            .map_err(|e| self.classify(e, &attempts))?;
        let full = format!("refs/heads/{branch}");
        Ok(conn
            .list()?
            .iter()
            .find(|h| h.name() == full)
            .map(|h| h.oid()))
    }

    /// Sets `hydrant/<env>` on the remote to `commit` (or deletes it for `None`),
    /// only if it still holds `expected`: another writer's change is never overwritten.
    pub fn push(
        &self,
        env: &str,
        commit: Option<Oid>,
        expected: Option<Oid>,
    ) -> Result<(), GitError> {
        let outgoing = format!("refs/hydrant/push/{env}");
        self.push_ref(&branch_name(env), &outgoing, commit, expected, true)
    }

    /// Moves the base branch on the remote from `expected` to `commit`, a
    /// child of it: an emergency edit such as a hold, committed straight to
    /// the base branch. Never forced: a base branch that moved meanwhile, a
    /// receive hook or a branch protection refuses it
    /// ([`GitError::PushRejected`]), and nothing is overwritten.
    pub fn push_base(&self, branch: &str, commit: Oid, expected: Oid) -> Result<(), GitError> {
        let outgoing = format!("refs/hydrant/push-base/{branch}");
        self.push_ref(branch, &outgoing, Some(commit), Some(expected), false)
    }

    /// Pushes `commit` to `branch` (deletes it for `None`) if the remote
    /// still holds `expected` there; `outgoing` is the local ref a network
    /// push goes through. `force` lets a network push replace what the lease
    /// checked; without it only a fast-forward is accepted.
    fn push_ref(
        &self,
        branch: &str,
        outgoing: &str,
        commit: Option<Oid>,
        expected: Option<Oid>,
        force: bool,
    ) -> Result<(), GitError> {
        let branch = branch.to_string();
        let rejected = |message: String| GitError::PushRejected {
            branch: branch.clone(),
            url: self.url.clone(),
            message,
        };
        if let Some(git_dir) = &self.local_git_dir {
            clear_stale_lock(&git_dir.join(format!("refs/heads/{branch}.lock")));
            if receive_hooks(git_dir) || !force {
                // A remote on this machine with hooks is pushed by git
                // itself, with a lease: its hooks run and decide, as for any
                // `git push`. So is its base branch, so that git's own rules
                // hold too (a branch checked out there is not moved).
                self.push_local(&branch, commit, expected)
                    .map_err(rejected)?;
            } else {
                // Without hooks, there is nothing for git's receive side to
                // run: writing the objects and moving the ref with a
                // compare-and-swap does the same, without a process and a
                // listing of every ref per push.
                self.push_direct(git_dir, &branch, commit, expected)
                    .map_err(|e| rejected(e.message().to_string()))?;
            }
        } else {
            // A network remote is checked just before the push (a lease).
            let current = self.remote_value(&branch)?;
            if current != expected {
                return Err(rejected(format!(
                    "the branch moved on the remote (expected {}, found {})",
                    short(expected),
                    short(current)
                )));
            }
            // A renewable token can expire between the requests of one push,
            // which libgit2 does not retry: renew it and push once more.
            let renewable = self.creds.token.as_ref().filter(|t| t.renewable());
            let mut tries = 1 + u32::from(renewable.is_some());
            loop {
                tries -= 1;
                match self.push_remote(outgoing, &branch, commit, force) {
                    Ok(()) => break,
                    Err(PushFailure::Rejected(message)) => return Err(rejected(message)),
                    Err(PushFailure::Git(e, attempts)) => match self.classify(e, &attempts) {
                        GitError::Auth { .. } if tries > 0 => {
                            if let Some(t) = renewable {
                                t.refused();
                            }
                        }
                        other => return Err(other),
                    },
                }
            }
        }
        // Keep the remote-tracking ref in step with what was pushed.
        let tracking = format!("refs/remotes/origin/{branch}");
        match commit {
            Some(oid) => {
                self.repo
                    .reference(&tracking, oid, true, "hydrant: pushed")?;
            }
            None => {
                let _ = self
                    .repo
                    .find_reference(&tracking)
                    .and_then(|mut r| r.delete());
            }
        }
        Ok(())
    }

    /// Pushes to a repository on this machine (a path or a `file://` URL)
    /// with `git push`, so that the remote's `pre-receive`, `update` and
    /// `post-receive` hooks run and a hook that refuses stops the push, as
    /// for any other push. The lease (`--force-with-lease`) makes it a
    /// compare-and-swap: another writer's change is never overwritten. Only
    /// the branch named moves; a checkout's working tree is never touched.
    fn push_local(
        &self,
        branch: &str,
        commit: Option<Oid>,
        expected: Option<Oid>,
    ) -> Result<(), String> {
        let name = format!("refs/heads/{branch}");
        let lease = format!(
            "--force-with-lease={name}:{}",
            expected.map(|o| o.to_string()).unwrap_or_default()
        );
        let refspec = match commit {
            Some(oid) => format!("{oid}:{name}"),
            None => format!(":{name}"),
        };
        let output = self
            .git_command()
            .args([
                "push",
                "--quiet",
                "--no-verify",
                &lease,
                &self.url,
                &refspec,
            ])
            .output()
            .map_err(|e| format!("cannot run `git push`: {e}"))?;
        if output.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("To "))
            .take(20)
            .collect();
        Err(if lines.is_empty() {
            format!("`git push` failed ({})", output.status)
        } else {
            lines.join("; ")
        })
    }

    /// Pushes to a repository on this machine that has no receive hooks by
    /// writing the new objects into it and moving the branch with a
    /// compare-and-swap. Only the branch named moves; a checkout's working
    /// tree is never touched.
    fn push_direct(
        &self,
        git_dir: &Path,
        branch: &str,
        commit: Option<Oid>,
        expected: Option<Oid>,
    ) -> Result<(), git2::Error> {
        let target = match self.local_remote.get() {
            Some(r) => r,
            None => {
                let opened = Repository::open(git_dir)?;
                self.local_remote.get_or_init(|| opened)
            }
        };
        if let Some(oid) = commit {
            copy_objects(&self.repo, &self.repo.odb()?, &target.odb()?, oid)?;
        }
        batch::compare_and_swap(target, &format!("refs/heads/{branch}"), commit, expected)
    }

    fn push_remote(
        &self,
        local_ref: &str,
        branch: &str,
        commit: Option<Oid>,
        force: bool,
    ) -> Result<(), PushFailure> {
        let refspec = match commit {
            Some(oid) => {
                self.repo
                    .reference(local_ref, oid, true, "hydrant: push")
                    .map_err(|e| PushFailure::Git(e, Cell::new(0)))?;
                let plus = if force { "+" } else { "" };
                format!("{plus}{local_ref}:refs/heads/{branch}")
            }
            None => format!(":refs/heads/{branch}"),
        };
        let attempts = Cell::new(0);
        let status: std::cell::RefCell<Option<String>> = std::cell::RefCell::new(None);
        let result = {
            let mut cb = self.callbacks(&attempts);
            cb.push_update_reference(|_, message| {
                if let Some(m) = message {
                    *status.borrow_mut() = Some(m.to_string());
                }
                Ok(())
            });
            let mut options = PushOptions::new();
            options.remote_callbacks(cb);
            self.repo
                .find_remote(REMOTE)
                .and_then(|mut remote| remote.push(&[refspec.as_str()], Some(&mut options)))
        };
        let _ = self
            .repo
            .find_reference(local_ref)
            .and_then(|mut r| r.delete());
        if let Some(message) = status.into_inner() {
            return Err(PushFailure::Rejected(message));
        }
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.message().contains("reject") || e.message().contains("declined") => {
                Err(PushFailure::Rejected(e.message().to_string()))
            }
            Err(e) => Err(PushFailure::Git(e, attempts)),
        }
    }

    /// Short form of a commit id, as people read it.
    pub fn short(oid: Oid) -> String {
        oid.to_string()[..12].to_string()
    }
}

enum PushFailure {
    Rejected(String),
    Git(git2::Error, Cell<u32>),
}

/// Whether a repository on this machine has a hook that `git push` would run
/// on its side (`pre-receive`, `update`, `post-receive`, `post-update`,
/// `reference-transaction`, `push-to-checkout`), in its hooks directory or
/// the one `core.hooksPath` names. Looked at on every push, so a hook added
/// while the daemon runs takes effect at once.
fn receive_hooks(git_dir: &Path) -> bool {
    let configured = Repository::open(git_dir)
        .ok()
        .and_then(|r| r.config().ok())
        .and_then(|c| c.get_path("core.hooksPath").ok());
    let dir = match configured {
        Some(p) if p.is_absolute() => p,
        // A relative hooksPath is relative to where git runs the push: the
        // working tree of a checkout, the git directory of a bare repository.
        Some(p) => git_dir
            .parent()
            .filter(|_| git_dir.ends_with(".git"))
            .unwrap_or(git_dir)
            .join(p),
        None => git_dir.join("hooks"),
    };
    [
        "pre-receive",
        "update",
        "post-receive",
        "post-update",
        "reference-transaction",
        "push-to-checkout",
    ]
    .iter()
    .any(|name| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir.join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Copies a commit, and its first parents down to one `to` holds, with
/// whatever of their trees `to` lacks. hydrant only builds on fetched
/// commits, so only the entries that differ from each first parent's tree
/// are visited:
/// one environment's delivery costs the same with 10 or 10,000 environments
/// beside it.
fn copy_objects(
    repo: &Repository,
    from: &git2::Odb<'_>,
    to: &git2::Odb<'_>,
    commit: Oid,
) -> Result<(), git2::Error> {
    fn copy(from: &git2::Odb<'_>, to: &git2::Odb<'_>, oid: Oid) -> Result<bool, git2::Error> {
        if to.exists(oid) {
            return Ok(false);
        }
        let object = from.read(oid)?;
        to.write(object.kind(), object.data())?;
        Ok(true)
    }
    /// Copies tree `oid` and what it holds that `known` (the same place in
    /// the parent's tree, present on the remote) does not hold under the
    /// same name and id.
    fn copy_tree(
        repo: &Repository,
        from: &git2::Odb<'_>,
        to: &git2::Odb<'_>,
        oid: Oid,
        known: Option<&git2::Tree<'_>>,
    ) -> Result<(), git2::Error> {
        if !copy(from, to, oid)? {
            return Ok(());
        }
        for entry in repo.find_tree(oid)?.iter() {
            let before = known.and_then(|k| k.get_name_bytes(entry.name_bytes()));
            if before.as_ref().is_some_and(|b| b.id() == entry.id()) {
                continue;
            }
            match entry.kind() {
                Some(ObjectType::Tree) => {
                    let below = before
                        .filter(|b| b.kind() == Some(ObjectType::Tree))
                        .and_then(|b| repo.find_tree(b.id()).ok());
                    copy_tree(repo, from, to, entry.id(), below.as_ref())?
                }
                Some(ObjectType::Blob) => {
                    copy(from, to, entry.id())?;
                }
                _ => {}
            }
        }
        Ok(())
    }
    // Down the first parents to the first commit the remote holds: a
    // branch of several commits (a grouped wave's) brings each of them.
    let mut next = Some(commit);
    while let Some(id) = next {
        if to.exists(id) {
            break;
        }
        let c = repo.find_commit(id)?;
        let parent = c.parents().next();
        let parent_tree = parent.as_ref().map(|p| p.tree()).transpose()?;
        copy_tree(repo, from, to, c.tree_id(), parent_tree.as_ref())?;
        copy(from, to, id)?;
        next = parent.map(|p| p.id());
    }
    Ok(())
}

fn short(oid: Option<Oid>) -> String {
    oid.map(Workspace::short)
        .unwrap_or_else(|| "no branch".to_string())
}

/// The default work directory for a repository: under the user's cache directory.
pub fn default_work_dir(repo: &str) -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let id = crate::manifest::layout::sha256(
        remote_url(repo)
            .unwrap_or_else(|_| repo.to_string())
            .as_bytes(),
    );
    cache.join("hydrant").join(&id[..16])
}

/// The files of a directory of `rendered/` (the tree `dir`), by name: every
/// blob, a symbolic link read as the path it holds.
pub(super) fn files_of(
    repo: &Repository,
    dir: Oid,
) -> Result<BTreeMap<String, String>, git2::Error> {
    let mut files = BTreeMap::new();
    for e in repo.find_tree(dir)?.iter() {
        if e.kind() == Some(ObjectType::Blob) {
            let blob = repo.find_blob(e.id())?;
            files.insert(
                e.name().unwrap_or("").to_string(),
                String::from_utf8_lossy(blob.content()).into_owned(),
            );
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare remote whose one commit on `main` holds `files`.
    fn remote_with(dir: &Path, files: &[(&str, &str)]) -> String {
        let repo = Repository::init_bare(dir).unwrap();
        let mut index = git2::Index::new().unwrap();
        for (path, text) in files {
            let id = repo.blob(text.as_bytes()).unwrap();
            let mut entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: text.len() as u32,
                id,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            entry.flags = (path.len() as u16) & 0xfff;
            index.add(&entry).unwrap();
        }
        let tree = index.write_tree_to(&repo).unwrap();
        let tree = repo.find_tree(tree).unwrap();
        let sig = Signature::now("t", "t@example.com").unwrap();
        repo.commit(Some("refs/heads/main"), &sig, &sig, "c", &tree, &[])
            .unwrap();
        repo.set_head("refs/heads/main").unwrap();
        dir.display().to_string()
    }

    /// A clone whose base commit holds `rendered/a/` (two files and a
    /// subdirectory), `rendered/b/` and a file `rendered/c`; the temporary
    /// directories it lives in go with the first of what it returns.
    fn rendered_dirs_a_b_c() -> ((tempfile::TempDir, tempfile::TempDir), Workspace, Oid) {
        let remote = tempfile::tempdir().unwrap();
        let url = remote_with(
            remote.path(),
            &[
                ("rendered/a/hydrant.metadata", "{\"a\": 1}"),
                ("rendered/a/x.yaml", "x: 1\n"),
                ("rendered/a/sub/y.yaml", "y: 1\n"),
                ("rendered/b/x.yaml", "x: 2\n"),
                ("rendered/c", "a file, not a directory\n"),
            ],
        );
        let work = tempfile::tempdir().unwrap();
        let ws = Workspace::open(
            work.path(),
            &url,
            Credentials::default(),
            Duration::from_secs(5),
        )
        .unwrap();
        let base = ws.fetch(None).unwrap().base_commit;
        ((remote, work), ws, base)
    }

    #[test]
    fn each_subdir_reads_what_entries_at_and_file_at_read() {
        let (_dirs, ws, base) = rendered_dirs_a_b_c();
        // Enough names to be read on every core, as well as a few on one.
        for copies in [1, 200] {
            let names: Vec<String> = ["a", "b", "c", "missing"]
                .iter()
                .cycle()
                .take(4 * copies)
                .map(|n| n.to_string())
                .collect();
            let read = ws
                .each_subdir(base, "rendered", &names, "hydrant.metadata", |i, dir| {
                    (i, dir.map(|d| (d.entries, d.file)))
                })
                .unwrap();
            assert_eq!(read.len(), names.len());
            for (n, ((i, got), name)) in read.into_iter().zip(&names).enumerate() {
                assert_eq!(i, n);
                let dir = format!("rendered/{name}");
                let expected = match ws.entries_at(base, &dir).unwrap() {
                    entries if entries.is_empty() => None,
                    entries => Some((
                        entries,
                        ws.file_at(base, &format!("{dir}/hydrant.metadata"))
                            .unwrap(),
                    )),
                };
                assert_eq!(got, expected, "{name} (#{i})");
            }
        }
    }

    #[test]
    fn rendered_dirs_read_from_other_threads_what_rendered_files_reads() {
        let (_dirs, ws, base) = rendered_dirs_a_b_c();
        let dirs = ws.rendered_dirs(base).unwrap();
        let names = ["a", "b", "c", "missing"];
        let read: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = names
                .iter()
                .map(|name| scope.spawn(|| dirs.files(name).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (name, got) in names.iter().zip(read) {
            assert_eq!(got, ws.rendered_files(base, name).unwrap(), "{name}");
        }
        assert_eq!(
            dirs.files("a").unwrap().keys().collect::<Vec<_>>(),
            ["hydrant.metadata", "x.yaml"]
        );
        assert!(dirs.files("c").unwrap().is_empty());
    }
}
