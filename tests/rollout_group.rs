//! A grouped rollout wave (`pullRequest: {group: wave}`), with the real
//! binary against a bare remote, the local forge and a channel on disk:
//! forty tenants in one wave are delivered in one branch,
//! `hydrant/wave-tenants`, with one commit per tenant, and one pull request
//! whose description stays under the forge's 65,536 characters. Merges are
//! made by hand with git, as a reviewer's merge would be.

mod common;

use std::path::PathBuf;

use common::Run;
use common::git::{Remote, git};
use serde_json::Value;

const TENANTS: usize = 40;
const BRANCH: &str = "hydrant/wave-tenants";

fn rollout(grouped: bool) -> String {
    let group = if grouped {
        "      pullRequest: {group: wave}\n"
    } else {
        ""
    };
    format!("rollout:\n  waves:\n    - name: tenants\n      environments: [\"t*\"]\n{group}")
}

fn tenants() -> Vec<String> {
    (1..=TENANTS).map(|i| format!("t{i:02}")).collect()
}

/// A CA certificate of some 4 KB for `global.customCACerts`: a large diff.
fn big_cert(env: &str) -> String {
    let mut pem = String::from("    - |\n      -----BEGIN CERTIFICATE-----\n");
    for i in 0..64 {
        pem.push_str(&format!(
            "      {env}{i:03}MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQG\n"
        ));
    }
    pem.push_str("      -----END CERTIFICATE-----\n");
    pem
}

struct Fleet {
    remote: Remote,
    dirs: tempfile::TempDir,
}

impl Fleet {
    /// Forty tenants on stable 0.62.1 in one grouped wave, not rendered yet;
    /// stable 0.63.0 waits in `channels/stable/releases/`.
    fn new() -> Fleet {
        let fleet = Fleet {
            remote: Remote::new(),
            dirs: tempfile::tempdir().unwrap(),
        };
        fleet
            .remote
            .seed_tenants(&tenants(), &[("hydrant.yaml", &rollout(true))]);
        fleet
    }

    fn state(&self) -> PathBuf {
        self.dirs.path().join("state")
    }

    fn run(&self, command: &[&str]) -> Run {
        self.remote.run_hydrant(self.dirs.path(), command)
    }

    /// One cycle; its JSON summary.
    fn reconcile(&self) -> Value {
        let run = self.run(&["reconcile", "--once", "--output", "json"]).ok();
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
    }

    /// Every pull request the local forge holds.
    fn pulls(&self) -> Vec<Value> {
        let Ok(dir) = std::fs::read_dir(self.state().join("pulls")) else {
            return Vec::new();
        };
        let mut pulls: Vec<Value> = dir
            .flatten()
            .map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap())
            .collect();
        pulls.sort_by_key(|p| p["number"].as_u64());
        pulls
    }

    fn open_pulls(&self) -> Vec<Value> {
        self.pulls()
            .into_iter()
            .filter(|p| p["state"] == "open")
            .collect()
    }

    fn pull(&self, number: u64) -> Value {
        self.pulls()
            .into_iter()
            .find(|p| p["number"] == number)
            .unwrap_or_else(|| panic!("no pull request #{number}"))
    }

    /// The one open pull request, from the wave's branch.
    fn the_group_pull(&self) -> Value {
        let open = self.open_pulls();
        assert_eq!(
            open.len(),
            1,
            "{:?}",
            open.iter().map(|p| &p["head"]).collect::<Vec<_>>()
        );
        assert_eq!(open[0]["head"], BRANCH);
        open[0].clone()
    }

    /// The environment of each commit of the wave's branch above `main`,
    /// oldest first.
    fn commits_above_main(&self) -> Vec<String> {
        let log = git(
            &self.remote.bare(),
            &[
                "log",
                "--reverse",
                "--first-parent",
                "--format=%(trailers:key=Hydrant-Environment,valueonly)",
                &format!("main..{BRANCH}"),
            ],
        );
        log.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    /// A reviewer merges the wave's branch into `main`.
    fn merge_group(&self) {
        let w = self.remote.work();
        git(&w, &["fetch", "-q", "origin"]);
        git(&w, &["checkout", "-q", "main"]);
        git(&w, &["pull", "-q", "--ff-only", "origin", "main"]);
        git(
            &w,
            &[
                "merge",
                "-q",
                "--no-ff",
                "-m",
                "Merge the tenants wave",
                &format!("origin/{BRANCH}"),
            ],
        );
        git(&w, &["push", "-q", "origin", "main"]);
    }

    /// Publishes a release as stable's latest.
    fn publish(&self, version: &str) {
        let text = self
            .remote
            .read_main("channels/stable/releases/0.63.0.yaml");
        let text = text.replace("\"0.63.0\"", &format!("\"{version}\""));
        self.remote
            .commit_to_main("channels/stable.yaml", &text, &format!("stable {version}"));
    }

    /// Adds a large CA certificate to every tenant's values, in one commit.
    fn add_big_certs(&self) {
        let w = self.remote.work();
        git(&w, &["checkout", "-q", "main"]);
        git(&w, &["pull", "-q", "--ff-only", "origin", "main"]);
        for t in tenants() {
            let path = w.join("environments").join(&t).join("values.yaml");
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.replacen(
                "\nglobal:\n",
                &format!("\nglobal:\n  customCACerts:\n{}", big_cert(&t)),
                1,
            );
            std::fs::write(&path, text).unwrap();
        }
        git(&w, &["commit", "-q", "-am", "Trust the tenants' CA"]);
        git(&w, &["push", "-q", "origin", "main"]);
    }
}

fn group_of(run: &Value) -> &Value {
    let groups = run["groups"].as_array().unwrap_or_else(|| panic!("{run}"));
    assert_eq!(groups.len(), 1, "{run}");
    &groups[0]
}

#[test]
fn a_grouped_wave_of_forty_environments_is_one_pull_request_updated_in_place_and_closed_when_done()
{
    let fleet = Fleet::new();

    // The first render of all forty: one pull request, one commit each.
    let first = fleet.reconcile();
    assert_eq!(group_of(&first)["action"], "opened", "{first}");
    let pull = fleet.the_group_pull();
    assert_eq!(fleet.commits_above_main(), tenants());
    assert!(
        fleet
            .remote
            .branches()
            .iter()
            .all(|b| !b.starts_with("hydrant/t")),
        "{:?}",
        fleet.remote.branches()
    );
    for t in tenants() {
        let o = first["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["env"] == t.as_str())
            .unwrap_or_else(|| panic!("{t} missing: {first}"));
        assert_eq!(o["branch"], BRANCH, "{o}");
        assert_eq!(o["pull_request"]["number"], pull["number"], "{o}");
    }

    // Merged by hand: the next cycle closes the now needless pull request
    // and its branch, and opens nothing.
    fleet.merge_group();
    let merged = fleet.reconcile();
    assert_eq!(group_of(&merged)["action"], "closed", "{merged}");
    assert!(fleet.open_pulls().is_empty());
    assert_eq!(fleet.pulls().len(), 1);
    assert_eq!(fleet.remote.branch(BRANCH), None);
    let again = fleet.reconcile();
    assert_eq!(group_of(&again)["action"], "unchanged", "{again}");
    assert_eq!(fleet.pulls().len(), 1);

    // A new release and a large change to every tenant: one pull request
    // with forty commits above `main`, its description under the limit.
    fleet.publish("0.63.0");
    fleet.add_big_certs();
    let bumped = fleet.reconcile();
    assert_eq!(group_of(&bumped)["action"], "opened", "{bumped}");
    let pull = fleet.the_group_pull();
    let number = pull["number"].as_u64().unwrap();
    assert_eq!(fleet.commits_above_main(), tenants());
    let body = pull["body"].as_str().unwrap();
    assert!(body.len() < 65_536, "{}", body.len());
    assert!(
        body.contains("| `t40` | `0.62.1` → `0.63.0` |"),
        "{}",
        &body[..2_000]
    );
    assert!(body.contains("is collapsed to keep this description within 65536 characters"));
    assert_eq!(
        pull["title"],
        "hydrant(wave-tenants): stable 0.62.1 → 0.63.0, 40 environments"
    );
    let head = fleet.remote.branch(BRANCH).unwrap();

    // Nothing changed: nothing is written.
    let still = fleet.reconcile();
    assert_eq!(group_of(&still)["action"], "unchanged", "{still}");
    assert_eq!(fleet.remote.branch(BRANCH).as_deref(), Some(head.as_str()));
    assert_eq!(fleet.pull(number), pull);

    // Another release: the same pull request, a new head.
    fleet.publish("0.64.0");
    let updated = fleet.reconcile();
    assert_eq!(group_of(&updated)["action"], "updated", "{updated}");
    let pull = fleet.the_group_pull();
    assert_eq!(pull["number"], number);
    let new_head = fleet.remote.branch(BRANCH).unwrap();
    assert_ne!(new_head, head);
    assert_eq!(fleet.commits_above_main(), tenants());
    assert!(
        pull["body"]
            .as_str()
            .unwrap()
            .contains("`0.62.1` → `0.64.0`")
    );
    assert!(pull["body"].as_str().unwrap().len() < 65_536);

    // The wave stops grouping: its pull request is superseded and closed,
    // and each tenant gets its own.
    fleet.remote.commit_to_main(
        "hydrant.yaml",
        &rollout(false),
        "One pull request per tenant",
    );
    let split = fleet.reconcile();
    assert_eq!(group_of(&split)["action"], "closed", "{split}");
    let closed = fleet.pull(number);
    assert_eq!(closed["state"], "closed");
    let comments = closed["comments"].to_string();
    assert!(comments.contains("superseded"), "{comments}");
    assert_eq!(fleet.remote.branch(BRANCH), None);
    assert_eq!(fleet.open_pulls().len(), TENANTS);

    // Grouped again: the tenants' own pull requests are superseded by one.
    fleet.remote.commit_to_main(
        "hydrant.yaml",
        &rollout(true),
        "One pull request for the wave",
    );
    let regrouped = fleet.reconcile();
    assert_eq!(group_of(&regrouped)["action"], "opened", "{regrouped}");
    let pull = fleet.the_group_pull();
    assert_ne!(pull["number"], number);
    assert_eq!(fleet.commits_above_main(), tenants());
    assert!(
        fleet
            .remote
            .branches()
            .iter()
            .all(|b| !b.starts_with("hydrant/t")),
        "{:?}",
        fleet.remote.branches()
    );
    let superseded = fleet
        .pulls()
        .into_iter()
        .filter(|p| p["state"] == "closed" && p["head"].as_str().unwrap().starts_with("hydrant/t"))
        .count();
    assert_eq!(superseded, TENANTS);
}
