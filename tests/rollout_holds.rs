//! Holds in the rollout (issue 15), with the real binary against a bare
//! remote, the local forge and a channel on disk, over the fleet of
//! `tests/rollout_waves.rs`: a hold stops new version pull requests within one
//! cycle and shows in `status`; releasing it resumes; a held environment's open
//! pull request is not pushed to and says who held it and why; the daemon's
//! API holds the same way, only with the trigger token; and all of it survives
//! a daemon restart, because every bit of rollout state is in git and the
//! forge.

mod common;

use std::time::{Duration, Instant};

use common::daemon::{http, metric, wait_for};
use common::git::git;
use common::rollout::{Fleet, SOAK_SECS, json, outcome, set, tenants};
use serde_json::Value;

const TOKEN: &str = "rollout-trigger-token";

fn envs(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("t{i:02}")).collect()
}

fn names(envs: &[String]) -> std::collections::BTreeSet<String> {
    envs.iter().cloned().collect()
}

/// The commit `hydrant/<env>` points at on the remote.
fn head(fleet: &Fleet, env: &str) -> String {
    git(
        &fleet.remote.bare(),
        &["rev-parse", &format!("refs/heads/hydrant/{env}")],
    )
    .trim()
    .to_string()
}

#[test]
fn hold_all_stops_new_version_pull_requests_within_one_cycle_and_release_hold_resumes() {
    let fleet = Fleet::new();
    fleet
        .run(&[
            "hold",
            "--all",
            "--reason",
            "incident 4711",
            "--by",
            "alice",
        ])
        .ok();

    // A bump after the hold opens nothing, and says why.
    fleet.publish("0.63.0");
    let run = json(&fleet.reconcile());
    assert!(fleet.open_pulls().is_empty(), "{:?}", fleet.open_pulls());
    assert_eq!(
        outcome(&run, "t01")["waiting"],
        "held by alice: incident 4711"
    );
    let status = fleet.run(&["status"]).ok().stdout;
    assert!(
        status.contains(
            "wave canary  stable 0.63.0: 0 of 2 run it, 0 offered, 0 waiting, 2 held; held by alice: incident 4711"
        ),
        "{status}"
    );
    assert!(
        status.contains(
            "t10: wave everyone, stays until it may take 0.63.0: held by alice: incident 4711"
        ),
        "{status}"
    );
    let status = json(&fleet.run(&["status", "--output", "json"]).ok());
    let hold = &status["waves"][0]["holds"][0];
    assert_eq!(
        (&hold["by"], &hold["reason"], &hold["scope"]),
        (
            &Value::from("alice"),
            &Value::from("incident 4711"),
            &Value::from("all")
        ),
        "{status}"
    );
    assert_eq!(status["waves"][2]["held"], 3, "{status}");

    // Released: the next cycle opens the first wave's.
    fleet.run(&["release-hold", "--all", "--by", "alice"]).ok();
    fleet.reconcile();
    assert_eq!(fleet.open_pulls(), set(&["t01", "t02"]));

    // Held again once the first wave merged: the second wave, which would
    // open next, does not, even after the soak.
    fleet.merge(&envs(1..=2));
    let merged = Instant::now();
    fleet
        .run(&["hold", "--all", "--reason", "incident 4712", "--by", "bob"])
        .ok();
    std::thread::sleep(Duration::from_secs(SOAK_SECS + 1).saturating_sub(merged.elapsed()));
    let run = json(&fleet.reconcile());
    assert!(fleet.open_pulls().is_empty(), "{:?}", fleet.open_pulls());
    assert_eq!(
        outcome(&run, "t05")["waiting"],
        "held by bob: incident 4712"
    );

    fleet.run(&["release-hold", "--all", "--by", "bob"]).ok();
    fleet.reconcile();
    assert_eq!(fleet.open_pulls(), names(&envs(3..=9)));
}

#[test]
fn a_held_environments_pull_request_is_not_pushed_to_and_says_who_held_it_and_why() {
    let fleet = Fleet::new();
    fleet.publish("0.63.0");
    fleet.reconcile();
    assert_eq!(fleet.open_pulls(), set(&["t01", "t02"]));
    let before = head(&fleet, "t01");
    fleet
        .run(&[
            "hold",
            "--env",
            "t01",
            "--reason",
            "incident 4711 *sev1*",
            "--by",
            "alice",
        ])
        .ok();

    // An override changes while it is held: its branch is not pushed to;
    // its description says who held it and why (escaped), above the rest.
    let values = fleet.remote.read_main("environments/t01/values.yaml");
    fleet.remote.commit_to_main(
        "environments/t01/values.yaml",
        &values.replace("sessionLengthHours: 168", "sessionLengthHours: 72"),
        "Shorter sessions for t01",
    );
    let run = json(&fleet.reconcile());
    assert_eq!(head(&fleet, "t01"), before);
    let pull = fleet.pull("t01", "open");
    let body = pull["body"].as_str().unwrap();
    assert!(
        body.starts_with("<!-- hydrant:held -->\n> **Held** (environment t01) by alice since ")
            && body.contains(": incident 4711 \\*sev1\\*\n"),
        "{body}"
    );
    assert!(
        body.contains("| Wave | `canary` (the first wave) |"),
        "{body}"
    );
    let t01 = outcome(&run, "t01");
    assert_eq!(t01["action"], "updated", "{t01}");
    assert_eq!(
        t01["waiting"], "held by alice: incident 4711 *sev1*",
        "{t01}"
    );
    // t02 is not held: its pull request is as it was.
    assert!(
        !fleet.pull("t02", "open")["body"]
            .as_str()
            .unwrap()
            .contains("hydrant:held")
    );

    // Said once: the next cycle writes nothing.
    let run = json(&fleet.reconcile());
    assert_eq!(outcome(&run, "t01")["action"], "unchanged");
    assert_eq!(fleet.pull("t01", "open")["body"], pull["body"]);
    assert_eq!(head(&fleet, "t01"), before);

    // Released: the pull request is brought up to date (the override at
    // 0.63.0), and the note is gone.
    fleet
        .run(&["release-hold", "--env", "t01", "--by", "alice"])
        .ok();
    fleet.reconcile();
    assert_ne!(head(&fleet, "t01"), before);
    let pull = fleet.pull("t01", "open");
    let body = pull["body"].as_str().unwrap();
    assert!(!body.contains("hydrant:held"), "{body}");
    assert!(!body.contains("incident 4711"), "{body}");
    assert_eq!(fleet.version_on("hydrant/t01", "t01"), "0.63.0");
    let rendered = git(
        &fleet.remote.bare(),
        &["grep", "-c", "72", "hydrant/t01", "--", "rendered/t01"],
    );
    assert!(!rendered.trim().is_empty(), "{rendered}");
}

#[test]
fn the_daemon_holds_through_its_api_with_the_token_and_nothing_depends_on_its_memory() {
    let fleet = Fleet::new();
    fleet.publish("0.63.0");
    let bearer = |t: &str| vec![("Authorization", format!("Bearer {t}"))];
    let ok_cycles = |port: u16| metric(port, "hydrant_cycles_total{outcome=\"ok\"}");
    let long = Duration::from_secs(120);

    // The first daemon opens the first wave's pull requests, and refuses
    // holds without the token or on a wave that does not exist.
    let first = fleet.daemon("1s", TOKEN);
    wait_for(long, "the first wave's pull requests", || {
        fleet.open_pulls() == set(&["t01", "t02"])
    });
    let tip = fleet.remote.branch("main").unwrap();
    let hold = r#"{"all": true, "reason": "incident 4711", "by": "alice"}"#;
    for headers in [vec![], bearer("wrong")] {
        let (status, text) = http(first.port, "POST", "/api/v1/holds", &headers, hold).unwrap();
        assert_eq!(status, 401, "{text}");
    }
    let (status, text) = http(
        first.port,
        "POST",
        "/api/v1/holds",
        &bearer(TOKEN),
        r#"{"wave": "erly", "reason": "x", "by": "a"}"#,
    )
    .unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("`erly` is not a wave") && text.contains("`canary`, `early`, `everyone`"),
        "{text}"
    );
    assert_eq!(fleet.remote.branch("main").unwrap(), tip);
    assert_eq!(first.stop(), 0);

    // Merged by hand while no daemon runs; a new daemon with the same flags
    // opens the second wave after the soak, and not the third.
    fleet.merge(&envs(1..=2));
    let second = fleet.daemon("1s", TOKEN);
    wait_for(long, "the second wave's pull requests", || {
        fleet.open_pulls() == names(&envs(3..=9))
    });
    let cycles = ok_cycles(second.port);
    wait_for(long, "two more cycles", || {
        ok_cycles(second.port) >= cycles + 2.0
    });
    assert_eq!(fleet.open_pulls(), names(&envs(3..=9)));

    // A hold through the API stops the third wave; it outlives the daemon.
    let (status, text) = http(second.port, "POST", "/api/v1/holds", &bearer(TOKEN), hold).unwrap();
    assert_eq!(status, 201, "{text}");
    fleet.merge(&envs(3..=9));
    let merged = Instant::now();
    std::thread::sleep(Duration::from_secs(SOAK_SECS + 1).saturating_sub(merged.elapsed()));
    let cycles = ok_cycles(second.port);
    wait_for(long, "two cycles after the soak", || {
        ok_cycles(second.port) >= cycles + 2.0
    });
    assert!(fleet.open_pulls().is_empty(), "{:?}", fleet.open_pulls());
    assert_eq!(second.stop(), 0);

    let third = fleet.daemon("1s", TOKEN);
    wait_for(long, "two cycles of the third daemon", || {
        ok_cycles(third.port) >= 2.0
    });
    assert!(fleet.open_pulls().is_empty(), "{:?}", fleet.open_pulls());
    let (status, _) = http(third.port, "DELETE", "/api/v1/holds/all", &[], "").unwrap();
    assert_eq!(status, 401);
    let (status, text) = http(
        third.port,
        "DELETE",
        "/api/v1/holds/all?by=alice",
        &bearer(TOKEN),
        "",
    )
    .unwrap();
    assert_eq!(status, 200, "{text}");
    wait_for(long, "the third wave's pull requests", || {
        fleet.open_pulls() == names(&envs(10..=12))
    });
    assert_eq!(third.stop(), 0);
    for env in tenants().iter().take(9) {
        assert_eq!(fleet.version_on("main", env), "0.63.0", "{env}");
    }
}
