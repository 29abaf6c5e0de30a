//! Prometheus metrics of the daemon, in the text exposition format.
//! Label sets are bounded: environments, channels and fixed outcome names only.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::CycleResult;
use crate::delivery::ErrorClass;
use crate::reconcile::Action;

const BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

#[derive(Debug, Default)]
pub struct Metrics {
    cycles_ok: u64,
    cycles_failed: u64,
    duration_buckets: [u64; BUCKETS.len()],
    duration_sum: f64,
    duration_count: u64,
    /// Environment → last action.
    last_action: BTreeMap<String, Action>,
    /// Environment → seconds since the epoch of its last success.
    last_success: BTreeMap<String, u64>,
    pull_requests: BTreeMap<&'static str, u64>,
    /// (channel, result) → fetches.
    channel_fetches: BTreeMap<(String, &'static str), u64>,
    forge_calls: u64,
    forge_rate_limit_waits: u64,
    /// Each rollout wave's progress, as the last cycle found it.
    waves: Vec<crate::rollout::WaveSummary>,
    /// Whether a freeze window applied in the last cycle (unknown before one).
    frozen: Option<bool>,
    /// The pull-request budget, as the last cycle that needed it found it.
    budget: Option<crate::delivery::pace::BudgetUse>,
    /// Environment → the class of its failure, while it fails.
    failing: BTreeMap<String, ErrorClass>,
    /// Health gates: halted (channel, version), definite failures per gate,
    /// skipped releases and environments rolling back, as the last cycle
    /// found them.
    halted: Vec<(String, String)>,
    gate_failures: BTreeMap<String, u64>,
    skipped: Vec<String>,
    rollbacks: Vec<String>,
    pub(super) last_finished: Option<Instant>,
    /// Why the last cycle shows the daemon unhealthy (the repository or
    /// every channel unreachable); `None` when it is healthy.
    pub(super) unhealthy: Option<String>,
}

fn epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Whether a cycle has reported this environment.
    pub fn knows(&self, env: &str) -> bool {
        self.last_action.contains_key(env)
    }

    pub fn record_fetches(&mut self, fetches: &[(String, &'static str)]) {
        for (channel, result) in fetches {
            *self
                .channel_fetches
                .entry((channel.clone(), result))
                .or_default() += 1;
        }
    }

    pub fn record(&mut self, result: &CycleResult, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.duration_buckets[i] += 1;
            }
        }
        self.duration_sum += secs;
        self.duration_count += 1;
        self.last_finished = Some(Instant::now());
        match result {
            Err(_) => {
                self.cycles_failed += 1;
                self.unhealthy =
                    Some("the last cycle failed; the daemon's log tells why".to_string());
            }
            Ok(report) => {
                self.record_fetches(&report.channel_fetches);
                self.forge_calls = self.forge_calls.max(report.forge_calls);
                self.forge_rate_limit_waits = self
                    .forge_rate_limit_waits
                    .max(report.forge_rate_limit_waits);
                self.waves = report.waves.clone();
                self.halted = report.halted.clone();
                for (gate, n) in &report.gate_failures {
                    let total = self.gate_failures.entry(gate.clone()).or_default();
                    *total = (*total).max(*n);
                }
                self.skipped = report.skipped.clone();
                self.rollbacks = report.rollbacks.clone();
                self.frozen = Some(report.frozen);
                if report.budget.is_some() {
                    self.budget = report.budget;
                }
                let outcomes = &report.outcomes;
                let ok = outcomes.iter().all(|o| o.error.is_none());
                if ok {
                    self.cycles_ok += 1
                } else {
                    self.cycles_failed += 1
                }
                let fetched = &report.channel_fetches;
                self.unhealthy = (!fetched.is_empty()
                    && fetched.iter().all(|(_, result)| *result == "error"))
                .then(|| "the last cycle failed to fetch any channel".to_string());
                for o in outcomes {
                    self.last_action.insert(o.env.clone(), o.action);
                    if o.action != Action::Failed {
                        self.last_success.insert(o.env.clone(), epoch());
                    }
                    let pr = match o.action {
                        Action::Opened => Some("opened"),
                        Action::Updated => Some("updated"),
                        Action::Closed => Some("closed"),
                        _ => None,
                    };
                    if let Some(pr) = pr {
                        *self.pull_requests.entry(pr).or_default() += 1;
                    }
                }
            }
        }
    }

    /// The environments failing now, each with its class.
    pub(super) fn set_failing<'a>(&mut self, failing: impl Iterator<Item = (&'a str, ErrorClass)>) {
        self.failing = failing
            .map(|(env, class)| (env.to_string(), class))
            .collect();
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP hydrant_cycles_total Reconcile cycles by outcome.\n# TYPE hydrant_cycles_total counter"
        );
        let _ = writeln!(
            out,
            "hydrant_cycles_total{{outcome=\"ok\"}} {}",
            self.cycles_ok
        );
        let _ = writeln!(
            out,
            "hydrant_cycles_total{{outcome=\"failed\"}} {}",
            self.cycles_failed
        );
        let _ = writeln!(
            out,
            "# HELP hydrant_cycle_duration_seconds How long reconcile cycles take.\n# TYPE hydrant_cycle_duration_seconds histogram"
        );
        for (b, n) in BUCKETS.iter().zip(self.duration_buckets) {
            let _ = writeln!(
                out,
                "hydrant_cycle_duration_seconds_bucket{{le=\"{b}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "hydrant_cycle_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            self.duration_count
        );
        let _ = writeln!(
            out,
            "hydrant_cycle_duration_seconds_sum {}",
            self.duration_sum
        );
        let _ = writeln!(
            out,
            "hydrant_cycle_duration_seconds_count {}",
            self.duration_count
        );
        let _ = writeln!(
            out,
            "# HELP hydrant_environment_last_action The last action per environment (1 for the current one).\n# TYPE hydrant_environment_last_action gauge"
        );
        for (env, action) in &self.last_action {
            let _ = writeln!(
                out,
                "hydrant_environment_last_action{{environment=\"{}\",action=\"{action}\"}} 1",
                escape(env)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hydrant_environment_last_success_timestamp_seconds When each environment last reconciled without error.\n# TYPE hydrant_environment_last_success_timestamp_seconds gauge"
        );
        for (env, at) in &self.last_success {
            let _ = writeln!(
                out,
                "hydrant_environment_last_success_timestamp_seconds{{environment=\"{}\"}} {at}",
                escape(env)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hydrant_environment_failing Environments failing now (1), by the class of their failure: transient ones are retried with their own backoff, permanent ones when their inputs change.\n# TYPE hydrant_environment_failing gauge"
        );
        for (env, class) in &self.failing {
            let class = match class {
                ErrorClass::Transient => "transient",
                ErrorClass::Permanent => "permanent",
            };
            let _ = writeln!(
                out,
                "hydrant_environment_failing{{environment=\"{}\",class=\"{class}\"}} 1",
                escape(env)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hydrant_pull_requests_total Pull requests opened, updated and closed.\n# TYPE hydrant_pull_requests_total counter"
        );
        for action in ["opened", "updated", "closed"] {
            let _ = writeln!(
                out,
                "hydrant_pull_requests_total{{action=\"{action}\"}} {}",
                self.pull_requests.get(action).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hydrant_channel_fetches_total Channel spec fetches by channel and result (200, 304, stale, file, error).\n# TYPE hydrant_channel_fetches_total counter"
        );
        for ((channel, result), n) in &self.channel_fetches {
            let _ = writeln!(
                out,
                "hydrant_channel_fetches_total{{channel=\"{}\",result=\"{result}\"}} {n}",
                escape(channel)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hydrant_forge_api_calls_total Calls to the hosting service's API.\n# TYPE hydrant_forge_api_calls_total counter\nhydrant_forge_api_calls_total {}",
            self.forge_calls
        );
        let _ = writeln!(
            out,
            "# HELP hydrant_forge_rate_limit_waits_total Waits for the hosting service's rate limit.\n# TYPE hydrant_forge_rate_limit_waits_total counter\nhydrant_forge_rate_limit_waits_total {}",
            self.forge_rate_limit_waits
        );
        self.render_rollout(&mut out);
        self.render_gates(&mut out);
        self.render_pacing(&mut out);
        out
    }

    /// `hydrant_rollout_halted{channel,version}`,
    /// `hydrant_gate_failures_total{gate}`,
    /// `hydrant_rollout_skipped{version}` and
    /// `hydrant_rollout_rollback{environment}`.
    fn render_gates(&self, out: &mut String) {
        if self.waves.is_empty()
            && self.halted.is_empty()
            && self.gate_failures.is_empty()
            && self.skipped.is_empty()
        {
            return;
        }
        let _ = writeln!(
            out,
            "# HELP hydrant_rollout_halted Rollouts a failed health gate halted (1), by channel and release.\n# TYPE hydrant_rollout_halted gauge"
        );
        for (channel, version) in &self.halted {
            let _ = writeln!(
                out,
                "hydrant_rollout_halted{{channel=\"{}\",version=\"{}\"}} 1",
                escape(channel),
                escape(version)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hydrant_gate_failures_total Definite failures health gates answered.\n# TYPE hydrant_gate_failures_total counter"
        );
        for (gate, n) in &self.gate_failures {
            let _ = writeln!(
                out,
                "hydrant_gate_failures_total{{gate=\"{}\"}} {n}",
                escape(gate)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hydrant_rollout_skipped Releases never offered (`skip` in holds.yaml).\n# TYPE hydrant_rollout_skipped gauge"
        );
        for version in &self.skipped {
            let _ = writeln!(
                out,
                "hydrant_rollout_skipped{{version=\"{}\"}} 1",
                escape(version)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hydrant_rollout_rollback Environments going back to the release they ran before (1).\n# TYPE hydrant_rollout_rollback gauge"
        );
        for env in &self.rollbacks {
            let _ = writeln!(
                out,
                "hydrant_rollout_rollback{{environment=\"{}\"}} 1",
                escape(env)
            );
        }
    }

    /// `hydrant_rollout_frozen` and `hydrant_pull_request_budget{kind}`.
    fn render_pacing(&self, out: &mut String) {
        if let Some(frozen) = self.frozen {
            let _ = writeln!(
                out,
                "# HELP hydrant_rollout_frozen Whether a freeze window keeps new versions back now.\n# TYPE hydrant_rollout_frozen gauge\nhydrant_rollout_frozen {}",
                u8::from(frozen)
            );
        }
        if let Some(b) = self.budget {
            let _ = writeln!(
                out,
                "# HELP hydrant_pull_request_budget New pull requests opened in the last hour (used) and that may still be opened now (remaining).\n# TYPE hydrant_pull_request_budget gauge\nhydrant_pull_request_budget{{kind=\"used\"}} {}\nhydrant_pull_request_budget{{kind=\"remaining\"}} {}",
                b.used, b.remaining
            );
        }
    }

    /// `hydrant_rollout_environments{wave,state}` (summed over channels)
    /// and `hydrant_rollout_target_info{wave,channel,version}`.
    fn render_rollout(&self, out: &mut String) {
        if self.waves.is_empty() {
            return;
        }
        let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for w in &self.waves {
            for (state, n) in [
                ("running", w.running),
                ("offered", w.offered),
                ("waiting", w.waiting),
                ("held", w.held),
                ("pinned", w.pinned),
            ] {
                *counts.entry((w.wave.as_str(), state)).or_default() += n;
            }
        }
        let _ = writeln!(
            out,
            "# HELP hydrant_rollout_environments Environments per rollout wave: running the target, offered it, waiting, held, pinned.\n# TYPE hydrant_rollout_environments gauge"
        );
        for ((wave, state), n) in counts {
            let _ = writeln!(
                out,
                "hydrant_rollout_environments{{wave=\"{}\",state=\"{state}\"}} {n}",
                escape(wave)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hydrant_rollout_target_info The release each wave's rollout aims at, per channel.\n# TYPE hydrant_rollout_target_info gauge"
        );
        for w in &self.waves {
            if let Some(version) = &w.target {
                let _ = writeln!(
                    out,
                    "hydrant_rollout_target_info{{wave=\"{}\",channel=\"{}\",version=\"{}\"}} 1",
                    escape(&w.wave),
                    escape(&w.channel),
                    escape(version)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::WaveSummary;

    fn wave(name: &str, channel: &str, running: usize, waiting: usize) -> WaveSummary {
        WaveSummary {
            wave: name.into(),
            channel: channel.into(),
            target: Some("0.63.0".into()),
            environments: running + waiting,
            running,
            offered: 0,
            waiting,
            held: 0,
            pinned: 0,
            soak_remaining_secs: None,
            holds: Vec::new(),
        }
    }

    #[test]
    fn rollout_gauges_count_each_wave_and_state_and_name_each_target() {
        let mut m = Metrics::default();
        let report = super::super::CycleReport {
            waves: vec![
                wave("canary", "stable", 2, 0),
                wave("canary", "beta", 1, 0),
                wave("everyone", "stable", 0, 9),
            ],
            ..Default::default()
        };
        m.record(&Ok(report), Duration::from_secs(1));
        let text = m.render();
        for line in [
            "hydrant_rollout_environments{wave=\"canary\",state=\"running\"} 3",
            "hydrant_rollout_environments{wave=\"everyone\",state=\"waiting\"} 9",
            "hydrant_rollout_target_info{wave=\"canary\",channel=\"beta\",version=\"0.63.0\"} 1",
            "hydrant_rollout_target_info{wave=\"everyone\",channel=\"stable\",version=\"0.63.0\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(!Metrics::default().render().contains("hydrant_rollout"));
    }

    #[test]
    fn gate_metrics_name_halted_releases_failures_skips_and_rollbacks() {
        let mut m = Metrics::default();
        let report = super::super::CycleReport {
            waves: vec![wave("canary", "stable", 1, 0)],
            halted: vec![("stable".into(), "0.63.0".into())],
            gate_failures: BTreeMap::from([("argocd-healthy".to_string(), 3)]),
            skipped: vec!["0.63.0".into()],
            rollbacks: vec!["dev".into()],
            ..Default::default()
        };
        m.record(&Ok(report), Duration::from_secs(1));
        let text = m.render();
        for line in [
            "hydrant_rollout_halted{channel=\"stable\",version=\"0.63.0\"} 1",
            "hydrant_gate_failures_total{gate=\"argocd-healthy\"} 3",
            "hydrant_rollout_skipped{version=\"0.63.0\"} 1",
            "hydrant_rollout_rollback{environment=\"dev\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn the_freeze_and_the_budget_show_as_gauges() {
        let mut m = Metrics::default();
        let report = super::super::CycleReport {
            frozen: true,
            budget: Some(crate::delivery::pace::BudgetUse {
                limit: 10,
                used: 10,
                remaining: 0,
            }),
            ..Default::default()
        };
        m.record(&Ok(report), Duration::from_secs(1));
        // A cycle that opened nothing keeps the budget last seen.
        m.record(&Ok(Default::default()), Duration::from_secs(1));
        let text = m.render();
        for line in [
            "hydrant_rollout_frozen 0",
            "hydrant_pull_request_budget{kind=\"used\"} 10",
            "hydrant_pull_request_budget{kind=\"remaining\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
