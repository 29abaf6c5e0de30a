//! What is true now about an environment: its files on the base branch, the
//! tip of `hydrant/<env>` and who made it, and its open pull request.
//!
//! Observing reads git and asks the forge; it writes nothing and decides
//! nothing (that is [`super::plan`]).

use crate::forge::{Forge, ForgeError};
use crate::git::{self, Fetched, GitError, Workspace};

use super::plan::{BranchTip, HUMAN_MARKER, Observed};

/// What can stop an environment from being observed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
}

/// How much of an environment to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Its inputs are unchanged since the render recorded on the base branch:
    /// look up its pull request only if `hydrant/<env>` exists (a forge closes
    /// a pull request whose branch is gone), so a settled environment costs
    /// no forge call and no read of its files.
    Settled,
    /// Everything, for a fresh render.
    Full,
}

/// Observes one environment on the base commit `fetched` found.
pub fn environment(
    ws: &Workspace,
    forge: &dyn Forge,
    fetched: &Fetched,
    env: &str,
    depth: Depth,
) -> Result<Observed, ObserveError> {
    let base = fetched.base_commit;
    let dir = format!("rendered/{env}");
    let tip = ws.tip(env)?;
    let mut observed = Observed {
        env: env.to_string(),
        base_branch: fetched.base_branch.clone(),
        ..Observed::default()
    };
    if depth == Depth::Settled && tip.is_none() {
        return Ok(observed);
    }
    if depth == Depth::Full {
        observed.base_files = ws.rendered_files(base, env)?;
    }
    observed.branch = match &tip {
        None => None,
        Some(t) => {
            let on_current_base = match t.parents[..] {
                [parent] if ws.contains(base, parent) => {
                    let parent_tree = ws.tree_of(parent)?;
                    let base_tree = ws.tree_of(base)?;
                    ws.subtree(parent_tree, &dir) == ws.subtree(base_tree, &dir)
                }
                _ => false,
            };
            let version = ws
                .file_at(
                    t.commit,
                    &format!("{dir}/{}", crate::manifest::layout::METADATA),
                )?
                .and_then(|text| {
                    serde_json::from_str::<crate::manifest::layout::Metadata>(&text).ok()
                })
                .map(|m| m.channel.version);
            Some(BranchTip {
                version,
                commit: t.commit.to_string(),
                by_hydrant: t.is_hydrant,
                author: t.author.clone(),
                rendered_tree: ws.subtree(t.tree, &dir).map(|id| id.to_string()),
                on_current_base,
            })
        }
    };
    observed.pull_request = forge.find_open(&git::branch_name(env), &fetched.base_branch)?;
    if let (Some(pr), Some(t)) = (&observed.pull_request, &tip)
        && !t.is_hydrant
    {
        observed.told_human = forge
            .comments(pr)?
            .iter()
            .any(|c| c.body.contains(HUMAN_MARKER));
    }
    Ok(observed)
}
