//! A grouped rollout wave (`pullRequest: {group: wave}`): what should happen
//! to its one branch, `hydrant/wave-<name>`, and its one pull request, and
//! why; and the description that pull request carries.
//!
//! [`plan_group`] is pure, like [`super::plan`]: from what
//! [`super::observe::group`] found (the branch's commits above the base and
//! who made them, the open pull request) and each member environment's own
//! observation and proposal, it decides one [`Decision`] for the group. The
//! branch holds one commit per environment whose render differs from the
//! base (each the environment's single commit, message included), in the
//! order of their names; it is rebuilt on the base and pushed with a lease
//! when that list or a render changes, and left alone when a person pushed
//! to it. It reads no clock, no git and no forge; [`super::apply::group`]
//! carries the decision out.
//!
//! The description opens with a table (environment, version change,
//! resources added, removed and changed, warnings), then each environment's
//! own description. It stays under [`MAX_BODY`] by collapsing the largest
//! diffs first, then the largest sections, then the last rows of the table;
//! each collapsed part says so, and how to see it.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::forge::PullRequest;
use crate::git;
use crate::manifest::layout;

use super::plan::{self, Decision, HUMAN_MARKER, Observed, Proposal, Push, VersionChange};
use super::review::{self, DIFF_OPENING, MAX_BODY, code, code_cell, one_line};

/// What is true now about a grouped wave's branch and pull request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedGroup {
    pub wave: String,
    /// The branch pull requests target.
    pub base_branch: String,
    /// `hydrant/wave-<name>`, if it exists.
    pub branch: Option<GroupTip>,
    /// The open pull request from `hydrant/wave-<name>`.
    pub pull_request: Option<PullRequest>,
    /// Whether hydrant already told the pull request that a person pushed
    /// to its branch.
    pub told_human: bool,
}

/// The tip of `hydrant/wave-<name>` and its commits above the base.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupTip {
    pub commit: String,
    /// The environment each of hydrant's commits above the base delivers,
    /// oldest first.
    pub envs: Vec<String>,
    /// The author of a commit above the base that hydrant did not make.
    pub foreign: Option<String>,
    /// The git tree id of `rendered/<env>/` at the tip, for each of `envs`.
    pub rendered_trees: BTreeMap<String, String>,
    /// Whether the oldest commit above the base sits on a commit of the base
    /// whose `rendered/<env>/`, for each of `envs`, is still the base's.
    pub on_current_base: bool,
}

/// The group's plan: its decision, why, and what it delivers.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    pub wave: String,
    /// `hydrant/wave-<name>`.
    pub branch: String,
    /// A push's commits are the members' own: [`Push::message`] is empty,
    /// and [`Push::replaces`] is the lease on the branch's tip.
    pub decision: Decision,
    pub reason: String,
    /// The environments the pull request delivers, one commit each, in order.
    pub members: Vec<String>,
    pub title: String,
    pub body: String,
}

/// The render of one member that the group delivers.
struct Delivered<'a> {
    observed: &'a Observed,
    delivery: &'a plan::Delivery,
}

/// The members whose render differs from the base in more than
/// `hydrant.metadata`, in the order given.
fn delivered(members: &[(Observed, Proposal)]) -> Vec<Delivered<'_>> {
    members
        .iter()
        .filter_map(|(observed, proposal)| match proposal {
            Proposal::Fresh(d) if !plan::same_manifests(&observed.base_files, &d.files) => {
                Some(Delivered {
                    observed,
                    delivery: d,
                })
            }
            _ => None,
        })
        .collect()
}

/// Decides what should happen to a grouped wave's branch and pull request,
/// and why. `members` are the wave's environments reconciled now, each with
/// its observation and proposal, in the order of their names; none: the
/// wave no longer groups its pull requests (or no longer exists), and an
/// open group pull request is superseded.
pub fn plan_group(observed: &ObservedGroup, members: &[(Observed, Proposal)]) -> GroupPlan {
    let wave = observed.wave.as_str();
    let branch = git::branch_name(&git::group_key(wave));
    let base = observed.base_branch.as_str();
    let wanted = delivered(members);
    let failed: Vec<&str> = members
        .iter()
        .filter(|(_, p)| matches!(p, Proposal::Failed { .. }))
        .map(|(o, _)| o.env.as_str())
        .collect();
    let title = title(wave, &wanted);
    let body = body(wave, base, &branch, &wanted);
    let mut plan = GroupPlan {
        wave: wave.to_string(),
        branch: branch.clone(),
        decision: Decision::Nothing,
        reason: String::new(),
        members: wanted.iter().map(|d| d.observed.env.clone()).collect(),
        title,
        body,
    };
    let tip = observed.branch.as_ref();
    let ours = tip.filter(|t| t.foreign.is_none());
    let pr = observed.pull_request.as_ref();
    if wanted.is_empty() {
        if !failed.is_empty() {
            plan.reason = format!(
                "no environment of wave `{wave}` has a change to deliver but {} failed: `{branch}` and its pull request are left as they are",
                failed.join(", ")
            );
            return plan;
        }
        let (comment, why) = if members.is_empty() {
            (
                format!(
                    "Closed by hydrant: wave `{wave}` no longer delivers its environments in one pull request, so this one is superseded."
                ),
                format!("wave `{wave}` no longer groups its pull requests"),
            )
        } else {
            (
                format!(
                    "Closed by hydrant: `{base}` already holds the render of every environment of wave `{wave}`, so this pull request is no longer needed."
                ),
                format!("`{base}` already holds the render of every environment of wave `{wave}`"),
            )
        };
        (plan.decision, plan.reason) = match (pr, ours) {
            (Some(pr), _) => (
                Decision::Close {
                    number: pr.number,
                    comment,
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
        return plan;
    }
    let count = count(wanted.len());
    if let Some(author) = tip.and_then(|t| t.foreign.as_ref()) {
        let comment = (pr.is_some() && !observed.told_human).then(|| {
            format!(
                "{HUMAN_MARKER}\nhydrant found a commit on `{branch}` that it did not make (by {author}), so it will not overwrite it and leaves this pull request alone. To let hydrant take over again, close this pull request and delete the branch."
            )
        });
        plan.decision = Decision::LeaveAlone {
            number: pr.map(|p| p.number),
            comment,
        };
        plan.reason = format!(
            "`{branch}` holds a commit hydrant did not make (by {author}); it is left as it is"
        );
        return plan;
    }
    let holds_it = ours.is_some_and(|t| {
        t.on_current_base
            && t.envs == plan.members
            && wanted.iter().all(|d| {
                t.rendered_trees.get(&d.observed.env)
                    == Some(&layout::git_tree_id(&d.delivery.files))
            })
    });
    let push = (!holds_it).then(|| Push {
        message: String::new(),
        replaces: ours.map(|t| t.commit.clone()),
    });
    if !failed.is_empty() {
        let _ = write!(
            plan.reason,
            "{} failed and {} left out; ",
            failed.join(", "),
            if failed.len() == 1 { "is" } else { "are" }
        );
    }
    let why = match pr {
        None if push.is_some() => {
            plan.decision = Decision::Open { push };
            format!(
                "{count} of wave `{wave}` differ from `{base}`: push `{branch}` (one commit each) and open one pull request"
            )
        }
        None => {
            plan.decision = Decision::Open { push };
            format!(
                "`{branch}` already holds the render of {count} of wave `{wave}` but no pull request is open: open one"
            )
        }
        Some(pr) if push.is_some() => {
            plan.decision = Decision::Update {
                push,
                number: pr.number,
            };
            format!(
                "the render of {count} of wave `{wave}` differs from `{branch}`: push and update pull request #{} in place",
                pr.number
            )
        }
        Some(pr) if pr.title != plan.title || pr.body != plan.body => {
            plan.decision = Decision::Update {
                push,
                number: pr.number,
            };
            format!(
                "`{branch}` holds the render of {count} of wave `{wave}`; pull request #{}'s title or description is out of date",
                pr.number
            )
        }
        Some(pr) => format!(
            "`{branch}` and pull request #{} already deliver the render of {count} of wave `{wave}`",
            pr.number
        ),
    };
    plan.reason.push_str(&why);
    plan
}

/// What a member's own branch, `hydrant/<env>`, needs once its wave groups
/// its pull requests: an open pull request is closed as superseded (with
/// the branch, if hydrant made it), a branch of hydrant's without one is
/// deleted. `None`: it has neither.
pub fn supersede_single(observed: &Observed, wave: &str) -> Option<(Decision, String)> {
    let env = observed.env.as_str();
    let branch = git::branch_name(env);
    let group = git::branch_name(&git::group_key(wave));
    let ours = observed.branch.as_ref().filter(|t| t.by_hydrant);
    match (&observed.pull_request, ours) {
        (Some(pr), _) => Some((
            Decision::Close {
                number: pr.number,
                comment: format!(
                    "Closed by hydrant: wave `{wave}` delivers `{env}` with its other environments in one pull request from `{group}`, so this one is superseded."
                ),
                delete_branch: ours.map(|t| t.commit.clone()),
            },
            format!(
                "pull request #{} from `{branch}` is superseded by the wave's pull request from `{group}`: close it",
                pr.number
            ),
        )),
        (None, Some(t)) => Some((
            Decision::DeleteBranch {
                tip: t.commit.clone(),
            },
            format!("`{branch}` is superseded by `{group}`: delete it"),
        )),
        (None, None) => None,
    }
}

fn count(n: usize) -> String {
    match n {
        1 => "1 environment".to_string(),
        n => format!("{n} environments"),
    }
}

fn version_change(d: &Delivered<'_>) -> VersionChange {
    VersionChange {
        from: plan::recorded_version(&d.observed.base_files),
        to: Some(d.delivery.version.clone()),
    }
}

/// `hydrant(wave-canary): stable 0.62.1 → 0.63.0, 40 environments` when
/// they all make the same move, else `hydrant(wave-canary): 40 environments`.
fn title(wave: &str, wanted: &[Delivered<'_>]) -> String {
    let key = git::group_key(wave);
    let moves: Vec<(&str, VersionChange)> = wanted
        .iter()
        .map(|d| (d.delivery.channel.as_str(), version_change(d)))
        .collect();
    let shared = match moves.split_first() {
        Some((first, rest)) if rest.iter().all(|m| *m == *first) => match &first.1 {
            VersionChange {
                from: Some(f),
                to: Some(t),
            } if f != t => Some(format!("{} {f} → {t}, ", first.0)),
            _ => None,
        },
        _ => None,
    };
    one_line(&format!(
        "hydrant({key}): {}{}",
        shared.unwrap_or_default(),
        count(wanted.len())
    ))
}

/// Warnings of one environment's change, in a few words for the table.
fn warnings(d: &Delivered<'_>, removed: usize) -> Vec<String> {
    let mut out = Vec::new();
    if removed > 0 {
        out.push(format!("deletes {removed} resource(s)"));
    }
    if review::is_production(&d.observed.env) {
        out.push("production".to_string());
    }
    let v = version_change(d);
    if let (Some(from), Some(to)) = (&v.from, &v.to)
        && crate::channel::is_downgrade(from, to)
    {
        out.push("downgrade".to_string());
    }
    out
}

/// How much of a member's section the description shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Whole,
    WithoutDiff,
    Collapsed,
}

/// One member's section, split where its diff begins.
struct Section {
    env: String,
    main: String,
    diff: String,
    /// Said instead of the diff.
    diff_note: String,
    /// Said instead of the whole section.
    collapsed: String,
    shown: Shown,
}

impl Section {
    fn len(&self) -> usize {
        match self.shown {
            Shown::Whole => self.main.len() + self.diff.len(),
            Shown::WithoutDiff => self.main.len() + self.diff_note.len(),
            Shown::Collapsed => self.collapsed.len(),
        }
    }

    fn text(&self) -> String {
        match self.shown {
            Shown::Whole => format!("{}{}", self.main, self.diff),
            Shown::WithoutDiff => format!("{}{}", self.main, self.diff_note),
            Shown::Collapsed => self.collapsed.clone(),
        }
    }
}

const SEPARATOR: &str = "\n---\n\n";
/// Room kept free under [`MAX_BODY`] (a forge's own additions, such as the
/// marker of pending settings).
const RESERVE: usize = 400;

/// The group pull request's description.
fn body(wave: &str, base: &str, branch: &str, wanted: &[Delivered<'_>]) -> String {
    // A member's mass deletion warning opens the group's description too.
    let mut head: String = wanted
        .iter()
        .filter_map(|d| review::opening_warning(&d.delivery.body))
        .collect();
    let _ = writeln!(head, "## {}\n", review::cell_text(&title(wave, wanted)));
    let _ = writeln!(
        head,
        "Wave {} delivers {} in this one pull request, one commit per environment; each environment's own description follows the table.\n",
        code(wave),
        count(wanted.len())
    );
    head.push_str(
        "| Environment | Version | Added | Removed | Changed | Warnings |\n|---|---|---|---|---|---|\n",
    );
    let mut rows = Vec::with_capacity(wanted.len());
    let mut sections = Vec::with_capacity(wanted.len());
    for d in wanted {
        let env = d.observed.env.as_str();
        let r = review::resources(&d.observed.base_files, &d.delivery.files);
        let v = version_change(d);
        let version = match (&v.from, &v.to) {
            (Some(f), Some(t)) if f != t => format!("{} → {}", code_cell(f), code_cell(t)),
            (None, Some(t)) => format!("(new) → {}", code_cell(t)),
            (_, Some(t)) => format!("{} (unchanged)", code_cell(t)),
            _ => String::new(),
        };
        let warnings = warnings(d, r.removed.len());
        rows.push(format!(
            "| {} | {version} | {} | {} | {} | {} |\n",
            code_cell(env),
            r.added.len(),
            r.removed.len(),
            r.changed.len(),
            if warnings.is_empty() {
                "—".to_string()
            } else {
                warnings.join(", ")
            }
        ));
        let text = &d.delivery.body;
        let (main, diff) = match text.rfind(DIFF_OPENING) {
            Some(at) => text.split_at(at),
            None => (text.as_str(), ""),
        };
        let dir = format!("rendered/{env}/");
        let see = format!(
            "{} or {}",
            code(&format!(
                "git diff origin/{base}...origin/{branch} -- {dir}"
            )),
            code(&format!("hydrant diff --env {env}"))
        );
        sections.push(Section {
            env: env.to_string(),
            main: main.to_string(),
            diff: diff.to_string(),
            diff_note: format!(
                "\nThe diff of {} is collapsed to keep this description within {MAX_BODY} characters; {see} shows it.\n",
                code(&dir)
            ),
            collapsed: format!(
                "### {}\n\nThe description of {} is collapsed to keep this description within {MAX_BODY} characters; its commit on {} says what changes, and {see} shows it.\n",
                code(env),
                code(env),
                code(branch)
            ),
            shown: Shown::Whole,
        });
    }
    let mut total = head.len()
        + rows.iter().map(String::len).sum::<usize>()
        + sections
            .iter()
            .map(|s| s.len() + SEPARATOR.len())
            .sum::<usize>();
    let limit = MAX_BODY - RESERVE;
    // The largest diffs first, then the largest sections.
    for (from, to) in [
        (Shown::Whole, Shown::WithoutDiff),
        (Shown::WithoutDiff, Shown::Collapsed),
    ] {
        let mut order: Vec<usize> = (0..sections.len())
            .filter(|i| sections[*i].shown == from)
            .collect();
        order.sort_by(|a, b| {
            sections[*b]
                .len()
                .cmp(&sections[*a].len())
                .then(sections[*a].env.cmp(&sections[*b].env))
        });
        for i in order {
            if total < limit {
                break;
            }
            let before = sections[i].len();
            sections[i].shown = to;
            total = total + sections[i].len() - before;
        }
    }
    // Then the last rows of the table, and their sections.
    let mut kept = rows.len();
    let more = |n: usize| {
        format!(
            "| …and {n} more | | | | | see the commits of {} |\n",
            code_cell(branch)
        )
    };
    while total >= limit && kept > 0 {
        kept -= 1;
        total -= rows[kept].len() + sections[kept].len() + SEPARATOR.len();
        if kept + 1 == rows.len() {
            total += more(rows.len()).len();
        }
    }
    let mut b = head;
    for row in &rows[..kept] {
        b.push_str(row);
    }
    if kept < rows.len() {
        b.push_str(&more(rows.len() - kept));
    }
    for s in &sections[..kept] {
        b.push_str(SEPARATOR);
        b.push_str(&s.text());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::PrState;
    use crate::manifest::layout::METADATA;

    fn files(version: &str, body: &str) -> BTreeMap<String, String> {
        let meta = format!(
            r#"{{"environment":"e","namespace":"n","channel":{{"name":"stable","version":"{version}","release":null}},"inputs":{{"channel":"c","environment":"e","values":null,"pinned":null,"templates":"t"}},"digest":"{body}","renderer":1,"resources":1}}"#
        );
        [
            ("configmap-app.yaml", body.to_string()),
            (
                "kustomization.yaml",
                "resources:\n  - configmap-app.yaml\n".to_string(),
            ),
            (METADATA, meta),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect()
    }

    fn observed(env: &str, version: &str, body: &str) -> Observed {
        Observed {
            env: env.into(),
            base_branch: "main".into(),
            base_files: files(version, body),
            ..Observed::default()
        }
    }

    /// A member's own description: a head, then a diff of `diff` bytes.
    fn fresh(env: &str, version: &str, body: &str, diff: usize) -> Proposal {
        Proposal::Fresh(Box::new(plan::Delivery {
            channel: "stable".into(),
            version: version.into(),
            files: files(version, body),
            title: format!("hydrant({env}): stable {version}"),
            body: format!(
                "## hydrant({env})\n\nhead of {env}\n{DIFF_OPENING}1 files)</summary>\n\n```diff\n{}\n```\n\n</details>\n",
                "+x".repeat(diff / 2)
            ),
            commit_message: format!(
                "hydrant({env}): stable {version}\n\nHydrant-Environment: {env}\n"
            ),
            max_deletions: crate::config::MaxDeletions::default(),
            mass_deletion: None,
        }))
    }

    /// Members `t01`…: those in `bumped` move from 0.62.1 to 0.63.0.
    fn members(n: usize, bumped: usize, diff: usize) -> Vec<(Observed, Proposal)> {
        (1..=n)
            .map(|i| {
                let env = format!("t{i:02}");
                let o = observed(&env, "0.62.1", "v1");
                let p = if i <= bumped {
                    fresh(&env, "0.63.0", "v2", diff)
                } else {
                    Proposal::Current {
                        channel: "stable".into(),
                        version: "0.62.1".into(),
                    }
                };
                (o, p)
            })
            .collect()
    }

    fn group() -> ObservedGroup {
        ObservedGroup {
            wave: "canary".into(),
            base_branch: "main".into(),
            ..ObservedGroup::default()
        }
    }

    /// The branch as hydrant would leave it after delivering `members`.
    fn tip_delivering(members: &[(Observed, Proposal)]) -> GroupTip {
        let wanted = delivered(members);
        GroupTip {
            commit: "c0ffee".into(),
            envs: wanted.iter().map(|d| d.observed.env.clone()).collect(),
            foreign: None,
            rendered_trees: wanted
                .iter()
                .map(|d| {
                    (
                        d.observed.env.clone(),
                        layout::git_tree_id(&d.delivery.files),
                    )
                })
                .collect(),
            on_current_base: true,
        }
    }

    fn pr(number: u64, title: &str, body: &str) -> PullRequest {
        PullRequest {
            number,
            url: format!("local://pulls/{number}"),
            title: title.into(),
            body: body.into(),
            head: "hydrant/wave-canary".into(),
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

    fn delivering(members: &[(Observed, Proposal)]) -> ObservedGroup {
        let p = plan_group(&group(), members);
        ObservedGroup {
            branch: Some(tip_delivering(members)),
            pull_request: Some(pr(7, &p.title, &p.body)),
            ..group()
        }
    }

    fn failed(env: &str) -> (Observed, Proposal) {
        (
            observed(env, "0.62.1", "v1"),
            Proposal::Failed {
                error: "bad".into(),
                class: plan::ErrorClass::Permanent,
            },
        )
    }

    /// A case: its name, what is observed, the members, the decision
    /// expected and what its reason says.
    type Case = (
        &'static str,
        ObservedGroup,
        Vec<(Observed, Proposal)>,
        Kind,
        &'static str,
    );

    fn table() -> Vec<Case> {
        let three = members(4, 3, 10);
        let mut bumped_again = three.clone();
        bumped_again[0].1 = fresh("t01", "0.64.0", "v3", 10);
        let mut with_failure = three.clone();
        with_failure.push(failed("t05"));
        vec![
            (
                "three environments differ, no branch",
                group(),
                three.clone(),
                Kind::Open,
                "3 environments of wave `canary` differ from `main`",
            ),
            (
                "the branch and pull request already deliver them",
                delivering(&three),
                three.clone(),
                Kind::Nothing,
                "already deliver the render of 3 environments",
            ),
            (
                "one environment renders anew",
                delivering(&three),
                bumped_again,
                Kind::Update,
                "push and update pull request #7 in place",
            ),
            (
                "one more environment differs",
                delivering(&members(4, 2, 10)),
                three.clone(),
                Kind::Update,
                "push and update",
            ),
            (
                "the base moved under the branch",
                ObservedGroup {
                    branch: Some(GroupTip {
                        on_current_base: false,
                        ..tip_delivering(&three)
                    }),
                    ..delivering(&three)
                },
                three.clone(),
                Kind::Update,
                "push and update",
            ),
            (
                "the description is out of date",
                ObservedGroup {
                    pull_request: Some(pr(7, "old", "old")),
                    ..delivering(&three)
                },
                three.clone(),
                Kind::Update,
                "title or description is out of date",
            ),
            (
                "the branch holds them but its pull request was closed by hand",
                ObservedGroup {
                    pull_request: None,
                    ..delivering(&three)
                },
                three.clone(),
                Kind::Open,
                "no pull request is open: open one",
            ),
            (
                "the base already holds all of it",
                delivering(&three),
                members(4, 0, 10),
                Kind::Close,
                "`main` already holds the render of every environment",
            ),
            (
                "the base holds all of it and a leftover branch has no pull request",
                ObservedGroup {
                    pull_request: None,
                    ..delivering(&three)
                },
                members(4, 0, 10),
                Kind::DeleteBranch,
                "nothing needs it",
            ),
            (
                "nothing to deliver and nothing there",
                group(),
                members(4, 0, 10),
                Kind::Nothing,
                "already holds the render",
            ),
            (
                "the wave no longer groups its pull requests",
                delivering(&three),
                Vec::new(),
                Kind::Close,
                "no longer groups its pull requests",
            ),
            (
                "a person pushed to the branch",
                ObservedGroup {
                    branch: Some(GroupTip {
                        foreign: Some("Ada".into()),
                        ..tip_delivering(&three)
                    }),
                    ..delivering(&members(4, 2, 10))
                },
                three.clone(),
                Kind::LeaveAlone,
                "holds a commit hydrant did not make (by Ada)",
            ),
            (
                "a person pushed, and hydrant already said so",
                ObservedGroup {
                    branch: Some(GroupTip {
                        foreign: Some("Ada".into()),
                        ..tip_delivering(&three)
                    }),
                    told_human: true,
                    ..delivering(&members(4, 2, 10))
                },
                three.clone(),
                Kind::LeaveAlone,
                "it is left as it is",
            ),
            (
                "a failing environment is left out, the others go",
                delivering(&three),
                with_failure,
                Kind::Nothing,
                "t05 failed and is left out",
            ),
            (
                "every environment with a change failed",
                delivering(&three),
                vec![failed("t01"), failed("t02")],
                Kind::Nothing,
                "are left as they are",
            ),
        ]
    }

    use super::plan::Kind;

    #[test]
    fn each_observed_group_gets_its_decision_and_reason() {
        for (name, observed, members, kind, reason) in table() {
            let plan = plan_group(&observed, &members);
            assert_eq!(plan.decision.kind(), kind, "{name}: {plan:?}");
            assert!(
                plan.reason.contains(reason),
                "{name}: the reason `{}` does not say `{reason}`",
                plan.reason
            );
        }
    }

    /// What carrying out a group's plan leaves behind.
    fn applied(
        observed: &ObservedGroup,
        members: &[(Observed, Proposal)],
        plan: &GroupPlan,
    ) -> ObservedGroup {
        let mut next = observed.clone();
        let mut delivered = |number: u64, push: &Option<Push>| {
            if push.is_some() {
                next.branch = Some(GroupTip {
                    commit: "new".into(),
                    ..tip_delivering(members)
                });
            }
            next.pull_request = Some(pr(number, &plan.title, &plan.body));
        };
        match &plan.decision {
            Decision::Open { push } => delivered(9, push),
            Decision::Update { number, push } => delivered(*number, push),
            Decision::Close { delete_branch, .. } => {
                next.pull_request = None;
                if delete_branch.is_some() {
                    next.branch = None;
                }
            }
            Decision::DeleteBranch { .. } => next.branch = None,
            Decision::LeaveAlone {
                comment: Some(_), ..
            } => next.told_human = true,
            _ => {}
        }
        next
    }

    #[test]
    fn planning_a_group_again_after_applying_its_plan_changes_nothing() {
        for (name, observed, members, _, _) in table() {
            let first = plan_group(&observed, &members);
            let after = applied(&observed, &members, &first);
            let second = plan_group(&after, &members);
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
    fn a_group_delivers_its_members_in_order_with_a_lease_on_the_tip() {
        let members = members(5, 3, 10);
        let observed = ObservedGroup {
            branch: Some(tip_delivering(&members[..2])),
            ..group()
        };
        let plan = plan_group(&observed, &members);
        assert_eq!(plan.members, vec!["t01", "t02", "t03"]);
        assert_eq!(
            plan.title,
            "hydrant(wave-canary): stable 0.62.1 → 0.63.0, 3 environments"
        );
        match plan.decision {
            Decision::Open { push: Some(p) } => assert_eq!(p.replaces.as_deref(), Some("c0ffee")),
            other => panic!("expected a push, got {other:?}"),
        }
    }

    #[test]
    fn the_description_opens_with_a_table_then_each_section() {
        let mut members = members(3, 3, 10);
        members[2].1 = fresh("t03", "0.61.0", "v0", 10);
        let plan = plan_group(&group(), &members);
        let body = &plan.body;
        assert_eq!(plan.title, "hydrant(wave-canary): 3 environments");
        assert!(
            body.contains("| Environment | Version | Added | Removed | Changed | Warnings |"),
            "{body}"
        );
        assert!(
            body.contains("| `t01` | `0.62.1` → `0.63.0` | 0 | 0 | 1 | — |"),
            "{body}"
        );
        assert!(
            body.contains("| `t03` | `0.62.1` → `0.61.0` | 0 | 0 | 1 | downgrade |"),
            "{body}"
        );
        let table = body.find("| `t03`").unwrap();
        let sections: Vec<usize> = ["head of t01", "head of t02", "head of t03"]
            .iter()
            .map(|s| body.find(s).unwrap())
            .collect();
        assert!(table < sections[0] && sections[0] < sections[1] && sections[1] < sections[2]);
        assert!(!body.contains("collapsed"), "{body}");
    }

    #[test]
    fn the_description_stays_under_the_limit_by_collapsing_the_largest_diffs_first() {
        // Forty members with diffs of 3 KB, and one with a diff of 30 KB.
        let mut members = members(40, 40, 3_000);
        members[6].1 = fresh("t07", "0.63.0", "v2", 30_000);
        let body = plan_group(&group(), &members).body;
        assert!(body.len() < MAX_BODY, "{}", body.len());
        // The largest diff is collapsed, and says how to see it.
        assert!(
            body.contains("The diff of `rendered/t07/` is collapsed to keep this description within 65536 characters; `git diff origin/main...origin/hydrant/wave-canary -- rendered/t07/` or `hydrant diff --env t07` shows it."),
            "{body}"
        );
        // Every section and row is still there; only diffs are collapsed.
        for i in 1..=40 {
            assert!(body.contains(&format!("head of t{i:02}\n")), "t{i:02}");
            assert!(body.contains(&format!("| `t{i:02}` |")), "t{i:02}");
        }
        let shown = body.matches(DIFF_OPENING).count();
        assert!(shown > 0 && shown < 40, "{shown} diffs shown");
    }

    #[test]
    fn a_huge_wave_collapses_sections_then_rows_and_stays_under_the_limit() {
        for n in [40, 400, 2_000] {
            let members = members(n, n, 3_000);
            let plan = plan_group(&group(), &members);
            assert!(plan.body.len() < MAX_BODY, "{n}: {}", plan.body.len());
            assert!(plan.body.contains("| `t01` |"), "{n}");
            if n == 2_000 {
                assert!(
                    plan.body
                        .contains("more | | | | | see the commits of `hydrant/wave-canary` |")
                );
            }
        }
    }

    #[test]
    fn a_grouped_environments_own_branch_is_superseded() {
        let mut o = observed("t01", "0.62.1", "v1");
        assert_eq!(supersede_single(&o, "canary"), None);
        o.branch = Some(plan::BranchTip {
            commit: "beef".into(),
            by_hydrant: true,
            author: "hydrant".into(),
            rendered_tree: None,
            on_current_base: true,
            version: None,
        });
        let (d, why) = supersede_single(&o, "canary").unwrap();
        assert_eq!(d, Decision::DeleteBranch { tip: "beef".into() }, "{why}");
        o.pull_request = Some(pr(3, "t", "b"));
        match supersede_single(&o, "canary").unwrap().0 {
            Decision::Close {
                number: 3,
                comment,
                delete_branch: Some(tip),
            } => {
                assert_eq!(tip, "beef");
                assert!(comment.contains("`hydrant/wave-canary`"), "{comment}");
            }
            other => panic!("expected a close, got {other:?}"),
        }
    }
}
