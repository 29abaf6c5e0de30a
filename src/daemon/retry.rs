//! Per-environment retries: what the daemon remembers of each failing
//! environment between cycles.
//!
//! A *transient* failure (network, a server's 5xx, a lock, a lost race) is
//! retried with that environment's own exponential backoff with jitter, from
//! [`FIRST_RETRY`] and capped at the interval (or at [`FIRST_RETRY`], when the
//! interval is shorter); until its retry is due, cycles leave it out. A *permanent* failure (bad input, a template error, refused
//! by policy) is not retried until the environment's inputs change: the
//! cycle reports a signal of them (see [`crate::reconcile::Waiting`]), and
//! the environment waits while the signal stays the same, or until a channel
//! publishes something new. A success forgets the environment. Neither kind
//! holds back the other environments. No IO, no clock: `now` is given.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::delivery::ErrorClass;
use crate::reconcile::{Outcome, Waiting};

/// The first wait before a transient failure is retried.
pub(crate) const FIRST_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Failing {
    class: ErrorClass,
    /// Transient failures in a row.
    failures: u32,
    /// When a transient failure is retried.
    due: Option<Instant>,
    /// The signal of a permanently failing environment's inputs.
    inputs: Option<String>,
}

/// The failing environments, by name.
#[derive(Debug, Default)]
pub(crate) struct Retries {
    envs: BTreeMap<String, Failing>,
}

impl Retries {
    /// Records a cycle's outcomes; `inputs` holds each environment's inputs signal.
    pub(crate) fn record(
        &mut self,
        outcomes: &[Outcome],
        inputs: &BTreeMap<String, String>,
        interval: Duration,
        now: Instant,
    ) {
        for o in outcomes {
            if o.error.is_none() {
                self.envs.remove(&o.env);
                continue;
            }
            let class = o.class.unwrap_or(ErrorClass::Permanent);
            let before = self.envs.remove(&o.env);
            let failing = match class {
                ErrorClass::Transient => {
                    let failures = before
                        .filter(|f| f.class == ErrorClass::Transient)
                        .map_or(0, |f| f.failures)
                        .saturating_add(1);
                    // Capped at the interval, but never under the first wait: with a
                    // short interval, a failing environment still waits longer
                    // than the healthy ones between tries.
                    let cap = interval.max(FIRST_RETRY);
                    let wait = crate::backoff::delay(FIRST_RETRY, failures - 1, cap);
                    tracing::info!(
                        environment = %o.env,
                        failures,
                        retry_in_secs = wait.as_secs_f64(),
                        "transient failure: retrying this environment with its own backoff"
                    );
                    Failing {
                        class,
                        failures,
                        due: Some(now + wait),
                        inputs: None,
                    }
                }
                ErrorClass::Permanent => {
                    tracing::info!(
                        environment = %o.env,
                        "permanent failure: not retried until its inputs change"
                    );
                    Failing {
                        class,
                        failures: 0,
                        due: None,
                        inputs: inputs.get(&o.env).cloned(),
                    }
                }
            };
            self.envs.insert(o.env.clone(), failing);
        }
    }

    /// What a cycle starting at `now` leaves out.
    pub(crate) fn waiting(&self, now: Instant) -> Waiting {
        let mut waiting = Waiting::default();
        for (env, f) in &self.envs {
            match (f.due, &f.inputs) {
                (Some(due), _) if due > now => {
                    waiting.backing_off.insert(env.clone());
                }
                (None, Some(inputs)) => {
                    waiting.held.insert(env.clone(), inputs.clone());
                }
                _ => {}
            }
        }
        waiting
    }

    /// When the next transient retry is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.envs.values().filter_map(|f| f.due).min()
    }

    /// The environments whose transient retry is due at `now`.
    pub(crate) fn due(&self, now: Instant) -> BTreeSet<String> {
        self.envs
            .iter()
            .filter(|(_, f)| f.due.is_some_and(|d| d <= now))
            .map(|(env, _)| env.clone())
            .collect()
    }

    /// A channel published something new: permanent failures may pass now.
    pub(crate) fn release_held(&mut self) {
        for f in self.envs.values_mut() {
            f.inputs = None;
        }
    }

    /// Each failing environment and the class of its last failure.
    pub(crate) fn failing(&self) -> impl Iterator<Item = (&str, ErrorClass)> {
        self.envs.iter().map(|(env, f)| (env.as_str(), f.class))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(env: &str, class: Option<ErrorClass>) -> Outcome {
        match class {
            Some(class) => Outcome::failed(env, "it broke".to_string(), class),
            None => {
                let mut o = Outcome::failed(env, String::new(), ErrorClass::Permanent);
                o.error = None;
                o.class = None;
                o
            }
        }
    }

    fn inputs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(e, d)| (e.to_string(), d.to_string()))
            .collect()
    }

    const INTERVAL: Duration = Duration::from_secs(300);

    #[test]
    fn a_transient_failure_backs_off_on_its_own_and_is_retried_when_due() {
        let mut r = Retries::default();
        let now = Instant::now();
        r.record(
            &[
                outcome("dev", Some(ErrorClass::Transient)),
                outcome("prod", None),
            ],
            &inputs(&[]),
            INTERVAL,
            now,
        );
        let w = r.waiting(now);
        assert_eq!(w.backing_off, BTreeSet::from(["dev".to_string()]));
        assert!(w.held.is_empty(), "prod is healthy and dev is not held");
        let due = r.next_due().unwrap();
        assert!(due >= now + FIRST_RETRY && due <= now + FIRST_RETRY * 2);
        assert!(r.due(now).is_empty());
        assert_eq!(r.due(due), BTreeSet::from(["dev".to_string()]));
        assert!(r.waiting(due).backing_off.is_empty(), "due: retried");
    }

    #[test]
    fn transient_backoff_doubles_and_is_capped_by_the_interval() {
        let mut r = Retries::default();
        let now = Instant::now();
        let interval = Duration::from_secs(30);
        let mut waits = Vec::new();
        for _ in 0..6 {
            r.record(
                &[outcome("dev", Some(ErrorClass::Transient))],
                &inputs(&[]),
                interval,
                now,
            );
            waits.push(r.next_due().unwrap() - now);
        }
        assert!(waits[1] >= FIRST_RETRY * 2, "{waits:?}");
        assert!(waits[2] >= FIRST_RETRY * 4, "{waits:?}");
        assert!(waits.iter().all(|w| *w <= interval), "{waits:?}");
    }

    #[test]
    fn with_an_interval_under_the_first_wait_a_transient_failure_still_waits_it() {
        let mut r = Retries::default();
        let now = Instant::now();
        r.record(
            &[outcome("dev", Some(ErrorClass::Transient))],
            &inputs(&[]),
            Duration::from_secs(1),
            now,
        );
        assert_eq!(r.next_due(), Some(now + FIRST_RETRY));
    }

    #[test]
    fn a_permanent_failure_waits_for_its_inputs_to_change() {
        let mut r = Retries::default();
        let now = Instant::now();
        r.record(
            &[outcome("dev", Some(ErrorClass::Permanent))],
            &inputs(&[("dev", "abc")]),
            INTERVAL,
            now,
        );
        let w = r.waiting(now + INTERVAL * 10);
        assert_eq!(w.held.get("dev").map(String::as_str), Some("abc"));
        assert!(w.backing_off.is_empty());
        assert_eq!(r.next_due(), None, "no timer retries it");
        r.release_held();
        assert!(
            r.waiting(now).held.is_empty(),
            "a channel release lets it try"
        );
        assert_eq!(
            r.failing().collect::<Vec<_>>(),
            [("dev", ErrorClass::Permanent)]
        );
    }

    #[test]
    fn a_success_forgets_the_failures_and_resets_the_backoff() {
        let mut r = Retries::default();
        let now = Instant::now();
        for _ in 0..4 {
            r.record(
                &[outcome("dev", Some(ErrorClass::Transient))],
                &inputs(&[]),
                INTERVAL,
                now,
            );
        }
        r.record(&[outcome("dev", None)], &inputs(&[]), INTERVAL, now);
        assert_eq!(r.failing().count(), 0);
        r.record(
            &[outcome("dev", Some(ErrorClass::Transient))],
            &inputs(&[]),
            INTERVAL,
            now,
        );
        assert!(r.next_due().unwrap() <= now + FIRST_RETRY * 2, "reset");
    }
}
