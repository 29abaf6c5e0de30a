//! Where each environment stands (`hydrant status`): observe, then summarise.
//!
//! The observation is [`super::observe::environment`]'s, the one a reconcile
//! plans from; the summary ([`summarise`]) is pure: the version the channel
//! offers, the version rendered on the base branch, and the open pull request
//! with its age at a given time. Nothing here writes, pushes or prints.

use std::collections::BTreeMap;

use serde::Serialize;

use super::observe::{self, Depth, ObserveError};
use super::plan::{self, Observed};
use crate::forge::Forge;
use crate::git::Workspace;
use crate::project::{ChannelFetch, ProjectError};
use crate::reconcile::{self, CycleError, Options};
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
}

/// Where the fleet stands: each environment, and each rollout wave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Per wave and channel; empty without a `rollout:` block.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<WaveSummary>,
    pub environments: Vec<EnvStatus>,
    /// The freeze window that applies now, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze: Option<crate::rollout::Frozen>,
}

/// An environment's open pull request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrStatus {
    pub number: u64,
    pub url: String,
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
    };
    match observed {
        Ok(observed) => {
            status.rendered = plan::recorded_version(&observed.base_files);
            status.pull_request = observed.pull_request.map(|pr| PrStatus {
                age_secs: pr.created_at.as_deref().and_then(|at| age_of(at, now)),
                waits_for_review: !pr.draft && !pr.auto_merge,
                number: pr.number,
                url: pr.url,
                opened_at: pr.created_at,
                draft: pr.draft,
            });
        }
        Err(e) => status.error = Some(e.to_string()),
    }
    status
}

/// Adds what the rollout says of the environment.
pub fn with_verdict(mut status: EnvStatus, verdict: Option<&rollout::Verdict>) -> EnvStatus {
    if let Some(v) = verdict {
        status.rollout = v.position();
        if v.state == rollout::State::Rollback {
            status.rollback = v.reason.clone();
        }
    }
    status
}

/// Where each selected environment stands: the version its channel offers,
/// the version rendered on the base branch, its open pull request, and
/// where its rollout wave stands. Changes nothing.
pub fn status(ws: &Workspace, forge: &dyn Forge, opts: &Options) -> Result<Status, CycleError> {
    let fetched = ws.fetch(opts.base.as_deref())?;
    let project = reconcile::load(ws, &fetched, &opts.channel)?;
    let envs = reconcile::selected(&project, opts)?;
    let now = jiff::Timestamp::now();
    let mut decision = reconcile::decide_rollout(ws, &fetched, &project, &envs, now)?;
    if let Some(rollout) = project.rollout() {
        let previous = reconcile::previous_releases(ws, &fetched, rollout, &decision)?;
        crate::rollout::gating::roll_back(&mut decision, rollout, &Default::default(), &previous);
    }
    let mut offered = BTreeMap::new();
    for (fetch, users) in project.probe_channels().map_err(ProjectError::from)? {
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
            status
        })
        .collect();
    Ok(Status {
        waves: decision.waves,
        environments,
        freeze: decision.freeze,
    })
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
