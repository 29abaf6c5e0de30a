//! Holds as an emergency action: `hydrant hold`, `hydrant release-hold` and
//! the daemon's `/api/v1/holds` change `holds.yaml` with one commit straight
//! to the base branch, like a revert, rather than through a pull request.
//!
//! Each attempt fetches, reads `holds.yaml` at the base branch's tip (absent:
//! nothing held), applies the edit ([`apply`], pure), commits and pushes as a
//! fast-forward of the tip it read: another writer's commit is never
//! overwritten. A push that loses a race is tried again on the new tip, up
//! to [`ATTEMPTS`] times; a push the remote refuses (a receive hook, a
//! protected branch) is an error with a hint. An edit that changes nothing
//! commits nothing. What `holds.yaml` means to the planner is
//! [`crate::rollout::holds`]'s.

use serde::Serialize;

use crate::config::{ConfigError, SETTINGS_FILE};
use crate::git::{GitError, Signature, Workspace};
use crate::rollout::holds::{FILE, Hold, Holds, Scope};

/// How many times a push that lost a race is tried.
pub const ATTEMPTS: usize = 3;

/// What to change in `holds.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Hold these (each added, or given its new reason).
    Hold(Vec<Hold>),
    /// Release the holds of these scopes.
    Release(Vec<Scope>),
    /// Halt a rollout after a health gate failed: add `hold` (unless a hold
    /// of its scope is there already, whose words are kept) and skip the
    /// releases of `skip`.
    Halt { hold: Hold, skip: Vec<String> },
}

/// One edit, and who makes it.
#[derive(Debug, Clone)]
pub struct Edit {
    pub change: Change,
    /// Who asks for it: named in the commit message.
    pub by: String,
    /// The base branch [default: the remote's default branch].
    pub base: Option<String>,
    pub author_name: String,
    pub author_email: String,
}

/// What an edit did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Committed {
    /// The base branch.
    pub branch: String,
    /// The commit pushed to it; `None` when the edit changed nothing.
    pub commit: Option<String>,
    /// The commit's message, or why nothing changed.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HoldsError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{0}; hint: fix `{FILE}` with a pull request, then hold again")]
    File(#[source] ConfigError),
    #[error(
        "`{name}` is not an environment of the repository on `{branch}`; hint: environments are the directories of `environments/`{}",
        known_list(.known)
    )]
    UnknownEnvironment {
        name: String,
        branch: String,
        known: Vec<String>,
    },
    #[error(
        "`{name}` is not a wave of `rollout.waves` in `{SETTINGS_FILE}` on `{branch}`{}",
        known_list(.known)
    )]
    UnknownWave {
        name: String,
        branch: String,
        known: Vec<String>,
    },
    /// `hydrant.yaml` does not parse, so a wave cannot be checked.
    #[error(
        "{0}; hint: a wave is checked against `rollout.waves` there: fix `{SETTINGS_FILE}` with a pull request, or hold `--all` or `--env`"
    )]
    Waves(#[source] ConfigError),
    #[error(
        "the base branch `{branch}` of `{url}` refused the commit: {message}; hint: it takes no direct pushes (a receive hook or a branch protection): change `{FILE}` with a pull request instead"
    )]
    Refused {
        branch: String,
        url: String,
        message: String,
    },
    #[error(
        "the base branch `{branch}` moved during each of {ATTEMPTS} attempts: other writers keep pushing; try again"
    )]
    Raced { branch: String },
}

impl HoldsError {
    /// Whether the caller's input is at fault (an unknown environment), as
    /// opposed to the repository or the remote.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            HoldsError::UnknownEnvironment { .. } | HoldsError::UnknownWave { .. }
        )
    }
}

fn known_list(known: &[String]) -> String {
    const SHOWN: usize = 10;
    if known.is_empty() {
        return ", and there are none".to_string();
    }
    let mut list = known
        .iter()
        .take(SHOWN)
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if known.len() > SHOWN {
        list.push_str(&format!(" and {} more", known.len() - SHOWN));
    }
    format!(": {list}")
}

/// What the scopes cover, in words: `environments dev, prod`.
fn describe(scopes: &[&Scope]) -> String {
    let envs: Option<Vec<&str>> = scopes
        .iter()
        .map(|s| match s {
            Scope::Environment(e) => Some(e.as_str()),
            _ => None,
        })
        .collect();
    match envs {
        Some(envs) if envs.len() > 1 => format!("environments {}", envs.join(", ")),
        _ => scopes
            .iter()
            .map(|s| s.describe())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Applies `change` to `holds` (pure): whether anything changed, and the
/// commit message that says what, or why nothing did.
pub fn apply(holds: &mut Holds, change: &Change, by: &str) -> (bool, String) {
    match change {
        Change::Hold(new) => {
            let scopes: Vec<&Scope> = new.iter().map(|h| &h.scope).collect();
            let what = describe(&scopes);
            let reason = new.first().map_or("", |h| h.reason.as_str());
            let mut changed = false;
            for h in new {
                changed |= holds.hold(h.clone());
            }
            if changed {
                (true, format!("Hold {what}: {reason}\n\nHeld by {by}.\n"))
            } else {
                (false, format!("{what}: already held by {by}: {reason}"))
            }
        }
        Change::Halt { hold, skip } => {
            let mut changed = false;
            if !holds.holds.iter().any(|h| h.scope == hold.scope) {
                changed |= holds.hold(hold.clone());
            }
            let mut skipped = Vec::new();
            for release in skip {
                if !holds.skips(release) {
                    holds.skip.push(release.clone());
                    skipped.push(format!("skip {release}, "));
                    changed = true;
                }
            }
            if changed {
                (
                    true,
                    format!(
                        "Halt the rollout: {}hold {}: {}\n\nHeld by {by}.\n",
                        skipped.concat(),
                        hold.scope.describe(),
                        hold.reason
                    ),
                )
            } else {
                (
                    false,
                    format!(
                        "{}: already held, and every release to skip is skipped",
                        hold.scope.describe()
                    ),
                )
            }
        }
        Change::Release(scopes) => {
            let what = describe(&scopes.iter().collect::<Vec<_>>());
            let mut changed = false;
            for s in scopes {
                changed |= holds.release(s);
            }
            if changed {
                (
                    true,
                    format!("Release the hold on {what}\n\nReleased by {by}.\n"),
                )
            } else {
                (false, format!("{what}: not held"))
            }
        }
    }
}

/// Commits `edit` to the base branch (see the module's documentation).
pub fn commit(ws: &Workspace, edit: &Edit) -> Result<Committed, HoldsError> {
    let author = Signature::now(&edit.author_name, &edit.author_email).map_err(GitError::from)?;
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .map(|t| t.to_string())
        .ok();
    let dated = |h: &Hold| Hold {
        since: h.since.clone().or_else(|| now.clone()),
        ..h.clone()
    };
    let change = match &edit.change {
        Change::Hold(holds) => Change::Hold(holds.iter().map(dated).collect()),
        Change::Halt { hold, skip } => Change::Halt {
            hold: dated(hold),
            skip: skip.clone(),
        },
        release => release.clone(),
    };
    let mut base_branch = edit.base.clone();
    for attempt in 1..=ATTEMPTS {
        let fetched = ws.fetch(base_branch.as_deref())?;
        let (branch, base) = (fetched.base_branch, fetched.base_commit);
        base_branch = Some(branch.clone());
        if let Change::Hold(holds) = &change {
            check_environments(ws, base, &branch, holds)?;
            check_waves(ws, base, &branch, holds)?;
        }
        let mut holds = match ws.file_at(base, FILE)? {
            Some(text) => {
                Holds::parse(&format!("{FILE}` on `{branch}"), &text).map_err(HoldsError::File)?
            }
            None => Holds::default(),
        };
        let (changed, message) = apply(&mut holds, &change, &edit.by);
        if !changed {
            return Ok(Committed {
                branch,
                commit: None,
                message,
            });
        }
        let text = (!holds.is_empty()).then(|| holds.to_yaml());
        let tree = ws.tree_with_root_file(base, FILE, text.as_deref())?;
        let commit = ws.commit(base, tree, &message, &author)?;
        match ws.push_base(&branch, commit, base) {
            Ok(()) => {
                tracing::info!(branch = %branch, commit = %commit, by = %edit.by, "committed a change of {FILE}");
                return Ok(Committed {
                    branch,
                    commit: Some(commit.to_string()),
                    message,
                });
            }
            Err(GitError::PushRejected { url, message, .. }) => {
                // A race moved the branch; a refusal leaves it where it was.
                if ws.fetch(Some(&branch))?.base_commit == base {
                    return Err(HoldsError::Refused {
                        branch,
                        url,
                        message,
                    });
                }
                tracing::info!(branch = %branch, attempt, "the base branch moved; trying again on its new tip");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(HoldsError::Raced {
        branch: base_branch.unwrap_or_default(),
    })
}

/// Refuses a hold on an environment the base branch does not have.
fn check_environments(
    ws: &Workspace,
    base: crate::git::Oid,
    branch: &str,
    holds: &[Hold],
) -> Result<(), HoldsError> {
    let mut known: Option<Vec<String>> = None;
    for h in holds {
        let Scope::Environment(name) = &h.scope else {
            continue;
        };
        let known = match &mut known {
            Some(k) => k,
            None => known.insert(
                ws.entries_at(base, "environments")?
                    .into_iter()
                    .filter(|(_, id)| id.starts_with("tree:"))
                    .map(|(n, _)| n)
                    .collect(),
            ),
        };
        if !known.contains(name) {
            return Err(HoldsError::UnknownEnvironment {
                name: name.clone(),
                branch: branch.to_string(),
                known: known.clone(),
            });
        }
    }
    Ok(())
}

/// Refuses a hold on a wave that `rollout.waves` on the base branch does not list.
fn check_waves(
    ws: &Workspace,
    base: crate::git::Oid,
    branch: &str,
    holds: &[Hold],
) -> Result<(), HoldsError> {
    let Some(name) = holds.iter().find_map(|h| match &h.scope {
        Scope::Wave(w) => Some(w),
        _ => None,
    }) else {
        return Ok(());
    };
    let text = ws.file_at(base, SETTINGS_FILE)?.unwrap_or_default();
    let known =
        crate::rollout::config::wave_names(&format!("{SETTINGS_FILE}` on `{branch}"), &text)
            .map_err(HoldsError::Waves)?;
    match known.contains(name) {
        true => Ok(()),
        false => Err(HoldsError::UnknownWave {
            name: name.clone(),
            branch: branch.to_string(),
            known,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(scope: Scope, reason: &str) -> Hold {
        Hold::new(scope, reason, "alice", None).unwrap()
    }

    #[test]
    fn the_commit_message_names_the_action_the_scope_who_and_why() {
        let mut holds = Holds::default();
        let all = Change::Hold(vec![hold(Scope::All, "incident 4711")]);
        assert_eq!(
            apply(&mut holds, &all, "alice"),
            (
                true,
                "Hold every environment: incident 4711\n\nHeld by alice.\n".to_string()
            )
        );
        assert_eq!(
            apply(&mut holds, &all, "alice"),
            (
                false,
                "every environment: already held by alice: incident 4711".to_string()
            )
        );
        let envs = Change::Hold(vec![
            hold(Scope::Environment("dev".to_string()), "audit"),
            hold(Scope::Environment("prod".to_string()), "audit"),
        ]);
        let (changed, message) = apply(&mut holds, &envs, "bob");
        assert!(changed);
        assert!(
            message.starts_with("Hold environments dev, prod: audit\n"),
            "{message}"
        );
        let release = Change::Release(vec![Scope::Wave("early".to_string())]);
        assert_eq!(
            apply(&mut holds, &release, "carol"),
            (false, "wave early: not held".to_string())
        );
        let release = Change::Release(vec![Scope::All]);
        assert_eq!(
            apply(&mut holds, &release, "carol"),
            (
                true,
                "Release the hold on every environment\n\nReleased by carol.\n".to_string()
            )
        );
        assert_eq!(holds.holds.len(), 2);
    }

    #[test]
    fn an_unknown_wave_is_named_with_the_waves_there_are() {
        let e = HoldsError::UnknownWave {
            name: "erly".to_string(),
            branch: "main".to_string(),
            known: vec!["canary".to_string(), "early".to_string()],
        };
        assert_eq!(
            e.to_string(),
            "`erly` is not a wave of `rollout.waves` in `hydrant.yaml` on `main`: `canary`, `early`"
        );
        assert!(e.is_bad_input());
    }

    #[test]
    fn a_halt_holds_everything_and_skips_the_release_but_keeps_a_hold_already_there() {
        let mut holds = Holds::default();
        let halt = Change::Halt {
            hold: Hold::new(
                Scope::All,
                "gate `up` failed for c1 on 1.1.0",
                "hydrant",
                None,
            )
            .unwrap(),
            skip: vec!["1.1.0".to_string()],
        };
        let (changed, message) = apply(&mut holds, &halt, "hydrant");
        assert!(changed);
        assert_eq!(
            message,
            "Halt the rollout: skip 1.1.0, hold every environment: gate `up` failed for c1 on 1.1.0\n\nHeld by hydrant.\n"
        );
        assert_eq!(holds.skip, vec!["1.1.0".to_string()]);
        assert!(!apply(&mut holds, &halt, "hydrant").0);
        // A person's hold on everything keeps its words.
        let mut holds = Holds::default();
        holds.hold(hold(Scope::All, "incident 4711"));
        assert!(apply(&mut holds, &halt, "hydrant").0);
        assert_eq!(holds.holds.len(), 1);
        assert_eq!(holds.holds[0].reason, "incident 4711");
        assert!(holds.skips("1.1.0"));
    }

    #[test]
    fn an_unknown_environment_is_named_with_the_ones_there_are() {
        let e = HoldsError::UnknownEnvironment {
            name: "nosuch".to_string(),
            branch: "main".to_string(),
            known: (0..12).map(|i| format!("e{i}")).collect(),
        };
        let text = e.to_string();
        assert!(text.starts_with("`nosuch` is not an environment"), "{text}");
        assert!(
            text.contains("`e0`, `e1`") && text.ends_with("and 2 more"),
            "{text}"
        );
    }
}
