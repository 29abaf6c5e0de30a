//! Faults everywhere at once: the real `hydrant run` daemon against a channel
//! server, a git remote over smart HTTP and a fake GitHub, each behind a proxy
//! on 127.0.0.1 that fails a share of the requests at random (refused and
//! dropped connections, requests never answered, 5xx, 429 with `Retry-After`,
//! answers cut short), while the channels publish releases. Then the faults
//! stop. Throughout, the daemon stays up and `/healthz` answers; it makes no
//! more requests than its interval, retries and backoff allow; `/metrics`
//! and its JSON logs show the faults and hold no secret. Once the faults stop
//! it converges within a bounded time: one open pull request per environment,
//! titled with its channel's latest release, its branch holding that
//! release's `rendered/<env>/`, and `/readyz` answering 200.
//!
//! `HYDRANT_FAULT_SECONDS` sets how long the faults last at least (default 20;
//! they go on until every server has failed 5 times, within three times that);
//! `HYDRANT_FAULT_SEED` replays a run (the seed is printed).

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::channel_server::{ChannelServer, bundled_spec};
use common::daemon::{free_port, http, sample};
use common::fake_github::FakeGitHub;
use common::flaky::{Fault, Flaky, Seen};
use common::git::{HttpGit, Remote, b64, git};
use common::prometheus;
use serde_json::Value;

const TOKEN: &str = "ghp_faulttoken0123456789abcdef";
const LICENSE: &str = "fault-test-license-0123";
/// The share of requests that fail while the faults last, at the channel
/// server, the git remote and the forge. A cycle starts with a few git
/// requests, each of which fails it: with fewer faults there, more cycles
/// reach the channel and the forge.
const RATES: [f64; 3] = [0.4, 0.25, 0.5];
const INTERVAL: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(500);
/// `--channel-retries`, the forge's retries (fixed) and `--forge-backoff-ms`.
const CHANNEL_RETRIES: usize = 1;
const FORGE_RETRIES: usize = 3;
const FORGE_BACKOFF: Duration = Duration::from_millis(100);
/// The tries of a push that loses a race (`hydrant::reconcile::PUSH_ATTEMPTS`).
const PUSH_ATTEMPTS: usize = hydrant::reconcile::PUSH_ATTEMPTS;
/// How long the daemon may take to converge once the faults stop.
const CONVERGE: Duration = Duration::from_secs(30);

/// Each environment and the channel it follows.
const ENVS: [(&str, &str); 3] = [("dev", "canary"), ("staging", "stable"), ("prod", "stable")];

fn fault_seconds() -> u64 {
    std::env::var("HYDRANT_FAULT_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

fn seed() -> u64 {
    std::env::var("HYDRANT_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// The servers, each behind its flaky proxy, and the daemon using them.
struct World {
    remote: Remote,
    _git: HttpGit,
    gh: FakeGitHub,
    channel: ChannelServer,
    proxies: [(&'static str, Flaky); 3],
    daemon: Child,
    port: u16,
    dirs: tempfile::TempDir,
    /// Each channel's latest release.
    latest: BTreeMap<&'static str, String>,
    published: usize,
    /// When the faults stopped.
    calm: Option<Instant>,
}

impl World {
    fn start(seed: u64) -> World {
        let remote = Remote::new();
        for (env, _) in ENVS {
            let path = format!("environments/{env}/environment.yaml");
            let text = remote.read_main(&path);
            remote.commit_to_main(
                &path,
                &format!("{text}\npullRequest:\n  labels: [hydrant, {env}]\n"),
                &format!("{env} pull requests are labelled"),
            );
        }
        let git_server = HttpGit::start(remote.root.path(), TOKEN);
        let gh = FakeGitHub::start(TOKEN, "acme/wandb-config", 3);
        let channel = ChannelServer::start(LICENSE);
        let mut latest = BTreeMap::new();
        for name in ["stable", "canary"] {
            let spec = bundled_spec(&format!("channels/{name}.yaml"), None);
            let v: Value = serde_json::from_str(&spec).unwrap();
            latest.insert(name, v["metadata"]["version"].as_str().unwrap().to_string());
            channel.set_latest(name, &spec);
        }
        let proxies = [
            ("channel", Flaky::start(channel.port, seed)),
            ("git", Flaky::start(git_server.port, seed.wrapping_add(1))),
            ("forge", Flaky::start(gh.port, seed.wrapping_add(2))),
        ];
        let dirs = tempfile::tempdir().unwrap();
        let port = free_port();
        let path = |p: &str| dirs.path().join(p).to_str().unwrap().to_string();
        let daemon = common::hydrant()
            .args([
                "run",
                "--repo",
                &format!("{}/remote.git", proxies[1].1.url()),
            ])
            .args(["--interval", &format!("{}ms", INTERVAL.as_millis())])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--work-dir", &path("work")])
            // Two channels: ask for each by name.
            .args([
                "--channel",
                &format!(
                    "{}/api/v1/operator/channel?channel={{channel}}",
                    proxies[0].1.url()
                ),
            ])
            .args(["--channel-cache-dir", &path("cache")])
            .args(["--channel-retries", &CHANNEL_RETRIES.to_string()])
            .args(["--channel-backoff-ms", "100", "--channel-timeout", "1"])
            .args([
                "--channel-poll-interval",
                &format!("{}ms", POLL.as_millis()),
            ])
            .args(["--forge", "github", "--github-api-url", &proxies[2].1.url()])
            .args(["--forge-repository", "acme/wandb-config"])
            .args(["--forge-backoff-ms", &FORGE_BACKOFF.as_millis().to_string()])
            .args(["--forge-max-wait", "2"])
            .args(["--forge-timeout", "1", "--git-timeout", "2"])
            .args([
                "--log-format",
                "json",
                "--log-level",
                "debug,handlebars=warn",
            ])
            .env("HYDRANT_GITHUB_TOKEN", TOKEN)
            .env("HYDRANT_LICENSE", LICENSE)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dirs.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let w = World {
            remote,
            _git: git_server,
            gh,
            channel,
            proxies,
            daemon,
            port,
            dirs,
            latest,
            published: 0,
            calm: None,
        };
        let start = Instant::now();
        while !w.healthy() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the daemon never served:\n{}",
                w.tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        w
    }

    /// Asserts that the daemon runs and `/healthz` answers 200.
    fn alive(&mut self, when: &str) {
        if let Some(status) = self.daemon.try_wait().unwrap() {
            panic!("the daemon exited {when} ({status}):\n{}", self.tail());
        }
        assert!(self.healthy(), "/healthz did not answer 200 {when}");
    }

    /// Whether every server has failed a few times, and a channel fetch has
    /// failed for good (all its tries).
    fn faults_met(&self) -> bool {
        let metrics = self.metrics();
        let unreachable = failed_fetches(&metrics);
        unreachable >= 1.0
            && self
                .proxies
                .iter()
                .all(|(_, p)| p.faults().values().sum::<usize>() >= 5)
    }

    /// Cycles finished so far, ok or failed.
    fn cycles(&self, metrics: &str) -> f64 {
        sample(metrics, "hydrant_cycles_total{outcome=\"ok\"}")
            + sample(metrics, "hydrant_cycles_total{outcome=\"failed\"}")
    }

    fn healthy(&self) -> bool {
        http(self.port, "GET", "/healthz", &[], "").is_some_and(|(s, _)| s == 200)
    }

    fn ready(&self) -> bool {
        http(self.port, "GET", "/readyz", &[], "").is_some_and(|(s, _)| s == 200)
    }

    fn metrics(&self) -> String {
        http(self.port, "GET", "/metrics", &[], "")
            .expect("/metrics answers")
            .1
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dirs.path().join("stderr.log")).unwrap_or_default()
    }

    /// The last events at level info and above, for a failure message.
    fn tail(&self) -> String {
        let log = self.log();
        let events: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("\"level\":\"DEBUG\"") && !l.contains("\"level\":\"TRACE\""))
            .collect();
        events[events.len().saturating_sub(40)..].join("\n")
    }

    /// Publishes the next release of a channel: stable and canary in turn.
    fn publish(&mut self) {
        self.published += 1;
        let n = self.published;
        let (name, version) = if n % 2 == 1 {
            ("stable", format!("0.64.{n}"))
        } else {
            ("canary", format!("0.65.0-rc.{n}"))
        };
        self.channel.set_latest(
            name,
            &bundled_spec(&format!("channels/{name}.yaml"), Some(&version)),
        );
        self.latest.insert(name, version);
    }

    /// What each proxy saw and did.
    fn summary(&self) -> String {
        let mut lines = Vec::new();
        for (name, p) in &self.proxies {
            let seen = p.seen();
            let during = seen
                .iter()
                .filter(|s| self.calm.is_none_or(|calm| s.at < calm))
                .count();
            let faults = p.faults();
            let total = faults.values().sum::<usize>();
            lines.push(format!(
                "{name}: {} requests, {during} during the faults, {total} faults ({:.0}%: {})",
                seen.len(),
                100.0 * total as f64 / during.max(1) as f64,
                faults
                    .iter()
                    .map(|(f, n)| format!("{} {n}", f.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        lines.join("\n  ")
    }

    /// What still differs from the converged state, if anything.
    fn unconverged(&self) -> Option<String> {
        let pulls = self.gh.hydrant_pulls();
        for (env, channel) in ENVS {
            let version = &self.latest[channel];
            let head = format!("hydrant/{env}");
            let open: Vec<_> = pulls.iter().filter(|p| p.open && p.head == head).collect();
            let [pr] = open[..] else {
                return Some(format!("{env}: {} open pull requests", open.len()));
            };
            if !pr.title.ends_with(&format!(" → {version}")) {
                return Some(format!(
                    "{env}: PR #{} is titled {:?}, not {version}",
                    pr.number, pr.title
                ));
            }
            if pr.labels != ["hydrant", env] {
                return Some(format!(
                    "{env}: PR #{} has labels {:?}",
                    pr.number, pr.labels
                ));
            }
            let meta = self
                .remote
                .branch(&head)
                .map(|_| {
                    git(
                        &self.remote.bare(),
                        &[
                            "show",
                            &format!("refs/heads/{head}:rendered/{env}/hydrant.metadata"),
                        ],
                    )
                })
                .unwrap_or_default();
            let meta: Value = serde_json::from_str(&meta).unwrap_or(Value::Null);
            if meta["channel"]["version"] != version.as_str() {
                return Some(format!(
                    "{env}: `{head}` holds {}",
                    meta["channel"]["version"]
                ));
            }
        }
        (!self.ready()).then(|| "/readyz is not 200".to_string())
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// Channel fetches that failed every try: served from the stale cache, or
/// failed with none.
fn failed_fetches(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("hydrant_channel_fetches_total{"))
        .filter(|l| l.contains("result=\"stale\"") || l.contains("result=\"error\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn the_daemon_rides_out_faults_everywhere_and_converges_once_they_stop() {
    let seed = seed();
    eprintln!("faults: seed {seed} (replay with HYDRANT_FAULT_SEED={seed})");
    let mut w = World::start(seed);
    let started = Instant::now();
    for ((_, p), rate) in w.proxies.iter().zip(RATES) {
        p.set_rate(rate);
    }
    // The faults last at least `fault_seconds`, and until each server has
    // failed a few times and a channel fetch has failed for good.
    let least = Duration::from_secs(fault_seconds());
    let (mut probes, mut last_release) = (0usize, Instant::now());
    while started.elapsed() < least || !w.faults_met() {
        assert!(
            started.elapsed() < least * 3,
            "too few faults met in {:?} (seed {seed}):\n  {}",
            started.elapsed(),
            w.summary()
        );
        w.alive("during the faults");
        probes += 1;
        if last_release.elapsed() >= Duration::from_secs(2) {
            w.publish();
            last_release = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let faulty = started.elapsed();
    // The last releases of both channels come out as the faults stop.
    w.publish();
    w.publish();
    for (_, p) in &w.proxies {
        p.calm();
    }
    let calm = Instant::now();
    w.calm = Some(calm);
    let mut missing = w.unconverged();
    while let Some(what) = &missing {
        assert!(
            calm.elapsed() < CONVERGE,
            "not converged {CONVERGE:?} after the faults stopped (seed {seed}): {what}\n  {}\n{}",
            w.summary(),
            w.tail()
        );
        w.alive("after the faults");
        std::thread::sleep(Duration::from_millis(200));
        missing = w.unconverged();
    }
    let converged = calm.elapsed();
    let forge_requests = w.proxies[2].1.seen().len() as f64;
    // Metrics are recorded as cycles end: let the cycle in flight end, and one more.
    let cycles_then = w.cycles(&w.metrics());
    while w.cycles(&w.metrics()) < cycles_then + 2.0 {
        assert!(
            calm.elapsed() < CONVERGE + Duration::from_secs(10),
            "no more cycles"
        );
        w.alive("after converging");
        std::thread::sleep(Duration::from_millis(100));
    }
    let elapsed = started.elapsed();
    let metrics = w.metrics();
    prometheus::parse(&metrics).unwrap_or_else(|e| panic!("/metrics: {e}\n{metrics}"));
    let log = w.log();
    let cycles = w.cycles(&metrics);
    let failed = sample(&metrics, "hydrant_cycles_total{outcome=\"failed\"}");

    let mut injected: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, p) in &w.proxies {
        for (f, n) in p.faults() {
            *injected.entry(f.name()).or_default() += n;
        }
    }
    let checked = forge_retries_wait(&w.proxies[2].1.seen());
    eprintln!(
        "faults: {:.0}s of faults at {RATES:?} (channel, git, forge), {cycles} cycles ({failed} failed), \
         {} releases, {} faults injected ({injected:?}), /healthz answered {probes} probes, \
         converged {:.1}s after the faults stopped, {checked} forge retries waited their turn, failures: 0\n  {}",
        faulty.as_secs_f64(),
        w.published,
        injected.values().sum::<usize>(),
        converged.as_secs_f64(),
        w.summary()
    );
    // Backoff within bounds. Cycles start an interval apart, unless a channel
    // poll found a release; within a cycle every request is tried a bounded
    // number of times. A tight loop would exceed these many times over.
    let requested = log
        .lines()
        .filter(|l| l.contains("\"message\":\"cycle requested\""))
        .count() as f64;
    let most_cycles = elapsed.as_secs_f64() / INTERVAL.as_secs_f64() + 1.0 + requested;
    assert!(
        cycles <= most_cycles,
        "{cycles} cycles in {elapsed:?} with a {INTERVAL:?} interval and {requested} asked for"
    );
    let polls = elapsed.as_secs_f64() / POLL.as_secs_f64() + 1.0;
    for (name, p) in &w.proxies {
        let (per_cycle, per_poll) = most_requests(name);
        let seen = p.seen().len() as f64;
        let most = (cycles + 1.0) * per_cycle + polls * per_poll;
        assert!(
            seen <= most,
            "{name}: {seen} requests, at most {most} allowed"
        );
        // In one second: two cycles on the timer, and one per poll.
        let polls_in_a_second = 1.0 / POLL.as_secs_f64() + 1.0;
        let most = (2.0 + polls_in_a_second) * per_cycle + polls_in_a_second * per_poll;
        let peak = p.peak(Duration::from_secs(1)) as f64;
        assert!(
            peak <= most,
            "{name}: {peak} requests in one second, at most {most} allowed"
        );
    }

    // The faults show in /metrics…
    assert!(failed >= 1.0, "{metrics}");
    let unreachable = failed_fetches(&metrics);
    assert!(unreachable >= 1.0, "no channel fetch failed: {metrics}");
    let too_many = w.proxies[2]
        .1
        .faults()
        .get(&Fault::TooMany)
        .copied()
        .unwrap_or(0);
    assert_eq!(
        sample(&metrics, "hydrant_forge_rate_limit_waits_total"),
        too_many as f64,
        "every 429 is a rate-limit wait: {metrics}"
    );
    assert!(
        sample(&metrics, "hydrant_forge_api_calls_total") >= forge_requests,
        "every request the forge saw is a call: {metrics}"
    );
    // …and in the JSON logs, every line of which is JSON, each naming what failed.
    let mut messages: BTreeMap<String, usize> = BTreeMap::new();
    for line in log.lines().filter(|l| !l.starts_with("hydrant: serving")) {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let message = event["fields"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let spans = event["spans"].to_string();
        match message.as_str() {
            "environment failed" => {
                assert!(spans.contains("\"environment\""), "{line}")
            }
            "cycle failed" => assert!(line.contains("/remote.git"), "{line}"),
            "channel unreachable; using the last good spec" => {
                assert!(event["fields"]["age"].is_string(), "{line}")
            }
            _ => {}
        }
        *messages.entry(message).or_default() += 1;
    }
    for expected in [
        "channel fetch failed; retrying",
        "forge API call failed; retrying",
        "environment failed",
    ] {
        assert!(
            messages.contains_key(expected),
            "no `{expected}` in the logs: {messages:?}"
        );
    }

    // No secret anywhere.
    for secret in [
        TOKEN.to_string(),
        LICENSE.to_string(),
        b64(&format!("license:{LICENSE}")),
        b64(&format!("x-access-token:{TOKEN}")),
    ] {
        assert!(!log.contains(&secret), "a secret is in the logs");
        assert!(!metrics.contains(&secret), "a secret is in /metrics");
    }
}

/// The most requests one cycle and one channel poll may send a server, when
/// every attempt fails. A cycle fetches the repository (5 requests: the
/// advertisement twice, each with its authentication round trip, and the
/// pack), then per environment renders, checks the branch's lease and pushes
/// (5 requests) and makes up to 5 forge calls (find, find again, open or
/// update, labels, …), all of it again up to 3 times when a push loses a race
/// (fetching and reading the channels again).
fn most_requests(server: &str) -> (f64, f64) {
    let envs = ENVS.len() as f64;
    let races = PUSH_ATTEMPTS as f64;
    let channel_fetch = 2.0 * (1 + CHANNEL_RETRIES) as f64;
    match server {
        "channel" => ((1.0 + envs * (races - 1.0)) * channel_fetch, channel_fetch),
        "git" => (5.0 + envs * races * 10.0, 0.0),
        _ => (envs * races * 5.0 * (1 + FORGE_RETRIES) as f64, 0.0),
    }
}

/// A retry is the next request the forge sees that is the same call (the same
/// request line and body: pull requests are opened a few at once, every one a
/// `POST` of the same line, told apart by their bodies), when that call was
/// made by one caller at a time. Each retry must come after at least the
/// backoff, or the `Retry-After` of a 429. Skipped: what may have been a
/// call's last attempt, the time around a refused connection (whose retries
/// may be refused unseen), and a call that others were making at the same
/// time (the next one may be another caller's). Returns how many retries
/// were checked.
fn forge_retries_wait(seen: &[Seen]) -> usize {
    let mut seen = seen.to_vec();
    seen.sort_by_key(|s| s.at);
    let refused: Vec<Instant> = seen
        .iter()
        .filter(|s| s.fault == Some(Fault::Refused))
        .map(|s| s.at)
        .collect();
    let mut checked = 0;
    for (i, failed) in seen.iter().enumerate() {
        let Some(fault) = failed.fault.filter(|f| *f != Fault::Refused) else {
            continue;
        };
        // The retry: the next request that is the same call.
        let Some(next) = seen[i + 1..].iter().find(|s| s.same_call(failed)) else {
            continue;
        };
        let failures_before = seen[..i]
            .iter()
            .rev()
            .filter(|s| s.same_call(failed))
            .take_while(|s| s.fault.is_some())
            .count();
        let near_refusal = refused
            .iter()
            .any(|r| *r + Duration::from_secs(10) > failed.at && *r < next.at);
        if failures_before + 1 > FORGE_RETRIES || near_refusal {
            continue;
        }
        let least = match fault {
            Fault::TooMany => Duration::from_secs(1),
            _ => FORGE_BACKOFF,
        };
        // Other calls sending the same line meanwhile: more of it just
        // before than this call's own attempts, or more than one just after
        // (one call retries once).
        let same = |s: &&Seen| s.same_call(failed);
        let before = seen[..i]
            .iter()
            .rev()
            .take_while(|s| s.at + least > failed.at)
            .filter(same)
            .count();
        let after = seen[i + 1..]
            .iter()
            .take_while(|s| s.at < failed.at + least)
            .filter(same)
            .count();
        if before > failures_before || after > 1 {
            continue;
        }
        let gap = next.at.duration_since(failed.at);
        assert!(
            gap + Duration::from_millis(20) >= least,
            "`{}` was retried {gap:?} after a {} fault; at least {least:?} expected",
            failed.request,
            fault.name()
        );
        checked += 1;
    }
    checked
}

/// A git remote that accepts connections and never answers fails the cycle
/// within `--git-timeout` and names the remote, instead of holding up every
/// cycle after it.
#[test]
fn a_git_remote_that_never_answers_fails_within_the_git_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().flatten().collect();
        drop(held);
    });
    let dirs = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/remote.git");
    let mut child = common::hydrant()
        .args(["reconcile", "--once", "--repo", &url, "--forge", "local"])
        .args(["--work-dir", dirs.path().join("work").to_str().unwrap()])
        .args(["--git-timeout", "1"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dirs.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("still waiting for the remote after {:?}", started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(dirs.path().join("stderr.log")).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&url), "{stderr}");
}
