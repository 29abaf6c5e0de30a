//! The benchmark fleet (`bench/fleet.py`) against the real binary: a generated
//! fleet renders, a reconcile with nothing changed renders nothing, and a
//! channel bump changes every environment with one pull request each.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Run, run_in};
use serde_json::Value;

const ENVS: usize = 6;

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
        ],
    )
    .ok()
}

fn actions(run: &Run) -> Vec<String> {
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    v["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_generated_fleet_reconciles_to_nothing_and_a_bump_changes_every_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("fleet");
    let (path, envs) = (d.to_str().unwrap(), ENVS.to_string());
    let hydrant = env!("CARGO_BIN_EXE_hydrant");
    fleet(&["create", path, "--envs", &envs, "--hydrant", hydrant]);
    let names: Vec<String> = std::fs::read_dir(d.join("work/rendered"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
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
    let pulls = std::fs::read_dir(d.join("s/pulls")).unwrap().count();
    assert_eq!(pulls, ENVS);
}
