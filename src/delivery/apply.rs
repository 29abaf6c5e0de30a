//! Carrying a plan out with git and the forge.
//!
//! [`apply`] does what one environment's [`Plan`] decided, and nothing else:
//! it commits and pushes `hydrant/<env>` (with a lease on the tip it
//! replaces), opens, updates or closes the pull request, deletes a branch no
//! pull request needs, and comments once where a person pushed. [`group`]
//! does the same for a grouped wave's branch, `hydrant/wave-<name>`, and its
//! one pull request. It decides nothing; a dry run does not call it.

use crate::config::PullRequestSettings;
use crate::forge::{Ensured, Forge, ForgeError, PrRequest};
use crate::git::{self, Fetched, GitError, Oid, Signature, Workspace};

use super::group::{GroupPlan, ObservedGroup};
use super::plan::{Decision, Observed, Plan, Proposal, Push};
use super::{Action, PrRef};

/// What a plan needs to be carried out.
pub struct Context<'a> {
    pub ws: &'a Workspace,
    pub forge: &'a dyn Forge,
    pub fetched: &'a Fetched,
    pub author: &'a Signature<'static>,
}

/// What can stop a plan from being carried out.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
}

/// What carrying out a plan did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub action: Action,
    pub commit: Option<String>,
    pub pull_request: Option<PrRef>,
}

fn oid(text: &str) -> Result<Oid, GitError> {
    Oid::from_str(text).map_err(GitError::from)
}

/// Carries out one environment's plan.
pub fn apply(
    cx: &Context<'_>,
    observed: &Observed,
    proposal: &Proposal,
    settings: &PullRequestSettings,
    plan: &Plan,
) -> Result<Applied, ApplyError> {
    let env = plan.env.as_str();
    let pr = observed.pull_request.as_ref();
    let tip = observed.branch.as_ref().map(|t| t.commit.clone());
    if let Some(done) = settle(cx, env, pr, tip.as_deref(), &plan.decision)? {
        return Ok(done);
    }
    let (Decision::Open { push } | Decision::Update { push, .. }, Proposal::Fresh(delivery)) =
        (&plan.decision, proposal)
    else {
        return Ok(Applied {
            action: Action::Unchanged,
            commit: tip,
            pull_request: pr.map(PrRef::from),
        });
    };
    let commit = match push {
        Some(push) => deliver(cx, env, &delivery.files, push)?.to_string(),
        None => tip.unwrap_or_default(),
    };
    let request = request(cx, git::branch_name(env), delivery, settings);
    ensure(cx.forge, &request, push.is_some(), commit)
}

/// A plan carried out up to its push: the branch to move, and the pull
/// request to open or update once it moved.
pub struct Pending {
    pub update: git::RefUpdate,
    /// Without its description, kept in `body`.
    request: PrRequest,
    body: Kept,
}

/// A pull request's description while it waits for the cycle's push:
/// deflated, as a cycle holds every staged environment's (several KiB each,
/// with the diff) until then.
enum Kept {
    Deflated(Vec<u8>),
    Plain(String),
}

impl Kept {
    fn new(text: String) -> Kept {
        use std::io::Write;
        let mut e = flate2::write::DeflateEncoder::new(
            Vec::with_capacity(text.len() / 4),
            flate2::Compression::fast(),
        );
        match e.write_all(text.as_bytes()).and_then(|()| e.finish()) {
            Ok(mut deflated) => {
                deflated.shrink_to_fit();
                Kept::Deflated(deflated)
            }
            Err(_) => Kept::Plain(text),
        }
    }

    fn text(&self) -> String {
        use std::io::Read;
        match self {
            Kept::Plain(text) => text.clone(),
            Kept::Deflated(bytes) => {
                let mut text = String::new();
                // Deflated from a string just now: it inflates to one.
                let _ = flate2::read::DeflateDecoder::new(&bytes[..]).read_to_string(&mut text);
                text
            }
        }
    }
}

/// What [`stage`] did with a plan.
pub enum Staged {
    /// Carried out whole (it pushes nothing new).
    Done(Applied),
    /// Its commit is in the batch; its branch waits for the cycle's push.
    Pushing(Pending),
}

/// Carries out one environment's plan like [`apply`], except that a new
/// commit goes into `batch` and its push and pull request wait: the cycle
/// pushes every branch at once ([`Workspace::push_all`]), then calls
/// [`finish`] for each branch that moved.
pub fn stage(
    cx: &Context<'_>,
    batch: &mut git::Batch<'_>,
    observed: &Observed,
    proposal: &Proposal,
    settings: &PullRequestSettings,
    plan: &Plan,
) -> Result<Staged, ApplyError> {
    let (
        Decision::Open { push: Some(push) }
        | Decision::Update {
            push: Some(push), ..
        },
        Proposal::Fresh(delivery),
    ) = (&plan.decision, proposal)
    else {
        return apply(cx, observed, proposal, settings, plan).map(Staged::Done);
    };
    let env = plan.env.as_str();
    let base = cx.fetched.base_commit;
    let tree = batch.tree_with(base, env, &delivery.files)?;
    let commit = batch.commit(base, tree, &push.message, cx.author)?;
    let mut request = request(cx, git::branch_name(env), delivery, settings);
    let body = Kept::new(std::mem::take(&mut request.body));
    Ok(Staged::Pushing(Pending {
        update: git::RefUpdate {
            branch: git::branch_name(env),
            new: Some(commit),
            expected: push.replaces.as_deref().map(oid).transpose()?,
        },
        request,
        body,
    }))
}

/// Opens or updates the pull request of a plan [`stage`]d, once its branch
/// moved.
pub fn finish(forge: &dyn Forge, pending: &Pending) -> Result<Applied, ApplyError> {
    let commit = pending
        .update
        .new
        .map(|o| o.to_string())
        .unwrap_or_default();
    let request = PrRequest {
        body: pending.body.text(),
        ..pending.request.clone()
    };
    ensure(forge, &request, true, commit)
}

/// The pull request of an environment's delivery.
fn request(
    cx: &Context<'_>,
    head: String,
    delivery: &super::plan::Delivery,
    settings: &PullRequestSettings,
) -> PrRequest {
    PrRequest {
        head,
        base: cx.fetched.base_branch.clone(),
        title: delivery.title.clone(),
        body: delivery.body.clone(),
        labels: settings.labels.clone(),
        reviewers: settings.reviewers.clone(),
        draft: settings.draft,
        auto_merge: settings.auto_merge,
    }
}

/// Opens or updates the pull request `request` describes, once its branch
/// holds `commit` (`pushed`: pushed just now).
fn ensure(
    forge: &dyn Forge,
    request: &PrRequest,
    pushed: bool,
    commit: String,
) -> Result<Applied, ApplyError> {
    let (opened, ensured) = forge.ensure_pull_request(request)?;
    let action = match ensured {
        Ensured::Created => Action::Opened,
        Ensured::Updated => Action::Updated,
        Ensured::Unchanged if pushed => Action::Updated,
        Ensured::Unchanged => Action::Unchanged,
    };
    Ok(Applied {
        action,
        commit: Some(commit),
        pull_request: Some(PrRef::from(&opened)),
    })
}

/// Carries out the decisions that push nothing new, for `hydrant/<key>`
/// (an environment's branch, or a grouped wave's) and its pull request
/// `pr`, whose tip is `tip`; `None` for an open or an update.
fn settle(
    cx: &Context<'_>,
    key: &str,
    pr: Option<&crate::forge::PullRequest>,
    tip: Option<&str>,
    decision: &Decision,
) -> Result<Option<Applied>, ApplyError> {
    let pr_ref = pr.map(PrRef::from);
    let unchanged = |action: Action| Applied {
        action,
        commit: tip.map(String::from),
        pull_request: pr_ref.clone(),
    };
    Ok(Some(match decision {
        Decision::Nothing => unchanged(Action::Unchanged),
        Decision::Failed { .. } => unchanged(Action::Failed),
        Decision::LeaveAlone { comment, .. } => {
            if let (Some(pr), Some(body)) = (pr, comment) {
                cx.forge.comment(pr, body)?;
            }
            unchanged(Action::Skipped)
        }
        Decision::DeleteBranch { tip } => {
            cx.ws.push(key, None, Some(oid(tip)?))?;
            Applied {
                action: Action::Unchanged,
                commit: None,
                pull_request: None,
            }
        }
        Decision::Close {
            comment,
            delete_branch,
            ..
        } => {
            if let Some(pr) = pr {
                cx.forge.close_pull_request(pr, comment)?;
            }
            if let Some(tip) = delete_branch {
                cx.ws.push(key, None, Some(oid(tip)?))?;
            }
            Applied {
                action: Action::Closed,
                commit: None,
                pull_request: pr_ref,
            }
        }
        Decision::Describe { body, .. } => {
            let Some(pr) = pr else {
                return Ok(Some(unchanged(Action::Unchanged)));
            };
            // The pull request as it is, with another description: no
            // settings (they were set when it opened, or wait for the next
            // update that delivers a render).
            let request = PrRequest {
                head: pr.head.clone(),
                base: pr.base.clone(),
                title: pr.title.clone(),
                body: body.clone(),
                labels: Vec::new(),
                reviewers: Vec::new(),
                draft: false,
                auto_merge: false,
            };
            let (described, ensured) = cx.forge.ensure_pull_request(&request)?;
            Applied {
                action: match ensured {
                    Ensured::Unchanged => Action::Unchanged,
                    _ => Action::Updated,
                },
                commit: tip.map(String::from),
                pull_request: Some(PrRef::from(&described)),
            }
        }
        Decision::Open { .. } | Decision::Update { .. } => return Ok(None),
    }))
}

/// Commits `files` as `rendered/<env>/` on the base commit and pushes it to
/// `hydrant/<env>`, if the branch still holds the tip the plan saw.
fn deliver(
    cx: &Context<'_>,
    env: &str,
    files: &std::collections::BTreeMap<String, String>,
    push: &Push,
) -> Result<Oid, GitError> {
    let base = cx.fetched.base_commit;
    let tree = cx.ws.tree_with(base, env, files)?;
    let commit = cx.ws.commit(base, tree, &push.message, cx.author)?;
    let replaces = push.replaces.as_deref().map(oid).transpose()?;
    cx.ws.push(env, Some(commit), replaces)?;
    Ok(commit)
}

/// Carries out a grouped wave's plan: rebuilds `hydrant/wave-<name>` on the
/// base commit, one commit per member in the plan's order (each the
/// member's own commit message and `rendered/<env>/`), pushes it with a
/// lease on the tip it replaces, and opens, updates or closes the one pull
/// request. `members` are the wave's members with their proposals.
pub fn group(
    cx: &Context<'_>,
    observed: &ObservedGroup,
    members: &[(Observed, Proposal)],
    settings: &PullRequestSettings,
    plan: &GroupPlan,
) -> Result<Applied, ApplyError> {
    let key = git::group_key(&plan.wave);
    let pr = observed.pull_request.as_ref();
    let tip = observed.branch.as_ref().map(|t| t.commit.clone());
    if let Some(done) = settle(cx, &key, pr, tip.as_deref(), &plan.decision)? {
        return Ok(done);
    }
    let (Decision::Open { push } | Decision::Update { push, .. }) = &plan.decision else {
        return Ok(Applied {
            action: Action::Unchanged,
            commit: tip,
            pull_request: pr.map(PrRef::from),
        });
    };
    let commit = match push {
        Some(push) => {
            let mut parent = cx.fetched.base_commit;
            for env in &plan.members {
                let Some(delivery) = members.iter().find_map(|(o, p)| match p {
                    Proposal::Fresh(d) if o.env == *env => Some(d),
                    _ => None,
                }) else {
                    continue;
                };
                let tree = cx.ws.tree_with(parent, env, &delivery.files)?;
                parent = cx
                    .ws
                    .commit(parent, tree, &delivery.commit_message, cx.author)?;
            }
            let replaces = push.replaces.as_deref().map(oid).transpose()?;
            cx.ws.push(&key, Some(parent), replaces)?;
            parent.to_string()
        }
        None => tip.unwrap_or_default(),
    };
    let request = PrRequest {
        head: plan.branch.clone(),
        base: cx.fetched.base_branch.clone(),
        title: plan.title.clone(),
        body: plan.body.clone(),
        labels: settings.labels.clone(),
        reviewers: settings.reviewers.clone(),
        draft: settings.draft,
        auto_merge: settings.auto_merge,
    };
    ensure(cx.forge, &request, push.is_some(), commit)
}

#[cfg(test)]
mod tests {
    use super::Kept;

    #[test]
    fn a_kept_description_reads_back_as_it_was_written() {
        let body = "## hydrant(dev): stable 1.0 → 1.1 ✓\n\n```diff\n-a\n+b\n```\n".repeat(200);
        let kept = Kept::new(body.clone());
        match &kept {
            Kept::Deflated(bytes) => assert!(bytes.len() < body.len() / 10, "{}", bytes.len()),
            Kept::Plain(_) => panic!("not deflated"),
        }
        assert_eq!(kept.text(), body);
        assert_eq!(Kept::new(String::new()).text(), "");
    }
}
