//! Rollouts in waves, with the real binary against a bare remote, the local
//! forge and a channel on disk: twelve environments in three waves
//! (`canary`: t01, t02; `early`: the rest of `t0*`; `everyone`: t10–t12),
//! with a soak of a few seconds. Merges are made by hand with git, as a
//! reviewer's merge would be.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::git::{Remote, git};
use common::{Run, run_in};
use serde_json::Value;

const SOAK_SECS: u64 = 3;

fn waves() -> String {
    format!(
        "# rollout of stable, in three waves\nrollout:\n  waves:\n    - name: canary\n      environments: [t01, t02]\n      soak: {SOAK_SECS}s\n    - name: early\n      environments: [\"t0*\"]\n      soak: {SOAK_SECS}s\n    - name: everyone\n      environments: [\"*\"]\n"
    )
}

fn tenants() -> Vec<String> {
    (1..=12).map(|i| format!("t{i:02}")).collect()
}

struct Fleet {
    remote: Remote,
    dirs: tempfile::TempDir,
}

impl Fleet {
    /// Twelve tenants on stable 0.62.1, merged, with `rollout:` in
    /// `hydrant.yaml`; stable 0.63.0 waits in `channels/stable/releases/`.
    fn new() -> Fleet {
        let fleet = Fleet {
            remote: Remote::new(),
            dirs: tempfile::tempdir().unwrap(),
        };
        fleet
            .remote
            .seed_tenants(&tenants(), &[("hydrant.yaml", &waves())]);
        let first = fleet.reconcile();
        assert_eq!(fleet.open_pulls().len(), 12, "{}", first.stdout);
        fleet.merge(&tenants());
        fleet.reconcile();
        assert!(fleet.open_pulls().is_empty());
        fleet
    }

    fn state(&self) -> PathBuf {
        self.dirs.path().join("state")
    }

    fn run(&self, command: &[&str]) -> Run {
        let work = self.dirs.path().join("work");
        let state = self.state();
        let url = self.remote.url();
        let mut args = command.to_vec();
        args.extend([
            "--repo",
            &url,
            "--work-dir",
            work.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ]);
        run_in(self.dirs.path(), &args)
    }

    /// One cycle; its outcomes.
    fn reconcile(&self) -> Run {
        self.run(&["reconcile", "--once", "--output", "json"]).ok()
    }

    /// Every pull request the local forge holds.
    fn pulls(&self) -> Vec<Value> {
        let Ok(dir) = std::fs::read_dir(self.state().join("pulls")) else {
            return Vec::new();
        };
        dir.flatten()
            .map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap())
            .collect()
    }

    /// The environments with an open pull request.
    fn open_pulls(&self) -> BTreeSet<String> {
        self.pulls()
            .iter()
            .filter(|p| p["state"] == "open")
            .map(|p| {
                p["head"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("hydrant/")
                    .to_string()
            })
            .collect()
    }

    fn pull(&self, env: &str, state: &str) -> Value {
        self.pulls()
            .into_iter()
            .filter(|p| p["head"] == format!("hydrant/{env}") && p["state"] == state)
            .max_by_key(|p| p["number"].as_u64())
            .unwrap_or_else(|| panic!("no {state} pull request for {env}"))
    }

    /// A reviewer merges `hydrant/<env>` of each into `main`.
    fn merge(&self, envs: &[String]) {
        let w = self.remote.work();
        git(&w, &["fetch", "-q", "origin"]);
        git(&w, &["checkout", "-q", "main"]);
        git(&w, &["pull", "-q", "--ff-only", "origin", "main"]);
        for env in envs {
            let branch = format!("origin/hydrant/{env}");
            git(
                &w,
                &[
                    "merge",
                    "-q",
                    "--no-ff",
                    "-m",
                    &format!("Merge {branch}"),
                    &branch,
                ],
            );
        }
        git(&w, &["push", "-q", "origin", "main"]);
    }

    /// Publishes a release as stable's latest (the one before it stays
    /// fetchable by version).
    fn publish(&self, version: &str) {
        let text = self
            .remote
            .read_main("channels/stable/releases/0.63.0.yaml");
        let text = text.replace("\"0.63.0\"", &format!("\"{version}\""));
        self.remote
            .commit_to_main("channels/stable.yaml", &text, &format!("stable {version}"));
    }

    fn version_on(&self, branch: &str, env: &str) -> String {
        let meta = git(
            &self.remote.bare(),
            &["show", &format!("{branch}:rendered/{env}/hydrant.metadata")],
        );
        let meta: Value = serde_json::from_str(&meta).unwrap();
        meta["channel"]["version"].as_str().unwrap().to_string()
    }
}

fn outcome<'a>(run: &'a Value, env: &str) -> &'a Value {
    run["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["env"] == env)
        .unwrap_or_else(|| panic!("{env} missing: {run}"))
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn set(envs: &[&str]) -> BTreeSet<String> {
    envs.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_release_goes_through_the_waves_and_restarts_when_the_channel_moves_on() {
    let fleet = Fleet::new();
    fleet.publish("0.63.0");

    // The first wave only.
    let run = json(&fleet.reconcile());
    assert_eq!(fleet.open_pulls(), set(&["t01", "t02"]));
    assert_eq!(outcome(&run, "t01")["wave"], "canary");
    let t03 = outcome(&run, "t03");
    assert_eq!(t03["wave"], "early");
    assert_eq!(t03["target"], "0.63.0");
    assert_eq!(
        t03["waiting"], "wave `early` waits for `canary`: 0 of 2 run 0.63.0",
        "{t03}"
    );
    let body = fleet.pull("t01", "open")["body"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        body.contains("| Wave | `canary` (the first wave) |"),
        "{body}"
    );

    // `plan` and `status` say why each one waits, per wave and per
    // environment.
    let plan = fleet.run(&["plan"]).ok().stdout;
    assert!(
        plan.contains("wave canary  stable 0.63.0: 0 of 2 run it, 2 offered, 0 waiting, 0 held"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "stays until it may take 0.63.0: wave `everyone` waits for `canary`: 0 of 2 run 0.63.0"
        ),
        "{plan}"
    );
    let status = fleet.run(&["status"]).ok().stdout;
    assert!(
        status.contains("wave early  stable 0.63.0: 0 of 7 run it, 0 offered, 7 waiting, 0 held"),
        "{status}"
    );
    assert!(
        status.contains("t03: wave early, stays until it may take 0.63.0: wave `early` waits for `canary`: 0 of 2 run 0.63.0"),
        "{status}"
    );
    let status = json(&fleet.run(&["status", "--output", "json"]).ok());
    assert_eq!(status["waves"][2]["wave"], "everyone", "{status}");
    assert_eq!(status["waves"][2]["waiting"], 3, "{status}");
    let t10 = &status["environments"].as_array().unwrap()[9];
    assert_eq!(t10["env"], "t10");
    assert_eq!(t10["wave"], "everyone");
    assert_eq!(
        t10["waiting"],
        "wave `everyone` waits for `canary`: 0 of 2 run 0.63.0"
    );

    // An override changed in a third-wave environment reaches it at the
    // release it runs.
    let values = fleet.remote.read_main("environments/t12/values.yaml");
    assert!(values.contains("sessionLengthHours: 168"));
    fleet.remote.commit_to_main(
        "environments/t12/values.yaml",
        &values.replace("sessionLengthHours: 168", "sessionLengthHours: 72"),
        "Shorter sessions for t12",
    );
    fleet.reconcile();
    assert_eq!(fleet.open_pulls(), set(&["t01", "t02", "t12"]));
    let t12 = fleet.pull("t12", "open");
    assert_eq!(t12["title"], "hydrant(t12): re-render", "{t12}");
    assert_eq!(fleet.version_on("hydrant/t12", "t12"), "0.62.1");
    fleet.merge(&["t12".to_string()]);

    // The first wave merges; the second waits out the soak, then goes.
    let merged = Instant::now();
    fleet.merge(&["t01".to_string(), "t02".to_string()]);
    let run = json(&fleet.run(&["plan", "--output", "json"]).ok());
    if merged.elapsed() < Duration::from_secs(SOAK_SECS - 1) {
        let waiting = outcome(&run, "t05")["waiting"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(waiting.starts_with("soaking until "), "{waiting}");
        assert!(waiting.ends_with("(wave `canary`)"), "{waiting}");
        assert_eq!(outcome(&run, "t05")["decision"], "nothing");
    }
    std::thread::sleep(Duration::from_secs(SOAK_SECS + 1).saturating_sub(merged.elapsed()));
    fleet.reconcile();
    let second: Vec<String> = (3..=9).map(|i| format!("t{i:02}")).collect();
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    assert_eq!(fleet.open_pulls(), set(&second));
    assert_eq!(fleet.version_on("hydrant/t05", "t05"), "0.63.0");
    let run = json(&fleet.run(&["plan", "--output", "json"]).ok());
    assert_eq!(
        outcome(&run, "t10")["waiting"],
        "wave `everyone` waits for `early`: 0 of 7 run 0.63.0"
    );

    // A new release mid-rollout starts again from the first wave: the
    // second wave's pull requests for 0.63.0 are closed, saying why.
    fleet.publish("0.64.0");
    fleet.reconcile();
    assert_eq!(fleet.open_pulls(), set(&["t01", "t02"]));
    assert_eq!(fleet.version_on("hydrant/t01", "t01"), "0.64.0");
    let closed = fleet.pull("t05", "closed");
    let said = closed["comments"].to_string();
    assert!(said.contains("superseded by `0.64.0`"), "{said}");
    assert_eq!(fleet.version_on("main", "t05"), "0.62.1");
}

#[test]
fn a_skipped_release_is_closed_where_open_and_kept_where_merged() {
    let fleet = Fleet::new();
    fleet.publish("0.63.0");
    fleet.reconcile();
    assert_eq!(fleet.open_pulls(), set(&["t01", "t02"]));
    fleet.merge(&["t01".to_string()]);
    fleet
        .remote
        .commit_to_main("holds.yaml", "skip: [\"0.63.0\"]\n", "Skip 0.63.0");

    let run = json(&fleet.reconcile());
    assert!(fleet.open_pulls().is_empty(), "{:?}", fleet.open_pulls());
    let said = fleet.pull("t02", "closed")["comments"].to_string();
    assert!(said.contains("`0.63.0` is skipped"), "{said}");
    // t01 merged it and keeps it: no downgrade (its merged pull request is
    // closed as no longer needed).
    assert_eq!(outcome(&run, "t01")["version"]["to"], "0.63.0");
    assert_ne!(outcome(&run, "t01")["action"], "opened");
    assert_eq!(fleet.version_on("main", "t01"), "0.63.0");
    assert_eq!(fleet.version_on("main", "t02"), "0.62.1");
    // Never offered again.
    std::thread::sleep(Duration::from_secs(SOAK_SECS + 1));
    fleet.reconcile();
    assert!(fleet.open_pulls().is_empty(), "{:?}", fleet.open_pulls());
}

#[test]
fn a_rollout_block_with_a_typo_is_refused_with_file_line_and_key_and_nothing_is_pushed() {
    let remote = Remote::new();
    remote.commit_to_main(
        "hydrant.yaml",
        "rollout:\n  waves:\n    - name: canary\n      environments: [dev]\n      sok: 2s\n",
        "Waves, with a typo",
    );
    let dirs = tempfile::tempdir().unwrap();
    let work = dirs.path().join("work");
    let state = dirs.path().join("state");
    let url = remote.url();
    let run = run_in(
        dirs.path(),
        &[
            "reconcile",
            "--once",
            "--repo",
            &url,
            "--work-dir",
            work.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("`hydrant.yaml`, line 5")
            && run.stderr.contains("rollout.waves.0")
            && run.stderr.contains("sok"),
        "{}",
        run.stderr
    );
    assert_eq!(remote.branches(), vec!["main"]);
    assert!(!state.join("pulls").exists());
}
