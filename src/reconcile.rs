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
//! error, never the whole cycle's). A dry run plans and applies nothing. The
//! cycle is idempotent: run twice with the same inputs, the second run
//! changes nothing.
//!
//! Rendering runs a chunk of environments ahead of delivery, on every core,
//! and writes each fresh render's pull request text there, from its files on
//! the base commit; delivery (the forge's answers, the plan, the commit into
//! the cycle's pack) follows on the cycle's own thread, in wave order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use rayon::prelude::*;

use crate::config::PullRequestSettings;
use crate::delivery::apply::{self, ApplyError, Context};
use crate::delivery::group;
use crate::delivery::observe::{self, Depth, ObserveError};
use crate::delivery::pace::{self, BudgetUse};
use crate::delivery::{self, ErrorClass, Observed, Proposal, plan};
use crate::forge::{Forge, ForgeError};
use crate::git::{Fetched, GitError, RefUpdate, Signature, Workspace};
use crate::manifest::layout::{self, Metadata};
use crate::memo::{self, Memo};
use crate::pipeline::Problem;
use crate::project::{ChannelFetch, ChannelSettings, Project, ProjectError, Render};
use crate::repo::RepoError;
use crate::rollout::budget::{self, Budget, Throttle, Usage};
use crate::rollout::gating::{self, GateBook};
use crate::rollout::holds::{self, Holds};
use crate::rollout::{self, Frozen, Verdict};

pub use crate::delivery::{Action, GroupOutcome, Outcome, PrRef, VersionChange};

/// How many times a push that lost a race is tried again.
pub const PUSH_ATTEMPTS: usize = 3;

/// How many environments a cycle renders at once (in parallel) before
/// delivering them: what bounds the rendered files held in memory (a chunk
/// being delivered and the next one, rendered meanwhile).
const RENDER_CHUNK: usize = 64;

#[derive(Debug, Clone)]
pub struct Options {
    pub base: Option<String>,
    /// Environments to reconcile; empty means all.
    pub envs: Vec<String>,
    /// Where channel specs come from, and how to reach them.
    pub channel: ChannelSettings,
    /// Look, don't touch: push nothing, write no pull request.
    pub dry_run: bool,
    /// Deliver changes that delete more resources than `maxDeletions`
    /// (`--allow-mass-deletion`).
    pub allow_mass_deletion: bool,
    pub author_name: String,
    pub author_email: String,
    /// The operator's credentials for health gates.
    pub credentials: crate::gates::Credentials,
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
/// `memo` says what earlier runs read from its directories.
pub(crate) fn load(
    ws: &Workspace,
    fetched: &Fetched,
    channel: &ChannelSettings,
    memo: &Arc<Memo>,
) -> Result<Project, CycleError> {
    let tree = ws.snapshot(fetched.base_commit)?;
    let shown = format!(
        "{}@{}",
        fetched.base_branch,
        Workspace::short(fetched.base_commit)
    );
    Ok(Project::from_tree_with(
        Arc::new(tree),
        &shown,
        channel,
        memo.clone(),
    )?)
}

/// Each environment's `hydrant.metadata` on one commit of the base branch,
/// where it has one that parses, with the digest of the files beside it:
/// read once per cycle (the `rendered/` tree once for all environments) and
/// shared by the rollout's decision and the render's check for unchanged
/// inputs.
pub(crate) struct BaseMetadata {
    commit: git2::Oid,
    /// Each environment read: its metadata and the digest of
    /// `rendered/<env>/`'s other files ([`layout::outputs_digest`]), or
    /// `None` when it has no metadata that parses.
    parsed: HashMap<String, Option<(Metadata, String)>>,
}

impl BaseMetadata {
    /// Reads `envs`' directories below `rendered/`, but for those the memo
    /// knows by their git ids.
    pub(crate) fn read(
        ws: &Workspace,
        fetched: &Fetched,
        envs: &[String],
        memo: &Memo,
    ) -> Result<BaseMetadata, CycleError> {
        let commit = fetched.base_commit;
        let ids: HashMap<String, String> = ws
            .entries_at(commit, "rendered")?
            .into_iter()
            .filter_map(|(name, id)| Some((name, id.strip_prefix("tree:")?.to_string())))
            .collect();
        let mut parsed = HashMap::with_capacity(envs.len());
        let mut unknown = Vec::new();
        for env in envs {
            let known = ids.get(env).and_then(|id| memo.rendered(id));
            match known {
                Some(known) => {
                    parsed.insert(env.clone(), known.map(|r| (r.metadata, r.outputs)));
                }
                None => unknown.push(env.clone()),
            }
        }
        let read = ws.each_subdir(commit, "rendered", &unknown, layout::METADATA, |_, dir| {
            let dir = dir?;
            let meta = serde_json::from_str::<Metadata>(dir.file.as_deref()?).ok()?;
            Some((meta, digest_of(&dir.entries)))
        })?;
        for (env, read) in unknown.into_iter().zip(read) {
            if let Some(id) = ids.get(&env) {
                let entry = read
                    .clone()
                    .map(|(metadata, outputs)| memo::Rendered { metadata, outputs });
                memo.keep_rendered(id, entry);
            }
            parsed.insert(env, read);
        }
        Ok(BaseMetadata { commit, parsed })
    }

    /// `env`'s metadata and the digest of its files, as read, if `fetched`
    /// is still at the commit read and `env` was among those read.
    fn known(&self, fetched: &Fetched, env: &str) -> Option<Option<&(Metadata, String)>> {
        if self.commit != fetched.base_commit {
            return None;
        }
        self.parsed.get(env).map(Option::as_ref)
    }

    /// `env`'s recorded version, read again if `fetched` moved past the
    /// commit read or `env` was not among those read.
    fn version(
        &self,
        ws: &Workspace,
        fetched: &Fetched,
        env: &str,
    ) -> Result<Option<String>, CycleError> {
        match self.known(fetched, env) {
            Some(known) => Ok(known.map(|(m, _)| m.channel.version.clone())),
            None => Ok(metadata_at(ws, fetched.base_commit, env)?.map(|m| m.channel.version)),
        }
    }
}

/// [`layout::outputs_digest`] of a directory's entries (name, git id).
fn digest_of(entries: &[(String, String)]) -> String {
    layout::outputs_digest(entries.iter().map(|(n, id)| (n.as_str(), id.clone())))
}

fn metadata_at(
    ws: &Workspace,
    commit: git2::Oid,
    env: &str,
) -> Result<Option<Metadata>, CycleError> {
    Ok(ws
        .file_at(commit, &format!("rendered/{env}/{}", layout::METADATA))?
        .and_then(|text| serde_json::from_str::<Metadata>(&text).ok()))
}

/// Each environment's `hydrant.metadata` on the base branch, where it has
/// one and the files beside it are still those it lists: a hand edit of
/// `rendered/<env>/` makes hydrant render the environment again and repair it.
fn recorded_metadata(
    ws: &Workspace,
    fetched: &Fetched,
    envs: &[String],
    memo: &Memo,
) -> Result<HashMap<String, Metadata>, CycleError> {
    let read = BaseMetadata::read(ws, fetched, envs, memo)?;
    recorded_from(ws, fetched, envs, &read)
}

/// [`recorded_metadata`], from metadata already read.
fn recorded_from(
    ws: &Workspace,
    fetched: &Fetched,
    envs: &[String],
    read: &BaseMetadata,
) -> Result<HashMap<String, Metadata>, CycleError> {
    let mut out = HashMap::with_capacity(envs.len());
    for env in envs {
        let (meta, on_base) = match read.known(fetched, env) {
            Some(None) => continue,
            Some(Some((meta, on_base))) => (meta.clone(), on_base.clone()),
            None => {
                let Some(meta) = metadata_at(ws, fetched.base_commit, env)? else {
                    continue;
                };
                let entries = ws.entries_at(fetched.base_commit, &format!("rendered/{env}"))?;
                (meta, digest_of(&entries))
            }
        };
        if !meta.outputs.is_empty() && on_base == meta.outputs {
            out.insert(env.clone(), meta);
        }
    }
    Ok(out)
}

/// Keeps what the cycle read for the next one; a memo that cannot be
/// written only makes the next cycle read again.
pub(crate) fn save_memo(ws: &Workspace, memo: &Memo, project: &Project) {
    let (known, read) = memo.counts();
    tracing::debug!(
        known,
        read,
        "directories of the base branch known from the memo by their git ids, and read"
    );
    if let Err(e) = memo.save(ws.dir(), project.environments().len()) {
        tracing::warn!(path = %ws.dir().join(crate::memo::FILE).display(), error = %e, "cannot write the memo of what this cycle read; the next cycle reads it again");
    }
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
    memo: &Memo,
) -> Result<rollout::Decision, CycleError> {
    let read = BaseMetadata::read(ws, fetched, project.environments(), memo)?;
    decide_rollout_from(ws, fetched, project, selected, now, &read)
}

/// [`decide_rollout`], from the base branch's metadata already read.
fn decide_rollout_from(
    ws: &Workspace,
    fetched: &Fetched,
    project: &Project,
    selected: &[String],
    now: jiff::Timestamp,
    read: &BaseMetadata,
) -> Result<rollout::Decision, CycleError> {
    let holds = read_holds(ws, fetched)?;
    let base = fetched.base_commit;
    let mut environments = Vec::new();
    for (name, config) in project.environment_configs() {
        let current = read.version(ws, fetched, &name)?;
        environments.push(rollout::Environment {
            name,
            channel: config.channel,
            pinned: config.release,
            labels: config.labels,
            current,
            merged_at: None,
        });
    }
    let selected: std::collections::HashSet<&str> = selected.iter().map(String::as_str).collect();
    let mut channels: Vec<String> = environments
        .iter()
        .filter(|e| e.pinned.is_none() && selected.contains(e.name.as_str()))
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

/// The release each environment to roll back ([`gating::rollbacks`]) ran
/// before the skipped one it runs, read from the history of its
/// `hydrant.metadata` on the base branch (a release skipped too is passed
/// over). An environment without one is left where it is.
pub(crate) fn previous_releases(
    ws: &Workspace,
    fetched: &Fetched,
    rollout: &rollout::Rollout,
    decision: &rollout::Decision,
) -> Result<BTreeMap<String, String>, CycleError> {
    let mut previous = BTreeMap::new();
    for (env, current) in gating::rollbacks(rollout, decision) {
        let skipped = &decision.skip;
        let version_of = |text: &str| {
            serde_json::from_str::<Metadata>(text)
                .ok()
                .map(|m| m.channel.version)
        };
        let before = ws.first_other(
            fetched.base_commit,
            &format!("rendered/{env}/{}", layout::METADATA),
            MERGE_WALK_LIMIT,
            |text| version_of(text).is_none_or(|v| v == current || skipped.contains(&v)),
        )?;
        match before.as_deref().and_then(version_of) {
            Some(version) => {
                previous.insert(env, version);
            }
            None => {
                tracing::warn!(environment = %env, version = %current, "runs a skipped release, but no earlier release is recorded in the base branch's history: not rolled back")
            }
        }
    }
    Ok(previous)
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
    // The shared part hashed once; each environment's signal goes on from it.
    use sha2::Digest;
    let mut hashed = sha2::Sha256::new();
    hashed.update(shared.as_bytes());
    Ok(envs
        .iter()
        .map(|env| {
            let own = trees.get(env).map_or("", String::as_str);
            let mut h = hashed.clone();
            h.update(format!("environments/{env} {own}\n").as_bytes());
            (env.clone(), hex::encode(h.finalize()))
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
    /// What happened to each grouped wave's one pull request.
    pub groups: Vec<GroupOutcome>,
    /// The releases whose rollout a failed health gate halted (channel,
    /// version), and each gate's definite failures, since the gate book
    /// began.
    pub halted: Vec<(String, String)>,
    pub gate_failures: BTreeMap<String, u64>,
    /// The pull-request budget, when an environment would have opened one.
    pub budget: Option<BudgetUse>,
}

impl Cycle {
    /// What `reconcile` prints, or with `plan` (a dry run) the plan.
    pub fn text(&self, plan: bool) -> String {
        use crate::delivery::text;
        let pacing = text::pacing(self.rollout.freeze.as_ref(), self.budget.as_ref());
        let body = match plan {
            true => text::plan(&self.outcomes, &self.rollout.waves),
            false => text::outcomes(&self.outcomes),
        };
        format!("{pacing}{body}{}", text::groups(&self.groups, plan))
    }

    /// What `reconcile --output json` and `plan --output json` print,
    /// serialized as it is written (a fleet's outcomes are not first built
    /// as one JSON value).
    pub fn json(&self) -> impl serde::Serialize + '_ {
        crate::delivery::text::Report {
            budget: self.budget.as_ref(),
            environments: &self.outcomes,
            freeze: self.rollout.freeze.as_ref(),
            groups: &self.groups,
            waves: &self.rollout.waves,
        }
    }
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
    run_cycle_gated(ws, forge, opts, waiting, &mut GateBook::default())
}

/// Runs one cycle like [`run_cycle_waiting`], with the answers of health
/// gates kept in `gates` across the daemon's cycles.
pub fn run_cycle_gated(
    ws: &Workspace,
    forge: &dyn Forge,
    opts: &Options,
    waiting: &Waiting,
    gates: &mut GateBook,
) -> Result<Cycle, CycleError> {
    let started = std::time::Instant::now();
    let mut fetched = ws.fetch(opts.base.as_deref())?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        base = %Workspace::short(fetched.base_commit),
        "fetched"
    );
    let memo = Arc::new(Memo::load(ws.dir()));
    let mut project = load(ws, &fetched, &opts.channel, &memo)?;
    // The one reading of the clock in a cycle.
    let now = jiff::Timestamp::now();
    let envs = selected(&project, opts)?;
    let chosen: BTreeSet<String> = envs.iter().cloned().collect();
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
    let metadata = BaseMetadata::read(ws, &fetched, project.environments(), &memo)?;
    let mut decision = decide_rollout_from(ws, &fetched, &project, &envs, now, &metadata)?;
    gate_rollout(
        ws,
        opts,
        (&mut fetched, &mut project),
        &envs,
        now,
        &mut decision,
        gates,
    )?;
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
    let mut recorded = recorded_from(ws, &fetched, &envs, &metadata)?;
    let mut fetches = Vec::new();
    let author = Signature::now(&opts.author_name, &opts.author_email).map_err(GitError::from)?;
    let mut outcomes = Vec::with_capacity(envs.len());
    let mut members: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    // The cycle's new commits go into one pack; their branches are pushed
    // together once every environment is planned.
    let mut staging = match opts.dry_run {
        true => None,
        false => Some(apply::Staging {
            batch: ws.batch(),
            spool: apply::Spool::new(ws.dir()),
        }),
    };
    let mut pending = Vec::new();
    // What a retry after a lost push needs besides the cycle's own state.
    let run = Run {
        ws,
        forge,
        opts,
        author: &author,
        decision: &decision,
        memo: &memo,
    };
    // Pushes that lost a race, tried again once the cycle's branches are out.
    let mut lost: Vec<(String, tracing::Span, String)> = Vec::new();
    // Rendered a chunk at a time, so that memory holds a few chunks' files,
    // not the whole fleet's: the next chunk renders on its own thread while
    // this one's pull request texts and commits are written into the batch.
    let stage = Stage {
        opts,
        base_dirs: ws.rendered_dirs(fetched.base_commit)?,
        fetched: &fetched,
        recorded: &recorded,
        decision: &decision,
    };
    std::thread::scope(|scope| {
        let (to_deliver, rendered_chunks) = std::sync::mpsc::sync_channel(0);
        let (project, recorded, stage) = (&project, &recorded, &stage);
        scope.spawn(move || {
            for chunk in envs.chunks(RENDER_CHUNK) {
                let rendered = render_isolated(project, chunk, recorded);
                let ready: Vec<Ready> = rendered
                    .into_par_iter()
                    .map(|(env, result)| stage.ready(env, result))
                    .collect();
                if to_deliver.send((ready, project.take_fetches())).is_err() {
                    return;
                }
            }
        });
        let cx = Context {
            ws,
            forge,
            fetched: &fetched,
            author: &author,
        };
        for (ready, chunk_fetches) in rendered_chunks {
            fetches.extend(chunk_fetches);
            for Ready { env, work } in ready {
                let channel = match &work {
                    Work::Prepared(p) => Some(&p.channel),
                    Work::Rendered(Ok(Render::Fresh(r))) => Some(&r.metadata.channel),
                    Work::Rendered(Ok(Render::Current)) => recorded.get(&env).map(|m| &m.channel),
                    Work::Rendered(Err(_)) => None,
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
                if let Some(wave) = grouped_wave(project, decision.verdict(&env)) {
                    // Delivered with its wave after the other environments.
                    let verdict = decision.verdict(&env);
                    let recorded = recorded.get(&env);
                    let gathered = catch_unwind(AssertUnwindSafe(|| {
                        gather(&cx, opts.dry_run, &wave, &env, work, recorded, verdict)
                    }));
                    match gathered {
                        Ok(Ok(member)) => members.entry(wave).or_default().push(member),
                        Ok(Err(e)) => {
                            outcomes.push(Outcome::failed(&env, e.to_string(), e.class()))
                        }
                        Err(payload) => outcomes.push(Outcome::failed(
                            &env,
                            panicked(&env, "delivering", &*payload),
                            ErrorClass::Permanent,
                        )),
                    }
                    continue;
                }
                let delivered = catch_unwind(AssertUnwindSafe(|| {
                    deliver(
                        &cx,
                        opts.dry_run,
                        &env,
                        work,
                        recorded.get(&env),
                        decision.verdict(&env),
                        decision.freeze.as_ref(),
                        &mut pacing,
                        staging.as_mut(),
                    )
                }));
                let outcome = match delivered {
                    Ok(Ok(Delivered::Done(outcome))) => outcome,
                    Ok(Ok(Delivered::Pushing(outcome, p))) => {
                        pending.push(Landing {
                            env,
                            outcome,
                            pending: p,
                            span: span.clone(),
                        });
                        continue;
                    }
                    Ok(Err(StepError::Apply(ApplyError::Git(GitError::PushRejected {
                        message,
                        ..
                    })))) => {
                        lost.push((env, span.clone(), message));
                        continue;
                    }
                    Ok(Err(e)) => Outcome::failed(&env, e.to_string(), e.class()),
                    Err(payload) => Outcome::failed(
                        &env,
                        panicked(&env, "delivering", &*payload),
                        ErrorClass::Permanent,
                    ),
                };
                log_outcome(&outcome);
                outcomes.push(outcome);
            }
        }
    });
    if let Some(apply::Staging { batch, spool }) = staging {
        let updates: Vec<RefUpdate> = pending.iter().map(|l| l.pending.update.clone()).collect();
        let started = std::time::Instant::now();
        let pushed = ws.push_all(Some(batch), &updates);
        tracing::info!(
            branches = updates.len(),
            seconds = started.elapsed().as_secs_f64(),
            "pushed the cycle's branches"
        );
        let mut landed = Vec::with_capacity(pending.len());
        for (landing, result) in pending.into_iter().zip(pushed) {
            match result {
                Ok(()) => landed.push(landing),
                Err(GitError::PushRejected { message, .. }) => {
                    lost.push((landing.env, landing.span, message))
                }
                Err(e) => {
                    let outcome = Outcome::failed(&landing.env, e.to_string(), git_class(&e));
                    let _entered = landing.span.enter();
                    log_outcome(&outcome);
                    outcomes.push(outcome);
                }
            }
        }
        outcomes.extend(finish_all(forge, &spool, landed));
    }
    for (env, span, message) in lost {
        let _entered = span.enter();
        let mut again = Again {
            fetched: &mut fetched,
            project: &mut project,
            fetches: &mut fetches,
            recorded: &mut recorded,
        };
        let outcome = run.retry(&mut again, &mut pacing, &env, message);
        log_outcome(&outcome);
        outcomes.push(outcome);
    }
    let cx = Context {
        ws,
        forge,
        fetched: &fetched,
        author: &author,
    };
    let groups = deliver_groups(
        &cx,
        opts,
        &project,
        &decision,
        &chosen,
        members,
        &mut outcomes,
    )?;
    outcomes.sort_by_key(|o| order.get(&o.env).copied().unwrap_or(usize::MAX));
    save_memo(ws, &memo, &project);
    Ok(Cycle {
        outcomes,
        inputs,
        fetches,
        project,
        budget: pacing.last,
        rollout: decision,
        groups,
        halted: gates.halted().iter().cloned().collect(),
        gate_failures: gates.failures().clone(),
    })
}

/// The health gates of one cycle: checks the gates due (see
/// [`gating::due`]) and records their answers in `book`; when a gate has
/// failed, commits the halt to `holds.yaml` (not in a dry run) and decides
/// again on the new base; finds, in the base branch's history, the release
/// each environment to roll back ran before; and applies all of it to
/// `decision`.
fn gate_rollout(
    ws: &Workspace,
    opts: &Options,
    (fetched, project): (&mut Fetched, &mut Project),
    envs: &[String],
    now: jiff::Timestamp,
    decision: &mut rollout::Decision,
    book: &mut GateBook,
) -> Result<(), CycleError> {
    let Some(rollout) = project.rollout().filter(|r| !r.gates.is_empty()).cloned() else {
        return Ok(());
    };
    let checks = gating::due(&rollout, decision, book);
    if !checks.is_empty() {
        let answers = crate::gates::check_all(&rollout, &checks, &opts.credentials);
        for (check, answer) in checks.iter().zip(answers) {
            let fail_after = rollout
                .gate(&check.gate)
                .map_or(crate::rollout::gate::DEFAULT_FAIL_AFTER, |g| g.fail_after);
            let state = book.record(check, answer, fail_after);
            tracing::info!(environment = %check.env, gate = %check.gate, version = %check.version, state = ?state, "health gate checked");
        }
    }
    let failed = gating::failures(&rollout, decision, book);
    if let Some(halt) = gating::halt(&failed) {
        for f in &failed {
            tracing::warn!(environment = %f.env, gate = %f.gate, version = %f.version, answer = %f.why, "health gate failed: halting the rollout");
        }
        if opts.dry_run {
            tracing::info!("a dry run: the halt is not committed");
        } else {
            let edit = crate::delivery::holds::Edit {
                change: crate::delivery::holds::Change::Halt {
                    hold: halt.hold.clone(),
                    skip: halt.skip.clone(),
                },
                by: gating::BY.to_string(),
                base: opts.base.clone(),
                author_name: opts.author_name.clone(),
                author_email: opts.author_email.clone(),
            };
            match crate::delivery::holds::commit(ws, &edit) {
                Ok(committed) => {
                    tracing::warn!(commit = ?committed.commit, message = %committed.message, "committed the halt of the rollout to {}", holds::FILE);
                    for (channel, version) in &halt.halted {
                        book.mark_halted(channel, version);
                    }
                    *fetched = ws.fetch(opts.base.as_deref())?;
                    let memo = project.memo().clone();
                    *project = load(ws, fetched, &opts.channel, &memo)?;
                    *decision = decide_rollout(ws, fetched, project, envs, now, &memo)?;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot commit the halt of the rollout; trying again next cycle")
                }
            }
        }
    }
    let previous = previous_releases(ws, fetched, &rollout, decision)?;
    gating::apply(decision, &rollout, book, &previous);
    Ok(())
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

/// With `--allow-mass-deletion`, a render that its environment does not allow
/// to delete most of its resources is allowed to for this run.
fn allow_mass_deletion(opts: &Options, result: &mut Result<Render, Vec<Problem>>) {
    if opts.allow_mass_deletion
        && let Ok(Render::Fresh(r)) = result
        && r.mass_deletion.is_none()
    {
        r.mass_deletion = Some(crate::config::Allowance::Run);
    }
}

/// What the render stage hands to delivery for one environment.
struct Ready {
    env: String,
    work: Work,
}

/// An environment's render, or what the render stage prepared from it.
enum Work {
    /// Its render, for delivery to observe and propose from.
    Rendered(Result<Render, Vec<Problem>>),
    /// A fresh render whose delivery the render stage prepared; the render
    /// itself is let go.
    Prepared(Box<Prepared>),
}

/// A fresh render's files on the base commit and what it proposes from
/// them (its pull request's title and description and its commit message),
/// with the pull request settings it wants: written by the render stage, in
/// parallel.
struct Prepared {
    channel: layout::ChannelInfo,
    settings: PullRequestSettings,
    base_files: BTreeMap<String, String>,
    proposal: Proposal,
}

/// What the render stage reads to prepare a delivery.
struct Stage<'s> {
    opts: &'s Options,
    /// `rendered/` on the base commit.
    base_dirs: crate::git::RenderedDirs,
    fetched: &'s Fetched,
    recorded: &'s HashMap<String, Metadata>,
    decision: &'s rollout::Decision,
}

impl Stage<'_> {
    /// Prepares the delivery of a fresh render. Should reading the base
    /// commit fail, or writing the texts panic, nothing is prepared and
    /// delivery observes and proposes on its own (where the failure is the
    /// environment's own, and reported).
    fn ready(&self, env: String, mut result: Result<Render, Vec<Problem>>) -> Ready {
        allow_mass_deletion(self.opts, &mut result);
        let prepared = catch_unwind(AssertUnwindSafe(|| self.prepare(&env, &result)))
            .ok()
            .flatten();
        let work = match prepared {
            Some(p) => Work::Prepared(Box::new(p)),
            None => Work::Rendered(result),
        };
        Ready { env, work }
    }

    /// Only a fresh render has a pull request to write.
    fn prepare(&self, env: &str, result: &Result<Render, Vec<Problem>>) -> Option<Prepared> {
        let Ok(Render::Fresh(rendered)) = result else {
            return None;
        };
        let base = self.fetched.base_commit;
        let base_files = self.base_dirs.files(env).ok()?;
        let observed = Observed {
            env: env.to_string(),
            base_branch: self.fetched.base_branch.clone(),
            base_files,
            ..Observed::default()
        };
        let proposal = delivery::propose(
            &observed,
            &base.to_string(),
            result,
            self.recorded.get(env),
            self.decision.verdict(env),
        );
        Some(Prepared {
            channel: rendered.metadata.channel.clone(),
            settings: rendered.pull_request.clone(),
            base_files: observed.base_files,
            proposal,
        })
    }
}

/// Observes an environment and gives what its render proposes, with the
/// pull request settings it wants: as the render stage prepared it, or
/// proposed here from what is observed.
fn observe_and_propose(
    cx: &Context<'_>,
    env: &str,
    work: Work,
    recorded: Option<&Metadata>,
    verdict: Option<&Verdict>,
) -> Result<(Observed, Proposal, PullRequestSettings), ObserveError> {
    let render = match work {
        Work::Prepared(p) => {
            let Prepared {
                settings,
                base_files,
                proposal,
                ..
            } = *p;
            let observed =
                observe::environment(cx.ws, cx.forge, cx.fetched, env, Depth::Read(base_files))?;
            return Ok((observed, proposal, settings));
        }
        Work::Rendered(render) => render,
    };
    let depth = match &render {
        Ok(Render::Current) => {
            tracing::debug!("inputs unchanged since the recorded render: not rendered again");
            Depth::Settled
        }
        _ => Depth::Full,
    };
    let observed = observe::environment(cx.ws, cx.forge, cx.fetched, env, depth)?;
    let source = cx.fetched.base_commit.to_string();
    let proposal = delivery::propose(&observed, &source, &render, recorded, verdict);
    let settings = match render {
        Ok(Render::Fresh(r)) => r.pull_request,
        _ => PullRequestSettings::default(),
    };
    Ok((observed, proposal, settings))
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
            StepError::Apply(ApplyError::Spool(_)) => ErrorClass::Transient,
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
    work: Work,
    recorded: Option<&Metadata>,
    verdict: Option<&Verdict>,
    freeze: Option<&Frozen>,
    pacing: &mut Pacing<'_>,
    staging: Option<&mut apply::Staging<'_>>,
) -> Result<Delivered, StepError> {
    let (observed, mut proposal, mut settings) =
        observe_and_propose(cx, env, work, recorded, verdict)?;
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
        return Ok(Delivered::Done(outcome));
    }
    let applied = match staging {
        Some(staging) => match apply::stage(cx, staging, &observed, &proposal, &settings, &plan)? {
            apply::Staged::Done(applied) => applied,
            apply::Staged::Pushing(pending) => {
                return Ok(Delivered::Pushing(outcome, Box::new(pending)));
            }
        },
        None => apply::apply(cx, &observed, &proposal, &settings, &plan)?,
    };
    outcome.action = applied.action;
    outcome.commit = applied.commit;
    outcome.pull_request = applied.pull_request;
    Ok(Delivered::Done(outcome))
}

/// What delivering one environment came to.
enum Delivered {
    Done(Outcome),
    /// Its commit waits in the cycle's batch for the push of every branch,
    /// then its pull request.
    Pushing(Outcome, Box<apply::Pending>),
}

/// Logs what became of an environment.
fn log_outcome(outcome: &Outcome) {
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
}

/// An environment whose commit waits for the cycle's push.
struct Landing {
    env: String,
    outcome: Outcome,
    pending: Box<apply::Pending>,
    /// Its span, for what is logged of it after the push.
    span: tracing::Span,
}

/// How many pull requests are opened or updated at once.
const FORGE_CALLS_AT_ONCE: usize = 4;

/// Opens or updates the pull request of each environment whose branch
/// landed, a few at a time; each one's outcome.
fn finish_all(forge: &dyn Forge, spool: &apply::Spool, landed: Vec<Landing>) -> Vec<Outcome> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: std::sync::Mutex<Vec<Option<Outcome>>> =
        std::sync::Mutex::new(landed.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..FORGE_CALLS_AT_ONCE.min(landed.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(Landing {
                        env,
                        outcome,
                        pending,
                        span,
                    }) = landed.get(i)
                    else {
                        return;
                    };
                    let _entered = span.enter();
                    let finished =
                        catch_unwind(AssertUnwindSafe(|| apply::finish(forge, spool, pending)));
                    let outcome = match finished {
                        Ok(Ok(applied)) => Outcome {
                            action: applied.action,
                            commit: applied.commit,
                            pull_request: applied.pull_request,
                            ..outcome.clone()
                        },
                        Ok(Err(e)) => {
                            let e = StepError::Apply(e);
                            Outcome::failed(env, e.to_string(), e.class())
                        }
                        Err(payload) => Outcome::failed(
                            env,
                            panicked(env, "delivering", &*payload),
                            ErrorClass::Permanent,
                        ),
                    };
                    log_outcome(&outcome);
                    if let Ok(mut done) = done.lock() {
                        done[i] = Some(outcome);
                    }
                }
            });
        }
    });
    done.into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// What a cycle reads from the base branch, read again when a push lost a
/// race.
struct Again<'r> {
    fetched: &'r mut Fetched,
    project: &'r mut Project,
    fetches: &'r mut Vec<ChannelFetch>,
    recorded: &'r mut HashMap<String, Metadata>,
}

/// What a cycle delivers with.
struct Run<'r> {
    ws: &'r Workspace,
    forge: &'r dyn Forge,
    opts: &'r Options,
    author: &'r Signature<'static>,
    decision: &'r rollout::Decision,
    memo: &'r Arc<Memo>,
}

impl Run<'_> {
    /// Delivers `env` again after its push lost a race (`message`):
    /// fetches, renders, observes and plans again, and pushes on its own,
    /// up to [`PUSH_ATTEMPTS`] pushes in all.
    fn retry(
        &self,
        again: &mut Again<'_>,
        pacing: &mut Pacing<'_>,
        env: &str,
        message: String,
    ) -> Outcome {
        let mut attempt = 1;
        let mut lost = message;
        loop {
            tracing::warn!(attempt, reason = %lost, "push lost a race; fetching and rendering again");
            attempt += 1;
            let fresh = self
                .ws
                .fetch(self.opts.base.as_deref())
                .map_err(CycleError::from)
                .and_then(|f| {
                    let mut p = load(self.ws, &f, &self.opts.channel, self.memo)?;
                    p.set_releases(self.decision.releases());
                    Ok((f, p))
                })
                .and_then(|(f, p)| {
                    let recorded = recorded_metadata(self.ws, &f, &[env.to_string()], self.memo)?;
                    Ok((f, p, recorded))
                });
            let result = match fresh {
                Ok((f, p, recorded)) => {
                    *again.fetched = f;
                    *again.project = p;
                    again.recorded.extend(recorded);
                    let mut result = render_one(again.project, env, |_| None);
                    allow_mass_deletion(self.opts, &mut result);
                    again.fetches.extend(again.project.take_fetches());
                    result
                }
                Err(e) => return Outcome::failed(env, e.to_string(), e.class()),
            };
            let cx = Context {
                ws: self.ws,
                forge: self.forge,
                fetched: again.fetched,
                author: self.author,
            };
            let delivered = catch_unwind(AssertUnwindSafe(|| {
                deliver(
                    &cx,
                    self.opts.dry_run,
                    env,
                    Work::Rendered(result),
                    again.recorded.get(env),
                    self.decision.verdict(env),
                    self.decision.freeze.as_ref(),
                    pacing,
                    None,
                )
            }));
            match delivered {
                Ok(Ok(Delivered::Done(outcome) | Delivered::Pushing(outcome, _))) => {
                    return outcome;
                }
                Ok(Err(StepError::Apply(ApplyError::Git(GitError::PushRejected {
                    message,
                    ..
                }))))
                    if attempt < PUSH_ATTEMPTS =>
                {
                    lost = message
                }
                Ok(Err(e)) => return Outcome::failed(env, e.to_string(), e.class()),
                Err(payload) => {
                    let error = panicked(env, "delivering", &*payload);
                    return Outcome::failed(env, error, ErrorClass::Permanent);
                }
            }
        }
    }
}

/// The grouped wave (`pullRequest: {group: wave}`) the rollout puts an
/// environment in, if its wave is one.
fn grouped_wave(project: &Project, verdict: Option<&Verdict>) -> Option<String> {
    let wave = verdict?.wave.as_deref()?;
    project
        .rollout()?
        .waves
        .iter()
        .find(|w| w.name == wave && w.group)
        .map(|w| w.name.clone())
}

/// A member of a grouped wave, observed and proposed, waiting for its group.
struct Member {
    observed: Observed,
    proposal: Proposal,
    settings: PullRequestSettings,
    verdict: Option<Verdict>,
    /// What superseding its own `hydrant/<env>` did (or would do).
    superseded: Option<(Action, String)>,
}

/// Observes and proposes one member of grouped wave `wave`, and supersedes
/// its own branch and pull request, which the wave's replace (unless `dry_run`).
fn gather(
    cx: &Context<'_>,
    dry_run: bool,
    wave: &str,
    env: &str,
    work: Work,
    recorded: Option<&Metadata>,
    verdict: Option<&Verdict>,
) -> Result<Member, StepError> {
    let (observed, mut proposal, settings) = observe_and_propose(cx, env, work, recorded, verdict)?;
    if let Some(error) = plan::refused(&observed, &proposal) {
        // A member the planner refuses is not delivered with its wave.
        proposal = Proposal::Failed {
            error,
            class: ErrorClass::Permanent,
        };
    }
    let superseded = match group::supersede_single(&observed, wave) {
        None => None,
        Some((decision, reason)) => {
            let action = Action::planned(&decision);
            if !dry_run {
                let plan = plan::Plan {
                    env: env.to_string(),
                    decision,
                    reason: reason.clone(),
                    channel: None,
                    version: VersionChange::default(),
                    files: Vec::new(),
                };
                apply::apply(cx, &observed, &proposal, &settings, &plan)?;
            }
            Some((action, reason))
        }
    };
    Ok(Member {
        observed,
        proposal,
        settings,
        verdict: verdict.cloned(),
        superseded,
    })
}

/// Delivers each grouped wave's members in its one branch and pull request,
/// adding their outcomes to `outcomes`; closes the pull request of a wave
/// that no longer groups its environments (when every environment was
/// selected). A wave whose environments were not all selected (`--env`) is
/// left as it is: its pull request holds them all.
fn deliver_groups(
    cx: &Context<'_>,
    opts: &Options,
    project: &Project,
    decision: &rollout::Decision,
    chosen: &BTreeSet<String>,
    members: BTreeMap<String, Vec<Member>>,
    outcomes: &mut Vec<Outcome>,
) -> Result<Vec<GroupOutcome>, CycleError> {
    let mut groups = Vec::new();
    let grouped: BTreeSet<&str> = project
        .rollout()
        .map(|r| {
            r.waves
                .iter()
                .filter(|w| w.group)
                .map(|w| w.name.as_str())
                .collect()
        })
        .unwrap_or_default();
    for (wave, members) in members {
        let missing: Vec<&str> = decision
            .verdicts
            .values()
            .filter(|v| v.wave.as_deref() == Some(wave.as_str()) && !chosen.contains(&v.env))
            .map(|v| v.env.as_str())
            .collect();
        if !missing.is_empty() {
            let branch = crate::git::branch_name(&crate::git::group_key(&wave));
            for m in members {
                let mut outcome = settled_outcome(&m);
                outcome.reason = format!(
                    "wave `{wave}` delivers its environments together in `{branch}`; reconcile all of them (without `--env`) to update it"
                );
                outcomes.push(outcome);
            }
            continue;
        }
        let _span = tracing::info_span!("wave", wave = %wave).entered();
        let (mut delivered, group) = deliver_group(cx, opts.dry_run, &wave, &members);
        outcomes.append(&mut delivered);
        groups.push(group);
    }
    if opts.envs.is_empty() {
        let prefix = crate::git::branch_name(&crate::git::group_key(""));
        for branch in cx.ws.branches_starting(&prefix)? {
            let Some(wave) = branch.strip_prefix(&prefix) else {
                continue;
            };
            let key = crate::git::group_key(wave);
            if grouped.contains(wave) || project.environments().contains(&key) {
                continue;
            }
            let _span = tracing::info_span!("wave", wave = %wave).entered();
            let (_, group) = deliver_group(cx, opts.dry_run, wave, &[]);
            groups.push(group);
        }
    }
    Ok(groups)
}

/// A member's outcome as its own planner sees it, with its own branch and
/// pull request left out (the group's replace them).
fn settled_outcome(m: &Member) -> Outcome {
    let clean = Observed {
        branch: None,
        pull_request: None,
        told_human: false,
        ..m.observed.clone()
    };
    let mut outcome =
        Outcome::planned(&plan::plan(&clean, &m.proposal), &clean).with_verdict(m.verdict.as_ref());
    if let Some((action, why)) = &m.superseded {
        outcome.reason = format!("{}; {why}", outcome.reason);
        if outcome.action == Action::Unchanged {
            outcome.action = *action;
        }
    }
    outcome
}

/// Observes, plans and (unless `dry_run`) applies one grouped wave; the
/// outcome of each member and of the group.
fn deliver_group(
    cx: &Context<'_>,
    dry_run: bool,
    wave: &str,
    members: &[Member],
) -> (Vec<Outcome>, GroupOutcome) {
    let pairs: Vec<(Observed, Proposal)> = members
        .iter()
        .map(|m| (m.observed.clone(), m.proposal.clone()))
        .collect();
    let delivered = catch_unwind(AssertUnwindSafe(|| -> Result<_, StepError> {
        let observed = observe::group(cx.ws, cx.forge, cx.fetched, wave, members.len())?;
        let plan = group::plan_group(&observed, &pairs);
        let mut applied = apply::Applied {
            action: Action::planned(&plan.decision),
            commit: observed.branch.as_ref().map(|t| t.commit.clone()),
            pull_request: observed.pull_request.as_ref().map(|pr| PrRef {
                number: pr.number,
                url: pr.url.clone(),
            }),
        };
        if !dry_run && !plan.decision.changes_nothing() {
            let settings = group_settings(members, &plan.members);
            applied = apply::group(cx, &observed, &pairs, &settings, &plan)?;
        }
        Ok((plan, applied))
    }));
    let branch = crate::git::branch_name(&crate::git::group_key(wave));
    let failure = |error: String, class: ErrorClass| {
        let wanted: Vec<String> = group::plan_group(&Default::default(), &pairs).members;
        (error, class, wanted)
    };
    let result = match delivered {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Err(failure(e.to_string(), e.class())),
        Err(payload) => Err(failure(
            panicked(wave, "delivering wave", &*payload),
            ErrorClass::Permanent,
        )),
    };
    let mut outcomes = Vec::with_capacity(members.len());
    for m in members {
        let mut outcome = settled_outcome(m);
        let env = m.observed.env.as_str();
        match &result {
            Ok((plan, applied)) if plan.members.iter().any(|e| e == env) => {
                let others = plan.members.len() - 1;
                outcome.decision = plan.decision.kind();
                outcome.action = applied.action;
                outcome.branch = branch.clone();
                outcome.commit = applied.commit.clone();
                outcome.pull_request = applied.pull_request.clone();
                outcome.reason = format!(
                    "delivered in wave `{wave}`'s one pull request with {others} other environment(s): {}{}",
                    plan.reason,
                    m.superseded
                        .as_ref()
                        .map(|(_, why)| format!("; {why}"))
                        .unwrap_or_default()
                );
            }
            Err((error, class, wanted)) if wanted.iter().any(|e| e == env) => {
                outcome.decision = plan::Kind::Failed;
                outcome.action = Action::Failed;
                outcome.branch = branch.clone();
                outcome.error = Some(error.clone());
                outcome.class = Some(*class);
                outcome.reason = format!("wave `{wave}`'s pull request could not be delivered");
            }
            _ => {}
        }
        match &outcome.error {
            Some(error) => {
                tracing::warn!(environment = %env, action = %outcome.action, %error, "environment failed")
            }
            None => {
                tracing::debug!(environment = %env, action = %outcome.action, reason = %outcome.reason, "environment reconciled")
            }
        }
        outcomes.push(outcome);
    }
    let group = match result {
        Ok((plan, applied)) => {
            if applied.action != Action::Unchanged {
                tracing::info!(action = %applied.action, reason = %plan.reason, "wave reconciled");
            }
            GroupOutcome {
                wave: wave.to_string(),
                branch,
                decision: plan.decision.kind(),
                action: applied.action,
                reason: plan.reason,
                members: plan.members,
                commit: applied.commit,
                pull_request: applied.pull_request,
                error: None,
            }
        }
        Err((error, class, wanted)) => {
            tracing::warn!(class = ?class, %error, "wave failed");
            GroupOutcome {
                wave: wave.to_string(),
                branch,
                decision: plan::Kind::Failed,
                action: Action::Failed,
                reason: "its pull request could not be delivered".to_string(),
                members: wanted,
                commit: None,
                pull_request: None,
                error: Some(error),
            }
        }
    };
    (outcomes, group)
}

/// The group pull request's settings, from its members' `pullRequest:`:
/// every label and reviewer any asks for, a draft if any asks, and
/// auto-merge only if all allow it.
fn group_settings(members: &[Member], delivered: &[String]) -> PullRequestSettings {
    let chosen: Vec<&PullRequestSettings> = members
        .iter()
        .filter(|m| delivered.contains(&m.observed.env))
        .map(|m| &m.settings)
        .collect();
    let union = |pick: fn(&PullRequestSettings) -> &Vec<String>| {
        let all: BTreeSet<&String> = chosen.iter().flat_map(|s| pick(s)).collect();
        all.into_iter().cloned().collect()
    };
    PullRequestSettings {
        labels: union(|s| &s.labels),
        reviewers: union(|s| &s.reviewers),
        draft: chosen.iter().any(|s| s.draft),
        auto_merge: !chosen.is_empty() && chosen.iter().all(|s| s.auto_merge),
    }
}
