//! One pack per cycle: a cycle over many environments writes its objects
//! into a remote on this machine (a path or a `file://` URL) as one pack,
//! never as loose files; a branch another writer moved during the push
//! fails alone and lands on the retry; and a run killed while it writes
//! the pack, or halfway through moving the branches, leaves every
//! `hydrant/*` branch at its old commit or at a complete new one, and the
//! next run converges.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::git::{HttpGit, Remote, git};
use serde_json::Value;

const TENANTS: usize = 12;

const TOKEN: &str = "pack-test-token-0123";

struct Fleet {
    remote: Remote,
    dir: tempfile::TempDir,
    /// How hydrant is told of the remote: its path, a `file://` URL, or a
    /// smart HTTP URL.
    url: String,
    /// The smart HTTP server, while it serves the remote.
    _http: Option<HttpGit>,
}

impl Fleet {
    fn new(as_url: bool) -> Fleet {
        let remote = Remote::new();
        let tenants: Vec<String> = (0..TENANTS).map(|i| format!("tenant-{i:02}")).collect();
        remote.seed_tenants(&tenants, &[]);
        let url = match as_url {
            true => remote.url(),
            false => remote.bare().display().to_string(),
        };
        Fleet {
            remote,
            dir: tempfile::tempdir().unwrap(),
            url,
            _http: None,
        }
    }

    /// A fleet whose remote hydrant reaches over smart HTTP (`git
    /// http-backend`), with a token.
    fn over_http() -> Fleet {
        let mut fleet = Fleet::new(false);
        let http = HttpGit::start(fleet.remote.root.path(), TOKEN);
        fleet.url = http.url(fleet.remote.bare().file_name().unwrap().to_str().unwrap());
        fleet._http = Some(http);
        fleet
    }

    fn reconcile(&self) -> Command {
        let d = self.dir.path();
        let mut cmd = common::hydrant();
        cmd.args(["reconcile", "--once", "--repo", &self.url])
            .arg("--work-dir")
            .arg(d.join("w"))
            .arg("--state-dir")
            .arg(d.join("s"))
            .args(["--log-level", "info"])
            .env("HYDRANT_GIT_TOKEN", TOKEN)
            .current_dir(d);
        cmd
    }

    fn run(&self) -> String {
        let out = self.reconcile().output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "hydrant failed:\n{stderr}");
        stderr
    }

    /// Starts a run that pauses at `point` (a minute, or `point:secs`) and
    /// waits until it says so; the run, and its stderr once it ends.
    fn run_paused(&self, point: &str) -> (Child, std::thread::JoinHandle<String>) {
        let mut child = self
            .reconcile()
            .env("HYDRANT_TEST_PAUSE", point)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("hydrant: test pause at") {
                    let _ = tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        if rx.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the run never paused at {point}:\n{}", log.join().unwrap());
        }
        (child, log)
    }

    /// Bumps stable to 0.63.0 on `main`: every tenant changes.
    fn bump(&self) {
        let w = self.remote.work();
        let release =
            std::fs::read_to_string(w.join("channels/stable/releases/0.63.0.yaml")).unwrap();
        self.remote
            .commit_to_main("channels/stable.yaml", &release, "stable 0.63.0");
    }

    /// The remote's `hydrant/*` branches and their commits.
    fn branches(&self) -> BTreeMap<String, String> {
        git(
            &self.remote.bare(),
            &[
                "for-each-ref",
                "--format=%(refname:short) %(objectname)",
                "refs/heads/hydrant/",
            ],
        )
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(b, c)| (b.to_string(), c.to_string()))
        .collect()
    }

    fn pulls(&self) -> Vec<Value> {
        std::fs::read_dir(self.dir.path().join("s/pulls"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .map(|e| {
                        serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Open pull requests by head; panics on two for one head.
    fn open(&self) -> BTreeSet<String> {
        let mut open = BTreeSet::new();
        for p in self.pulls().iter().filter(|p| p["state"] == "open") {
            let head = p["head"].as_str().unwrap().to_string();
            assert!(
                open.insert(head.clone()),
                "two open pull requests for {head}"
            );
        }
        open
    }

    /// The release `hydrant.metadata` records on a branch.
    fn version(&self, branch: &str) -> String {
        let env = branch.trim_start_matches("hydrant/");
        let text = git(
            &self.remote.bare(),
            &[
                "show",
                &format!("refs/heads/{branch}:rendered/{env}/hydrant.metadata"),
            ],
        );
        let meta: Value = serde_json::from_str(&text).unwrap();
        meta["channel"]["version"].as_str().unwrap().to_string()
    }

    fn objects(&self) -> Objects {
        Objects::of(&self.remote.bare().join("objects"))
    }
}

/// A repository's packs and loose objects.
#[derive(Debug, Default)]
struct Objects {
    packs: BTreeSet<String>,
    loose: BTreeSet<String>,
    other: BTreeSet<String>,
}

impl Objects {
    fn of(objects: &Path) -> Objects {
        let mut found = Objects::default();
        for entry in std::fs::read_dir(objects).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 2 && name.chars().all(|c| c.is_ascii_hexdigit()) {
                for obj in std::fs::read_dir(entry.path()).unwrap().flatten() {
                    found
                        .loose
                        .insert(format!("{name}{}", obj.file_name().to_string_lossy()));
                }
            }
        }
        for entry in std::fs::read_dir(objects.join("pack")).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            match name.strip_suffix(".idx") {
                Some(stem) => {
                    found.packs.insert(stem.to_string());
                }
                None if name.ends_with(".pack") || name.ends_with(".rev") => {}
                None => {
                    found.other.insert(name);
                }
            }
        }
        found
    }
}

/// The remote is whole, and every `hydrant/*` tip's tree reads.
fn assert_consistent(fleet: &Fleet, when: &str) {
    let bare = fleet.remote.bare();
    let fsck = Command::new("git")
        .args(["fsck", "--strict", "--no-dangling"])
        .current_dir(&bare)
        .output()
        .unwrap();
    assert!(
        fsck.status.success() && fsck.stderr.is_empty(),
        "{when}: fsck of the remote: {}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    for (branch, commit) in fleet.branches() {
        git(&bare, &["ls-tree", "-r", "-t", &commit]);
        let env = branch.trim_start_matches("hydrant/");
        git(
            &bare,
            &[
                "cat-file",
                "-e",
                &format!("{commit}:rendered/{env}/hydrant.metadata"),
            ],
        );
    }
}

fn delivers_one_pack(as_url: bool) {
    let fleet = Fleet::new(as_url);
    let before = fleet.objects();
    fleet.run();
    let after = fleet.objects();
    let new: Vec<&String> = after.packs.difference(&before.packs).collect();
    assert_eq!(new.len(), 1, "one new pack: {new:?}");
    assert_eq!(after.loose, before.loose, "no new loose object");
    assert!(
        after.other.is_empty(),
        "no file left behind: {:?}",
        after.other
    );
    let branches = fleet.branches();
    assert_eq!(branches.len(), TENANTS);
    assert_eq!(fleet.open().len(), TENANTS);
    assert_consistent(&fleet, "after the first run");

    fleet.bump();
    let before = fleet.objects();
    fleet.run();
    let after = fleet.objects();
    assert_eq!(after.packs.difference(&before.packs).count(), 1);
    assert_eq!(after.loose, before.loose, "no new loose object");
    for (branch, commit) in fleet.branches() {
        assert_ne!(branches.get(&branch), Some(&commit), "{branch} moved");
        assert_eq!(fleet.version(&branch), "0.63.0");
    }
    assert_eq!(fleet.open().len(), TENANTS);
    assert_consistent(&fleet, "after the bump");
    // The work directory got the same one pack, and nothing loose.
    let work = Objects::of(&fleet.dir.path().join("w/repo.git/objects"));
    let stray: Vec<&String> = work
        .other
        .iter()
        .filter(|n| n.starts_with("tmp_"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    assert!(
        work.packs
            .is_superset(&after.packs.difference(&before.packs).cloned().collect())
    );
}

#[test]
fn a_cycle_writes_one_pack_and_no_loose_object_into_a_remote_given_as_a_path() {
    delivers_one_pack(false);
}

#[test]
fn a_cycle_writes_one_pack_and_no_loose_object_into_a_file_url_remote() {
    delivers_one_pack(true);
}

#[test]
fn a_branch_another_writer_moved_during_the_push_fails_alone_and_lands_on_the_retry() {
    let fleet = Fleet::new(false);
    fleet.run();
    fleet.bump();
    // Another writer deletes one branch while the run holds its lease.
    let stderr = moved_while_paused(
        &fleet,
        "pack-write:4",
        "hydrant/tenant-03",
        "after the retry",
    );
    assert_eq!(stderr.matches("push lost a race").count(), 1, "{stderr}");
}

/// Runs a bump paused at `pause` while another writer deletes `moved` on
/// the remote; checks that every branch still reaches the bump (the one
/// moved on the retry) and the remote is consistent; the run's stderr.
fn moved_while_paused(fleet: &Fleet, pause: &str, moved: &str, when: &str) -> String {
    let before = fleet.branches();
    let (mut child, log) = fleet.run_paused(pause);
    git(
        &fleet.remote.bare(),
        &["update-ref", "-d", &format!("refs/heads/{moved}")],
    );
    let status = child.wait().unwrap();
    let stderr = log.join().unwrap();
    assert!(status.success(), "{stderr}");
    let after = fleet.branches();
    assert_eq!(after.len(), TENANTS, "{after:?}");
    for (branch, commit) in &after {
        assert_ne!(before.get(branch), Some(commit), "{branch} moved");
        assert_eq!(fleet.version(branch), "0.63.0", "{branch}");
    }
    assert_eq!(fleet.open().len(), TENANTS);
    assert_consistent(fleet, when);
    stderr
}

#[test]
fn over_smart_http_a_branch_another_writer_moved_fails_alone_the_others_land_and_the_next_run_converges()
 {
    let fleet = Fleet::over_http();
    fleet.run();
    assert_eq!(fleet.branches().len(), TENANTS);
    fleet.bump();
    // The run has listed the remote's refs and checked its leases; another
    // writer deletes one branch before the push reaches the remote, which
    // refuses that one branch alone (its old value differs); the run
    // retries it.
    let stderr = moved_while_paused(
        &fleet,
        "http-push:4",
        "hydrant/tenant-05",
        "after the push over HTTP",
    );
    assert!(!stderr.contains(TOKEN), "{stderr}");
    assert_eq!(stderr.matches("push lost a race").count(), 1, "{stderr}");
    // The next run finds nothing to do.
    let after = fleet.branches();
    fleet.run();
    assert_eq!(fleet.branches(), after);
}

fn killed_at(point: &str) {
    let fleet = Fleet::new(true);
    fleet.run();
    fleet.bump();
    let old = fleet.branches();
    let started = Instant::now();
    let (mut child, log) = fleet.run_paused(point);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    log.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "killed during the pause"
    );
    let now = fleet.branches();
    assert_eq!(
        now.keys().collect::<Vec<_>>(),
        old.keys().collect::<Vec<_>>()
    );
    let moved = now.iter().filter(|(b, c)| old.get(*b) != Some(c)).count();
    match point {
        "pack-write" => assert_eq!(moved, 0, "no branch moved before the pack was whole"),
        _ => assert!(moved > 0 && moved < TENANTS, "{moved} branches moved"),
    }
    for (branch, commit) in &now {
        if old.get(branch) != Some(commit) {
            assert_eq!(fleet.version(branch), "0.63.0", "{branch} is complete");
        }
    }
    assert_consistent(&fleet, &format!("after the kill at {point}"));

    fleet.run();
    assert_consistent(&fleet, "after the next run");
    for branch in fleet.branches().keys() {
        assert_eq!(fleet.version(branch), "0.63.0", "{branch}");
    }
    let open = fleet.open();
    assert_eq!(
        open.len(),
        TENANTS,
        "one pull request per environment: {open:?}"
    );
    let left: Vec<String> = Objects::of(&fleet.remote.bare().join("objects"))
        .other
        .into_iter()
        .filter(|n| n.starts_with("tmp_"))
        .collect();
    assert!(left.is_empty(), "left behind in the remote: {left:?}");
    // Converged: a third run changes nothing.
    let branches = fleet.branches();
    fleet.run();
    assert_eq!(fleet.branches(), branches);
}

#[test]
fn a_run_killed_while_it_writes_the_pack_leaves_the_remote_whole_and_the_next_converges() {
    killed_at("pack-write");
}

#[test]
fn a_run_killed_while_it_moves_the_branches_leaves_each_old_or_new_and_the_next_converges() {
    killed_at("refs-half");
}
