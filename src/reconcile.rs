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

use crate::delivery::apply::{self, ApplyError, Context};
use crate::delivery::observe::{self, Depth, ObserveError};
use crate::delivery::pace::{self, BudgetUse};
use crate::delivery::{self, ErrorClass, plan};
use crate::forge::{Forge, ForgeError};
use crate::git::{Fetched, GitError, Signature, Workspace};
use crate::manifest::layout::{self, Metadata};
use crate::pipeline::Problem;
use crate::project::{ChannelFetch, ChannelSettings, Project, ProjectError, Render};
use crate::repo::RepoError;
use crate::rollout::budget::{self, Budget, Throttle, Usage};
use crate::rollout::holds::{self, Holds};
use crate::rollout::{self, Frozen, Verdict};

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
    /// How many new pull requests may be opened (the operator's setting).
    pub budget: Budget,
}

#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Project(#[from] ProjectError),
}

/// The config repository as it is on the base branch.
pub(crate) fn load(
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

/// How many first-parent commits of the base branch are read to find when
/// each environment's version merged (its soak starts then).
pub const MERGE_WALK_LIMIT: usize = 1_000;

/// `holds.yaml` on the base branch (none: no holds).
fn read_holds(ws: &Workspace, fetched: &Fetched) -> Result<Holds, CycleError> {
    match ws.file_at(fetched.base_commit, holds::FILE)? {
        Some(text) => Ok(Holds::parse(holds::FILE, &text)
            .map_err(|e| ProjectError::Repo(RepoError::Config(e)))?),
        None => Ok(Holds::default()),
    }
}

/// What the rollout lets every environment of the repository take at `now`,
/// observed on the base branch: each one's recorded version, when that
/// merged (for the waves whose soak matters, in one walk of the base
/// branch's first parents), `holds.yaml` and the latest release of each
/// channel the `selected` environments follow (no other channel is fetched).
pub(crate) fn decide_rollout(
    ws: &Workspace,
    fetched: &Fetched,
    project: &Project,
    selected: &[String],
    now: jiff::Timestamp,
) -> Result<rollout::Decision, CycleError> {
    let holds = read_holds(ws, fetched)?;
    let base = fetched.base_commit;
    let mut environments = Vec::new();
    for (name, config) in project.environment_configs() {
        let current = ws
            .file_at(base, &format!("rendered/{name}/{}", layout::METADATA))?
            .and_then(|text| serde_json::from_str::<Metadata>(&text).ok())
            .map(|m| m.channel.version);
        environments.push(rollout::Environment {
            name,
            channel: config.channel,
            pinned: config.release,
            labels: config.labels,
            current,
            merged_at: None,
        });
    }
    let mut channels: Vec<String> = environments
        .iter()
        .filter(|e| e.pinned.is_none() && selected.contains(&e.name))
        .map(|e| e.channel.clone())
        .collect();
    channels.sort();
    channels.dedup();
    let latest = project.latest_versions(&channels);
    let soaking = rollout::soaking(&rollout::Input {
        rollout: project.rollout(),
        environments: &environments,
        latest: &latest,
        holds: &holds,
        now,
    });
    if !soaking.is_empty() {
        let wanted: Vec<(usize, String)> = environments
            .iter()
            .enumerate()
            .filter(|(_, e)| soaking.contains(&e.name))
            .map(|(i, e)| (i, e.current.clone().unwrap_or_default()))
            .collect();
        let paths: Vec<String> = wanted
            .iter()
            .map(|(i, _)| format!("rendered/{}/{}", environments[*i].name, layout::METADATA))
            .collect();
        let started = std::time::Instant::now();
        let times = ws.first_shown(base, &paths, MERGE_WALK_LIMIT, |i, text| {
            serde_json::from_str::<Metadata>(text).is_ok_and(|m| m.channel.version == wanted[i].1)
        })?;
        tracing::debug!(
            environments = paths.len(),
            seconds = started.elapsed().as_secs_f64(),
            "read when the soaking waves merged"
        );
        for ((i, _), time) in wanted.iter().zip(times) {
            environments[*i].merged_at = time.and_then(|t| jiff::Timestamp::from_second(t).ok());
        }
    }
    Ok(rollout::decide(&rollout::Input {
        rollout: project.rollout(),
        environments: &environments,
        latest: &latest,
        holds: &holds,
        now,
    }))
}

/// The environments `opts` names, or all.
pub(crate) fn selected(project: &Project, opts: &Options) -> Result<Vec<String>, CycleError> {
    if opts.envs.is_empty() {
        Ok(project.environments().to_vec())
    } else {
        Ok(project
            .select(&opts.envs, false)
            .map_err(ProjectError::from)?)
    }
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
    /// What the rollout let each environment take.
    pub rollout: rollout::Decision,
    /// The pull-request budget, when an environment would have opened one.
    pub budget: Option<BudgetUse>,
}

/// An hour, the span of the pull-request budget.
const HOUR: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// The pull-request budget over one cycle. hydrant's pull requests of the
/// last hour are read from the forge (so a restart, or a second replica,
/// counts the same) once, when the first environment would open one; the
/// forge's secondary rate limits come from its API client, which remembers
/// them across a daemon's cycles.
struct Pacing<'a> {
    budget: Budget,
    forge: &'a dyn Forge,
    /// When hydrant's pull requests of the last hour were opened, and how
    /// many are open, once read.
    usage: Option<(Vec<jiff::Timestamp>, u32)>,
    last: Option<BudgetUse>,
}

impl<'a> Pacing<'a> {
    fn new(budget: Budget, forge: &'a dyn Forge) -> Pacing<'a> {
        Pacing {
            budget,
            forge,
            usage: None,
            last: None,
        }
    }

    /// The forge's secondary rate limits of the last hour.
    fn throttles(&self) -> Vec<Throttle> {
        let Some(stats) = self.forge.api_stats() else {
            return Vec::new();
        };
        stats
            .throttles()
            .into_iter()
            .filter_map(|(at, retry_after)| {
                let at = jiff::Timestamp::try_from(at).ok()?;
                Some(Throttle { at, retry_after })
            })
            .collect()
    }

    /// Takes one new pull request from the budget, or says why none is left.
    /// The time is read here: the forge's rate limits are told in real time.
    fn admit(&mut self) -> Result<Result<(), String>, ForgeError> {
        let now = jiff::Timestamp::now();
        if self.usage.is_none() {
            let pulls = self.forge.recent_pulls(now - HOUR)?;
            let created = pulls.iter().filter_map(crate::forge::opened_at).collect();
            let open = pulls
                .iter()
                .filter(|p| p.state == crate::forge::PrState::Open)
                .count();
            self.usage = Some((created, u32::try_from(open).unwrap_or(u32::MAX)));
        }
        let throttles = self.throttles();
        let Some((created, open)) = self.usage.as_mut() else {
            return Ok(Ok(()));
        };
        let allowance = budget::allowance(
            &self.budget,
            &Usage {
                created,
                open: *open,
                throttles: &throttles,
            },
            now,
        );
        let admitted = allowance.may_open > 0;
        if admitted {
            created.push(now);
            *open += 1;
        }
        self.last = Some(BudgetUse {
            limit: allowance.limit,
            used: allowance.used + u32::from(admitted),
            remaining: allowance.may_open.saturating_sub(u32::from(admitted)),
        });
        Ok(match admitted {
            true => Ok(()),
            false => Err(allowance
                .reason()
                .unwrap_or_else(|| "waiting for forge budget".to_string())),
        })
    }
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
    // The one reading of the clock in a cycle.
    let now = jiff::Timestamp::now();
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
    let decision = decide_rollout(ws, &fetched, &project, &envs, now)?;
    project.set_releases(decision.releases());
    // Delivered in wave order (earlier waves first, then by name), so that
    // over budget the later waves wait; reported in the selection's order.
    let order: HashMap<String, usize> = envs
        .iter()
        .enumerate()
        .map(|(i, e)| (e.clone(), i))
        .collect();
    let mut envs = envs;
    let wave_of = |env: &str| decision.verdict(env).map_or(0, |v| v.earlier.len());
    envs.sort_by(|a, b| wave_of(a).cmp(&wave_of(b)).then_with(|| a.cmp(b)));
    let mut pacing = Pacing::new(opts.budget, forge);
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
                deliver(
                    &cx,
                    opts.dry_run,
                    &env,
                    &result,
                    recorded.get(&env),
                    decision.verdict(&env),
                    decision.freeze.as_ref(),
                    &mut pacing,
                )
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
                            let mut p = load(ws, &f, &opts.channel)?;
                            p.set_releases(decision.releases());
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
    outcomes.sort_by_key(|o| order.get(&o.env).copied().unwrap_or(usize::MAX));
    Ok(Cycle {
        outcomes,
        inputs,
        fetches,
        project,
        budget: pacing.last,
        rollout: decision,
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
    class_of(e.transient())
}

fn forge_class(e: &ForgeError) -> ErrorClass {
    class_of(e.transient())
}

fn class_of(transient: bool) -> ErrorClass {
    match transient {
        true => ErrorClass::Transient,
        false => ErrorClass::Permanent,
    }
}

/// Observes, plans and (unless `dry_run`) applies one environment: during a
/// freeze no auto-merge is turned on (the description says so), and with
/// `overrides: true` nothing is opened or updated; a new pull request waits
/// when the budget has none left.
#[allow(clippy::too_many_arguments)]
fn deliver(
    cx: &Context<'_>,
    dry_run: bool,
    env: &str,
    render: &Result<Render, Vec<Problem>>,
    recorded: Option<&Metadata>,
    verdict: Option<&Verdict>,
    freeze: Option<&Frozen>,
    pacing: &mut Pacing<'_>,
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
    let mut proposal = delivery::propose(&observed, &source, render, recorded, verdict);
    let mut settings = match render {
        Ok(Render::Fresh(r)) => r.pull_request.clone(),
        _ => Default::default(),
    };
    if let Some(f) = freeze
        && settings.auto_merge
    {
        settings.auto_merge = false;
        if let delivery::Proposal::Fresh(d) = &mut proposal
            && !d.body.is_empty()
        {
            d.body.push_str(&pace::freeze_note(f));
        }
    }
    let mut plan = plan::plan_rollout(&observed, &proposal, verdict);
    if let Some(why) = freeze.and_then(|f| f.overrides.as_deref()) {
        plan = pace::frozen(plan, why);
    }
    if matches!(plan.decision, delivery::Decision::Open { .. })
        && let Err(why) = pacing.admit().map_err(ApplyError::from)?
    {
        plan = pace::over_budget(plan, &why);
    }
    let mut outcome = Outcome::planned(&plan, &observed).with_verdict(verdict);
    if dry_run || plan.decision.changes_nothing() {
        return Ok(outcome);
    }
    let applied = apply::apply(cx, &observed, &proposal, &settings, &plan)?;
    outcome.action = applied.action;
    outcome.commit = applied.commit;
    outcome.pull_request = applied.pull_request;
    Ok(outcome)
}
