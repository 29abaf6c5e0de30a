//! Issue 13, names, paths, git and the loader: what a pull request to the
//! config repository (or a name given to hydrant) can no longer make hydrant
//! do. The real binary against copies of the bundled example and real git
//! repositories.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::git::{Remote, git};
use common::{Example, Run, hydrant, run_in};

/// Every file below `dir`, relative to it.
fn files_below(dir: &Path) -> Vec<String> {
    common::tree(dir).into_iter().map(|(p, _)| p).collect()
}

fn reconcile(remote_url: &str, dirs: &Path, extra: &[&str]) -> Run {
    let (work, state) = (dirs.join("work"), dirs.join("state"));
    let mut args = vec![
        "reconcile",
        "--once",
        "--repo",
        remote_url,
        "--work-dir",
        work.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    run_in(dirs, &args)
}

#[test]
fn issue_13_channel_mirror_refuses_names_that_would_leave_the_mirror_directory() {
    let ex = Example::new();
    let outside = tempfile::tempdir().unwrap();
    let to = outside.path().join("deep").join("mirror");
    let to_arg = to.to_str().unwrap();
    // From environment.yaml: a channel that climbs out of `--to`.
    let original = ex.read("environments/dev/environment.yaml");
    ex.write(
        "environments/dev/environment.yaml",
        "channel: ../../escaped\nnamespace: wandb-dev\n",
    );
    let run = ex.run(&["channel", "mirror", "--from", "channels", "--to", to_arg]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "channel name `../../escaped` from environments/dev/environment.yaml, key `channel`"
        ),
        "{}",
        run.stderr
    );
    ex.write("environments/dev/environment.yaml", &original);
    // From the flags: a release pin and a channel name, absolute or climbing.
    for flags in [
        ["--release", "stable=../../../escaped"],
        ["--name", "/tmp/escaped"],
        ["--name", "stable/../../../escaped"],
    ] {
        let mut args = vec!["channel", "mirror", "--from", "channels", "--to", to_arg];
        args.extend(flags);
        let run = ex.run(&args);
        assert_ne!(run.code, 0, "{flags:?}: {}", run.stderr);
        assert!(run.stderr.contains(flags[0]), "{flags:?}: {}", run.stderr);
    }
    assert_eq!(files_below(outside.path()), Vec::<String>::new());
    // A plain name still mirrors.
    ex.run(&[
        "channel", "mirror", "--from", "channels", "--to", to_arg, "--name", "stable",
    ])
    .ok();
    assert_eq!(files_below(&to), ["stable.json"]);
}

#[test]
fn issue_13_a_kind_or_a_file_name_collision_never_reaches_rendered_files() {
    let ex = Example::new();
    // A kind from values would go verbatim into a file name and into
    // kustomization.yaml's `resources:` list.
    ex.write(
        "templates/kinds.yaml.hbs",
        "apiVersion: v1\nkind: {{values.sneaky}}\nmetadata:\n  name: x\n",
    );
    let values = ex.read("environments/dev/values.yaml");
    ex.append(
        "environments/dev/values.yaml",
        "\nsneaky: \"Secret.yaml\\n  - ../../etc # \"\n",
    );
    let out = ex.path().join("out");
    let run = ex.run(&["render", "--env", "dev", "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("is not a Kubernetes kind"),
        "{}",
        run.stderr
    );
    assert!(!out.join("dev").exists());
    // Two distinct objects (two API groups) that map to one file name; no
    // template reads `sneaky` any more, so it goes too.
    ex.write("environments/dev/values.yaml", &values);
    ex.write(
        "templates/kinds.yaml.hbs",
        "apiVersion: a.example.com/v1\nkind: Widget\nmetadata:\n  name: x\n---\napiVersion: b.example.com/v1\nkind: Widget\nmetadata:\n  name: x\n",
    );
    let run = ex.run(&["render", "--env", "dev", "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("would both be written to `widget-x.yaml`"),
        "{}",
        run.stderr
    );
    assert!(!out.join("dev").exists());
}

#[test]
fn issue_13_render_out_and_watch_never_write_through_a_symlink() {
    let ex = Example::new();
    let victim = tempfile::tempdir().unwrap();
    std::fs::write(victim.path().join("keep.txt"), "mine").unwrap();
    // `render --out DIR` where DIR/<env> is a link elsewhere.
    let out = ex.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(victim.path(), out.join("dev")).unwrap();
    let run = ex.run(&["render", "--env", "dev", "--out", out.to_str().unwrap()]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    assert_eq!(files_below(victim.path()), ["keep.txt"]);
    // `watch` in a repository whose `rendered` is a link elsewhere.
    std::os::unix::fs::symlink(victim.path(), ex.path().join("rendered")).unwrap();
    let log = ex.path().join("watch.log");
    let mut child = hydrant()
        .args(["watch", "--env", "dev", "--repo"])
        .arg(ex.path())
        .current_dir(ex.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut said = String::new();
    while started.elapsed() < Duration::from_secs(30) {
        said = std::fs::read_to_string(&log).unwrap_or_default();
        if said.contains("symbolic link") || victim.path().join("dev").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(said.contains("symbolic link"), "{said}");
    assert_eq!(files_below(victim.path()), ["keep.txt"]);
}

/// A remote whose `environments/qa` is a link to another directory.
fn remote_with_directory_link() -> Remote {
    let remote = Remote::new();
    let w = remote.work();
    std::os::unix::fs::symlink("dev", w.join("environments/qa")).unwrap();
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-q", "-m", "qa like dev"]);
    git(&w, &["push", "-q", "origin", "main"]);
    remote
}

#[test]
fn issue_13_the_working_tree_and_the_base_commit_refuse_a_directory_link_alike() {
    let remote = remote_with_directory_link();
    let dirs = tempfile::tempdir().unwrap();
    let wanted = "`environments/qa` is a symbolic link to a directory";
    // The working-tree commands used to follow it and render `qa`...
    let run = run_in(&remote.work(), &["render", "--env", "qa"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains(wanted), "{}", run.stderr);
    // ...while reconcile ignored it; now both see the same tree.
    let run = reconcile(&remote.url(), dirs.path(), &[]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains(wanted), "{}", run.stdout);
    assert_eq!(remote.branches(), ["main"]);
}

#[test]
fn issue_13_a_link_to_the_filesystem_root_in_templates_is_refused_at_once() {
    let ex = Example::new();
    std::os::unix::fs::symlink("/", ex.path().join("templates/x")).unwrap();
    let started = Instant::now();
    let run = ex.run(&["render", "--env", "dev"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("`templates/x` is a link to `/`, outside the config repository"),
        "{}",
        run.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

fn install_hook(remote: &Remote, name: &str, script: &str) {
    let hook = remote.bare().join("hooks").join(name);
    std::fs::write(&hook, script).unwrap();
    let status = Command::new("chmod").arg("+x").arg(&hook).status().unwrap();
    assert!(status.success());
}

#[test]
fn issue_13_a_local_remote_s_receive_hooks_run_and_a_refusal_stops_hydrant() {
    for (hook, url) in [("pre-receive", true), ("update", false)] {
        let remote = Remote::new();
        install_hook(
            &remote,
            hook,
            "#!/bin/sh\necho \"policy: no robots on Fridays\" >&2\nexit 1\n",
        );
        let dirs = tempfile::tempdir().unwrap();
        // Both spellings of a remote on this machine: `file://` and a path.
        let target = if url {
            remote.url()
        } else {
            remote.bare().display().to_string()
        };
        let run = reconcile(&target, dirs.path(), &[]);
        assert_ne!(run.code, 0, "{hook}: {}", run.stdout);
        assert!(
            run.stdout.contains("no robots on Fridays")
                || run.stderr.contains("no robots on Fridays"),
            "{hook}: {}\n{}",
            run.stdout,
            run.stderr
        );
        assert_eq!(remote.branches(), ["main"], "{hook}");
    }
    // A hook that accepts sees the push, as with `git push`.
    let remote = Remote::new();
    let seen = remote.root.path().join("seen");
    install_hook(
        &remote,
        "post-receive",
        &format!("#!/bin/sh\ncat >> '{}'\n", seen.display()),
    );
    let dirs = tempfile::tempdir().unwrap();
    reconcile(&remote.url(), dirs.path(), &[]).ok();
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert!(seen.contains("refs/heads/hydrant/prod"), "{seen}");
}

#[test]
fn issue_13_a_hydrant_branch_as_the_base_is_refused() {
    let remote = Remote::new();
    let dirs = tempfile::tempdir().unwrap();
    reconcile(&remote.url(), dirs.path(), &[]).ok();
    let before = remote.branches();
    assert!(before.contains(&"hydrant/prod".to_string()), "{before:?}");
    let run = reconcile(&remote.url(), dirs.path(), &["--base", "hydrant/prod"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("base branch `hydrant/prod`") && run.stdout.contains("hint:"),
        "{}",
        run.stdout
    );
    assert_eq!(remote.branches(), before);
}

#[test]
fn issue_13_reconcile_reads_only_the_files_hydrant_uses_from_the_base_commit() {
    let remote = Remote::new();
    // 150 MB under docs/ (compresses to almost nothing in git).
    let w = remote.work();
    std::fs::create_dir_all(w.join("docs")).unwrap();
    std::fs::File::create(w.join("docs/video.bin"))
        .unwrap()
        .set_len(150 * 1024 * 1024)
        .unwrap();
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-q", "-m", "docs"]);
    git(&w, &["push", "-q", "origin", "main"]);
    let dirs = tempfile::tempdir().unwrap();
    // The first run fetches (git's own cost); the second has the commit
    // already and only reads it, as every cycle of a daemon does.
    reconcile(&remote.url(), dirs.path(), &["--dry-run"]).ok();
    let (work, state) = (dirs.path().join("work"), dirs.path().join("state"));
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_hydrant"))
        .args(["reconcile", "--once", "--dry-run", "--repo", &remote.url()])
        .arg("--work-dir")
        .arg(&work)
        .arg("--state-dir")
        .arg(&state)
        .current_dir(dirs.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let kib: u64 = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    // Loading every blob holds the 150 MB file (twice, as bytes and text).
    assert!(kib < 100 * 1024, "peak memory {kib} KiB");
}
