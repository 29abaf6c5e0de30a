//! Crash safety: `hydrant reconcile --once` killed with SIGKILL at many points
//! of a cycle (fetching, rendering, committing, pushing, writing the pull
//! request), then run again, must leave what an uninterrupted run leaves.
//!
//! Two remotes receive the same changes to `main`. On the control, hydrant runs
//! to completion; on the other, each run is killed after a delay spread over
//! the length of a whole run, and then run again. After every kill: the remote
//! holds only complete objects, no environment has two open pull requests, and
//! an open pull request's branch exists. After the next run: the same pull
//! requests are open, with the same titles, and their branches hold the same
//! `rendered/<env>/` as the control's.
//!
//! `HYDRANT_CRASH_RUNS` sets the number of killed runs (default 12).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::git::{Remote, git};
use serde_json::Value;

struct Side {
    remote: Remote,
    dirs: tempfile::TempDir,
}

impl Side {
    fn new() -> Side {
        Side {
            remote: Remote::new(),
            dirs: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self) -> std::process::Command {
        let d = self.dirs.path();
        let mut cmd = common::hydrant();
        cmd.args([
            "reconcile",
            "--once",
            "--repo",
            &self.remote.url(),
            "--work-dir",
            d.join("w").to_str().unwrap(),
            "--state-dir",
            d.join("s").to_str().unwrap(),
            "--output",
            "json",
        ])
        .current_dir(d)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
        cmd
    }

    /// Runs to completion; returns how long it took.
    fn run(&self) -> Duration {
        let started = Instant::now();
        let out = self.command().output().unwrap();
        assert!(
            out.status.success(),
            "hydrant failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        started.elapsed()
    }

    /// Starts a run and kills it after `after`; true when it was killed
    /// before it finished.
    fn run_killed(&self, after: Duration) -> bool {
        let mut child = self.command().spawn().unwrap();
        let started = Instant::now();
        while started.elapsed() < after {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let killed = child.try_wait().unwrap().is_none();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        killed
    }

    fn pulls(&self) -> Vec<Value> {
        std::fs::read_dir(self.dirs.path().join("s/pulls"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .map(|e| {
                        serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap())
                            .unwrap_or_else(|err| panic!("{}: {err}", e.path().display()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Open pull requests: head → title.
    fn open(&self) -> BTreeMap<String, String> {
        let mut open = BTreeMap::new();
        for p in self.pulls().iter().filter(|p| p["state"] == "open") {
            let head = p["head"].as_str().unwrap().to_string();
            let title = p["title"].as_str().unwrap().to_string();
            assert!(
                open.insert(head.clone(), title).is_none(),
                "two open pull requests for {head}"
            );
        }
        open
    }

    /// The id of `rendered/<env>/` on a branch of the remote.
    fn rendered_tree(&self, head: &str) -> String {
        let env = head.trim_start_matches("hydrant/");
        git(
            &self.remote.bare(),
            &["rev-parse", &format!("refs/heads/{head}:rendered/{env}")],
        )
    }

    /// What must hold whenever hydrant stops, however it stops.
    fn check_invariants(&self, when: &str) {
        git(
            &self.remote.bare(),
            &["fsck", "--connectivity-only", "--no-dangling"],
        );
        for head in self.open().keys() {
            assert!(
                self.remote.branch(head).is_some(),
                "{when}: the pull request of {head} is open but its branch is gone"
            );
        }
        for file in std::fs::read_dir(self.dirs.path().join("s/pulls"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = file.file_name().to_string_lossy().into_owned();
            assert!(
                name.ends_with(".json") || name.starts_with('.'),
                "{when}: a stray file in the forge's state: {name}"
            );
        }
    }
}

/// The same change to `main` on both remotes: staging's replicas, held in
/// its `pinned.yaml` (which holds nothing else).
fn change(sides: [&Side; 2], step: usize) {
    let text = format!("app:\n  replicas: {}\n", step % 5 + 3);
    for side in sides {
        side.remote.commit_to_main(
            "environments/staging/pinned.yaml",
            &text,
            &format!("Scale staging, step {step}"),
        );
    }
}

fn runs() -> usize {
    std::env::var("HYDRANT_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

#[test]
fn a_run_killed_anywhere_and_run_again_ends_where_an_uninterrupted_run_ends() {
    let (control, crashed) = (Side::new(), Side::new());
    let mut length = control.run();
    let (mut kills, mut finished) = (0, 0);
    for step in 0..runs() {
        if step > 0 {
            change([&control, &crashed], step);
            length = control.run();
        }
        // Spread the kills over the length of the same run on the control.
        let fraction = (step * 37 % 100) as f64 / 100.0;
        let after = length.mul_f64(fraction.max(0.01));
        if crashed.run_killed(after) {
            kills += 1;
        } else {
            finished += 1;
        }
        crashed.check_invariants(&format!("after the kill at step {step} ({after:?})"));
        crashed.run();
        crashed.check_invariants(&format!("after the run following step {step}"));
        let (want, got) = (control.open(), crashed.open());
        assert_eq!(got, want, "step {step}: open pull requests differ");
        for head in want.keys() {
            assert_eq!(
                crashed.rendered_tree(head),
                control.rendered_tree(head),
                "step {step}: {head} holds another render"
            );
        }
    }
    eprintln!(
        "crash test: {} runs, {kills} killed mid-run, {finished} finished before the kill, 0 failures",
        runs()
    );
    assert!(kills > 0, "no run was killed: the delays are too long");
}
