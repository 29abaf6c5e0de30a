//! The settings file and its precedence: flag > `HYDRANT_*` env > `hydrant.yaml` > default.

mod common;

use common::{Example, Run, hydrant};
use serde_json::Value;

fn show(ex: &Example, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = hydrant();
    cmd.current_dir(ex.path())
        .args(["config", "show", "--output", "json"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap().into()
}

fn setting<'a>(json: &'a Value, key: &str) -> &'a Value {
    json["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no setting `{key}` in {json}"))
}

#[test]
fn flags_win_over_env_which_wins_over_the_file_which_wins_over_defaults() {
    let ex = Example::new();
    ex.write(
        "hydrant.yaml",
        "# hydrant's settings\ninterval: 7m\nlisten: 0.0.0.0:9000\nforgeMaxWait: 5\nenv: [dev, prod]\n",
    );
    let run = show(
        &ex,
        &[
            ("HYDRANT_LISTEN", "127.0.0.1:9100"),
            ("HYDRANT_FORGE_MAX_WAIT", "9"),
        ],
        &["--forge-max-wait", "11"],
    )
    .ok();
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let check = |key: &str, value: Value, source: &str| {
        let s = setting(&json, key);
        assert_eq!(s["values"], value, "{key}: {s}");
        assert_eq!(s["source"], source, "{key}: {s}");
    };
    check("forgeMaxWait", serde_json::json!(["11"]), "flag");
    check("listen", serde_json::json!(["127.0.0.1:9100"]), "env");
    check("interval", serde_json::json!(["7m"]), "file");
    check("env", serde_json::json!(["dev", "prod"]), "file");
    check("shutdownTimeout", serde_json::json!(["2m"]), "default");
    assert_eq!(setting(&json, "interval")["line"], 2);
    assert!(json["file"].as_str().unwrap().ends_with("hydrant.yaml"));
}

#[test]
fn file_settings_reach_the_commands() {
    // `env: dev` in the file selects what `render` renders.
    let ex = Example::new();
    ex.write("hydrant.yaml", "env: [dev]\n");
    let run = ex.run(&["render"]).ok();
    assert!(run.stdout.contains("kind: Deployment"), "{}", run.stdout);
    assert!(
        run.stdout.contains("namespace: wandb-dev"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_config_flag_names_a_file_elsewhere_and_must_exist() {
    let ex = Example::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("settings.yaml");
    std::fs::write(&file, "interval: 90s\nlicenseFile: secrets/license\n").unwrap();
    let f = file.to_str().unwrap();
    let run = show(&ex, &[], &["--config", f]).ok();
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(setting(&json, "interval")["values"][0], "90s");
    let license = setting(&json, "licenseFile")["values"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        license,
        dir.path().join("secrets/license").display().to_string(),
        "a relative path is relative to the settings file"
    );
    let run = show(&ex, &[("HYDRANT_CONFIG", "/nonexistent/hydrant.yaml")], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("/nonexistent/hydrant.yaml"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_settings_name_the_file_line_and_key() {
    let ex = Example::new();
    ex.write("hydrant.yaml", "interval: 5m\nshutdownTimout: 1m\n");
    let run = ex.run(&["validate", "--all"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);
    assert!(
        run.stderr.contains("did you mean `shutdownTimeout`"),
        "{}",
        run.stderr
    );

    ex.write("hydrant.yaml", "interval: 5 minutes\n");
    let run = ex.run(&["config", "show"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("hydrant.yaml`, line 1"),
        "{}",
        run.stderr
    );

    // A secret pasted into the file is refused without being repeated.
    ex.write("hydrant.yaml", "githubToken: ghp_s3cr3t\n");
    let run = ex.run(&["config", "show"]);
    assert_eq!(run.code, 2);
    assert!(!run.stderr.contains("ghp_s3cr3t"), "{}", run.stderr);
}

/// Issue 14: `config show` prints what a run would use, not "unset".
#[test]
fn config_show_prints_the_work_dir_forge_and_channel_source_a_run_would_use() {
    let ex = Example::new();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let run = show(&ex, &[("XDG_CACHE_HOME", cache_dir)], &[]).ok();
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let work_dir = setting(&json, "workDir");
    assert!(
        work_dir["values"][0]
            .as_str()
            .unwrap()
            .starts_with(cache_dir),
        "{work_dir}"
    );
    assert_eq!(work_dir["source"], "default", "{work_dir}");
    assert_eq!(
        setting(&json, "forge")["values"],
        serde_json::json!(["local"])
    );
    assert_eq!(
        setting(&json, "channel")["values"],
        serde_json::json!(["channels"])
    );

    ex.write("hydrant.yaml", "channelSource: mirror\n");
    let run = show(
        &ex,
        &[("XDG_CACHE_HOME", cache_dir)],
        &["--repo", "https://github.com/acme/config.git"],
    )
    .ok();
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        setting(&json, "forge")["values"],
        serde_json::json!(["github"])
    );
    let channel = setting(&json, "channel");
    assert_eq!(
        channel["values"],
        serde_json::json!(["channels"]),
        "{channel}"
    );
    assert!(
        channel["derived"].as_str().unwrap().contains("base branch"),
        "{channel}"
    );

    let run = show(&ex, &[("XDG_CACHE_HOME", cache_dir)], &[]).ok();
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let channel = setting(&json, "channel");
    assert_eq!(
        channel["values"],
        serde_json::json!(["mirror"]),
        "{channel}"
    );
    assert!(
        channel["derived"]
            .as_str()
            .unwrap()
            .contains("hydrant.yaml:1"),
        "{channel}"
    );
    let text = ex.run(&["config", "show"]).ok();
    for key in ["workDir", "forge", "channel", "channelCacheDir"] {
        let line = text
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in {}", text.stdout));
        assert!(!line.contains("unset"), "{line}");
    }
}

/// `--once` means something only to `reconcile` (kept for cron lines; it
/// always runs one cycle) and `run`; elsewhere it is a usage error rather
/// than a flag silently ignored.
#[test]
fn once_is_a_usage_error_where_it_means_nothing() {
    let ex = Example::new();
    for command in [&["status"][..], &["plan"], &["config", "show"]] {
        let run: Run = hydrant()
            .current_dir(ex.path())
            .args(command)
            .arg("--once")
            .output()
            .unwrap()
            .into();
        assert_eq!(run.code, 2, "{command:?} --once: {}", run.stderr);
        assert!(
            run.stderr.contains("unexpected argument '--once'"),
            "{command:?}: {}",
            run.stderr
        );
    }
    for command in ["reconcile", "run"] {
        let run: Run = hydrant()
            .current_dir(ex.path())
            .args([command, "--once", "--help"])
            .output()
            .unwrap()
            .into();
        assert_eq!(run.code, 0, "{command} --once: {}", run.stderr);
        assert!(run.stdout.contains("--once"), "{command}: {}", run.stdout);
    }
}
