//! Read-only commands (`render`, `validate`, `explain`, `diff`, `channel
//! show`) given a git URL as `--repo` read its base branch through the same
//! workspace reconcile uses, and `--ref` picks another branch (issue 14).

mod common;

use std::path::Path;

use common::Run;
use common::git::{Remote, git};

/// Runs hydrant in `cwd` with a cache of its own (the work directory of a
/// URL lives under it).
fn run(cwd: &Path, cache: &Path, args: &[&str]) -> Run {
    common::hydrant()
        .args(args)
        .current_dir(cwd)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .unwrap()
        .into()
}

struct Setup {
    remote: Remote,
    dirs: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dirs = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dirs.path().join("elsewhere")).unwrap();
        Setup {
            remote: Remote::new(),
            dirs,
        }
    }

    /// Runs hydrant outside any config repository.
    fn run(&self, args: &[&str]) -> Run {
        run(
            &self.dirs.path().join("elsewhere"),
            &self.dirs.path().join("cache"),
            args,
        )
    }

    /// Pushes a branch `name` whose dev `values.yaml` differs from main's.
    fn push_branch(&self, name: &str) {
        let w = self.remote.work();
        git(&w, &["checkout", "-q", "-b", name, "main"]);
        let values = w.join("environments/dev/values.yaml");
        let text = std::fs::read_to_string(&values).unwrap();
        assert!(text.contains("database: wandb_dev"));
        std::fs::write(
            &values,
            text.replace("database: wandb_dev", "database: from_next"),
        )
        .unwrap();
        git(&w, &["commit", "-q", "-am", "Change dev on a branch"]);
        git(&w, &["push", "-q", "origin", name]);
        git(&w, &["checkout", "-q", "main"]);
    }
}

#[test]
fn render_over_a_git_url_prints_what_the_working_tree_renders() {
    let s = Setup::new();
    let work = s.remote.work();
    let local = s.run(&["render", "--env", "dev", "--repo", work.to_str().unwrap()]);
    let local = local.ok();
    let remote = s
        .run(&["render", "--env", "dev", "--repo", &s.remote.url()])
        .ok();
    assert!(!local.stdout.is_empty());
    assert_eq!(remote.stdout, local.stdout);
}

#[test]
fn every_read_only_command_reads_a_git_url() {
    let s = Setup::new();
    let url = s.remote.url();
    for args in [
        vec!["validate", "--all", "--repo", &url],
        vec!["explain", "--env", "dev", "--repo", &url, "global.host"],
        vec!["diff", "--env", "dev", "--repo", &url],
        vec!["channel", "show", "--env", "dev", "--repo", &url],
    ] {
        let out = s.run(&args);
        assert_eq!(out.code, 0, "{args:?}:\n{}\n{}", out.stdout, out.stderr);
        assert!(
            !out.stderr.contains("environments/"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // `diff` compares with `rendered/dev/` on the remote's main, not with a
    // working tree: dev is up to date there.
    let diff = s.run(&["diff", "--env", "dev", "--repo", &url, "--exit-code"]);
    assert_eq!(diff.code, 0, "{}\n{}", diff.stdout, diff.stderr);
    assert!(
        diff.stderr.contains("rendered/dev/ is up to date"),
        "{}",
        diff.stderr
    );
}

#[test]
fn ref_picks_the_branch_a_read_only_command_reads() {
    let s = Setup::new();
    s.push_branch("next");
    let url = s.remote.url();
    let main = s.run(&["render", "--env", "dev", "--repo", &url]).ok();
    let next = s
        .run(&["render", "--env", "dev", "--repo", &url, "--ref", "next"])
        .ok();
    assert!(!main.stdout.contains("from_next"), "{}", main.stdout);
    assert!(next.stdout.contains("from_next"), "{}", next.stdout);
    let explain = s
        .run(&[
            "explain",
            "--env",
            "dev",
            "--repo",
            &url,
            "--ref",
            "next",
            "global.mysql.database",
        ])
        .ok();
    assert!(explain.stdout.contains("from_next"), "{}", explain.stdout);
}

#[test]
fn ref_on_a_local_repository_reads_that_branch_not_the_working_tree() {
    let s = Setup::new();
    s.push_branch("next");
    let work = s.remote.work();
    let out = s
        .run(&[
            "render",
            "--env",
            "dev",
            "--repo",
            work.to_str().unwrap(),
            "--ref",
            "next",
        ])
        .ok();
    assert!(out.stdout.contains("from_next"), "{}", out.stdout);
}

/// A branch that does not exist is an error in the input, like an unknown
/// environment: exit 1 (2 is for usage errors, and the command line is
/// well formed), naming the branch, the URL and the branches there are.
#[test]
fn a_missing_ref_is_a_clear_error_with_exit_code_1() {
    let s = Setup::new();
    let url = s.remote.url();
    let out = s.run(&["render", "--env", "dev", "--repo", &url, "--ref", "nope"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("`nope`"), "{}", out.stderr);
    assert!(out.stderr.contains(&url), "{}", out.stderr);
    assert!(out.stderr.contains("main"), "{}", out.stderr);
    assert!(!out.stderr.contains("environments/"), "{}", out.stderr);
}
