//! A cycle's commits in one pack, and every branch they move delivered at
//! once: [`Batch`] builds each environment's tree and commit straight into
//! a pack (no loose object is written), and [`Workspace::push_all`] puts the
//! pack where the remote reads it and moves every branch in one go, with a
//! lease per branch: a branch that another writer moved fails alone.
//!
//! For a remote on this machine without receive hooks, the pack is copied
//! into its `objects/pack` (synced, index last) before any branch moves, and
//! each branch then moves with a compare-and-swap. A remote on this machine
//! with hooks gets one `git push` (its hooks run as for any push); a network
//! remote one lease check (one connection, one listing of its refs) and one
//! push of every branch: over smart HTTP, hydrant sends the cycle's pack
//! itself ([`super::super::receive_pack`]); over SSH, libgit2 builds one. No
//! branch ever points at an object the remote does not hold whole.
//!
//! For the crash tests, a hidden `HYDRANT_TEST_PAUSE` (`pack-write`: the
//! pack is in the remote, its index not yet; `refs-half`: half of the
//! branches moved; `http-push`: a smart HTTP remote's refs are listed and
//! checked, the push not sent) stops a run there for a minute after saying
//! so on stderr, so that it can be killed there.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use git2::{Direction, ObjectType, Oid, PushOptions, Repository, Signature};

use super::super::GitError;
use super::super::pack::{self, Finished, PackWriter, Piece};
use super::super::receive_pack::{Command, Receiver};
use super::{REMOTE, Workspace, clear_stale_lock, receive_hooks, short};

/// One branch to move: to `new` (deleted for `None`), if the remote still
/// holds `expected` there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub branch: String,
    pub new: Option<Oid>,
    pub expected: Option<Oid>,
}

/// The base commit's root tree and `rendered/` tree, as bytes: what every
/// environment's tree of a cycle is a delta against.
struct BaseTrees {
    commit: Oid,
    root_id: Oid,
    root: Vec<u8>,
    rendered: Option<(Oid, Vec<u8>)>,
}

/// A cycle's new objects, written into one pack as they are made.
pub struct Batch<'a> {
    ws: &'a Workspace,
    /// Started at the first object.
    pack: Option<PackWriter>,
    base: Option<BaseTrees>,
}

fn io_error(ws: &Workspace, e: std::io::Error) -> GitError {
    GitError::WorkDir {
        path: ws.repo.path().display().to_string(),
        message: e.to_string(),
    }
}

/// Stops a run at `point` when the hidden `HYDRANT_TEST_PAUSE` names it
/// (see the module's documentation).
fn pause(point: &str) {
    let Ok(wanted) = std::env::var("HYDRANT_TEST_PAUSE") else {
        return;
    };
    let (at, secs) = wanted.split_once(':').unwrap_or((&wanted, "60"));
    if at == point {
        eprintln!("hydrant: test pause at {point}");
        std::thread::sleep(Duration::from_secs(secs.parse().unwrap_or(60)));
    }
}

impl Batch<'_> {
    /// The pack, started at the first object.
    fn pack(&mut self) -> Result<&mut PackWriter, GitError> {
        if self.pack.is_none() {
            let dir = self.ws.repo.path().join("objects/pack");
            self.pack = Some(PackWriter::create(&dir).map_err(|e| io_error(self.ws, e))?);
        }
        self.pack
            .as_mut()
            .ok_or_else(|| GitError::Git(git2::Error::from_str("no pack")))
    }

    fn base_trees(&mut self, base: Oid) -> Result<&BaseTrees, GitError> {
        if self.base.as_ref().is_none_or(|b| b.commit != base) {
            let repo = &self.ws.repo;
            let odb = repo.odb()?;
            let root_id = repo.find_commit(base)?.tree_id();
            let root = odb.read(root_id)?.data().to_vec();
            let rendered = match pack::tree_entries(&root).find(|e| e.name == b"rendered") {
                Some(e) if e.is_tree => Some((e.oid, odb.read(e.oid)?.data().to_vec())),
                _ => None,
            };
            self.base = Some(BaseTrees {
                commit: base,
                root_id,
                root,
                rendered,
            });
        }
        self.base
            .as_ref()
            .ok_or_else(|| GitError::Git(git2::Error::from_str("no base tree")))
    }

    /// The tree of `base` with `rendered/<env>/` replaced by exactly
    /// `files`, written into the pack: the files that differ from the
    /// base's, `rendered/<env>/` whole, and `rendered/` and the root as
    /// deltas against the base's.
    pub fn tree_with(
        &mut self,
        base: Oid,
        env: &str,
        files: &BTreeMap<String, String>,
    ) -> Result<Oid, GitError> {
        self.base_trees(base)?;
        let Some(trees) = self.base.take() else {
            return Err(GitError::Git(git2::Error::from_str("no base tree")));
        };
        let result = self.write_tree(&trees, env, files);
        self.base = Some(trees);
        result
    }

    fn write_tree(
        &mut self,
        trees: &BaseTrees,
        env: &str,
        files: &BTreeMap<String, String>,
    ) -> Result<Oid, GitError> {
        let ws = self.ws;
        let old_env = trees.rendered.as_ref().and_then(|(_, raw)| {
            pack::tree_entries(raw)
                .find(|e| e.name == env.as_bytes() && e.is_tree)
                .map(|e| e.oid)
        });
        let old_files: HashMap<Vec<u8>, Oid> = match old_env {
            Some(id) => ws
                .repo
                .find_tree(id)?
                .iter()
                .map(|e| (e.name_bytes().to_vec(), e.id()))
                .collect(),
            None => HashMap::new(),
        };
        let mut env_raw = Vec::new();
        for (name, text) in files {
            let whole = [Piece::Copy {
                offset: 0,
                len: text.len(),
            }];
            let id = pack::object_id(ObjectType::Blob, text.as_bytes(), &whole);
            if old_files.get(name.as_bytes()) != Some(&id) {
                self.pack()?
                    .whole(ObjectType::Blob, text.as_bytes())
                    .map_err(|e| io_error(ws, e))?;
            }
            env_raw.extend(pack::tree_entry("100644", name.as_bytes(), id));
        }
        let whole = [Piece::Copy {
            offset: 0,
            len: env_raw.len(),
        }];
        let env_id = pack::object_id(ObjectType::Tree, &env_raw, &whole);
        if Some(env_id) == old_env {
            return Ok(trees.root_id);
        }
        self.pack()?
            .whole(ObjectType::Tree, &env_raw)
            .map_err(|e| io_error(ws, e))?;
        let entry = pack::tree_entry("40000", env.as_bytes(), env_id);
        let rendered_id = match &trees.rendered {
            Some((id, raw)) => {
                let pieces = pack::with_subtree(raw, env.as_bytes(), &entry);
                self.pack()?.derived(ObjectType::Tree, *id, raw, &pieces)
            }
            None => self.pack()?.whole(ObjectType::Tree, &entry),
        }
        .map_err(|e| io_error(ws, e))?;
        let entry = pack::tree_entry("40000", b"rendered", rendered_id);
        let pieces = pack::with_subtree(&trees.root, b"rendered", &entry);
        self.pack()?
            .derived(ObjectType::Tree, trees.root_id, &trees.root, &pieces)
            .map_err(|e| io_error(ws, e))
    }

    /// A commit of `tree` on top of `parent`, written into the pack.
    pub fn commit(
        &mut self,
        parent: Oid,
        tree: Oid,
        message: &str,
        author: &Signature<'_>,
    ) -> Result<Oid, GitError> {
        let mut raw = format!("tree {tree}\nparent {parent}\n").into_bytes();
        for role in ["author", "committer"] {
            let when = author.when();
            let offset = when.offset_minutes().abs();
            raw.extend_from_slice(role.as_bytes());
            raw.push(b' ');
            raw.extend_from_slice(author.name_bytes());
            raw.extend_from_slice(b" <");
            raw.extend_from_slice(author.email_bytes());
            raw.extend_from_slice(
                format!(
                    "> {} {}{:02}{:02}\n",
                    when.seconds(),
                    when.sign(),
                    offset / 60,
                    offset % 60
                )
                .as_bytes(),
            );
        }
        raw.push(b'\n');
        raw.extend_from_slice(message.as_bytes());
        self.pack()?
            .whole(ObjectType::Commit, &raw)
            .map_err(|e| io_error(self.ws, e))
    }
}

impl GitError {
    /// The same failure again, for each of the branches of one push.
    fn again(&self) -> GitError {
        match self {
            GitError::Unreachable { url, message, .. } => GitError::Unreachable {
                url: url.clone(),
                message: message.clone(),
                source: None,
            },
            GitError::Auth { url, message, .. } => GitError::Auth {
                url: url.clone(),
                message: message.clone(),
                source: None,
            },
            GitError::PushRejected {
                branch,
                url,
                message,
            } => GitError::PushRejected {
                branch: branch.clone(),
                url: url.clone(),
                message: message.clone(),
            },
            GitError::WorkDir { path, message } => GitError::WorkDir {
                path: path.clone(),
                message: message.clone(),
            },
            GitError::Git(e) => GitError::Git(git2::Error::new(e.code(), e.class(), e.message())),
            other => GitError::Git(git2::Error::from_str(&other.to_string())),
        }
    }
}

/// Moves `name` in `target` to `new` (deletes it for `None`) only if it
/// holds `expected`.
pub(super) fn compare_and_swap(
    target: &Repository,
    name: &str,
    new: Option<Oid>,
    expected: Option<Oid>,
) -> Result<(), git2::Error> {
    match (new, expected) {
        (Some(oid), Some(old)) => {
            target.reference_matching(name, oid, true, old, "hydrant: update")?;
        }
        (Some(oid), None) => {
            target.reference(name, oid, false, "hydrant: create")?;
        }
        (None, _) => {
            let mut r = target.find_reference(name)?;
            if r.target() != expected {
                return Err(git2::Error::from_str("the branch moved on the remote"));
            }
            r.delete()?;
        }
    }
    Ok(())
}

/// How many branches one `git push` to a remote with hooks carries (its
/// command line has a limit).
const REFS_PER_GIT_PUSH: usize = 200;

impl Workspace {
    /// Starts a batch: the commits of a cycle, written into one pack (see
    /// [`Workspace::push_all`]).
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            ws: self,
            pack: None,
            base: None,
        }
    }

    /// Delivers a cycle: the objects of `batch` (if any) as one pack, then
    /// every branch of `updates` moved with a lease on its `expected` value.
    /// Each branch has its own result: one that another writer moved fails
    /// alone ([`GitError::PushRejected`]), the others land.
    pub fn push_all(
        &self,
        batch: Option<Batch<'_>>,
        updates: &[RefUpdate],
    ) -> Vec<Result<(), GitError>> {
        let finished = match batch
            .and_then(|b| b.pack)
            .map(PackWriter::finish)
            .transpose()
        {
            Ok(f) => f.flatten(),
            Err(e) => {
                let e = io_error(self, e);
                return updates.iter().map(|_| Err(e.again())).collect();
            }
        };
        let results = self.deliver(finished.as_ref(), updates);
        if let Some(f) = finished {
            f.remove();
        }
        let tracking = |u: &RefUpdate| -> Result<(), GitError> {
            let name = format!("refs/remotes/origin/{}", u.branch);
            match u.new {
                Some(oid) => {
                    self.repo.reference(&name, oid, true, "hydrant: pushed")?;
                }
                None => {
                    let _ = self.repo.find_reference(&name).and_then(|mut r| r.delete());
                }
            }
            Ok(())
        };
        updates
            .iter()
            .zip(results)
            .map(|(u, r)| r.and_then(|()| tracking(u)))
            .collect()
    }

    fn deliver(
        &self,
        finished: Option<&Finished>,
        updates: &[RefUpdate],
    ) -> Vec<Result<(), GitError>> {
        let all = |e: GitError| updates.iter().map(|_| Err(e.again())).collect();
        if let Some(f) = finished {
            let dir = self.repo.path().join("objects/pack");
            if let Err(e) = f.install(&dir, false, || {}) {
                return all(io_error(self, e));
            }
            if let Err(e) = self.repo.odb().and_then(|o| o.refresh()) {
                return all(e.into());
            }
            tracing::debug!(pack = %f.name, objects = f.objects, "wrote the cycle's objects as one pack");
        }
        if updates.is_empty() {
            return Vec::new();
        }
        let rejected = |branch: &str, message: String| GitError::PushRejected {
            branch: branch.to_string(),
            url: self.url.clone(),
            message,
        };
        match &self.local_git_dir {
            Some(git_dir) if receive_hooks(git_dir) => {
                for u in updates {
                    clear_stale_lock(&git_dir.join(format!("refs/heads/{}.lock", u.branch)));
                }
                self.push_local_all(updates)
                    .into_iter()
                    .zip(updates)
                    .map(|(r, u)| r.map_err(|m| rejected(&u.branch, m)))
                    .collect()
            }
            Some(git_dir) => {
                let target = match self.local_remote.get() {
                    Some(r) => r,
                    None => match Repository::open(git_dir) {
                        Ok(opened) => self.local_remote.get_or_init(|| opened),
                        Err(e) => return all(e.into()),
                    },
                };
                if let Some(f) = finished {
                    let dir = target.path().join("objects/pack");
                    pack::remove_temporary(&dir);
                    if let Err(e) = f.install(&dir, true, || pause("pack-write")) {
                        return all(GitError::WorkDir {
                            path: dir.display().to_string(),
                            message: e.to_string(),
                        });
                    }
                    let _ = target.odb().and_then(|o| o.refresh());
                }
                let half = updates.len() / 2;
                updates
                    .iter()
                    .enumerate()
                    .map(|(i, u)| {
                        if i == half {
                            pause("refs-half");
                        }
                        clear_stale_lock(&git_dir.join(format!("refs/heads/{}.lock", u.branch)));
                        let name = format!("refs/heads/{}", u.branch);
                        compare_and_swap(target, &name, u.new, u.expected)
                            .map_err(|e| rejected(&u.branch, e.message().to_string()))
                    })
                    .collect()
            }
            None if is_http(&self.url) => self.push_http_all(finished, updates),
            None => self.push_remote_all(updates),
        }
    }

    /// Pushes every branch of `updates` to a repository on this machine
    /// with `git push` (its hooks run), each with its lease; a result per
    /// branch, read from `--porcelain`.
    fn push_local_all(&self, updates: &[RefUpdate]) -> Vec<Result<(), String>> {
        let mut out = self.git_push_each_chunk(updates);
        // A `pre-receive` hook answers for a whole push: one branch it
        // refuses refuses the others with it. Those are pushed again one by
        // one, so that only the branches it refuses fail.
        if updates.len() > 1 {
            for (i, u) in updates.iter().enumerate() {
                if out[i]
                    .as_ref()
                    .is_err_and(|m| m.contains("remote rejected"))
                {
                    let mut again = self.git_push_each_chunk(std::slice::from_ref(u));
                    out[i] = again.pop().unwrap_or_else(|| Err("no answer".to_string()));
                }
            }
        }
        out
    }

    /// `git push` of `updates`, [`REFS_PER_GIT_PUSH`] branches at a time.
    fn git_push_each_chunk(&self, updates: &[RefUpdate]) -> Vec<Result<(), String>> {
        let mut out = Vec::with_capacity(updates.len());
        for chunk in updates.chunks(REFS_PER_GIT_PUSH) {
            let mut args: Vec<String> = vec![
                "push".into(),
                "--porcelain".into(),
                "--quiet".into(),
                "--no-verify".into(),
            ];
            for u in chunk {
                args.push(format!(
                    "--force-with-lease=refs/heads/{}:{}",
                    u.branch,
                    u.expected.map(|o| o.to_string()).unwrap_or_default()
                ));
            }
            args.push(self.url.clone());
            for u in chunk {
                args.push(match u.new {
                    Some(oid) => format!("{oid}:refs/heads/{}", u.branch),
                    None => format!(":refs/heads/{}", u.branch),
                });
            }
            let output = match self.git_command().args(&args).output() {
                Ok(o) => o,
                Err(e) => {
                    let m = format!("cannot run `git push`: {e}");
                    out.extend(chunk.iter().map(|_| Err(m.clone())));
                    continue;
                }
            };
            let mut status: HashMap<String, Result<(), String>> = HashMap::new();
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                let mut parts = line.split('\t');
                let (Some(flag), Some(refs), summary) = (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let Some(to) = refs.rsplit(':').next() else {
                    continue;
                };
                let result = match flag.trim() {
                    "!" => Err(summary.unwrap_or("rejected").to_string()),
                    _ => Ok(()),
                };
                status.insert(to.to_string(), result);
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            let failure = || {
                let lines: Vec<&str> = stderr
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with("To "))
                    .take(20)
                    .collect();
                if lines.is_empty() {
                    format!("`git push` failed ({})", output.status)
                } else {
                    lines.join("; ")
                }
            };
            for u in chunk {
                let name = format!("refs/heads/{}", u.branch);
                out.push(match status.remove(&name) {
                    Some(Err(m)) => {
                        let why = failure();
                        Err(if why.contains(&m) {
                            why
                        } else {
                            format!("{m}; {why}")
                        })
                    }
                    Some(Ok(())) => Ok(()),
                    None if output.status.success() => Ok(()),
                    None => Err(failure()),
                });
            }
        }
        out
    }

    /// Pushes every branch of `updates` to a network remote: one lease
    /// check (one connection and one listing of the remote's refs) and one
    /// push, a result per branch from the remote's report.
    fn push_remote_all(&self, updates: &[RefUpdate]) -> Vec<Result<(), GitError>> {
        let all = |e: GitError| updates.iter().map(|_| Err(e.again())).collect();
        let current: HashMap<String, Oid> = {
            let attempts = Cell::new(0);
            let listed = self
                .repo
                .find_remote(REMOTE)
                .map_err(GitError::from)
                .and_then(|mut remote| {
                    let conn = remote
                        .connect_auth(Direction::Push, Some(self.callbacks(&attempts)), None)
                        .map_err(|e| self.classify(e, &attempts))?;
                    Ok(conn
                        .list()?
                        .iter()
                        .map(|h| (h.name().to_string(), h.oid()))
                        .collect())
                });
            match listed {
                Ok(c) => c,
                Err(e) => return all(e),
            }
        };
        let mut results: Vec<Option<Result<(), GitError>>> = Vec::with_capacity(updates.len());
        let mut refspecs = Vec::new();
        let mut locals = Vec::new();
        for u in updates {
            let name = format!("refs/heads/{}", u.branch);
            if let Err(e) = self.lease(&current, u) {
                results.push(Some(Err(e)));
                continue;
            }
            match u.new {
                Some(oid) => {
                    let local = format!("refs/hydrant/push/{}", u.branch);
                    if let Err(e) = self.repo.reference(&local, oid, true, "hydrant: push") {
                        results.push(Some(Err(e.into())));
                        continue;
                    }
                    refspecs.push(format!("+{local}:{name}"));
                    locals.push(local);
                }
                None => refspecs.push(format!(":{name}")),
            }
            results.push(None);
        }
        let outcome = if refspecs.is_empty() {
            Ok(HashMap::new())
        } else {
            self.push_refspecs(&refspecs)
        };
        for local in locals {
            let _ = self
                .repo
                .find_reference(&local)
                .and_then(|mut r| r.delete());
        }
        updates
            .iter()
            .zip(results)
            .map(|(u, r)| match r {
                Some(r) => r,
                None => match &outcome {
                    Ok(status) => match status.get(&format!("refs/heads/{}", u.branch)) {
                        Some(m) => Err(GitError::PushRejected {
                            branch: u.branch.clone(),
                            url: self.url.clone(),
                            message: m.clone(),
                        }),
                        None => Ok(()),
                    },
                    Err(e) => Err(match e {
                        GitError::PushRejected { message, url, .. } => GitError::PushRejected {
                            branch: u.branch.clone(),
                            url: url.clone(),
                            message: message.clone(),
                        },
                        e => e.again(),
                    }),
                },
            })
            .collect()
    }

    /// Whether the remote, listed as `current`, still holds the branch of
    /// `u` where this cycle found it.
    fn lease(&self, current: &HashMap<String, Oid>, u: &RefUpdate) -> Result<(), GitError> {
        let found = current.get(&format!("refs/heads/{}", u.branch)).copied();
        if found == u.expected {
            return Ok(());
        }
        Err(GitError::PushRejected {
            branch: u.branch.clone(),
            url: self.url.clone(),
            message: format!(
                "the branch moved on the remote (expected {}, found {})",
                short(u.expected),
                short(found)
            ),
        })
    }

    /// Pushes every branch of `updates` to a smart HTTP remote with the
    /// cycle's own pack: one listing of the remote's refs (the lease check),
    /// then one request of every branch's command and the pack, streamed
    /// from disk. The remote moves each branch only from the value this
    /// cycle expects, so the lease holds there too. A new tip neither in the
    /// pack nor on the remote (a commit of an earlier cycle whose push was
    /// lost) sends the push through libgit2, which packs what it needs.
    fn push_http_all(
        &self,
        finished: Option<&Finished>,
        updates: &[RefUpdate],
    ) -> Vec<Result<(), GitError>> {
        let all = |e: GitError| updates.iter().map(|_| Err(e.again())).collect();
        let receiver = Receiver {
            url: &self.url,
            username: &self.creds.username,
            token: self.creds.token.as_ref(),
            timeout: super::super::timeout(),
        };
        let listed = match receiver.list() {
            Ok(l) => l,
            Err(e) => return all(e),
        };
        let tips: HashSet<Oid> = listed.refs.values().copied().collect();
        let held = |oid: Oid| tips.contains(&oid) || finished.is_some_and(|f| f.contains(oid));
        if let Some(missing) = updates.iter().filter_map(|u| u.new).find(|o| !held(*o)) {
            tracing::debug!(commit = %missing, "a new tip is not in the cycle's pack; libgit2 packs the push");
            return self.push_remote_all(updates);
        }
        let mut results: Vec<Option<Result<(), GitError>>> = Vec::with_capacity(updates.len());
        let mut commands = Vec::new();
        for u in updates {
            match self.lease(&listed.refs, u) {
                Ok(()) => {
                    commands.push(Command {
                        name: format!("refs/heads/{}", u.branch),
                        old: u.expected,
                        new: u.new,
                    });
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if commands.is_empty() {
            return results.into_iter().flatten().collect();
        }
        pause("http-push");
        let report = receiver.push(&commands, finished.map(Finished::path));
        let unpacked = match &report {
            Ok(r) => r.unpack.clone().map_err(|why| GitError::Unreachable {
                url: self.url.clone(),
                message: format!("the remote could not take the pack: {why}"),
                source: None,
            }),
            Err(e) => Err(e.again()),
        };
        updates
            .iter()
            .zip(results)
            .map(|(u, r)| match r {
                Some(r) => r,
                None => {
                    unpacked.as_ref().map_err(GitError::again)?;
                    let name = format!("refs/heads/{}", u.branch);
                    match report.as_ref().map(|r| r.refs.get(&name)) {
                        Ok(Some(None)) => Ok(()),
                        Ok(Some(Some(why))) => Err(GitError::PushRejected {
                            branch: u.branch.clone(),
                            url: self.url.clone(),
                            message: why.clone(),
                        }),
                        Ok(None) => Err(GitError::Unreachable {
                            url: self.url.clone(),
                            message: format!("the remote's report says nothing of `{name}`"),
                            source: None,
                        }),
                        Err(e) => Err(e.again()),
                    }
                }
            })
            .collect()
    }

    /// One libgit2 push of `refspecs`; what the remote said of each ref it
    /// refused. A renewable token that expires midway is renewed and the
    /// push made once more.
    fn push_refspecs(&self, refspecs: &[String]) -> Result<HashMap<String, String>, GitError> {
        let renewable = self.creds.token.as_ref().filter(|t| t.renewable());
        let mut tries = 1 + u32::from(renewable.is_some());
        loop {
            tries -= 1;
            let attempts = Cell::new(0);
            let status: std::cell::RefCell<HashMap<String, String>> = Default::default();
            let result = {
                let mut cb = self.callbacks(&attempts);
                cb.push_update_reference(|name, message| {
                    if let Some(m) = message {
                        status.borrow_mut().insert(name.to_string(), m.to_string());
                    }
                    Ok(())
                });
                let mut options = PushOptions::new();
                options.remote_callbacks(cb);
                let specs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
                super::super::with_push_cache(|| {
                    self.repo
                        .find_remote(REMOTE)
                        .and_then(|mut remote| remote.push(&specs, Some(&mut options)))
                })
            };
            match result {
                Ok(()) => return Ok(status.into_inner()),
                Err(e) if e.message().contains("reject") || e.message().contains("declined") => {
                    return Err(GitError::PushRejected {
                        branch: String::new(),
                        url: self.url.clone(),
                        message: e.message().to_string(),
                    });
                }
                Err(e) => match self.classify(e, &attempts) {
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

    /// `git` run on the work directory, without the caller's git variables.
    pub(super) fn git_command(&self) -> std::process::Command {
        let mut git = std::process::Command::new("git");
        for var in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_OBJECT_DIRECTORY",
        ] {
            git.env_remove(var);
        }
        git.env("GIT_TERMINAL_PROMPT", "0")
            .arg("--git-dir")
            .arg(self.repo.path())
            .stdin(std::process::Stdio::null());
        git
    }
}

/// Whether hydrant pushes to `url` over smart HTTP itself (SSH and local
/// remotes go through libgit2 or git).
fn is_http(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Removes the temporary packs a stopped run left in the work directory.
pub(super) fn remove_temporary(git_dir: &Path) {
    pack::remove_temporary(&git_dir.join("objects/pack"));
}
