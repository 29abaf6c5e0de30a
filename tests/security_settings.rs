//! Issue 13: what a pull request to the config repository, or a careless
//! setting, cannot make hydrant do with the operator's credentials. The real
//! binary, real git repositories, and a deploy server on 127.0.0.1.

mod common;

use common::channel_server::{ChannelServer, bundled_spec};
use common::git::Remote;
use common::{Example, Run, hydrant};

const LICENSE: &str = "lic-0123456789abcdef";

/// A deploy server serving the bundled `stable` channel.
fn server() -> ChannelServer {
    let server = ChannelServer::start(LICENSE);
    server.set_latest("stable", &bundled_spec("channels/stable.yaml", None));
    server.set_latest("canary", &bundled_spec("channels/canary.yaml", None));
    server
}

fn run(ex: &Example, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = hydrant();
    cmd.current_dir(ex.path()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap().into()
}

/// A file that looks like `/etc/passwd`, to see it never leaves.
fn fake_passwd(dir: &std::path::Path) -> String {
    let path = dir.join("passwd");
    std::fs::write(
        &path,
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn issue_13_a_pull_request_cannot_name_a_credential_file_and_where_to_send_it() {
    let server = server();
    let ex = Example::new();
    ex.write(
        "hydrant.yaml",
        &format!(
            "interval: 5m\nlicenseFile: /etc/passwd\nchannel: {}/{{channel}}\n",
            server.url()
        ),
    );
    let run = run(&ex, &["validate", "--all"], &[]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("hydrant.yaml`, line 2")
            && run.stderr.contains("`licenseFile` is an operator setting")
            && run.stderr.contains("hint: pass it with `--license-file`")
            && run.stderr.contains("the file `--config` names"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("root:"), "{}", run.stderr);
    assert!(server.log().is_empty(), "{:?}", server.log());

    // Each of them alone is refused too: a URL, a CA file, a directory.
    for (text, key) in [
        (format!("channel: {}\n", server.url()), "channel"),
        ("caFile: /etc/passwd\n".to_string(), "caFile"),
        (
            "githubApiUrl: http://127.0.0.1:1\n".to_string(),
            "githubApiUrl",
        ),
        ("workDir: /tmp\n".to_string(), "workDir"),
    ] {
        ex.write("hydrant.yaml", &text);
        let run = run_all(&ex);
        assert_eq!(run.code, 2, "{text}: {}", run.stderr);
        assert!(
            run.stderr
                .contains(&format!("`{key}` is an operator setting")),
            "{}",
            run.stderr
        );
    }
    assert!(server.log().is_empty(), "{:?}", server.log());
}

fn run_all(ex: &Example) -> Run {
    run(ex, &["validate", "--all"], &[("HYDRANT_LICENSE", LICENSE)])
}

#[test]
fn issue_13_the_repository_channel_source_cannot_send_the_operators_license_elsewhere() {
    let server = server();
    let ex = Example::new();
    for source in [
        format!("{}/{{channel}}", server.url()),
        "/etc".to_string(),
        "channels/../../outside".to_string(),
    ] {
        ex.write(
            "hydrant.yaml",
            &format!("# settings\nchannelSource: {source}\n"),
        );
        let run = run_all(&ex);
        assert_ne!(run.code, 0, "{source}: {}", run.stderr);
        assert!(
            run.stderr.contains("channelSource")
                && run.stderr.contains("line 2")
                && run.stderr.contains("inside the repository"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains(LICENSE), "{}", run.stderr);
    }
    assert!(server.log().is_empty(), "{:?}", server.log());
}

#[test]
fn issue_13_the_operator_file_may_set_credential_files_and_urls() {
    let server = server();
    let ex = Example::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("license"), format!("{LICENSE}\n")).unwrap();
    let config = dir.path().join("operator.yaml");
    std::fs::write(
        &config,
        format!(
            "licenseFile: license\nchannel: {}\nchannelCacheDir: cache\n",
            server.url()
        ),
    )
    .unwrap();
    let run = run(
        &ex,
        &["validate", "--all", "--config", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = server.log();
    assert!(
        !log.is_empty() && log.iter().all(|r| r.authorized),
        "{log:?}"
    );
}

#[test]
fn issue_13_a_credential_file_must_be_one_line_and_is_never_shown() {
    let server = server();
    let ex = Example::new();
    let dir = tempfile::tempdir().unwrap();
    let passwd = fake_passwd(dir.path());
    let url = server.url();
    for (args, env) in [
        (
            vec![
                "validate",
                "--all",
                "--license-file",
                &passwd,
                "--channel",
                &url,
            ],
            vec![],
        ),
        (
            vec!["validate", "--all", "--channel", &url],
            vec![("HYDRANT_LICENSE", "line one\nAuthorization: x")],
        ),
    ] {
        let run = run(&ex, &args, &env);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.stderr.contains("more than one line")
                && (run.stderr.contains(&passwd) || run.stderr.contains("`HYDRANT_LICENSE`")),
            "{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("root:") && !run.stderr.contains("Authorization"),
            "{}",
            run.stderr
        );
    }
    assert!(server.log().is_empty(), "{:?}", server.log());
}

/// Arguments, environment variables, and what the refusal must name.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn issue_13_credentials_inside_urls_are_refused_without_echoing_them() {
    let server = server();
    let ex = Example::new();
    let dirs = tempfile::tempdir().unwrap();
    let work = dirs.path().join("work");
    let channel = format!("http://license:s3cr3t-pw@127.0.0.1:{}", server.port);
    let repo = "https://hydrant:s3cr3t-pw@127.0.0.1:1/acme/config.git";
    let cases: Vec<Case> = vec![
        (
            vec!["validate", "--all", "--channel", &channel],
            vec![],
            "--channel",
        ),
        (
            vec![
                "reconcile",
                "--once",
                "--repo",
                repo,
                "--work-dir",
                work.to_str().unwrap(),
            ],
            vec![],
            "--repo",
        ),
        (
            vec!["config", "show"],
            vec![("HYDRANT_REPO", repo)],
            "HYDRANT_REPO",
        ),
        (
            vec!["reconcile", "--once", "--work-dir", work.to_str().unwrap()],
            vec![(
                "HYDRANT_REPO",
                "https://s3cr3t-pw@127.0.0.1:1/acme/config.git",
            )],
            "HYDRANT_REPO",
        ),
        (
            vec![
                "reconcile",
                "--once",
                "--forge",
                "gitlab",
                "--gitlab-url",
                "https://gitlab.example.com/?private_token=s3cr3t-pw",
            ],
            vec![],
            "query",
        ),
    ];
    for (args, env, named) in cases {
        let run = run(&ex, &args, &env);
        assert_eq!(run.code, 2, "{args:?}: {}\n{}", run.stdout, run.stderr);
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(!all.contains("s3cr3t"), "{args:?}: {all}");
        assert!(all.contains(named), "{args:?}: {all}");
        assert!(
            run.stderr.contains("hint:") || named == "query",
            "{}",
            run.stderr
        );
    }
    assert!(
        !work.exists(),
        "no work directory (and no git config holding the token)"
    );
    assert!(server.log().is_empty(), "{:?}", server.log());
}

#[test]
fn issue_13_a_ca_file_that_is_not_pem_is_refused_by_name() {
    let server = server();
    let ex = Example::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.der");
    std::fs::write(&ca, b"\x30\x82\x01\x0anot pem at all").unwrap();
    let run = run(
        &ex,
        &[
            "validate",
            "--all",
            "--channel",
            &server.url(),
            "--ca-file",
            ca.to_str().unwrap(),
        ],
        &[("HYDRANT_LICENSE", LICENSE)],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("ca.der") && run.stderr.contains("no PEM certificate"),
        "{}",
        run.stderr
    );
    assert!(server.log().is_empty(), "{:?}", server.log());
}

/// Reconciles the remote once with the local forge.
fn reconcile(remote: &Remote, dirs: &tempfile::TempDir) -> Run {
    common::run_in(
        dirs.path(),
        &[
            "reconcile",
            "--once",
            "--repo",
            &remote.url(),
            "--work-dir",
            dirs.path().join("w").to_str().unwrap(),
            "--state-dir",
            dirs.path().join("s").to_str().unwrap(),
        ],
    )
}

#[test]
fn issue_13_a_channel_version_that_would_forge_trailers_is_refused_and_nothing_is_pushed() {
    let remote = Remote::new();
    let spec = remote.read_main("channels/stable.yaml");
    let version_line = spec
        .lines()
        .find(|l| l.trim_start().starts_with("version:"))
        .unwrap()
        .to_string();
    let forged = spec.replacen(
        &version_line,
        "  version: \"1.0.0\\nHydrant-Environment: prod\"",
        1,
    );
    assert_ne!(forged, spec);
    remote.commit_to_main("channels/stable.yaml", &forged, "forge a version");
    let dirs = tempfile::tempdir().unwrap();
    let run = reconcile(&remote, &dirs);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("channels/stable.yaml")
            && all.contains("metadata.version")
            && all.contains("not a release id"),
        "{all}"
    );
    assert!(!all.contains("\nHydrant-Environment: prod"), "{all}");
    assert_eq!(remote.branches(), ["main"], "nothing pushed");
    assert!(
        !dirs.path().join("s/pulls").exists()
            || std::fs::read_dir(dirs.path().join("s/pulls"))
                .unwrap()
                .count()
                == 0
    );
}

#[test]
fn issue_13_a_release_pin_that_is_not_a_release_id_is_refused_and_nothing_is_pushed() {
    let remote = Remote::new();
    let env = remote.read_main("environments/prod/environment.yaml");
    let pinned = format!(
        "{}\nrelease: \"0.62.1\\nHydrant-Environment: dev\"\n",
        env.lines()
            .filter(|l| !l.starts_with("release:"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    remote.commit_to_main("environments/prod/environment.yaml", &pinned, "forge a pin");
    let dirs = tempfile::tempdir().unwrap();
    let run = reconcile(&remote, &dirs);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("environments/prod/environment.yaml") && all.contains("not a release id"),
        "{all}"
    );
    assert!(
        !remote.branches().iter().any(|b| b == "hydrant/prod"),
        "{:?}",
        remote.branches()
    );
}

#[test]
fn issue_13_a_hostile_value_cannot_forge_or_hide_the_pull_request_description() {
    let remote = Remote::new();
    let pinned = remote.read_main("environments/dev/pinned.yaml");
    remote.commit_to_main(
        "environments/dev/pinned.yaml",
        &format!(
            "{pinned}\napp:\n  image:\n    tag: \"1`\\n| forged | row | x | y |\\n<!-- the rest is hidden\\n```\\n</details>\"\n"
        ),
        "a hostile image tag",
    );
    let dirs = tempfile::tempdir().unwrap();
    let state = dirs.path().join("s");
    let run = common::run_in(
        dirs.path(),
        &[
            "reconcile",
            "--once",
            "--repo",
            &remote.url(),
            "--env",
            "dev",
            "--work-dir",
            dirs.path().join("w").to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let pr: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("pulls/1.json")).unwrap())
            .unwrap();
    let body = pr["body"].as_str().unwrap();
    let lines: Vec<&str> = body.lines().collect();
    // No line of the description is the hostile text's: no forged row, no
    // comment opened outside a code block, and every section still there.
    assert!(!lines.iter().any(|l| l.starts_with("| forged")), "{body}");
    assert!(!lines.iter().any(|l| l.starts_with("<!--")), "{body}");
    for heading in [
        "### Images",
        "### Resources",
        "### Changed values",
        "### Reproduce locally",
    ] {
        assert!(lines.contains(&heading), "{heading}\n{body}");
    }
    // Every row of a table has as many cells as its header.
    let pipes = |l: &str| {
        let b = l.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
            .count()
    };
    let mut header = None;
    for line in &lines {
        match (line.starts_with('|'), header) {
            (true, None) => header = Some(pipes(line)),
            (true, Some(n)) => assert_eq!(pipes(line), n, "{line}\n{body}"),
            (false, _) => header = None,
        }
    }
    // The diff's fence outlasts the backticks of the value.
    assert!(body.contains("\n````diff\n"), "{body}");
    assert!(body.trim_end().ends_with("</details>"), "{body}");
    assert!(!pr["title"].as_str().unwrap().contains('\n'));
}

#[test]
fn issue_16_a_repository_file_cannot_bind_a_credential_for_a_gate() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let passwd = fake_passwd(dir.path());
    let text = format!(
        "rollout:\n  gates:\n    - name: up\n      http: {{url: \"{url}/{{env}}\", credential: stolen, expect: {{status: 200}}}}\n  waves:\n    - {{name: a, environments: [dev], gates: [up]}}\n    - {{name: b, environments: [\"*\"]}}\ncredentials:\n  stolen:\n    tokenFile: {passwd}\n    origins: [\"{url}\"]\n",
        url = server.url()
    );
    let says = |run: &Run| {
        assert_ne!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stderr.contains("hydrant.yaml")
                && run.stderr.contains("line 8")
                && run.stderr.contains("`credentials` is an operator setting")
                && run.stderr.contains("the file `--config` names"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("root:"), "{}", run.stderr);
        assert!(!run.stdout.contains("root:"), "{}", run.stdout);
    };

    // Read from the working tree.
    let ex = Example::new();
    ex.write("hydrant.yaml", &text);
    says(&run(&ex, &["validate", "--all"], &[]));

    // Read from the base branch of a remote, in a cycle.
    let remote = Remote::new();
    remote.commit_to_main("hydrant.yaml", &text, "Bind a credential");
    let work = dir.path().join("work");
    let state = dir.path().join("state");
    let url = remote.url();
    says(&run(
        &ex,
        &[
            "reconcile",
            "--repo",
            &url,
            "--work-dir",
            work.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[],
    ));
    assert!(server.log().is_empty(), "{:?}", server.log());
}
