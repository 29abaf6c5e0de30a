//! Issue 14: per-environment errors in the daemon, `run --once` and the
//! interval. The real `hydrant run` over a bare remote and the local forge,
//! with a channel served on 127.0.0.1: one environment whose `values.yaml` is
//! broken (a permanent failure), one whose push the remote refuses while a
//! marker file exists (a transient failure), and a healthy one.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::channel_server::{ChannelServer, bundled_spec as spec_json};
use common::daemon::{free_port, http, stop, wait_for};
use common::git::Remote;
use serde_json::Value;

const LICENSE: &str = "daemon-errors-license";

/// The bare remote refuses pushes to `hydrant/staging` while `marker` exists.
fn refuse_staging_while(remote: &Remote, marker: &Path) {
    let hook = remote.bare().join("hooks/pre-receive");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nwhile read old new ref; do\n  if [ \"$ref\" = refs/heads/hydrant/staging ] && [ -e '{}' ]; then\n    echo 'staging is closed for the test' >&2\n    exit 1\n  fi\ndone\nexit 0\n",
            marker.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn args(remote: &Remote, channel: &ChannelServer, dirs: &Path) -> Vec<String> {
    [
        "run",
        "--repo",
        &remote.url(),
        "--work-dir",
        dirs.join("w").to_str().unwrap(),
        "--state-dir",
        dirs.join("s").to_str().unwrap(),
        "--channel",
        &channel.url(),
        "--channel-cache-dir",
        dirs.join("c").to_str().unwrap(),
        "--channel-retries",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn channel() -> ChannelServer {
    let channel = ChannelServer::start(LICENSE);
    channel.set_latest("stable", &spec_json("channels/stable.yaml", None));
    channel.set_latest("canary", &spec_json("channels/canary.yaml", None));
    channel
}

/// One event of the daemon's JSON log about an environment.
#[derive(Debug)]
struct Event {
    cycle: u64,
    scope: String,
    env: String,
    message: String,
}

/// The JSON log's events about environments (from their `environment`
/// span, or their own `environment` field).
fn events(log: &str) -> Vec<Event> {
    let mut out = Vec::new();
    for line in log.lines() {
        // Not JSON: the line that says where the daemon serves.
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let spans = event["spans"].as_array().cloned().unwrap_or_default();
        let span = |name: &str| spans.iter().find(|s| s["name"] == name).cloned();
        let env = span("environment")
            .and_then(|s| s["environment"].as_str().map(String::from))
            .or_else(|| event["fields"]["environment"].as_str().map(String::from));
        let Some(env) = env else { continue };
        let cycle = span("cycle");
        out.push(Event {
            cycle: cycle
                .as_ref()
                .and_then(|c| c["cycle"].as_u64())
                .unwrap_or(0),
            scope: cycle
                .as_ref()
                .and_then(|c| c["scope"].as_str().map(String::from))
                .unwrap_or_default(),
            env,
            message: event["fields"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        });
    }
    out
}

/// The finished cycles over every environment (the timer's, not a
/// retry's), by number.
fn full_cycles(log: &str) -> BTreeSet<u64> {
    let finished: BTreeSet<u64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["fields"]["message"] == "cycle finished")
        .filter_map(|e| e["fields"]["cycle"].as_u64())
        .collect();
    events(log)
        .into_iter()
        .filter(|e| e.scope == "All" && finished.contains(&e.cycle))
        .map(|e| e.cycle)
        .collect()
}

/// The cycles in which `env` failed (one render or push attempt each).
fn failures(log: &str, env: &str) -> Vec<u64> {
    events(log)
        .into_iter()
        .filter(|e| e.env == env && e.message == "environment failed")
        .map(|e| e.cycle)
        .collect()
}

fn pulls(state: &Path) -> Vec<Value> {
    std::fs::read_dir(state.join("pulls"))
        .map(|e| {
            e.flatten()
                .filter(|f| f.path().extension().is_some_and(|x| x == "json"))
                .filter_map(|f| serde_json::from_str(&std::fs::read_to_string(f.path()).ok()?).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn has_pull(state: &Path, env: &str) -> bool {
    let branch = format!("hydrant/{env}");
    pulls(state).iter().any(|p| p["head"] == branch.as_str())
}

struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[test]
fn a_broken_and_a_refused_environment_neither_hold_back_the_healthy_one_nor_the_readiness() {
    let remote = Remote::new();
    let channel = channel();
    let dirs = tempfile::tempdir().unwrap();
    let marker = dirs.path().join("refuse-staging");
    std::fs::write(&marker, "").unwrap();
    refuse_staging_while(&remote, &marker);
    let good_dev = remote.read_main("environments/dev/values.yaml");
    remote.commit_to_main(
        "environments/dev/values.yaml",
        "global:\n  host: [unclosed\n",
        "Break dev's values",
    );
    let port = free_port();
    let log = dirs.path().join("stderr.log");
    let child = common::hydrant()
        .args(args(&remote, &channel, dirs.path()))
        .args(["--interval", "1s", "--channel-poll-interval", "0"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--log-format", "json", "--log-level", "info,hydrant=debug"])
        .env("HYDRANT_LICENSE", LICENSE)
        .current_dir(dirs.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let d = Running { child, log };
    let state = dirs.path().join("s");

    // The healthy environment is delivered while the others fail.
    wait_for(Duration::from_secs(60), "prod's pull request", || {
        has_pull(&state, "prod")
    });
    wait_for(Duration::from_secs(30), "the first cycle to finish", || {
        http(port, "GET", "/readyz", &[], "").is_some_and(|(s, _)| s == 200)
    });
    // Some cycles pass; readiness holds all along.
    let mut not_ready = Vec::new();
    wait_for(Duration::from_secs(60), "eight full cycles", || {
        if let Some((status, body)) = http(port, "GET", "/readyz", &[], "")
            && status != 200
        {
            not_ready.push(body);
        }
        full_cycles(&d.log()).len() >= 8
    });
    assert!(not_ready.is_empty(), "/readyz was not 200: {not_ready:?}");

    let text = d.log();
    let full = full_cycles(&text);
    let events = events(&text);
    for n in &full {
        assert!(
            events
                .iter()
                .any(|e| e.cycle == *n && e.env == "prod" && e.message == "environment reconciled"),
            "prod was not reconciled in full cycle {n}"
        );
    }
    let broken = failures(&text, "dev");
    assert_eq!(
        broken.len(),
        1,
        "a permanent failure is tried once while its inputs stay the same: {broken:?}"
    );
    let refused = failures(&text, "staging");
    assert!(
        !refused.is_empty() && refused.len() < full.len(),
        "the refused environment backs off on its own: tried in cycles {refused:?} of {full:?}"
    );
    let (_, metrics) = http(port, "GET", "/metrics", &[], "").unwrap();
    let samples = common::prometheus::parse(&metrics).unwrap_or_else(|e| panic!("{e}\n{metrics}"));
    for (env, class) in [("dev", "permanent"), ("staging", "transient")] {
        assert_eq!(
            common::prometheus::value(
                &samples,
                "hydrant_environment_failing",
                &[("environment", env), ("class", class)]
            ),
            Some(1.0),
            "{metrics}"
        );
    }
    assert!(!metrics.contains("environment=\"prod\",class"), "{metrics}");

    // Fixing dev's values (its inputs change) makes it tried and delivered;
    // removing the marker lets staging's backoff deliver it.
    remote.commit_to_main(
        "environments/dev/values.yaml",
        &good_dev.replace("wandb-dev.example.com", "wandb-dev2.example.com"),
        "Fix dev's values",
    );
    std::fs::remove_file(&marker).unwrap();
    wait_for(Duration::from_secs(60), "dev and staging delivered", || {
        has_pull(&state, "dev") && has_pull(&state, "staging")
    });
    assert_eq!(
        http(port, "GET", "/readyz", &[], "").map(|r| r.0),
        Some(200)
    );
    wait_for(Duration::from_secs(30), "no environment failing", || {
        http(port, "GET", "/metrics", &[], "")
            .is_some_and(|(_, m)| !m.contains("hydrant_environment_failing{"))
    });
    let text = d.log();
    for env in ["dev", "staging", "prod"] {
        assert!(
            self::events(&text).iter().any(|e| e.env == env),
            "the JSON log names {env}"
        );
    }
    let mut d = d;
    assert_eq!(stop(&mut d.child), 0);
}

#[test]
fn run_once_runs_one_cycle_and_exits_with_the_reconcile_exit_code() {
    let remote = Remote::new();
    let channel = channel();
    let dirs = tempfile::tempdir().unwrap();
    let once = |dirs: &Path| {
        let out = common::hydrant()
            .args(args(&remote, &channel, dirs))
            .args(["--once", "--listen", &format!("127.0.0.1:{}", free_port())])
            .env("HYDRANT_LICENSE", LICENSE)
            .current_dir(dirs)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = once(dirs.path());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(has_pull(&dirs.path().join("s"), "prod"), "{stderr}");
    assert!(!stderr.contains("serving on"), "{stderr}");

    remote.commit_to_main(
        "environments/dev/values.yaml",
        "global:\n  host: [unclosed\n",
        "Break dev's values",
    );
    let (code, stderr) = once(dirs.path());
    assert_eq!(code, Some(1), "an environment failed: {stderr}");
    assert!(stderr.contains("dev"), "{stderr}");
}

#[test]
fn an_interval_under_a_second_is_refused_as_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for interval in ["0s", "500ms"] {
        let out = common::hydrant()
            .args(["run", "--repo", ".", "--interval", interval])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{interval}: {stderr}");
        assert!(stderr.contains("under a second"), "{interval}: {stderr}");
    }
    let help = common::hydrant().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("`0` turns polling off"), "{help}");
    assert!(words.contains("at least `1s`"), "{help}");
}

#[test]
fn the_daemon_logs_what_it_did_at_info_by_default() {
    let remote = Remote::new();
    let channel = channel();
    let dirs = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dirs.path().join("stderr.log");
    let child = common::hydrant()
        .args(args(&remote, &channel, dirs.path()))
        .args(["--interval", "1h", "--listen", &format!("127.0.0.1:{port}")])
        .env("HYDRANT_LICENSE", LICENSE)
        .env_remove("HYDRANT_LOG_LEVEL")
        .env_remove("RUST_LOG")
        .current_dir(dirs.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut d = Running { child, log };
    wait_for(Duration::from_secs(60), "the first cycle", || {
        d.log().contains("cycle finished")
    });
    let text = d.log();
    assert!(text.contains("environment reconciled"), "{text}");
    assert!(text.contains("prod"), "{text}");
    assert_eq!(stop(&mut d.child), 0);
}
