//! Reading a config repository from disk.
//!
//! The layout (see the README): `hydrant.yaml`, `templates/**/*.yaml.hbs` with
//! partials in `templates/_partials/`, `environments/<env>/{environment,values,
//! pinned}.yaml`, and `rendered/<env>/` written by hydrant. This module reads
//! it from a [`Tree`] (a directory or a commit): it checks that environment
//! names are safe to use as paths and branch names.

use std::sync::Arc;

use crate::config::{self, EnvironmentConfig};
use crate::manifest::layout::TextDigests;
use crate::memo::{self, Memo};
use crate::names::{self, NameError, NameKind};
use crate::render::TemplateFile;
use crate::settings::SettingsFile;
use crate::spec::{Layer, LayerKind};
use crate::tree::{Kind, Tree, TreeError};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("`{path}` is not a hydrant config repository: it has no `environments/` directory")]
    NotARepo { path: String },
    #[error("unknown environment `{name}`; environments here: {}", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    UnknownEnvironment { name: String, known: Vec<String> },
    #[error(
        "`{name}` is not a valid environment name: use lowercase letters, digits, `-` and `_` (at most 63), starting with a letter or digit"
    )]
    BadEnvironmentName { name: String },
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
}

/// What one environment's directory holds.
#[derive(Debug, Clone)]
pub struct EnvironmentFiles {
    pub name: String,
    pub config: EnvironmentConfig,
    /// `environment.yaml` as read, for the inputs' digest.
    pub config_text: String,
    pub user: Layer,
    pub user_text: Option<String>,
    pub custom: Layer,
    pub custom_text: Option<String>,
}

/// What an environment's directory gives before its value files are
/// parsed: enough to decide its rollout and whether its inputs changed.
#[derive(Debug, Clone)]
pub enum KnownEnvironment {
    /// Known from the memo: its files were not read.
    Memo(memo::Environment),
    /// Its files, read.
    Read(EnvironmentTexts),
}

impl KnownEnvironment {
    pub fn config(&self) -> &EnvironmentConfig {
        match self {
            KnownEnvironment::Memo(m) => &m.config,
            KnownEnvironment::Read(t) => &t.config,
        }
    }

    pub fn config_mut(&mut self) -> &mut EnvironmentConfig {
        match self {
            KnownEnvironment::Memo(m) => &mut m.config,
            KnownEnvironment::Read(t) => &mut t.config,
        }
    }

    /// The digests of its files, as the inputs' digest counts them.
    pub fn digests(&self) -> std::borrow::Cow<'_, TextDigests> {
        match self {
            KnownEnvironment::Memo(m) => std::borrow::Cow::Borrowed(&m.digests),
            KnownEnvironment::Read(t) => std::borrow::Cow::Owned(t.digests()),
        }
    }
}

/// What one environment's directory holds, its value files not yet parsed.
#[derive(Debug, Clone)]
pub struct EnvironmentTexts {
    pub name: String,
    pub config: EnvironmentConfig,
    /// `environment.yaml` as read, for the inputs' digest.
    pub config_text: String,
    /// `values.yaml`, if there is one.
    pub user_text: Option<String>,
    /// `pinned.yaml`, if there is one.
    pub custom_text: Option<String>,
}

impl EnvironmentTexts {
    /// The digests of the files, as the inputs' digest counts them.
    pub fn digests(&self) -> TextDigests {
        TextDigests::of(
            &self.config_text,
            self.user_text.as_deref(),
            self.custom_text.as_deref(),
        )
    }

    /// Parses the value files into layers.
    pub fn parse(self) -> Result<EnvironmentFiles, RepoError> {
        let dir = format!("environments/{}", self.name);
        let layer = |file: &str, kind: LayerKind, text: Option<&str>| -> Result<Layer, RepoError> {
            let rel = format!("{dir}/{file}");
            match text {
                Some(text) => Ok(Layer::parse(kind, &rel, text)?),
                None => Ok(Layer::empty(kind, &rel)),
            }
        };
        let user = layer("values.yaml", LayerKind::User, self.user_text.as_deref())?;
        let custom = layer(
            "pinned.yaml",
            LayerKind::Custom,
            self.custom_text.as_deref(),
        )?;
        Ok(EnvironmentFiles {
            name: self.name,
            config: self.config,
            config_text: self.config_text,
            user,
            user_text: self.user_text,
            custom,
            custom_text: self.custom_text,
        })
    }
}

pub struct ConfigRepo {
    tree: Arc<dyn Tree>,
    /// What earlier runs read from the repository's directories, by their
    /// git ids (see [`crate::memo`]).
    memo: Arc<Memo>,
}

/// Environment names become directory and branch names: keep them plain.
/// A narrowing of the rule of [`names`] (lowercase, no `.`, at most 63).
pub fn valid_environment_name(name: &str) -> bool {
    names::is_valid(name)
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl ConfigRepo {
    /// `shown` names the repository in errors (a path or a commit); `memo`
    /// says what earlier runs read from its directories.
    pub fn open(
        tree: Arc<dyn Tree>,
        shown: &str,
        memo: Arc<Memo>,
    ) -> Result<ConfigRepo, RepoError> {
        if tree.kind("environments") != Some(Kind::Dir) {
            return Err(RepoError::NotARepo {
                path: shown.to_string(),
            });
        }
        Ok(ConfigRepo { tree, memo })
    }

    /// What earlier runs read from the repository's directories.
    pub fn memo(&self) -> &Arc<Memo> {
        &self.memo
    }

    pub fn tree(&self) -> &Arc<dyn Tree> {
        &self.tree
    }

    fn read(&self, rel: &str) -> Result<Option<String>, RepoError> {
        Ok(self.tree.read(rel)?)
    }

    pub fn settings(&self) -> Result<SettingsFile, RepoError> {
        match self.read(config::SETTINGS_FILE)? {
            Some(text) => Ok(SettingsFile::parse(
                std::path::Path::new(config::SETTINGS_FILE),
                &text,
                false,
            )?),
            None => Ok(SettingsFile::empty(std::path::Path::new(
                config::SETTINGS_FILE,
            ))),
        }
    }

    /// Every environment: the directories of `environments/` holding an
    /// `environment.yaml`, sorted.
    pub fn environment_names(&self) -> Result<Vec<String>, RepoError> {
        let mut names = Vec::new();
        for (name, kind) in self.tree.list("environments")? {
            if kind == Kind::Dir
                && self
                    .tree
                    .kind(&format!("environments/{name}/environment.yaml"))
                    == Some(Kind::File)
            {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Checks that `name` is a known environment.
    pub fn check_environment(&self, name: &str, known: &[String]) -> Result<(), RepoError> {
        if !valid_environment_name(name) {
            return Err(RepoError::BadEnvironmentName {
                name: name.to_string(),
            });
        }
        if !known.iter().any(|k| k == name) {
            return Err(RepoError::UnknownEnvironment {
                name: name.to_string(),
                known: known.to_vec(),
            });
        }
        Ok(())
    }

    /// Reads and parses an environment's `environment.yaml` alone.
    pub fn environment_config(&self, name: &str) -> Result<EnvironmentConfig, RepoError> {
        if !valid_environment_name(name) {
            return Err(RepoError::BadEnvironmentName {
                name: name.to_string(),
            });
        }
        let file = format!("environments/{name}/environment.yaml");
        let text = self
            .read(&file)?
            .ok_or_else(|| RepoError::UnknownEnvironment {
                name: name.to_string(),
                known: Vec::new(),
            })?;
        Ok(config::parse_required(&file, &text)?)
    }

    /// `rollout:` in `hydrant.yaml`, checked against every environment's
    /// name and labels; `None` without one.
    pub fn rollout(
        &self,
        settings: &SettingsFile,
        environments: &[String],
    ) -> Result<Option<crate::rollout::Rollout>, RepoError> {
        if settings.get("rollout").is_none() {
            return Ok(None);
        }
        let text = self.read(config::SETTINGS_FILE)?.unwrap_or_default();
        let labelled: Vec<(String, std::collections::BTreeMap<String, String>)> = environments
            .iter()
            .map(|name| {
                let labels = self
                    .known_environment(name)
                    .map(|k| k.config().labels.clone())
                    .or_else(|_| self.environment_config(name).map(|c| c.labels))
                    .unwrap_or_default();
                (name.clone(), labels)
            })
            .collect();
        Ok(crate::rollout::config::parse(
            config::SETTINGS_FILE,
            &text,
            &labelled,
        )?)
    }

    /// Reads and parses an environment's files.
    pub fn environment(&self, name: &str) -> Result<EnvironmentFiles, RepoError> {
        self.environment_texts(name)?.parse()
    }

    /// Reads an environment's files and parses its `environment.yaml` alone:
    /// enough for the inputs' digest, which hashes the value files' text.
    pub fn environment_texts(&self, name: &str) -> Result<EnvironmentTexts, RepoError> {
        if !valid_environment_name(name) {
            return Err(RepoError::BadEnvironmentName {
                name: name.to_string(),
            });
        }
        let dir = format!("environments/{name}");
        let config_file = format!("{dir}/environment.yaml");
        let config_text =
            self.read(&config_file)?
                .ok_or_else(|| RepoError::UnknownEnvironment {
                    name: name.to_string(),
                    known: self.environment_names().unwrap_or_default(),
                })?;
        let config: EnvironmentConfig = config::parse_required(&config_file, &config_text)?;
        // The channel and its release become file names (`channel mirror`,
        // a channel directory) and URL segments (the deploy server).
        names::check(
            NameKind::Channel,
            &config.channel,
            &format!("{config_file}, key `channel`"),
        )?;
        if let Some(release) = &config.release {
            names::check(
                NameKind::Release,
                release,
                &format!("{config_file}, key `release`"),
            )?;
        }
        Ok(EnvironmentTexts {
            name: name.to_string(),
            config,
            config_text,
            user_text: self.read(&format!("{dir}/values.yaml"))?,
            custom_text: self.read(&format!("{dir}/pinned.yaml"))?,
        })
    }

    /// An environment's settings and the digests of its files: from the
    /// memo when its directory is one read before, else read (and kept in
    /// the memo, when the directory has a git id and holds no link: a
    /// link's target may change while the directory's id does not).
    pub fn known_environment(&self, name: &str) -> Result<KnownEnvironment, RepoError> {
        let dir = format!("environments/{name}");
        let id = valid_environment_name(name)
            .then(|| self.tree.dir_id(&dir))
            .flatten();
        if let Some(entry) = id.as_deref().and_then(|id| self.memo.environment(id)) {
            return Ok(KnownEnvironment::Memo(entry));
        }
        let texts = self.environment_texts(name)?;
        if let Some(id) = id
            && !self.tree.holds_link(&dir)
        {
            let entry = memo::Environment {
                config: texts.config.clone(),
                digests: texts.digests(),
            };
            self.memo.keep_environment(&id, entry);
        }
        Ok(KnownEnvironment::Read(texts))
    }

    /// Every template below `templates/`, by path relative to it.
    pub fn templates(&self) -> Result<Vec<TemplateFile>, RepoError> {
        let mut files = Vec::new();
        self.collect_templates("templates", &mut files)?;
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    fn collect_templates(&self, dir: &str, out: &mut Vec<TemplateFile>) -> Result<(), RepoError> {
        for (entry, kind) in self.tree.list(dir)? {
            let child = format!("{dir}/{entry}");
            if kind == Kind::Dir {
                self.collect_templates(&child, out)?;
                continue;
            }
            let name = child
                .strip_prefix("templates/")
                .unwrap_or(&child)
                .to_string();
            let wanted = name.ends_with(".yaml.hbs")
                || (name.starts_with("_partials/") && name.ends_with(".hbs"));
            if !wanted {
                continue;
            }
            if let Some(text) = self.read(&child)? {
                out.push(TemplateFile { name, text });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_must_be_plain() {
        for ok in ["dev", "prod-eu-1", "tenant_42"] {
            assert!(valid_environment_name(ok), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "/abs",
            "Dev",
            "a/b",
            "a\0b",
            "-x",
            ".hidden",
            &"x".repeat(64),
        ] {
            assert!(!valid_environment_name(bad), "{bad:?}");
        }
    }
}
