//! A config repository opened for rendering: its settings, its compiled
//! templates and its channel source, rendering environments in parallel.
//!
//! Each distinct channel (and pinned release) is fetched once, however many
//! environments follow it. Each environment succeeds or fails on its own: a
//! broken override in one never stops the others.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::channel::{
    ChannelError, ChannelSpec, Fetch, FileSource, HttpOptions, HttpSource, Source,
};
use crate::pipeline::{self, Problem, Rendered};
use crate::render::Engine;
use crate::repo::{ConfigRepo, EnvironmentFiles, KnownEnvironment, RepoError};
use crate::spec::{self, Explanation};
use crate::tree::{DiskTree, Kind, Tree, TreeError};

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("the templates do not compile:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Templates(Vec<crate::render::RenderError>),
    #[error(
        "unsupported channel source `{0}`: give a directory or a file of channel specs, or an http(s) URL"
    )]
    UnsupportedSource(String),
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
}

/// How long a read-only command lets the git remote stay silent, in seconds
/// (as `reconcile --git-timeout` does by default).
pub const GIT_TIMEOUT_SECS: u64 = 60;
/// How long a read-only command waits for a run holding the work directory,
/// in seconds (as `reconcile --lock-timeout` does by default).
pub const LOCK_TIMEOUT_SECS: u64 = 600;

pub struct Project {
    repo: ConfigRepo,
    engine: Engine,
    source: Box<dyn Source>,
    environments: Vec<String>,
    /// `rollout:` in `hydrant.yaml`, if any.
    rollout: Option<crate::rollout::Rollout>,
    /// The release each environment renders at when the rollout keeps it
    /// off its channel's latest (see [`Project::set_releases`]).
    releases: HashMap<String, String>,
    /// Channel specs fetched ahead of rendering ([`Project::latest_versions`]),
    /// used once by the next render.
    prefetched: Mutex<HashMap<ChannelKey, Result<ChannelSpec, ChannelError>>>,
    /// Every channel fetch made, until taken.
    fetches: Mutex<Vec<ChannelFetch>>,
    /// What [`Project::environment_configs`] learned of each environment,
    /// used once by the next render, which does not read it again.
    known: Mutex<HashMap<String, KnownEnvironment>>,
    /// `unknownKeys:` in `hydrant.yaml`, for environments that do not say.
    unknown_keys: crate::spec::UnknownKeys,
    /// Where `channelSource` was set, when the repository's `hydrant.yaml`
    /// chose the source: ``hydrant.yaml`, line 2: `channelSource: specs``.
    source_setting: Option<String>,
}

/// A channel and an optional pinned release of it.
pub type ChannelKey = (String, Option<String>);

/// One fetch of a channel spec: how it went, and what it found.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelFetch {
    pub key: ChannelKey,
    /// `200` (downloaded), `304` (the cache is current), `stale` (the last
    /// good spec, the channel being unreachable), `file`, or `error`.
    pub result: &'static str,
    /// The spec's version; `None` on error.
    pub version: Option<String>,
    /// The spec's version and the digest of its bytes; `None` on error.
    pub fingerprint: Option<String>,
    /// How old the last good spec is, when `result` is `stale`.
    pub stale_secs: Option<u64>,
}

impl ChannelFetch {
    fn of(key: &ChannelKey, spec: &Result<ChannelSpec, ChannelError>) -> ChannelFetch {
        use sha2::{Digest, Sha256};
        let (result, fingerprint) = match spec {
            Err(_) => ("error", None),
            Ok(spec) => (
                match spec.fetch {
                    Fetch::File => "file",
                    Fetch::Network => "200",
                    Fetch::NotModified => "304",
                    Fetch::StaleCache { .. } => "stale",
                },
                Some(format!(
                    "{}@{}",
                    spec.version,
                    &hex::encode(Sha256::digest(spec.raw.as_bytes()))[..16]
                )),
            ),
        };
        ChannelFetch {
            key: key.clone(),
            result,
            version: spec.as_ref().ok().map(|s| s.version.clone()),
            fingerprint,
            stale_secs: match spec {
                Ok(ChannelSpec {
                    fetch: Fetch::StaleCache { age_secs, .. },
                    ..
                }) => Some(*age_secs),
                _ => None,
            },
        }
    }
}

/// The outcome of one environment.
pub type EnvResult = Result<Rendered, Vec<Problem>>;

/// An environment rendered, or found current without rendering.
#[derive(Debug)]
pub enum Render {
    Fresh(Box<Rendered>),
    /// Its inputs are those its recorded render was made from.
    Current,
}

/// How to reach channels: the source (`--channel`, else hydrant.yaml) and the
/// HTTP settings used when it is a URL.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    pub source: Option<String>,
    pub http: HttpOptions,
}

impl ChannelSettings {
    /// No `--channel`: the repository's own setting, with a default cache.
    pub fn local() -> ChannelSettings {
        ChannelSettings {
            source: None,
            http: HttpOptions::new(crate::channel::http::default_cache_dir()),
        }
    }
}

/// Builds the channel source a setting names. A `--channel` path is relative
/// to the working directory; a `hydrant.yaml` path is inside the repository.
fn source_for(
    setting: &str,
    from_flag: bool,
    repo: &ConfigRepo,
    http: &HttpOptions,
) -> Result<Box<dyn Source>, ProjectError> {
    if setting.starts_with("http://") || setting.starts_with("https://") {
        return Ok(Box::new(HttpSource::new(setting, http.clone())?));
    }
    if setting.contains("://") {
        return Err(ProjectError::UnsupportedSource(setting.to_string()));
    }
    if !from_flag {
        return Ok(Box::new(
            FileSource::new(repo.tree().clone(), setting, setting.to_string())
                .verified_by(http.verifier.clone()),
        ));
    }
    let path = Path::new(setting);
    let (root, base) = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => (
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
            path.file_name().and_then(|n| n.to_str()).unwrap_or(""),
        ),
        _ => (path, ""),
    };
    let tree = DiskTree::new(root).map_err(|source| {
        ProjectError::Repo(RepoError::Tree(TreeError::Io {
            path: setting.to_string(),
            source,
        }))
    })?;
    Ok(Box::new(
        FileSource::new(Arc::new(tree), base, setting.to_string())
            .verified_by(http.verifier.clone()),
    ))
}

impl Project {
    /// Opens the working tree at `root`.
    pub fn open(root: &Path, channel: &ChannelSettings) -> Result<Project, ProjectError> {
        let tree = DiskTree::new(root).map_err(|_| RepoError::NotARepo {
            path: root.display().to_string(),
        })?;
        Project::from_tree(Arc::new(tree), &root.display().to_string(), channel)
    }

    /// Opens the config repository a read-only command (`render`, `validate`,
    /// `explain`, `diff`, `channel show`) names: a local directory is read
    /// as its working tree is, unless `git_ref` names a branch; a git URL
    /// (or a local repository with `git_ref`) is fetched into the work
    /// directory reconcile uses and read at the tip of `git_ref`, else of
    /// the remote's default branch, as a reconcile would read it.
    pub fn locate(
        repo: &str,
        git_ref: Option<&str>,
        channel: &ChannelSettings,
    ) -> Result<Project, ProjectError> {
        if git_ref.is_none() && Path::new(repo).is_dir() {
            return Project::open(Path::new(repo), channel);
        }
        use crate::git::{Credentials, Workspace, default_work_dir};
        crate::git::set_timeout(std::time::Duration::from_secs(GIT_TIMEOUT_SECS));
        let ws = Workspace::open(
            &default_work_dir(repo),
            repo,
            Credentials::default(),
            std::time::Duration::from_secs(LOCK_TIMEOUT_SECS),
        )?;
        let fetched = ws.fetch(git_ref)?;
        let tree = ws.snapshot(fetched.base_commit)?;
        let shown = format!(
            "{}@{}",
            fetched.base_branch,
            Workspace::short(fetched.base_commit)
        );
        Project::from_tree(Arc::new(tree), &shown, channel)
    }

    /// The files of `rendered/<env>/` as the repository holds them, by name
    /// (none when the directory does not exist).
    pub fn rendered_files(&self, env: &str) -> Result<BTreeMap<String, String>, RepoError> {
        rendered_files(self.repo.tree().as_ref(), env)
    }

    /// Opens a config repository held in any tree (a directory or a commit).
    pub fn from_tree(
        tree: Arc<dyn Tree>,
        shown: &str,
        channel: &ChannelSettings,
    ) -> Result<Project, ProjectError> {
        Project::from_tree_with(tree, shown, channel, Arc::default())
    }

    /// [`Project::from_tree`], with what earlier runs read from the
    /// repository's directories (see [`crate::memo`]).
    pub fn from_tree_with(
        tree: Arc<dyn Tree>,
        shown: &str,
        channel: &ChannelSettings,
        memo: Arc<crate::memo::Memo>,
    ) -> Result<Project, ProjectError> {
        let channel_flag = channel.source.clone();
        let repo = ConfigRepo::open(tree, shown, memo)?;
        let file = repo.settings()?;
        let from_flag = channel_flag.is_some();
        let setting = crate::settings::channel_source(
            channel_flag,
            file.channel_source().map_err(RepoError::from)?,
        );
        let source = source_for(&setting, from_flag, &repo, &channel.http)?;
        let source_setting = file.get("channelSource").filter(|_| !from_flag).map(|s| {
            format!(
                "`{}`, line {}: `channelSource: {setting}`",
                file.path.display(),
                s.line
            )
        });
        let engine = Engine::new(&repo.templates()?).map_err(ProjectError::Templates)?;
        let environments = repo.environment_names()?;
        let rollout = repo.rollout(&file, &environments)?;
        let unknown_keys = file
            .unknown_keys()
            .map_err(RepoError::from)?
            .unwrap_or_default();
        Ok(Project {
            unknown_keys,
            repo,
            engine,
            source,
            environments,
            rollout,
            releases: HashMap::new(),
            prefetched: Mutex::new(HashMap::new()),
            fetches: Mutex::new(Vec::new()),
            known: Mutex::new(HashMap::new()),
            source_setting,
        })
    }

    /// What earlier runs read from the repository's directories.
    pub fn memo(&self) -> &Arc<crate::memo::Memo> {
        self.repo.memo()
    }

    pub fn environments(&self) -> &[String] {
        &self.environments
    }

    /// `rollout:` in `hydrant.yaml`, if any.
    pub fn rollout(&self) -> Option<&crate::rollout::Rollout> {
        self.rollout.as_ref()
    }

    /// Every environment's `environment.yaml`, where it parses (one that does
    /// not fails when it is rendered).
    /// What was learned is kept for the next render.
    pub fn environment_configs(&self) -> Vec<(String, crate::config::EnvironmentConfig)> {
        let read: Vec<Option<KnownEnvironment>> = self
            .environments
            .par_iter()
            .map(|name| self.known_environment(name).ok())
            .collect();
        let mut configs = Vec::with_capacity(self.environments.len());
        let mut kept = HashMap::with_capacity(self.environments.len());
        for (name, known) in self.environments.iter().zip(read) {
            let config = match known {
                Some(known) => {
                    let config = known.config().clone();
                    kept.insert(name.clone(), known);
                    config
                }
                // One whose channel or release is not a valid name still
                // takes its place in the rollout.
                None => match self.repo.environment_config(name) {
                    Ok(config) => config,
                    Err(_) => continue,
                },
            };
            configs.push((name.clone(), config));
        }
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(kept);
        configs
    }

    /// Renders each environment named at the release given (fetched by
    /// version, like a pin) instead of its channel's latest: where the
    /// rollout keeps it. A `release:` pin still wins.
    pub fn set_releases(&mut self, releases: impl IntoIterator<Item = (String, String)>) {
        self.releases = releases.into_iter().collect();
    }

    /// Each channel's latest version, where its fetch succeeds. The answers
    /// (specs and errors alike) are kept for the next render, which does not
    /// fetch those channels a second time.
    pub fn latest_versions(&self, channels: &[String]) -> BTreeMap<String, String> {
        let keys: Vec<ChannelKey> = channels.iter().map(|c| (c.clone(), None)).collect();
        let fetched: Vec<(ChannelKey, Result<ChannelSpec, ChannelError>)> = keys
            .into_par_iter()
            .map(|k| {
                let spec = self.fetch(&k);
                (k, spec)
            })
            .collect();
        let mut out = BTreeMap::new();
        let mut kept = self
            .prefetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (k, spec) in fetched {
            if let Ok(spec) = &spec {
                out.insert(k.0.clone(), spec.version.clone());
            }
            kept.insert(k, spec);
        }
        out
    }

    /// The channel and release an environment's files render from: its pin,
    /// else the release the rollout keeps it at, else its channel's latest.
    fn key(&self, name: &str, config: &crate::config::EnvironmentConfig) -> ChannelKey {
        let release = config
            .release
            .clone()
            .or_else(|| self.releases.get(name).cloned());
        (config.channel.clone(), release)
    }

    /// The environments named, or all of them; unknown names are an error.
    pub fn select(&self, names: &[String], all: bool) -> Result<Vec<String>, RepoError> {
        if all {
            return Ok(self.environments.clone());
        }
        for name in names {
            self.repo.check_environment(name, &self.environments)?;
        }
        let mut selected = names.to_vec();
        selected.dedup();
        Ok(selected)
    }

    /// Renders environments in parallel, in the order given.
    pub fn render(&self, names: &[String]) -> Vec<(String, EnvResult)> {
        self.render_each(names, |name, result| (name.to_string(), result))
    }

    /// Renders environments in parallel and hands each result to `each` as soon
    /// as it is ready (on the rendering thread), so that a fleet's output need
    /// not be held in memory at once. Returns what `each` returns, in order.
    pub fn render_each<R: Send>(
        &self,
        names: &[String],
        each: impl Fn(&str, EnvResult) -> R + Sync,
    ) -> Vec<R> {
        self.run_each(
            names,
            |_, _| false,
            |name, result| {
                each(
                    name,
                    result.map(|r| match r {
                        Render::Fresh(r) => *r,
                        Render::Current => unreachable!("nothing is skipped"),
                    }),
                )
            },
        )
    }

    /// Renders the environments whose inputs have changed. An environment
    /// whose inputs digest to what `recorded` says (the digest in its
    /// `hydrant.metadata` on the base branch) is [`Render::Current`]: rendered
    /// again, it would give the same files, so it is not.
    pub fn render_changed(
        &self,
        names: &[String],
        recorded: impl Fn(&str) -> Option<String> + Sync,
    ) -> Vec<(String, Result<Render, Vec<Problem>>)> {
        self.run_each(
            names,
            |name, digest| recorded(name).is_some_and(|r| r == digest),
            |name, result| (name.to_string(), result),
        )
    }

    fn run_each<R: Send>(
        &self,
        names: &[String],
        current: impl Fn(&str, &str) -> bool + Sync,
        each: impl Fn(&str, Result<Render, Vec<Problem>>) -> R + Sync,
    ) -> Vec<R> {
        // The value files are read and parsed only for an environment that
        // renders: the inputs' digest hashes their text, and the memo knows
        // the hashes of a directory read before.
        let loaded: Vec<Result<KnownEnvironment, RepoError>> = names
            .par_iter()
            .map(|n| self.known_environment(n))
            .collect();
        let channels = self.fetch_channels(names, &loaded);
        // Each spec's digest once, not once per environment following it.
        let digests: HashMap<&ChannelKey, String> = channels
            .iter()
            .filter_map(|(k, spec)| Some((k, pipeline::channel_digest(spec.as_ref().ok()?))))
            .collect();
        let unchanged = |name: &str, known: &KnownEnvironment| {
            let key = self.key(name, known.config());
            let (Ok(spec), Some(digest)) = (&channels[&key], digests.get(&key)) else {
                return false;
            };
            !refused_downgrade(spec, known.config(), &key)
                && current(
                    name,
                    &pipeline::inputs_of(&self.engine, digest, &known.digests()).digest(),
                )
        };
        let render = |name: &str, known: KnownEnvironment| -> Result<Render, Vec<Problem>> {
            let problem = |e: RepoError| vec![Problem::new(e)];
            let texts = match known {
                KnownEnvironment::Read(texts) => texts,
                KnownEnvironment::Memo(entry) => {
                    let mut texts = self.repo.environment_texts(name).map_err(problem)?;
                    // With the repository's defaults, as looked up.
                    texts.config = entry.config;
                    texts
                }
            };
            let env = texts.parse().map_err(problem)?;
            let key = self.key(&env.name, &env.config);
            match &channels[&key] {
                Err(e) => Err(vec![channel_problem(
                    e,
                    &env,
                    self.source_setting.as_deref(),
                )]),
                Ok(spec) => match downgrade_problem(spec, &env.name, &env.config, &key) {
                    Some(p) => Err(vec![p]),
                    None => pipeline::build(&self.engine, spec, &env)
                        .map(|r| Render::Fresh(Box::new(r))),
                },
            }
        };
        names
            .par_iter()
            .zip(loaded.into_par_iter())
            .map(|(name, known)| {
                let result = match known {
                    Err(e) => Err(vec![Problem::new(e)]),
                    Ok(known) if unchanged(name, &known) => Ok(Render::Current),
                    Ok(known) => render(name, known),
                };
                each(name, result)
            })
            .collect()
    }

    /// What an environment's directory gives before its value files are
    /// parsed, with the repository's `unknownKeys` where its
    /// `environment.yaml` does not set one.
    fn known_environment(&self, name: &str) -> Result<KnownEnvironment, RepoError> {
        let kept = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name);
        if let Some(known) = kept {
            return Ok(known);
        }
        let mut known = self.repo.known_environment(name)?;
        known
            .config_mut()
            .unknown_keys
            .get_or_insert(self.unknown_keys);
        Ok(known)
    }

    fn fetch_channels(
        &self,
        names: &[String],
        loaded: &[Result<KnownEnvironment, RepoError>],
    ) -> HashMap<ChannelKey, Result<ChannelSpec, ChannelError>> {
        let mut wanted: Vec<ChannelKey> = names
            .iter()
            .zip(loaded)
            .filter_map(|(name, known)| Some(self.key(name, known.as_ref().ok()?.config())))
            .collect();
        wanted.sort();
        wanted.dedup();
        wanted
            .into_par_iter()
            .map(|k| {
                let spec = self.fetch_once(&k);
                (k, spec)
            })
            .collect()
    }

    /// A spec fetched once serves every later call on this project (a cycle
    /// renders its environments a chunk at a time; `status` checks each
    /// environment): each channel is fetched, and logged, once per project.
    fn fetch_once(&self, k: &ChannelKey) -> Result<ChannelSpec, ChannelError> {
        let kept = self
            .prefetched
            .lock()
            .ok()
            .and_then(|kept| kept.get(k).cloned());
        if let Some(spec) = kept {
            return spec;
        }
        let spec = self.fetch(k);
        if let Ok(mut kept) = self.prefetched.lock() {
            kept.entry(k.clone()).or_insert_with(|| spec.clone());
        }
        spec
    }

    /// Fetches a spec and logs the fetch.
    fn fetch(&self, k: &ChannelKey) -> Result<ChannelSpec, ChannelError> {
        let spec = self.source.fetch(&k.0, k.1.as_deref());
        if let Ok(mut log) = self.fetches.lock() {
            log.push(ChannelFetch::of(k, &spec));
        }
        spec
    }

    /// The channel fetches made since the last call.
    pub fn take_fetches(&self) -> Vec<ChannelFetch> {
        self.fetches
            .lock()
            .map(|mut log| std::mem::take(&mut *log))
            .unwrap_or_default()
    }

    /// Fetches every channel (and pinned release) the environments follow,
    /// each with the environments that follow it: what a poll for new channel
    /// releases looks at. An environment whose own files do not parse is left
    /// out (its render reports why): one broken environment does not stop the
    /// others' channels from being polled.
    pub fn probe_channels(&self) -> Result<Vec<(ChannelFetch, Vec<String>)>, RepoError> {
        let mut users: BTreeMap<ChannelKey, Vec<String>> = BTreeMap::new();
        for name in &self.environments {
            match self.repo.environment(name) {
                Ok(files) => users.entry(key(&files)).or_default().push(name.clone()),
                Err(e) => {
                    tracing::debug!(environment = %name, error = %e, "its channel is not polled: its files do not parse")
                }
            }
        }
        Ok(users
            .into_par_iter()
            .map(|(k, envs)| (ChannelFetch::of(&k, &self.fetch(&k)), envs))
            .collect())
    }

    /// What rendering `env` reads: its channel spec and its files (for
    /// benchmarks and tools that drive [`pipeline::build`] themselves). A
    /// spec this project fetched before is not fetched again.
    pub fn inputs_of(&self, env: &str) -> Result<(ChannelSpec, EnvironmentFiles), ProjectError> {
        let files = self.repo.environment(env)?;
        let spec = self.fetch_once(&key(&files))?;
        Ok((spec, files))
    }

    /// The compiled templates.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The channel source, as shown to people.
    pub fn channel_source(&self) -> String {
        self.source.describe()
    }

    /// Fetches a channel's spec (its latest, or a release). `origin` says
    /// where the names came from (a flag, a file), for the error when one
    /// breaks the rule of [`crate::names`].
    pub fn channel_spec(
        &self,
        channel: &str,
        release: Option<&str>,
        origin: &str,
    ) -> Result<ChannelSpec, ProjectError> {
        use crate::names::{NameKind, check};
        check(NameKind::Channel, channel, origin)?;
        if let Some(release) = release {
            check(NameKind::Release, release, origin)?;
        }
        Ok(self.fetch(&(channel.to_string(), release.map(String::from)))?)
    }

    /// Every (channel, pinned release) the environments use, sorted.
    pub fn channels_in_use(&self) -> Result<Vec<(String, Option<String>)>, RepoError> {
        let mut used = Vec::new();
        for name in &self.environments {
            let env = self.repo.environment(name)?;
            used.push((env.config.channel.clone(), None));
            if env.config.release.is_some() {
                used.push(key(&env));
            }
        }
        used.sort();
        used.dedup();
        Ok(used)
    }

    /// An environment's own files: `environment.yaml` and its value layers.
    pub fn environment_files(&self, env: &str) -> Result<EnvironmentFiles, RepoError> {
        self.repo.check_environment(env, &self.environments)?;
        self.repo.environment(env)
    }

    /// The channel and release an environment follows (from the memo when
    /// its directory is one read before).
    pub fn environment_channel(&self, env: &str) -> Result<(String, Option<String>), RepoError> {
        self.repo.check_environment(env, &self.environments)?;
        let known = self.repo.known_environment(env)?;
        let config = known.config();
        Ok((config.channel.clone(), config.release.clone()))
    }

    /// How `path` got its value in environment `env`.
    pub fn explain(&self, env: &str, path: &[String]) -> Result<Explanation, Vec<Problem>> {
        self.repo
            .check_environment(env, &self.environments)
            .map_err(|e| vec![Problem::new(e)])?;
        let files = self
            .repo
            .environment(env)
            .map_err(|e| vec![Problem::new(e)])?;
        let spec = self
            .source
            .fetch(&files.config.channel, files.config.release.as_deref())
            .map_err(|e| vec![channel_problem(&e, &files, self.source_setting.as_deref())])?;
        if let Some(unknown) = pipeline::unknown_path(&self.engine, &spec, path) {
            return Err(vec![Problem::new(unknown)]);
        }
        let layers = pipeline::layers(&spec, &files);
        let merged = spec::merge(&layers);
        Ok(spec::explain(&layers, &merged, path))
    }
}

/// The files of `rendered/<env>/` in `tree`, by name (none when the
/// directory does not exist).
pub fn rendered_files(tree: &dyn Tree, env: &str) -> Result<BTreeMap<String, String>, RepoError> {
    let dir = format!("rendered/{env}");
    let mut files = BTreeMap::new();
    for (name, kind) in tree.list(&dir)? {
        if kind == Kind::File
            && let Some(text) = tree.read(&format!("{dir}/{name}"))?
        {
            files.insert(name, text);
        }
    }
    Ok(files)
}

/// A spec older than the one last accepted is refused, unless the environment
/// renders that release by name (its pin, or where the rollout keeps it) or
/// allows downgrades.
fn downgrade_problem(
    spec: &ChannelSpec,
    env: &str,
    config: &crate::config::EnvironmentConfig,
    key: &ChannelKey,
) -> Option<Problem> {
    if !refused_downgrade(spec, config, key) {
        return None;
    }
    let previous = spec.previous_version.as_deref().unwrap_or("?");
    tracing::warn!(channel = %spec.channel, from = previous, to = %spec.version, environment = %env, "refusing a channel downgrade");
    Some(Problem {
        message: format!(
            "channel `{}` went from `{previous}` back to `{}`: refusing a silent downgrade",
            spec.channel, spec.version
        ),
        hint: Some(format!(
            "to accept it, pin `release: \"{}\"` or set `allowDowngrade: true` in environments/{}/environment.yaml",
            spec.version, env
        )),
        transient: false,
    })
}

/// Whether [`downgrade_problem`] refuses `spec` (without its warning).
fn refused_downgrade(
    spec: &ChannelSpec,
    config: &crate::config::EnvironmentConfig,
    key: &ChannelKey,
) -> bool {
    let accepted = config.allow_downgrade || key.1.as_deref() == Some(spec.version.as_str());
    spec.is_downgrade() && !accepted
}

fn key(env: &EnvironmentFiles) -> (String, Option<String>) {
    (env.config.channel.clone(), env.config.release.clone())
}

/// A channel that could not be fetched, as an environment's problem; a
/// source that cannot be read names the setting that chose it, if the
/// repository's `hydrant.yaml` did (`setting`).
fn channel_problem(e: &ChannelError, env: &EnvironmentFiles, setting: Option<&str>) -> Problem {
    let (message, hint) = match (e, setting) {
        (ChannelError::NotFound { .. }, _) => (
            e.to_string(),
            Some(format!(
                "set `channel:` in environments/{}/environment.yaml to a channel the source holds, or pass `--channel SOURCE`",
                env.name
            )),
        ),
        (ChannelError::Io { .. }, Some(setting)) => (
            format!("{setting}: {e}"),
            Some(
                "set `channelSource` in `hydrant.yaml` to a directory or file of channel specs inside the repository, such as `channels`, or pass `--channel SOURCE`"
                    .to_string(),
            ),
        ),
        _ => (e.to_string(), None),
    };
    Problem {
        message,
        hint,
        transient: matches!(e, ChannelError::Unreachable { .. }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled example's `dev`, in a directory of its own.
    fn example_with_dev(values: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let copy = |rel: &str| {
            let to = dir.path().join(rel);
            std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            std::fs::copy(root.join(rel), &to).expect("copy");
        };
        for sub in ["templates", "templates/_partials"] {
            for entry in std::fs::read_dir(root.join(sub)).expect("read templates") {
                let path = entry.expect("entry").path();
                if path.is_file() {
                    copy(&format!(
                        "{sub}/{}",
                        path.file_name().expect("name").to_string_lossy()
                    ));
                }
            }
        }
        copy("channels/canary.yaml");
        copy("environments/dev/environment.yaml");
        std::fs::write(dir.path().join("environments/dev/values.yaml"), values).expect("values");
        dir
    }

    #[test]
    fn an_environment_whose_inputs_are_unchanged_is_not_parsed_again() {
        // Issue 20: a no-op cycle hashes the value files' text and parses them
        // only for an environment that renders.
        let dir = example_with_dev("app: [unclosed\n");
        let project = Project::open(dir.path(), &ChannelSettings::local()).expect("project");
        let dev = vec!["dev".to_string()];
        let rendered = project.render_changed(&dev, |_| None);
        assert!(
            matches!(&rendered[0].1, Err(problems) if problems[0].message.contains("values.yaml")),
            "a changed environment with a broken values.yaml fails"
        );
        let known = project.known_environment("dev").expect("texts");
        let spec = project
            .fetch(&project.key("dev", known.config()))
            .expect("spec");
        let digest = pipeline::inputs_of(
            project.engine(),
            &pipeline::channel_digest(&spec),
            &known.digests(),
        )
        .digest();
        let rendered = project.render_changed(&dev, |_| Some(digest.clone()));
        assert!(
            matches!(rendered[0].1, Ok(Render::Current)),
            "an unchanged environment is current without parsing its values"
        );
    }

    #[test]
    fn a_channel_is_fetched_once_however_many_chunks_a_cycle_renders() {
        // A cycle renders its environments a chunk at a time: the second
        // chunk reuses the spec the first fetched, and the fetch is logged once.
        let values = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("environments/dev/values.yaml"),
        )
        .expect("dev's values");
        let dir = example_with_dev(&values);
        let project = Project::open(dir.path(), &ChannelSettings::local()).expect("project");
        let dev = vec!["dev".to_string()];
        for _ in 0..3 {
            let rendered = project.render_changed(&dev, |_| None);
            assert!(rendered[0].1.is_ok(), "{:?}", rendered[0].1.as_ref().err());
        }
        let fetches = project.take_fetches();
        assert_eq!(fetches.len(), 1, "{fetches:?}");
    }
}
