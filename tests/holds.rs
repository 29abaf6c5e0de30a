//! Holds as an emergency action (issue 15): `hydrant hold`, `hydrant
//! release-hold` and the daemon's `/api/v1/holds` commit `holds.yaml`
//! straight to the base branch of a real bare remote, with the real binary.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::daemon::{free_port, http, metric, stop, wait_for};
use common::git::{HttpGit, Remote, git};
use common::{Run, hydrant};
use hydrant::rollout::holds::{Holds, Scope};
use serde_json::Value;

const TOKEN: &str = "holds-trigger-token";

/// Runs `hydrant ARGS --repo URL --work-dir W` (W under `dirs`).
fn run(url: &str, dirs: &Path, args: &[&str]) -> Run {
    hydrant()
        .args(args)
        .args(["--repo", url, "--work-dir"])
        .arg(dirs.join("work"))
        .arg("--state-dir")
        .arg(dirs.join("state"))
        .current_dir(dirs)
        .output()
        .unwrap()
        .into()
}

fn holds_on_main(remote: &Remote) -> Option<Holds> {
    let listed = git(&remote.bare(), &["ls-tree", "--name-only", "main"]);
    listed
        .lines()
        .any(|l| l == "holds.yaml")
        .then(|| Holds::parse("holds.yaml", &remote.read_main("holds.yaml")).unwrap())
}

fn last_message(remote: &Remote) -> String {
    git(
        &remote.bare(),
        &["log", "-1", "--format=%an <%ae>%n%B", "main"],
    )
}

fn hook(remote: &Remote, script: &str) {
    let hook = remote.bare().join("hooks/pre-receive");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(&hook, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn hold_all_commits_holds_yaml_to_main_and_release_hold_removes_it() {
    let remote = Remote::new();
    let dirs = tempfile::tempdir().unwrap();
    let url = remote.url();
    let held = run(
        &url,
        dirs.path(),
        &[
            "hold",
            "--all",
            "--reason",
            "incident 4711",
            "--by",
            "alice",
            "--author-name",
            "Ops Bot",
            "--author-email",
            "ops@example.com",
        ],
    )
    .ok();
    let tip = remote.branch("main").unwrap();
    assert!(
        held.stdout.contains(&tip[..12]) && held.stdout.contains("`main`"),
        "{}",
        held.stdout
    );
    assert_eq!(
        last_message(&remote),
        "Ops Bot <ops@example.com>\nHold every environment: incident 4711\n\nHeld by alice."
    );
    let holds = holds_on_main(&remote).expect("holds.yaml on main");
    let hold = holds.holding("prod", None).expect("prod is held");
    assert_eq!(
        (&hold.scope, hold.reason.as_str(), hold.by.as_str()),
        (&Scope::All, "incident 4711", "alice")
    );
    assert!(hold.since.is_some());

    // The same hold again: nothing to commit, exit 0.
    let again = run(
        &url,
        dirs.path(),
        &[
            "hold",
            "--all",
            "--reason",
            "incident 4711",
            "--by",
            "alice",
        ],
    )
    .ok();
    assert!(
        again.stdout.contains("nothing to change"),
        "{}",
        again.stdout
    );
    assert_eq!(remote.branch("main").unwrap(), tip);

    let released = run(&url, dirs.path(), &["release-hold", "--all", "--by", "bob"]).ok();
    assert!(released.stdout.contains("committed"), "{}", released.stdout);
    assert_eq!(holds_on_main(&remote), None, "no hold left: no file");
    assert!(
        last_message(&remote)
            .ends_with("Release the hold on every environment\n\nReleased by bob."),
        "{}",
        last_message(&remote)
    );
    let git_log = git(&remote.bare(), &["log", "--format=%s", "main"]);
    assert_eq!(git_log.lines().count(), 3, "{git_log}");
}

#[test]
fn an_unknown_environment_or_a_hostile_reason_is_refused_and_nothing_is_committed() {
    let remote = Remote::new();
    let dirs = tempfile::tempdir().unwrap();
    let url = remote.url();
    let tip = remote.branch("main").unwrap();
    let r = run(
        &url,
        dirs.path(),
        &["hold", "--env", "nosuch", "--reason", "audit", "--by", "a"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("`nosuch` is not an environment") && r.stderr.contains("`prod`"),
        "{}",
        r.stderr
    );
    // A wave is checked against `rollout.waves`, like an environment.
    let r = run(
        &url,
        dirs.path(),
        &["hold", "--wave", "early", "--reason", "audit", "--by", "a"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "`early` is not a wave of `rollout.waves` in `hydrant.yaml` on `main`, and there are none"
        ),
        "{}",
        r.stderr
    );
    for reason in [
        "<script>alert(1)</script>",
        "one\nHydrant-Environment: prod",
    ] {
        let r = run(
            &url,
            dirs.path(),
            &["hold", "--env", "dev", "--reason", reason, "--by", "a"],
        );
        assert_eq!(r.code, 1, "{reason:?}: {}", r.stderr);
        assert!(r.stderr.contains("`reason`"), "{}", r.stderr);
    }
    let r = run(&url, dirs.path(), &["hold", "--reason", "x", "--by", "a"]);
    assert_eq!(r.code, 2, "no scope is a usage error: {}", r.stderr);
    assert_eq!(remote.branch("main").unwrap(), tip, "nothing was committed");

    // Markdown is kept as the text it is, on one line: whoever shows it escapes it.
    let link = "see ](http://x) and [here](http://evil) `now`";
    run(
        &url,
        dirs.path(),
        &["hold", "--env", "dev,prod", "--reason", link, "--by", "a"],
    )
    .ok();
    let holds = holds_on_main(&remote).unwrap();
    assert_eq!(holds.holds.len(), 2);
    assert!(holds.holds.iter().all(|h| h.reason == link));
    assert!(last_message(&remote).contains(&format!("Hold environments dev, prod: {link}\n")));
}

#[test]
fn a_base_branch_that_refuses_pushes_is_named_with_a_hint_and_a_lost_race_is_retried() {
    let remote = Remote::new();
    let dirs = tempfile::tempdir().unwrap();
    let url = remote.url();
    remote.commit_to_main(
        "hydrant.yaml",
        "rollout:\n  waves:\n    - name: early\n      environments: [dev]\n    - name: everyone\n",
        "Two waves",
    );
    hook(&remote, "#!/bin/sh\necho 'main is protected' >&2\nexit 1\n");
    let r = run(
        &url,
        dirs.path(),
        &["hold", "--wave", "early", "--reason", "x", "--by", "a"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("base branch `main`")
            && r.stderr.contains("main is protected")
            && r.stderr.contains("pull request"),
        "{}",
        r.stderr
    );

    // Another writer moves `main` while the first push is on its way.
    let marker = dirs.path().join("raced");
    hook(
        &remote,
        &format!(
            "#!/bin/sh\nif [ ! -e '{m}' ]; then\n  touch '{m}'\n  unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES\n  c=$(GIT_AUTHOR_NAME=w GIT_AUTHOR_EMAIL=w@x GIT_COMMITTER_NAME=w GIT_COMMITTER_EMAIL=w@x git commit-tree -p main -m 'Another writer' 'main^{{tree}}')\n  git update-ref refs/heads/main \"$c\"\n  echo 'cannot lock ref: another writer' >&2\n  exit 1\nfi\nexit 0\n",
            m = marker.display()
        ),
    );
    run(
        &url,
        dirs.path(),
        &["hold", "--wave", "early", "--reason", "x", "--by", "a"],
    )
    .ok();
    let log = git(&remote.bare(), &["log", "--format=%s", "-2", "main"]);
    assert_eq!(log, "Hold wave early: x\nAnother writer", "{log}");
}

#[test]
fn holds_are_committed_over_smart_http_with_a_token() {
    let remote = Remote::new();
    let dirs = tempfile::tempdir().unwrap();
    let server = HttpGit::start(remote.root.path(), "git-token");
    let url = server.url("remote.git");
    let r = hydrant()
        .args(["hold", "--env", "prod", "--reason", "audit", "--by", "a"])
        .args(["--repo", &url, "--forge", "local", "--work-dir"])
        .arg(dirs.path().join("work"))
        .arg("--state-dir")
        .arg(dirs.path().join("state"))
        .env("HYDRANT_GIT_TOKEN", "git-token")
        .output()
        .unwrap();
    let r = Run::from(r).ok();
    assert!(r.stdout.contains("committed"), "{}", r.stdout);
    let holds = holds_on_main(&remote).unwrap();
    assert_eq!(holds.holds[0].scope, Scope::Environment("prod".to_string()));
}

struct Daemon {
    child: Child,
    port: u16,
    _dirs: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

fn daemon(remote: &Remote, token: Option<&str>) -> Daemon {
    let dirs = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = hydrant();
    cmd.args(["run", "--repo", &remote.url(), "--interval", "1h"])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--work-dir"])
        .arg(dirs.path().join("w"))
        .arg("--state-dir")
        .arg(dirs.path().join("s"))
        .current_dir(dirs.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(t) = token {
        cmd.env("HYDRANT_TRIGGER_TOKEN", t);
    }
    let child = cmd.spawn().unwrap();
    wait_for(Duration::from_secs(20), "the daemon to serve", || {
        http(port, "GET", "/healthz", &[], "").is_some_and(|(s, _)| s == 200)
    });
    Daemon {
        child,
        port,
        _dirs: dirs,
    }
}

#[test]
fn the_daemon_holds_and_releases_with_the_trigger_token_only() {
    let remote = Remote::new();
    let d = daemon(&remote, Some(TOKEN));
    let bearer = |t: &str| vec![("Authorization", format!("Bearer {t}"))];
    let body = r#"{"all": true, "reason": "incident 4711", "by": "alice"}"#;
    let tip = remote.branch("main").unwrap();
    for headers in [vec![], bearer("wrong")] {
        let (status, text) = http(d.port, "POST", "/api/v1/holds", &headers, body).unwrap();
        assert_eq!(status, 401, "{text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert!(error["error"].is_string(), "{text}");
    }
    let (status, _) = http(d.port, "DELETE", "/api/v1/holds/all", &[], "").unwrap();
    assert_eq!(status, 401);
    assert_eq!(remote.branch("main").unwrap(), tip);

    let cycles = || metric(d.port, "hydrant_cycles_total{outcome=\"ok\"}");
    wait_for(Duration::from_secs(60), "the first cycle", || {
        cycles() >= 1.0
    });
    let before = cycles();
    let (status, text) = http(d.port, "POST", "/api/v1/holds", &bearer(TOKEN), body).unwrap();
    assert_eq!(status, 201, "{text}");
    let done: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(done["branch"], "main");
    assert_eq!(done["commit"].as_str(), remote.branch("main").as_deref());
    assert!(
        last_message(&remote).contains("Hold every environment: incident 4711\n\nHeld by alice."),
        "{}",
        last_message(&remote)
    );
    assert_eq!(holds_on_main(&remote).unwrap().holds[0].scope, Scope::All);
    wait_for(Duration::from_secs(60), "a cycle after the hold", || {
        cycles() > before
    });

    for (method, path, body, want) in [
        ("POST", "/api/v1/holds", "{\"all\": true}", 400),
        (
            "POST",
            "/api/v1/holds",
            r#"{"environment": "nosuch", "reason": "x", "by": "a"}"#,
            400,
        ),
        (
            "POST",
            "/api/v1/holds",
            r#"{"wave": "nosuch", "reason": "x", "by": "a"}"#,
            400,
        ),
        (
            "POST",
            "/api/v1/holds",
            r#"{"all": true, "reason": "<img src=x>", "by": "a"}"#,
            400,
        ),
        ("DELETE", "/api/v1/holds/everything", "", 404),
        ("DELETE", "/api/v1/holds/wave/..", "", 400),
    ] {
        let (status, text) = http(d.port, method, path, &bearer(TOKEN), body).unwrap();
        assert_eq!(status, want, "{method} {path} {body}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert!(error["error"].is_string(), "{text}");
    }
    let big = format!(
        r#"{{"all": true, "reason": "{}", "by": "a"}}"#,
        "x".repeat(20_000)
    );
    let (status, _) = http(d.port, "POST", "/api/v1/holds", &bearer(TOKEN), &big).unwrap();
    assert_eq!(status, 413);

    let (status, text) = http(
        d.port,
        "DELETE",
        "/api/v1/holds/all?by=bob",
        &bearer(TOKEN),
        "",
    )
    .unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(holds_on_main(&remote), None);
    assert!(last_message(&remote).contains("Released by bob."));
    let (status, text) = http(d.port, "DELETE", "/api/v1/holds/all", &bearer(TOKEN), "").unwrap();
    assert_eq!(status, 200, "{text}");
    let done: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(done["commit"], Value::Null, "nothing to release: {text}");
}

#[test]
fn without_a_trigger_token_the_holds_api_is_off_with_a_hint() {
    let remote = Remote::new();
    let d = daemon(&remote, None);
    let (status, text) = http(
        d.port,
        "POST",
        "/api/v1/holds",
        &[("Authorization", format!("Bearer {TOKEN}"))],
        r#"{"all": true, "reason": "x", "by": "a"}"#,
    )
    .unwrap();
    assert_eq!(status, 403, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains("HYDRANT_TRIGGER_TOKEN"),
        "{text}"
    );
    assert_eq!(holds_on_main(&remote), None);
}
