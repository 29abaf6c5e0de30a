//! The daemon's controller over a config repository: what a cycle and a
//! channel poll do with the workspace, the forge and the reconcile options
//! the command line resolved, and the change detection of channel polls.
//!
//! The scheduler ([`super`]) decides when and over which environments; this
//! module runs [`crate::reconcile`] for it, and tells which channels
//! published something new. It keeps no per-environment retry state (that is
//! [`super::retry`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use super::{CycleReport, CycleResult, DaemonOptions, Jobs, PollReport, Request, Scope, Stopped};
use crate::delivery::holds;
use crate::forge::Forge;
use crate::git::Workspace;
use crate::project::{ChannelFetch, ChannelKey, Project};
use crate::reconcile;
use crate::rollout::gating::GateBook;
use crate::ui::Snapshot;

/// Runs the daemon over a config repository until a signal stops it.
pub fn serve_repository(
    ws: Workspace,
    forge: Box<dyn Forge>,
    opts: reconcile::Options,
    options: DaemonOptions,
) -> anyhow::Result<Stopped> {
    // One workspace for the daemon's life: cycles never overlap.
    let controller = Arc::new(Controller {
        ws: Mutex::new(ws),
        forge,
        opts,
        project: Mutex::new(None),
        seen: Mutex::new(Seen::default()),
        gates: Mutex::new(GateBook::default()),
        last: Mutex::new(None),
    });
    let (for_cycle, for_poll, for_holds, for_page) = (
        controller.clone(),
        controller.clone(),
        controller.clone(),
        controller,
    );
    super::run(
        options,
        Jobs {
            cycle: Box::new(move |request| for_cycle.cycle(request)),
            poll: Box::new(move || for_poll.poll()),
            holds: Box::new(move |change, by| for_holds.edit_holds(change, by)),
            observe: Box::new(move || for_page.observe()),
        },
    )
}

/// The last fingerprint seen of each channel (and pinned release).
#[derive(Debug, Default)]
struct Seen(HashMap<ChannelKey, String>);

impl Seen {
    /// Records a fetch; true when it shows something new since the last one.
    /// A first sighting is not news: the cycle that made it rendered it.
    fn news(&mut self, fetch: &ChannelFetch) -> bool {
        let Some(now) = &fetch.fingerprint else {
            return false;
        };
        match self.0.insert(fetch.key.clone(), now.clone()) {
            Some(before) => &before != now,
            None => false,
        }
    }
}

/// What the daemon's cycles and polls share.
struct Controller {
    ws: Mutex<Workspace>,
    forge: Box<dyn Forge>,
    opts: reconcile::Options,
    /// The repository as the last cycle read it: what polls look at.
    project: Mutex<Option<Arc<Project>>>,
    seen: Mutex<Seen>,
    /// The answers of health gates across cycles.
    gates: Mutex<GateBook>,
    /// What the last cycle did, for the fleet page: each environment's
    /// plan and provenance, each gate's failures and the halted releases.
    last: Mutex<Option<LastCycle>>,
}

/// What the fleet page takes from a cycle.
struct LastCycle {
    outcomes: Vec<crate::reconcile::Outcome>,
    fetches: Vec<ChannelFetch>,
    project: Arc<Project>,
    gate_failures: std::collections::BTreeMap<String, u64>,
    halted: Vec<(String, String)>,
}

fn fetches_shown(fetches: &[ChannelFetch]) -> Vec<(String, &'static str)> {
    fetches
        .iter()
        .map(|f| (f.key.0.clone(), f.result))
        .collect()
}

impl Controller {
    /// Only environments the command line allows (all when it names none).
    fn allowed(&self, env: &str) -> bool {
        self.opts.envs.is_empty() || self.opts.envs.iter().any(|e| e == env)
    }

    fn cycle(&self, request: &Request) -> CycleResult {
        let mut opts = self.opts.clone();
        if let Scope::Envs(envs) = &request.scope {
            opts.envs = envs.iter().filter(|e| self.allowed(e)).cloned().collect();
            if opts.envs.is_empty() {
                return Ok(CycleReport::default());
            }
        }
        // A cycle that panicked (isolated per environment by reconcile, so
        // this is a last resort) must not wedge every later cycle: the next
        // one starts by fetching afresh, whatever state the last left.
        let ws = self
            .ws
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut gates = self
            .gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cycle = reconcile::run_cycle_gated(
            &ws,
            self.forge.as_ref(),
            &opts,
            &request.waiting,
            &mut gates,
        )
        .map_err(|e| e.to_string())?;
        drop(gates);
        let mut channel_news = false;
        if let Ok(mut seen) = self.seen.lock() {
            for f in &cycle.fetches {
                channel_news |= seen.news(f);
            }
        }
        let project = Arc::new(cycle.project);
        if let Ok(mut p) = self.project.lock() {
            *p = Some(project.clone());
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some(LastCycle {
                outcomes: cycle.outcomes.clone(),
                fetches: cycle.fetches.clone(),
                project,
                gate_failures: cycle.gate_failures.clone(),
                halted: cycle.halted.clone(),
            });
        }
        let rollbacks = cycle
            .rollout
            .verdicts
            .values()
            .filter(|v| v.state == crate::rollout::State::Rollback)
            .map(|v| v.env.clone())
            .collect();
        let skipped = cycle.rollout.skip;
        let waves = cycle.rollout.waves;
        let frozen = cycle.rollout.freeze.is_some();
        let (calls, waits) = self.forge.api_stats().map_or((0, 0), |s| {
            use std::sync::atomic::Ordering::Relaxed;
            (s.calls.load(Relaxed), s.rate_limit_waits.load(Relaxed))
        });
        Ok(CycleReport {
            channel_fetches: fetches_shown(&cycle.fetches),
            outcomes: cycle.outcomes,
            inputs: cycle.inputs,
            channel_news,
            forge_calls: calls,
            forge_rate_limit_waits: waits,
            waves,
            halted: cycle.halted,
            gate_failures: cycle.gate_failures,
            skipped,
            rollbacks,
            frozen,
            budget: cycle.budget,
        })
    }

    /// The fleet after a cycle: the status of every environment the
    /// daemon covers, and the plan and provenance of those the last cycle
    /// went through. A failure to observe is logged; the page keeps the
    /// last model.
    fn observe(&self) -> Option<Snapshot> {
        let last = self.last.lock().ok()?.take()?;
        let ws = self
            .ws
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let status = crate::delivery::status::status_with(
            &ws,
            self.forge.as_ref(),
            &self.opts,
            Some(&last.fetches),
        );
        match status {
            Ok((status, made)) => Some(Snapshot {
                status: status.with_gates(&last.gate_failures, &last.halted),
                details: crate::ui::detail::build(&last.outcomes, &last.project, &last.fetches),
                fetches: fetches_shown(&made),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "the fleet could not be observed after the cycle");
                None
            }
        }
    }

    /// Commits a change of `holds.yaml` to the base branch, once the cycle
    /// in flight (which holds the workspace) has finished.
    fn edit_holds(
        &self,
        change: holds::Change,
        by: String,
    ) -> Result<holds::Committed, holds::HoldsError> {
        let edit = holds::Edit {
            change,
            by,
            base: self.opts.base.clone(),
            author_name: self.opts.author_name.clone(),
            author_email: self.opts.author_email.clone(),
        };
        let ws = self
            .ws
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        holds::commit(&ws, &edit)
    }

    fn poll(&self) -> Result<PollReport, String> {
        let Some(project) = self.project.lock().ok().and_then(|p| p.clone()) else {
            return Ok(PollReport::default());
        };
        let probes = project.probe_channels().map_err(|e| e.to_string())?;
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut changed = BTreeSet::new();
        for (fetch, envs) in &probes {
            if seen.news(fetch) {
                tracing::info!(channel = %fetch.key.0, release = ?fetch.key.1, found = ?fetch.fingerprint, "the channel published something new");
                changed.extend(envs.iter().filter(|e| self.allowed(e)).cloned());
            }
        }
        let fetches: Vec<ChannelFetch> = probes.into_iter().map(|(f, _)| f).collect();
        Ok(PollReport {
            channel_fetches: fetches_shown(&fetches),
            changed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch(channel: &str, fingerprint: Option<&str>) -> ChannelFetch {
        ChannelFetch {
            key: (channel.to_string(), None),
            result: "200",
            version: None,
            fingerprint: fingerprint.map(String::from),
            stale_secs: None,
        }
    }

    #[test]
    fn only_a_changed_fingerprint_is_news() {
        let mut seen = Seen::default();
        assert!(
            !seen.news(&fetch("stable", Some("0.62.1@aa"))),
            "first sighting"
        );
        assert!(!seen.news(&fetch("stable", Some("0.62.1@aa"))));
        assert!(
            !seen.news(&fetch("stable", None)),
            "a failed fetch says nothing"
        );
        assert!(seen.news(&fetch("stable", Some("0.63.0@bb"))));
        assert!(
            !seen.news(&fetch("canary", Some("0.63.0@bb"))),
            "another channel"
        );
        assert!(!seen.news(&fetch("stable", Some("0.63.0@bb"))));
    }
}
