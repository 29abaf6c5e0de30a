//! Holding back what a plan would deliver now: a freeze window that stops
//! override changes too, and the pull-request budget.
//!
//! The planner decides what an environment needs; these turn a decision to
//! open (or, in a freeze, to update) a pull request into one that waits,
//! with the reason in words. Pure: the caller tells whether a freeze applies
//! and whether the budget admits one more pull request.

use serde::Serialize;

use super::plan::{Decision, Plan};
use crate::rollout::Frozen;

/// The plan, holding back a new pull request that the budget does not
/// admit now: `reason` says why (`waiting for forge budget: …`).
pub fn over_budget(mut plan: Plan, reason: &str) -> Plan {
    if matches!(plan.decision, Decision::Open { .. }) {
        plan.decision = Decision::Nothing;
        plan.reason = format!("{reason}; its pull request is opened in its turn");
    }
    plan
}

/// The plan during a freeze window that stops override changes too
/// (`reason`: `frozen until …`): nothing is pushed, and no pull request is
/// opened or updated. Closing one, or deleting a branch, still happens.
pub fn frozen(mut plan: Plan, reason: &str) -> Plan {
    match plan.decision {
        Decision::Open { .. } => {
            plan.decision = Decision::Nothing;
            plan.reason = format!("{reason}; no pull request is opened until it ends");
        }
        Decision::Update { number, .. } => {
            plan.decision = Decision::Nothing;
            plan.reason = format!("{reason}; pull request #{number} is not updated until it ends");
        }
        _ => {}
    }
    plan
}

/// What a pull request opened or updated during a freeze says of its
/// auto-merge, which is not turned on.
pub fn freeze_note(freeze: &Frozen) -> String {
    format!(
        "\n\n> **Auto-merge is not turned on**: this pull request was opened or updated during the freeze window {}, which ends {}. Merge it by hand once the window has ended.\n",
        super::review::code(&super::review::note_text(&freeze.reason)),
        super::review::note_text(&freeze.ends_local)
    )
}

/// The pull-request budget as a cycle found it, for `plan`, the JSON and
/// `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BudgetUse {
    /// New pull requests allowed in an hour (shrunk after the forge's
    /// secondary rate limits).
    pub limit: u32,
    /// New pull requests opened in the last hour.
    pub used: u32,
    /// New pull requests that may still be opened now.
    pub remaining: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::plan::{Kind, Push, VersionChange};

    fn plan(decision: Decision) -> Plan {
        Plan {
            env: "dev".into(),
            decision,
            reason: "the render differs".into(),
            channel: Some("stable".into()),
            version: VersionChange::default(),
            files: Vec::new(),
        }
    }

    fn push() -> Option<Push> {
        Some(Push {
            message: "m".into(),
            replaces: None,
        })
    }

    #[test]
    fn over_budget_only_a_new_pull_request_waits() {
        let why = "waiting for forge budget: 10 of 10 this hour, next at 14:05 UTC";
        let held = over_budget(plan(Decision::Open { push: push() }), why);
        assert_eq!(held.decision.kind(), Kind::Nothing);
        assert!(held.reason.starts_with(why), "{}", held.reason);
        for (decision, kind) in [
            (
                Decision::Update {
                    push: push(),
                    number: 4,
                },
                Kind::Update,
            ),
            (
                Decision::Close {
                    number: 4,
                    comment: "c".into(),
                    delete_branch: None,
                },
                Kind::Close,
            ),
            (Decision::Nothing, Kind::Nothing),
        ] {
            let p = over_budget(plan(decision), why);
            assert_eq!(p.decision.kind(), kind);
            assert_eq!(p.reason, "the render differs");
        }
    }

    #[test]
    fn a_freeze_that_stops_overrides_holds_back_opening_and_updating_but_not_closing() {
        let why = "frozen until Mon 2026-12-07 09:00 CET: weekend";
        let opened = frozen(plan(Decision::Open { push: push() }), why);
        assert_eq!(opened.decision.kind(), Kind::Nothing);
        assert!(opened.reason.starts_with(why));
        let updated = frozen(
            plan(Decision::Update {
                push: push(),
                number: 4,
            }),
            why,
        );
        assert_eq!(updated.decision.kind(), Kind::Nothing);
        assert!(
            updated.reason.contains("#4 is not updated"),
            "{}",
            updated.reason
        );
        let closed = frozen(
            plan(Decision::Close {
                number: 4,
                comment: "c".into(),
                delete_branch: None,
            }),
            why,
        );
        assert_eq!(closed.decision.kind(), Kind::Close);
    }
}
