//! One reconcile cycle: fetch the config repository, render every environment
//! from its base branch, and deliver each change as one commit on
//! `hydrant/<env>` with one pull request.
//!
//! For each environment, comparing a fresh render with `rendered/<env>/` on the
//! base branch:
//! - equal: nothing to push; an open hydrant pull request is closed ("already
//!   up to date") and its branch deleted;
//! - different: `hydrant/<env>` becomes the base plus exactly one commit that
//!   changes only `rendered/<env>/`, pushed only if it differs from what is
//!   there, and the pull request is opened or updated in place;
//! - a commit on `hydrant/<env>` that hydrant did not make is never
//!   overwritten: hydrant comments once and skips the environment.
//!
//! A push that loses a race re-fetches, re-renders and retries a few times.
//! Environments are isolated: one's failure is reported and the others proceed;
//! so is a panic while one is rendered or delivered (a bug, caught and turned
//! into that environment's error, never the whole cycle's).
//! The cycle is idempotent: run twice with the same inputs, the second run
//! changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use serde::Serialize;

use crate::forge::{Ensured, Forge, PrRequest, PullRequest, review};
use crate::git::{self, Fetched, GitError, Oid, Signature, Workspace};
use crate::manifest::layout::{self, Metadata};
use crate::pipeline::{Problem, Rendered};
use crate::project::{ChannelFetch, ChannelSettings, Project, ProjectError, Render};

/// How many times a push that lost a race is tried again.
pub const PUSH_ATTEMPTS: usize = 3;

const HUMAN_MARKER: &str = "<!-- hydrant:foreign-commit -->";

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Opened,
    Updated,
    Unchanged,
    Closed,
    Skipped,
    Failed,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VersionChange {
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrRef {
    pub number: u64,
    pub url: String,
}

/// What happened to one environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub env: String,
    pub action: Action,
    /// The release channel the environment follows.
    pub channel: Option<String>,
    pub version: VersionChange,
    pub branch: String,
    pub commit: Option<String>,
    pub pull_request: Option<PrRef>,
    pub error: Option<String>,
    /// A sentence for people: why skipped, what a dry run would do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Outcome {
    fn new(env: &str, action: Action) -> Outcome {
        Outcome {
            env: env.to_string(),
            action,
            channel: None,
            version: VersionChange::default(),
            branch: git::branch_name(env),
            commit: None,
            pull_request: None,
            error: None,
            note: None,
        }
    }

    fn failed(env: &str, message: String) -> Outcome {
        Outcome {
            error: Some(message),
            ..Outcome::new(env, Action::Failed)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Project(#[from] ProjectError),
}

fn problems_text(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| match &p.hint {
            Some(h) => format!("{} (hint: {h})", p.message),
            None => p.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
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
        let branch = git::branch_name(&status.env);
        let found = ws
            .rendered_files(fetched.base_commit, &status.env)
            .map_err(StepError::from)
            .and_then(|files| {
                Ok((
                    rendered_version(&files),
                    forge.find_open(&branch, &fetched.base_branch)?,
                ))
            });
        match found {
            Ok((rendered, pr)) => {
                status.rendered = rendered;
                status.pull_request = pr.map(|pr| PrStatus {
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

/// What one cycle did.
pub struct Cycle {
    pub outcomes: Vec<Outcome>,
    /// Every channel fetch the cycle made.
    pub fetches: Vec<ChannelFetch>,
    /// The repository as the cycle read it from the base branch.
    pub project: Project,
}

/// Runs one cycle over the selected environments.
pub fn run_cycle(ws: &Workspace, forge: &dyn Forge, opts: &Options) -> Result<Cycle, CycleError> {
    let started = std::time::Instant::now();
    let mut fetched = ws.fetch(opts.base.as_deref())?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        base = %Workspace::short(fetched.base_commit),
        "fetched"
    );
    let mut project = load(ws, &fetched, &opts.channel)?;
    let envs = selected(&project, opts)?;
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
            let step = Step {
                ws,
                forge,
                opts,
                fetched: &fetched,
                author: &author,
                recorded: &recorded,
            };
            let delivered = catch_unwind(AssertUnwindSafe(|| step.reconcile(&env, &result)));
            let delivered = match delivered {
                Ok(delivered) => delivered,
                Err(payload) => {
                    break Outcome::failed(&env, panicked(&env, "delivering", &*payload));
                }
            };
            match delivered {
                Ok(outcome) => break outcome,
                Err(StepError::Git(GitError::PushRejected { message, .. }))
                    if attempt < PUSH_ATTEMPTS =>
                {
                    tracing::warn!(env = %env, attempt, reason = %message, "push lost a race; fetching and rendering again");
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
                        Err(e) => break Outcome::failed(&env, e.to_string()),
                    }
                }
                Err(e) => break Outcome::failed(&env, e.to_string()),
            }
        };
        match &outcome.error {
            Some(error) => tracing::warn!(action = %outcome.action, %error, "environment failed"),
            None => tracing::info!(action = %outcome.action, "environment reconciled"),
        }
        outcomes.push(outcome);
    }
    Ok(Cycle {
        outcomes,
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

struct Step<'a> {
    ws: &'a Workspace,
    forge: &'a dyn Forge,
    opts: &'a Options,
    fetched: &'a Fetched,
    author: &'a Signature<'static>,
    /// Each environment's `hydrant.metadata` on the base branch.
    recorded: &'a HashMap<String, Metadata>,
}

/// What can stop one environment's delivery.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Forge(#[from] crate::forge::ForgeError),
}

fn rendered_version(files: &BTreeMap<String, String>) -> Option<String> {
    let meta: Metadata = serde_json::from_str(files.get(layout::METADATA)?).ok()?;
    Some(meta.channel.version)
}

impl Step<'_> {
    /// Whether the branch already delivers this render: its commit holds the
    /// same `rendered/<env>/`, and the base has moved on (if at all) without
    /// touching `rendered/<env>/`, so the pull request still merges cleanly.
    /// Then nothing is pushed: a busy base branch does not churn every branch.
    fn still_current(&self, tip: &git::Tip, tree: Oid, env: &str) -> bool {
        let base = self.fetched.base_commit;
        let dir = format!("rendered/{env}");
        let [parent] = tip.parents[..] else {
            return false;
        };
        if self.ws.subtree(tip.tree, &dir) != self.ws.subtree(tree, &dir)
            || !self.ws.contains(base, parent)
        {
            return false;
        }
        let (Ok(parent_tree), Ok(base_tree)) = (self.ws.tree_of(parent), self.ws.tree_of(base))
        else {
            return false;
        };
        self.ws.subtree(parent_tree, &dir) == self.ws.subtree(base_tree, &dir)
    }

    /// An environment whose recorded render is current: nothing to render or
    /// push. Without a `hydrant/<env>` branch there is no pull request to
    /// close either (a forge closes a pull request whose branch is deleted),
    /// so a settled environment costs no forge call.
    fn current(&self, env: &str, recorded: Option<&Metadata>) -> Result<Outcome, StepError> {
        let mut outcome = Outcome::new(env, Action::Unchanged);
        if let Some(m) = recorded {
            outcome.channel = Some(m.channel.name.clone());
            outcome.version = VersionChange {
                from: Some(m.channel.version.clone()),
                to: Some(m.channel.version.clone()),
            };
        }
        tracing::info!("inputs unchanged since the recorded render: not rendered again");
        let Some(tip) = self.ws.tip(env)? else {
            return Ok(outcome);
        };
        let open = self
            .forge
            .find_open(&git::branch_name(env), &self.fetched.base_branch)?;
        self.settle(env, outcome, open, Some(&tip))
    }

    /// The base already holds the render: close the pull request, if one is
    /// open, and delete hydrant's branch.
    fn settle(
        &self,
        env: &str,
        mut outcome: Outcome,
        open: Option<PullRequest>,
        tip: Option<&git::Tip>,
    ) -> Result<Outcome, StepError> {
        let base = self.fetched.base_commit;
        let base_branch = &self.fetched.base_branch;
        let dry = self.opts.dry_run;
        let ours = tip.filter(|t| t.is_hydrant);
        if let Some(pr) = open {
            outcome.pull_request = Some(PrRef {
                number: pr.number,
                url: pr.url.clone(),
            });
            outcome.action = Action::Closed;
            if dry {
                outcome.note = Some(format!(
                    "dry run: would close PR #{} (already up to date on {base_branch})",
                    pr.number
                ));
                return Ok(outcome);
            }
            let comment = format!(
                "Closed by hydrant: `rendered/{env}/` is already up to date on `{base_branch}` ({}), so this pull request is no longer needed.",
                Workspace::short(base)
            );
            self.forge.close_pull_request(&pr, &comment)?;
            if let Some(t) = ours {
                self.ws.push(env, None, Some(t.commit))?;
            }
        } else if let Some(t) = ours {
            // A leftover branch with no pull request: nothing needs it.
            if !dry {
                self.ws.push(env, None, Some(t.commit))?;
            }
        }
        Ok(outcome)
    }

    fn reconcile(
        &self,
        env: &str,
        result: &Result<Render, Vec<Problem>>,
    ) -> Result<Outcome, StepError> {
        let rendered: &Rendered = match result {
            Ok(Render::Fresh(r)) => r,
            Ok(Render::Current) => return self.current(env, self.recorded.get(env)),
            Err(problems) => return Ok(Outcome::failed(env, problems_text(problems))),
        };
        let base = self.fetched.base_commit;
        let base_branch = &self.fetched.base_branch;
        let branch = git::branch_name(env);
        let old_files = self.ws.rendered_files(base, env)?;
        let mut outcome = Outcome::new(env, Action::Unchanged);
        outcome.channel = Some(rendered.metadata.channel.name.clone());
        outcome.version = VersionChange {
            from: rendered_version(&old_files),
            to: Some(rendered.metadata.channel.version.clone()),
        };
        let open = self.forge.find_open(&branch, base_branch)?;
        let tip = self.ws.tip(env)?;
        let dry = self.opts.dry_run;

        if old_files == rendered.files {
            return self.settle(env, outcome, open, tip.as_ref());
        }

        if let Some(t) = tip.as_ref().filter(|t| !t.is_hydrant) {
            outcome.action = Action::Skipped;
            outcome.commit = Some(t.commit.to_string());
            outcome.note = Some(format!(
                "`{branch}` holds a commit hydrant did not make (by {}); it is left as it is",
                t.author
            ));
            if let Some(pr) = &open {
                outcome.pull_request = Some(PrRef {
                    number: pr.number,
                    url: pr.url.clone(),
                });
                let comments = self.forge.comments(pr)?;
                let told = comments.iter().any(|c| c.body.contains(HUMAN_MARKER));
                if !told && !dry {
                    let body = format!(
                        "{HUMAN_MARKER}\nhydrant found a commit on `{branch}` that it did not make (by {}), so it will not overwrite it and leaves this pull request alone. To let hydrant take over again, close this pull request and delete the branch.",
                        t.author
                    );
                    self.forge.comment(pr, &body)?;
                }
            }
            return Ok(outcome);
        }

        let change = review::Change {
            env,
            namespace: &rendered.metadata.namespace,
            channel: &rendered.metadata.channel.name,
            from_version: outcome.version.from.as_deref(),
            to_version: &rendered.metadata.channel.version,
            base: base_branch,
            source_commit: &base.to_string(),
            old_files: &old_files,
            new_files: &rendered.files,
            manifests: &rendered.manifests,
            provenance: &rendered.merged.provenance,
        };
        let settings = &rendered.pull_request;
        let request = PrRequest {
            head: branch.clone(),
            base: base_branch.clone(),
            title: review::title(&change),
            body: review::body(&change),
            labels: settings.labels.clone(),
            reviewers: settings.reviewers.clone(),
            draft: settings.draft,
            auto_merge: settings.auto_merge,
        };
        let tree = self.ws.tree_with(base, env, &rendered.files)?;
        let current = tip.as_ref().filter(|t| self.still_current(t, tree, env));
        let commit: Option<Oid> = match current {
            Some(t) => Some(t.commit),
            None if dry => None,
            None => {
                let c =
                    self.ws
                        .commit(base, tree, &review::commit_message(&change), self.author)?;
                self.ws.push(env, Some(c), tip.as_ref().map(|t| t.commit))?;
                Some(c)
            }
        };
        let pushed = current.is_none();
        outcome.commit = commit.map(|c| c.to_string());
        if dry {
            outcome.action = match &open {
                None => Action::Opened,
                Some(pr) if pushed || pr.title != request.title || pr.body != request.body => {
                    Action::Updated
                }
                Some(_) => Action::Unchanged,
            };
            outcome.pull_request = open.map(|pr| PrRef {
                number: pr.number,
                url: pr.url,
            });
            outcome.note = Some(format!(
                "dry run: would {} `{branch}` and {} its pull request",
                if pushed { "push" } else { "keep" },
                match outcome.action {
                    Action::Opened => "open",
                    Action::Updated => "update",
                    _ => "keep",
                }
            ));
            return Ok(outcome);
        }
        let (pr, ensured) = self.forge.ensure_pull_request(&request)?;
        outcome.pull_request = Some(PrRef {
            number: pr.number,
            url: pr.url,
        });
        outcome.action = match ensured {
            Ensured::Created => Action::Opened,
            Ensured::Updated => Action::Updated,
            Ensured::Unchanged if pushed => Action::Updated,
            Ensured::Unchanged => Action::Unchanged,
        };
        Ok(outcome)
    }
}
