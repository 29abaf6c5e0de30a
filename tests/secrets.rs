//! No secret in anything hydrant emits: every kind of credential in play (a
//! channel license, a GitHub App key and the installation tokens it buys, the
//! git push over HTTPS with those tokens, and for the daemon the webhook
//! secrets and the trigger token), logs at trace level in JSON, and then a scan
//! of stdout, stderr, the pull requests, every commit and ref on the remote,
//! the work directory, the channel cache and `hydrant.metadata`; for the
//! daemon also its `/metrics`, `/readyz` and `/healthz` and its answers to
//! webhooks and triggers, signed and unsigned.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::channel_server::{ChannelServer, bundled_spec};
use common::daemon::{cycles, free_port, http, stop, wait_for};
use common::fake_github::FakeGitHub;
use common::git::{HttpGit, Remote, git};
use hmac::{Hmac, Mac};

const LICENSE: &str = "lic-7f3a9c1e-secret-license-value";
const TOKEN: &str = "ghp_fixedtoken_never_used_here_0000";
const WEBHOOK_SECRET: &str = "whsec-5d1c8e0b-github-webhook-secret";
const GITLAB_TOKEN: &str = "glwh-93be7a41-gitlab-webhook-token";
const TRIGGER_TOKEN: &str = "trig-0c4f2d9a-trigger-bearer-token";

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

/// A remote over smart HTTP that takes the App's installation tokens, a
/// GitHub with the App, a channel server that wants the license, and the
/// App's key.
struct Setup {
    remote: Remote,
    gh: FakeGitHub,
    channel: ChannelServer,
    http: HttpGit,
    dirs: tempfile::TempDir,
    key: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let remote = Remote::new();
        let gh = FakeGitHub::start(TOKEN, "acme/wandb-config", 5);
        let channel = ChannelServer::start(LICENSE);
        channel.set_latest("stable", &bundled_spec("channels/stable.yaml", None));
        channel.set_latest("canary", &bundled_spec("channels/canary.yaml", None));
        let dirs = tempfile::tempdir().unwrap();
        let key = gh.enable_app_with_new_key("123", dirs.path(), 100);
        let http = gh.git_server(remote.root.path());
        Setup {
            remote,
            gh,
            channel,
            http,
            dirs,
            key,
        }
    }

    fn work(&self) -> PathBuf {
        self.dirs.path().join("work")
    }

    fn cache(&self) -> PathBuf {
        self.dirs.path().join("cache")
    }

    /// A hydrant command (`reconcile --once`, `run`) with every credential
    /// in play, logging at trace level in JSON.
    fn hydrant(&self, command: &[&str]) -> std::process::Command {
        let mut cmd = common::hydrant();
        cmd.args(command)
            .args([
                "--repo",
                &self.http.url("remote.git"),
                "--work-dir",
                self.work().to_str().unwrap(),
                "--forge",
                "github",
                "--github-api-url",
                &self.gh.url(),
                "--forge-repository",
                "acme/wandb-config",
                "--github-app-id",
                "123",
                "--github-app-key-file",
                self.key.to_str().unwrap(),
                "--channel",
                &self.channel.channel_url(),
                "--channel-cache-dir",
                self.cache().to_str().unwrap(),
                "--log-level",
                "trace",
                "--log-format",
                "json",
            ])
            .current_dir(self.dirs.path());
        cmd
    }

    /// What must never appear: the license, the App key (every line of its
    /// body), the installation tokens it bought, and `extra`.
    fn secrets(&self, extra: &[&str]) -> Vec<String> {
        let pem = std::fs::read_to_string(&self.key).unwrap();
        let mut secrets: Vec<String> = vec![LICENSE.to_string()];
        secrets.extend(
            pem.lines()
                .filter(|l| !l.starts_with("-----") && l.len() >= 32)
                .map(String::from),
        );
        secrets.extend(self.gh.issued_tokens());
        secrets.extend(extra.iter().map(|s| s.to_string()));
        secrets
    }

    /// What hydrant left: the pull requests, every commit on the remote and
    /// in the work directory, and every file of the work directory, the
    /// channel cache and the remote.
    fn places(&self) -> Vec<(String, String)> {
        let mut places = Vec::new();
        for pr in self.gh.hydrant_pulls() {
            places.push((format!("PR #{} title", pr.number), pr.title.clone()));
            places.push((format!("PR #{} body", pr.number), pr.body.clone()));
            places.push((
                format!("PR #{} comments", pr.number),
                pr.comments.join("\n"),
            ));
        }
        let log = ["log", "--all", "-p", "--format=%H %an %ae%n%B"];
        places.push((
            "every commit on the remote".into(),
            git(&self.remote.bare(), &log),
        ));
        places.push((
            "every commit in the work directory".into(),
            git(&self.work().join("repo.git"), &log),
        ));
        all_files(&self.work(), &mut places);
        all_files(&self.cache(), &mut places);
        all_files(&self.remote.bare(), &mut places);
        places
    }
}

/// JWTs (of the App) start with one of these.
const JWTS: [&str; 3] = [
    "eyJhbGciOiJSUzI1NiJ9",
    "eyJ0eXAiOiJKV1Qi",
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9",
];

/// No secret and no JWT in any place; returns how many strings were looked for.
fn assert_no_secret(places: &[(String, String)], secrets: &[String]) -> usize {
    for (place, text) in places {
        for secret in secrets {
            assert!(!text.contains(secret.as_str()), "a secret is in {place}");
        }
        for jwt in JWTS {
            assert!(!text.contains(jwt), "a JWT is in {place}");
        }
    }
    secrets.len() + JWTS.len()
}

#[test]
fn nothing_hydrant_emits_or_keeps_holds_a_secret() {
    let setup = Setup::new();
    let out = setup
        .hydrant(&["reconcile", "--once", "--output", "json"])
        .env("HYDRANT_LICENSE", LICENSE)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(setup.gh.hydrant_pulls().len(), 2, "the run did its work");
    assert!(stderr.lines().count() > 20, "debug logs were written");

    let mut places: Vec<(String, String)> = vec![
        ("stdout".into(), stdout),
        ("stderr (trace logs)".into(), stderr),
    ];
    places.extend(setup.places());
    assert!(places.len() > 20, "{} places scanned", places.len());
    let looked_for = assert_no_secret(&places, &setup.secrets(&[]));
    eprintln!(
        "secret scan (reconcile): {} places, {looked_for} secrets, 0 found",
        places.len()
    );
}

#[test]
fn nothing_the_daemon_emits_or_keeps_holds_a_secret_with_webhooks_and_triggers() {
    let setup = Setup::new();
    // The license and webhook secrets as files, the trigger token in the
    // environment: as a Deployment mounts and sets them.
    let file = |name: &str, text: &str| {
        let path = setup.dirs.path().join(name);
        std::fs::write(&path, format!("{text}\n")).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (license, github, gitlab) = (
        file("license", LICENSE),
        file("github-webhook-secret", WEBHOOK_SECRET),
        file("gitlab-webhook-token", GITLAB_TOKEN),
    );
    let port = free_port();
    let (stdout, stderr) = (
        setup.dirs.path().join("stdout.log"),
        setup.dirs.path().join("stderr.log"),
    );
    let mut daemon = setup
        .hydrant(&["run", "--interval", "1h"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--license-file", &license])
        .args(["--github-webhook-secret-file", &github])
        .args(["--gitlab-webhook-token-file", &gitlab])
        .env("HYDRANT_TRIGGER_TOKEN", TRIGGER_TOKEN)
        .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
        .spawn()
        .unwrap();
    let ok = |n: f64| {
        move || {
            let (ok, failed) = cycles(port);
            assert_eq!(failed, 0.0, "a cycle failed");
            ok >= n
        }
    };
    wait_for(Duration::from_secs(60), "the first cycle", ok(1.0));
    assert_eq!(
        setup.gh.hydrant_pulls().len(),
        2,
        "the first cycle did its work"
    );

    // A new release, so that the cycles the webhooks ask for update both
    // pull requests and push again.
    setup.channel.set_latest(
        "stable",
        &bundled_spec("channels/stable.yaml", Some("0.63.9")),
    );
    let push = r#"{"ref": "refs/heads/main"}"#;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(push.as_bytes());
    let signed = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let event = ("X-GitHub-Event", "push".to_string());
    let requests = [
        ("/hooks/github", vec![event.clone()], 401),
        (
            "/hooks/github",
            vec![event.clone(), ("X-Hub-Signature-256", "sha256=00".into())],
            401,
        ),
        (
            "/hooks/github",
            vec![event.clone(), ("X-Hub-Signature-256", signed)],
            202,
        ),
        ("/hooks/gitlab", vec![], 401),
        (
            "/hooks/gitlab",
            vec![("X-Gitlab-Token", "wrong".into())],
            401,
        ),
        (
            "/hooks/gitlab",
            vec![("X-Gitlab-Token", GITLAB_TOKEN.into())],
            202,
        ),
        (
            "/trigger",
            vec![("Authorization", "Bearer wrong".into())],
            401,
        ),
        (
            "/trigger",
            vec![("Authorization", format!("Bearer {TRIGGER_TOKEN}"))],
            202,
        ),
    ];
    let mut places: Vec<(String, String)> = Vec::new();
    for (path, headers, want) in &requests {
        let (status, body) = http(port, "POST", path, headers, push).unwrap();
        let names: Vec<&str> = headers.iter().map(|(name, _)| *name).collect();
        assert_eq!(status, *want, "POST {path} with {names:?}: {body}");
        places.push((format!("the answer {status} to POST {path}"), body));
    }
    wait_for(Duration::from_secs(60), "the requested cycles", ok(3.0));
    assert!(
        setup
            .gh
            .hydrant_pulls()
            .iter()
            .all(|pr| pr.title.ends_with("0.63.9")),
        "the requested cycles updated the pull requests"
    );
    for path in ["/metrics", "/readyz", "/healthz"] {
        let (status, body) = http(port, "GET", path, &[], "").unwrap();
        assert_eq!(status, 200, "GET {path}: {body}");
        places.push((format!("GET {path}"), body));
    }
    assert_eq!(stop(&mut daemon), 0);
    let stderr = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        stderr.lines().filter(|l| l.contains("\"TRACE\"")).count() > 20,
        "trace logs were written"
    );
    places.push(("stdout".into(), std::fs::read_to_string(&stdout).unwrap()));
    places.push(("stderr (trace logs)".into(), stderr));
    places.extend(setup.places());
    let secrets = setup.secrets(&[WEBHOOK_SECRET, GITLAB_TOKEN, TRIGGER_TOKEN]);
    let looked_for = assert_no_secret(&places, &secrets);
    eprintln!(
        "secret scan (run): {} places, {looked_for} secrets, 0 found",
        places.len()
    );
}
