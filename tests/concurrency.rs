//! Two hydrant processes on one repository and one forge at the same time (two
//! cron jobs, or a daemon and a cron job on other machines): each with its own
//! work directory, both pushing over smart HTTP to the same remote and writing
//! to the same GitHub. Across many rounds with a channel release between
//! rounds: never two open pull requests for one environment, no lost update
//! (the last release always ends up on the branch and in the title), a human
//! commit on a branch is never overwritten, and both runs succeed: a push
//! that loses the race is retried and converges.
//!
//! `HYDRANT_RACE_ROUNDS` sets the number of rounds (default 6).

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};

use common::fake_github::FakeGitHub;
use common::git::{HttpGit, Remote, git};

const TOKEN: &str = "ghp_racetoken0123456789abcdef";

fn start(url: &str, gh: &FakeGitHub, work: &std::path::Path) -> Child {
    common::hydrant()
        .args([
            "reconcile",
            "--once",
            "--repo",
            url,
            "--work-dir",
            work.to_str().unwrap(),
            "--forge",
            "github",
            "--github-api-url",
            &gh.url(),
            "--forge-repository",
            "acme/wandb-config",
            "--output",
            "json",
        ])
        .env("HYDRANT_GITHUB_TOKEN", TOKEN)
        .env("HYDRANT_FORGE_BACKOFF_MS", "20")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn rounds() -> usize {
    std::env::var("HYDRANT_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

#[test]
fn two_runs_at_once_never_duplicate_lose_or_overwrite_and_both_converge() {
    let remote = Remote::new();
    let http = HttpGit::start(remote.root.path(), TOKEN);
    let gh = FakeGitHub::start(TOKEN, "acme/wandb-config", 3);
    let dirs = tempfile::tempdir().unwrap();
    let url = http.url("remote.git");
    let stable = remote.read_main("channels/stable.yaml");
    let human_round = rounds() / 2;
    let mut human_commit = None;
    for round in 0..rounds() {
        let version = format!("0.64.{round}");
        remote.commit_to_main(
            "channels/stable.yaml",
            &stable.replace("\"0.63.0\"", &format!("\"{version}\"")),
            &format!("stable publishes {version}"),
        );
        if round == human_round {
            // A person takes over staging's branch: hydrant must leave it.
            let w = remote.work();
            git(&w, &["fetch", "-q", "origin"]);
            git(
                &w,
                &["checkout", "-q", "-B", "takeover", "origin/hydrant/staging"],
            );
            std::fs::write(w.join("NOTES.md"), "held by hand\n").unwrap();
            git(&w, &["add", "NOTES.md"]);
            git(&w, &["commit", "-q", "-m", "Hold staging by hand"]);
            git(&w, &["push", "-q", "origin", "takeover:hydrant/staging"]);
            git(&w, &["checkout", "-q", "main"]);
            human_commit = remote.branch("hydrant/staging");
        }
        let children = [
            start(&url, &gh, &dirs.path().join("a")),
            start(&url, &gh, &dirs.path().join("b")),
        ];
        for child in children {
            let out = child.wait_with_output().unwrap();
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            assert!(
                out.status.success(),
                "round {round}: a racing run failed:\n{stdout}\n{stderr}"
            );
            assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));
        }
        let mut open: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pr in gh.hydrant_pulls().into_iter().filter(|p| p.open) {
            open.entry(pr.head.clone()).or_default().push(pr.title);
        }
        for (head, titles) in &open {
            assert_eq!(titles.len(), 1, "round {round}: {head} has {titles:?}");
        }
        let prod = &open["hydrant/prod"][0];
        assert!(
            prod.ends_with(&version),
            "round {round}: lost update: {prod}"
        );
        let meta = git(
            &remote.bare(),
            &[
                "show",
                "refs/heads/hydrant/prod:rendered/prod/hydrant.metadata",
            ],
        );
        assert!(
            meta.contains(&format!("\"version\": \"{version}\"")),
            "round {round}: {meta}"
        );
        match &human_commit {
            Some(commit) => assert_eq!(
                remote.branch("hydrant/staging").as_ref(),
                Some(commit),
                "round {round}: the human commit on hydrant/staging was overwritten"
            ),
            None => assert!(open["hydrant/staging"][0].ends_with(&version)),
        }
    }
    eprintln!(
        "race test: {} rounds of two concurrent runs, 0 duplicates, 0 lost updates",
        rounds()
    );
}
