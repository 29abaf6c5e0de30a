//! Reconcile against a stateful fake of GitHub on 127.0.0.1, with the git
//! remote served over smart HTTP using the same token.

mod common;

use std::time::{Duration, Instant};

use common::Run;
use common::fake_github::{FakeGitHub, GhFault};
use common::git::{HttpGit, Remote};

const TOKEN: &str = "ghp_testtoken0123456789abcdef";

struct Setup {
    remote: Remote,
    git: HttpGit,
    gh: FakeGitHub,
    dirs: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let remote = Remote::new();
        let git = HttpGit::start(remote.root.path(), TOKEN);
        Setup {
            remote,
            git,
            gh: FakeGitHub::start(TOKEN, "acme/wandb-config", 120),
            dirs: tempfile::tempdir().unwrap(),
        }
    }

    fn reconcile_with(&self, token: &str, extra: &[&str]) -> Run {
        let work = self.dirs.path().join("work");
        let url = self.git.url("remote.git");
        let gh = self.gh.url();
        let mut args = vec![
            "reconcile",
            "--once",
            "--repo",
            &url,
            "--work-dir",
            work.to_str().unwrap(),
            "--forge",
            "github",
            "--github-api-url",
            &gh,
            "--forge-repository",
            "acme/wandb-config",
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        let out = common::hydrant()
            .args(&args)
            .env("HYDRANT_GITHUB_TOKEN", token)
            .env("HYDRANT_FORGE_BACKOFF_MS", "20")
            .current_dir(self.dirs.path())
            .output()
            .unwrap();
        let run = Run::from(out);
        assert!(
            !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
            "the token leaked"
        );
        run
    }

    fn reconcile(&self) -> Run {
        self.reconcile_with(TOKEN, &[])
    }
}

fn settings(remote: &Remote) {
    let staging = remote.read_main("environments/staging/environment.yaml");
    remote.commit_to_main(
        "environments/staging/environment.yaml",
        &format!("{staging}\npullRequest:\n  autoMerge: true\n  labels: [hydrant, staging]\n"),
        "staging auto-merges",
    );
    let prod = remote.read_main("environments/prod/environment.yaml");
    remote.commit_to_main(
        "environments/prod/environment.yaml",
        &format!(
            "{prod}\npullRequest:\n  reviewers: [platform-lead]\n  labels: [hydrant, production]\n"
        ),
        "prod waits for review",
    );
}

#[test]
fn one_pull_request_per_changed_environment_with_per_environment_settings() {
    let s = Setup::new();
    settings(&s.remote);
    let run = s.reconcile();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let a = run.actions();
    assert!(
        a.contains(&("staging".into(), "opened".into()))
            && a.contains(&("prod".into(), "opened".into())),
        "{a:?}"
    );
    let pulls = s.gh.hydrant_pulls();
    assert_eq!(pulls.len(), 2, "{pulls:?}");
    let staging = pulls.iter().find(|p| p.head == "hydrant/staging").unwrap();
    let prod = pulls.iter().find(|p| p.head == "hydrant/prod").unwrap();
    assert!(
        staging.auto_merge && !prod.auto_merge,
        "auto-merge only where configured"
    );
    assert_eq!(staging.labels, vec!["hydrant", "staging"]);
    assert_eq!(prod.reviewers, vec!["platform-lead"]);
    assert_eq!(prod.title, "hydrant(prod): stable 0.62.1 → 0.63.0");
    assert!(
        s.remote.branch("hydrant/prod").is_some(),
        "pushed over smart HTTP with the same token"
    );
}

#[test]
fn a_second_run_sends_no_write_and_a_restart_opens_no_duplicate() {
    let s = Setup::new();
    assert_eq!(s.reconcile().code, 0);
    let writes = s.gh.writes();
    let run = s.reconcile();
    assert!(
        run.actions().iter().all(|(_, a)| a == "unchanged"),
        "{}",
        run.stdout
    );
    assert_eq!(
        s.gh.writes(),
        writes,
        "an update that changes nothing sends no write request"
    );
    std::fs::remove_dir_all(s.dirs.path().join("work")).unwrap();
    assert_eq!(s.reconcile().code, 0);
    assert_eq!(s.gh.hydrant_pulls().len(), 2);
}

/// Issue 8: GitHub opened the pull request but its answer was lost or cut
/// short. Labels, reviewers and auto-merge take calls of their own after it:
/// they must not be lost with the answer.
#[test]
fn a_lost_or_cut_answer_to_the_create_call_opens_no_duplicate_and_loses_no_setting() {
    for fault in [GhFault::LoseCreateAnswer, GhFault::CutCreateAnswer] {
        let s = Setup::new();
        settings(&s.remote);
        s.gh.fail(&[fault]);
        let run = s.reconcile();
        assert_eq!(run.code, 0, "{fault:?}: {}\n{}", run.stdout, run.stderr);
        let pulls = s.gh.hydrant_pulls();
        assert_eq!(pulls.len(), 2, "{fault:?}: {pulls:?}");
        let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        for (env, labels) in [
            ("staging", ["hydrant", "staging"]),
            ("prod", ["hydrant", "production"]),
        ] {
            let head = format!("hydrant/{env}");
            let pr = pulls.iter().find(|p| p.head == head).unwrap();
            assert_eq!(
                pulls.iter().filter(|p| p.head == head).count(),
                1,
                "{fault:?}: {head}"
            );
            assert_eq!(pr.labels, labels, "{fault:?}: {env}");
            assert!(
                !pr.body.contains("hydrant:settings-pending"),
                "{fault:?}: {env}"
            );
            let reported = summary["environments"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["env"] == env)
                .unwrap();
            assert_eq!(
                reported["pull_request"]["number"], pr.number,
                "{fault:?}: {env}"
            );
        }
        let staging = pulls.iter().find(|p| p.head == "hydrant/staging").unwrap();
        let prod = pulls.iter().find(|p| p.head == "hydrant/prod").unwrap();
        assert!(staging.auto_merge, "{fault:?}");
        assert_eq!(prod.reviewers, ["platform-lead"], "{fault:?}");
    }
}

/// At fleet scale, finding an environment's pull request must not cost more
/// as other pull requests open: it is asked for by `head=owner:hydrant/<env>`,
/// one request however many others are open (120 here: two pages unfiltered).
#[test]
fn an_environments_pull_request_is_found_in_one_request_however_many_others_are_open() {
    let s = Setup::new();
    assert_eq!(s.reconcile().code, 0);
    s.remote.commit_to_main(
        "channels/stable.yaml",
        &s.remote
            .read_main("channels/stable.yaml")
            .replace("0.63.0", "0.63.1"),
        "stable 0.63.1",
    );
    let run = s.reconcile();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.actions().contains(&("prod".into(), "updated".into())),
        "{}",
        run.stdout
    );
    let finds: Vec<String> =
        s.gh.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.contains("/pulls?state=open&base="))
            .map(|r| r.path)
            .collect();
    assert!(finds.len() >= 2, "{finds:?}");
    for find in &finds {
        assert!(
            find.contains("&head=acme%3Ahydrant%2F") && !find.contains("&page="),
            "{find}"
        );
    }
    assert_eq!(
        s.gh.hydrant_pulls().len(),
        2,
        "updated in place, no duplicate"
    );
}

#[test]
fn a_new_version_updates_in_place_and_a_superseded_pull_request_is_closed() {
    let s = Setup::new();
    assert_eq!(s.reconcile().code, 0);
    let spec = s
        .remote
        .read_main("channels/stable.yaml")
        .replace("0.63.0", "0.63.1");
    s.remote
        .commit_to_main("channels/stable.yaml", &spec, "stable 0.63.1");
    let a = s.reconcile().actions();
    assert!(a.contains(&("prod".into(), "updated".into())), "{a:?}");
    let prod =
        s.gh.hydrant_pulls()
            .into_iter()
            .find(|p| p.head == "hydrant/prod")
            .unwrap();
    assert_eq!(prod.title, "hydrant(prod): stable 0.62.1 → 0.63.1");
    // Someone lands prod's change on main by other means.
    s.remote.land_by_hand("prod");
    let a = s.reconcile().actions();
    assert!(a.contains(&("prod".into(), "closed".into())), "{a:?}");
    let prod =
        s.gh.hydrant_pulls()
            .into_iter()
            .find(|p| p.head == "hydrant/prod")
            .unwrap();
    assert!(
        !prod.open
            && prod
                .comments
                .iter()
                .any(|c| c.contains("already up to date")),
        "{prod:?}"
    );
    assert!(s.remote.branch("hydrant/prod").is_none(), "branch deleted");
}

#[test]
fn rate_limits_are_waited_out_within_bounds() {
    let s = Setup::new();
    s.gh.fail(&[
        GhFault::PrimaryLimit,
        GhFault::SecondaryLimit,
        GhFault::TooMany,
    ]);
    let start = Instant::now();
    let run = s.reconcile();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "waited {:?}",
        start.elapsed()
    );
    assert!(run.stderr.contains("rate limited"), "{}", run.stderr);
    // A 5xx is retried with backoff.
    let s = Setup::new();
    s.gh.fail(&[GhFault::ServerError, GhFault::ServerError]);
    assert_eq!(s.reconcile().code, 0);
    // A limit longer than hydrant waits fails the call clearly, and quickly.
    let s = Setup::new();
    s.gh.fail(&[GhFault::TooMany]);
    let start = Instant::now();
    let run = s.reconcile_with(TOKEN, &["--forge-max-wait", "0"]);
    assert_eq!(run.code, 1);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(
        run.stdout.contains("longer than the 0s hydrant waits"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_rejected_token_is_reported_without_the_token() {
    let s = Setup::new();
    // A wrong git token too, so that the push is refused as well (an empty
    // credential file is refused before anything is sent).
    let git_token = s.dirs.path().join("git-token");
    std::fs::write(&git_token, "ghp_wrong_git\n").unwrap();
    let run = s.reconcile_with(
        "ghp_wrong",
        &["--git-token-file", git_token.to_str().unwrap()],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("401")
            || run.stderr.contains("401")
            || run.stdout.contains("authentication"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(!run.stdout.contains("ghp_wrong") && !run.stderr.contains("ghp_wrong"));
}

#[test]
fn github_app_auth_renews_an_expired_installation_token() {
    let remote = Remote::new();
    let gh = FakeGitHub::start(TOKEN, "acme/wandb-config", 5);
    let dirs = tempfile::tempdir().unwrap();
    // Installation tokens expire after a few requests, so one run needs several.
    let key = gh.enable_app_with_new_key("123", dirs.path(), 6);
    let git = gh.git_server(remote.root.path());
    let url = git.url("remote.git");
    let out = common::hydrant()
        .args([
            "reconcile",
            "--once",
            "--repo",
            &url,
            "--work-dir",
            dirs.path().join("w").to_str().unwrap(),
            "--forge",
            "github",
            "--github-api-url",
            &gh.url(),
            "--forge-repository",
            "acme/wandb-config",
            "--output",
            "json",
            "--github-app-id",
            "123",
            "--github-app-key-file",
            key.to_str().unwrap(),
        ])
        .current_dir(dirs.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(gh.hydrant_pulls().len(), 2);
    assert!(
        remote.branch("hydrant/prod").is_some(),
        "pushed with the installation token"
    );
    assert!(
        gh.app_tokens_issued() >= 2,
        "the expired token was renewed ({} issued)",
        gh.app_tokens_issued()
    );
    assert!(
        !stdout.contains("ghs_installation") && !stderr.contains("ghs_installation"),
        "no token in the output"
    );
}
