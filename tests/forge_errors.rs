//! Issue 14: what a forge answers decides how a failed environment is
//! classified. The real binary, a real git repository, and a stateful fake of
//! GitHub on 127.0.0.1: a refused token is a permanent failure of each
//! environment, a server error that outlasts the retries a transient one, an
//! answer that lacks a field or holds another type there a permanent one that
//! names the field.

mod common;

use common::Run;
use common::fake_github::{FakeGitHub, GhFault};
use common::git::Remote;
use serde_json::Value;

const TOKEN: &str = "ghp_forgeerrors0123456789abcdef";

/// `reconcile --once --output json` against the fake, with `token` for GitHub;
/// the git remote is a `file://` repository that needs none.
fn reconcile(remote: &Remote, gh: &FakeGitHub, token: &str) -> (Run, Vec<Value>) {
    let dirs = tempfile::tempdir().unwrap();
    let work = dirs.path().join("work");
    let out = common::hydrant()
        .args([
            "reconcile",
            "--once",
            "--repo",
            &remote.url(),
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
        .env("HYDRANT_GITHUB_TOKEN", token)
        .env("HYDRANT_FORGE_BACKOFF_MS", "1")
        .current_dir(dirs.path())
        .output()
        .unwrap();
    let run = Run::from(out);
    assert!(!run.stdout.contains(token) && !run.stderr.contains(token));
    let summary: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", run.stdout, run.stderr));
    let envs = summary["environments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    (run, envs)
}

/// The environments that failed: every one with something to deliver (an
/// unchanged one needs no forge call); there is at least one.
fn failures(envs: &[Value]) -> Vec<&Value> {
    let changed: Vec<&Value> = envs.iter().filter(|e| e["action"] != "unchanged").collect();
    assert!(!changed.is_empty(), "{envs:?}");
    for env in &changed {
        assert_eq!(env["action"], "failed", "{env}");
    }
    changed
}

#[test]
fn a_refused_forge_token_fails_each_environment_permanently_naming_it() {
    let remote = Remote::new();
    let gh = FakeGitHub::start(TOKEN, "acme/wandb-config", 0);
    let (run, envs) = reconcile(&remote, &gh, "ghp_wrongtoken0123456789abcdef");
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let failed = failures(&envs);
    for env in failed {
        let name = env["env"].as_str().unwrap_or_default();
        assert!(!name.is_empty(), "{env}");
        assert_eq!(env["class"], "permanent", "{env}");
        let error = env["error"].as_str().unwrap_or_default();
        assert!(error.contains("401"), "{error}");
        assert!(error.contains("hint: the token was rejected"), "{error}");
    }
    assert_eq!(gh.writes(), 0);
}

#[test]
fn a_forge_server_error_that_outlasts_the_retries_is_transient() {
    let remote = Remote::new();
    let gh = FakeGitHub::start(TOKEN, "acme/wandb-config", 0);
    gh.fail(&[GhFault::ServerError; 60]);
    let (run, envs) = reconcile(&remote, &gh, TOKEN);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    for env in failures(&envs) {
        assert_eq!(env["class"], "transient", "{env}");
        let error = env["error"].as_str().unwrap_or_default();
        assert!(error.contains("the server answered 502"), "{error}");
    }
}

/// The error of each environment with something to deliver: permanent, and naming `field`.
fn assert_each_fails_naming(envs: &[Value], field: &str) {
    for env in failures(envs) {
        assert_eq!(env["class"], "permanent", "{env}");
        let error = env["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("the answer's `{field}`")),
            "{error}"
        );
    }
}

#[test]
fn a_pull_request_answer_without_its_number_fails_each_environment_naming_the_field() {
    let remote = Remote::new();
    let gh = FakeGitHub::start(TOKEN, "acme/wandb-config", 0);
    gh.change_field("number", None);
    let (run, envs) = reconcile(&remote, &gh, TOKEN);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_each_fails_naming(&envs, "number");
    // The first environment's opening call is answered so; later ones find
    // that pull request in the list, answered so too.
    let errors: Vec<&str> = failures(&envs)
        .iter()
        .filter_map(|env| env["error"].as_str())
        .collect();
    let opening = "POST /repos/acme/wandb-config/pulls: the answer's `number` is missing";
    assert!(errors.iter().any(|e| e.contains(opening)), "{errors:?}");
}

#[test]
fn a_listed_pull_request_whose_number_is_no_number_fails_each_environment_naming_the_field() {
    let remote = Remote::new();
    let gh = FakeGitHub::start(TOKEN, "acme/wandb-config", 3);
    gh.change_field("number", Some(Value::from("x")));
    let (run, envs) = reconcile(&remote, &gh, TOKEN);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_each_fails_naming(&envs, "number");
    for env in failures(&envs) {
        let error = env["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("GET /repos/acme/wandb-config/pulls"),
            "{error}"
        );
        assert!(
            error.contains("invalid type: string \"x\", expected u64"),
            "{error}"
        );
    }
    assert_eq!(gh.writes(), 0, "nothing was opened on a misread list");
}
