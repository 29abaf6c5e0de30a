//! The benchmark fleet (`bench/fleet.py`) against the real binary: a generated
//! fleet renders, a reconcile with nothing changed renders nothing, and a
//! channel bump changes every environment with one pull request each.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Run, run_in};
use serde_json::Value;

/// More than two of the chunks a cycle renders at a time (64), so that
/// rendering the next chunk while delivering one is exercised, and the last
/// chunk is a short one.
const ENVS: usize = 140;

fn fleet(args: &[&str]) {
    let status = Command::new("python3")
        .arg(common::project_root().join("bench/fleet.py"))
        .args(args)
        .status()
        .expect("python3 runs bench/fleet.py");
    assert!(status.success());
}

fn reconcile(dir: &Path) -> Run {
    let d = dir.display();
    run_in(
        dir,
        &[
            "reconcile",
            "--once",
            "--repo",
            &format!("{d}/remote.git"),
            "--work-dir",
            &format!("{d}/w"),
            "--state-dir",
            &format!("{d}/s"),
            "--output",
            "json",
            "--log-level",
            "debug",
            // Every environment opens its pull request in the one cycle.
            "--max-new-pull-requests-per-hour",
            "1000",
        ],
    )
    .ok()
}

fn field(run: &Run, name: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    v["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[name].as_str().unwrap().to_string())
        .collect()
}

fn actions(run: &Run) -> Vec<String> {
    field(run, "action")
}

#[test]
fn a_generated_fleet_reconciles_to_nothing_and_a_bump_changes_every_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("fleet");
    let (path, envs) = (d.to_str().unwrap(), ENVS.to_string());
    let hydrant = env!("CARGO_BIN_EXE_hydrant");
    fleet(&["create", path, "--envs", &envs, "--hydrant", hydrant]);
    let mut names: Vec<String> = std::fs::read_dir(d.join("work/rendered"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), ENVS);
    assert!(
        d.join("work/environments/customer-00000/pinned.yaml")
            .exists(),
        "a third are pinned"
    );

    let noop = reconcile(&d);
    assert_eq!(actions(&noop), vec!["unchanged"; ENVS]);
    assert_eq!(
        noop.stderr.matches("not rendered again").count(),
        ENVS,
        "{}",
        noop.stderr
    );

    fleet(&["bump", path]);
    let bump = reconcile(&d);
    assert_eq!(actions(&bump), vec!["opened"; ENVS]);
    assert_eq!(field(&bump, "env"), names, "reported in name order");
    let pulls = std::fs::read_dir(d.join("s/pulls")).unwrap().count();
    assert_eq!(pulls, ENVS);
    let branches = Command::new("git")
        .args([
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/hydrant/",
        ])
        .current_dir(d.join("remote.git"))
        .output()
        .unwrap();
    let branches = String::from_utf8_lossy(&branches.stdout);
    assert_eq!(branches.lines().count(), ENVS, "{branches}");
}
