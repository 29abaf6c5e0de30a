//! Shared helpers for the integration tests: a copy of the bundled example in a
//! temporary directory, and the real `hydrant` binary run against it.

#![allow(dead_code)]

pub mod channel_server;
pub mod daemon;
pub mod fake_forges;
pub mod fake_github;
pub mod flaky;
pub mod git;
pub mod prometheus;
pub mod rollout;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the bundled example config repository.
pub struct Example {
    pub dir: tempfile::TempDir,
}

impl Example {
    pub fn new() -> Example {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["templates", "environments", "channels"] {
            copy_dir(&project_root().join(sub), &dir.path().join(sub));
        }
        Example { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap()
    }

    pub fn append(&self, rel: &str, text: &str) {
        let mut old = self.read(rel);
        old.push_str(text);
        self.write(rel, &old);
    }

    /// Runs hydrant with the repository as working directory.
    pub fn run(&self, args: &[&str]) -> Run {
        run_in(self.path(), args)
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(
        Output {
            status,
            stdout,
            stderr,
        }: Output,
    ) -> Run {
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8(stdout).unwrap(),
            stderr: String::from_utf8(stderr).unwrap(),
        }
    }
}

impl Run {
    /// `(environment, action)` of a `reconcile --output json` run.
    pub fn actions(&self) -> Vec<(String, String)> {
        let v: Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}\n{}\n{}", self.stdout, self.stderr));
        v["environments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["env"].as_str().unwrap().to_string(),
                    o["action"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "hydrant failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

pub fn hydrant() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hydrant"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HYDRANT_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    hydrant()
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
        .into()
}

/// Parses a YAML stream into values with hydrant's own reader.
pub fn parse_stream(text: &str) -> Vec<Value> {
    hydrant::yaml::parse_documents(text)
        .unwrap_or_else(|e| panic!("output does not parse: {e}\n{text}"))
        .iter()
        .map(|n| hydrant::yaml::to_value(n, &mut |_, _| {}).unwrap())
        .collect()
}

/// Every file below `dir`, by relative path, with its bytes.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                walk(base, &entry.path(), out);
            } else {
                let rel = entry
                    .path()
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                out.push((rel, std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Whether an external tool is on the PATH; CI sets `HYDRANT_TEST_REQUIRE_TOOLS=1`
/// so that a missing tool fails the test instead of skipping the check.
pub fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("--help").output().is_ok();
    if !found && std::env::var("HYDRANT_TEST_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("`{name}` is required by HYDRANT_TEST_REQUIRE_TOOLS=1 but is not installed");
    }
    found
}
