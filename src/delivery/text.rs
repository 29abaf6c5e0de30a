//! How a cycle's outcomes, a plan and a status read as text: what
//! `hydrant reconcile`, `hydrant plan` (and `reconcile --dry-run`) and
//! `hydrant status` print. Pure: values in, text out.

use serde::Serialize;

use super::pace::BudgetUse;
use super::status::{EnvStatus, Status};
use super::{Action, GroupOutcome, Outcome};
use crate::rollout::{Frozen, WaveSummary};

/// `stable 0.62.1 → 0.63.0`, as the summaries show an environment's release.
fn channel_and_version(o: &Outcome) -> (&str, String) {
    (o.channel.as_deref().unwrap_or(""), o.version.shown())
}

/// One line per environment a reconcile went through, with what it did.
pub fn outcomes(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let width = outcomes.iter().map(|o| o.env.len()).max().unwrap_or(0);
    for o in outcomes {
        let (channel, version) = channel_and_version(o);
        let mut line = format!(
            "{:width$}  {:9}  {channel} {version}",
            o.env,
            o.action.to_string()
        );
        if let Some(c) = &o.commit {
            line.push_str(&format!("  {}@{}", o.branch, &c[..12.min(c.len())]));
        }
        if let Some(pr) = &o.pull_request {
            line.push_str(&format!("  PR #{} {}", pr.number, pr.url));
        }
        writeln(&mut out, line.trim_end());
        if o.action == Action::Skipped {
            writeln(&mut out, format!("{:width$}  {}", "", o.reason));
        }
        if let Some(e) = &o.error {
            writeln(&mut out, format!("{:width$}  error: {e}", ""));
        }
    }
    out
}

/// What each environment's plan decided, why, and what it changes:
/// `hydrant plan`, and `hydrant reconcile --dry-run`.
pub fn plan(outcomes: &[Outcome], waves: &[WaveSummary]) -> String {
    let mut out = String::new();
    for line in wave_lines(waves) {
        writeln(&mut out, &line);
    }
    let width = outcomes.iter().map(|o| o.env.len()).max().unwrap_or(0);
    for o in outcomes {
        let (channel, version) = channel_and_version(o);
        let mut line = format!(
            "{:width$}  {:13}  {channel} {version}",
            o.env,
            o.decision.to_string()
        );
        if let Some(pr) = &o.pull_request {
            line.push_str(&format!("  PR #{}", pr.number));
        }
        if let Some(wave) = &o.rollout.wave {
            line.push_str(&format!("  wave {wave}"));
        }
        writeln(&mut out, line.trim_end());
        writeln(&mut out, format!("{:width$}  {}", "", o.reason));
        if let Some(waiting) = &o.rollout.waiting {
            let target = o.rollout.target.as_deref().unwrap_or("-");
            writeln(
                &mut out,
                format!("{:width$}  stays until it may take {target}: {waiting}", ""),
            );
        }
        for f in &o.files {
            writeln(
                &mut out,
                format!("{:width$}  {} {}", "", f.change.mark(), f.path),
            );
        }
        if let Some(e) = &o.error {
            writeln(&mut out, format!("{:width$}  error: {e}", ""));
        }
    }
    out
}

/// `3d`, `5h`, `12m`, `40s`: the one age formatter of what hydrant shows.
pub(crate) fn age(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// One line per rollout wave and channel: its target, how many run it, how
/// many are offered it, wait or are held, the soak left and the holds.
fn wave_lines(waves: &[crate::rollout::WaveSummary]) -> Vec<String> {
    let mut out = Vec::new();
    for w in waves {
        let mut line = format!(
            "wave {}  {} {}: {} of {} run it, {} offered, {} waiting, {} held",
            w.wave,
            w.channel,
            w.target.as_deref().unwrap_or("-"),
            w.running,
            w.environments,
            w.offered,
            w.waiting,
            w.held
        );
        if w.pinned > 0 {
            line.push_str(&format!(", {} pinned", w.pinned));
        }
        if let Some(secs) = w.soak_remaining_secs {
            line.push_str(&format!(", soaking {} more", age(secs.unsigned_abs())));
        }
        for h in &w.holds {
            line.push_str(&format!("; held by {}: {}", h.by, h.reason));
        }
        out.push(line);
    }
    out
}

fn line(s: &EnvStatus) -> [String; 5] {
    let channel = match (&s.channel, &s.release) {
        (Some(c), Some(r)) => format!("{c}@{r}"),
        (Some(c), None) => c.clone(),
        _ => "-".to_string(),
    };
    let available = s.available.clone().unwrap_or_else(|| "-".to_string());
    let rendered = s.rendered.clone().unwrap_or_else(|| "-".to_string());
    let pr = match &s.pull_request {
        None if s.available.is_some() && s.available == s.rendered => "up to date".to_string(),
        None => "-".to_string(),
        Some(pr) => {
            let mut text = format!("#{}", pr.number);
            if let Some(a) = pr.age_secs {
                text.push_str(&format!(" opened {} ago", age(a)));
            }
            text.push_str(if pr.draft {
                ", draft"
            } else if pr.waits_for_review {
                ", waits for review"
            } else {
                ", merges when checks pass"
            });
            format!("{text}  {}", pr.url)
        }
    };
    [s.env.clone(), channel, available, rendered, pr]
}

/// The status table, with each rollout wave above it and why each
/// environment waits below it.
pub fn status(status: &Status) -> String {
    let mut out = String::new();
    let waves: Vec<WaveSummary> = status.waves.iter().map(|w| w.summary.clone()).collect();
    for line in wave_lines(&waves) {
        writeln(&mut out, line);
    }
    let mut rows = vec![
        [
            "ENVIRONMENT",
            "CHANNEL",
            "AVAILABLE",
            "RENDERED",
            "PULL REQUEST",
        ]
        .map(String::from),
    ];
    rows.extend(status.environments.iter().map(line));
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let mut text = String::new();
        for (cell, w) in r.iter().zip(&widths) {
            text.push_str(&format!("{cell:w$}  "));
        }
        text.push_str(&r[4]);
        writeln(&mut out, text.trim_end());
    }
    for s in &status.environments {
        if let Some(rollback) = &s.rollback {
            writeln(
                &mut out,
                format!(
                    "{}: wave {}, {rollback}",
                    s.env,
                    s.rollout.wave.as_deref().unwrap_or("-")
                ),
            );
        }
        if let Some(waiting) = &s.rollout.waiting {
            writeln(
                &mut out,
                format!(
                    "{}: wave {}, stays until it may take {}: {waiting}",
                    s.env,
                    s.rollout.wave.as_deref().unwrap_or("-"),
                    s.rollout.target.as_deref().unwrap_or("-")
                ),
            );
        }
    }
    out
}

/// An `error:` line per environment that failed, for stderr.
pub fn status_errors(status: &Status) -> String {
    let mut out = String::new();
    for s in &status.environments {
        if let Some(e) = &s.error {
            writeln(&mut out, format!("error: {}: {e}", s.env));
        }
    }
    out
}

/// The freeze window that applies now and the pull-request budget (when it
/// is used up), as lines above a plan, a cycle's outcomes or a status.
pub fn pacing(freeze: Option<&Frozen>, budget: Option<&BudgetUse>) -> String {
    let mut out = String::new();
    if let Some(f) = freeze {
        let overrides = match &f.overrides {
            Some(_) => "override and template changes wait too",
            None => "override and template changes still flow",
        };
        writeln(
            &mut out,
            format!(
                "{}: new versions wait, {overrides}, no auto-merge is turned on",
                f.message
            ),
        );
        if let Some(o) = f.overrides.as_ref().filter(|o| **o != f.message) {
            writeln(&mut out, format!("override changes: {o}"));
        }
    }
    // The budget is news only when it holds pull requests back.
    if let Some(b) = budget.filter(|b| b.remaining == 0) {
        writeln(
            &mut out,
            format!(
                "forge budget: {} of {} new pull requests this hour, none left",
                b.used, b.limit
            ),
        );
    }
    out
}

/// Adds the freeze window that applies (`freeze`) and the pull-request
/// budget (`budget`) to the JSON of a plan, a cycle or a status.
/// A plan's or a cycle's JSON, with the freeze and the budget it ran
/// under; `waves` only when the repository has a rollout block, `groups`
/// only when it has grouped waves.
#[derive(Serialize)]
pub struct Report<'a, T: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<&'a BudgetUse>,
    pub environments: &'a [T],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze: Option<&'a Frozen>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub groups: &'a [GroupOutcome],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub waves: &'a [WaveSummary],
}

fn writeln(out: &mut String, line: impl AsRef<str>) {
    out.push_str(line.as_ref());
    out.push('\n');
}

/// One paragraph per grouped wave: its branch, what its one pull request
/// does (or, in a plan, would do) and why, and its members.
pub fn groups(groups: &[GroupOutcome], planned: bool) -> String {
    let mut out = String::new();
    for g in groups {
        let what = match planned {
            true => g.decision.to_string(),
            false => g.action.to_string(),
        };
        let mut line = format!("wave {}  {what}  {}", g.wave, g.branch);
        if let Some(pr) = &g.pull_request {
            line.push_str(&format!("  PR #{} {}", pr.number, pr.url));
        }
        writeln(&mut out, line);
        writeln(&mut out, format!("  {}", g.reason));
        if !g.members.is_empty() {
            writeln(
                &mut out,
                format!(
                    "  {} environment(s): {}",
                    g.members.len(),
                    g.members.join(", ")
                ),
            );
        }
        if let Some(e) = &g.error {
            writeln(&mut out, format!("  error: {e}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::status::PrStatus;

    #[test]
    fn a_freeze_and_a_used_up_budget_show_above_the_plan() {
        let freeze = Frozen {
            reason: "weekend".into(),
            ends: "2026-12-07T08:00:00Z".into(),
            ends_local: "Mon 2026-12-07 09:00 CET".into(),
            message: "frozen until Mon 2026-12-07 09:00 CET: weekend".into(),
            overrides: None,
        };
        let budget = |remaining| BudgetUse {
            limit: 10,
            used: 10 - remaining,
            remaining,
        };
        assert_eq!(
            pacing(Some(&freeze), Some(&budget(0))),
            "frozen until Mon 2026-12-07 09:00 CET: weekend: new versions wait, override and template changes still flow, no auto-merge is turned on\nforge budget: 10 of 10 new pull requests this hour, none left\n"
        );
        assert_eq!(pacing(None, Some(&budget(3))), "");
    }

    #[test]
    fn a_row_says_what_waits() {
        let mut s = EnvStatus {
            env: "prod".into(),
            channel: Some("stable".into()),
            release: None,
            available: Some("0.63.0".into()),
            rendered: Some("0.62.1".into()),
            pull_request: Some(PrStatus {
                number: 7,
                title: "t".into(),
                url: "https://example.test/7".into(),
                opened_at: None,
                age_secs: Some(7_300),
                draft: false,
                waits_for_review: true,
            }),
            error: None,
            rollout: Default::default(),
            rollback: None,
            hold: None,
            state: crate::delivery::status::EnvState::Open,
        };
        assert_eq!(
            line(&s),
            [
                "prod",
                "stable",
                "0.63.0",
                "0.62.1",
                "#7 opened 2h ago, waits for review  https://example.test/7"
            ]
            .map(String::from)
        );
        s.pull_request = None;
        s.rendered = Some("0.63.0".into());
        assert_eq!(line(&s)[4], "up to date");
    }
}
