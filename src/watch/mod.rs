//! `hydrant watch`: keeps the working tree's `rendered/<env>/` in step with
//! its inputs while someone edits overrides or templates locally.
//!
//! It renders the selected environments once, then watches `templates/`,
//! `environments/`, `hydrant.yaml` and the channel source when it is on disk,
//! and re-renders only the environments a change can affect ([`affected`]),
//! with what changed per file ([`summary`]). Both are pure (`change.rs`); this
//! file is the IO around them. It never watches `rendered/` (its own writes)
//! and skips editor temp files. A broken edit is reported and nothing is
//! written for that environment; the watch goes on. It does not touch git,
//! and it prints nothing: it tells its caller what happened as [`Event`]s.
//! The first SIGINT or SIGTERM ends [`watch`]; a second exits at once.

mod change;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use notify_debouncer_full::notify::RecommendedWatcher;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache};

pub use change::{Affected, ChannelPath, Layout, affected, summary};
use change::{channel_location, is_change, watch_targets};

use crate::config;
use crate::output::{self, rendered_line};
use crate::pipeline::Problem;
use crate::project::{ChannelSettings, EnvResult, Project};
use crate::settings::{self, SettingsFile};

/// Events closer together than this are one change (an editor's save is
/// often a write, a rename and a chmod).
const DEBOUNCE: Duration = Duration::from_millis(200);

/// What to watch and keep rendered.
#[derive(Debug, Clone)]
pub struct Options {
    /// The repository's working tree, as given (relative to the working
    /// directory, like `--channel`).
    pub repo: PathBuf,
    pub channel: ChannelSettings,
    /// The environments to keep rendered; empty for every one.
    pub envs: Vec<String>,
}

/// What the watch did, for its caller to show.
#[derive(Debug)]
pub enum Event {
    /// Lines for the person watching: the watch started, what changed and
    /// what is re-rendered, an environment's render and its files.
    Said(String),
    /// Something the watch goes on without (a directory it cannot watch).
    Warning(String),
    /// An environment does not render; nothing was written for it.
    Problems { env: String, problems: Vec<Problem> },
    /// A failure the watch survives (the repository does not open, a write
    /// failed).
    Failed(anyhow::Error),
}

enum Message {
    Changed(DebounceEventResult),
    Stop,
}

/// Renders the selected environments, then re-renders those each change
/// affects until the first SIGINT or SIGTERM; tells `on_event` what happened.
pub fn watch(options: Options, mut on_event: impl FnMut(Event)) -> anyhow::Result<()> {
    let tell: &mut dyn FnMut(Event) = &mut on_event;
    let root = std::fs::canonicalize(&options.repo)
        .with_context(|| format!("cannot watch `{}`", options.repo.display()))?;
    let (tx, rx) = mpsc::channel();
    stop_on_signal(tx.clone())?;
    let debouncer = notify_debouncer_full::new_debouncer(DEBOUNCE, None, move |result| {
        let _ = tx.send(Message::Changed(result));
    })
    .context("cannot watch files")?;
    let mut session = Session {
        repo: options.repo,
        channel: options.channel,
        envs: options.envs,
        layout: Layout {
            root,
            ..Layout::default()
        },
        debouncer,
        watched: BTreeSet::new(),
    };
    session.locate_channel();
    session.watch(&BTreeSet::new(), tell);
    // What waits for the repository to open, and the changes behind it.
    let mut pending = Affected::all();
    let mut causes = BTreeSet::new();
    if let Some(project) = session.open(tell) {
        project.select(&session.envs, session.envs.is_empty())?;
        session.render(&project, &std::mem::take(&mut pending), None, tell);
    }
    tell(Event::Said(format!(
        "watching {} for changes; Ctrl-C stops",
        session.describe_targets()
    )));
    while let Ok(Message::Changed(first)) = rx.recv() {
        let mut batch = Batch::default();
        batch.add(first, tell);
        // Whatever else is queued already joins this pass.
        for message in rx.try_iter() {
            match message {
                Message::Changed(result) => batch.add(result, tell),
                Message::Stop => return Ok(()),
            }
        }
        // Only reads (hydrant's own among them): nothing to do.
        if batch.paths.is_empty() && !batch.unsure {
            continue;
        }
        session.locate_channel();
        session.watch(&batch.paths, tell);
        let mut hit = Affected {
            all: batch.unsure,
            ..Affected::default()
        };
        for path in batch.paths {
            let change = affected(&session.layout, &path);
            if !change.is_empty() {
                hit.add(change);
                causes.insert(path);
            }
        }
        if hit.is_empty() {
            continue;
        }
        pending.add(hit);
        if let Some(project) = session.open(tell) {
            let todo = std::mem::take(&mut pending);
            session.render(&project, &todo, Some(&std::mem::take(&mut causes)), tell);
        }
    }
    Ok(())
}

/// The changed paths of one pass.
#[derive(Default)]
struct Batch {
    paths: BTreeSet<PathBuf>,
    /// The watcher lost track (an error, or events dropped): re-render everything.
    unsure: bool,
}

impl Batch {
    fn add(&mut self, result: DebounceEventResult, tell: &mut dyn FnMut(Event)) {
        match result {
            Ok(events) => {
                for event in events {
                    self.unsure |= event.need_rescan();
                    if is_change(&event.kind) {
                        self.paths.extend(event.event.paths);
                    }
                }
            }
            Err(errors) => {
                for e in errors {
                    tell(Event::Warning(format!("watching files: {e}")));
                }
                self.unsure = true;
            }
        }
    }
}

struct Session {
    /// `--repo` as given (relative to the working directory, like `--channel`).
    repo: PathBuf,
    channel: ChannelSettings,
    /// `--env`; empty for every environment.
    envs: Vec<String>,
    layout: Layout,
    debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    watched: BTreeSet<PathBuf>,
}

impl Session {
    /// Opens the repository afresh and learns its layout; reports why not.
    fn open(&mut self, tell: &mut dyn FnMut(Event)) -> Option<Project> {
        let project = match Project::open(&self.repo, &self.channel) {
            Ok(p) => p,
            Err(e) => {
                tell(Event::Failed(anyhow::Error::new(e).context(format!(
                    "cannot open `{}`; still watching",
                    self.repo.display()
                ))));
                return None;
            }
        };
        let channels = project
            .environments()
            .iter()
            .map(|env| {
                let channel = project.environment_channel(env).ok().map(|(c, _)| c);
                (env.clone(), channel)
            })
            .collect();
        self.layout.env_channels = Some(channels);
        Some(project)
    }

    /// Finds the channel source from `--channel` or hydrant.yaml (kept as it
    /// was while hydrant.yaml does not parse).
    fn locate_channel(&mut self) {
        let root = &self.layout.root;
        let path = Path::new(config::SETTINGS_FILE);
        let from_file = match std::fs::read_to_string(root.join(path)) {
            Ok(text) => {
                match SettingsFile::parse(path, &text, false).and_then(|f| f.channel_source()) {
                    Ok(source) => source,
                    Err(_) => return,
                }
            }
            Err(_) => None,
        };
        let flag = self.channel.source.clone();
        let from_flag = flag.is_some();
        let source = settings::channel_source(flag, from_file);
        let cwd = std::env::current_dir().unwrap_or_default();
        self.layout.channel = channel_location(&source, from_flag, root, &cwd).map(|path| {
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            if path.is_file() {
                ChannelPath::File(path)
            } else {
                ChannelPath::Dir(path)
            }
        });
    }

    /// Watches every target that exists, again for any that `changed` names
    /// (a directory replaced is a new directory to the watcher).
    fn watch(&mut self, changed: &BTreeSet<PathBuf>, tell: &mut dyn FnMut(Event)) {
        let watcher = &mut self.debouncer;
        let targets = watch_targets(&self.layout.root, self.layout.channel.as_ref());
        for (path, mode) in &targets {
            if self.watched.contains(path) && !changed.contains(path) && path.exists() {
                continue;
            }
            if self.watched.remove(path) {
                let _ = watcher.unwatch(path);
            }
            if path.exists() {
                match watcher.watch(path, *mode) {
                    Ok(()) => {
                        self.watched.insert(path.clone());
                    }
                    Err(e) => tell(Event::Warning(format!(
                        "cannot watch `{}`: {e}",
                        path.display()
                    ))),
                }
            }
        }
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|w| !targets.iter().any(|(t, _)| t == *w))
            .cloned()
            .collect();
        for path in stale {
            let _ = watcher.unwatch(&path);
            self.watched.remove(&path);
        }
    }

    /// Re-renders the selected environments `todo` names, writing each that
    /// changed, and tells a summary per environment.
    fn render(
        &self,
        project: &Project,
        todo: &Affected,
        cause: Option<&BTreeSet<PathBuf>>,
        tell: &mut dyn FnMut(Event),
    ) {
        let known = project.environments();
        let selected: Vec<String> = if self.envs.is_empty() {
            known.to_vec()
        } else {
            for gone in self.envs.iter().filter(|e| !known.contains(e)) {
                tell(Event::Warning(format!(
                    "environment `{gone}` is gone; not rendering it"
                )));
            }
            self.envs
                .iter()
                .filter(|e| known.contains(e))
                .cloned()
                .collect()
        };
        let envs = todo.pick(&selected);
        if envs.is_empty() {
            return;
        }
        if let Some(paths) = cause.filter(|p| !p.is_empty()) {
            tell(Event::Said(format!(
                "changed {}: re-rendering {}",
                self.describe_paths(paths),
                envs.join(", ")
            )));
        }
        let root = &self.layout.root;
        let outcomes = project.render_each(&envs, |env, result| write_env(root, env, result));
        for (env, outcome) in envs.iter().zip(outcomes) {
            match outcome {
                Ok(Ok(lines)) => tell(Event::Said(lines.join("\n"))),
                Ok(Err(problems)) => tell(Event::Problems {
                    env: env.clone(),
                    problems,
                }),
                Err(e) => tell(Event::Failed(e)),
            }
        }
    }

    fn describe_targets(&self) -> String {
        let mut shown = vec![
            "templates/".to_string(),
            "environments/".to_string(),
            config::SETTINGS_FILE.to_string(),
        ];
        match &self.layout.channel {
            Some(ChannelPath::Dir(dir)) => shown.push(format!("{}/", self.show(dir))),
            Some(ChannelPath::File(file)) => shown.push(self.show(file)),
            None => {}
        }
        shown.join(", ")
    }

    /// The first few of `paths`, relative to the repository where inside it.
    fn describe_paths(&self, paths: &BTreeSet<PathBuf>) -> String {
        const SHOWN: usize = 3;
        let mut text: Vec<String> = paths.iter().take(SHOWN).map(|p| self.show(p)).collect();
        if paths.len() > SHOWN {
            text.push(format!("and {} more", paths.len() - SHOWN));
        }
        text.join(", ")
    }

    fn show(&self, path: &Path) -> String {
        match path.strip_prefix(&self.layout.root) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => path.display().to_string(),
        }
    }
}

/// Writes one environment's render to `rendered/<env>/` when it changed, and
/// returns its summary lines; an environment that failed writes nothing.
fn write_env(
    root: &Path,
    env: &str,
    result: EnvResult,
) -> anyhow::Result<Result<Vec<String>, Vec<Problem>>> {
    let rendered = match result {
        Ok(r) => r,
        Err(problems) => return Ok(Err(problems)),
    };
    let shown = format!("rendered/{env}");
    // `rendered` (or `rendered/<env>`) linked elsewhere would send the
    // writes out of the repository.
    let rendered_dir = root.join("rendered");
    output::refuse_link(&rendered_dir)
        .with_context(|| format!("cannot write `{}`", rendered_dir.display()))?;
    let current = crate::project::rendered_files(&crate::tree::DiskTree::new(root)?, env)?;
    let mut lines = vec![rendered_line(env, &rendered, Path::new(&shown))];
    lines.extend(
        summary(&shown, &current, &rendered.files)
            .into_iter()
            .map(|line| format!("  {line}")),
    );
    if current != rendered.files {
        let target = root.join("rendered").join(env);
        output::replace_dir(&target, &rendered.files)
            .with_context(|| format!("cannot write `{}`", target.display()))?;
    }
    Ok(Ok(lines))
}

/// Sends [`Message::Stop`] on the first SIGINT or SIGTERM; a second one
/// exits at once. The handlers are in place when this returns.
fn stop_on_signal(tx: mpsc::Sender<Message>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut interrupt, mut terminate) = {
        let _context = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    std::thread::Builder::new()
        .name("hydrant-signals".into())
        .spawn(move || {
            runtime.block_on(async {
                for _ in 0..2 {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                    let _ = tx.send(Message::Stop);
                }
            });
            std::process::exit(1);
        })?;
    Ok(())
}
