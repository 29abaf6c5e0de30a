//! No secret in anything hydrant emits: a whole reconcile with every kind of
//! credential in play (a channel license, a GitHub App key and the
//! installation tokens it buys, the git push over HTTPS with those tokens), at
//! debug log level in JSON, and then a scan of stdout, stderr, the pull
//! requests, every commit and ref on the remote, the work directory, the
//! channel cache and `hydrant.metadata`.

mod common;

use std::path::Path;

use common::channel_server::{ChannelServer, bundled_spec};
use common::fake_github::FakeGitHub;
use common::git::{HttpGit, Remote, git};

const LICENSE: &str = "lic-7f3a9c1e-secret-license-value";
const TOKEN: &str = "ghp_fixedtoken_never_used_here_0000";

fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file under `dir`, as text (binary files lossily).
fn all_files(dir: &Path, into: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all_files(&path, into);
        } else if let Ok(bytes) = std::fs::read(&path) {
            into.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
}

#[test]
fn nothing_hydrant_emits_or_keeps_holds_a_secret() {
    let remote = Remote::new();
    let gh = FakeGitHub::start(TOKEN, "acme/wandb-config", 5);
    let channel = ChannelServer::start(LICENSE);
    channel.set_latest("stable", &bundled_spec("channels/stable.yaml", None));
    channel.set_latest("canary", &bundled_spec("channels/canary.yaml", None));
    let dirs = tempfile::tempdir().unwrap();
    let (key, public) = (dirs.path().join("app.pem"), dirs.path().join("app.pub"));
    openssl(&["genrsa", "-out", key.to_str().unwrap(), "2048"]);
    openssl(&[
        "rsa",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    gh.enable_app("123", &std::fs::read_to_string(&public).unwrap(), 100);
    let checker = gh.clone();
    let http = HttpGit::start_with(
        remote.root.path(),
        std::sync::Arc::new(move |t: &str| checker.accepts(t)),
    );
    let work = dirs.path().join("work");
    let cache = dirs.path().join("cache");
    let out = common::hydrant()
        .args([
            "reconcile",
            "--once",
            "--repo",
            &http.url("remote.git"),
            "--work-dir",
            work.to_str().unwrap(),
            "--forge",
            "github",
            "--github-api-url",
            &gh.url(),
            "--forge-repository",
            "acme/wandb-config",
            "--github-app-id",
            "123",
            "--github-app-key-file",
            key.to_str().unwrap(),
            "--channel",
            &channel.url(),
            "--channel-cache-dir",
            cache.to_str().unwrap(),
            "--output",
            "json",
            "--log-level",
            "trace",
            "--log-format",
            "json",
        ])
        .env("HYDRANT_LICENSE", LICENSE)
        .current_dir(dirs.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(gh.hydrant_pulls().len(), 2, "the run did its work");
    assert!(stderr.lines().count() > 20, "debug logs were written");

    // What must never appear: the license, the App key (every line of its
    // body), the installation tokens and the JWTs that bought them.
    let pem = std::fs::read_to_string(&key).unwrap();
    let mut secrets: Vec<String> = vec![LICENSE.to_string()];
    secrets.extend(
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 32)
            .map(String::from),
    );
    secrets.extend(gh.issued_tokens());
    let never = [
        "eyJhbGciOiJSUzI1NiJ9",
        "eyJ0eXAiOiJKV1Qi",
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9",
    ];

    let mut places: Vec<(String, String)> = vec![
        ("stdout".into(), stdout),
        ("stderr (trace logs)".into(), stderr),
    ];
    for pr in gh.hydrant_pulls() {
        places.push((format!("PR #{} title", pr.number), pr.title.clone()));
        places.push((format!("PR #{} body", pr.number), pr.body.clone()));
        places.push((
            format!("PR #{} comments", pr.number),
            pr.comments.join("\n"),
        ));
    }
    places.push((
        "every commit on the remote".into(),
        git(
            &remote.bare(),
            &["log", "--all", "-p", "--format=%H %an %ae%n%B"],
        ),
    ));
    places.push((
        "every commit in the work directory".into(),
        git(
            &work.join("repo.git"),
            &["log", "--all", "-p", "--format=%H %an %ae%n%B"],
        ),
    ));
    all_files(&work, &mut places);
    all_files(&cache, &mut places);
    all_files(&remote.bare(), &mut places);
    assert!(places.len() > 20, "{} places scanned", places.len());
    for (place, text) in &places {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a secret is in {place}");
        }
        for jwt in never {
            assert!(!text.contains(jwt), "a JWT is in {place}");
        }
    }
    eprintln!(
        "secret scan: {} places, {} secrets, 0 found",
        places.len(),
        secrets.len() + never.len()
    );
}
