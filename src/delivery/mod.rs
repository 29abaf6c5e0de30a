//! Delivery as observe → plan → apply.
//!
//! For each environment, [`observe`] finds what is true now (its files on the
//! base branch, the tip of `hydrant/<env>` and who made it, the open pull
//! request), [`plan`] decides purely what should happen and why, and
//! [`apply`] carries the decision out with git and the forge; [`status`]
//! summarises the same observation for `hydrant status`. A dry run and
//! `hydrant plan` stop after the plan. [`crate::reconcile`] runs the three over
//! a cycle, with the retry policy for pushes that lose a race.

pub mod apply;
pub mod connect;
pub mod group;
pub mod holds;
pub mod observe;
pub mod pace;
pub mod plan;
pub mod review;
pub mod status;
pub mod text;

use serde::Serialize;

use crate::pipeline::{Problem, Rendered};
use crate::project::Render;

pub use plan::{Decision, ErrorClass, FileChange, Kind, Observed, Plan, Proposal, VersionChange};

/// What happened to an environment, as the summary and metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Opened,
    Updated,
    Unchanged,
    Closed,
    Skipped,
    Failed,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Opened => "opened",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::Closed => "closed",
            Action::Skipped => "skipped",
            Action::Failed => "failed",
        })
    }
}

impl Action {
    /// What carrying out a decision does, when it goes as planned: what a dry
    /// run reports.
    pub fn planned(decision: &Decision) -> Action {
        match decision {
            Decision::Open { .. } => Action::Opened,
            Decision::Update { .. } | Decision::Describe { .. } => Action::Updated,
            Decision::Nothing | Decision::DeleteBranch { .. } => Action::Unchanged,
            Decision::Close { .. } => Action::Closed,
            Decision::LeaveAlone { .. } => Action::Skipped,
            Decision::Failed { .. } => Action::Failed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrRef {
    pub number: u64,
    pub url: String,
}

impl From<&crate::forge::PullRequest> for PrRef {
    fn from(pr: &crate::forge::PullRequest) -> PrRef {
        PrRef {
            number: pr.number,
            url: pr.url.clone(),
        }
    }
}

/// What happened (or, in a dry run, would happen) to a grouped wave's one
/// branch, `hydrant/wave-<name>`, and pull request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupOutcome {
    pub wave: String,
    pub branch: String,
    /// The planner's decision and why.
    pub decision: Kind,
    pub action: Action,
    pub reason: String,
    /// The environments it delivers, one commit each, in order.
    pub members: Vec<String>,
    pub commit: Option<String>,
    pub pull_request: Option<PrRef>,
    pub error: Option<String>,
}

/// What happened (or, in a dry run, would happen) to one environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub env: String,
    pub action: Action,
    /// The planner's decision and why.
    pub decision: Kind,
    pub reason: String,
    /// The release channel the environment follows.
    pub channel: Option<String>,
    pub version: VersionChange,
    pub branch: String,
    pub commit: Option<String>,
    pub pull_request: Option<PrRef>,
    /// The files of `rendered/<env>/` the pull request changes.
    pub files: Vec<FileChange>,
    pub error: Option<String>,
    /// For a failure: whether it may pass by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<ErrorClass>,
    /// Where it stands in its rollout.
    #[serde(flatten)]
    pub rollout: crate::rollout::Position,
}

impl Outcome {
    /// The outcome a plan promises, before (or instead of) carrying it out.
    pub fn planned(plan: &Plan, observed: &Observed) -> Outcome {
        let (error, class) = match &plan.decision {
            Decision::Failed { error, class } => (Some(error.clone()), Some(*class)),
            _ => (None, None),
        };
        Outcome {
            env: plan.env.clone(),
            action: Action::planned(&plan.decision),
            decision: plan.decision.kind(),
            reason: plan.reason.clone(),
            channel: plan.channel.clone(),
            version: plan.version.clone(),
            branch: crate::git::branch_name(&plan.env),
            commit: observed.branch.as_ref().map(|t| t.commit.clone()),
            pull_request: observed.pull_request.as_ref().map(|pr| PrRef {
                number: pr.number,
                url: pr.url.clone(),
            }),
            files: plan.files.clone(),
            error,
            class,
            rollout: Default::default(),
        }
    }

    /// The outcome with what the rollout said of the environment.
    pub fn with_verdict(mut self, verdict: Option<&crate::rollout::Verdict>) -> Outcome {
        if let Some(v) = verdict {
            self.rollout = v.position();
            if v.state == crate::rollout::State::Rollback
                && let Some(why) = &v.reason
            {
                self.reason = format!("{why}; {}", self.reason);
            }
        }
        self
    }

    /// An environment that failed before it could be planned.
    pub fn failed(env: &str, error: String, class: ErrorClass) -> Outcome {
        let observed = Observed {
            env: env.to_string(),
            ..Observed::default()
        };
        let proposal = Proposal::Failed { error, class };
        Outcome::planned(&plan::plan(&observed, &proposal), &observed)
    }
}

/// Problems in one line, with their hints.
pub fn problems_text(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| match &p.hint {
            Some(h) => format!("{} (hint: {h})", p.message),
            None => p.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a render proposes for an environment, given its files on the base
/// branch: the pull request title, description and commit message are
/// written here, from the files before and after.
pub fn propose(
    observed: &Observed,
    source_commit: &str,
    render: &Result<Render, Vec<Problem>>,
    recorded: Option<&crate::manifest::layout::Metadata>,
    verdict: Option<&crate::rollout::Verdict>,
) -> Proposal {
    let rendered: &Rendered = match render {
        Ok(Render::Fresh(r)) => r,
        Ok(Render::Current) => {
            return match recorded {
                Some(m) => Proposal::Current {
                    channel: m.channel.name.clone(),
                    version: m.channel.version.clone(),
                },
                None => Proposal::Failed {
                    error: "its recorded render is gone".to_string(),
                    class: ErrorClass::Transient,
                },
            };
        }
        Err(problems) => {
            let class = if problems.iter().all(|p| p.transient) {
                ErrorClass::Transient
            } else {
                ErrorClass::Permanent
            };
            let mut error = problems_text(problems);
            let (_, total) = plan::deletions(&observed.base_files, &Default::default());
            if total > 0 && problems.contains(&Problem::no_resources(&observed.env)) {
                error = format!(
                    "refused: would delete {total} of {total} resources of `rendered/{}/`: {error}",
                    observed.env
                );
            }
            return Proposal::Failed { error, class };
        }
    };
    let from = plan::recorded_version(&observed.base_files);
    let (channel, version) = (
        &rendered.metadata.channel.name,
        &rendered.metadata.channel.version,
    );
    if plan::same_manifests(&observed.base_files, &rendered.files) {
        // The planner settles an environment whose manifests do not change:
        // it needs no pull request text.
        return Proposal::Fresh(Box::new(plan::Delivery {
            channel: channel.clone(),
            version: version.clone(),
            files: rendered.files.clone(),
            title: String::new(),
            body: String::new(),
            commit_message: String::new(),
            max_deletions: rendered.max_deletions,
            mass_deletion: rendered.mass_deletion,
        }));
    }
    let change = review::Change {
        env: &observed.env,
        namespace: &rendered.metadata.namespace,
        channel: &rendered.metadata.channel.name,
        from_version: from.as_deref(),
        to_version: &rendered.metadata.channel.version,
        base: &observed.base_branch,
        source_commit,
        old_files: &observed.base_files,
        new_files: &rendered.files,
        manifests: &rendered.manifests,
        provenance: &rendered.merged.provenance,
        warnings: &rendered.warnings,
        wave: verdict.and_then(|v| {
            v.wave.as_deref().map(|name| review::WaveText {
                name,
                earlier: &v.earlier,
            })
        }),
    };
    let (mut title, mut body) = (review::title(&change), review::body(&change));
    if let Some(v) = verdict.filter(|v| v.state == crate::rollout::State::Rollback) {
        let (rollback_title, section) = review::rollback(
            &change,
            v.reason.as_deref().unwrap_or("a health gate failed"),
        );
        title = rollback_title;
        body = format!("{section}{body}");
    }
    let mut delivery = plan::Delivery {
        channel: channel.clone(),
        version: version.clone(),
        files: rendered.files.clone(),
        title,
        body,
        commit_message: review::commit_message(&change),
        max_deletions: rendered.max_deletions,
        mass_deletion: rendered.mass_deletion,
    };
    if let (Some(allowance), Some((removed, total))) = (
        delivery.mass_deletion,
        plan::mass_deletion(&observed.base_files, &delivery),
    ) {
        let warning = review::mass_deletion_warning(&observed.env, removed, total, allowance);
        delivery.body = format!("{warning}{}", delivery.body);
    }
    Proposal::Fresh(Box::new(delivery))
}
