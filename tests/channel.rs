//! Release channels over HTTP against a real deploy server on 127.0.0.1 that
//! checks the license and serves ETags, and fails on demand.

mod common;

use std::time::{Duration, Instant};

use common::channel_server::{ChannelServer, Fault};
use common::git::Remote;
use common::{Example, Run, tree};
use serde_json::Value;

const LICENSE: &str = "eyJsaWNlbnNlIjoidGVzdCJ9.c2lnbmF0dXJlLXRlc3Q";

/// A channel file of the bundled example, as the JSON a deploy server sends.
fn spec_json(rel: &str) -> String {
    let text = std::fs::read_to_string(common::project_root().join(rel)).unwrap();
    let node = hydrant::yaml::parse_single(&text).unwrap().unwrap();
    serde_json::to_string(&hydrant::yaml::to_value(&node, &mut |_, _| {}).unwrap()).unwrap()
}

fn with_version(spec: &str, version: &str) -> String {
    let mut v: Value = serde_json::from_str(spec).unwrap();
    v["metadata"]["version"] = Value::String(version.to_string());
    v.to_string()
}

struct Env {
    example: Example,
    server: ChannelServer,
    cache: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let server = ChannelServer::start(LICENSE);
        server.set_latest("stable", &spec_json("channels/stable.yaml"));
        server.set_latest("canary", &spec_json("channels/canary.yaml"));
        server.set_release("0.62.1", &spec_json("channels/stable/releases/0.62.1.yaml"));
        Env {
            example: Example::new(),
            server,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs hydrant with the license in the environment and fast retries.
    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    fn run_with(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        // The example's environments follow two channels: ask for each by name.
        let url = self.server.channel_url();
        let mut full: Vec<&str> = args.to_vec();
        full.extend([
            "--channel",
            &url,
            "--channel-cache-dir",
            self.cache.path().to_str().unwrap(),
        ]);
        let mut cmd = common::hydrant();
        cmd.args(&full)
            .current_dir(self.example.path())
            .env("HYDRANT_LICENSE", LICENSE)
            .env("HYDRANT_CHANNEL_BACKOFF_MS", "20");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let run = Run::from(out);
        assert!(
            !run.stdout.contains(LICENSE) && !run.stderr.contains(LICENSE),
            "the license leaked:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        run
    }

    fn cache_text(&self) -> String {
        tree(self.cache.path())
            .into_iter()
            .map(|(_, b)| String::from_utf8_lossy(&b).to_string())
            .collect()
    }
}

fn requests_to(server: &ChannelServer, path_start: &str) -> Vec<common::channel_server::Request> {
    server
        .log()
        .into_iter()
        .filter(|r| r.path.starts_with(path_start))
        .collect()
}

#[test]
fn a_deploy_server_with_a_license_serves_the_specs_and_a_304_poll_reuses_the_cache() {
    let e = Env::new();
    let run = e.run(&["render", "--env", "prod"]).ok();
    assert!(
        run.stdout.contains("wandb/local:0.63.0") || run.stdout.contains("tag"),
        "rendered from the served spec"
    );
    let first = requests_to(&e.server, "/api/v1/operator/channel?channel=stable");
    assert_eq!(first.len(), 1);
    assert!(first[0].authorized && first[0].status == 200 && first[0].if_none_match.is_none());
    e.server.clear_log();
    let again = e.run(&["render", "--env", "prod"]).ok();
    assert_eq!(run.stdout, again.stdout, "a 304 renders the same");
    let second = requests_to(&e.server, "/api/v1/operator/channel?channel=stable");
    assert_eq!((second.len(), second[0].status), (1, 304), "{second:?}");
    assert!(second[0].if_none_match.is_some());
    let show = e.run(&["channel", "show", "--env", "prod"]).ok();
    assert!(
        show.stdout.contains("version: 0.63.0") && show.stdout.contains("304"),
        "{}",
        show.stdout
    );
    assert!(
        !e.cache_text().contains(LICENSE),
        "the license is not cached"
    );
}

#[test]
fn each_distinct_channel_is_fetched_once_per_run() {
    let e = Env::new();
    e.run(&["render", "--all", "--out", "out"]).ok();
    assert_eq!(
        requests_to(&e.server, "/api/v1/operator/channel?channel=stable").len(),
        1,
        "staging and prod share one fetch"
    );
    assert_eq!(
        requests_to(&e.server, "/api/v1/operator/channel?channel=canary").len(),
        1
    );
}

#[test]
fn a_pinned_environment_fetches_its_release() {
    let e = Env::new();
    e.example.append(
        "environments/prod/environment.yaml",
        "release: \"0.62.1\"\n",
    );
    let run = e.run(&["render", "--env", "prod"]).ok();
    assert!(run.stdout.contains("app.kubernetes.io/version: \"0.62.1\""));
    assert_eq!(
        requests_to(&e.server, "/api/v1/operator/channel/release/0.62.1").len(),
        1
    );
}

#[test]
fn a_rejected_license_is_explained_and_not_retried() {
    let e = Env::new();
    let run = e.run_with(
        &["render", "--env", "prod"],
        &[("HYDRANT_LICENSE", "wrong-license")],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("rejected the credentials (401)") && run.stderr.contains("license"),
        "{}",
        run.stderr
    );
    assert_eq!(e.server.log().len(), 1, "a 401 is not retried");
}

#[test]
fn server_errors_are_retried_with_backoff_then_succeed() {
    let e = Env::new();
    e.server.fail(&[Fault::Status(500), Fault::Status(503)]);
    let run = e.run(&["render", "--env", "staging"]).ok();
    assert!(run.stderr.contains("retrying"), "{}", run.stderr);
    assert_eq!(e.server.log().len(), 3);
}

#[test]
fn retry_after_on_429_is_honoured() {
    let e = Env::new();
    e.server.fail(&[Fault::RetryAfter(429, 1)]);
    let start = Instant::now();
    e.run(&["render", "--env", "staging"]).ok();
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        start.elapsed()
    );
}

#[test]
fn faults_without_a_cache_fail_the_environment_and_push_nothing() {
    let cases: Vec<(Vec<Fault>, Vec<&str>, &str)> = vec![
        (vec![Fault::Status(500); 4], vec![], "500"),
        (
            vec![Fault::Hang(Duration::from_secs(3)); 2],
            vec!["--channel-timeout", "1", "--channel-retries", "1"],
            "timed out",
        ),
        (vec![Fault::Truncated; 4], vec![], "cut short"),
        (vec![Fault::InvalidJson], vec![], "invalid YAML or JSON"),
        (
            vec![Fault::Huge(20_000)],
            vec!["--channel-max-bytes", "10000"],
            "larger than the 10000 bytes",
        ),
    ];
    for (faults, flags, needle) in cases {
        let e = Env::new();
        let remote = Remote::new();
        let dirs = tempfile::tempdir().unwrap();
        e.server.fail(&faults);
        let (work, state) = (dirs.path().join("w"), dirs.path().join("s"));
        let mut args = vec![
            "reconcile",
            "--once",
            "--repo",
            remote.url().leak(),
            "--work-dir",
            work.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--env",
            "staging",
        ];
        args.extend(flags.iter().copied());
        let run = e.run_with(&args, &[("HYDRANT_CHANNEL_RETRIES", "3")]);
        assert_eq!(run.code, 1, "{needle}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains(needle) || run.stderr.contains(needle),
            "{needle}:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        assert!(
            run.stdout.contains(&e.server.url()),
            "the error names the URL: {}",
            run.stdout
        );
        assert_eq!(remote.branches(), vec!["main"], "{needle}: nothing pushed");
    }
}

#[test]
fn an_unreachable_channel_falls_back_to_the_last_good_spec_and_says_how_old() {
    let e = Env::new();
    let good = e.run(&["render", "--env", "staging"]).ok();
    e.server.fail(&[Fault::Status(502); 10]);
    let run = e
        .run(&["render", "--env", "staging", "--channel-retries", "1"])
        .ok();
    assert_eq!(good.stdout, run.stdout);
    assert!(
        run.stderr.contains("using the last good spec") && run.stderr.contains("age="),
        "{}",
        run.stderr
    );
    let show = e
        .run(&[
            "channel",
            "show",
            "--name",
            "stable",
            "--channel-retries",
            "0",
        ])
        .ok();
    assert!(show.stdout.contains("stale cache"), "{}", show.stdout);
}

#[test]
fn a_lower_version_is_refused_unless_the_environment_accepts_it() {
    let e = Env::new();
    e.run(&["render", "--env", "staging"]).ok();
    e.server.set_latest(
        "stable",
        &with_version(&spec_json("channels/stable.yaml"), "0.60.0"),
    );
    let run = e.run(&["render", "--env", "staging"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("went from `0.63.0` back to `0.60.0`")
            && run.stderr.contains("allowDowngrade"),
        "{}",
        run.stderr
    );
    e.example.append(
        "environments/staging/environment.yaml",
        "allowDowngrade: true\n",
    );
    let run = e.run(&["render", "--env", "staging"]).ok();
    assert!(run.stdout.contains("app.kubernetes.io/version: \"0.60.0\""));
}

#[test]
fn a_mirror_renders_offline_to_the_same_manifests() {
    let e = Env::new();
    e.example.append(
        "environments/prod/environment.yaml",
        "release: \"0.62.1\"\n",
    );
    let mirror = e.example.path().join("mirror");
    e.run_with(
        &[
            "channel",
            "mirror",
            "--from",
            &e.server.channel_url(),
            "--to",
            mirror.to_str().unwrap(),
        ],
        &[],
    )
    .ok();
    assert!(
        mirror.join("stable.json").exists()
            && mirror.join("canary.json").exists()
            && mirror.join("stable/releases/0.62.1.json").exists(),
        "{:?}",
        tree(&mirror)
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    );
    let online = e.example.path().join("online");
    e.run(&["render", "--all", "--out", online.to_str().unwrap()])
        .ok();
    let offline = e.example.path().join("offline");
    let run = common::hydrant()
        .args([
            "render",
            "--all",
            "--channel",
            mirror.to_str().unwrap(),
            "--out",
            offline.to_str().unwrap(),
        ])
        .current_dir(e.example.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(tree(&online), tree(&offline));
    for (_, bytes) in tree(&mirror) {
        assert!(!String::from_utf8_lossy(&bytes).contains(LICENSE));
    }
}

fn signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42u8; 32])
}

fn sign(body: &str) -> String {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    base64::engine::general_purpose::STANDARD.encode(signing_key().sign(body.as_bytes()).to_bytes())
}

#[test]
fn signed_specs_are_verified_and_a_bad_or_missing_signature_is_refused() {
    let e = Env::new();
    let key_file = e.example.path().join("channel-key.pub");
    std::fs::write(
        &key_file,
        hex::encode(signing_key().verifying_key().to_bytes()),
    )
    .unwrap();
    let key = key_file.to_str().unwrap();
    let stable = spec_json("channels/stable.yaml");
    let canary = spec_json("channels/canary.yaml");
    // Unsigned: refused.
    let run = e.run(&["render", "--env", "staging", "--channel-public-key", key]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not signed"), "{}", run.stderr);
    // Signed by someone else, or tampered: refused.
    e.server
        .set_signature("stable", &sign(&stable.replace("0.63.0", "6.6.6")));
    let run = e.run(&["render", "--env", "staging", "--channel-public-key", key]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("signature does not match"),
        "{}",
        run.stderr
    );
    // Signed: accepted, and a mirror keeps the signature so it verifies offline.
    e.server.set_signature("stable", &sign(&stable));
    e.server.set_signature("canary", &sign(&canary));
    e.run(&["render", "--env", "staging", "--channel-public-key", key])
        .ok();
    let mirror = e.example.path().join("mirror");
    e.run(&[
        "channel",
        "mirror",
        "--from",
        &e.server.channel_url(),
        "--to",
        mirror.to_str().unwrap(),
        "--name",
        "stable,canary",
        "--channel-public-key",
        key,
    ])
    .ok();
    let offline = common::hydrant()
        .args([
            "render",
            "--env",
            "staging",
            "--channel",
            mirror.to_str().unwrap(),
            "--channel-public-key",
            key,
        ])
        .current_dir(e.example.path())
        .output()
        .unwrap();
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    std::fs::write(
        mirror.join("stable.json"),
        stable.replace("0.63.0", "6.6.6"),
    )
    .unwrap();
    let tampered = common::hydrant()
        .args([
            "render",
            "--env",
            "staging",
            "--channel",
            mirror.to_str().unwrap(),
            "--channel-public-key",
            key,
        ])
        .current_dir(e.example.path())
        .output()
        .unwrap();
    assert!(!tampered.status.success());
    assert!(String::from_utf8_lossy(&tampered.stderr).contains("signature does not match"));
}
