//! Crash safety: `hydrant reconcile --once` and `hydrant run` killed with
//! SIGKILL at many points of a cycle (fetching, rendering, committing, pushing,
//! writing the pull request, writing the channel cache), then started again,
//! must end where an uninterrupted run ends.
//!
//! Two remotes receive the same changes to `main`, and both read one channel
//! server over HTTP, which publishes new releases along the way. On the
//! control, hydrant is never interrupted; on the other, it is killed after a
//! delay spread over the length of a cycle, and then started again. The last
//! kills of each test aim at the channel cache write: the specs are padded so
//! that writing them takes a while, and hydrant is killed as soon as the
//! cache's temporary file appears. After every kill: the remote holds only
//! complete objects, no environment has two open pull requests, an open pull
//! request's branch exists, and no channel cache file is torn. After the next
//! run: the same pull requests are open, with the same titles, their branches
//! hold the same `rendered/<env>/` as the control's, and the cache holds the
//! channel's current release.
//!
//! `HYDRANT_CRASH_RUNS` sets the number of killed runs of each test (default
//! 12 runs of `reconcile --once` and 8 daemons); a quarter of them (at least
//! 2) aim at the cache write.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::channel_server::{ChannelServer, bundled_spec};
use common::daemon::{cycles, free_port, http, stop, wait_for};
use common::git::{Remote, git};
use serde_json::Value;

const LICENSE: &str = "crash-test-license";
/// Bytes added to each spec for the kills aimed at the cache write.
const PAD: usize = 256 * 1024;
/// The killed daemon's interval: cycles follow each other closely.
const INTERVAL: Duration = Duration::from_secs(1);
/// The bearer token of `POST /trigger`.
const TRIGGER: &str = "crash-test-trigger";

/// The channel server both sides read, and what it publishes.
struct Channel {
    server: ChannelServer,
    stable: String,
    pad: usize,
}

impl Channel {
    fn start() -> Channel {
        let mut channel = Channel {
            server: ChannelServer::start(LICENSE),
            stable: "0.63.0".to_string(),
            pad: 0,
        };
        channel.publish();
        channel
    }

    fn publish(&mut self) {
        for (name, version) in [("stable", Some(self.stable.as_str())), ("canary", None)] {
            let mut spec: Value =
                serde_json::from_str(&bundled_spec(&format!("channels/{name}.yaml"), version))
                    .unwrap();
            if self.pad > 0 {
                spec["values"]["pad"] = Value::String("x".repeat(self.pad));
            }
            self.server.set_latest(name, &spec.to_string());
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// It exited by itself before the kill.
    Finished,
    Killed,
    /// Killed while it wrote the channel cache: after it created the
    /// temporary file and before it renamed it into place.
    KilledMidCacheWrite,
}

/// When to kill.
#[derive(Debug, Clone, Copy)]
enum Kill {
    After(Duration),
    /// As soon as a new temporary file appears in the channel cache, or
    /// after this long.
    AtCacheWrite(Duration),
}

/// A remote, and hydrant's own work, state and channel cache directories.
struct Side {
    remote: Remote,
    dirs: tempfile::TempDir,
    channel: String,
}

impl Side {
    fn new(channel: &Channel) -> Side {
        Side {
            remote: Remote::new(),
            dirs: tempfile::tempdir().unwrap(),
            channel: channel.server.channel_url(),
        }
    }

    fn cache_dir(&self) -> PathBuf {
        self.dirs.path().join("c")
    }

    fn log(&self) -> PathBuf {
        self.dirs.path().join("hydrant.log")
    }

    /// The end of what hydrant logged on this side.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `hydrant <args>` on this side; its stderr is appended to the log.
    fn command(&self, args: &[&str]) -> Command {
        let d = self.dirs.path();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut cmd = common::hydrant();
        cmd.args(args)
            .args([
                "--repo",
                &self.remote.url(),
                "--work-dir",
                d.join("w").to_str().unwrap(),
                "--state-dir",
                d.join("s").to_str().unwrap(),
                "--channel",
                &self.channel,
                "--channel-cache-dir",
                self.cache_dir().to_str().unwrap(),
            ])
            .env("HYDRANT_LICENSE", LICENSE)
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(log);
        cmd
    }

    fn reconcile(&self) -> Command {
        self.command(&["reconcile", "--once"])
    }

    /// `hydrant run` on this side, with a cycle every `interval`.
    fn daemon(&self, port: u16, interval: Duration) -> Command {
        let listen = format!("127.0.0.1:{port}");
        let interval = format!("{}ms", interval.as_millis());
        let mut cmd = self.command(&[
            "run",
            "--interval",
            &interval,
            "--listen",
            &listen,
            "--log-level",
            "info",
        ]);
        cmd.env("HYDRANT_TRIGGER_TOKEN", TRIGGER);
        cmd
    }

    /// Starts the daemon and waits for its first cycle: the daemon, its
    /// port, and how long that took from the start.
    fn start_daemon(&self, interval: Duration) -> (Child, u16, Duration) {
        let port = free_port();
        let child = self.daemon(port, interval).spawn().unwrap();
        let took = wait_for(Duration::from_secs(60), "the daemon's first cycle", || {
            let (ok, failed) = cycles(port);
            ok + failed >= 1.0
        });
        assert_eq!(cycles(port).1, 0.0, "a cycle failed:\n{}", self.log_tail());
        (child, port, took)
    }

    /// Runs to completion; returns how long it took.
    fn run(&self, mut cmd: Command) -> Duration {
        let started = Instant::now();
        let status = cmd.status().unwrap();
        assert!(status.success(), "hydrant failed:\n{}", self.log_tail());
        started.elapsed()
    }

    /// The temporary files in the channel cache: writes not (yet) renamed.
    fn cache_temp_files(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.cache_dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp"))
            .collect()
    }

    /// Starts `cmd` and kills it as `kill` says.
    fn run_killed(&self, mut cmd: Command, kill: Kill) -> Ended {
        let before = self.cache_temp_files();
        let new_temp_file = || self.cache_temp_files().difference(&before).next().is_some();
        let (limit, aimed) = match kill {
            Kill::After(d) => (d, false),
            Kill::AtCacheWrite(d) => (d, true),
        };
        let mut child = cmd.spawn().unwrap();
        let started = Instant::now();
        while started.elapsed() < limit && !(aimed && new_temp_file()) {
            if child.try_wait().unwrap().is_some() {
                return Ended::Finished;
            }
            std::thread::sleep(Duration::from_micros(if aimed { 200 } else { 2000 }));
        }
        let killed = child.try_wait().unwrap().is_none();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        match (killed, new_temp_file()) {
            (false, _) => Ended::Finished,
            (true, false) => Ended::Killed,
            (true, true) => Ended::KilledMidCacheWrite,
        }
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

    /// The channel cache: each cached spec's URL → its version. Panics on a
    /// torn file (temporary files are skipped: hydrant never reads them).
    fn cached(&self, when: &str) -> BTreeMap<String, String> {
        let mut cached = BTreeMap::new();
        for entry in std::fs::read_dir(self.cache_dir()).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let torn = || panic!("{when}: a torn channel cache file {}", path.display());
            let Ok(entry) = serde_json::from_str::<Value>(&text) else {
                torn()
            };
            let Some(Ok(spec)) = entry["body"].as_str().map(serde_json::from_str::<Value>) else {
                torn()
            };
            let version = spec["metadata"]["version"].as_str().unwrap_or_default();
            assert_eq!(entry["version"], version, "{when}: {}", path.display());
            cached.insert(
                entry["url"].as_str().unwrap_or_default().to_string(),
                version.to_string(),
            );
        }
        cached
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
        self.cached(when);
    }

    /// After an uninterrupted run: the state the control is in, and the
    /// channel's current release in the cache.
    fn assert_same_as(&self, control: &Side, channel: &Channel, when: &str) {
        self.check_invariants(when);
        let (want, got) = (control.open(), self.open());
        assert_eq!(got, want, "{when}: open pull requests differ");
        for head in want.keys() {
            assert_eq!(
                self.rendered_tree(head),
                control.rendered_tree(head),
                "{when}: {head} holds another render"
            );
        }
        let stable = self
            .cached(when)
            .into_iter()
            .find(|(url, _)| url.ends_with("channel=stable"))
            .map(|(_, version)| version);
        assert_eq!(
            stable.as_deref(),
            Some(channel.stable.as_str()),
            "{when}: the channel cache does not hold stable's release"
        );
    }
}

/// The same change on both sides: staging's replicas on `main` (its
/// `pinned.yaml`, which holds nothing else); every third step a new stable
/// release; and padded specs while `padded`.
fn change(channel: &mut Channel, sides: [&Side; 2], step: usize, padded: bool) {
    let text = format!("app:\n  replicas: {}\n", step % 5 + 3);
    for side in sides {
        side.remote.commit_to_main(
            "environments/staging/pinned.yaml",
            &text,
            &format!("Scale staging, step {step}"),
        );
    }
    let pad = if padded { PAD } else { 0 };
    if step.is_multiple_of(3) || pad != channel.pad {
        channel.stable = format!("0.64.{step}");
        channel.pad = pad;
        channel.publish();
    }
}

/// How many runs a test kills, and how.
#[derive(Debug, Clone, Copy)]
struct Plan {
    runs: usize,
}

impl Plan {
    /// `HYDRANT_CRASH_RUNS` runs, else `default`.
    fn new(default: usize) -> Plan {
        let runs = std::env::var("HYDRANT_CRASH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default);
        Plan { runs }
    }

    /// Whether the kill of this step aims at the cache write (the last
    /// quarter of the kills, at least 2).
    fn aimed(self, step: usize) -> bool {
        step + (self.runs / 4).max(2) >= self.runs
    }

    /// When to kill at this step, `span` being how long the moments to hit last.
    fn kill_at(self, step: usize, span: Duration) -> Kill {
        if self.aimed(step) {
            return Kill::AtCacheWrite(span * 2);
        }
        let fraction = (step * 37 % 100) as f64 / 100.0;
        Kill::After(span.mul_f64(fraction.max(0.01)))
    }
}

#[derive(Debug, Default)]
struct Tally {
    killed: usize,
    mid_cache_write: usize,
    finished: usize,
}

impl Tally {
    fn add(&mut self, ended: Ended) {
        match ended {
            Ended::Finished => self.finished += 1,
            Ended::Killed => self.killed += 1,
            Ended::KilledMidCacheWrite => self.mid_cache_write += 1,
        }
    }

    fn assert_enough(&self) {
        assert!(
            self.killed + self.mid_cache_write > 0,
            "no run was killed: the delays are too long"
        );
        assert!(
            self.mid_cache_write > 0,
            "no kill landed in the cache write: {self:?}"
        );
    }
}

#[test]
fn a_run_killed_anywhere_and_run_again_ends_where_an_uninterrupted_run_ends() {
    let mut channel = Channel::start();
    let (control, crashed) = (Side::new(&channel), Side::new(&channel));
    let mut length = control.run(control.reconcile());
    let (plan, mut tally) = (Plan::new(12), Tally::default());
    for step in 0..plan.runs {
        if step > 0 {
            change(&mut channel, [&control, &crashed], step, plan.aimed(step));
            length = control.run(control.reconcile());
        }
        // Spread the kills over the length of the same run on the control.
        let kill = plan.kill_at(step, length);
        tally.add(crashed.run_killed(crashed.reconcile(), kill));
        crashed.check_invariants(&format!("after the kill at step {step} ({kill:?})"));
        crashed.run(crashed.reconcile());
        crashed.assert_same_as(
            &control,
            &channel,
            &format!("after the run following step {step}"),
        );
    }
    eprintln!(
        "crash test (reconcile --once): {} runs, {} killed mid-run ({} of them mid-cache-write), {} finished before the kill, 0 failures",
        plan.runs,
        tally.killed + tally.mid_cache_write,
        tally.mid_cache_write,
        tally.finished
    );
    tally.assert_enough();
}

#[test]
fn a_daemon_killed_anywhere_and_started_again_ends_where_an_uninterrupted_daemon_ends() {
    let mut channel = Channel::start();
    let (control, crashed) = (Side::new(&channel), Side::new(&channel));
    // The control cycles when told to, once per change.
    let (mut daemon, port, mut length) = control.start_daemon(Duration::from_secs(3600));
    let finished = || {
        let (ok, failed) = cycles(port);
        assert_eq!(failed, 0.0, "the control failed a cycle");
        ok
    };
    let (plan, mut tally, mut in_later_cycles) = (Plan::new(8), Tally::default(), 0);
    for step in 0..plan.runs {
        let mut want = finished();
        if step > 0 {
            change(&mut channel, [&control, &crashed], step, plan.aimed(step));
            let auth = [("Authorization", format!("Bearer {TRIGGER}"))];
            let answer = http(port, "POST", "/trigger", &auth, "").map(|(status, _)| status);
            assert_eq!(answer, Some(202));
            want += 1.0;
        }
        // Spread the kills over the daemon's first cycle (which delivers the
        // change), the interval after it and its second cycle.
        let kill = plan.kill_at(step, length * 2 + INTERVAL);
        let logged = std::fs::read_to_string(crashed.log()).unwrap_or_default();
        let ended = crashed.run_killed(crashed.daemon(free_port(), INTERVAL), kill);
        assert_ne!(
            ended,
            Ended::Finished,
            "the daemon exited by itself:\n{}",
            crashed.log_tail()
        );
        tally.add(ended);
        let log = std::fs::read_to_string(crashed.log()).unwrap_or_default();
        if log[logged.len()..].contains("cycle finished") {
            in_later_cycles += 1;
        }
        crashed.check_invariants(&format!("after the kill at step {step} ({kill:?})"));
        let (mut restarted, _, took) = crashed.start_daemon(INTERVAL);
        length = took;
        assert_eq!(stop(&mut restarted), 0, "{}", crashed.log_tail());
        wait_for(Duration::from_secs(60), "the control's cycle", || {
            finished() >= want
        });
        crashed.assert_same_as(
            &control,
            &channel,
            &format!("after the restart following step {step}"),
        );
    }
    assert_eq!(stop(&mut daemon), 0, "{}", control.log_tail());
    eprintln!(
        "crash test (run): {} daemons killed ({} in their first cycle, {} later; {} mid-cache-write), 0 failures",
        plan.runs,
        plan.runs - in_later_cycles,
        in_later_cycles,
        tally.mid_cache_write
    );
    tally.assert_enough();
}

/// A run killed while git moved a ref leaves the ref's `.lock` file, and git
/// refuses to move a locked ref: in the work directory (while fetching), and
/// in a remote on this machine (while pushing to it).
#[test]
fn lock_files_left_by_a_killed_run_do_not_stop_the_next_run() {
    let mut channel = Channel::start();
    let (control, crashed) = (Side::new(&channel), Side::new(&channel));
    control.run(control.reconcile());
    crashed.run(crashed.reconcile());
    let clone = crashed.dirs.path().join("w/repo.git");
    let locks = [
        clone.join("refs/remotes/origin/main.lock"),
        clone.join("refs/remotes/origin/hydrant/staging.lock"),
        clone.join("packed-refs.lock"),
        clone.join("config.lock"),
        clone.join("HEAD.lock"),
        crashed
            .remote
            .bare()
            .join("refs/heads/hydrant/staging.lock"),
    ];
    for lock in &locks {
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        std::fs::write(lock, "").unwrap();
    }
    change(&mut channel, [&control, &crashed], 3, false);
    control.run(control.reconcile());
    crashed.run(crashed.reconcile());
    crashed.assert_same_as(&control, &channel, "after the run");
    assert!(
        control.open()["hydrant/staging"].contains("0.64.3"),
        "{:?}",
        control.open()
    );
    for lock in &locks {
        assert!(!lock.exists(), "{} is still there", lock.display());
    }
}
