//! Rollouts: which release each environment may take now, and why not.
//!
//! Pure: waves, soak times, holds and skipped releases in, one [`Verdict`]
//! per environment out, with a summary per wave. No IO, no clock (the caller
//! passes the time), no git: the caller observes each environment's recorded
//! version and when it merged, and fetches the releases the verdicts name.
//!
//! The rule, per channel: the target is the channel's latest release unless
//! it is skipped (then the newest release not skipped that an environment of
//! the channel runs, never lower than what an environment already runs). An
//! environment older than the target takes it when every environment of the
//! earlier waves that follows the channel runs it, the nearest earlier wave
//! with such environments has soaked since its last merge, its own wave's
//! `notBefore` has passed and no hold covers it. Otherwise it stays on the
//! release it runs. A `release:` pin wins over waves. Without a `rollout:`
//! block every environment is in one wave: it takes the target at once.
//! While a freeze window (`rollout.freeze`) applies, no environment is
//! offered a new release: it waits, saying until when and why.

pub mod budget;
pub mod config;
pub mod freeze;
pub mod gate;
pub mod gating;
pub mod holds;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

pub use config::{Rollout, Wave};
use holds::{Hold, Holds, Scope};

/// What the decision needs to know of one environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Environment {
    pub name: String,
    pub channel: String,
    /// Its `release:` pin.
    pub pinned: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The version its `hydrant.metadata` on the base branch records.
    pub current: Option<String>,
    /// When `current` first showed on the base branch (the commit time of the
    /// first-parent commit that brought it), where the caller looked.
    pub merged_at: Option<jiff::Timestamp>,
}

/// Everything a decision is made from.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// `None`: no `rollout:` block, one implicit wave.
    pub rollout: Option<&'a Rollout>,
    /// Every environment of the repository (not only those reconciled now).
    pub environments: &'a [Environment],
    /// Each channel's latest release, where its fetch succeeded.
    pub latest: &'a BTreeMap<String, String>,
    pub holds: &'a Holds,
    pub now: jiff::Timestamp,
}

/// Where an environment stands in the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Pinned with `release:`: waves do not apply.
    Pinned,
    /// It runs the target (or newer).
    Current,
    /// It may take the target now.
    Offered,
    /// An earlier wave, a soak or `notBefore` keeps it where it is.
    Waiting,
    /// A hold keeps it where it is.
    Held,
    /// Its channel's latest release is not known (its fetch failed).
    Unknown,
    /// A health gate failed for the release it runs, now skipped: it goes
    /// back to the release it ran before (`onFailure: rollback`).
    Rollback,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Pinned => "pinned",
            State::Current => "current",
            State::Offered => "offered",
            State::Waiting => "waiting",
            State::Held => "held",
            State::Unknown => "unknown",
            State::Rollback => "rollback",
        })
    }
}

/// The rollout's word on one environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub env: String,
    /// Its wave; `None` without a `rollout:` block.
    pub wave: Option<String>,
    /// The waves before its own, in order (for the pull request's text).
    #[serde(skip)]
    pub earlier: Vec<String>,
    pub channel: String,
    pub current: Option<String>,
    /// The release its channel's rollout aims at.
    pub target: Option<String>,
    /// The release it renders at now, when that is neither its channel's
    /// latest nor its pin: the caller fetches this release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    pub state: State,
    /// Why it does not take the target, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// The releases never offered (`skip` in `holds.yaml`).
    #[serde(skip)]
    pub skipped: Vec<String>,
}

impl Verdict {
    /// Whether it may not take a new version now (waiting or held).
    pub fn stays(&self) -> bool {
        matches!(self.state, State::Waiting | State::Held)
    }

    /// Where it stands, as `plan`, `reconcile` and `status` show it.
    pub fn position(&self) -> Position {
        Position {
            wave: self.wave.clone(),
            target: (self.state != State::Pinned && self.target != self.current)
                .then(|| self.target.clone())
                .flatten(),
            waiting: self.stays().then(|| self.reason.clone()).flatten(),
        }
    }
}

/// Where one environment stands in its rollout: what `plan`, `reconcile`
/// and `status` show of its [`Verdict`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Position {
    /// Its rollout wave (only with a `rollout:` block).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wave: Option<String>,
    /// The release its channel's rollout aims at, when it does not run it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Why it does not take the target now (an earlier wave, a soak,
    /// `notBefore`, a hold, a skipped release).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

/// One wave's progress on one channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaveSummary {
    pub wave: String,
    pub channel: String,
    pub target: Option<String>,
    /// Its environments that follow the channel.
    pub environments: usize,
    /// How many run the target (merged).
    pub running: usize,
    /// How many may take it now (a pull request is or will be open).
    pub offered: usize,
    pub waiting: usize,
    pub held: usize,
    pub pinned: usize,
    /// Seconds until its soak ends, when all of it runs the target and the
    /// soak has not ended yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak_remaining_secs: Option<i64>,
    /// The holds on everything or on this wave.
    pub holds: Vec<Hold>,
}

/// The rollout's word on every environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Decision {
    pub verdicts: BTreeMap<String, Verdict>,
    /// Per wave and channel; empty without a `rollout:` block.
    pub waves: Vec<WaveSummary>,
    /// Releases never offered.
    pub skip: Vec<String>,
    /// The freeze window that applies now, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze: Option<Frozen>,
}

/// The freeze window that applies now, as `plan`, `status` and `/metrics`
/// show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Frozen {
    /// Its reason, or what the window is when it gives none.
    pub reason: String,
    /// When it ends (RFC 3339).
    pub ends: String,
    /// When it ends on its own wall clock (`Mon 2026-12-07 09:00 CET`).
    pub ends_local: String,
    /// `frozen until Mon 2026-12-07 09:00 CET: weekend`: why new versions wait.
    pub message: String,
    /// Why override and template changes wait too, while a window with
    /// `overrides: true` applies; `None`: they flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overrides: Option<String>,
}

/// The freeze that applies at `now`, if any.
pub fn frozen(freezes: &[freeze::Freeze], now: jiff::Timestamp) -> Option<Frozen> {
    let active = freeze::active(freezes, now)?;
    Some(Frozen {
        reason: active.reason.clone(),
        ends: active.ends.to_string(),
        ends_local: active.ends_shown(),
        message: active.message(),
        overrides: freeze::active_for_overrides(freezes, now).map(|o| o.message()),
    })
}

impl Decision {
    pub fn verdict(&self, env: &str) -> Option<&Verdict> {
        self.verdicts.get(env)
    }

    /// The release each environment renders at when that is not its
    /// channel's latest nor its pin.
    pub fn releases(&self) -> BTreeMap<String, String> {
        self.verdicts
            .values()
            .filter_map(|v| v.release.clone().map(|r| (v.env.clone(), r)))
            .collect()
    }
}

/// Whether release `a` is older than `b`: by semver where both parse (a
/// leading `v` ignored), else whenever they differ.
pub fn older(a: &str, b: &str) -> bool {
    let parse = |v: &str| semver::Version::parse(v.trim_start_matches('v')).ok();
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a < b,
        _ => a != b,
    }
}

/// The newest of some releases.
fn newest<'a>(versions: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    versions.into_iter().fold(None, |best, v| match best {
        Some(b) if !older(b, v) => Some(b),
        _ => Some(v),
    })
}

/// The index of an environment's wave: the first that selects it, else the
/// last; 0 without waves.
fn wave_index(rollout: Option<&Rollout>, env: &Environment) -> usize {
    let Some(r) = rollout else { return 0 };
    r.waves
        .iter()
        .position(|w| w.selects(&env.name, &env.labels))
        .unwrap_or(r.waves.len().saturating_sub(1))
}

/// Each channel's target: its latest release unless skipped, else the
/// newest release not skipped that its environments run.
pub fn targets(input: &Input<'_>) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for (channel, latest) in input.latest {
        let target = if !input.holds.skips(latest) {
            Some(latest.clone())
        } else {
            let known = input
                .environments
                .iter()
                .filter(|e| &e.channel == channel)
                .filter_map(|e| e.current.as_deref())
                .filter(|v| !input.holds.skips(v) && !older(latest, v));
            newest(known).map(String::from)
        };
        out.insert(channel.clone(), target);
    }
    out
}

/// The environments whose merge time the decision reads: those of a wave
/// with a soak (not the last wave, whose soak holds back no one) that run
/// their channel's target. The caller looks these up, and no others.
pub fn soaking(input: &Input<'_>) -> BTreeSet<String> {
    let Some(rollout) = input.rollout.filter(|r| !r.waves.is_empty()) else {
        return BTreeSet::new();
    };
    let targets = targets(input);
    input
        .environments
        .iter()
        .filter(|e| e.pinned.is_none())
        .filter(|e| {
            let i = wave_index(Some(rollout), e);
            i + 1 < rollout.waves.len() && rollout.waves[i].soak_secs > 0
        })
        .filter(|e| {
            matches!(
                (targets.get(&e.channel), &e.current),
                (Some(Some(t)), Some(c)) if c == t
            )
        })
        .map(|e| e.name.clone())
        .collect()
}

/// `2026-12-01 14:05 UTC`.
fn shown(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Decides, for every environment, the release it may take now and why not.
pub fn decide(input: &Input<'_>) -> Decision {
    let freeze = frozen(
        input.rollout.map_or(&[][..], |r| r.freeze.as_slice()),
        input.now,
    );
    // A block with freeze windows and no waves: one implicit wave.
    let input = &Input {
        rollout: input.rollout.filter(|r| !r.waves.is_empty()),
        ..*input
    };
    let targets = targets(input);
    let waves: Vec<(String, i64, Option<jiff::Timestamp>)> = match input.rollout {
        Some(r) => r
            .waves
            .iter()
            .map(|w| (w.name.clone(), w.soak_secs, w.not_before))
            .collect(),
        None => vec![(String::new(), 0, None)],
    };
    let index: BTreeMap<&str, usize> = input
        .environments
        .iter()
        .map(|e| (e.name.as_str(), wave_index(input.rollout, e)))
        .collect();
    let individually_held = |env: &str| {
        input
            .holds
            .holds
            .iter()
            .any(|h| matches!(&h.scope, Scope::Environment(e) if e == env))
    };
    // The environments of each wave that count for the waves after it.
    let counted = |wave: usize, channel: &str| -> Vec<&Environment> {
        input
            .environments
            .iter()
            .filter(|e| index[e.name.as_str()] == wave && e.channel == channel)
            .filter(|e| e.pinned.is_none() && !individually_held(&e.name))
            .collect()
    };
    let runs =
        |e: &Environment, target: &str| e.current.as_deref().is_some_and(|c| !older(c, target));
    let soak_end = |wave: usize, channel: &str, target: &str| -> Option<jiff::Timestamp> {
        let soak = waves[wave].1;
        let last = counted(wave, channel)
            .iter()
            .filter(|e| runs(e, target))
            .filter_map(|e| e.merged_at)
            .max()?;
        Some(
            last.checked_add(jiff::SignedDuration::from_secs(soak))
                .unwrap_or(last),
        )
    };
    let mut verdicts = BTreeMap::new();
    for env in input.environments {
        let i = index[env.name.as_str()];
        let mut v = Verdict {
            env: env.name.clone(),
            wave: input.rollout.map(|_| waves[i].0.clone()),
            earlier: match input.rollout {
                Some(_) => waves[..i].iter().map(|w| w.0.clone()).collect(),
                None => Vec::new(),
            },
            channel: env.channel.clone(),
            current: env.current.clone(),
            target: None,
            release: None,
            state: State::Current,
            reason: None,
            hold: None,
            skipped: input.holds.skip.clone(),
        };
        if let Some(pin) = &env.pinned {
            v.target = Some(pin.clone());
            v.state = State::Pinned;
            verdicts.insert(env.name.clone(), v);
            continue;
        }
        let latest = input.latest.get(&env.channel);
        let Some(latest) = latest else {
            v.state = State::Unknown;
            verdicts.insert(env.name.clone(), v);
            continue;
        };
        let target = targets.get(&env.channel).cloned().flatten();
        v.target = target.clone();
        // The release it renders at when it does not move: where it is, or
        // for a new environment, the newest its channel runs.
        let stay = env.current.clone().or_else(|| {
            newest(
                input
                    .environments
                    .iter()
                    .filter(|e| e.channel == env.channel && e.pinned.is_none())
                    .filter_map(|e| e.current.as_deref()),
            )
            .map(String::from)
            .or_else(|| target.clone())
        });
        let not_latest = |r: Option<String>| r.filter(|r| r != latest);
        let Some(target) = target else {
            v.state = State::Waiting;
            v.reason = Some(format!(
                "{latest} is skipped and no earlier release is known"
            ));
            v.release = not_latest(stay);
            verdicts.insert(env.name.clone(), v);
            continue;
        };
        if runs(env, &target) {
            v.release = not_latest(env.current.clone());
            verdicts.insert(env.name.clone(), v);
            continue;
        }
        let wave = &waves[i];
        let mut why = None;
        if let Some(hold) = input.holds.holding(&env.name, v.wave.as_deref()) {
            v.state = State::Held;
            v.hold = Some(hold.clone());
            why = Some(format!("held by {}: {}", hold.by, hold.reason));
        }
        if why.is_none() {
            for (w, earlier) in waves.iter().enumerate().take(i) {
                let members = counted(w, &env.channel);
                if members.is_empty() {
                    continue;
                }
                let running = members.iter().filter(|e| runs(e, &target)).count();
                if running < members.len() {
                    why = Some(format!(
                        "wave `{}` waits for `{}`: {running} of {} run {target}",
                        wave.0,
                        earlier.0,
                        members.len()
                    ));
                    break;
                }
            }
        }
        if why.is_none()
            && let Some(w) = (0..i).rev().find(|w| !counted(*w, &env.channel).is_empty())
            && let Some(end) = soak_end(w, &env.channel, &target)
            && input.now < end
        {
            why = Some(format!(
                "soaking until {} (wave `{}`)",
                shown(end),
                waves[w].0
            ));
        }
        if why.is_none()
            && let Some(at) = wave.2
            && input.now < at
        {
            why = Some(format!("wave `{}` starts at {}", wave.0, shown(at)));
        }
        if why.is_none()
            && let Some(f) = &freeze
        {
            why = Some(f.message.clone());
        }
        match why {
            None => {
                v.state = State::Offered;
                v.release = not_latest(Some(target.clone()));
            }
            Some(why) => {
                if v.state != State::Held {
                    v.state = State::Waiting;
                }
                v.reason = Some(if input.holds.skips(latest) && &target != latest {
                    format!("{why} ({latest} is skipped)")
                } else {
                    why
                });
                v.release = not_latest(stay);
            }
        }
        verdicts.insert(env.name.clone(), v);
    }
    let mut summaries = Vec::new();
    if input.rollout.is_some() {
        let channels: BTreeSet<&str> = input
            .environments
            .iter()
            .map(|e| e.channel.as_str())
            .collect();
        for (w, (name, soak, _)) in waves.iter().enumerate() {
            for channel in &channels {
                let members: Vec<&Environment> = input
                    .environments
                    .iter()
                    .filter(|e| index[e.name.as_str()] == w && e.channel == *channel)
                    .collect();
                if members.is_empty() {
                    continue;
                }
                let target = targets.get(*channel).cloned().flatten();
                let count = |state: State| {
                    members
                        .iter()
                        .filter(|e| {
                            verdicts
                                .get(&e.name)
                                .is_some_and(|v: &Verdict| v.state == state)
                        })
                        .count()
                };
                let running = members
                    .iter()
                    .filter(|e| e.pinned.is_none())
                    .filter(|e| target.as_deref().is_some_and(|t| runs(e, t)))
                    .count();
                let unpinned = counted(w, channel);
                let soak_remaining_secs = match &target {
                    Some(t)
                        if *soak > 0
                            && !unpinned.is_empty()
                            && unpinned.iter().all(|e| runs(e, t)) =>
                    {
                        soak_end(w, channel, t)
                            .map(|end| end.as_second() - input.now.as_second())
                            .filter(|s| *s > 0)
                    }
                    _ => None,
                };
                summaries.push(WaveSummary {
                    wave: name.clone(),
                    channel: channel.to_string(),
                    target,
                    environments: members.len(),
                    running,
                    offered: count(State::Offered),
                    waiting: count(State::Waiting),
                    held: count(State::Held),
                    pinned: count(State::Pinned),
                    soak_remaining_secs,
                    holds: input
                        .holds
                        .holds
                        .iter()
                        .filter(|h| match &h.scope {
                            Scope::All => true,
                            Scope::Wave(x) => x == name,
                            Scope::Environment(_) => false,
                        })
                        .cloned()
                        .collect(),
                });
            }
        }
    }
    Decision {
        verdicts,
        waves: summaries,
        skip: input.holds.skip.clone(),
        freeze,
    }
}

#[cfg(test)]
mod tests;
