//! What health gates mean for a rollout: which checks a cycle makes, when a
//! wave may move on, when a release's rollout halts, and which environments
//! go back to the release they ran before.
//!
//! Pure: the caller sends the checks ([`crate::gates`]), keeps the
//! [`GateBook`] across its cycles, commits the halt to `holds.yaml` and
//! finds each rolled-back environment's previous release in git.
//!
//! The rules, per environment of a wave with gates that runs its channel's
//! target V:
//! - each of the wave's gates is checked at every cycle from its merge of V
//!   until the wave's soak has ended and every gate answered Healthy;
//! - the next wave takes V only when every gate of the nearest earlier wave
//!   answered Healthy for each of its environments at the latest check
//!   ("not yet" is a wait, with the reason);
//! - after `failAfter` definite failures in a row the gate has failed: the
//!   rollout of V halts (a hold on every environment, by `hydrant`), and with
//!   `onFailure: rollback` V is skipped as well;
//! - an environment of an `onFailure: rollback` wave that runs a skipped
//!   release goes back to the release it ran before (a pull request), so the
//!   rollback follows from `holds.yaml` and git after a restart too.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{OnFailure, Rollout, Wave};
use super::gate::{GateState, GateTrack, Verdict as Answer};
use super::holds::{Hold, MAX_REASON, Scope};
use super::{Decision, State, Verdict};

/// Who sets an automatic hold.
pub const BY: &str = "hydrant";

/// One check to send: gate `gate` for environment `env`, which runs `version`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Check {
    pub env: String,
    pub gate: String,
    pub version: String,
}

/// The answers of every gate for every environment, kept across a daemon's
/// cycles (a restart starts afresh: the gates are asked again).
#[derive(Debug, Clone, Default)]
pub struct GateBook {
    /// (environment, gate) → its answers about the release it runs.
    tracks: BTreeMap<(String, String), GateTrack>,
    /// (channel, version) whose halt was committed.
    halted: BTreeSet<(String, String)>,
    /// Gate → definite failures answered since the start.
    failures: BTreeMap<String, u64>,
}

impl GateBook {
    /// Records one answer; says where the gate stands for the environment.
    pub fn record(&mut self, check: &Check, answer: Answer, fail_after: u32) -> GateState {
        if matches!(answer, Answer::Unhealthy(_)) {
            *self.failures.entry(check.gate.clone()).or_default() += 1;
        }
        self.tracks
            .entry((check.env.clone(), check.gate.clone()))
            .or_default()
            .record(&check.version, answer, fail_after)
    }

    /// The answers of `gate` for `env` about `version`, if any.
    pub fn track(&self, env: &str, gate: &str, version: &str) -> Option<&GateTrack> {
        self.tracks
            .get(&(env.to_string(), gate.to_string()))
            .filter(|t| t.version == version)
    }

    /// Records that the halt of `version` on `channel` is committed.
    pub fn mark_halted(&mut self, channel: &str, version: &str) {
        self.halted
            .insert((channel.to_string(), version.to_string()));
    }

    /// The (channel, version) pairs whose rollout this process halted.
    pub fn halted(&self) -> &BTreeSet<(String, String)> {
        &self.halted
    }

    /// Definite failures per gate since the start.
    pub fn failures(&self) -> &BTreeMap<String, u64> {
        &self.failures
    }
}

/// The wave a verdict names, with its gates.
fn wave_of<'r>(rollout: &'r Rollout, v: &Verdict) -> Option<&'r Wave> {
    v.wave.as_deref().and_then(|w| rollout.wave(w))
}

/// The release `v` runs when it is its channel's target.
fn runs_target(v: &Verdict) -> Option<&str> {
    match (&v.current, &v.target) {
        (Some(c), Some(t)) if c == t && v.state == State::Current => Some(c),
        _ => None,
    }
}

/// Where `gate` stands for `env` running `version`.
fn state(rollout: &Rollout, book: &GateBook, env: &str, gate: &str, version: &str) -> GateState {
    let fail_after = rollout
        .gate(gate)
        .map_or(super::gate::DEFAULT_FAIL_AFTER, |g| g.fail_after);
    book.track(env, gate, version)
        .map_or(GateState::Pending("not checked yet".to_string()), |t| {
            t.state(fail_after)
        })
}

/// The checks of this cycle: each gate of each environment that runs its
/// channel's target, while its wave soaks or has not yet taken the target
/// whole, and until every gate answered Healthy; never a gate that has
/// failed for that release.
pub fn due(rollout: &Rollout, decision: &Decision, book: &GateBook) -> Vec<Check> {
    let mut out = Vec::new();
    for v in decision.verdicts.values() {
        let (Some(wave), Some(version)) = (wave_of(rollout, v), runs_target(v)) else {
            continue;
        };
        if wave.gates.is_empty() {
            continue;
        }
        let in_window = decision
            .waves
            .iter()
            .find(|s| s.wave == wave.name && s.channel == v.channel)
            .is_none_or(|s| {
                s.soak_remaining_secs.is_some() || s.running + s.pinned < s.environments
            });
        let states: Vec<GateState> = wave
            .gates
            .iter()
            .map(|g| state(rollout, book, &v.env, g, version))
            .collect();
        let all_passing = states.iter().all(|s| *s == GateState::Passing);
        if !in_window && all_passing {
            continue;
        }
        for (gate, st) in wave.gates.iter().zip(&states) {
            if matches!(st, GateState::Failed(_)) {
                continue;
            }
            out.push(Check {
                env: v.env.clone(),
                gate: gate.clone(),
                version: version.to_string(),
            });
        }
    }
    out
}

/// A gate that has failed for an environment running `version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub env: String,
    pub channel: String,
    pub version: String,
    pub gate: String,
    /// The answer, and how many times in a row.
    pub why: String,
    pub on_failure: OnFailure,
}

impl Failure {
    /// `gate `argocd-healthy` failed for canary-1 on 1.1.0: …`, one line.
    pub fn describe(&self) -> String {
        format!(
            "gate `{}` failed for {} on {}: {}",
            self.gate, self.env, self.version, self.why
        )
    }
}

/// The failed gates of environments running a release whose halt is not
/// committed yet.
pub fn failures(rollout: &Rollout, decision: &Decision, book: &GateBook) -> Vec<Failure> {
    let mut out = Vec::new();
    for v in decision.verdicts.values() {
        let (Some(wave), Some(version)) = (wave_of(rollout, v), v.current.as_deref()) else {
            continue;
        };
        if v.state == State::Pinned
            || book
                .halted
                .contains(&(v.channel.clone(), version.to_string()))
        {
            continue;
        }
        for gate in &wave.gates {
            if let GateState::Failed(why) = state(rollout, book, &v.env, gate, version) {
                out.push(Failure {
                    env: v.env.clone(),
                    channel: v.channel.clone(),
                    version: version.to_string(),
                    gate: gate.clone(),
                    why,
                    on_failure: wave.on_failure,
                });
            }
        }
    }
    out
}

/// What a halt writes to `holds.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Halt {
    /// A hold on every environment, by [`BY`], naming the gate, the
    /// environment, the release and the answer.
    pub hold: Hold,
    /// The releases to skip (those of `onFailure: rollback` waves).
    pub skip: Vec<String>,
    /// The (channel, version) pairs halted.
    pub halted: Vec<(String, String)>,
}

/// The halt the failures call for; `None` without failures.
pub fn halt(failures: &[Failure]) -> Option<Halt> {
    let first = failures.first()?;
    let reason = reason_text(&first.describe());
    let hold = Hold::new(Scope::All, &reason, BY, None)
        .or_else(|_| {
            let plain = format!(
                "gate `{}` failed for {} on {}",
                first.gate, first.env, first.version
            );
            Hold::new(Scope::All, &reason_text(&plain), BY, None)
        })
        .or_else(|_| Hold::new(Scope::All, "a health gate failed", BY, None))
        .ok()?;
    let mut skip: Vec<String> = failures
        .iter()
        .filter(|f| f.on_failure == OnFailure::Rollback)
        .map(|f| f.version.clone())
        .collect();
    skip.sort();
    skip.dedup();
    let mut halted: Vec<(String, String)> = failures
        .iter()
        .map(|f| (f.channel.clone(), f.version.clone()))
        .collect();
    halted.sort();
    halted.dedup();
    Some(Halt { hold, skip, halted })
}

/// Text from a gate's answer made fit for a hold's reason: one line, no
/// `<` or `>`, at most [`MAX_REASON`] characters.
fn reason_text(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_control() || c == '<' || c == '>' {
                ' '
            } else {
                c
            }
        })
        .collect();
    if clean.chars().count() <= MAX_REASON {
        return clean;
    }
    let mut cut: String = clean.chars().take(MAX_REASON - 1).collect();
    cut.push('…');
    cut
}

/// The environments to take back to their previous release, each with the
/// release it runs: those of an `onFailure: rollback` wave that run a
/// skipped release and are not offered a newer one.
pub fn rollbacks(rollout: &Rollout, decision: &Decision) -> Vec<(String, String)> {
    decision
        .verdicts
        .values()
        .filter(|v| !matches!(v.state, State::Offered | State::Pinned | State::Unknown))
        .filter(|v| wave_of(rollout, v).is_some_and(|w| w.on_failure == OnFailure::Rollback))
        .filter_map(|v| {
            let current = v.current.as_deref()?;
            v.skipped
                .iter()
                .any(|s| s == current)
                .then(|| (v.env.clone(), current.to_string()))
        })
        .collect()
}

/// Applies the gates to a decision: an environment offered the target
/// waits while a gate of the nearest earlier wave has not answered Healthy
/// for each of that wave's environments running it; an environment in
/// `previous` (from [`rollbacks`], with the release it ran before) goes
/// back to it.
pub fn apply(
    decision: &mut Decision,
    rollout: &Rollout,
    book: &GateBook,
    previous: &BTreeMap<String, String>,
) {
    wait_for_gates(decision, rollout, book);
    roll_back(decision, rollout, book, previous);
}

/// Makes an environment offered the target wait while a gate of the
/// nearest earlier wave has not answered Healthy for each of that wave's
/// environments running it.
pub fn wait_for_gates(decision: &mut Decision, rollout: &Rollout, book: &GateBook) {
    let order: BTreeMap<&str, usize> = rollout
        .waves
        .iter()
        .enumerate()
        .map(|(i, w)| (w.name.as_str(), i))
        .collect();
    let mut waits: Vec<(String, String)> = Vec::new();
    for v in decision.verdicts.values() {
        if v.state != State::Offered {
            continue;
        }
        let (Some(target), Some(&own)) = (
            v.target.as_deref(),
            v.wave.as_deref().and_then(|w| order.get(w)),
        ) else {
            continue;
        };
        let channel_members = |w: &Wave| -> Vec<&Verdict> {
            decision
                .verdicts
                .values()
                .filter(|e| e.wave.as_deref() == Some(w.name.as_str()))
                .filter(|e| e.channel == v.channel && e.state != State::Pinned)
                .collect()
        };
        let Some(earlier) = rollout.waves[..own]
            .iter()
            .rev()
            .find(|w| !channel_members(w).is_empty())
        else {
            continue;
        };
        let why = channel_members(earlier)
            .into_iter()
            .filter(|e| e.current.as_deref() == Some(target))
            .find_map(|e| {
                earlier
                    .gates
                    .iter()
                    .find_map(|g| match state(rollout, book, &e.env, g, target) {
                        GateState::Passing => None,
                        GateState::Pending(why) => Some(format!(
                            "gate `{g}` has not answered Healthy for {}: {why}",
                            e.env
                        )),
                        GateState::Failed(why) => {
                            Some(format!("gate `{g}` failed for {}: {why}", e.env))
                        }
                    })
            });
        if let Some(why) = why {
            waits.push((v.env.clone(), why));
        }
    }
    for (env, why) in waits {
        let Some(v) = decision.verdicts.get_mut(&env) else {
            continue;
        };
        v.state = State::Waiting;
        v.release = v.current.clone().or(v.release.take());
        v.reason = Some(why);
        if let Some(s) = decision
            .waves
            .iter_mut()
            .find(|s| Some(&s.wave) == v.wave.as_ref() && s.channel == v.channel)
        {
            s.offered = s.offered.saturating_sub(1);
            s.waiting += 1;
        }
    }
}

/// Sends each environment of `previous` back to the release given there
/// (the one it ran before the skipped release it runs).
pub fn roll_back(
    decision: &mut Decision,
    rollout: &Rollout,
    book: &GateBook,
    previous: &BTreeMap<String, String>,
) {
    for (env, back_to) in previous {
        let Some(v) = decision.verdicts.get_mut(env) else {
            continue;
        };
        let Some(current) = v.current.clone() else {
            continue;
        };
        let failed = v
            .wave
            .as_deref()
            .and_then(|w| rollout.wave(w))
            .and_then(|w| {
                w.gates
                    .iter()
                    .find_map(|g| match state(rollout, book, env, g, &current) {
                        GateState::Failed(why) => Some(format!("gate `{g}` failed: {why}")),
                        _ => None,
                    })
            });
        let because = failed.unwrap_or_else(|| format!("{current} is skipped"));
        v.state = State::Rollback;
        v.release = Some(back_to.clone());
        v.reason = Some(format!(
            "rolling back from {current} to {back_to}: {because} (`onFailure: rollback` of wave `{}`)",
            v.wave.as_deref().unwrap_or("")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::holds::Holds;
    use crate::rollout::{Environment, Input, decide};

    const CONFIG: &str = "rollout:\n  gates:\n    - name: up\n      http: {url: \"https://h.example.com/{env}\", expect: {path: status, equals: ok}}\n  waves:\n    - {name: canary, environments: [c1], soak: 1h, gates: [up], onFailure: rollback}\n    - {name: rest, environments: [\"r*\"]}\n";

    fn rollout() -> Rollout {
        let fleet: Vec<(String, BTreeMap<String, String>)> = ["c1", "r1", "r2"]
            .iter()
            .map(|n| (n.to_string(), BTreeMap::new()))
            .collect();
        crate::rollout::config::parse("hydrant.yaml", CONFIG, &fleet)
            .unwrap()
            .unwrap()
    }

    fn env(name: &str, current: &str, merged: Option<&str>) -> Environment {
        Environment {
            name: name.into(),
            channel: "stable".into(),
            current: Some(current.into()),
            merged_at: merged.map(|m| m.parse().unwrap()),
            ..Environment::default()
        }
    }

    /// The canary runs 1.1.0 since 10:00; the others run 1.0.0.
    fn decision(rollout: &Rollout, now: &str, holds: &Holds) -> Decision {
        let envs = vec![
            env("c1", "1.1.0", Some("2026-12-01T10:00:00Z")),
            env("r1", "1.0.0", None),
            env("r2", "1.0.0", None),
        ];
        let latest = BTreeMap::from([("stable".to_string(), "1.1.0".to_string())]);
        decide(&Input {
            rollout: Some(rollout),
            environments: &envs,
            latest: &latest,
            holds,
            now: now.parse().unwrap(),
        })
    }

    fn answer(book: &mut GateBook, a: Answer) -> GateState {
        let check = Check {
            env: "c1".into(),
            gate: "up".into(),
            version: "1.1.0".into(),
        };
        book.record(&check, a, 3)
    }

    #[test]
    fn the_next_wave_moves_on_only_after_the_soak_and_a_healthy_answer() {
        let r = rollout();
        let mut book = GateBook::default();
        // Soaking: checked, and the next wave waits for the soak.
        let d = decision(&r, "2026-12-01T10:30:00Z", &Holds::default());
        assert_eq!(due(&r, &d, &book).len(), 1);
        // Soaked, never answered: checked, and the next wave waits for it.
        let mut d = decision(&r, "2026-12-01T12:00:00Z", &Holds::default());
        assert_eq!(d.verdicts["r1"].state, State::Offered);
        assert_eq!(due(&r, &d, &book).len(), 1);
        apply(&mut d, &r, &book, &BTreeMap::new());
        assert_eq!(d.verdicts["r1"].state, State::Waiting);
        assert_eq!(
            d.verdicts["r1"].reason.as_deref(),
            Some("gate `up` has not answered Healthy for c1: not checked yet")
        );
        assert_eq!(d.verdicts["r1"].release.as_deref(), Some("1.0.0"));
        // Unreachable: still waiting, with the reason, not failed.
        answer(&mut book, Answer::Unknown("cannot connect".into()));
        let mut d = decision(&r, "2026-12-01T12:00:00Z", &Holds::default());
        apply(&mut d, &r, &book, &BTreeMap::new());
        assert_eq!(
            d.verdicts["r1"].reason.as_deref(),
            Some("gate `up` has not answered Healthy for c1: not yet: cannot connect")
        );
        assert!(failures(&r, &d, &book).is_empty());
        // Healthy: the next wave takes it, and the gate is asked no more.
        answer(&mut book, Answer::Healthy);
        let mut d = decision(&r, "2026-12-01T12:00:00Z", &Holds::default());
        apply(&mut d, &r, &book, &BTreeMap::new());
        assert_eq!(d.verdicts["r1"].state, State::Offered);
        assert!(due(&r, &d, &book).is_empty());
    }

    #[test]
    fn three_definite_failures_halt_the_rollout_and_skip_the_release_of_a_rollback_wave() {
        let r = rollout();
        let mut book = GateBook::default();
        let d = decision(&r, "2026-12-01T10:30:00Z", &Holds::default());
        for _ in 0..2 {
            answer(&mut book, Answer::Unhealthy("`status` is `down`".into()));
        }
        assert!(failures(&r, &d, &book).is_empty());
        answer(&mut book, Answer::Unhealthy("`status` is `down`".into()));
        let failed = failures(&r, &d, &book);
        assert_eq!(failed.len(), 1);
        let h = halt(&failed).unwrap();
        assert_eq!(h.hold.scope, Scope::All);
        assert_eq!(h.hold.by, "hydrant");
        assert_eq!(
            h.hold.reason,
            "gate `up` failed for c1 on 1.1.0: `status` is `down` (3 failures in a row)"
        );
        assert_eq!(h.skip, vec!["1.1.0".to_string()]);
        // A failed gate is asked no more; once halted, it is not halted again.
        assert!(due(&r, &d, &book).is_empty());
        book.mark_halted("stable", "1.1.0");
        assert!(failures(&r, &d, &book).is_empty());
        assert_eq!(book.failures()["up"], 3);

        // With the halt on `main`, the canary goes back to what it ran.
        let mut holds = Holds::default();
        holds.hold(h.hold.clone());
        holds.skip = h.skip.clone();
        let mut d = decision(&r, "2026-12-01T12:00:00Z", &holds);
        assert_eq!(
            rollbacks(&r, &d),
            vec![("c1".to_string(), "1.1.0".to_string())]
        );
        let previous = BTreeMap::from([("c1".to_string(), "1.0.0".to_string())]);
        apply(&mut d, &r, &book, &previous);
        let c1 = &d.verdicts["c1"];
        assert_eq!(c1.state, State::Rollback);
        assert_eq!(c1.release.as_deref(), Some("1.0.0"));
        assert!(
            c1.reason.as_deref().unwrap().starts_with(
                "rolling back from 1.1.0 to 1.0.0: gate `up` failed: `status` is `down`"
            ),
            "{c1:?}"
        );
        // The others stay where they are.
        assert_eq!(d.verdicts["r1"].state, State::Current);
    }

    #[test]
    fn a_halt_wave_skips_nothing_and_a_hostile_answer_makes_a_valid_reason() {
        let mut f = Failure {
            env: "c1".into(),
            channel: "stable".into(),
            version: "1.1.0".into(),
            gate: "up".into(),
            why: format!("<script>\n{}", "x".repeat(500)),
            on_failure: OnFailure::Halt,
        };
        let h = halt(std::slice::from_ref(&f)).unwrap();
        assert!(h.skip.is_empty());
        assert!(h.hold.reason.chars().count() <= MAX_REASON);
        assert!(!h.hold.reason.contains(['<', '>', '\n']));
        f.on_failure = OnFailure::Rollback;
        assert_eq!(halt(&[f]).unwrap().skip, vec!["1.1.0".to_string()]);
        assert_eq!(halt(&[]), None);
    }
}
