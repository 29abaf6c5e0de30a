//! What hydrant learned from the config repository's git objects, by their
//! ids, kept in the work directory between runs:
//! - an environment's settings and the digests of its files, by the id of its
//!   `environments/<env>/` tree;
//! - an environment's `hydrant.metadata` and the digest of the files beside
//!   it, by the id of its `rendered/<env>/` tree.
//!
//! A git id names its content, so an entry never goes stale: a cycle in which
//! nothing changed reads the `environments/` and `rendered/` listings, not
//! every environment's directories and files. An environment directory that
//! holds a symbolic link is never kept (the link's target can change while the
//! directory's id does not).
//!
//! The memo is only ever a shortcut: one that cannot be read (missing,
//! corrupt, or written by another version of hydrant) is started afresh, and
//! what it would have said is read from git. It holds no secret: settings,
//! digests and the metadata hydrant commits to `rendered/`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::config::EnvironmentConfig;
use crate::manifest::layout::{Metadata, TextDigests};

/// The memo's file in the work directory.
pub const FILE: &str = "memo.json";

/// What the memo's file says it is: a memo written by another version of
/// hydrant is not read (what it kept may be read differently now).
const WRITER: &str = concat!("hydrant ", env!("CARGO_PKG_VERSION"), ", memo 1");

/// An environment's directory, as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// `environment.yaml`, parsed (before `hydrant.yaml`'s defaults).
    pub config: EnvironmentConfig,
    pub digests: TextDigests,
}

/// An environment's `rendered/` directory, as read: its metadata, when it
/// has one that parses, and the digest of the files beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    pub metadata: Metadata,
    pub outputs: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Tables {
    writer: String,
    environments: HashMap<String, Environment>,
    rendered: HashMap<String, Option<Rendered>>,
}

#[derive(Default)]
struct State {
    tables: Tables,
    /// The entries looked up or kept since the memo was read.
    used: HashSet<String>,
    /// Whether an entry was kept since the memo was read.
    grown: bool,
    /// How many lookups found an entry, and how many entries were kept.
    known: usize,
    kept: usize,
}

/// The memo of one work directory, shared by the threads of a cycle.
#[derive(Default)]
pub struct Memo {
    state: Mutex<State>,
}

impl Memo {
    /// The memo kept in `dir`, or an empty one.
    pub fn load(dir: &Path) -> Memo {
        let path = dir.join(FILE);
        let tables = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Tables>(&bytes) {
                Ok(tables) if tables.writer == WRITER => tables,
                Ok(tables) => {
                    tracing::debug!(path = %path.display(), writer = %tables.writer, "the memo was written by another version of hydrant: starting afresh");
                    Tables::default()
                }
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "the memo cannot be read: starting afresh");
                    Tables::default()
                }
            },
            Err(_) => Tables::default(),
        };
        Memo {
            state: Mutex::new(State {
                tables,
                ..State::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the environment directory with git id `id` gave, if known.
    pub fn environment(&self, id: &str) -> Option<Environment> {
        let mut state = self.state();
        let found = state.tables.environments.get(id).cloned()?;
        state.used.insert(id.to_string());
        state.known += 1;
        Some(found)
    }

    /// Keeps what the environment directory with git id `id` gave.
    pub fn keep_environment(&self, id: &str, entry: Environment) {
        let mut state = self.state();
        state.used.insert(id.to_string());
        state.grown = true;
        state.kept += 1;
        state.tables.environments.insert(id.to_string(), entry);
    }

    /// What the `rendered/<env>/` directory with git id `id` gave, if known
    /// (`Some(None)`: it has no metadata that parses).
    pub fn rendered(&self, id: &str) -> Option<Option<Rendered>> {
        let mut state = self.state();
        let found = state.tables.rendered.get(id).cloned()?;
        state.used.insert(id.to_string());
        state.known += 1;
        Some(found)
    }

    /// Keeps what the `rendered/<env>/` directory with git id `id` gave.
    pub fn keep_rendered(&self, id: &str, entry: Option<Rendered>) {
        let mut state = self.state();
        state.used.insert(id.to_string());
        state.grown = true;
        state.kept += 1;
        state.tables.rendered.insert(id.to_string(), entry);
    }

    /// How many directories the memo knew, and how many were read from git
    /// and kept, since it was read.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.state();
        (state.known, state.kept)
    }

    /// Writes the memo to `dir` when it learned something, or when it holds
    /// more than twice `environments` entries of a kind: then it keeps only
    /// what was looked up since it was read (what a run that reads a few
    /// environments did not use is kept until the memo grows that large).
    /// Written to a temporary file and renamed, so a reader never sees half.
    pub fn save(&self, dir: &Path, environments: usize) -> std::io::Result<()> {
        let mut state = self.state();
        let State {
            tables,
            used,
            grown,
            ..
        } = &mut *state;
        let oversized = |n: usize| n > environments.saturating_mul(2);
        let prune = oversized(tables.environments.len()) || oversized(tables.rendered.len());
        if !*grown && !prune {
            return Ok(());
        }
        if prune {
            tables.environments.retain(|id, _| used.contains(id));
            tables.rendered.retain(|id, _| used.contains(id));
        }
        tables.writer = WRITER.to_string();
        let mut out = std::io::BufWriter::new(tempfile::NamedTempFile::new_in(dir)?);
        serde_json::to_writer(&mut out, &*tables).map_err(std::io::Error::other)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.persist(dir.join(FILE)).map_err(|e| e.error)?;
        *grown = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(channel: &str) -> EnvironmentConfig {
        crate::config::parse_required(
            "environment.yaml",
            &format!(
                "channel: {channel}\nrelease: \"0.62.1\"\nnamespace: wandb\nmaxDeletions: \"25%\"\nunknownKeys: warn\nlabels:\n  ring: canary\npullRequest:\n  draft: true\n  reviewers: [alice]\n"
            ),
        )
        .expect("parses")
    }

    fn environment(channel: &str) -> Environment {
        Environment {
            config: config(channel),
            digests: TextDigests {
                environment: "e".repeat(64),
                values: Some("v".repeat(64)),
                pinned: None,
            },
        }
    }

    #[test]
    fn what_is_kept_reads_back_the_same_in_the_next_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let memo = Memo::load(dir.path());
        assert_eq!(memo.environment("a1"), None, "an empty memo knows nothing");
        memo.keep_environment("a1", environment("stable"));
        memo.keep_rendered("r1", None);
        memo.save(dir.path(), 10).expect("saved");
        let again = Memo::load(dir.path());
        assert_eq!(again.environment("a1"), Some(environment("stable")));
        assert_eq!(again.rendered("r1"), Some(None));
        assert_eq!(again.rendered("r2"), None);
    }

    #[test]
    fn a_memo_that_cannot_be_read_or_was_written_by_another_version_starts_afresh() {
        let dir = tempfile::tempdir().expect("temp dir");
        for text in [
            "{ not json".to_string(),
            serde_json::json!({"writer": "hydrant 0.0.1, memo 1", "environments": {"a1": environment("stable")}, "rendered": {}}).to_string(),
        ] {
            std::fs::write(dir.path().join(FILE), text).expect("write");
            let memo = Memo::load(dir.path());
            assert_eq!(memo.environment("a1"), None);
        }
    }

    #[test]
    fn an_unchanged_memo_is_not_written_and_a_large_one_keeps_what_was_used() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join(FILE);
        let memo = Memo::load(dir.path());
        for i in 0..5 {
            memo.keep_environment(&format!("a{i}"), environment("stable"));
        }
        memo.save(dir.path(), 10).expect("saved");
        assert!(file.exists(), "what was learned is written");

        let memo = Memo::load(dir.path());
        assert!(memo.environment("a3").is_some());
        std::fs::remove_file(&file).expect("remove");
        memo.save(dir.path(), 10).expect("saved");
        assert!(!file.exists(), "nothing learned, nothing written");

        // Five entries for two environments: only what was looked up stays.
        memo.save(dir.path(), 2).expect("pruned");
        let memo = Memo::load(dir.path());
        assert!(memo.environment("a3").is_some(), "looked up: kept");
        assert_eq!(memo.environment("a1"), None, "not looked up: dropped");
    }
}
