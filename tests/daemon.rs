//! `hydrant run` as a real process: schedule, webhooks, health, readiness,
//! metrics and graceful shutdown, against a bare remote, a channel served on
//! 127.0.0.1 and the local forge.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::channel_server::{ChannelServer, Fault, bundled_spec as spec_json};
use common::daemon::{free_port, http, metric, stop, wait_for};
use common::git::Remote;
use common::prometheus;
use hmac::{Hmac, Mac};
use serde_json::Value;

const LICENSE: &str = "daemon-test-license";
const SECRET: &str = "webhook-secret-xyz";

struct Daemon {
    child: Child,
    port: u16,
    remote: Remote,
    channel: ChannelServer,
    dirs: tempfile::TempDir,
}

impl Daemon {
    fn start(interval: &str, channel_url: Option<&str>) -> Daemon {
        Daemon::start_with(interval, channel_url, &[])
    }

    fn start_with(interval: &str, channel_url: Option<&str>, extra: &[&str]) -> Daemon {
        let remote = Remote::new();
        let channel = ChannelServer::start(LICENSE);
        channel.set_latest("stable", &spec_json("channels/stable.yaml", None));
        channel.set_latest("canary", &spec_json("channels/canary.yaml", None));
        let dirs = tempfile::tempdir().unwrap();
        let port = free_port();
        let url = channel_url
            .map(String::from)
            .unwrap_or_else(|| channel.channel_url());
        let child = common::hydrant()
            .args([
                "run",
                "--repo",
                &remote.url(),
                "--interval",
                interval,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--work-dir",
                dirs.path().join("w").to_str().unwrap(),
                "--state-dir",
                dirs.path().join("s").to_str().unwrap(),
                "--channel",
                &url,
                "--channel-cache-dir",
                dirs.path().join("c").to_str().unwrap(),
                "--channel-retries",
                "0",
            ])
            .args(if extra.contains(&"--log-level") {
                &[][..]
            } else {
                &["--log-level", "info"][..]
            })
            .args(extra)
            .env("HYDRANT_LICENSE", LICENSE)
            .env("HYDRANT_GITHUB_WEBHOOK_SECRET", SECRET)
            .env("HYDRANT_TRIGGER_TOKEN", "trigger-token")
            .current_dir(dirs.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dirs.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            port,
            remote,
            channel,
            dirs,
        };
        d.wait_for(Duration::from_secs(20), "the daemon to serve", || {
            http(d.port, "GET", "/healthz", &[], "").is_some_and(|(s, _)| s == 200)
        });
        d
    }

    fn wait_for(&self, limit: Duration, what: &str, ok: impl FnMut() -> bool) -> Duration {
        wait_for(limit, what, ok)
    }

    fn metric(&self, name: &str) -> f64 {
        metric(self.port, name)
    }

    fn pulls(&self) -> Vec<Value> {
        std::fs::read_dir(self.dirs.path().join("s/pulls"))
            .map(|e| {
                // Not the temporary files of a write in progress.
                e.flatten()
                    .filter(|f| f.path().extension().is_some_and(|x| x == "json"))
                    .map(|f| {
                        serde_json::from_str(&std::fs::read_to_string(f.path()).unwrap()).unwrap()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn stop(mut self) -> (i32, String) {
        (stop(&mut self.child), self.stderr())
    }

    /// What the daemon logged so far.
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dirs.path().join("stderr.log")).unwrap_or_default()
    }

    /// The environments reconciled in each cycle, from JSON logs: cycle
    /// number → (the cycle's scope, environment → version).
    fn cycles(&self) -> BTreeMap<u64, (String, BTreeMap<String, String>)> {
        let mut cycles: BTreeMap<u64, (String, BTreeMap<String, String>)> = BTreeMap::new();
        for line in self.stderr().lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if event["fields"]["message"] != "environment reconciled" {
                continue;
            }
            let spans = event["spans"].as_array().cloned().unwrap_or_default();
            let span = |name: &str| spans.iter().find(|s| s["name"] == name).cloned();
            let (Some(cycle), Some(env)) = (span("cycle"), span("environment")) else {
                panic!("an environment event outside its spans: {line}");
            };
            let entry = cycles.entry(cycle["cycle"].as_u64().unwrap()).or_default();
            entry.0 = cycle["scope"].as_str().unwrap_or("").to_string();
            entry.1.insert(
                env["environment"].as_str().unwrap().to_string(),
                env["version"].as_str().unwrap_or("").to_string(),
            );
        }
        cycles
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[test]
fn a_new_channel_version_produces_a_pull_request_within_two_intervals_and_metrics_count_it() {
    let d = Daemon::start("2s", None);
    d.wait_for(Duration::from_secs(30), "the first cycle", || {
        http(d.port, "GET", "/readyz", &[], "").is_some_and(|(s, _)| s == 200)
    });
    assert_eq!(d.pulls().len(), 2);
    d.channel
        .set_latest("stable", &spec_json("channels/stable.yaml", Some("0.63.1")));
    let took = d.wait_for(Duration::from_secs(15), "the PR to follow 0.63.1", || {
        d.pulls()
            .iter()
            .any(|p| p["title"].as_str().unwrap_or("").ends_with("0.63.1"))
    });
    assert!(
        took <= Duration::from_secs(5),
        "took {took:?} with a 2s interval"
    );
    // The pull request is written before the cycle that wrote it is counted.
    d.wait_for(Duration::from_secs(10), "the cycle to be counted", || {
        d.metric("hydrant_pull_requests_total{action=\"updated\"}") >= 1.0
    });
    let (_, text) = http(d.port, "GET", "/metrics", &[], "").unwrap();
    let samples = prometheus::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(
        samples.iter().all(|s| s.name.starts_with("hydrant_")),
        "{text}"
    );
    let cycles = ["ok", "failed"]
        .iter()
        .map(|o| prometheus::value(&samples, "hydrant_cycles_total", &[("outcome", o)]).unwrap())
        .sum::<f64>();
    let counted = prometheus::value(&samples, "hydrant_cycle_duration_seconds_count", &[]);
    assert_eq!(
        Some(cycles),
        counted,
        "every cycle is in the duration histogram"
    );
    assert!(
        d.metric("hydrant_cycles_total{outcome=\"ok\"}") >= 2.0,
        "{text}"
    );
    assert!(
        d.metric("hydrant_pull_requests_total{action=\"opened\"}") >= 2.0,
        "{text}"
    );
    assert!(
        d.metric("hydrant_pull_requests_total{action=\"updated\"}") >= 1.0,
        "{text}"
    );
    assert!(
        text.contains("hydrant_environment_last_action{environment=\"prod\""),
        "{text}"
    );
    let (code, _) = d.stop();
    assert_eq!(code, 0);
}

#[test]
fn a_signed_push_webhook_triggers_a_cycle_at_once_and_an_unsigned_one_is_refused() {
    // Trace logs, to show that no secret reaches them.
    let d = Daemon::start_with("1h", None, &["--log-level", "trace"]);
    d.wait_for(Duration::from_secs(30), "the first cycle", || {
        d.metric("hydrant_cycles_total{outcome=\"ok\"}") >= 1.0
    });
    let body = r#"{"ref": "refs/heads/main"}"#;
    let (status, _) = http(
        d.port,
        "POST",
        "/hooks/github",
        &[("X-GitHub-Event", "push".into())],
        body,
    )
    .unwrap();
    assert_eq!(status, 401, "no signature");
    let (status, _) = http(
        d.port,
        "POST",
        "/hooks/github",
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", "sha256=00".into()),
        ],
        body,
    )
    .unwrap();
    assert_eq!(status, 401, "bad signature");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        d.metric("hydrant_cycles_total{outcome=\"ok\"}"),
        1.0,
        "a refused webhook triggers nothing"
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let (status, _) = http(
        d.port,
        "POST",
        "/hooks/github",
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", sig),
        ],
        body,
    )
    .unwrap();
    assert_eq!(status, 202);
    d.wait_for(Duration::from_secs(10), "the triggered cycle", || {
        d.metric("hydrant_cycles_total{outcome=\"ok\"}") >= 2.0
    });
    let (status, _) = http(
        d.port,
        "POST",
        "/trigger",
        &[("Authorization", "Bearer wrong".into())],
        "",
    )
    .unwrap();
    assert_eq!(status, 401);
    let (status, _) = http(
        d.port,
        "POST",
        "/trigger",
        &[("Authorization", "Bearer trigger-token".into())],
        "",
    )
    .unwrap();
    assert_eq!(status, 202);
    d.wait_for(Duration::from_secs(10), "the manual cycle", || {
        d.metric("hydrant_cycles_total{outcome=\"ok\"}") >= 3.0
    });
    let _ = d.remote.branches();
    let (_, metrics) = http(d.port, "GET", "/metrics", &[], "").unwrap();
    let (code, log) = d.stop();
    assert_eq!(code, 0);
    assert!(log.lines().count() > 20, "trace logs were written");
    for (place, text) in [("the logs", &log), ("/metrics", &metrics)] {
        for secret in [SECRET, "trigger-token", LICENSE] {
            assert!(!text.contains(secret), "a secret is in {place}");
        }
    }
}

#[test]
fn readyz_turns_unready_when_cycles_fail() {
    let d = Daemon::start("1s", Some("http://127.0.0.1:9"));
    d.wait_for(Duration::from_secs(30), "a failed cycle", || {
        d.metric("hydrant_cycles_total{outcome=\"failed\"}") >= 1.0
    });
    let (status, body) = http(d.port, "GET", "/readyz", &[], "").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("failed"), "{body}");
    assert_eq!(
        http(d.port, "GET", "/healthz", &[], "").unwrap().0,
        200,
        "alive all the same"
    );
    assert_eq!(d.stop().0, 0);
}

#[test]
fn sigterm_during_a_cycle_lets_it_finish_and_exits_zero() {
    let d = Daemon::start("1h", None);
    d.wait_for(Duration::from_secs(30), "the first cycle", || {
        d.metric("hydrant_cycles_total{outcome=\"ok\"}") >= 1.0
    });
    // The next cycle hangs on the channel for 2 s; SIGTERM arrives meanwhile.
    d.channel
        .set_latest("stable", &spec_json("channels/stable.yaml", Some("0.63.2")));
    d.channel.fail(&[
        Fault::Hang(Duration::from_millis(1500)),
        Fault::Hang(Duration::from_millis(1500)),
    ]);
    let (status, _) = http(
        d.port,
        "POST",
        "/trigger",
        &[("Authorization", "Bearer trigger-token".into())],
        "",
    )
    .unwrap();
    assert_eq!(status, 202);
    std::thread::sleep(Duration::from_millis(800));
    let (code, stderr) = d.stop();
    assert_eq!(code, 0, "{stderr}");
    let stopping = stderr
        .find("finishing the cycle in flight")
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        stderr[stopping..].contains("cycle finished"),
        "the cycle in flight completed after the signal: {stderr}"
    );
}

#[test]
fn a_channel_poll_reconciles_only_the_environments_that_follow_the_channel() {
    // Cycles every hour: only the poll can notice the new release in time.
    let d = Daemon::start_with(
        "1h",
        None,
        &[
            "--channel-poll-interval",
            "300ms",
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ],
    );
    d.wait_for(Duration::from_secs(30), "the first cycle", || {
        http(d.port, "GET", "/readyz", &[], "").is_some_and(|(s, _)| s == 200)
    });
    d.wait_for(Duration::from_secs(10), "a poll answered 304", || {
        d.metric("hydrant_channel_fetches_total{channel=\"stable\",result=\"304\"}") >= 1.0
    });
    d.channel
        .set_latest("stable", &spec_json("channels/stable.yaml", Some("0.63.1")));
    d.wait_for(Duration::from_secs(20), "the PRs to follow 0.63.1", || {
        d.pulls()
            .iter()
            .filter(|p| p["title"].as_str().unwrap_or("").ends_with("0.63.1"))
            .count()
            == 2
    });
    let cycles = d.cycles();
    let (_, (scope, envs)) = cycles
        .iter()
        .find(|(_, (_, envs))| envs.get("prod").is_some_and(|v| v == "0.63.1"))
        .unwrap_or_else(|| panic!("no cycle rendered prod at 0.63.1: {cycles:?}"));
    assert_eq!(
        envs.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(["prod", "staging"]),
        "dev follows canary, which did not change: {cycles:?}"
    );
    assert!(
        scope.contains("prod") && scope.contains("staging"),
        "{scope}"
    );
    let first = cycles.values().next().unwrap();
    assert_eq!(first.1.len(), 3, "the first cycle covers every environment");

    // POST /trigger?env= covers the environments named, and only known ones.
    let auth = [("Authorization", "Bearer trigger-token".to_string())];
    let (status, body) = http(d.port, "POST", "/trigger?env=nope", &auth, "").unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("nope"), "{body}");
    let count = cycles.len();
    let (status, _) = http(d.port, "POST", "/trigger?env=dev", &auth, "").unwrap();
    assert_eq!(status, 202);
    d.wait_for(Duration::from_secs(20), "the triggered cycle", || {
        d.cycles().len() > count
    });
    let cycles = d.cycles();
    let last = cycles.values().last().unwrap();
    assert_eq!(last.1.keys().collect::<Vec<_>>(), vec!["dev"], "{cycles:?}");
    let (_, text) = http(d.port, "GET", "/metrics", &[], "").unwrap();
    assert!(text.contains("hydrant_forge_api_calls_total 0"), "{text}");
    assert!(
        d.metric("hydrant_channel_fetches_total{channel=\"stable\",result=\"200\"}") >= 2.0,
        "{text}"
    );
    let (code, err) = d.stop();
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains(LICENSE));
}

#[test]
fn the_metrics_reader_refuses_what_a_scraper_would_refuse() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\n\"} 1\n\
                # HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
    let samples = prometheus::parse(good).unwrap();
    assert_eq!(
        prometheus::value(&samples, "a_total", &[("x", "q\"\n")]),
        Some(1.0)
    );
    for bad in [
        "a_total 1\n",                             // no family
        "# HELP a A.\n# TYPE a counter\na 1\n",    // counter without _total
        "# HELP a A.\n# TYPE a gauge\na{x=q} 1\n", // unquoted label
        "# HELP a A.\n# TYPE a gauge\na 1\na 2\n", // repeated sample
        "# HELP a A.\n# TYPE a gauge\na one\n",    // not a number
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 3\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 1\n",
    ] {
        assert!(prometheus::parse(bad).is_err(), "accepted: {bad}");
    }
}
