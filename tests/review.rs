//! The review summary reviewers read, checked against a golden file: a version
//! bump with an image change and a deleted resource. Set `HYDRANT_BLESS=1` to
//! rewrite the expected file after an intended change.

mod common;

use common::git::Remote;
use common::run_in;
use serde_json::Value;

#[test]
fn the_review_summary_of_a_bump_with_an_image_change_and_a_deletion_matches_the_golden_file() {
    let remote = Remote::new();
    // Besides the channel bump (0.62.1 → 0.63.0: new images), prod drops its
    // custom CA certificates, which deletes a ConfigMap.
    let pinned = remote.read_main("environments/prod/pinned.yaml");
    let pinned = pinned.replace(
        "global:\n",
        "global:\n  # The CA bundle is now baked into the image.\n  customCACerts: null\n",
    );
    assert!(pinned.contains("customCACerts: null"));
    remote.commit_to_main(
        "environments/prod/pinned.yaml",
        &pinned,
        "prod: drop custom CAs",
    );
    let dirs = tempfile::tempdir().unwrap();
    let (work, state) = (dirs.path().join("w"), dirs.path().join("s"));
    let run = run_in(
        dirs.path(),
        &[
            "reconcile",
            "--once",
            "--repo",
            &remote.url(),
            "--env",
            "prod",
            "--work-dir",
            work.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let pr: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("pulls/1.json")).unwrap())
            .unwrap();
    let body = pr["body"].as_str().unwrap();
    let golden = common::project_root().join("tests/cases/review-bump/expected.md");
    if std::env::var("HYDRANT_BLESS").as_deref() == Ok("1") {
        std::fs::write(&golden, body).unwrap();
    }
    let expected =
        std::fs::read_to_string(&golden).expect("golden file; create it with HYDRANT_BLESS=1");
    assert!(
        body == expected,
        "the review summary changed; if intended, re-run with HYDRANT_BLESS=1\n--- got ---\n{body}"
    );
    // What a reviewer must see at a glance.
    assert!(body.contains("stable` `0.62.1` → `0.63.0`"));
    assert!(body.contains(
        "| `Deployment/wandb-app` | `app` | `wandb/local:0.62.1` | `wandb/local:0.63.0` |"
    ));
    assert!(
        body.contains("**Removed** (1): `ConfigMap/wandb-ca-certs`")
            && body.contains("**deleted**")
    );
    assert!(body.len() < 65_536);
}
