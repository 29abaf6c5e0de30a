//! `hydrant reconcile --once` against real git remotes: bare repositories over
//! `file://` and over smart HTTP (`git http-backend`) with a token, with the
//! local forge keeping pull requests as JSON files.

mod common;

use std::path::{Path, PathBuf};

use common::git::{HttpGit, Remote, git};
use common::{Run, run_in};
use serde_json::Value;

struct Setup {
    remote: Remote,
    dirs: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            remote: Remote::new(),
            dirs: tempfile::tempdir().unwrap(),
        }
    }

    fn work(&self) -> PathBuf {
        self.dirs.path().join("work")
    }

    fn state(&self) -> PathBuf {
        self.dirs.path().join("state")
    }

    fn reconcile_url(&self, url: &str, extra: &[&str]) -> Run {
        let (work, state) = (self.work(), self.state());
        let mut args = vec![
            "reconcile",
            "--once",
            "--repo",
            url,
            "--work-dir",
            work.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ];
        if !extra.contains(&"--output") {
            args.extend(["--output", "json"]);
        }
        args.extend_from_slice(extra);
        run_in(self.dirs.path(), &args)
    }

    fn reconcile(&self, extra: &[&str]) -> Run {
        self.reconcile_url(&self.remote.url(), extra)
    }

    fn pulls(&self) -> Vec<Value> {
        let dir = self.state().join("pulls");
        let mut pulls: Vec<Value> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap()
                    })
                    .collect()
            })
            .unwrap_or_default();
        pulls.sort_by_key(|p| p["number"].as_u64());
        pulls
    }
}

fn outcomes(run: &Run) -> Vec<Value> {
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    v["environments"].as_array().unwrap().clone()
}

fn action<'a>(outcomes: &'a [Value], env: &str) -> &'a str {
    outcomes
        .iter()
        .find(|o| o["env"] == env)
        .unwrap_or_else(|| panic!("{env} missing: {outcomes:?}"))["action"]
        .as_str()
        .unwrap()
}

fn changed_paths(remote: &Remote, from: &str, to: &str) -> Vec<String> {
    git(&remote.bare(), &["diff", "--name-only", from, to])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn the_first_run_opens_one_pull_request_per_changed_environment() {
    let s = Setup::new();
    let run = s.reconcile(&[]).ok();
    let o = outcomes(&run);
    assert_eq!(
        (action(&o, "dev"), action(&o, "staging"), action(&o, "prod")),
        ("unchanged", "opened", "opened"),
        "{o:?}"
    );
    let prod = o.iter().find(|x| x["env"] == "prod").unwrap();
    assert_eq!(prod["version"]["from"], "0.62.1");
    assert_eq!(prod["version"]["to"], "0.63.0");
    assert_eq!(prod["branch"], "hydrant/prod");
    let pulls = s.pulls();
    assert_eq!(pulls.len(), 2);
    let heads: std::collections::BTreeSet<&str> =
        pulls.iter().map(|p| p["head"].as_str().unwrap()).collect();
    assert_eq!(
        heads,
        ["hydrant/prod", "hydrant/staging"].into_iter().collect()
    );
    let prod_pr = pulls.iter().find(|p| p["head"] == "hydrant/prod").unwrap();
    assert_eq!(prod_pr["title"], "hydrant(prod): stable 0.62.1 → 0.63.0");
    assert_eq!(prod_pr["base"], "main");
    let body = prod_pr["body"].as_str().unwrap();
    assert!(
        body.contains("`wandb/local:0.62.1` | `wandb/local:0.63.0`"),
        "{body}"
    );
    assert_eq!(prod["pull_request"]["number"], prod_pr["number"]);
    // Exactly one commit on top of main, touching only rendered/prod/.
    let tip = s.remote.branch("hydrant/prod").unwrap();
    let main = s.remote.branch("main").unwrap();
    assert_eq!(
        git(&s.remote.bare(), &["rev-parse", &format!("{tip}^")]),
        main
    );
    let paths = changed_paths(&s.remote, &main, &tip);
    assert!(
        !paths.is_empty() && paths.iter().all(|p| p.starts_with("rendered/prod/")),
        "{paths:?}"
    );
    let message = git(&s.remote.bare(), &["log", "-1", "--format=%B", &tip]);
    assert!(
        message.starts_with("hydrant(prod): stable 0.62.1 → 0.63.0\n"),
        "{message}"
    );
    assert!(
        message.contains("Hydrant-Environment: prod")
            && message.contains("Hydrant-Channel-Version: 0.63.0")
            && message.contains(&format!("Hydrant-Source-Commit: {main}")),
        "{message}"
    );
    assert!(
        s.remote.branch("hydrant/dev").is_none(),
        "no branch for an unchanged environment"
    );
}

#[test]
fn a_second_run_with_the_same_inputs_changes_nothing() {
    let s = Setup::new();
    s.reconcile(&[]).ok();
    let before = (
        s.remote.branch("hydrant/prod"),
        s.remote.branch("hydrant/staging"),
        s.pulls(),
    );
    let run = s.reconcile(&[]).ok();
    let o = outcomes(&run);
    assert!(o.iter().all(|x| x["action"] == "unchanged"), "{o:?}");
    assert_eq!(
        before,
        (
            s.remote.branch("hydrant/prod"),
            s.remote.branch("hydrant/staging"),
            s.pulls()
        )
    );
    // Also after a restart with a fresh work directory.
    std::fs::remove_dir_all(s.work()).unwrap();
    let o = outcomes(&s.reconcile(&[]).ok());
    assert!(o.iter().all(|x| x["action"] == "unchanged"), "{o:?}");
    assert_eq!(s.pulls().len(), 2);
}

#[test]
fn a_new_channel_version_updates_the_same_branch_and_pull_request() {
    let s = Setup::new();
    s.reconcile(&[]).ok();
    let first_tip = s.remote.branch("hydrant/prod").unwrap();
    let spec = s
        .remote
        .read_main("channels/stable.yaml")
        .replace("0.63.0", "0.63.1");
    s.remote
        .commit_to_main("channels/stable.yaml", &spec, "stable 0.63.1");
    let o = outcomes(&s.reconcile(&[]).ok());
    assert_eq!(action(&o, "prod"), "updated", "{o:?}");
    let tip = s.remote.branch("hydrant/prod").unwrap();
    assert_ne!(tip, first_tip);
    assert_eq!(
        git(&s.remote.bare(), &["rev-parse", &format!("{tip}^")]),
        s.remote.branch("main").unwrap(),
        "rebased on the new main"
    );
    let pulls = s.pulls();
    assert_eq!(pulls.len(), 2, "never a second pull request");
    let prod = pulls.iter().find(|p| p["head"] == "hydrant/prod").unwrap();
    assert_eq!(prod["title"], "hydrant(prod): stable 0.62.1 → 0.63.1");
    assert_eq!(prod["state"], "open");
}

#[test]
fn a_change_merged_to_base_by_hand_closes_the_unneeded_pull_request() {
    let s = Setup::new();
    s.reconcile(&[]).ok();
    // A person merges prod's rendered change into main by other means.
    s.remote.land_by_hand("prod");
    let o = outcomes(&s.reconcile(&[]).ok());
    assert_eq!(action(&o, "prod"), "closed", "{o:?}");
    assert_eq!(action(&o, "staging"), "unchanged");
    let prod = s
        .pulls()
        .into_iter()
        .find(|p| p["head"] == "hydrant/prod")
        .unwrap();
    assert_eq!(prod["state"], "closed");
    assert!(
        prod["comments"][0]["body"]
            .as_str()
            .unwrap()
            .contains("already up to date on `main`"),
        "{prod}"
    );
    assert!(
        s.remote.branch("hydrant/prod").is_none(),
        "the branch is deleted"
    );
    assert!(s.remote.branch("hydrant/staging").is_some());
}

#[test]
fn a_human_commit_on_a_hydrant_branch_is_never_overwritten() {
    let s = Setup::new();
    s.reconcile(&[]).ok();
    let w = s.remote.work();
    git(&w, &["fetch", "-q", "origin"]);
    git(
        &w,
        &["checkout", "-q", "-B", "fix", "origin/hydrant/staging"],
    );
    std::fs::write(w.join("rendered/staging/NOTE.txt"), "a human fix\n").unwrap();
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-q", "-m", "Hand fix"]);
    git(&w, &["push", "-q", "origin", "fix:hydrant/staging"]);
    let human_tip = s.remote.branch("hydrant/staging").unwrap();
    // A new channel version would normally update the branch.
    let spec = s
        .remote
        .read_main("channels/stable.yaml")
        .replace("0.63.0", "0.63.1");
    s.remote
        .commit_to_main("channels/stable.yaml", &spec, "stable 0.63.1");
    for _ in 0..2 {
        let o = outcomes(&s.reconcile(&[]).ok());
        assert_eq!(action(&o, "staging"), "skipped", "{o:?}");
    }
    assert_eq!(
        s.remote.branch("hydrant/staging").unwrap(),
        human_tip,
        "the human commit stays"
    );
    let staging = s
        .pulls()
        .into_iter()
        .find(|p| p["head"] == "hydrant/staging")
        .unwrap();
    let comments = staging["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 1, "commented once: {comments:?}");
    assert!(
        comments[0]["body"]
            .as_str()
            .unwrap()
            .contains("did not make")
    );
    assert_eq!(staging["state"], "open");
}

#[test]
fn dry_run_pushes_nothing_and_writes_no_state() {
    let s = Setup::new();
    let run = s.reconcile(&["--dry-run"]).ok();
    let o = outcomes(&run);
    assert_eq!(action(&o, "prod"), "opened");
    let prod = o.iter().find(|x| x["env"] == "prod").unwrap();
    assert_eq!(prod["decision"], "open");
    assert!(
        prod["reason"]
            .as_str()
            .unwrap()
            .contains("open a pull request"),
        "{prod}"
    );
    assert_eq!(s.remote.branches(), vec!["main"]);
    assert!(s.pulls().is_empty());
    assert!(!s.state().exists());
}

#[test]
fn the_users_checkout_and_branch_are_untouched() {
    let s = Setup::new();
    // The user's own non-bare clone, on a feature branch with an uncommitted edit.
    let user = s.dirs.path().join("user");
    git(
        s.dirs.path(),
        &["clone", "-q", s.remote.bare().to_str().unwrap(), "user"],
    );
    git(&user, &["checkout", "-q", "-b", "my-feature"]);
    std::fs::write(
        user.join("environments/dev/values.yaml"),
        "# work in progress\n",
    )
    .unwrap();
    let status_before = git(&user, &["status", "--porcelain"]);
    let head_before = git(&user, &["rev-parse", "HEAD"]);
    let run = s
        .reconcile_url(user.to_str().unwrap(), &["--base", "main"])
        .ok();
    let o = outcomes(&run);
    assert_eq!(action(&o, "prod"), "opened", "{o:?}");
    assert_eq!(git(&user, &["status", "--porcelain"]), status_before);
    assert_eq!(git(&user, &["rev-parse", "HEAD"]), head_before);
    assert_eq!(
        git(&user, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "my-feature"
    );
    let branches = git(
        &user,
        &["for-each-ref", "--format=%(refname:short)", "refs/heads/"],
    );
    assert_eq!(
        branches.lines().collect::<Vec<_>>(),
        vec!["hydrant/prod", "hydrant/staging", "main", "my-feature"]
    );
}

#[test]
fn an_environment_that_fails_does_not_stop_the_others() {
    let s = Setup::new();
    s.remote.commit_to_main(
        "environments/dev/values.yaml",
        "global: [unclosed\n",
        "break dev",
    );
    let run = s.reconcile(&[]);
    assert_eq!(run.code, 1);
    let o = outcomes(&run);
    assert_eq!(
        (action(&o, "dev"), action(&o, "staging"), action(&o, "prod")),
        ("failed", "opened", "opened")
    );
    let dev = o.iter().find(|x| x["env"] == "dev").unwrap();
    assert!(
        dev["error"]
            .as_str()
            .unwrap()
            .contains("environments/dev/values.yaml"),
        "{dev}"
    );
    assert!(s.remote.branch("hydrant/dev").is_none());
}

#[test]
fn bad_remotes_and_branches_give_clear_errors() {
    let s = Setup::new();
    let run = s.reconcile(&["--base", "release"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("base branch `release` does not exist") && run.stdout.contains("main"),
        "{}",
        run.stdout
    );
    let run = s.reconcile_url("http://127.0.0.1:9/nothing.git", &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("cannot reach `http://127.0.0.1:9/nothing.git`"),
        "{}{}",
        run.stdout,
        run.stderr
    );
    let run = s.reconcile_url("/nonexistent/repo", &["--output", "text"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("cannot reach `/nonexistent/repo`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_corrupt_work_dir_is_cloned_afresh() {
    let s = Setup::new();
    s.reconcile(&[]).ok();
    let repo = s.work().join("repo.git");
    std::fs::remove_dir_all(repo.join("objects")).unwrap();
    std::fs::write(repo.join("HEAD"), "garbage").unwrap();
    let o = outcomes(&s.reconcile(&[]).ok());
    assert!(o.iter().all(|x| x["action"] == "unchanged"), "{o:?}");
}

#[test]
fn a_second_run_on_the_same_work_dir_waits_then_gives_up_clearly() {
    let s = Setup::new();
    std::fs::create_dir_all(s.work()).unwrap();
    let lock = std::fs::File::create(s.work().join("hydrant.lock")).unwrap();
    lock.lock().unwrap();
    let run = s.reconcile(&["--lock-timeout", "1", "--output", "text"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("another hydrant run holds"),
        "{}",
        run.stderr
    );
    drop(lock);
    s.reconcile(&[]).ok();
}

fn hook(bare: &Path, script: &str) {
    let path = bare.join("hooks/pre-receive");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn over_smart_http_with_a_token_a_lost_push_race_is_retried() {
    let s = Setup::new();
    let token = "s3cr3t-token-abc123";
    let server = HttpGit::start(s.remote.root.path(), token);
    // The first push of hydrant/prod is refused, as if another writer won a race.
    let marker = s.dirs.path().join("refused-once");
    hook(
        &s.remote.bare(),
        &format!(
            "#!/bin/sh\nwhile read old new ref; do\n  if [ \"$ref\" = refs/heads/hydrant/prod ] && [ ! -e {m} ]; then touch {m}; echo 'another writer got here first' >&2; exit 1; fi\ndone\nexit 0\n",
            m = marker.display()
        ),
    );
    let url = server.url("remote.git");
    // Without the token: a clear authentication error, and the token never shows.
    let run = s.reconcile_url(&url, &["--output", "text"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("authentication") || run.stderr.contains("credentials"),
        "{}",
        run.stderr
    );
    let run = common::hydrant()
        .args([
            "reconcile",
            "--once",
            "--repo",
            &url,
            "--work-dir",
            s.work().to_str().unwrap(),
            "--state-dir",
            s.state().to_str().unwrap(),
            "--output",
            "json",
            "--log-level",
            "debug",
        ])
        .env("HYDRANT_GIT_TOKEN", token)
        .current_dir(s.dirs.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(marker.exists(), "the hook refused a push");
    assert!(stderr.contains("push lost a race"), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let o = v["environments"].as_array().unwrap();
    assert_eq!(
        (action(o, "staging"), action(o, "prod")),
        ("opened", "opened")
    );
    assert!(s.remote.branch("hydrant/prod").is_some());
    for text in [
        stdout.to_string(),
        stderr.to_string(),
        std::fs::read_to_string(s.work().join("repo.git/config")).unwrap(),
    ] {
        assert!(!text.contains(token), "the token leaked: {text}");
    }
    for pr in s.pulls() {
        assert!(!pr.to_string().contains(token));
    }
}

#[test]
fn an_unrelated_change_to_the_base_branch_pushes_nothing() {
    let s = Setup::new();
    s.reconcile(&[]).ok();
    let (tips, pulls) = (
        (
            s.remote.branch("hydrant/staging"),
            s.remote.branch("hydrant/prod"),
        ),
        s.pulls(),
    );
    s.remote
        .commit_to_main("README.md", "notes\n", "An unrelated change");
    let o = outcomes(&s.reconcile(&[]).ok());
    assert!(o.iter().all(|x| x["action"] == "unchanged"), "{o:?}");
    assert_eq!(
        tips,
        (
            s.remote.branch("hydrant/staging"),
            s.remote.branch("hydrant/prod")
        )
    );
    assert_eq!(pulls, s.pulls());
}

#[test]
fn status_shows_what_is_available_what_is_rendered_and_the_open_pull_requests() {
    let s = Setup::new();
    let status = |s: &Setup| -> Vec<Value> {
        let (work, state) = (s.work(), s.state());
        let run = run_in(
            s.dirs.path(),
            &[
                "status",
                "--repo",
                &s.remote.url(),
                "--work-dir",
                work.to_str().unwrap(),
                "--state-dir",
                state.to_str().unwrap(),
                "--output",
                "json",
            ],
        )
        .ok();
        outcomes(&run)
    };
    let before = status(&s);
    assert!(
        before.iter().all(|e| e["pull_request"].is_null()),
        "{before:?}"
    );
    s.reconcile(&[]).ok();
    let envs = status(&s);
    let prod = envs.iter().find(|e| e["env"] == "prod").unwrap();
    assert_eq!(prod["channel"], "stable");
    assert_eq!(prod["available"], "0.63.0");
    assert_eq!(prod["rendered"], "0.62.1");
    let pr = &prod["pull_request"];
    let opened = s.pulls();
    let prod_pr = opened.iter().find(|p| p["head"] == "hydrant/prod").unwrap();
    assert_eq!(pr["number"], prod_pr["number"]);
    assert_eq!(pr["waits_for_review"], true);
    assert!(pr["age_secs"].as_u64().is_some_and(|a| a < 600), "{pr}");
    let dev = envs.iter().find(|e| e["env"] == "dev").unwrap();
    assert_eq!(dev["available"], dev["rendered"]);
    assert!(dev["pull_request"].is_null());

    // Once merged, prod is rendered at what is available and has no PR.
    s.remote.land_by_hand("prod");
    s.reconcile(&[]).ok();
    let envs = status(&s);
    let prod = envs.iter().find(|e| e["env"] == "prod").unwrap();
    assert_eq!(prod["rendered"], "0.63.0", "{prod}");
    assert!(prod["pull_request"].is_null(), "{prod}");
}

#[test]
fn status_names_an_environment_whose_own_files_do_not_parse_and_exits_1() {
    let s = Setup::new();
    s.remote.commit_to_main(
        "environments/staging/values.yaml",
        "global:\n  host: [unclosed\n",
        "break staging's values",
    );
    let (work, state) = (s.work(), s.state());
    let run = run_in(
        s.dirs.path(),
        &[
            "status",
            "--repo",
            &s.remote.url(),
            "--work-dir",
            work.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let envs = outcomes(&run);
    let staging = envs.iter().find(|e| e["env"] == "staging").unwrap();
    let error = staging["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("environments/staging/values.yaml"),
        "the error names the file: {staging}"
    );
    for env in envs.iter().filter(|e| e["env"] != "staging") {
        assert!(env["error"].is_null(), "{env}");
    }
}

#[test]
fn an_unchanged_environment_is_not_rendered_again_but_a_hand_edit_of_its_output_is_repaired() {
    let s = Setup::new();
    let first = s.reconcile(&["--log-level", "debug"]).ok();
    // dev's inputs are those its committed render was made from.
    assert_eq!(
        first.stderr.matches("not rendered again").count(),
        1,
        "{}",
        first.stderr
    );
    s.remote.land_by_hand("prod");
    s.remote.land_by_hand("staging");
    let second = s.reconcile(&["--log-level", "debug"]).ok();
    let o = outcomes(&second);
    assert!(o.iter().all(|x| x["action"] != "opened"), "{o:?}");
    assert_eq!(
        second.stderr.matches("not rendered again").count(),
        3,
        "every environment is current: {}",
        second.stderr
    );
    // A person edits a rendered file on main: hydrant renders prod again and
    // opens a pull request that puts it back.
    let path = "rendered/prod/deployment-wandb-app.yaml";
    let edited = s
        .remote
        .read_main(path)
        .replace("replicas: 4", "replicas: 9");
    s.remote.commit_to_main(path, &edited, "Scale prod by hand");
    let third = s.reconcile(&["--log-level", "debug"]).ok();
    let o = outcomes(&third);
    assert_eq!(action(&o, "prod"), "opened", "{o:?}");
    assert_eq!(action(&o, "staging"), "unchanged", "{o:?}");
    assert_eq!(third.stderr.matches("not rendered again").count(), 2);
    let branch_file = git(&s.remote.bare(), &["show", &format!("hydrant/prod:{path}")]);
    assert!(branch_file.contains("replicas: 4"), "{branch_file}");
}

/// `known` and `read` of a run's memo line (`--log-level debug`).
fn memo_counts(run: &Run) -> (usize, usize) {
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("known from the memo"))
        .unwrap_or_else(|| panic!("no memo line: {}", run.stderr));
    let count = |key: &str| -> usize {
        let at = line
            .find(&format!("{key}="))
            .unwrap_or_else(|| panic!("{line}"))
            + key.len()
            + 1;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"))
    };
    (count("known"), count("read"))
}

#[test]
fn a_run_after_a_no_op_knows_every_directory_from_the_memo_and_one_it_cannot_read_is_started_afresh()
 {
    let s = Setup::new();
    let first = s.reconcile(&["--log-level", "debug"]).ok();
    // Each environment's directory and its rendered/ directory, read once.
    assert_eq!(memo_counts(&first), (0, 6), "{}", first.stderr);
    let memo = s.work().join("memo.json");
    assert!(memo.is_file());
    let second = s.reconcile(&["--log-level", "debug"]).ok();
    assert_eq!(memo_counts(&second), (6, 0), "{}", second.stderr);
    assert!(outcomes(&second).iter().all(|x| x["action"] == "unchanged"));

    for broken in ["{ not json", "", "{\"writer\": \"hydrant 0.0.0, memo 1\"}"] {
        std::fs::write(&memo, broken).unwrap();
        let run = s.reconcile(&["--log-level", "debug"]).ok();
        assert_eq!(memo_counts(&run), (0, 6), "{broken:?}: {}", run.stderr);
        let o = outcomes(&run);
        assert!(
            o.iter().all(|x| x["action"] == "unchanged"),
            "{broken:?}: {o:?}"
        );
        let text = std::fs::read_to_string(&memo).unwrap();
        assert!(
            serde_json::from_str::<Value>(&text).is_ok(),
            "written afresh"
        );
    }
}

#[test]
fn memo_class_a_file_reached_through_a_link_is_read_again_when_its_target_changes() {
    // The memo knows an environment's files by its directory's git id; a
    // link's target can change while that id does not.
    let s = Setup::new();
    let w = s.remote.work();
    git(&w, &["checkout", "-q", "main"]);
    std::fs::create_dir_all(w.join("shared")).unwrap();
    std::fs::rename(
        w.join("environments/dev/values.yaml"),
        w.join("shared/dev-values.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../../shared/dev-values.yaml",
        w.join("environments/dev/values.yaml"),
    )
    .unwrap();
    git(&w, &["add", "-A"]);
    git(
        &w,
        &["commit", "-q", "-m", "dev's values from a shared file"],
    );
    git(&w, &["push", "-q", "origin", "main"]);
    let first = s.reconcile(&[]).ok();
    assert_eq!(action(&outcomes(&first), "dev"), "unchanged");

    let values = s.remote.read_main("shared/dev-values.yaml");
    let edited = values.replace("LOGGING_ENABLED: \"true\"", "LOGGING_ENABLED: \"false\"");
    assert_ne!(values, edited);
    s.remote
        .commit_to_main("shared/dev-values.yaml", &edited, "Quieter dev");
    let second = s.reconcile(&[]).ok();
    let o = outcomes(&second);
    assert_eq!(action(&o, "dev"), "opened", "{o:?}");
    let rendered = git(
        &s.remote.bare(),
        &["show", "hydrant/dev:rendered/dev/deployment-wandb-app.yaml"],
    );
    assert!(rendered.contains("false"), "{rendered}");
}
