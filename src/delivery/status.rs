//! Where the fleet stands (`hydrant status`, `GET /api/v1/status` and the
//! fleet page): observe, then summarise.
//!
//! The observation is [`super::observe::environment`]'s, the one a reconcile
//! plans from; the summary ([`summarise`], [`assemble`]) is pure: the
//! repository and its channels (their latest version and where the spec came
//! from), each rollout wave's progress, and per environment the version the
//! channel offers, the version rendered on the base branch, its state and
//! the open pull request with its age at a given time. [`status`] is the one
//! function that builds the model; the daemon keeps the latest one and adds
//! its cycle ([`CycleState`]). Nothing here writes, pushes or prints.

use std::collections::BTreeMap;

use serde::Serialize;

use super::observe::{self, Depth, ObserveError};
use super::plan::{self, Observed};
use crate::forge::Forge;
use crate::git::Workspace;
use crate::project::{ChannelFetch, ProjectError};
use crate::reconcile::{self, CycleError, Options};
use crate::rollout::holds::Hold;
use crate::rollout::{self, WaveSummary};

/// Where one environment stands: `hydrant status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvStatus {
    pub env: String,
    pub channel: Option<String>,
    /// The pinned release, if any.
    pub release: Option<String>,
    /// The version the channel (or the pinned release) offers now.
    pub available: Option<String>,
    /// The version in `rendered/<env>/` on the base branch.
    pub rendered: Option<String>,
    pub pull_request: Option<PrStatus>,
    pub error: Option<String>,
    /// Where it stands in its rollout.
    #[serde(flatten)]
    pub rollout: rollout::Position,
    /// Why it goes back to the release it ran before, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
    /// The hold on this environment itself, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// What it is doing, in one word (see [`EnvState`]).
    pub state: EnvState,
}

/// An environment's state, in one word: the first that holds of `failed`
/// (its last error), `held`, `waiting` (an earlier wave, a soak, a freeze of
/// its rollout), `open` (a pull request waits), `merged` (it runs what its
/// channel offers), `pending` (it may take a release no pull request carries yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvState {
    Failed,
    Held,
    Waiting,
    Open,
    Merged,
    Pending,
}

impl EnvState {
    pub const ALL: [EnvState; 6] = [
        EnvState::Merged,
        EnvState::Open,
        EnvState::Pending,
        EnvState::Waiting,
        EnvState::Held,
        EnvState::Failed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EnvState::Failed => "failed",
            EnvState::Held => "held",
            EnvState::Waiting => "waiting",
            EnvState::Open => "open",
            EnvState::Merged => "merged",
            EnvState::Pending => "pending",
        }
    }

    /// The state named `name`, if any.
    pub fn parse(name: &str) -> Option<EnvState> {
        EnvState::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Where the fleet stands: the repository and its channels, each rollout
/// wave, and each environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The config repository, as shown to people (no credentials).
    pub repository: String,
    /// Its base branch, and the commit read.
    pub base: String,
    pub commit: String,
    /// Each channel (and pinned release) the environments follow.
    pub channels: Vec<ChannelState>,
    /// The daemon's last cycle and its next one (only from the daemon).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cycle: Option<CycleState>,
    /// Per wave and channel; empty without a `rollout:` block.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<WaveStatus>,
    pub environments: Vec<EnvStatus>,
    /// The freeze window that applies now, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze: Option<crate::rollout::Frozen>,
}

/// A channel (or a pinned release of it): its latest version and where its
/// spec came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelState {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    pub version: Option<String>,
    /// `network` (downloaded), `not-modified` (a `304`: the cache is
    /// current), `stale` (the last good spec: the channel is unreachable),
    /// `file`, or `error`.
    pub source: &'static str,
    /// How old the stale spec is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_secs: Option<u64>,
    /// How many environments follow it.
    pub environments: usize,
}

/// The daemon's last cycle and its next one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CycleState {
    /// When the last cycle finished (RFC 3339).
    pub finished_at: String,
    /// `ok`, `failed` (some environments failed) or `error` (it could not run).
    pub outcome: &'static str,
    /// Why it could not run, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the next one starts at the latest (RFC 3339).
    pub next_at: String,
}

/// One wave's progress on one channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaveStatus {
    #[serde(flatten)]
    pub summary: WaveSummary,
    /// How many of its environments are in each state.
    pub progress: Progress,
    /// The health gates checked for its environments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateState>,
}

/// How many environments are in each [`EnvState`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub merged: usize,
    pub open: usize,
    pub pending: usize,
    pub waiting: usize,
    pub held: usize,
    pub failed: usize,
}

impl Progress {
    fn add(&mut self, state: EnvState) {
        *match state {
            EnvState::Merged => &mut self.merged,
            EnvState::Open => &mut self.open,
            EnvState::Pending => &mut self.pending,
            EnvState::Waiting => &mut self.waiting,
            EnvState::Held => &mut self.held,
            EnvState::Failed => &mut self.failed,
        } += 1;
    }

    pub fn get(&self, state: EnvState) -> usize {
        match state {
            EnvState::Merged => self.merged,
            EnvState::Open => self.open,
            EnvState::Pending => self.pending,
            EnvState::Waiting => self.waiting,
            EnvState::Held => self.held,
            EnvState::Failed => self.failed,
        }
    }

    pub fn total(&self) -> usize {
        EnvState::ALL.iter().map(|s| self.get(*s)).sum()
    }
}

/// A health gate of a wave: `checked` says whether this process has asked
/// it (only the daemon does), `failures` its definite failures since then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateState {
    pub name: String,
    pub checked: bool,
    pub failures: u64,
    /// Releases whose rollout a failure of a gate halted (`channel version`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub halted: Vec<String>,
}

/// An environment's open pull request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrStatus {
    pub number: u64,
    pub url: String,
    pub title: String,
    pub opened_at: Option<String>,
    pub age_secs: Option<u64>,
    pub draft: bool,
    /// Open, not a draft, and not set to merge by itself.
    pub waits_for_review: bool,
}

/// Seconds from an RFC 3339 time to `now` (0 when a forge's clock runs ahead).
fn age_of(at: &str, now: jiff::Timestamp) -> Option<u64> {
    let at: jiff::Timestamp = at.parse().ok()?;
    Some(u64::try_from(now.as_second() - at.as_second()).unwrap_or(0))
}

/// Summarises what was observed of `env` at time `now`: `fetch` is its
/// channel's answer (none when it was not asked), `observed` what is true of
/// it in git and on the forge.
pub fn summarise(
    env: &str,
    fetch: Option<&ChannelFetch>,
    observed: Result<Observed, ObserveError>,
    now: jiff::Timestamp,
) -> EnvStatus {
    let mut status = EnvStatus {
        env: env.to_string(),
        channel: fetch.map(|f| f.key.0.clone()),
        release: fetch.and_then(|f| f.key.1.clone()),
        available: fetch.and_then(|f| f.version.clone()),
        rendered: None,
        pull_request: None,
        error: fetch.filter(|f| f.version.is_none()).map(|_| {
            format!(
                "the channel could not be fetched; `hydrant channel show --env {env}` tells why"
            )
        }),
        rollout: Default::default(),
        rollback: None,
        hold: None,
        state: EnvState::Pending,
    };
    match observed {
        Ok(observed) => {
            status.rendered = plan::recorded_version(&observed.base_files);
            status.pull_request = observed.pull_request.map(|pr| PrStatus {
                age_secs: pr.created_at.as_deref().and_then(|at| age_of(at, now)),
                waits_for_review: !pr.draft && !pr.auto_merge,
                number: pr.number,
                url: pr.url,
                title: pr.title,
                opened_at: pr.created_at,
                draft: pr.draft,
            });
        }
        Err(e) => status.error = Some(e.to_string()),
    }
    status.state = state_of(&status, None);
    status
}

/// Adds what the rollout says of the environment.
pub fn with_verdict(mut status: EnvStatus, verdict: Option<&rollout::Verdict>) -> EnvStatus {
    if let Some(v) = verdict {
        status.rollout = v.position();
        if v.state == rollout::State::Rollback {
            status.rollback = v.reason.clone();
        }
        status.hold = v
            .hold
            .clone()
            .filter(|h| matches!(h.scope, crate::rollout::holds::Scope::Environment(_)));
    }
    status.state = state_of(&status, verdict.map(|v| v.state));
    status
}

/// An environment's state in one word (see [`EnvState`]).
fn state_of(s: &EnvStatus, rollout: Option<rollout::State>) -> EnvState {
    use rollout::State as R;
    if s.error.is_some() {
        return EnvState::Failed;
    }
    match rollout {
        Some(R::Held) => return EnvState::Held,
        Some(R::Waiting) => return EnvState::Waiting,
        _ => {}
    }
    if s.pull_request.is_some() {
        EnvState::Open
    } else if rollout == Some(R::Current) || (s.available.is_some() && s.available == s.rendered) {
        EnvState::Merged
    } else {
        EnvState::Pending
    }
}

/// The model of the fleet from what was observed: each environment's status
/// (in the selection's order), the rollout's waves with the progress of
/// their environments, and the channels' fetches with how many environments
/// follow each. Pure.
pub fn assemble(
    repository: &str,
    (base, commit): (&str, &str),
    channels: &[(ChannelFetch, usize)],
    decision: rollout::Decision,
    rollout: Option<&crate::rollout::Rollout>,
    environments: Vec<EnvStatus>,
) -> Status {
    let waves = decision
        .waves
        .into_iter()
        .map(|summary| {
            let mut progress = Progress::default();
            for e in &environments {
                if e.rollout.wave.as_deref() == Some(summary.wave.as_str())
                    && e.channel.as_deref() == Some(summary.channel.as_str())
                {
                    progress.add(e.state);
                }
            }
            let gates = rollout
                .and_then(|r| r.waves.iter().find(|w| w.name == summary.wave))
                .map(|w| {
                    w.gates
                        .iter()
                        .map(|name| GateState {
                            name: name.clone(),
                            checked: false,
                            failures: 0,
                            halted: Vec::new(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            WaveStatus {
                summary,
                progress,
                gates,
            }
        })
        .collect();
    Status {
        repository: repository.to_string(),
        base: base.to_string(),
        commit: commit.to_string(),
        channels: channels
            .iter()
            .map(|(f, users)| ChannelState {
                name: f.key.0.clone(),
                release: f.key.1.clone(),
                version: f.version.clone(),
                source: match f.result {
                    "200" => "network",
                    "304" => "not-modified",
                    other => other,
                },
                stale_secs: f.stale_secs,
                environments: *users,
            })
            .collect(),
        cycle: None,
        waves,
        environments,
        freeze: decision.freeze,
    }
}

impl Status {
    /// Adds what the daemon's health gates said: each gate's definite
    /// failures, and the releases a failure halted.
    pub fn with_gates(
        mut self,
        failures: &BTreeMap<String, u64>,
        halted: &[(String, String)],
    ) -> Status {
        for wave in &mut self.waves {
            for gate in &mut wave.gates {
                gate.checked = true;
                gate.failures = failures.get(&gate.name).copied().unwrap_or(0);
                gate.halted = halted
                    .iter()
                    .filter(|(channel, _)| *channel == wave.summary.channel)
                    .map(|(c, v)| format!("{c} {v}"))
                    .collect();
            }
        }
        self
    }

    /// Everything but the environments.
    pub fn header(&self) -> Status {
        Status {
            repository: self.repository.clone(),
            base: self.base.clone(),
            commit: self.commit.clone(),
            channels: self.channels.clone(),
            cycle: self.cycle.clone(),
            waves: self.waves.clone(),
            environments: Vec::new(),
            freeze: self.freeze.clone(),
        }
    }

    /// The environment named `env`.
    pub fn environment(&self, env: &str) -> Option<&EnvStatus> {
        self.environments.iter().find(|e| e.env == env)
    }
}

/// Where each selected environment stands: the version its channel offers,
/// the version rendered on the base branch, its open pull request, and
/// where its rollout wave stands. Changes nothing.
pub fn status(ws: &Workspace, forge: &dyn Forge, opts: &Options) -> Result<Status, CycleError> {
    status_with(ws, forge, opts, None).map(|(status, _)| status)
}

/// [`status`], with the channel fetches a cycle has just made (`fetched`)
/// instead of probing the channels again: the daemon's view after a cycle.
/// Also returns the channel fetches it made itself (for `/metrics`).
pub fn status_with(
    ws: &Workspace,
    forge: &dyn Forge,
    opts: &Options,
    fetched_channels: Option<&[ChannelFetch]>,
) -> Result<(Status, Vec<ChannelFetch>), CycleError> {
    let fetched = ws.fetch(opts.base.as_deref())?;
    let memo = std::sync::Arc::new(crate::memo::Memo::load(ws.dir()));
    let project = reconcile::load(ws, &fetched, &opts.channel, &memo)?;
    let envs = reconcile::selected(&project, opts)?;
    let now = jiff::Timestamp::now();
    let mut decision = reconcile::decide_rollout(ws, &fetched, &project, &envs, now, &memo)?;
    if let Some(rollout) = project.rollout() {
        let previous = reconcile::previous_releases(ws, &fetched, rollout, &decision)?;
        crate::rollout::gating::roll_back(&mut decision, rollout, &Default::default(), &previous);
    }
    let mut offered = BTreeMap::new();
    let mut channels = Vec::new();
    let probes = match fetched_channels {
        None => project.probe_channels().map_err(ProjectError::from)?,
        Some(known) => {
            // The last fetch of each channel (and release) the cycle made.
            let mut users: BTreeMap<(String, Option<String>), Vec<String>> = BTreeMap::new();
            for env in project.environments() {
                if let Ok(key) = project.environment_channel(env) {
                    users.entry(key).or_default().push(env.clone());
                }
            }
            users
                .into_iter()
                .filter_map(|(key, envs)| {
                    let fetch = known.iter().rev().find(|f| f.key == key)?;
                    Some((fetch.clone(), envs))
                })
                .collect()
        }
    };
    for (fetch, users) in probes {
        channels.push((fetch.clone(), users.len()));
        for env in users {
            offered.insert(env, fetch.clone());
        }
    }
    let environments = envs
        .iter()
        .map(|env| {
            let observed = observe::environment(ws, forge, &fetched, env, Depth::Full);
            let mut status = with_verdict(
                summarise(env, offered.get(env), observed, now),
                decision.verdict(env),
            );
            // An environment whose own files do not parse fails every cycle
            // until they are fixed: say so here, as the daemon's logs do.
            if status.error.is_none()
                && let Err(e) = project.inputs_of(env)
            {
                status.error = Some(e.to_string());
            }
            if status.error.is_some() {
                status.state = EnvState::Failed;
            }
            status
        })
        .collect();
    let made = project.take_fetches();
    reconcile::save_memo(ws, &memo, &project);
    let status = assemble(
        ws.url(),
        (&fetched.base_branch, &Workspace::short(fetched.base_commit)),
        &channels,
        decision,
        project.rollout(),
        environments,
    );
    Ok((status, made))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::PullRequest;

    fn pull_request(draft: bool, auto_merge: bool, created_at: Option<&str>) -> PullRequest {
        serde_json::from_value(serde_json::json!({
            "number": 7, "url": "http://forge/pr/7", "title": "t", "body": "b",
            "head": "hydrant/dev", "base": "main", "state": "open",
            "draft": draft, "auto_merge": auto_merge, "created_at": created_at,
        }))
        .expect("a pull request")
    }

    fn observed(pr: Option<PullRequest>, version: Option<&str>) -> Observed {
        let mut base_files = BTreeMap::new();
        if let Some(v) = version {
            base_files.insert(
                crate::manifest::layout::METADATA.to_string(),
                serde_json::json!({
                    "environment": "dev", "namespace": "ns", "digest": "d", "renderer": 1,
                    "resources": 1, "channel": {"name": "stable", "version": v, "release": null},
                    "inputs": {"channel": "c", "environment": "e", "values": null,
                               "pinned": null, "templates": "t"},
                })
                .to_string(),
            );
        }
        Observed {
            env: "dev".into(),
            base_branch: "main".into(),
            base_files,
            pull_request: pr,
            ..Observed::default()
        }
    }

    fn fetch(version: Option<&str>) -> ChannelFetch {
        ChannelFetch {
            key: ("stable".into(), None),
            result: if version.is_some() { "file" } else { "error" },
            version: version.map(String::from),
            fingerprint: None,
            stale_secs: None,
        }
    }

    fn now() -> jiff::Timestamp {
        "2026-01-03T00:00:00Z".parse().expect("a time")
    }

    #[test]
    fn status_summarises_the_channel_the_base_and_the_open_pull_request_at_a_given_time() {
        let pr = pull_request(false, false, Some("2026-01-01T00:00:00Z"));
        let s = summarise(
            "dev",
            Some(&fetch(Some("0.63.0"))),
            Ok(observed(Some(pr), Some("0.62.1"))),
            now(),
        );
        assert_eq!(s.channel.as_deref(), Some("stable"));
        assert_eq!(s.available.as_deref(), Some("0.63.0"));
        assert_eq!(s.rendered.as_deref(), Some("0.62.1"));
        assert_eq!(s.error, None);
        let pr = s.pull_request.expect("a pull request");
        assert_eq!(pr.number, 7);
        assert_eq!(pr.age_secs, Some(2 * 86_400));
        assert!(pr.waits_for_review);
    }

    #[test]
    fn a_draft_or_auto_merging_pull_request_does_not_wait_for_review() {
        for (draft, auto_merge) in [(true, false), (false, true)] {
            let pr = pull_request(draft, auto_merge, None);
            let s = summarise("dev", None, Ok(observed(Some(pr), None)), now());
            let pr = s.pull_request.expect("a pull request");
            assert!(
                !pr.waits_for_review,
                "draft {draft}, auto-merge {auto_merge}"
            );
            assert_eq!(pr.age_secs, None);
        }
    }

    #[test]
    fn a_pull_request_from_a_forge_whose_clock_runs_ahead_is_zero_seconds_old() {
        let pr = pull_request(false, false, Some("2026-01-04T00:00:00Z"));
        let s = summarise("dev", None, Ok(observed(Some(pr), None)), now());
        assert_eq!(s.pull_request.and_then(|p| p.age_secs), Some(0));
    }

    #[test]
    fn a_channel_that_could_not_be_fetched_is_an_error_that_says_where_to_look() {
        let s = summarise("dev", Some(&fetch(None)), Ok(observed(None, None)), now());
        assert_eq!(s.available, None);
        let error = s.error.expect("an error");
        assert!(error.contains("hydrant channel show --env dev"), "{error}");
    }
}
