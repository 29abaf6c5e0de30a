//! What should happen to each environment, and why.
//!
//! [`plan`] is a pure function: from what [`super::observe`] found to be true
//! (the environment's files on the base branch, the tip of `hydrant/<env>` and
//! who made it, the open pull request) and what the render proposes, it
//! decides one [`Decision`] and says why in words. It reads no clock, no git
//! and no forge; [`super::apply`] carries the decision out, and a dry run or
//! `hydrant plan` prints it instead.
//!
//! The planner is idempotent by construction: planning again over the state
//! that applying a plan produced gives a plan that changes nothing.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{Allowance, MaxDeletions};
use crate::forge::PullRequest;
use crate::manifest::layout::{self, METADATA};
use crate::rollout::{State, Verdict};

/// Marks hydrant's one comment on a pull request whose branch a person pushed to.
pub const HUMAN_MARKER: &str = "<!-- hydrant:foreign-commit -->";

/// What is true now about one environment, as observed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub env: String,
    /// The branch pull requests target.
    pub base_branch: String,
    /// `rendered/<env>/` on the base branch, by file name.
    pub base_files: BTreeMap<String, String>,
    /// The tip of `hydrant/<env>`, if the branch exists.
    pub branch: Option<BranchTip>,
    /// The open pull request from `hydrant/<env>`. Not looked up (so `None`)
    /// for an environment whose inputs are unchanged and that has no branch:
    /// a forge closes a pull request whose branch is gone.
    pub pull_request: Option<PullRequest>,
    /// Whether hydrant already told the open pull request that a person
    /// pushed to its branch (looked up only when one did).
    pub told_human: bool,
}

/// The tip of `hydrant/<env>`.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchTip {
    pub commit: String,
    /// Whether hydrant made the tip commit (it carries hydrant's trailer).
    pub by_hydrant: bool,
    /// Who made the tip commit.
    pub author: String,
    /// The git tree id of `rendered/<env>/` at the tip.
    pub rendered_tree: Option<String>,
    /// Whether the tip is one commit on a commit of the base branch whose
    /// `rendered/<env>/` is still the base's: its pull request merges cleanly.
    pub on_current_base: bool,
    /// The channel version `hydrant.metadata` records at the tip.
    pub version: Option<String>,
}

/// What the render of one environment proposes.
#[derive(Debug, Clone, PartialEq)]
pub enum Proposal {
    /// A fresh render, with the pull request that would deliver it.
    Fresh(Box<Delivery>),
    /// The inputs digest to what `hydrant.metadata` on the base branch
    /// records: the render would be the files already there.
    Current { channel: String, version: String },
    /// The environment could not be rendered.
    Failed { error: String, class: ErrorClass },
}

/// A fresh render and how it would reach the base branch.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub channel: String,
    pub version: String,
    /// The files of `rendered/<env>/`, by name.
    pub files: BTreeMap<String, String>,
    pub title: String,
    pub body: String,
    pub commit_message: String,
    /// How many of the base's resources the delivery may delete.
    pub max_deletions: MaxDeletions,
    /// Who allowed it to delete more, if anyone.
    pub mass_deletion: Option<Allowance>,
}

/// Whether a failure may pass by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// Network, a server's 5xx or rate limit, a lock, a lost race: try again
    /// with this environment's own backoff.
    Transient,
    /// Bad input, a template error, refused by policy: wait for the inputs
    /// to change.
    Permanent,
}

/// One environment's decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Push the render to `hydrant/<env>` (unless the branch already holds
    /// it) and open a pull request.
    Open { push: Option<Push> },
    /// Push (if the branch does not hold the render yet) and update the open
    /// pull request in place.
    Update { push: Option<Push>, number: u64 },
    /// Rewrite the open pull request's description only: no push, no new
    /// commit (a held environment's pull request says that it is held, and
    /// stops saying so when the hold is released).
    Describe { number: u64, body: String },
    /// The branch and pull request, if any, are what they should be.
    Nothing,
    /// The base branch already holds the render: close the pull request with
    /// a comment, and delete hydrant's branch.
    Close {
        number: u64,
        comment: String,
        delete_branch: Option<String>,
    },
    /// A branch hydrant made that no pull request needs: delete it.
    DeleteBranch { tip: String },
    /// A person pushed to `hydrant/<env>`: their work is never overwritten.
    /// Comment once on the pull request (when `comment` is set).
    LeaveAlone {
        number: Option<u64>,
        comment: Option<String>,
    },
    /// The environment could not be rendered or observed.
    Failed { error: String, class: ErrorClass },
}

/// A commit to make on the base branch and push to `hydrant/<env>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub message: String,
    /// The tip the push replaces (a lease: another writer's change is never
    /// overwritten).
    pub replaces: Option<String>,
}

/// The decision's name, as `plan` and `--output json` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Open,
    Update,
    Nothing,
    Close,
    DeleteBranch,
    LeaveAlone,
    Failed,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Open => "open",
            Kind::Update => "update",
            Kind::Nothing => "nothing",
            Kind::Close => "close",
            Kind::DeleteBranch => "delete-branch",
            Kind::LeaveAlone => "leave-alone",
            Kind::Failed => "failed",
        })
    }
}

impl Decision {
    pub fn kind(&self) -> Kind {
        match self {
            Decision::Open { .. } => Kind::Open,
            Decision::Update { .. } | Decision::Describe { .. } => Kind::Update,
            Decision::Nothing => Kind::Nothing,
            Decision::Close { .. } => Kind::Close,
            Decision::DeleteBranch { .. } => Kind::DeleteBranch,
            Decision::LeaveAlone { .. } => Kind::LeaveAlone,
            Decision::Failed { .. } => Kind::Failed,
        }
    }

    /// Whether carrying the decision out writes nothing to git or the forge.
    pub fn changes_nothing(&self) -> bool {
        matches!(
            self,
            Decision::Nothing
                | Decision::Failed { .. }
                | Decision::LeaveAlone { comment: None, .. }
        )
    }
}

/// The channel version an environment goes from and to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VersionChange {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl VersionChange {
    /// `0.62.1 → 0.63.0`, `(new) → 0.63.0`, or the version alone when it
    /// does not change, as the summaries and the plan show it.
    pub fn shown(&self) -> String {
        match (&self.from, &self.to) {
            (Some(f), Some(t)) if f != t => format!("{f} → {t}"),
            (None, Some(t)) => format!("(new) → {t}"),
            (_, Some(t)) => t.clone(),
            _ => String::new(),
        }
    }
}

/// How a file of `rendered/<env>/` would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    pub change: Change,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

impl Change {
    /// `+`, `-` or `~`, as the plan marks a file.
    pub fn mark(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Changed => '~',
        }
    }
}

/// One environment's plan: the decision, why, and what it would change.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub env: String,
    pub decision: Decision,
    /// Why, in words, for people.
    pub reason: String,
    pub channel: Option<String>,
    pub version: VersionChange,
    /// The files of `rendered/<env>/` the pull request changes, against the base.
    pub files: Vec<FileChange>,
}

/// The channel version recorded in a set of rendered files.
pub fn recorded_version(files: &BTreeMap<String, String>) -> Option<String> {
    let meta: layout::Metadata = serde_json::from_str(files.get(METADATA)?).ok()?;
    Some(meta.channel.version)
}

/// Whether two renders of `rendered/<env>/` differ in more than `hydrant.metadata`.
pub(crate) fn same_manifests(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    let manifests = |m: &BTreeMap<String, String>| {
        m.iter()
            .filter(|(name, _)| name.as_str() != METADATA)
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect::<Vec<_>>()
    };
    a.len() == b.len() && manifests(a) == manifests(b)
}

/// How many of the resources of `rendered/<env>/` on the base branch a
/// render deletes, of how many: `(removed, total)`. A resource is one file
/// (one object); `kustomization.yaml` and `hydrant.metadata` are not
/// resources. A resource renamed counts as deleted: Argo CD or Flux prunes it.
pub fn deletions(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> (usize, usize) {
    let resources = super::review::resource_files(old);
    let removed = resources
        .iter()
        .filter(|name| !new.contains_key(**name))
        .count();
    (removed, resources.len())
}

/// A delivery that deletes more of the base's resources than its
/// `maxDeletions` lets it, or all of them: `(removed, total)`, whether or not
/// it is allowed.
pub fn mass_deletion(
    old: &BTreeMap<String, String>,
    delivery: &Delivery,
) -> Option<(usize, usize)> {
    let (removed, total) = deletions(old, &delivery.files);
    (!delivery.max_deletions.allows(removed, total)).then_some((removed, total))
}

/// Why a delivery is refused for deleting more resources than it may, when
/// nothing allowed it: what [`plan`] decides for it.
pub fn refused(observed: &Observed, proposal: &Proposal) -> Option<String> {
    let Proposal::Fresh(delivery) = proposal else {
        return None;
    };
    if delivery.mass_deletion.is_some() {
        return None;
    }
    let (removed, total) = mass_deletion(&observed.base_files, delivery)?;
    Some(refusal(
        &observed.env,
        removed,
        total,
        delivery.max_deletions,
    ))
}

/// Why a mass deletion is refused, with what would allow it.
fn refusal(env: &str, removed: usize, total: usize, max: MaxDeletions) -> String {
    let limit = match removed >= total {
        true => "never all of them".to_string(),
        false => format!("at most `maxDeletions` ({max})"),
    };
    format!(
        "refused: would delete {removed} of {total} resources of `rendered/{env}/` ({limit}); to deliver it, set `allowMassDeletion: true` in `environments/{env}/environment.yaml` or run once with `--allow-mass-deletion`"
    )
}

pub(crate) fn file_changes(
    env: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<FileChange> {
    let path = |name: &str| format!("rendered/{env}/{name}");
    let mut out: Vec<FileChange> = Vec::new();
    for (name, text) in new {
        match old.get(name) {
            None => out.push(FileChange {
                path: path(name),
                change: Change::Added,
            }),
            Some(t) if t != text => out.push(FileChange {
                path: path(name),
                change: Change::Changed,
            }),
            Some(_) => {}
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        out.push(FileChange {
            path: path(name),
            change: Change::Removed,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Decides what should happen to one environment, and why.
pub fn plan(observed: &Observed, proposal: &Proposal) -> Plan {
    plan_rollout(observed, proposal, None)
}

/// What the rollout's verdict decides about an open pull request of
/// hydrant's that offers another version than the render's: a skipped
/// version is closed; a held environment's, or one whose wave waits for the
/// version it offers, is left open and not pushed to; one the rollout moved
/// past (it restarted with a newer release) is closed. `None`: plan as usual.
fn rollout_decision(
    observed: &Observed,
    rendering: &str,
    verdict: &Verdict,
) -> Option<(Decision, String)> {
    let pr = observed.pull_request.as_ref()?;
    let tip = observed.branch.as_ref().filter(|t| t.by_hydrant)?;
    let offered = tip.version.as_deref()?;
    if offered == rendering {
        return None;
    }
    let env = observed.env.as_str();
    let close = |comment: String, reason: String| {
        Some((
            Decision::Close {
                number: pr.number,
                comment,
                delete_branch: Some(tip.commit.clone()),
            },
            reason,
        ))
    };
    if verdict.skipped.iter().any(|v| v == offered) {
        return close(
            format!(
                "Closed by hydrant: release `{offered}` is skipped (`skip` in `holds.yaml`), so it is not offered to `{env}`."
            ),
            format!(
                "pull request #{} offers {offered}, which is skipped: close it",
                pr.number
            ),
        );
    }
    if !verdict.stays() {
        return None;
    }
    let why = verdict.reason.clone().unwrap_or_default();
    if verdict.state == State::Held || verdict.target.as_deref() == Some(offered) {
        let hold = verdict
            .hold
            .as_ref()
            .filter(|_| verdict.state == State::Held);
        let body = super::review::with_held_note(&pr.body, env, hold);
        if body == pr.body {
            return Some((
                Decision::Nothing,
                format!(
                    "{why}; pull request #{} ({offered}) is left open and not updated",
                    pr.number
                ),
            ));
        }
        let what = match hold {
            Some(_) => "to say that it is held",
            None => "as the hold is released",
        };
        return Some((
            Decision::Describe {
                number: pr.number,
                body,
            },
            format!(
                "{why}; pull request #{} ({offered}) is left open and not pushed to; its description is rewritten {what}",
                pr.number
            ),
        ));
    }
    let target = verdict.target.as_deref().unwrap_or("a newer release");
    close(
        format!(
            "Closed by hydrant: `{offered}` was superseded by `{target}`, which reaches `{env}` in its rollout wave's turn ({why})."
        ),
        format!(
            "pull request #{} offers {offered}, superseded by {target}: close it ({why})",
            pr.number
        ),
    )
}

/// Decides what should happen to one environment, and why, given what its
/// channel's rollout lets it take now.
pub fn plan_rollout(observed: &Observed, proposal: &Proposal, verdict: Option<&Verdict>) -> Plan {
    let env = observed.env.as_str();
    let branch = crate::git::branch_name(env);
    let base = observed.base_branch.as_str();
    let from = recorded_version(&observed.base_files);
    let mut plan = Plan {
        env: env.to_string(),
        decision: Decision::Nothing,
        reason: String::new(),
        channel: None,
        version: VersionChange {
            from: from.clone(),
            to: None,
        },
        files: Vec::new(),
    };
    let ours = observed.branch.as_ref().filter(|t| t.by_hydrant);
    let pr = observed.pull_request.as_ref();
    let settle = |plan: Plan, why: String| -> Plan {
        let (decision, reason) = match (pr, ours) {
            (Some(pr), _) => (
                Decision::Close {
                    number: pr.number,
                    comment: format!(
                        "Closed by hydrant: `rendered/{env}/` is already up to date on `{base}`, so this pull request is no longer needed."
                    ),
                    delete_branch: ours.map(|t| t.commit.clone()),
                },
                format!("{why}; pull request #{} is no longer needed", pr.number),
            ),
            (None, Some(t)) => (
                Decision::DeleteBranch {
                    tip: t.commit.clone(),
                },
                format!("{why}; `{branch}` has no pull request and nothing needs it"),
            ),
            (None, None) => (Decision::Nothing, why),
        };
        Plan {
            decision,
            reason,
            ..plan
        }
    };
    let rendering = match proposal {
        Proposal::Fresh(d) => Some(d.version.as_str()),
        Proposal::Current { version, .. } => Some(version.as_str()),
        Proposal::Failed { .. } => None,
    };
    if let (Some(rendering), Some(verdict)) = (rendering, verdict)
        && let Some((decision, reason)) = rollout_decision(observed, rendering, verdict)
    {
        plan.channel = Some(verdict.channel.clone());
        plan.version.to = Some(rendering.to_string());
        plan.decision = decision;
        plan.reason = reason;
        return plan;
    }
    let delivery = match proposal {
        Proposal::Failed { error, class } => {
            plan.decision = Decision::Failed {
                error: error.clone(),
                class: *class,
            };
            plan.reason = match class {
                ErrorClass::Transient => {
                    "it could not be delivered this time; it is tried again with its own backoff"
                        .to_string()
                }
                ErrorClass::Permanent => {
                    "it cannot be rendered; it is tried again when its inputs change".to_string()
                }
            };
            return plan;
        }
        Proposal::Current { channel, version } => {
            // The base holds the render of these inputs, at this version.
            plan.channel = Some(channel.clone());
            plan.version = VersionChange {
                from: Some(version.clone()),
                to: Some(version.clone()),
            };
            return settle(
                plan,
                format!("its inputs are unchanged since the render recorded on `{base}`"),
            );
        }
        Proposal::Fresh(d) => d,
    };
    plan.channel = Some(delivery.channel.clone());
    plan.version.to = Some(delivery.version.clone());
    if observed.base_files == delivery.files {
        return settle(plan, format!("`{base}` already holds this render"));
    }
    if same_manifests(&observed.base_files, &delivery.files) {
        return settle(
            plan,
            format!(
                "only `{METADATA}` would change (a comment or formatting in the inputs): no manifest changes"
            ),
        );
    }
    plan.files = file_changes(env, &observed.base_files, &delivery.files);
    if delivery.mass_deletion.is_none()
        && let Some((removed, total)) = mass_deletion(&observed.base_files, delivery)
    {
        let refused =
            format!("refused: would delete {removed} of {total} resources of `rendered/{env}/`");
        plan.reason = match pr {
            Some(pr) => format!(
                "{refused}; nothing is pushed, and pull request #{} is left as it is",
                pr.number
            ),
            None => format!("{refused}; nothing is pushed and no pull request is opened"),
        };
        let error = refusal(env, removed, total, delivery.max_deletions);
        plan.decision = Decision::Failed {
            error,
            class: ErrorClass::Permanent,
        };
        return plan;
    }
    if let Some(tip) = observed.branch.as_ref().filter(|t| !t.by_hydrant) {
        let comment = (pr.is_some() && !observed.told_human).then(|| {
            format!(
                "{HUMAN_MARKER}\nhydrant found a commit on `{branch}` that it did not make (by {}), so it will not overwrite it and leaves this pull request alone. To let hydrant take over again, close this pull request and delete the branch.",
                tip.author
            )
        });
        plan.decision = Decision::LeaveAlone {
            number: pr.map(|p| p.number),
            comment,
        };
        plan.reason = format!(
            "`{branch}` holds a commit hydrant did not make (by {}); it is left as it is",
            tip.author
        );
        return plan;
    }
    let tree = layout::git_tree_id(&delivery.files);
    let current =
        ours.filter(|t| t.on_current_base && t.rendered_tree.as_deref() == Some(tree.as_str()));
    let push = match current {
        Some(_) => None,
        None => Some(Push {
            message: delivery.commit_message.clone(),
            replaces: ours.map(|t| t.commit.clone()),
        }),
    };
    let change = match (&plan.version.from, &plan.version.to) {
        (Some(f), Some(t)) if f != t => format!("{} {f} → {t}", delivery.channel),
        (None, Some(t)) => format!("{} {t}, new to `{base}`", delivery.channel),
        _ => "a re-render of changed overrides or templates".to_string(),
    };
    match pr {
        None => {
            plan.reason = match push {
                Some(_) => format!(
                    "the render differs from `{base}` ({change}): push `{branch}` and open a pull request"
                ),
                None => format!(
                    "`{branch}` already holds the render ({change}) but no pull request is open: open one"
                ),
            };
            plan.decision = Decision::Open { push };
        }
        Some(pr) => {
            let same_text = pr.title == delivery.title && pr.body == delivery.body;
            match (&push, same_text) {
                (None, true) => {
                    plan.reason = format!(
                        "`{branch}` and pull request #{} already deliver this render ({change})",
                        pr.number
                    );
                    plan.decision = Decision::Nothing;
                }
                (None, false) => {
                    plan.reason = format!(
                        "`{branch}` holds the render ({change}); pull request #{}'s title or description is out of date",
                        pr.number
                    );
                    plan.decision = Decision::Update {
                        push,
                        number: pr.number,
                    };
                }
                (Some(_), _) => {
                    plan.reason = format!(
                        "the render differs from `{base}` and from `{branch}` ({change}): push and update pull request #{} in place",
                        pr.number
                    );
                    plan.decision = Decision::Update {
                        push,
                        number: pr.number,
                    };
                }
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::PrState;

    #[test]
    fn a_version_change_shows_where_it_goes_from_and_to() {
        let change = |from: Option<&str>, to: Option<&str>| VersionChange {
            from: from.map(String::from),
            to: to.map(String::from),
        };
        assert_eq!(
            change(Some("0.62.1"), Some("0.63.0")).shown(),
            "0.62.1 → 0.63.0"
        );
        assert_eq!(change(None, Some("0.63.0")).shown(), "(new) → 0.63.0");
        assert_eq!(change(Some("0.63.0"), Some("0.63.0")).shown(), "0.63.0");
        assert_eq!(change(Some("0.63.0"), None).shown(), "");
    }

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    fn metadata(version: &str, digest: &str) -> String {
        format!(
            r#"{{"environment":"prod","namespace":"wandb","channel":{{"name":"stable","version":"{version}","release":null}},"inputs":{{"channel":"c","environment":"e","values":null,"pinned":null,"templates":"t"}},"digest":"{digest}","renderer":1,"resources":1}}"#
        )
    }

    /// `rendered/prod/` at a version, with a deployment that says `body`.
    fn rendered(version: &str, body: &str) -> BTreeMap<String, String> {
        files(&[
            ("deployment-app.yaml", body),
            (
                "kustomization.yaml",
                "resources:\n  - deployment-app.yaml\n",
            ),
            (METADATA, &metadata(version, body)),
        ])
    }

    fn fresh(version: &str, body: &str) -> Proposal {
        Proposal::Fresh(Box::new(Delivery {
            channel: "stable".into(),
            version: version.into(),
            files: rendered(version, body),
            title: format!("hydrant(prod): stable {version}"),
            body: format!("body for {body}"),
            commit_message: format!(
                "hydrant(prod): stable {version}\n\nHydrant-Environment: prod\n"
            ),
            max_deletions: MaxDeletions::default(),
            mass_deletion: None,
        }))
    }

    /// `rendered/prod/` at a version, with one config map per name.
    fn rendered_maps(version: &str, names: &[&str]) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = names
            .iter()
            .map(|n| (format!("configmap-{n}.yaml"), format!("name: {n}\n")))
            .collect();
        let listed: String = out.keys().map(|f| format!("  - {f}\n")).collect();
        out.insert("kustomization.yaml".into(), format!("resources:\n{listed}"));
        out.insert(METADATA.into(), metadata(version, &names.join(",")));
        out
    }

    /// A render of config maps, allowed to delete many of them by `allowance`.
    fn fresh_maps(version: &str, names: &[&str], allowance: Option<Allowance>) -> Proposal {
        match fresh(version, "maps") {
            Proposal::Fresh(mut d) => {
                d.files = rendered_maps(version, names);
                d.mass_deletion = allowance;
                Proposal::Fresh(d)
            }
            other => other,
        }
    }

    fn base_maps(names: &[&str]) -> Observed {
        Observed {
            base_files: rendered_maps("0.62.1", names),
            ..base("0.62.1", "v1")
        }
    }

    fn base(version: &str, body: &str) -> Observed {
        Observed {
            env: "prod".into(),
            base_branch: "main".into(),
            base_files: rendered(version, body),
            ..Observed::default()
        }
    }

    fn tip_holding(
        files: &BTreeMap<String, String>,
        by_hydrant: bool,
        on_current_base: bool,
    ) -> BranchTip {
        BranchTip {
            commit: "c0ffee".into(),
            by_hydrant,
            author: if by_hydrant { "hydrant" } else { "Ada" }.into(),
            rendered_tree: Some(layout::git_tree_id(files)),
            on_current_base,
            version: recorded_version(files),
        }
    }

    fn pr(number: u64, title: &str, body: &str) -> PullRequest {
        PullRequest {
            number,
            url: format!("file:///pulls/{number}.json"),
            title: title.into(),
            body: body.into(),
            head: "hydrant/prod".into(),
            base: "main".into(),
            state: PrState::Open,
            comments: Vec::new(),
            id: None,
            labels: Vec::new(),
            reviewers: Vec::new(),
            draft: false,
            auto_merge: false,
            created_at: None,
        }
    }

    fn pr_for(proposal: &Proposal, number: u64) -> PullRequest {
        match proposal {
            Proposal::Fresh(d) => pr(number, &d.title, &d.body),
            _ => pr(number, "old", "old"),
        }
    }

    fn delivered(proposal: &Proposal) -> BTreeMap<String, String> {
        match proposal {
            Proposal::Fresh(d) => d.files.clone(),
            _ => BTreeMap::new(),
        }
    }

    /// The situations the planner meets, and what it must decide.
    fn table() -> Vec<(&'static str, Observed, Proposal, Kind, &'static str)> {
        let bump = fresh("0.63.0", "v2");
        let bump_files = delivered(&bump);
        let old_files = rendered("0.62.1", "v1");
        // The render of 0.63.0 at "v2" with only another inputs digest.
        let mut metadata_only = fresh("0.63.0", "v2");
        if let Proposal::Fresh(d) = &mut metadata_only {
            d.files
                .insert(METADATA.into(), metadata("0.63.0", "another digest"));
        }
        let five = ["a", "b", "c", "d", "e"];
        vec![
            (
                "a render that deletes three of five resources",
                base_maps(&five),
                fresh_maps("0.63.0", &["a", "b"], None),
                Kind::Failed,
                "refused: would delete 3 of 5 resources of `rendered/prod/`; nothing is pushed and no pull request is opened",
            ),
            (
                "a render that renames every resource",
                base_maps(&five),
                fresh_maps("0.63.0", &["v", "w", "x", "y", "z"], None),
                Kind::Failed,
                "refused: would delete 5 of 5 resources of `rendered/prod/`; nothing is pushed",
            ),
            (
                "a mass deletion whose pull request is open",
                Observed {
                    branch: Some(tip_holding(&rendered_maps("0.62.2", &five), true, true)),
                    pull_request: Some(pr(4, "t", "b")),
                    ..base_maps(&five)
                },
                fresh_maps("0.63.0", &["a"], None),
                Kind::Failed,
                "would delete 4 of 5 resources of `rendered/prod/`; nothing is pushed, and pull request #4 is left as it is",
            ),
            (
                "a render that deletes two of five resources",
                base_maps(&five),
                fresh_maps("0.63.0", &["a", "b", "c"], None),
                Kind::Open,
                "push `hydrant/prod` and open a pull request",
            ),
            (
                "a mass deletion the environment allows",
                base_maps(&five),
                fresh_maps("0.63.0", &["a"], Some(Allowance::Environment)),
                Kind::Open,
                "push `hydrant/prod` and open a pull request",
            ),
            (
                "a run that allows renaming every resource",
                base_maps(&five),
                fresh_maps("0.63.0", &["z"], Some(Allowance::Run)),
                Kind::Open,
                "push `hydrant/prod` and open a pull request",
            ),
            (
                "a new release, no branch, no pull request",
                base("0.62.1", "v1"),
                bump.clone(),
                Kind::Open,
                "push `hydrant/prod` and open a pull request",
            ),
            (
                "the base already holds the render",
                base("0.63.0", "v2"),
                bump.clone(),
                Kind::Nothing,
                "already holds this render",
            ),
            (
                "the base holds the render and a pull request is still open",
                Observed {
                    branch: Some(tip_holding(&bump_files, true, false)),
                    pull_request: Some(pr_for(&bump, 4)),
                    ..base("0.63.0", "v2")
                },
                bump.clone(),
                Kind::Close,
                "pull request #4 is no longer needed",
            ),
            (
                "the base holds the render and a leftover branch has no pull request",
                Observed {
                    branch: Some(tip_holding(&bump_files, true, false)),
                    ..base("0.63.0", "v2")
                },
                bump.clone(),
                Kind::DeleteBranch,
                "nothing needs it",
            ),
            (
                "the branch and pull request already deliver the render",
                Observed {
                    branch: Some(tip_holding(&bump_files, true, true)),
                    pull_request: Some(pr_for(&bump, 4)),
                    ..base("0.62.1", "v1")
                },
                bump.clone(),
                Kind::Nothing,
                "already deliver this render",
            ),
            (
                "a newer release while a pull request is open",
                Observed {
                    branch: Some(tip_holding(&rendered("0.63.0", "v2"), true, true)),
                    pull_request: Some(pr(4, "hydrant(prod): stable 0.63.0", "body for v2")),
                    ..base("0.62.1", "v1")
                },
                fresh("0.64.0", "v3"),
                Kind::Update,
                "push and update pull request #4 in place",
            ),
            (
                "the branch holds the render but the base moved under it",
                Observed {
                    branch: Some(tip_holding(&bump_files, true, false)),
                    pull_request: Some(pr_for(&bump, 4)),
                    ..base("0.62.1", "v1")
                },
                bump.clone(),
                Kind::Update,
                "push and update",
            ),
            (
                "the branch holds the render but the description is out of date",
                Observed {
                    branch: Some(tip_holding(&bump_files, true, true)),
                    pull_request: Some(pr(4, "hydrant(prod): stable 0.63.0", "an older body")),
                    ..base("0.62.1", "v1")
                },
                bump.clone(),
                Kind::Update,
                "title or description is out of date",
            ),
            (
                "the branch holds the render but its pull request was closed by hand",
                Observed {
                    branch: Some(tip_holding(&bump_files, true, true)),
                    ..base("0.62.1", "v1")
                },
                bump.clone(),
                Kind::Open,
                "no pull request is open: open one",
            ),
            (
                "a branch left by an earlier render, with no pull request",
                Observed {
                    branch: Some(tip_holding(&old_files, true, true)),
                    ..base("0.62.0", "v0")
                },
                bump.clone(),
                Kind::Open,
                "push `hydrant/prod` and open a pull request",
            ),
            (
                "a person pushed to the branch of an open pull request",
                Observed {
                    branch: Some(tip_holding(&old_files, false, true)),
                    pull_request: Some(pr(4, "t", "b")),
                    ..base("0.62.0", "v0")
                },
                bump.clone(),
                Kind::LeaveAlone,
                "holds a commit hydrant did not make (by Ada)",
            ),
            (
                "a person pushed, and hydrant already said so",
                Observed {
                    branch: Some(tip_holding(&old_files, false, true)),
                    pull_request: Some(pr(4, "t", "b")),
                    told_human: true,
                    ..base("0.62.0", "v0")
                },
                bump.clone(),
                Kind::LeaveAlone,
                "it is left as it is",
            ),
            (
                "only hydrant.metadata would change",
                base("0.63.0", "v2"),
                metadata_only.clone(),
                Kind::Nothing,
                "only `hydrant.metadata` would change",
            ),
            (
                "only hydrant.metadata would change while a pull request is open",
                Observed {
                    branch: Some(tip_holding(&rendered("0.64.0", "v3"), true, true)),
                    pull_request: Some(pr(4, "t", "b")),
                    ..base("0.63.0", "v2")
                },
                metadata_only.clone(),
                Kind::Close,
                "no manifest changes; pull request #4 is no longer needed",
            ),
            (
                "inputs unchanged and no branch",
                base("0.63.0", "v2"),
                Proposal::Current {
                    channel: "stable".into(),
                    version: "0.63.0".into(),
                },
                Kind::Nothing,
                "inputs are unchanged",
            ),
            (
                "inputs unchanged and a pull request left open",
                Observed {
                    branch: Some(tip_holding(&bump_files, true, true)),
                    pull_request: Some(pr(4, "t", "b")),
                    ..base("0.63.0", "v2")
                },
                Proposal::Current {
                    channel: "stable".into(),
                    version: "0.63.0".into(),
                },
                Kind::Close,
                "inputs are unchanged",
            ),
            (
                "a broken override",
                base("0.62.1", "v1"),
                Proposal::Failed {
                    error: "environments/prod/values.yaml, line 3: bad".into(),
                    class: ErrorClass::Permanent,
                },
                Kind::Failed,
                "tried again when its inputs change",
            ),
            (
                "an environment that could not be observed",
                base("0.62.1", "v1"),
                Proposal::Failed {
                    error: "github: 502".into(),
                    class: ErrorClass::Transient,
                },
                Kind::Failed,
                "with its own backoff",
            ),
            (
                "a new environment, not yet on the base branch",
                Observed {
                    base_files: BTreeMap::new(),
                    ..base("0.62.1", "v1")
                },
                bump.clone(),
                Kind::Open,
                "stable 0.63.0, new to `main`",
            ),
        ]
    }

    #[test]
    fn each_observed_situation_gets_its_decision_and_reason() {
        let cases = table();
        assert!(cases.len() >= 15);
        for (name, observed, proposal, kind, reason) in cases {
            let plan = plan(&observed, &proposal);
            assert_eq!(plan.decision.kind(), kind, "{name}: {plan:?}");
            assert!(
                plan.reason.contains(reason),
                "{name}: the reason `{}` does not say `{reason}`",
                plan.reason
            );
        }
    }

    /// What carrying out a plan leaves behind, as the next observation sees it.
    fn applied(observed: &Observed, proposal: &Proposal, plan: &Plan) -> Observed {
        let mut next = observed.clone();
        let now_delivered = |next: &mut Observed, d: &Delivery, number: u64| {
            next.branch = Some(tip_holding(&d.files, true, true));
            next.pull_request = Some(pr(number, &d.title, &d.body));
        };
        match (&plan.decision, proposal) {
            (Decision::Open { .. }, Proposal::Fresh(d)) => now_delivered(&mut next, d, 9),
            (Decision::Update { number, .. }, Proposal::Fresh(d)) => {
                now_delivered(&mut next, d, *number)
            }
            (Decision::Close { delete_branch, .. }, _) => {
                next.pull_request = None;
                if delete_branch.is_some() {
                    next.branch = None;
                }
            }
            (Decision::DeleteBranch { .. }, _) => next.branch = None,
            (Decision::Describe { body, .. }, _) => {
                if let Some(pr) = &mut next.pull_request {
                    pr.body = body.clone();
                }
            }
            (
                Decision::LeaveAlone {
                    comment: Some(_), ..
                },
                _,
            ) => next.told_human = true,
            _ => {}
        }
        next
    }

    #[test]
    fn planning_again_after_applying_a_plan_changes_nothing() {
        for (name, observed, proposal, _, _) in table() {
            let first = plan(&observed, &proposal);
            let after = applied(&observed, &proposal, &first);
            let second = plan(&after, &proposal);
            assert!(
                second.decision.changes_nothing(),
                "{name}: after {:?} the planner wants {:?} ({})",
                first.decision.kind(),
                second.decision,
                second.reason
            );
        }
    }

    #[test]
    fn a_plan_lists_the_files_its_pull_request_changes() {
        let mut proposal = fresh("0.63.0", "v2");
        if let Proposal::Fresh(d) = &mut proposal {
            d.files.insert("service-app.yaml".into(), "s".into());
        }
        let plan = plan(&base("0.62.1", "v1"), &proposal);
        let listed: Vec<(&str, Change)> = plan
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.change))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("rendered/prod/deployment-app.yaml", Change::Changed),
                ("rendered/prod/hydrant.metadata", Change::Changed),
                ("rendered/prod/service-app.yaml", Change::Added),
            ]
        );
        assert_eq!(
            plan.version,
            VersionChange {
                from: Some("0.62.1".into()),
                to: Some("0.63.0".into())
            }
        );
    }

    #[test]
    fn an_environment_whose_inputs_are_unchanged_stays_at_its_recorded_version() {
        let observed = Observed {
            base_files: BTreeMap::new(),
            ..base("0.63.0", "v2")
        };
        let proposal = Proposal::Current {
            channel: "stable".into(),
            version: "0.63.0".into(),
        };
        let plan = plan(&observed, &proposal);
        assert_eq!(
            plan.version,
            VersionChange {
                from: Some("0.63.0".into()),
                to: Some("0.63.0".into())
            }
        );
    }

    fn verdict(state: crate::rollout::State, target: &str, skipped: &[&str]) -> Verdict {
        Verdict {
            env: "prod".into(),
            wave: Some("everyone".into()),
            earlier: vec!["canary".into()],
            channel: "stable".into(),
            current: Some("0.62.1".into()),
            target: Some(target.into()),
            release: Some("0.62.1".into()),
            state,
            reason: Some("wave `everyone` waits for `canary`: 1 of 2 run 0.64.0".into()),
            hold: None,
            skipped: skipped.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_rollout_decides_about_a_pull_request_that_offers_another_version() {
        use crate::rollout::State;
        // A pull request for 0.63.0 is open; the environment renders at 0.62.1
        // with a changed override.
        let offered = Observed {
            branch: Some(tip_holding(&rendered("0.63.0", "v2"), true, true)),
            pull_request: Some(pr(4, "hydrant(prod): stable 0.62.1 → 0.63.0", "b")),
            ..base("0.62.1", "v1")
        };
        let at_current = fresh("0.62.1", "v1 with an override");
        for (name, verdict, kind, reason) in [
            (
                "held: left open, not pushed to",
                verdict(State::Held, "0.63.0", &[]),
                Kind::Nothing,
                "pull request #4 (0.63.0) is left open and not updated",
            ),
            (
                "its wave waits for the version it offers: left open",
                verdict(State::Waiting, "0.63.0", &[]),
                Kind::Nothing,
                "is left open",
            ),
            (
                "the version it offers is skipped",
                verdict(State::Offered, "0.62.1", &["0.63.0"]),
                Kind::Close,
                "offers 0.63.0, which is skipped",
            ),
            (
                "the rollout restarted with a newer release",
                verdict(State::Waiting, "0.64.0", &[]),
                Kind::Close,
                "superseded by 0.64.0",
            ),
        ] {
            let plan = plan_rollout(&offered, &at_current, Some(&verdict));
            assert_eq!(plan.decision.kind(), kind, "{name}: {plan:?}");
            assert!(plan.reason.contains(reason), "{name}: {}", plan.reason);
        }
        // An offered environment's pull request is updated as before.
        let plan = plan_rollout(
            &offered,
            &fresh("0.64.0", "v3"),
            Some(&verdict(State::Offered, "0.64.0", &[])),
        );
        assert_eq!(plan.decision.kind(), Kind::Update, "{plan:?}");
        match plan_rollout(
            &offered,
            &at_current,
            Some(&verdict(State::Offered, "0.62.1", &["0.63.0"])),
        )
        .decision
        {
            Decision::Close {
                comment,
                delete_branch,
                ..
            } => {
                assert!(comment.contains("`0.63.0` is skipped"), "{comment}");
                assert_eq!(delete_branch.as_deref(), Some("c0ffee"));
            }
            other => panic!("expected a close, got {other:?}"),
        }
    }

    #[test]
    fn a_held_pull_request_says_who_held_it_and_why_until_the_hold_is_released() {
        use crate::rollout::State;
        use crate::rollout::holds::{Hold, Scope};
        let offered = |body: &str| Observed {
            branch: Some(tip_holding(&rendered("0.63.0", "v2"), true, true)),
            pull_request: Some(pr(4, "hydrant(prod): stable 0.62.1 → 0.63.0", body)),
            ..base("0.62.1", "v1")
        };
        let at_current = fresh("0.62.1", "v1 with an override");
        let mut held = verdict(State::Held, "0.63.0", &[]);
        held.hold = Some(Hold {
            scope: Scope::All,
            reason: "incident <!-- 4711 --> [see](http://evil)".into(),
            by: "alice_*".into(),
            since: Some("2027-01-27T09:00:00Z".into()),
        });
        held.reason = Some("held by alice_*: incident 4711".into());

        // Held: the description is rewritten (no push), and says by whom and why.
        let first = plan_rollout(&offered("the body"), &at_current, Some(&held));
        assert_eq!(first.decision.kind(), Kind::Update, "{first:?}");
        assert!(
            first
                .reason
                .contains("not pushed to; its description is rewritten to say that it is held"),
            "{}",
            first.reason
        );
        let Decision::Describe { number: 4, body } = &first.decision else {
            panic!("expected the description alone, got {:?}", first.decision);
        };
        assert!(body.ends_with("the body"), "{body}");
        assert!(
            body.contains("**Held** (every environment) by alice\\_\\* since 2027-01-27T09:00:00Z: incident &lt;\\!-- 4711 --&gt; \\[see\\](http://evil)"),
            "the hold's words are escaped: {body}"
        );
        assert_eq!(body.matches("-->").count(), 2, "{body}");

        // Said once: planning again over the described pull request writes nothing.
        let again = plan_rollout(&offered(body), &at_current, Some(&held));
        assert_eq!(again.decision, Decision::Nothing, "{}", again.reason);
        assert!(again.reason.contains("left open and not updated"));

        // Released, its wave still waiting for the version it offers: the
        // note goes, the rest stays.
        let waiting = verdict(State::Waiting, "0.63.0", &[]);
        match plan_rollout(&offered(body), &at_current, Some(&waiting)).decision {
            Decision::Describe { number: 4, body } => assert_eq!(body, "the body"),
            other => panic!("expected the note removed, got {other:?}"),
        }
        let settled = plan_rollout(&offered("the body"), &at_current, Some(&waiting));
        assert_eq!(settled.decision, Decision::Nothing, "{}", settled.reason);

        // Released and offered: the usual update replaces the whole description.
        let released = plan_rollout(
            &offered(body),
            &fresh("0.63.0", "v2"),
            Some(&verdict(State::Offered, "0.63.0", &[])),
        );
        assert_eq!(
            released.decision,
            Decision::Update {
                push: None,
                number: 4
            },
            "{}",
            released.reason
        );

        // The note's closing marker further down a description (in a diff,
        // say) is not hydrant's note.
        let forged = "text\n<!-- /hydrant:held -->\n\nmore";
        let plan = plan_rollout(&offered(forged), &at_current, Some(&waiting));
        assert_eq!(plan.decision, Decision::Nothing, "{}", plan.reason);
    }

    #[test]
    fn a_limit_counts_resources_not_the_kustomization_or_the_metadata() {
        let old = rendered_maps("0.62.1", &["a", "b", "c", "d"]);
        let new = rendered_maps("0.63.0", &["a", "b"]);
        assert_eq!(deletions(&old, &new), (2, 4));
        assert_eq!(deletions(&BTreeMap::new(), &new), (0, 0));
        let limited = |max| match fresh_maps("0.63.0", &["a"], None) {
            Proposal::Fresh(mut d) => {
                d.max_deletions = max;
                plan(&base_maps(&["a", "b", "c", "d"]), &Proposal::Fresh(d))
            }
            _ => unreachable!(),
        };
        assert_eq!(limited(MaxDeletions::Count(3)).decision.kind(), Kind::Open);
        assert_eq!(
            limited(MaxDeletions::Count(2)).decision.kind(),
            Kind::Failed
        );
        assert_eq!(
            limited(MaxDeletions::Percent(75)).decision.kind(),
            Kind::Open
        );
        let Decision::Failed { error, class } = limited(MaxDeletions::Percent(74)).decision else {
            panic!("expected a refusal");
        };
        assert_eq!(class, ErrorClass::Permanent);
        assert_eq!(
            error,
            "refused: would delete 3 of 4 resources of `rendered/prod/` (at most `maxDeletions` (74%)); to deliver it, set `allowMassDeletion: true` in `environments/prod/environment.yaml` or run once with `--allow-mass-deletion`"
        );
        let Decision::Failed { error, .. } =
            plan(&base_maps(&["a", "b"]), &fresh_maps("0.63.0", &["c"], None)).decision
        else {
            panic!("expected a refusal");
        };
        assert!(
            error.contains("would delete 2 of 2 resources of `rendered/prod/` (never all of them)"),
            "{error}"
        );
    }

    #[test]
    fn a_push_replaces_only_the_tip_hydrant_made() {
        let observed = Observed {
            branch: Some(tip_holding(&rendered("0.62.0", "v0"), true, true)),
            ..base("0.62.1", "v1")
        };
        match plan(&observed, &fresh("0.63.0", "v2")).decision {
            Decision::Open { push: Some(p) } => assert_eq!(p.replaces.as_deref(), Some("c0ffee")),
            other => panic!("expected a push, got {other:?}"),
        }
    }
}
