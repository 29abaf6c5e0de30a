use super::*;

fn t(s: &str) -> jiff::Timestamp {
    s.parse().expect("a time")
}

/// Three waves: `canary` (c1, c2; soak 1h), `early` (e1, e2; soak 1h), and
/// `everyone` (the rest), which starts at noon.
fn rollout() -> Rollout {
    let wave = |name: &str, envs: &[&str], soak: i64, not_before: Option<&str>| Wave {
        name: name.into(),
        environments: envs.iter().map(|s| s.to_string()).collect(),
        labels: BTreeMap::new(),
        soak_secs: soak,
        not_before: not_before.map(t),
        group: false,
        gates: Vec::new(),
        on_failure: Default::default(),
    };
    Rollout {
        waves: vec![
            wave("canary", &["c?"], 3_600, None),
            wave("early", &["e*"], 3_600, None),
            wave("everyone", &["x*"], 0, Some("2026-12-01T12:00:00Z")),
        ],
        gates: Vec::new(),
        freeze: Vec::new(),
    }
}

fn env(name: &str, current: Option<&str>, merged: Option<&str>) -> Environment {
    Environment {
        name: name.into(),
        channel: "stable".into(),
        current: current.map(String::from),
        merged_at: merged.map(t),
        ..Environment::default()
    }
}

fn hold(scope: Scope) -> Hold {
    Hold {
        scope,
        reason: "incident 4711".into(),
        by: "alice".into(),
        since: None,
    }
}

/// A fleet at 0.62 with the channel at 0.63.
fn fleet() -> Vec<Environment> {
    vec![
        env("c1", Some("0.62.0"), None),
        env("c2", Some("0.62.0"), None),
        env("e1", Some("0.62.0"), None),
        env("e2", Some("0.62.0"), None),
        env("x1", Some("0.62.0"), None),
        env("z9", Some("0.62.0"), None),
    ]
}

/// The canary wave has merged 0.63.0, the last of it at 10:00.
fn canary_merged() -> Vec<Environment> {
    let mut f = fleet();
    f[0] = env("c1", Some("0.63.0"), Some("2026-12-01T09:00:00Z"));
    f[1] = env("c2", Some("0.63.0"), Some("2026-12-01T10:00:00Z"));
    f
}

/// Canary and early have merged 0.63.0.
fn early_merged() -> Vec<Environment> {
    let mut f = canary_merged();
    f[2] = env("e1", Some("0.63.0"), Some("2026-12-01T10:30:00Z"));
    f[3] = env("e2", Some("0.63.0"), Some("2026-12-01T10:40:00Z"));
    f
}

struct Case {
    name: &'static str,
    fleet: Vec<Environment>,
    latest: &'static str,
    holds: Holds,
    now: &'static str,
    env: &'static str,
    state: State,
    /// The release it renders at, when not the latest.
    release: Option<&'static str>,
    reason: &'static str,
}

fn case(name: &'static str, fleet: Vec<Environment>, env: &'static str, state: State) -> Case {
    Case {
        name,
        fleet,
        latest: "0.63.0",
        holds: Holds::default(),
        now: "2026-12-01T10:30:00Z",
        env,
        state,
        release: None,
        reason: "",
    }
}

fn cases() -> Vec<Case> {
    let pinned = {
        let mut f = fleet();
        f[0].pinned = Some("0.61.0".into());
        f[0].current = Some("0.61.0".into());
        f
    };
    let pinned_canary_and_one_merged = {
        let mut f = fleet();
        f[0].pinned = Some("0.61.0".into());
        f[1] = env("c2", Some("0.63.0"), Some("2026-12-01T08:00:00Z"));
        f
    };
    let with_new = {
        let mut f = fleet();
        f.push(env("xnew", None, None));
        f
    };
    let skip = |v: &str| Holds {
        skip: vec![v.to_string()],
        ..Holds::default()
    };
    vec![
        Case {
            reason: "",
            ..case(
                "the first wave takes the target at once",
                fleet(),
                "c1",
                State::Offered,
            )
        },
        Case {
            release: Some("0.62.0"),
            reason: "wave `early` waits for `canary`: 0 of 2 run 0.63.0",
            ..case(
                "the second wave waits for the first",
                fleet(),
                "e1",
                State::Waiting,
            )
        },
        Case {
            release: Some("0.62.0"),
            reason: "soaking until 2026-12-01 11:00:00 UTC (wave `canary`)",
            ..case(
                "the soak has not elapsed",
                canary_merged(),
                "e1",
                State::Waiting,
            )
        },
        Case {
            now: "2026-12-01T11:00:01Z",
            ..case(
                "the second wave goes after the soak",
                canary_merged(),
                "e2",
                State::Offered,
            )
        },
        Case {
            now: "2026-12-01T11:40:00Z",
            release: Some("0.62.0"),
            reason: "wave `everyone` starts at 2026-12-01 12:00:00 UTC",
            ..case(
                "notBefore has not passed",
                early_merged(),
                "x1",
                State::Waiting,
            )
        },
        Case {
            now: "2026-12-01T12:00:00Z",
            ..case(
                "an environment in no wave is in the last",
                early_merged(),
                "z9",
                State::Offered,
            )
        },
        Case {
            ..case("a pin wins over waves", pinned.clone(), "c1", State::Pinned)
        },
        Case {
            now: "2026-12-01T09:00:00Z",
            ..case(
                "a pinned environment in an earlier wave does not block",
                pinned_canary_and_one_merged,
                "e1",
                State::Offered,
            )
        },
        Case {
            holds: Holds {
                holds: vec![hold(Scope::Environment("c1".into()))],
                ..Holds::default()
            },
            release: Some("0.62.0"),
            reason: "held by alice: incident 4711",
            ..case("a hold on the environment", fleet(), "c1", State::Held)
        },
        Case {
            holds: Holds {
                holds: vec![hold(Scope::Wave("canary".into()))],
                ..Holds::default()
            },
            release: Some("0.62.0"),
            reason: "held by alice",
            ..case("a hold on its wave", fleet(), "c2", State::Held)
        },
        Case {
            holds: Holds {
                holds: vec![hold(Scope::All)],
                ..Holds::default()
            },
            now: "2026-12-01T11:30:00Z",
            release: Some("0.62.0"),
            reason: "held by alice",
            ..case("a hold on everything", canary_merged(), "e1", State::Held)
        },
        Case {
            holds: Holds {
                holds: vec![hold(Scope::Environment("c1".into()))],
                ..Holds::default()
            },
            now: "2026-12-01T09:00:00Z",
            ..case(
                "an individually held environment does not block the next wave",
                {
                    let mut f = fleet();
                    f[1] = env("c2", Some("0.63.0"), Some("2026-12-01T07:00:00Z"));
                    f
                },
                "e1",
                State::Offered,
            )
        },
        Case {
            latest: "0.64.0",
            holds: skip("0.64.0"),
            now: "2026-12-01T11:30:00Z",
            release: Some("0.63.0"),
            ..case(
                "a skipped latest falls back to the newest release run",
                canary_merged(),
                "e1",
                State::Offered,
            )
        },
        Case {
            latest: "0.64.0",
            holds: skip("0.64.0"),
            release: Some("0.63.0"),
            ..case(
                "a skipped latest offers no environment it",
                canary_merged(),
                "c1",
                State::Current,
            )
        },
        Case {
            latest: "0.64.0",
            release: Some("0.62.0"),
            reason: "wave `early` waits for `canary`: 0 of 2 run 0.64.0",
            now: "2026-12-01T11:30:00Z",
            ..case(
                "a new release mid-rollout restarts from the first wave",
                canary_merged(),
                "e1",
                State::Waiting,
            )
        },
        Case {
            latest: "0.64.0",
            ..case(
                "a new release mid-rollout is offered to the first wave",
                canary_merged(),
                "c1",
                State::Offered,
            )
        },
        Case {
            now: "2026-12-01T11:30:00Z",
            release: Some("0.62.0"),
            reason: "waits for `canary`",
            ..case(
                "a new environment waits at the release its channel runs",
                with_new,
                "xnew",
                State::Waiting,
            )
        },
        Case {
            ..case(
                "a new environment of the first wave takes the target",
                {
                    let mut f = fleet();
                    f[0].current = None;
                    f
                },
                "c1",
                State::Offered,
            )
        },
    ]
}

#[test]
fn each_rollout_situation_gets_its_verdict_and_reason() {
    let rollout = rollout();
    let cases = cases();
    assert!(cases.len() >= 12);
    for c in cases {
        let latest = BTreeMap::from([("stable".to_string(), c.latest.to_string())]);
        let input = Input {
            rollout: Some(&rollout),
            environments: &c.fleet,
            latest: &latest,
            holds: &c.holds,
            now: t(c.now),
        };
        let decision = decide(&input);
        let v = decision.verdict(c.env).expect("a verdict");
        assert_eq!(v.state, c.state, "{}: {v:?}", c.name);
        assert_eq!(v.release.as_deref(), c.release, "{}: {v:?}", c.name);
        let reason = v.reason.clone().unwrap_or_default();
        assert!(
            reason.contains(c.reason),
            "{}: the reason `{reason}` does not say `{}`",
            c.name,
            c.reason
        );
    }
}

#[test]
fn without_a_rollout_block_every_environment_takes_the_latest_at_once() {
    let latest = BTreeMap::from([("stable".to_string(), "0.63.0".to_string())]);
    let fleet = fleet();
    let holds = Holds::default();
    let decision = decide(&Input {
        rollout: None,
        environments: &fleet,
        latest: &latest,
        holds: &holds,
        now: t("2026-12-01T10:00:00Z"),
    });
    assert!(decision.waves.is_empty());
    for v in decision.verdicts.values() {
        assert_eq!(v.state, State::Offered, "{v:?}");
        assert_eq!(v.wave, None);
        assert_eq!(v.release, None);
    }
}

/// A one-off freeze window from 09:00 to 18:00 on 1 December.
fn december_freeze(overrides: bool) -> freeze::Freeze {
    freeze::FreezeSpec {
        from: Some("2026-12-01T09:00:00Z".into()),
        to: Some("2026-12-01T18:00:00Z".into()),
        reason: Some("release party".into()),
        overrides,
        ..freeze::FreezeSpec::default()
    }
    .validate()
    .expect("a freeze window")
}

#[test]
fn a_freeze_window_keeps_new_releases_back_until_it_ends() {
    let latest = BTreeMap::from([("stable".to_string(), "0.63.0".to_string())]);
    let fleet = fleet();
    let holds = Holds::default();
    // A block with freeze windows and no waves: one implicit wave.
    let only_freeze = Rollout {
        waves: Vec::new(),
        gates: Vec::new(),
        freeze: vec![december_freeze(false)],
    };
    let at = |now: &str| {
        decide(&Input {
            rollout: Some(&only_freeze),
            environments: &fleet,
            latest: &latest,
            holds: &holds,
            now: t(now),
        })
    };
    let frozen = at("2026-12-01T10:00:00Z");
    assert!(frozen.waves.is_empty());
    let f = frozen.freeze.clone().expect("the window applies");
    assert_eq!(
        f.message,
        "frozen until Tue 2026-12-01 18:00 UTC: release party"
    );
    assert_eq!(f.ends, "2026-12-01T18:00:00Z");
    assert_eq!(f.overrides, None, "override changes flow");
    for v in frozen.verdicts.values() {
        assert_eq!(v.state, State::Waiting, "{v:?}");
        assert_eq!(v.reason.as_deref(), Some(f.message.as_str()));
        assert_eq!(v.wave, None);
        // It stays where it is.
        assert_eq!(v.release.as_deref(), Some("0.62.0"));
    }
    let after = at("2026-12-01T18:00:00Z");
    assert_eq!(after.freeze, None);
    assert!(after.verdicts.values().all(|v| v.state == State::Offered));

    // Within waves, a reason of its own (an earlier wave) comes first.
    let mut waved = rollout();
    waved.freeze = vec![december_freeze(true)];
    let decision = decide(&Input {
        rollout: Some(&waved),
        environments: &fleet,
        latest: &latest,
        holds: &holds,
        now: t("2026-12-01T10:00:00Z"),
    });
    let f = decision.freeze.clone().expect("the window applies");
    assert_eq!(f.overrides.as_deref(), Some(f.message.as_str()));
    let reason = |env: &str| decision.verdict(env).and_then(|v| v.reason.clone());
    assert_eq!(reason("c1"), Some(f.message.clone()));
    assert!(reason("e1").is_some_and(|r| r.contains("waits for `canary`")));
}

#[test]
fn wave_summaries_count_each_state_and_the_soak_left() {
    let rollout = rollout();
    let latest = BTreeMap::from([("stable".to_string(), "0.63.0".to_string())]);
    let fleet = canary_merged();
    let holds = Holds {
        holds: vec![hold(Scope::Wave("early".into()))],
        ..Holds::default()
    };
    let decision = decide(&Input {
        rollout: Some(&rollout),
        environments: &fleet,
        latest: &latest,
        holds: &holds,
        now: t("2026-12-01T10:30:00Z"),
    });
    let canary = &decision.waves[0];
    assert_eq!(
        (canary.wave.as_str(), canary.environments, canary.running),
        ("canary", 2, 2)
    );
    assert_eq!(canary.soak_remaining_secs, Some(1_800));
    let early = &decision.waves[1];
    assert_eq!((early.held, early.waiting, early.offered), (2, 0, 0));
    assert_eq!(early.holds.len(), 1);
    let everyone = &decision.waves[2];
    assert_eq!((everyone.environments, everyone.waiting), (2, 2));
}

#[test]
fn only_environments_of_soaking_waves_that_run_the_target_need_their_merge_time() {
    let rollout = rollout();
    let latest = BTreeMap::from([("stable".to_string(), "0.63.0".to_string())]);
    let mut fleet = canary_merged();
    fleet[4].current = Some("0.63.0".into());
    let holds = Holds::default();
    let input = Input {
        rollout: Some(&rollout),
        environments: &fleet,
        latest: &latest,
        holds: &holds,
        now: t("2026-12-01T10:30:00Z"),
    };
    let wanted: Vec<String> = soaking(&input).into_iter().collect();
    assert_eq!(wanted, vec!["c1", "c2"]);
}

#[test]
fn releases_compare_by_semver() {
    assert!(older("0.9.0", "0.10.0"));
    assert!(!older("0.10.0", "0.9.0"));
    assert!(!older("1.0.0", "1.0.0"));
    assert_eq!(newest(["0.9.0", "0.10.0", "0.2.0"]), Some("0.10.0"));
}
