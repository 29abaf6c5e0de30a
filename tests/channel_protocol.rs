//! The reference operator's channel protocol, against a real deploy server on
//! 127.0.0.1: a 200 that is no spec falls back to the last good one, and a
//! mirror never leaves two formats of one channel side by side.

mod common;

use common::channel_server::{ChannelServer, bundled_spec};
use common::git::{Remote, git};
use common::{Example, Run, tree};

const LICENSE: &str = "eyJsaWNlbnNlIjoidGVzdCJ9.c2lnbmF0dXJlLXRlc3Q";

struct Env {
    example: Example,
    server: ChannelServer,
    cache: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let server = ChannelServer::start(LICENSE);
        server.set_latest("stable", &bundled_spec("channels/stable.yaml", None));
        server.set_latest("canary", &bundled_spec("channels/canary.yaml", None));
        server.set_release(
            "0.62.1",
            &bundled_spec("channels/stable/releases/0.62.1.yaml", None),
        );
        Env {
            example: Example::new(),
            server,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs hydrant against the deploy server, with the license in the
    /// environment and fast retries.
    fn run(&self, args: &[&str]) -> Run {
        let url = self.server.url();
        let mut full: Vec<&str> = args.to_vec();
        full.extend([
            "--channel",
            &url,
            "--channel-cache-dir",
            self.cache.path().to_str().unwrap(),
        ]);
        let run = Run::from(
            common::hydrant()
                .args(&full)
                .current_dir(self.example.path())
                .env("HYDRANT_LICENSE", LICENSE)
                .env("HYDRANT_CHANNEL_BACKOFF_MS", "20")
                .output()
                .unwrap(),
        );
        assert!(
            !run.stdout.contains(LICENSE) && !run.stderr.contains(LICENSE),
            "the license leaked:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        run
    }
}

fn refs(remote: &Remote) -> String {
    git(
        &remote.bare(),
        &["for-each-ref", "--format=%(refname) %(objectname)"],
    )
}

#[test]
fn a_200_that_is_not_a_spec_falls_back_to_the_last_good_spec_and_pushes_nothing_new() {
    for body in [
        "<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>",
        "{\"metadata\": {\"version\": \"0.64.0\"}, \"values\": ",
    ] {
        let e = Env::new();
        let remote = Remote::new();
        let dirs = tempfile::tempdir().unwrap();
        let (work, state) = (dirs.path().join("w"), dirs.path().join("s"));
        let url = remote.url();
        let reconcile = [
            "reconcile",
            "--once",
            "--repo",
            &url,
            "--work-dir",
            work.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--env",
            "staging",
        ];
        e.run(&reconcile).ok();
        let before = refs(&remote);
        assert!(before.contains("hydrant/"), "a first push: {before}");
        e.server.set_latest("stable", body);
        let run = e.run(&reconcile);
        assert_eq!(run.code, 0, "{body}:\n{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("not a channel spec")
                && run.stderr.contains(&e.server.url())
                && run.stderr.contains("using the last good spec")
                && run.stderr.contains("age="),
            "{body}:\n{}",
            run.stderr
        );
        assert_eq!(refs(&remote), before, "{body}: nothing new pushed");
        let show = e.run(&["channel", "show", "--name", "stable"]).ok();
        assert!(
            show.stdout.contains("stale cache")
                && show.stdout.contains("not a channel spec")
                && show.stdout.contains("version: 0.63.0"),
            "{}",
            show.stdout
        );
    }
}

#[test]
fn a_200_that_is_not_a_spec_with_nothing_cached_fails_naming_the_url() {
    let e = Env::new();
    e.server
        .set_latest("stable", "<html><body>Service Unavailable</body></html>");
    let run = e.run(&["render", "--env", "staging"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("not a channel spec") && run.stderr.contains(&e.server.url()),
        "{}",
        run.stderr
    );
}

/// The stems below `dir` that are there in more than one format.
fn doubled(dir: &std::path::Path) -> Vec<String> {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for (name, _) in tree(dir) {
        if let Some((stem, ext)) = name.rsplit_once('.')
            && ["yaml", "yml", "json"].contains(&ext)
        {
            *seen.entry(stem.to_string()).or_default() += 1;
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(s, _)| s)
        .collect()
}

#[test]
fn a_mirror_over_the_bundled_layout_leaves_one_file_per_channel_and_its_release_is_rendered() {
    let e = Env::new();
    e.server.set_latest(
        "stable",
        &bundled_spec("channels/stable.yaml", Some("0.64.0")),
    );
    e.run(&[
        "channel",
        "mirror",
        "--from",
        &e.server.url(),
        "--to",
        "channels",
    ])
    .ok();
    let channels = e.example.path().join("channels");
    assert_eq!(
        doubled(&channels),
        Vec::<String>::new(),
        "{:?}",
        tree(&channels)
    );
    assert!(
        e.example.read("channels/stable.yaml").contains("0.64.0"),
        "the mirrored spec took the place of the bundled one"
    );
    // Offline, from the directory: the mirrored release is the one rendered.
    let run = e.example.run(&["render", "--env", "staging"]).ok();
    assert!(
        run.stdout.contains("app.kubernetes.io/version: \"0.64.0\""),
        "{}",
        run.stdout
    );
}

#[test]
fn a_mirror_refuses_a_channel_already_there_in_two_formats() {
    let e = Env::new();
    e.example.write(
        "channels/canary.json",
        &bundled_spec("channels/canary.yaml", None),
    );
    let run = e.run(&[
        "channel",
        "mirror",
        "--from",
        &e.server.url(),
        "--to",
        "channels",
        "--name",
        "canary",
    ]);
    assert_ne!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("canary.yaml")
            && run.stderr.contains("canary.json")
            && run.stderr.contains("remove all but one"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_deploy_server_is_asked_as_the_operator_asks_and_channel_only_when_configured() {
    let e = Env::new();
    let run = e.run(&["render", "--env", "staging"]).ok();
    assert!(run.stdout.contains("app.kubernetes.io/version: \"0.63.0\""));
    let log = e.server.log();
    assert!(!log.is_empty());
    for r in &log {
        assert!(
            r.path == "/api/v1/operator/channel" && r.authorized && !r.path.contains("channel="),
            "{log:?}"
        );
    }
    // A pinned release goes to the release endpoint, with no query either.
    e.example.append(
        "environments/prod/environment.yaml",
        "release: \"0.62.1\"\n",
    );
    e.server.clear_log();
    e.run(&["render", "--env", "prod"]).ok();
    let paths: Vec<String> = e.server.log().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/api/v1/operator/channel/release/0.62.1"]);
    // Configured: `?channel=` names the channel, and pins keep their endpoint.
    e.server.clear_log();
    let template = e.server.channel_url();
    let run = Run::from(
        common::hydrant()
            .args(["render", "--env", "dev", "--env", "prod", "--out", "out"])
            .args(["--channel", &template])
            .args(["--channel-cache-dir", e.cache.path().to_str().unwrap()])
            .current_dir(e.example.path())
            .env("HYDRANT_LICENSE", LICENSE)
            .output()
            .unwrap(),
    )
    .ok();
    assert!(!run.stdout.contains(LICENSE) && !run.stderr.contains(LICENSE));
    let mut paths: Vec<String> = e.server.log().into_iter().map(|r| r.path).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/api/v1/operator/channel/release/0.62.1",
            "/api/v1/operator/channel?channel=canary"
        ]
    );
}
