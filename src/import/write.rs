//! The edges of `hydrant import`: reads the file and the repository's
//! templates and channel, and writes the environment's files into the
//! working tree (no commit, no push) and the Secret manifest into a
//! directory outside the repository, readable by its owner only. A
//! credential is written there and nowhere else: not into the repository,
//! not into the report, not into an error.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};

use super::{ImportError, ImportLayer, Translation, translate};
use crate::project::{ChannelSettings, Project, ProjectError};

/// What to import, and where to: the arguments of `hydrant import`.
#[derive(Debug, Clone, clap::Args)]
pub struct Request {
    /// The environment to create (a directory of `environments/`).
    #[arg(long, env = "HYDRANT_ENV")]
    pub env: String,
    /// The operator's `WeightsAndBiases` resource (`kubectl get wandb NAME -o yaml`), or
    /// `helm get values` output with `--layer values`.
    #[arg(long, env = "HYDRANT_IMPORT_FROM", value_name = "FILE")]
    pub from: PathBuf,
    /// The layer it becomes: `pinned` (layer 3, pinned.yaml, with environment.yaml) or
    /// `values` (layer 2, values.yaml).
    #[arg(long, env = "HYDRANT_IMPORT_LAYER", value_enum, default_value_t)]
    pub layer: ImportLayer,
    /// The directory, outside the repository, that the Secret manifest holding the
    /// credentials goes to (mode 0600); required when the file holds credentials.
    #[arg(long, env = "HYDRANT_SECRETS_OUT", value_name = "DIR")]
    pub secrets_out: Option<PathBuf>,
    /// Replace the environment's files and the Secret manifest if they exist.
    #[arg(long, env = "HYDRANT_IMPORT_FORCE")]
    pub force: bool,
    /// The config repository's working tree; files are written there, never committed.
    #[arg(long, env = "HYDRANT_REPO", default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error("cannot read `{path}`")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write `{path}`")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` exists; the import would overwrite it")]
    Exists { path: String },
    #[error(
        "`--secrets-out {dir}` lies inside the repository `{repo}`: the credentials would end up in git"
    )]
    SecretsInRepo { dir: String, repo: String },
    #[error(
        "`{file}` holds credentials ({keys}): they must go to a Secret manifest outside the repository"
    )]
    NoSecretsOut { file: String, keys: String },
}

impl WriteError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            WriteError::Import(e) => e.hint(),
            WriteError::Exists { .. } => {
                Some("pass `--force` to replace the environment's files".to_string())
            }
            WriteError::SecretsInRepo { .. } | WriteError::NoSecretsOut { .. } => Some(
                "pass `--secrets-out DIR` naming a directory outside the repository (e.g. `~/wandb-secrets`), then apply its manifests to the cluster"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

/// What an import did.
#[derive(Debug)]
pub struct Report {
    pub env: String,
    pub from: String,
    pub translation: Translation,
    /// The files written in the repository, relative to it.
    pub written: Vec<String>,
    /// The Secret manifest written, if any.
    pub secret_file: Option<PathBuf>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.translation;
        writeln!(
            f,
            "imported `{}` into environment `{}`:",
            self.from, self.env
        )?;
        for w in &self.written {
            writeln!(f, "  wrote {w}")?;
        }
        if let (Some(path), Some(secret)) = (&self.secret_file, &t.secret) {
            writeln!(
                f,
                "  wrote {} (mode 0600): Secret `{}` in namespace `{}`, keys {}; apply it to the cluster (`kubectl apply -f`) and keep it out of git",
                path.display(),
                secret.name,
                secret.namespace,
                super::list(secret.data.keys())
            )?;
        }
        for m in &t.moved {
            write!(f, "  moved `{}`", m.from)?;
            if let Some(line) = m.line {
                write!(f, " (line {line})")?;
            }
            match &m.reference {
                Some(r) => writeln!(f, " → `{r}`, Secret key `{}`", m.secret_key)?,
                None => writeln!(f, " → Secret key `{}` (no reference form)", m.secret_key)?,
            }
        }
        if !t.unplaced.is_empty() {
            writeln!(
                f,
                "keys hydrant cannot place (no template or channel reads them; move or remove them):"
            )?;
            for u in &t.unplaced {
                writeln!(f, "  {u}")?;
            }
        }
        if !t.notes.is_empty() {
            writeln!(f, "differences from the operator:")?;
            for n in &t.notes {
                writeln!(f, "  - {n}")?;
            }
        }
        write!(
            f,
            "nothing was committed: check with `hydrant validate --env {env}` and `hydrant render --env {env}`, then commit the environment",
            env = self.env
        )
    }
}

/// Imports `req.from` into environment `req.env` of the repository.
pub fn run(req: &Request) -> Result<Report, WriteError> {
    crate::names::check(crate::names::NameKind::Environment, &req.env, "--env")?;
    let read_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| WriteError::Read { path, source }
    };
    let root = std::fs::canonicalize(&req.repo).map_err(read_error(&req.repo))?;
    let text = std::fs::read_to_string(&req.from).map_err(read_error(&req.from))?;
    let shown = req.from.display().to_string();

    let project = Project::open(&root, &ChannelSettings::local())?;
    let env_dir = root.join("environments").join(&req.env);
    let config = env_dir.join("environment.yaml");
    let keep_config = req.layer == ImportLayer::Values && config.exists();
    let channel_name = match keep_config {
        true => project.environment_channel(&req.env).map(|(c, _)| c).ok(),
        false => None,
    }
    .unwrap_or_else(|| super::DEFAULT_CHANNEL.to_string());
    let channel = project.channel_spec(&channel_name, None, "environment.yaml");
    let defined = channel.as_ref().map(crate::pipeline::defined_by).ok();
    let mut known = vec![project.engine().known_keys()];
    known.extend(defined.as_ref());
    let mut translation = translate(
        req.layer,
        &req.env,
        &shown,
        &text,
        &known,
        channel.as_ref().ok().map(|c| &c.values.values),
    )?;
    translation.channel = channel_name.clone();
    translation.notes.push(format!(
        "everything the file does not set comes from channel `{channel_name}` (images, versions, defaults) and changes with its releases; `hydrant explain --env {} KEY` shows which layer set a key",
        req.env
    ));
    if let Err(e) = &channel {
        translation.notes.push(format!(
            "channel `{channel_name}` could not be read ({e}): keys were checked against the templates only"
        ));
    }

    // Decide everything before writing anything.
    let layer_file = env_dir.join(req.layer.file_name());
    let mut targets = vec![layer_file.clone()];
    if !keep_config {
        targets.push(config.clone());
    }
    crate::output::refuse_link(&env_dir).map_err(|source| WriteError::Write {
        path: env_dir.display().to_string(),
        source,
    })?;
    if !req.force
        && let Some(existing) = targets.iter().find(|p| p.exists())
    {
        return Err(WriteError::Exists {
            path: relative(&root, existing),
        });
    }
    let secret_file = match (&translation.secret, &req.secrets_out) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(WriteError::NoSecretsOut {
                file: shown,
                keys: super::list(translation.moved.iter().map(|m| m.from.as_str())),
            });
        }
        (Some(secret), Some(dir)) => {
            let resolved = resolve(dir).map_err(read_error(dir))?;
            if resolved.starts_with(&root) {
                return Err(WriteError::SecretsInRepo {
                    dir: dir.display().to_string(),
                    repo: root.display().to_string(),
                });
            }
            let file = resolved.join(format!("{}.yaml", secret.name));
            if !req.force && file.exists() {
                return Err(WriteError::Exists {
                    path: file.display().to_string(),
                });
            }
            Some(file)
        }
    };

    if let (Some(file), Some(secret)) = (&secret_file, &translation.secret) {
        write_private(file, &secret.to_yaml()).map_err(|source| WriteError::Write {
            path: file.display().to_string(),
            source,
        })?;
    }
    let write = |path: &Path, text: &str| {
        crate::output::write_file(path, text).map_err(|source| WriteError::Write {
            path: path.display().to_string(),
            source,
        })
    };
    let header = match req.layer {
        ImportLayer::Pinned => "layer 3, the custom resource spec",
        ImportLayer::Values => "layer 2, the user input spec",
    };
    let mut text = format!(
        "# {}: {header}, imported by `hydrant import` from `{shown}`.\n# Credentials are read from Secrets by reference; they are not in git.\n",
        req.layer.file_name()
    );
    if !translation.values.is_empty() {
        text.push_str(&crate::yaml::emit::to_document(&Value::Object(
            translation.values.clone(),
        )));
    }
    write(&layer_file, &text)?;
    let mut written = vec![format!("{} ({header})", relative(&root, &layer_file))];
    if !keep_config {
        let namespace = translation.namespace.as_deref().unwrap_or("default");
        let body = crate::yaml::emit::to_document(
            &json!({"channel": channel_name, "namespace": namespace}),
        );
        write(
            &config,
            &format!("# Imported by `hydrant import` from `{shown}`.\n{body}"),
        )?;
        written.push(format!(
            "{} (channel `{channel_name}`, namespace `{namespace}`)",
            relative(&root, &config)
        ));
    }
    Ok(Report {
        env: req.env.clone(),
        from: shown,
        translation,
        written,
        secret_file,
    })
}

/// `path` relative to the repository, as shown to people.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Where `dir` really is: every part that exists with its links resolved,
/// the rest (and a `..` after it) taken as written, since nothing below a
/// missing directory can be a link.
fn resolve(dir: &Path) -> std::io::Result<PathBuf> {
    let mut resolved = PathBuf::new();
    for part in std::path::absolute(dir)?.components() {
        match part {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::CurDir => {}
            other => {
                resolved.push(other);
                if let Ok(real) = std::fs::canonicalize(&resolved) {
                    resolved = real;
                }
            }
        }
    }
    Ok(resolved)
}

/// Writes `text` to `path`, readable by its owner only, in a directory only
/// its owner may enter (when it creates it).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    crate::output::refuse_link(path)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
