//! A fleet for rollout tests: twelve tenants on stable 0.62.1 in three waves
//! (`canary`: t01, t02; `early`: the rest of `t0*`; `everyone`: t10–t12)
//! with a soak of a few seconds, on a bare remote with the local forge and
//! the channel on disk. Merges are made by hand with git, as a reviewer's
//! merge would be.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::Run;
use super::daemon::{free_port, http, wait_for};
use super::git::{Remote, git};

pub const SOAK_SECS: u64 = 3;

pub fn waves() -> String {
    format!(
        "# rollout of stable, in three waves\nrollout:\n  waves:\n    - name: canary\n      environments: [t01, t02]\n      soak: {SOAK_SECS}s\n    - name: early\n      environments: [\"t0*\"]\n      soak: {SOAK_SECS}s\n    - name: everyone\n      environments: [\"*\"]\n"
    )
}

pub fn tenants() -> Vec<String> {
    (1..=12).map(|i| format!("t{i:02}")).collect()
}

pub struct Fleet {
    pub remote: Remote,
    pub dirs: tempfile::TempDir,
}

impl Fleet {
    /// Twelve tenants on stable 0.62.1, merged, with `rollout:` in
    /// `hydrant.yaml`; stable 0.63.0 waits in `channels/stable/releases/`.
    pub fn new() -> Fleet {
        Fleet::of(&tenants(), &waves())
    }

    /// `tenants` on stable 0.62.1, merged, with `hydrant_yaml`; stable
    /// 0.63.0 waits in `channels/stable/releases/`.
    pub fn of(tenants: &[String], hydrant_yaml: &str) -> Fleet {
        let fleet = Fleet {
            remote: Remote::new(),
            dirs: tempfile::tempdir().unwrap(),
        };
        fleet
            .remote
            .seed_tenants(tenants, &[("hydrant.yaml", hydrant_yaml)]);
        let first = fleet.reconcile_unpaced();
        assert_eq!(fleet.open_pulls().len(), tenants.len(), "{}", first.stdout);
        fleet.merge(tenants);
        fleet.reconcile_unpaced();
        assert!(fleet.open_pulls().is_empty());
        fleet
    }

    pub fn state(&self) -> PathBuf {
        self.dirs.path().join("state")
    }

    pub fn run(&self, command: &[&str]) -> Run {
        self.remote.run_hydrant(self.dirs.path(), command)
    }

    /// One cycle; its outcomes.
    pub fn reconcile(&self) -> Run {
        self.run(&["reconcile", "--once", "--output", "json"]).ok()
    }

    /// One cycle with no pull-request budget in the way (a fleet larger
    /// than the default 50 new pull requests an hour); its outcomes.
    pub fn reconcile_unpaced(&self) -> Run {
        self.run(&[
            "reconcile",
            "--once",
            "--output",
            "json",
            "--max-new-pull-requests-per-hour",
            "1000000",
        ])
        .ok()
    }

    /// `holds.yaml` on the remote's `main` (empty when there is none).
    pub fn holds_on_main(&self) -> String {
        let out = std::process::Command::new("git")
            .args(["show", "main:holds.yaml"])
            .current_dir(self.remote.bare())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Every pull request the local forge holds.
    pub fn pulls(&self) -> Vec<Value> {
        let Ok(dir) = std::fs::read_dir(self.state().join("pulls")) else {
            return Vec::new();
        };
        // Not the temporary files of a write in progress (a daemon may be writing).
        dir.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap())
            .collect()
    }

    /// The environments with an open pull request.
    pub fn open_pulls(&self) -> BTreeSet<String> {
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

    pub fn pull(&self, env: &str, state: &str) -> Value {
        self.pulls()
            .into_iter()
            .filter(|p| p["head"] == format!("hydrant/{env}") && p["state"] == state)
            .max_by_key(|p| p["number"].as_u64())
            .unwrap_or_else(|| panic!("no {state} pull request for {env}"))
    }

    /// A reviewer merges `hydrant/<env>` of each into `main`.
    pub fn merge(&self, envs: &[String]) {
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
    pub fn publish(&self, version: &str) {
        let text = self
            .remote
            .read_main("channels/stable/releases/0.63.0.yaml");
        let text = text.replace("\"0.63.0\"", &format!("\"{version}\""));
        self.remote
            .commit_to_main("channels/stable.yaml", &text, &format!("stable {version}"));
    }

    pub fn version_on(&self, branch: &str, env: &str) -> String {
        let meta = git(
            &self.remote.bare(),
            &["show", &format!("{branch}:rendered/{env}/hydrant.metadata")],
        );
        let meta: Value = serde_json::from_str(&meta).unwrap();
        meta["channel"]["version"].as_str().unwrap().to_string()
    }
}

/// `hydrant run` over a [`Fleet`]: its remote, work and state directories.
pub struct FleetDaemon {
    pub child: Child,
    pub port: u16,
}

impl FleetDaemon {
    /// First SIGTERM: the daemon finishes its cycle and exits; its exit code.
    pub fn stop(mut self) -> i32 {
        super::daemon::stop(&mut self.child)
    }
}

impl Drop for FleetDaemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            super::daemon::stop(&mut self.child);
        }
    }
}

impl Fleet {
    /// Starts `hydrant run` every `interval` with the trigger token `token`,
    /// on the same flags as [`Fleet::run`]; its log goes to `daemon-<port>.log`.
    pub fn daemon(&self, interval: &str, token: &str) -> FleetDaemon {
        self.daemon_with(interval, &[], &[("HYDRANT_TRIGGER_TOKEN", token)])
    }

    /// Starts `hydrant run` like [`Fleet::daemon`], with more flags and
    /// environment variables.
    pub fn daemon_with(&self, interval: &str, args: &[&str], vars: &[(&str, &str)]) -> FleetDaemon {
        let port = free_port();
        let log = self.dirs.path().join(format!("daemon-{port}.log"));
        let child = super::hydrant()
            .args(["run", "--interval", interval, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--repo", &self.remote.url(), "--work-dir"])
            .arg(self.dirs.path().join("work"))
            .arg("--state-dir")
            .arg(self.state())
            .args(args)
            .envs(vars.iter().copied())
            .current_dir(self.dirs.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        wait_for(Duration::from_secs(20), "the daemon to serve", || {
            http(port, "GET", "/healthz", &[], "").is_some_and(|(s, _)| s == 200)
        });
        FleetDaemon { child, port }
    }
}

pub fn outcome<'a>(run: &'a Value, env: &str) -> &'a Value {
    run["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["env"] == env)
        .unwrap_or_else(|| panic!("{env} missing: {run}"))
}

pub fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

pub fn set(envs: &[&str]) -> BTreeSet<String> {
    envs.iter().map(|s| s.to_string()).collect()
}
