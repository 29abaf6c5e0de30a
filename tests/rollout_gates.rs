//! Health gates in a rollout, with the real binary against a bare remote,
//! the local forge, a channel on disk and a health server on 127.0.0.1 whose
//! answer the test switches: three tenants, `c1` in the gated `canary` wave
//! and `r1`, `r2` in `rest`. The gate's token is bound in the operator's
//! `--config` file and never shows in any output.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::daemon::{free_port, http, sample, stop, wait_for};
use common::git::{Remote, git};
use common::{Run, run_in};
use serde_json::Value;

const TOKEN: &str = "health-token-9f8e7d6c5b4a";
const SOAK_SECS: u64 = 2;

/// A health server answering `GET /health/<env>` with `{"status": ANSWER}`,
/// where the test sets ANSWER; `down` drops every connection unanswered.
struct Health {
    origin: String,
    answer: Arc<Mutex<String>>,
    /// The `Authorization` header of each request.
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl Health {
    fn start() -> Health {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new("down".to_string()));
        let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let (a, s) = (answer.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut auth = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("authorization")
                    {
                        auth = Some(v.trim().to_string());
                    }
                }
                s.lock().unwrap().push(auth);
                let answer = a.lock().unwrap().clone();
                if answer == "down" {
                    continue;
                }
                let body = format!("{{\"status\":\"{answer}\"}}");
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Health {
            origin,
            answer,
            seen,
        }
    }

    fn answer(&self, answer: &str) {
        *self.answer.lock().unwrap() = answer.to_string();
    }

    fn requests(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().clone()
    }
}

struct Fleet {
    remote: Remote,
    dirs: tempfile::TempDir,
    health: Health,
}

impl Fleet {
    /// `c1`, `r1` and `r2` on stable 0.62.1, merged; stable 0.63.0 waits in
    /// `channels/stable/releases/`; `hydrant.yaml` gates the canary wave
    /// with `on_failure`.
    fn new(on_failure: &str) -> Fleet {
        let fleet = Fleet {
            remote: Remote::new(),
            dirs: tempfile::tempdir().unwrap(),
            health: Health::start(),
        };
        let rollout = format!(
            "rollout:\n  gates:\n    - name: health\n      http:\n        url: \"{}/health/{{env}}\"\n        credential: health\n        expect: {{path: status, equals: Healthy}}\n  waves:\n    - {{name: canary, environments: [c1], soak: {SOAK_SECS}s, gates: [health], onFailure: {on_failure}}}\n    - {{name: rest, environments: [\"r*\"]}}\n",
            fleet.health.origin
        );
        let tenants: Vec<String> = ["c1", "r1", "r2"].map(String::from).to_vec();
        fleet
            .remote
            .seed_tenants(&tenants, &[("hydrant.yaml", &rollout)]);
        std::fs::write(fleet.dirs.path().join("health-token"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(
            fleet.config(),
            format!(
                "credentials:\n  health:\n    tokenFile: health-token\n    origins: [\"{}\"]\n",
                fleet.health.origin
            ),
        )
        .unwrap();
        fleet.reconcile();
        fleet.merge(&["c1", "r1", "r2"]);
        fleet.reconcile();
        assert!(fleet.open_pulls().is_empty());
        fleet
    }

    fn config(&self) -> PathBuf {
        self.dirs.path().join("operator.yaml")
    }

    fn args(&self) -> Vec<String> {
        let path = |p: &str| self.dirs.path().join(p).display().to_string();
        vec![
            "--config".into(),
            self.config().display().to_string(),
            "--repo".into(),
            self.remote.url(),
            "--work-dir".into(),
            path("work"),
            "--state-dir".into(),
            path("state"),
        ]
    }

    fn run(&self, command: &[&str]) -> Run {
        let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        args.extend(self.args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run_in(self.dirs.path(), &args);
        assert_no_token(&run.stdout);
        assert_no_token(&run.stderr);
        run
    }

    fn reconcile(&self) -> Value {
        let run = self.run(&["reconcile", "--output", "json"]).ok();
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
    }

    /// The daemon, a cycle a second.
    fn daemon(&self, port: u16) -> Child {
        common::hydrant()
            .arg("run")
            .args(self.args())
            .args(["--interval", "1s", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(self.dirs.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn pulls(&self) -> Vec<Value> {
        let Ok(dir) = std::fs::read_dir(self.dirs.path().join("state/pulls")) else {
            return Vec::new();
        };
        // The daemon may be writing one as it is read: what does not parse
        // yet is not there yet.
        dir.flatten()
            .filter_map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok())
            .collect()
    }

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

    fn open_pull(&self, env: &str) -> Option<Value> {
        self.pulls()
            .into_iter()
            .find(|p| p["head"] == format!("hydrant/{env}") && p["state"] == "open")
    }

    fn merge(&self, envs: &[&str]) {
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

    /// stable 0.63.0 published; the canary takes it and merges.
    fn canary_takes_the_release(&self) {
        let text = self
            .remote
            .read_main("channels/stable/releases/0.63.0.yaml");
        self.remote
            .commit_to_main("channels/stable.yaml", &text, "stable 0.63.0");
        self.reconcile();
        assert_eq!(self.open_pulls(), set(&["c1"]));
        self.merge(&["c1"]);
    }

    fn holds_on_main(&self) -> Option<String> {
        let out = std::process::Command::new("git")
            .args(["show", "main:holds.yaml"])
            .current_dir(self.remote.bare())
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    }
}

fn set(envs: &[&str]) -> BTreeSet<String> {
    envs.iter().map(|s| s.to_string()).collect()
}

fn assert_no_token(text: &str) {
    assert!(!text.contains(TOKEN), "the token leaked: {text}");
}

fn outcome<'a>(run: &'a Value, env: &str) -> &'a Value {
    run["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["env"] == env)
        .unwrap_or_else(|| panic!("{env} missing: {run}"))
}

#[test]
fn a_healthy_gate_lets_the_next_wave_move_on_after_its_soak_and_an_unreachable_one_delays_it() {
    let fleet = Fleet::new("halt");
    fleet.canary_takes_the_release();
    std::thread::sleep(Duration::from_secs(SOAK_SECS + 1));

    // Soaked, but the gate cannot be reached: the next wave waits, nothing fails.
    fleet.health.answer("down");
    for _ in 0..3 {
        let run = fleet.reconcile();
        let r1 = outcome(&run, "r1");
        let waiting = r1["waiting"].as_str().unwrap_or_default();
        assert!(
            waiting.starts_with("gate `health` has not answered Healthy for c1: not yet"),
            "{r1}"
        );
    }
    assert!(fleet.open_pulls().is_empty(), "{:?}", fleet.open_pulls());
    assert_eq!(fleet.holds_on_main(), None);
    let plan = fleet.run(&["plan"]).ok().stdout;
    assert!(
        plan.contains(
            "stays until it may take 0.63.0: gate `health` has not answered Healthy for c1"
        ),
        "{plan}"
    );

    // Healthy: the next wave takes the release.
    fleet.health.answer("Healthy");
    let run = fleet.reconcile();
    assert_eq!(outcome(&run, "r1")["action"], "opened", "{run}");
    assert_eq!(fleet.open_pulls(), set(&["r1", "r2"]));

    // The token went to the health server, and nowhere else.
    let seen = fleet.health.requests();
    assert!(seen.len() >= 4, "{seen:?}");
    let bearer = format!("Bearer {TOKEN}");
    assert!(
        seen.iter().all(|a| a.as_deref() == Some(bearer.as_str())),
        "{seen:?}"
    );
    for p in fleet.pulls() {
        assert_no_token(&p.to_string());
    }
}

/// Runs the daemon until the canary's gate has answered Degraded three
/// times and the halt is on `main`; its holds.yaml, metrics and output.
fn halt_by_the_daemon(fleet: &Fleet, wait_for_rollback: bool) -> (String, String, String) {
    fleet.health.answer("Degraded");
    fleet.health.seen.lock().unwrap().clear();
    let port = free_port();
    let mut daemon = fleet.daemon(port);
    wait_for(Duration::from_secs(60), "the halt on main", || {
        fleet.holds_on_main().is_some()
    });
    if wait_for_rollback {
        wait_for(Duration::from_secs(60), "the rollback pull request", || {
            fleet.open_pull("c1").is_some()
        });
        // The pull request opens midway through a cycle; the cycle's
        // metrics are published when it ends.
        wait_for(
            Duration::from_secs(30),
            "the rollback in the metrics",
            || {
                let metrics = http(port, "GET", "/metrics", &[], "").unwrap().1;
                sample(&metrics, "hydrant_rollout_rollback{environment=\"c1\"}") == 1.0
            },
        );
    } else {
        // A few more cycles, in which nothing else may happen.
        let cycles = |port| {
            sample(
                &http(port, "GET", "/metrics", &[], "").unwrap().1,
                "hydrant_cycles_total{outcome=\"ok\"}",
            )
        };
        let now = cycles(port);
        wait_for(Duration::from_secs(30), "two more cycles", || {
            cycles(port) >= now + 2.0
        });
    }
    let metrics = http(port, "GET", "/metrics", &[], "").unwrap().1;
    stop(&mut daemon);
    let mut out = String::new();
    for mut pipe in [
        Box::new(daemon.stdout.take().unwrap()) as Box<dyn std::io::Read>,
        Box::new(daemon.stderr.take().unwrap()),
    ] {
        pipe.read_to_string(&mut out).unwrap();
    }
    assert_no_token(&out);
    (fleet.holds_on_main().unwrap(), metrics, out)
}

use std::io::Read;

#[test]
fn a_gate_answering_degraded_three_times_halts_the_rollout() {
    let fleet = Fleet::new("halt");
    fleet.canary_takes_the_release();
    let (holds, metrics, _) = halt_by_the_daemon(&fleet, false);
    assert!(
        holds.contains("- all: true")
            && holds.contains("reason: \"gate `health` failed for c1 on 0.63.0: `status` is `Degraded`, not `Healthy` (3 failures in a row)\"")
            && holds.contains("by: hydrant")
            && holds.contains("skip: []"),
        "{holds}"
    );
    assert_no_token(&holds);
    // No further wave, and the canary stays where it is.
    assert!(fleet.open_pulls().is_empty(), "{:?}", fleet.open_pulls());
    assert!(
        sample(
            &metrics,
            "hydrant_rollout_halted{channel=\"stable\",version=\"0.63.0\"}"
        ) == 1.0,
        "{metrics}"
    );
    assert!(
        sample(&metrics, "hydrant_gate_failures_total{gate=\"health\"}") >= 3.0,
        "{metrics}"
    );
    // The daemon asked three times: a failed gate is asked no more.
    assert_eq!(fleet.health.requests().len(), 3);

    let status = fleet.run(&["status"]).ok().stdout;
    assert!(
        status.contains("r1: wave rest, stays until it may take 0.63.0: held by hydrant: gate `health` failed for c1 on 0.63.0"),
        "{status}"
    );
}

#[test]
fn a_failed_gate_with_on_failure_rollback_skips_the_release_and_opens_a_rollback_pull_request() {
    let fleet = Fleet::new("rollback");
    fleet.canary_takes_the_release();
    let (holds, metrics, _) = halt_by_the_daemon(&fleet, true);
    assert!(
        holds.contains("- all: true")
            && holds.contains("by: hydrant")
            && holds.contains("skip:\n  - \"0.63.0\""),
        "{holds}"
    );
    let pr = fleet.open_pull("c1").unwrap();
    assert_eq!(
        pr["title"], "hydrant(c1): roll back stable 0.63.0 → 0.62.1",
        "{pr}"
    );
    let body = pr["body"].as_str().unwrap();
    assert!(
        body.starts_with("## Rollback\n") && body.contains("gate \\`health\\` failed"),
        "{body}"
    );
    assert_no_token(body);
    assert_eq!(fleet.open_pulls(), set(&["c1"]));
    assert_eq!(
        sample(&metrics, "hydrant_rollout_skipped{version=\"0.63.0\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "hydrant_rollout_rollback{environment=\"c1\"}"),
        1.0,
        "{metrics}"
    );

    // After a restart, git alone says the same: the plan keeps the rollback.
    let plan = fleet.run(&["plan"]).ok().stdout;
    assert!(
        plan.contains("rolling back from 0.63.0 to 0.62.1"),
        "{plan}"
    );
    let status = fleet.run(&["status"]).ok().stdout;
    assert!(
        status.contains("c1: wave canary, rolling back from 0.63.0 to 0.62.1: 0.63.0 is skipped"),
        "{status}"
    );

    // Merged, the canary runs 0.62.1 again and 0.63.0 is never offered.
    fleet.merge(&["c1"]);
    let run = fleet.reconcile();
    assert!(fleet.open_pulls().is_empty(), "{run}");
    for p in fleet.pulls() {
        assert_no_token(&p.to_string());
    }
}
