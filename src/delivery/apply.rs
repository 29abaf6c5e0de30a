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
    /// A staged pull request's description could not be read back from the
    /// work directory.
    #[error("reading back a pull request description kept in the work directory: {0}")]
    Spool(String),
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

/// Where a cycle's staged changes wait for its push: their commits in the
/// cycle's pack, their pull requests' descriptions (several KiB each, with
/// the diff) deflated into one unnamed file of the work directory, so that
/// memory does not hold every staged environment's until then.
pub struct Staging<'a> {
    pub batch: git::Batch<'a>,
    pub spool: Spool,
}

/// The descriptions of a cycle's staged pull requests, deflated one after
/// another into an unnamed file: nothing is left behind however the run
/// ends. Read from several threads as the pull requests are opened.
pub struct Spool {
    file: Option<std::fs::File>,
    /// Where the next description goes.
    end: std::sync::atomic::AtomicU64,
}

/// A pull request's description while it waits for the cycle's push: where
/// it is in the spool, or the text itself should the spool fail.
enum Kept {
    Spooled { at: u64, len: usize },
    Plain(String),
}

impl Spool {
    /// A spool in `dir` (hydrant's work directory). Should the file not be
    /// made, descriptions are kept in memory.
    pub fn new(dir: &std::path::Path) -> Spool {
        Spool {
            file: tempfile::tempfile_in(dir).ok(),
            end: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn keep(&self, text: String) -> Kept {
        use std::io::Write;
        use std::os::unix::fs::FileExt;
        let Some(spool) = &self.file else {
            return Kept::Plain(text);
        };
        let mut e = flate2::write::DeflateEncoder::new(
            Vec::with_capacity(text.len() / 4),
            flate2::Compression::fast(),
        );
        let Ok(deflated) = e.write_all(text.as_bytes()).and_then(|()| e.finish()) else {
            return Kept::Plain(text);
        };
        let at = self
            .end
            .fetch_add(deflated.len() as u64, std::sync::atomic::Ordering::Relaxed);
        match spool.write_all_at(&deflated, at) {
            Ok(()) => Kept::Spooled {
                at,
                len: deflated.len(),
            },
            Err(_) => Kept::Plain(text),
        }
    }

    fn text(&self, kept: &Kept) -> Result<String, ApplyError> {
        use std::io::Read;
        use std::os::unix::fs::FileExt;
        let (at, len, spool) = match (kept, &self.file) {
            (Kept::Plain(text), _) => return Ok(text.clone()),
            (Kept::Spooled { at, len }, Some(spool)) => (*at, *len, spool),
            (Kept::Spooled { .. }, None) => {
                return Err(ApplyError::Spool("the spool is gone".to_string()));
            }
        };
        let mut deflated = vec![0; len];
        let mut text = String::new();
        spool
            .read_exact_at(&mut deflated, at)
            .and_then(|()| {
                flate2::read::DeflateDecoder::new(&deflated[..]).read_to_string(&mut text)
            })
            .map_err(|e| ApplyError::Spool(e.to_string()))?;
        Ok(text)
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
    staging: &mut Staging<'_>,
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
    let tree = staging.batch.tree_with(base, env, &delivery.files)?;
    let commit = staging.batch.commit(base, tree, &push.message, cx.author)?;
    let mut request = request(cx, git::branch_name(env), delivery, settings);
    let body = staging.spool.keep(std::mem::take(&mut request.body));
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
pub fn finish(forge: &dyn Forge, spool: &Spool, pending: &Pending) -> Result<Applied, ApplyError> {
    let commit = pending
        .update
        .new
        .map(|o| o.to_string())
        .unwrap_or_default();
    let request = PrRequest {
        body: spool.text(&pending.body)?,
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
    use super::{Kept, Spool};

    #[test]
    fn kept_descriptions_read_back_as_they_were_written_from_a_spool_that_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        let bodies: Vec<String> = (0..50)
            .map(|i| {
                format!("## hydrant(env-{i}): stable 1.0 → 1.1 ✓\n\n```diff\n-a\n+b\n```\n")
                    .repeat(200)
            })
            .chain([String::new()])
            .collect();
        let kept: Vec<Kept> = bodies.iter().map(|b| spool.keep(b.clone())).collect();
        for (k, body) in kept.iter().zip(&bodies) {
            match k {
                Kept::Spooled { len, .. } => assert!(*len <= body.len() / 10 + 16, "{len}"),
                Kept::Plain(_) => panic!("not spooled"),
            }
        }
        // Read back from several threads, in any order.
        std::thread::scope(|scope| {
            for (k, body) in kept.iter().zip(&bodies).rev() {
                let spool = &spool;
                scope.spawn(move || assert_eq!(&spool.text(k).unwrap(), body));
            }
        });
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the spool has no name"
        );
        // Without a spool, a description is kept as it is.
        let none = Spool::new(&dir.path().join("missing"));
        let k = none.keep(bodies[0].clone());
        assert!(matches!(k, Kept::Plain(_)));
        assert_eq!(none.text(&k).unwrap(), bodies[0]);
    }
}
