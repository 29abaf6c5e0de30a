//! One reconcile cycle: fetch the config repository, render every environment
//! from its base branch, and deliver each one through
//! [observe → plan → apply](crate::delivery).
//!
//! What each environment needs is decided by the pure planner
//! ([`crate::delivery::plan`]); this module only runs the three steps in order,
//! and holds the retry policy: a push that loses a race (the branch moved, or
//! the remote refused it) fetches, renders, observes and plans again, a few
//! times. Environments are isolated: one's failure is reported, classified
//! transient or permanent, and the others proceed; so is a panic while one is
//! rendered or delivered (a bug, caught and turned into that environment's
//! error, never the whole cycle's). A dry run plans and applies nothing. The cycle is idempotent: run twice with the same inputs, the second
//! run changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use serde::Serialize;

use crate::delivery::apply::{self, ApplyError, Context};
use crate::delivery::observe::{self, Depth, ObserveError};
use crate::delivery::{self, ErrorClass, plan};
use crate::forge::{Forge, ForgeError};
use crate::git::{Fetched, GitError, Signature, Workspace};
use crate::manifest::layout::{self, Metadata};
use crate::pipeline::Problem;
use crate::project::{ChannelFetch, ChannelSettings, Project, ProjectError, Render};

pub use crate::delivery::{Action, Outcome, PrRef, VersionChange};

/// How many times a push that lost a race is tried again.
pub const PUSH_ATTEMPTS: usize = 3;

#[derive(Debug, Clone)]
pub struct Options {
    pub base: Option<String>,
    /// Environments to reconcile; empty means all.
    pub envs: Vec<String>,
    /// Where channel specs come from, and how to reach them.
    pub channel: ChannelSettings,
    /// Look, don't touch: push nothing, write no pull request.
    pub dry_run: bool,
    pub author_name: String,
    pub author_email: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Project(#[from] ProjectError),
}

/// The config repository as it is on the base branch.
fn load(
    ws: &Workspace,
    fetched: &Fetched,
    channel: &ChannelSettings,
) -> Result<Project, CycleError> {
    let tree = ws.snapshot(fetched.base_commit)?;
    let shown = format!(
        "{}@{}",
        fetched.base_branch,
        Workspace::short(fetched.base_commit)
    );
    Ok(Project::from_tree(Arc::new(tree), &shown, channel)?)
}

/// Each environment's `hydrant.metadata` on the base branch, where it has
/// one and the files beside it are still those it lists: a hand edit of
/// `rendered/<env>/` makes hydrant render the environment again and repair it.
fn recorded_metadata(
    ws: &Workspace,
    fetched: &Fetched,
    envs: &[String],
) -> Result<HashMap<String, Metadata>, CycleError> {
    let mut out = HashMap::with_capacity(envs.len());
    for env in envs {
        let dir = format!("rendered/{env}");
        let Some(text) = ws.file_at(fetched.base_commit, &format!("{dir}/{}", layout::METADATA))?
        else {
            continue;
        };
        let Ok(meta) = serde_json::from_str::<Metadata>(&text) else {
            continue;
        };
        let entries = ws.entries_at(fetched.base_commit, &dir)?;
        let on_base =
            layout::outputs_digest(entries.iter().map(|(n, id)| (n.as_str(), id.clone())));
        if !meta.outputs.is_empty() && on_base == meta.outputs {
            out.insert(env.clone(), meta);
        }
    }
    Ok(out)
}

/// The environments `opts` names, or all.
fn selected(project: &Project, opts: &Options) -> Result<Vec<String>, CycleError> {
    if opts.envs.is_empty() {
        Ok(project.environments().to_vec())
    } else {
        Ok(project
            .select(&opts.envs, false)
            .map_err(ProjectError::from)?)
    }
}

/// Where one environment stands: `hydrant status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvStatus {
    pub env: String,
    pub channel: Option<String>,
    /// The pinned release, if any.
    pub release: Option<String>,
    /// The version the channel (or the pinned release) offers now.
    pub available: Option<String>,
    /// The version in `rendered/<env>/` on the base branch.
    pub rendered: Option<String>,
    pub pull_request: Option<PrStatus>,
    pub error: Option<String>,
}

/// An environment's open pull request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrStatus {
    pub number: u64,
    pub url: String,
    pub opened_at: Option<String>,
    pub age_secs: Option<u64>,
    pub draft: bool,
    /// Open, not a draft, and not set to merge by itself.
    pub waits_for_review: bool,
}

/// Seconds since an RFC 3339 time (0 when a forge's clock runs ahead).
fn age_of(at: &str) -> Option<u64> {
    let at: jiff::Timestamp = at.parse().ok()?;
    let secs = jiff::Timestamp::now().as_second() - at.as_second();
    Some(u64::try_from(secs).unwrap_or(0))
}

/// Where each selected environment stands: the version its channel offers,
/// the version rendered on the base branch, and its open pull request.
/// Changes nothing.
pub fn status(
    ws: &Workspace,
    forge: &dyn Forge,
    opts: &Options,
) -> Result<Vec<EnvStatus>, CycleError> {
    let fetched = ws.fetch(opts.base.as_deref())?;
    let project = load(ws, &fetched, &opts.channel)?;
    let envs = selected(&project, opts)?;
    let mut offered = BTreeMap::new();
    for (fetch, users) in project.probe_channels().map_err(ProjectError::from)? {
        for env in users {
            offered.insert(env, fetch.clone());
        }
    }
    let mut out = Vec::with_capacity(envs.len());
    for env in envs {
        let fetch = offered.get(&env);
        let mut status = EnvStatus {
            channel: fetch.map(|f| f.key.0.clone()),
            release: fetch.and_then(|f| f.key.1.clone()),
            available: fetch.and_then(|f| f.version.clone()),
            rendered: None,
            pull_request: None,
            error: fetch.filter(|f| f.version.is_none()).map(|_| {
                format!(
                    "the channel could not be fetched; `hydrant channel show --env {env}` tells why"
                )
            }),
            env,
        };
        match observe::environment(ws, forge, &fetched, &status.env, Depth::Full) {
            Ok(observed) => {
                status.rendered = plan::recorded_version(&observed.base_files);
                status.pull_request = observed.pull_request.map(|pr| PrStatus {
                    age_secs: pr.created_at.as_deref().and_then(age_of),
                    waits_for_review: !pr.draft && !pr.auto_merge,
                    number: pr.number,
                    url: pr.url,
                    opened_at: pr.created_at,
                    draft: pr.draft,
                });
            }
            Err(e) => status.error = Some(e.to_string()),
        }
        out.push(status);
    }
    Ok(out)
}

/// The failing environments a daemon's cycle leaves out.
#[derive(Debug, Clone, Default)]
pub struct Waiting {
    /// Transient failures whose retry is not due yet.
    pub backing_off: BTreeSet<String>,
    /// Permanent failures, each with the signal of its inputs when it failed:
    /// left out while the signal is the same.
    pub held: BTreeMap<String, String>,
}

/// The signal of each environment's inputs on the base commit: a digest of
/// the ids git gives to `environments/<env>/`, `templates/` and `channels/`,
/// and of `hydrant.yaml` and `holds.yaml`. It changes when any file an
/// environment renders from changes, and is read from git's trees without
/// reading or parsing the files (so it exists for an environment whose
/// values do not parse). A channel's new release is seen by the daemon's
/// channel fingerprints, not here.
fn input_signals(
    ws: &Workspace,
    fetched: &Fetched,
    envs: &[String],
) -> Result<BTreeMap<String, String>, CycleError> {
    let base = fetched.base_commit;
    let mut shared = String::new();
    for dir in ["templates", "channels"] {
        for (name, id) in ws.entries_at(base, dir)? {
            shared.push_str(&format!("{dir}/{name} {id}\n"));
        }
    }
    for file in ["hydrant.yaml", "holds.yaml"] {
        let text = ws.file_at(base, file)?.unwrap_or_default();
        shared.push_str(&format!("{file} {}\n", layout::sha256(text.as_bytes())));
    }
    let trees: HashMap<String, String> = ws.entries_at(base, "environments")?.into_iter().collect();
    Ok(envs
        .iter()
        .map(|env| {
            let own = trees.get(env).map_or("", String::as_str);
            let signal = layout::sha256(format!("{shared}environments/{env} {own}\n").as_bytes());
            (env.clone(), signal)
        })
        .collect())
}

/// What one cycle did.
pub struct Cycle {
    pub outcomes: Vec<Outcome>,
    /// The signal of each reconciled environment's inputs (see [`Waiting`]).
    pub inputs: BTreeMap<String, String>,
    /// Every channel fetch the cycle made.
    pub fetches: Vec<ChannelFetch>,
    /// The repository as the cycle read it from the base branch.
    pub project: Project,
}

/// Runs one cycle over the selected environments: observe, plan and (unless
/// this is a dry run) apply each one.
pub fn run_cycle(ws: &Workspace, forge: &dyn Forge, opts: &Options) -> Result<Cycle, CycleError> {
    run_cycle_waiting(ws, forge, opts, &Waiting::default())
}

/// Runs one cycle like [`run_cycle`], leaving out the failing environments
/// that `waiting` says are not to be tried yet: the daemon's per-environment
/// retries.
pub fn run_cycle_waiting(
    ws: &Workspace,
    forge: &dyn Forge,
    opts: &Options,
    waiting: &Waiting,
) -> Result<Cycle, CycleError> {
    let started = std::time::Instant::now();
    let mut fetched = ws.fetch(opts.base.as_deref())?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        base = %Workspace::short(fetched.base_commit),
        "fetched"
    );
    let mut project = load(ws, &fetched, &opts.channel)?;
    let envs = selected(&project, opts)?;
    let inputs = input_signals(ws, &fetched, &envs)?;
    let envs: Vec<String> = envs
        .into_iter()
        .filter(|env| {
            if waiting.backing_off.contains(env) {
                tracing::debug!(environment = %env, "backing off after a transient failure: not tried in this cycle");
                return false;
            }
            if waiting.held.get(env).is_some_and(|was| inputs.get(env) == Some(was)) {
                tracing::debug!(environment = %env, "its last failure was permanent and its inputs have not changed: not tried again");
                return false;
            }
            true
        })
        .collect();
    let inputs = envs
        .iter()
        .filter_map(|env| inputs.get(env).map(|s| (env.clone(), s.clone())))
        .collect();
    let mut recorded = recorded_metadata(ws, &fetched, &envs)?;
    let rendered = render_isolated(&project, &envs, &recorded);
    let mut fetches = project.take_fetches();
    let author = Signature::now(&opts.author_name, &opts.author_email).map_err(GitError::from)?;
    let mut outcomes = Vec::with_capacity(envs.len());
    for (env, mut result) in rendered {
        let channel = match &result {
            Ok(Render::Fresh(r)) => Some(&r.metadata.channel),
            Ok(Render::Current) => recorded.get(&env).map(|m| &m.channel),
            Err(_) => None,
        };
        let span = match channel {
            Some(c) => tracing::info_span!(
                "environment",
                environment = %env,
                channel = %c.name,
                version = %c.version
            ),
            None => tracing::info_span!("environment", environment = %env),
        };
        let _entered = span.enter();
        let mut attempt = 1;
        let outcome = loop {
            let cx = Context {
                ws,
                forge,
                fetched: &fetched,
                author: &author,
            };
            let delivered = catch_unwind(AssertUnwindSafe(|| {
                deliver(&cx, opts.dry_run, &env, &result, recorded.get(&env))
            }));
            let delivered = match delivered {
                Ok(delivered) => delivered,
                Err(payload) => {
                    let error = panicked(&env, "delivering", &*payload);
                    break Outcome::failed(&env, error, ErrorClass::Permanent);
                }
            };
            match delivered {
                Ok(outcome) => break outcome,
                Err(StepError::Apply(ApplyError::Git(GitError::PushRejected {
                    message, ..
                }))) if attempt < PUSH_ATTEMPTS => {
                    tracing::warn!(attempt, reason = %message, "push lost a race; fetching and rendering again");
                    attempt += 1;
                    let again = ws
                        .fetch(opts.base.as_deref())
                        .map_err(CycleError::from)
                        .and_then(|f| {
                            let p = load(ws, &f, &opts.channel)?;
                            Ok((f, p))
                        });
                    match again {
                        Ok((f, p)) => {
                            fetched = f;
                            project = p;
                            result = render_one(&project, &env, |_| None);
                            fetches.extend(project.take_fetches());
                            recorded.extend(recorded_metadata(
                                ws,
                                &fetched,
                                std::slice::from_ref(&env),
                            )?);
                        }
                        Err(e) => break Outcome::failed(&env, e.to_string(), e.class()),
                    }
                }
                Err(e) => break Outcome::failed(&env, e.to_string(), e.class()),
            }
        };
        match &outcome.error {
            Some(error) => {
                tracing::warn!(action = %outcome.action, class = ?outcome.class, %error, "environment failed")
            }
            None if outcome.action != Action::Unchanged => {
                tracing::info!(action = %outcome.action, reason = %outcome.reason, "environment reconciled")
            }
            None => {
                tracing::debug!(action = %outcome.action, reason = %outcome.reason, "environment reconciled")
            }
        }
        outcomes.push(outcome);
    }
    Ok(Cycle {
        outcomes,
        inputs,
        fetches,
        project,
    })
}

/// The error of an environment whose rendering or delivery panicked.
fn panicked(env: &str, doing: &str, payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string());
    format!(
        "{doing} `{env}` panicked: {what} (hint: this is a bug in hydrant; the other environments were not affected, and the next cycle tries again)"
    )
}

/// Renders one environment, a panic becoming its error.
fn render_one(
    project: &Project,
    env: &str,
    recorded: impl Fn(&str) -> Option<String> + Sync,
) -> Result<Render, Vec<Problem>> {
    let one = [env.to_string()];
    match catch_unwind(AssertUnwindSafe(|| project.render_changed(&one, &recorded))) {
        Ok(mut results) if !results.is_empty() => results.swap_remove(0).1,
        Ok(_) => Err(vec![Problem::new(format!("`{env}` was not rendered"))]),
        Err(payload) => Err(vec![Problem::new(panicked(env, "rendering", &*payload))]),
    }
}

/// Renders the environments whose inputs changed, all at once; should that
/// panic, again one by one, so that only the environment that panics fails.
fn render_isolated(
    project: &Project,
    envs: &[String],
    recorded: &HashMap<String, Metadata>,
) -> Vec<(String, Result<Render, Vec<Problem>>)> {
    let digest = |env: &str| recorded.get(env).map(|m| m.digest.clone());
    match catch_unwind(AssertUnwindSafe(|| project.render_changed(envs, digest))) {
        Ok(rendered) => rendered,
        Err(_) => {
            tracing::warn!("rendering panicked; rendering each environment alone to isolate it");
            envs.iter()
                .map(|env| (env.clone(), render_one(project, env, digest)))
                .collect()
        }
    }
}

/// What can stop one environment's delivery.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl StepError {
    fn class(&self) -> ErrorClass {
        match self {
            StepError::Observe(ObserveError::Git(e)) | StepError::Apply(ApplyError::Git(e)) => {
                git_class(e)
            }
            StepError::Observe(ObserveError::Forge(e)) | StepError::Apply(ApplyError::Forge(e)) => {
                forge_class(e)
            }
        }
    }
}

impl CycleError {
    /// Whether the failure may pass by itself.
    pub fn class(&self) -> ErrorClass {
        match self {
            CycleError::Git(e) => git_class(e),
            CycleError::Project(_) => ErrorClass::Permanent,
        }
    }
}

fn git_class(e: &GitError) -> ErrorClass {
    match e {
        GitError::Unreachable { .. }
        | GitError::PushRejected { .. }
        | GitError::Locked { .. }
        | GitError::Other(_) => ErrorClass::Transient,
        GitError::Auth { .. }
        | GitError::MissingBase { .. }
        | GitError::HydrantBase { .. }
        | GitError::WorkDir { .. } => ErrorClass::Permanent,
    }
}

fn forge_class(_: &ForgeError) -> ErrorClass {
    ErrorClass::Transient
}

/// Observes, plans and (unless `dry_run`) applies one environment.
fn deliver(
    cx: &Context<'_>,
    dry_run: bool,
    env: &str,
    render: &Result<Render, Vec<Problem>>,
    recorded: Option<&Metadata>,
) -> Result<Outcome, StepError> {
    let depth = match render {
        Ok(Render::Current) => {
            tracing::debug!("inputs unchanged since the recorded render: not rendered again");
            Depth::Settled
        }
        _ => Depth::Full,
    };
    let observed = observe::environment(cx.ws, cx.forge, cx.fetched, env, depth)?;
    let source = cx.fetched.base_commit.to_string();
    let proposal = delivery::propose(&observed, &source, render, recorded);
    let plan = plan::plan(&observed, &proposal);
    let mut outcome = Outcome::planned(&plan, &observed);
    if dry_run || plan.decision.changes_nothing() {
        return Ok(outcome);
    }
    let settings = match render {
        Ok(Render::Fresh(r)) => r.pull_request.clone(),
        _ => Default::default(),
    };
    let applied = apply::apply(cx, &observed, &proposal, &settings, &plan)?;
    outcome.action = applied.action;
    outcome.commit = applied.commit;
    outcome.pull_request = applied.pull_request;
    Ok(outcome)
}
