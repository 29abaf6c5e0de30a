//! The files of a config repository, wherever they are: a directory on disk
//! (`hydrant render` reads the working tree as it is) or a commit (`hydrant
//! reconcile` reads the base branch, never a checkout).
//!
//! Both are read through one set of rules ([`Linked`]), so that the working
//! tree and a commit of it are the same tree to hydrant:
//! - paths are relative, `/`-separated and may not climb out (`..`) or be
//!   absolute;
//! - a symbolic link to a file is followed while it stays inside the tree
//!   and out of `rendered/` and `.git/`; an absolute link is outside;
//! - a symbolic link to a directory is refused, naming it (following it would
//!   let one tree hold another, or the whole filesystem, and git does not);
//! - a file larger than [`MAX_FILE_BYTES`] is refused, naming it;
//! - only what is asked for is read: a commit's files are read one by one
//!   as hydrant needs them, never all of them.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest input file hydrant reads (a template, a values file, a channel
/// spec): far above any real one, small enough that a hostile one cannot
/// exhaust memory.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// How many links one path may go through.
const MAX_HOPS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(
        "`{path}` is a link to `{target}`, outside the config repository; hydrant reads only files inside it"
    )]
    OutsideRepo { path: String, target: String },
    #[error(
        "`{path}` is a link to `{target}`, inside `{place}/`; hydrant never reads its inputs from there"
    )]
    IntoOwnPlace {
        path: String,
        target: String,
        place: String,
    },
    #[error(
        "`{path}` is a symbolic link to a directory; hydrant does not follow directory links (hint: make `{path}` a real directory, or link the files inside it)"
    )]
    DirLink { path: String },
    #[error("`{path}` goes through more than {MAX_HOPS} symbolic links")]
    TooManyLinks { path: String },
    #[error(
        "`{path}` is {size} bytes, more than the {MAX_FILE_BYTES} bytes hydrant reads from one input file"
    )]
    TooLarge { path: String, size: u64 },
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
    /// The id git gives the directory `dir` of a commit, reached without
    /// following a link: it changes whenever anything stored in `dir` does
    /// (a link is stored as its target's path, so what a link points at can
    /// change while the id does not: see [`Tree::holds_link`]). `None` where
    /// files carry no such id (on disk), or when `dir` is no such directory.
    fn dir_id(&self, dir: &str) -> Option<String>;
    /// Whether an entry of the directory `dir` is a symbolic link (`true`
    /// when that cannot be told).
    fn holds_link(&self, dir: &str) -> bool;
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

/// One entry of a store, links not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file, with its size in bytes.
    File(u64),
    Dir,
    /// A symbolic link, with its target as written.
    Link(String),
}

/// Where a tree's entries come from, before any link is followed. Paths are
/// checked, `/`-joined components (`""` is the root).
pub trait Store: Send + Sync {
    /// The entry at `path`; `None` when there is none (or it is neither a
    /// file, a directory nor a link: a FIFO is never opened).
    fn entry(&self, path: &str) -> Result<Option<Entry>, TreeError>;
    /// The entries of the directory `dir`, in any order.
    fn entries(&self, dir: &str) -> Result<Vec<(String, Entry)>, TreeError>;
    /// The bytes of the regular file at `path`, at most `limit` of them.
    fn content(&self, path: &str, limit: u64) -> Result<Vec<u8>, TreeError>;
    /// See [`Tree::dir_id`]; `dir` is a path as stored, no link followed.
    fn dir_id(&self, dir: &str) -> Option<String> {
        let _ = dir;
        None
    }
    /// See [`Tree::holds_link`].
    fn holds_link(&self, dir: &str) -> bool {
        let _ = dir;
        true
    }
}

/// A [`Store`] read with the rules of this module.
#[derive(Debug, Default, Clone)]
pub struct Linked<S> {
    store: S,
}

impl<S: Store> Linked<S> {
    pub fn from_store(store: S) -> Linked<S> {
        Linked { store }
    }

    /// Follows `path` to what it names: its resolved path and entry (never
    /// a link), or `None` when nothing is there.
    fn resolve(&self, path: &str) -> Result<Option<(String, Entry)>, TreeError> {
        let mut pending: Vec<String> = components(path)?
            .into_iter()
            .rev()
            .map(String::from)
            .collect();
        let mut current: Vec<String> = Vec::new();
        let mut via_link: Option<String> = None;
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            current.push(part);
            let here = current.join("/");
            match self.store.entry(&here)? {
                None => return Ok(None),
                Some(Entry::Link(target)) => {
                    if !pending.is_empty() {
                        return Err(TreeError::DirLink { path: here });
                    }
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(TreeError::TooManyLinks {
                            path: path.to_string(),
                        });
                    }
                    current.pop();
                    let next = follow(&here, &current, &target)?;
                    via_link = Some(here);
                    current.clear();
                    pending = next.into_iter().rev().collect();
                    if pending.is_empty() {
                        return Err(TreeError::DirLink {
                            path: via_link.unwrap_or_default(),
                        });
                    }
                }
                Some(Entry::Dir) if !pending.is_empty() => {}
                // A file used as a directory: nothing there.
                Some(Entry::File(_)) if !pending.is_empty() => return Ok(None),
                Some(Entry::Dir) => {
                    if let Some(link) = via_link {
                        return Err(TreeError::DirLink { path: link });
                    }
                    return Ok(Some((here, Entry::Dir)));
                }
                Some(entry) => return Ok(Some((here, entry))),
            }
        }
        Ok(Some((String::new(), Entry::Dir)))
    }
}

/// The components a link at `link` (in directory `dir`) points to, refused
/// when they leave the tree or enter `rendered/` or `.git/`.
fn follow(link: &str, dir: &[String], target: &str) -> Result<Vec<String>, TreeError> {
    let outside = || TreeError::OutsideRepo {
        path: link.to_string(),
        target: target.to_string(),
    };
    if target.starts_with('/') || target.contains('\0') {
        return Err(outside());
    }
    let mut parts = dir.to_vec();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(outside)?;
            }
            p => parts.push(p.to_string()),
        }
    }
    if let Some(place) = parts.first().filter(|p| *p == "rendered" || *p == ".git") {
        return Err(TreeError::IntoOwnPlace {
            path: link.to_string(),
            target: target.to_string(),
            place: place.clone(),
        });
    }
    Ok(parts)
}

impl<S: Store> Tree for Linked<S> {
    fn dir_id(&self, dir: &str) -> Option<String> {
        self.store.dir_id(&components(dir).ok()?.join("/"))
    }

    fn holds_link(&self, dir: &str) -> bool {
        match components(dir) {
            Ok(parts) => self.store.holds_link(&parts.join("/")),
            Err(_) => true,
        }
    }

    fn read(&self, path: &str) -> Result<Option<String>, TreeError> {
        match self.resolve(path)? {
            Some((resolved, Entry::File(size))) => {
                let too_large = || TreeError::TooLarge {
                    path: path.to_string(),
                    size,
                };
                if size > MAX_FILE_BYTES {
                    return Err(too_large());
                }
                let bytes = self.store.content(&resolved, MAX_FILE_BYTES + 1)?;
                if bytes.len() as u64 > MAX_FILE_BYTES {
                    return Err(too_large());
                }
                Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
            }
            _ => Ok(None),
        }
    }

    fn kind(&self, path: &str) -> Option<Kind> {
        match self.resolve(path).ok()?? {
            (_, Entry::Dir) => Some(Kind::Dir),
            _ => Some(Kind::File),
        }
    }

    fn list(&self, dir: &str) -> Result<Vec<(String, Kind)>, TreeError> {
        let Some((resolved, Entry::Dir)) = self.resolve(dir)? else {
            return Ok(Vec::new());
        };
        let mut entries = self.store.entries(&resolved)?;
        // In name order, so that the first bad link met is the same everywhere.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::new();
        for (name, entry) in entries {
            let kind = match entry {
                Entry::Dir => Kind::Dir,
                Entry::File(_) => Kind::File,
                Entry::Link(_) => {
                    let child = if resolved.is_empty() {
                        name.clone()
                    } else {
                        format!("{resolved}/{name}")
                    };
                    match self.resolve(&child)? {
                        Some((_, Entry::Dir)) => Kind::Dir,
                        Some(_) => Kind::File,
                        // A dangling link holds nothing.
                        None => continue,
                    }
                }
            };
            out.push((name, kind));
        }
        Ok(out)
    }
}

/// A directory on disk.
pub type DiskTree = Linked<Disk>;

/// The entries of a directory on disk.
#[derive(Debug, Clone)]
pub struct Disk {
    root: PathBuf,
}

impl DiskTree {
    pub fn new(root: &Path) -> std::io::Result<DiskTree> {
        if !std::fs::metadata(root)?.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("`{}` is not a directory", root.display()),
            ));
        }
        Ok(Linked::from_store(Disk {
            root: root.to_path_buf(),
        }))
    }
}

impl Disk {
    fn io(path: &str) -> impl Fn(std::io::Error) -> TreeError + '_ {
        move |source| TreeError::Io {
            path: path.to_string(),
            source,
        }
    }

    fn entry_of(&self, path: &str, meta: &std::fs::Metadata) -> Result<Option<Entry>, TreeError> {
        let kind = meta.file_type();
        Ok(if kind.is_symlink() {
            let target = std::fs::read_link(self.root.join(path)).map_err(Self::io(path))?;
            let target = target.to_str().ok_or_else(|| TreeError::BadPath {
                path: path.to_string(),
            })?;
            Some(Entry::Link(target.to_string()))
        } else if kind.is_dir() {
            Some(Entry::Dir)
        } else if kind.is_file() {
            Some(Entry::File(meta.len()))
        } else {
            None
        })
    }
}

impl Store for Disk {
    fn entry(&self, path: &str) -> Result<Option<Entry>, TreeError> {
        match std::fs::symlink_metadata(self.root.join(path)) {
            Ok(meta) => self.entry_of(path, &meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io(path)(e)),
        }
    }

    fn entries(&self, dir: &str) -> Result<Vec<(String, Entry)>, TreeError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.root.join(dir)).map_err(Self::io(dir))? {
            let entry = entry.map_err(Self::io(dir))?;
            let Some(name) = entry.file_name().to_str().map(String::from) else {
                continue;
            };
            let rel = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let meta = entry.metadata().map_err(Self::io(&rel))?;
            if let Some(e) = self.entry_of(&rel, &meta)? {
                out.push((name, e));
            }
        }
        Ok(out)
    }

    fn content(&self, path: &str, limit: u64) -> Result<Vec<u8>, TreeError> {
        let file = std::fs::File::open(self.root.join(path)).map_err(Self::io(path))?;
        if !file.metadata().map_err(Self::io(path))?.is_file() {
            return Err(TreeError::BadPath {
                path: path.to_string(),
            });
        }
        let mut bytes = Vec::new();
        file.take(limit)
            .read_to_end(&mut bytes)
            .map_err(Self::io(path))?;
        Ok(bytes)
    }
}

/// Files held in memory (tests, and trees built by hand). Links are kept as links.
pub type MemTree = Linked<Mem>;

#[derive(Debug, Default, Clone)]
pub struct Mem {
    files: BTreeMap<String, String>,
    links: BTreeMap<String, String>,
}

impl MemTree {
    pub fn insert_file(&mut self, path: String, text: String) {
        self.store.files.insert(path, text);
    }

    pub fn insert_link(&mut self, path: String, target: String) {
        self.store.links.insert(path, target);
    }
}

impl Store for Mem {
    fn entry(&self, path: &str) -> Result<Option<Entry>, TreeError> {
        if let Some(text) = self.files.get(path) {
            return Ok(Some(Entry::File(text.len() as u64)));
        }
        if let Some(target) = self.links.get(path) {
            return Ok(Some(Entry::Link(target.clone())));
        }
        let prefix = format!("{path}/");
        let below = |keys: &BTreeMap<String, String>| {
            keys.range(prefix.clone()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&prefix))
        };
        Ok((path.is_empty() || below(&self.files) || below(&self.links)).then_some(Entry::Dir))
    }

    fn entries(&self, dir: &str) -> Result<Vec<(String, Entry)>, TreeError> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut out: BTreeMap<String, Entry> = BTreeMap::new();
        for (key, text) in &self.files {
            if let Some(rest) = key.strip_prefix(&prefix) {
                match rest.split_once('/') {
                    Some((name, _)) => out.insert(name.to_string(), Entry::Dir),
                    None => out.insert(rest.to_string(), Entry::File(text.len() as u64)),
                };
            }
        }
        for (key, target) in &self.links {
            if let Some(rest) = key.strip_prefix(&prefix) {
                match rest.split_once('/') {
                    Some((name, _)) => out.insert(name.to_string(), Entry::Dir),
                    None => out.insert(rest.to_string(), Entry::Link(target.clone())),
                };
            }
        }
        Ok(out.into_iter().collect())
    }

    fn content(&self, path: &str, limit: u64) -> Result<Vec<u8>, TreeError> {
        let text = self.files.get(path).map(String::as_bytes).unwrap_or(b"");
        let end = usize::try_from(limit).unwrap_or(usize::MAX).min(text.len());
        Ok(text[..end].to_vec())
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
            Err(TreeError::DirLink { .. })
        ));
    }

    /// The same layout on disk and in memory (as a commit holds it).
    fn both(
        files: &[(&str, &str)],
        links: &[(&str, &str)],
    ) -> (tempfile::TempDir, DiskTree, MemTree) {
        let d = tempfile::tempdir().unwrap();
        let mut mem = MemTree::default();
        for (path, text) in files {
            let full = d.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
            mem.insert_file(path.to_string(), text.to_string());
        }
        for (path, target) in links {
            let full = d.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, full).unwrap();
            mem.insert_link(path.to_string(), target.to_string());
        }
        let disk = DiskTree::new(d.path()).unwrap();
        (d, disk, mem)
    }

    fn outcome(t: &dyn Tree, path: &str) -> String {
        let read = match t.read(path) {
            Ok(text) => format!("{text:?}"),
            Err(e) => e.to_string(),
        };
        let list = match t.list(path) {
            Ok(entries) => format!("{entries:?}"),
            Err(e) => e.to_string(),
        };
        format!("read {read}; kind {:?}; list {list}", t.kind(path))
    }

    #[test]
    fn issue_13_the_working_tree_and_a_commit_see_links_the_same_way() {
        let (_d, disk, mem) = both(
            &[
                ("shared/values.yaml", "v"),
                ("shared/dev/environment.yaml", "e"),
                ("templates/a.yaml.hbs", "a"),
                ("rendered/dev/x.yaml", "r"),
            ],
            &[
                ("environments/dev", "../shared/dev"),
                ("environments/qa/values.yaml", "../../shared/values.yaml"),
                ("environments/qa/out.yaml", "../../../x"),
                ("environments/qa/abs.yaml", "/etc/passwd"),
                ("environments/qa/own.yaml", "../../rendered/dev/x.yaml"),
                ("environments/qa/gone.yaml", "nowhere.yaml"),
                ("templates/root", "/"),
                ("templates/up", ".."),
            ],
        );
        for path in [
            "environments",
            "environments/dev",
            "environments/dev/environment.yaml",
            "environments/qa",
            "environments/qa/values.yaml",
            "environments/qa/out.yaml",
            "environments/qa/abs.yaml",
            "environments/qa/own.yaml",
            "environments/qa/gone.yaml",
            "templates",
            "templates/root",
            "templates/up/templates/a.yaml.hbs",
        ] {
            assert_eq!(outcome(&disk, path), outcome(&mem, path), "{path}");
        }
        // A directory link is refused, naming it, wherever it is met.
        let err = disk.list("environments").unwrap_err().to_string();
        assert!(
            err.contains("`environments/dev` is a symbolic link to a directory"),
            "{err}"
        );
        let err = mem
            .read("environments/dev/environment.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`environments/dev`"), "{err}");
        assert_eq!(
            mem.read("environments/qa/values.yaml").unwrap().as_deref(),
            Some("v")
        );
        assert!(matches!(
            disk.read("environments/qa/own.yaml"),
            Err(TreeError::IntoOwnPlace { .. })
        ));
        assert_eq!(disk.read("environments/qa/gone.yaml").unwrap(), None);
    }

    #[test]
    fn issue_13_a_link_to_the_filesystem_root_is_refused_not_walked() {
        let (_d, disk, _mem) = both(&[("templates/a.yaml.hbs", "a")], &[("templates/x", "/")]);
        let started = std::time::Instant::now();
        let err = disk.list("templates").unwrap_err();
        assert!(matches!(err, TreeError::OutsideRepo { .. }), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn issue_13_an_input_file_over_the_size_cap_is_refused_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let big = std::fs::File::create(d.path().join("values.yaml")).unwrap();
        big.set_len(MAX_FILE_BYTES + 1).unwrap();
        let err = DiskTree::new(d.path())
            .unwrap()
            .read("values.yaml")
            .unwrap_err();
        assert!(matches!(err, TreeError::TooLarge { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("`values.yaml` is 16777217 bytes"),
            "{err}"
        );
    }
}
