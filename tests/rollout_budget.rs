//! The pull-request budget and freeze windows, with the real binary against
//! a bare remote: the local forge and a channel on disk for thirty tenants
//! over a budget of ten an hour, the fake GitHub for its secondary rate
//! limits, and a freeze window in the repository's `hydrant.yaml` (issue 16).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::Run;
use common::fake_github::{FakeGitHub, GhFault};
use common::git::{HttpGit, Remote, git};
use serde_json::Value;

fn tenants() -> Vec<String> {
    (1..=30).map(|i| format!("t{i:02}")).collect()
}

/// A config repository on a bare remote, delivered through the local forge.
struct Local {
    remote: Remote,
    dirs: tempfile::TempDir,
}

impl Local {
    fn new(remote: Remote) -> Local {
        Local {
            remote,
            dirs: tempfile::tempdir().unwrap(),
        }
    }

    fn state(&self) -> PathBuf {
        self.dirs.path().join("state")
    }

    fn run(&self, command: &[&str]) -> Run {
        let args = [command, &["--output", "json"]].concat();
        self.remote.run_hydrant(self.dirs.path(), &args)
    }

    fn json(&self, command: &[&str]) -> Value {
        let run = self.run(command).ok();
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
    }

    /// Every pull request the local forge holds, with its file.
    fn pull_files(&self) -> Vec<(PathBuf, Value)> {
        let Ok(dir) = std::fs::read_dir(self.state().join("pulls")) else {
            return Vec::new();
        };
        dir.flatten()
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap();
                (e.path(), serde_json::from_str(&text).unwrap())
            })
            .collect()
    }

    /// The open pull requests, by environment.
    fn open(&self) -> Vec<(String, Value)> {
        let mut open: Vec<(String, Value)> = self
            .pull_files()
            .into_iter()
            .filter(|(_, p)| p["state"] == "open")
            .map(|(_, p)| {
                let env = p["head"].as_str().unwrap().trim_start_matches("hydrant/");
                (env.to_string(), p)
            })
            .collect();
        open.sort_by(|a, b| a.0.cmp(&b.0));
        open
    }

    fn open_envs(&self) -> BTreeSet<String> {
        self.open().into_iter().map(|(env, _)| env).collect()
    }

    /// As if every pull request so far had been opened two hours ago.
    fn age_pull_requests(&self) {
        let old = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2)).to_string();
        for (path, mut pr) in self.pull_files() {
            pr["created_at"] = Value::String(old.clone());
            std::fs::write(path, serde_json::to_string_pretty(&pr).unwrap()).unwrap();
        }
    }

    /// A reviewer merges `hydrant/<env>` of each into `main`.
    fn merge(&self, envs: &[String]) {
        let w = self.remote.work();
        git(&w, &["fetch", "-q", "origin"]);
        git(&w, &["checkout", "-q", "main"]);
        git(&w, &["pull", "-q", "--ff-only", "origin", "main"]);
        for env in envs {
            let branch = format!("origin/hydrant/{env}");
            git(&w, &["merge", "-q", "--no-ff", "-m", "Merge", &branch]);
        }
        git(&w, &["push", "-q", "origin", "main"]);
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

/// Thirty tenants on stable 0.62.1, merged (their pull requests opened two
/// hours ago); stable 0.63.0 waits in `channels/stable/releases/`.
fn thirty_tenants() -> Local {
    let fleet = Local::new(Remote::new());
    fleet.remote.seed_tenants(&tenants(), &[]);
    fleet.run(&["reconcile"]).ok();
    assert_eq!(fleet.open().len(), 30);
    fleet.merge(&tenants());
    fleet.run(&["reconcile"]).ok();
    assert!(fleet.open().is_empty());
    fleet.age_pull_requests();
    fleet
}

#[test]
fn a_budget_of_ten_an_hour_opens_ten_of_thirty_and_plans_the_rest_as_waiting() {
    let fleet = thirty_tenants();
    let text = fleet
        .remote
        .read_main("channels/stable/releases/0.63.0.yaml");
    fleet
        .remote
        .commit_to_main("channels/stable.yaml", &text, "stable 0.63.0");
    let budget = ["--max-new-pull-requests-per-hour", "10"];

    let run = fleet.json(&[&["reconcile"][..], &budget].concat());
    let opened: Vec<&str> = run["environments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["action"] == "opened")
        .map(|o| o["env"].as_str().unwrap())
        .collect();
    assert_eq!(opened.len(), 10, "{run}");
    // The first ten by name (one implicit wave), reported in the usual order.
    let first_ten: BTreeSet<String> = tenants().into_iter().take(10).collect();
    assert_eq!(fleet.open_envs(), first_ten);
    assert_eq!(run["budget"]["used"], 10, "{run}");
    assert_eq!(run["budget"]["remaining"], 0, "{run}");
    let t11 = outcome(&run, "t11");
    assert_eq!(t11["action"], "unchanged", "{t11}");
    let reason = t11["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("waiting for forge budget: 10 of 10 this hour, next at "),
        "{reason}"
    );

    // The plan, as a restart sees it: the ten are counted from the forge.
    let plan = fleet.json(&[&["plan"][..], &budget].concat());
    let waiting: Vec<&Value> = plan["environments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| {
            o["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("waiting for forge budget"))
        })
        .collect();
    assert_eq!(waiting.len(), 20, "{plan}");
    assert!(waiting.iter().all(|o| o["decision"] == "nothing"));
    let text = fleet.run(&[&["plan"][..], &budget].concat());
    assert!(text.stdout.contains("waiting for forge budget"));
    // Updates of the open ten are not limited; the open limit counts them.
    let plan = fleet.json(&[
        "plan",
        "--max-new-pull-requests-per-hour",
        "50",
        "--max-open-pull-requests",
        "12",
    ]);
    let open_next: Vec<&Value> = plan["environments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["decision"] == "open")
        .collect();
    assert_eq!(open_next.len(), 2, "{plan}");
    assert!(
        outcome(&plan, "t30")["reason"]
            .as_str()
            .unwrap()
            .contains("12 pull requests are open, the most allowed")
    );
}

/// `dev` and `staging` auto-merge; a freeze window in `hydrant.yaml`.
fn frozen_example(window: &str) -> Local {
    let example = Local::new(Remote::new());
    for env in ["dev", "staging"] {
        let path = format!("environments/{env}/environment.yaml");
        let text = example.remote.read_main(&path);
        example.remote.commit_to_main(
            &path,
            &format!("{text}\npullRequest:\n  autoMerge: true\n"),
            &format!("{env} auto-merges"),
        );
    }
    example
        .remote
        .commit_to_main("hydrant.yaml", window, "A freeze window");
    example
}

/// A one-off window from `from` to `to` hours from now.
fn window(from: i64, to: i64, overrides: bool) -> String {
    let at = |h: i64| (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(h)).to_string();
    format!(
        "rollout:\n  freeze:\n    - from: {}\n      to: {}\n      reason: change freeze\n      overrides: {overrides}\n",
        at(from),
        at(to)
    )
}

/// A change of `dev`'s overrides (it stays on its release).
fn change_dev_overrides(remote: &Remote) {
    let values = remote.read_main("environments/dev/values.yaml");
    assert!(values.contains("app:\n  replicas: 1\n"));
    remote.commit_to_main(
        "environments/dev/values.yaml",
        &values.replacen("app:\n  replicas: 1\n", "app:\n  replicas: 2\n", 1),
        "dev: two app replicas",
    );
}

#[test]
fn a_freeze_window_covering_now_stops_new_versions_and_auto_merge() {
    let example = frozen_example(&window(-1, 1, false));
    let plan = example.json(&["plan"]);
    assert_eq!(plan["freeze"]["reason"], "change freeze", "{plan}");
    let message = plan["freeze"]["message"].as_str().unwrap();
    assert!(message.starts_with("frozen until "), "{message}");
    assert!(message.ends_with(" UTC: change freeze"), "{message}");
    assert!(plan["freeze"]["ends"].as_str().is_some());
    for env in ["staging", "prod"] {
        assert_eq!(outcome(&plan, env)["waiting"], message, "{plan}");
    }
    let text = example.run(&["status"]);
    assert!(text.stdout.contains("\"freeze\""), "{}", text.stdout);

    change_dev_overrides(&example.remote);
    let run = example.json(&["reconcile"]);
    // No new version; the override change flows, without auto-merge.
    assert_eq!(
        example.open_envs(),
        BTreeSet::from(["dev".to_string()]),
        "{run}"
    );
    let (_, dev) = &example.open()[0];
    assert_eq!(dev["auto_merge"], false, "{dev}");
    let body = dev["body"].as_str().unwrap();
    assert!(
        body.contains("Auto-merge is not turned on") && body.contains("`change freeze`"),
        "{body}"
    );
    assert!(!dev["title"].as_str().unwrap().contains("0.63.0"));
    // Planning again changes nothing.
    let again = example.json(&["plan"]);
    assert!(
        again["environments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["decision"] == "nothing"),
        "{again}"
    );
}

#[test]
fn a_freeze_window_with_overrides_stops_override_changes_too() {
    let example = frozen_example(&window(-1, 1, true));
    change_dev_overrides(&example.remote);
    let run = example.json(&["reconcile"]);
    assert!(example.open().is_empty(), "{run}");
    let dev = outcome(&run, "dev");
    assert!(
        dev["reason"]
            .as_str()
            .unwrap()
            .contains("no pull request is opened until it ends"),
        "{dev}"
    );
    assert!(run["freeze"]["overrides"].as_str().is_some(), "{run}");
}

#[test]
fn a_freeze_window_that_ended_lets_new_versions_and_auto_merge_through() {
    let example = frozen_example(&window(-2, -1, false));
    let run = example.json(&["reconcile"]);
    assert!(run.get("freeze").is_none(), "{run}");
    assert_eq!(
        example.open_envs(),
        BTreeSet::from(["prod".to_string(), "staging".to_string()]),
        "{run}"
    );
    let staging = example
        .open()
        .into_iter()
        .find(|(env, _)| env == "staging")
        .unwrap()
        .1;
    assert_eq!(staging["auto_merge"], true, "{staging}");
    assert!(staging["title"].as_str().unwrap().contains("0.63.0"));
}

const TOKEN: &str = "ghp_testtoken0123456789abcdef";

/// One cycle against a fake GitHub whose first answer is a secondary rate
/// limit (`403`, `Retry-After: 1`); the run and the requests it sent.
fn reconcile_after_a_secondary_limit(extra: &[&str]) -> (Run, FakeGitHub) {
    let remote = Remote::new();
    let git_server = HttpGit::start(remote.root.path(), TOKEN);
    let gh = FakeGitHub::start(TOKEN, "acme/wandb-config", 120);
    let dirs = tempfile::tempdir().unwrap();
    gh.fail(&[GhFault::SecondaryLimit]);
    let work = dirs.path().join("work");
    let url = git_server.url("remote.git");
    let api = gh.url();
    let mut args = vec![
        "reconcile",
        "--repo",
        &url,
        "--work-dir",
        work.to_str().unwrap(),
        "--forge",
        "github",
        "--github-api-url",
        &api,
        "--forge-repository",
        "acme/wandb-config",
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = common::hydrant()
        .args(&args)
        .env("HYDRANT_GITHUB_TOKEN", TOKEN)
        .current_dir(dirs.path())
        .output()
        .unwrap();
    (Run::from(out), gh)
}

/// Asserts that no request reached the fake within its `Retry-After` (1 s)
/// of the rate limit.
fn none_sent_within_retry_after(gh: &FakeGitHub) {
    let requests = gh.requests();
    let limited = requests
        .iter()
        .position(|r| r.status == 403)
        .expect("the secondary limit was met");
    let at = requests[limited].at;
    for r in &requests[limited + 1..] {
        assert!(
            r.at.duration_since(at) >= Duration::from_secs(1),
            "{} {} came {:?} after the limit",
            r.method,
            r.path,
            r.at.duration_since(at)
        );
    }
}

#[test]
fn after_a_secondary_rate_limit_nothing_is_sent_before_its_retry_after_and_the_budget_halves() {
    let (run, gh) = reconcile_after_a_secondary_limit(&["--max-new-pull-requests-per-hour", "2"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    none_sent_within_retry_after(&gh);
    assert!(gh.requests().len() > 2, "the cycle went on after the wait");
    // Two an hour, halved: prod (first by name) opens, staging waits.
    let pulls = gh.hydrant_pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(pulls[0].head, "hydrant/prod");
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let staging = outcome(&json, "staging");
    assert_eq!(
        staging["reason"]
            .as_str()
            .unwrap()
            .split(", next at")
            .next(),
        Some("waiting for forge budget: 1 of 1 this hour"),
        "{staging}"
    );
    assert_eq!(json["budget"]["limit"], 1, "{json}");
}

#[test]
fn a_retry_after_longer_than_hydrant_waits_sends_nothing_else_until_it_has_passed() {
    // hydrant waits for no rate limit: the call fails, and so does every
    // other call before the retry-after, without being sent.
    let (run, gh) = reconcile_after_a_secondary_limit(&["--forge-max-wait", "0"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("rate limited"), "{}", run.stdout);
    none_sent_within_retry_after(&gh);
}
