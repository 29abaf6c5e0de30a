//! What is true now about an environment: its files on the base branch, the
//! tip of `hydrant/<env>` and who made it, and its open pull request; and
//! about a grouped wave's branch, `hydrant/wave-<name>`, and its pull request.
//!
//! Observing reads git and asks the forge; it writes nothing and decides
//! nothing (that is [`super::plan`]).

use std::collections::BTreeMap;

use crate::forge::{Forge, ForgeError};
use crate::git::{self, Fetched, GitError, Workspace};

use super::group::{GroupTip, ObservedGroup};
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Depth {
    /// Its inputs are unchanged since the render recorded on the base branch:
    /// look up its pull request only if `hydrant/<env>` exists (a forge closes
    /// a pull request whose branch is gone), so a settled environment costs
    /// no forge call and no read of its files.
    Settled,
    /// Everything, for a fresh render.
    Full,
    /// Everything, for a fresh render, its files on the base commit read
    /// already (by the render stage, which wrote the pull request's text
    /// from them).
    Read(BTreeMap<String, String>),
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
    match depth {
        Depth::Settled if tip.is_none() => return Ok(observed),
        Depth::Settled => {}
        Depth::Full => observed.base_files = ws.rendered_files(base, env)?,
        Depth::Read(files) => observed.base_files = files,
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

/// How many commits above the base a group branch may have beyond one per
/// member before it is taken as a person's work (hydrant never makes more).
const GROUP_SLACK: usize = 100;

/// Observes a grouped wave's branch, `hydrant/wave-<name>`: its commits
/// above the base commit `fetched` found (which environment each of
/// hydrant's delivers, and who made any other), `rendered/<env>/` at its tip,
/// and its open pull request. `members` is how many environments the wave
/// has.
pub fn group(
    ws: &Workspace,
    forge: &dyn Forge,
    fetched: &Fetched,
    wave: &str,
    members: usize,
) -> Result<ObservedGroup, ObserveError> {
    let key = git::group_key(wave);
    let branch = git::branch_name(&key);
    let base = fetched.base_commit;
    let mut observed = ObservedGroup {
        wave: wave.to_string(),
        base_branch: fetched.base_branch.clone(),
        ..ObservedGroup::default()
    };
    let Some(tip) = ws.tip(&key)? else {
        return Ok(observed);
    };
    let mut seen = GroupTip {
        commit: tip.commit.to_string(),
        on_current_base: true,
        ..GroupTip::default()
    };
    let limit = members + GROUP_SLACK;
    match ws.commits_above(tip.commit, base, limit)? {
        None => {
            seen.foreign = Some(format!("someone: more than {limit} commits above the base"));
        }
        Some(commits) => {
            let prefix = format!("{}: ", git::ENV_TRAILER);
            for c in commits.iter().rev() {
                let env = c
                    .message
                    .lines()
                    .rev()
                    .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
                    .filter(|env| crate::names::is_valid(env) && c.parents.len() == 1);
                match env {
                    Some(env) => seen.envs.push(env.to_string()),
                    None if seen.foreign.is_none() => seen.foreign = Some(c.author.clone()),
                    None => {}
                }
            }
            if let Some(oldest) = commits.last() {
                let parent = oldest.parents.first().copied();
                let base_tree = ws.tree_of(base)?;
                seen.on_current_base = match parent {
                    Some(p) => {
                        let parent_tree = ws.tree_of(p)?;
                        seen.envs.iter().all(|env| {
                            let dir = format!("rendered/{env}");
                            ws.subtree(parent_tree, &dir) == ws.subtree(base_tree, &dir)
                        })
                    }
                    None => false,
                };
            }
        }
    }
    for env in &seen.envs {
        if let Some(id) = ws.subtree(tip.tree, &format!("rendered/{env}")) {
            seen.rendered_trees.insert(env.clone(), id.to_string());
        }
    }
    let foreign = seen.foreign.is_some();
    observed.branch = Some(seen);
    observed.pull_request = forge.find_open(&branch, &fetched.base_branch)?;
    if let Some(pr) = &observed.pull_request
        && foreign
    {
        observed.told_human = forge
            .comments(pr)?
            .iter()
            .any(|c| c.body.contains(HUMAN_MARKER));
    }
    Ok(observed)
}
