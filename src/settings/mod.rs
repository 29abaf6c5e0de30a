//! Settings, resolved once: the settings file (`hydrant.yaml` at the config
//! repository's root, or the file `--config` names), read by one reader into
//! one type ([`SettingsFile`]) for the command line and for the repository
//! alike, and the precedence flag > env > file > default.
//!
//! Every long flag of every command can be set there under the camelCase of
//! its name (`--shutdown-timeout 2m` is `shutdownTimeout: 2m`; a list flag
//! takes a YAML list). The file's values become the flags' defaults, so clap
//! still resolves the flag first and its `HYDRANT_*` twin second: the
//! precedence is flag > env > file > default, and `hydrant config show` tells
//! where each value came from. A relative path in the file (a flag whose
//! value is a FILE or DIR) is relative to the file's directory.
//!
//! Secrets never go in the file: only the paths of the files holding them.
//!
//! Who may set what is the trust boundary of the config repository: its own
//! `hydrant.yaml` is edited by pull requests, so it may hold only the settings
//! of [`REPOSITORY_SETTINGS`]. Every other setting (credential files, URLs,
//! CA files, where hydrant reads or writes) is an operator's: a flag, its
//! `HYDRANT_*` variable, or the file `--config` names.

mod duration;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, Command};

use crate::auth::{self, CredentialError};
use crate::config::{self, ConfigError, FlatSetting};

pub use duration::{parse_duration, parse_interval};

/// Keys of `hydrant.yaml` the repository reads itself, not a flag.
const REPOSITORY_KEYS: &[&str] = &["channelSource", "rollout", "unknownKeys"];
/// Blocks only the operator's file (the one `--config` names) may hold, not
/// a flag: `credentials` binds the names gates use to token files and the
/// origins each token may be sent to ([`crate::gates::Credentials`]).
const OPERATOR_KEYS: &[&str] = &[crate::gates::CREDENTIALS_KEY];
/// Flags that are not settings.
const NOT_SETTINGS: &[&str] = &["help", "version", "config"];

/// The settings the config repository's own `hydrant.yaml` may hold: none
/// of them decides where a credential is read from or sent, which identity
/// acts, or where hydrant reads or writes outside the repository. Every
/// setting not listed is operator-only (fail closed: a new flag is the
/// operator's until it is listed here).
const REPOSITORY_SETTINGS: &[&str] = &[
    "all",
    "authorEmail",
    "authorName",
    "base",
    "channelBackoffMs",
    "channelMaxBytes",
    "channelPollInterval",
    "channelRetries",
    "channelTimeout",
    "dryRun",
    "env",
    "exitCode",
    "forge",
    "forgeBackoffMs",
    "forgeMaxWait",
    "forgeTimeout",
    "gitTimeout",
    "interval",
    "listen",
    "lockTimeout",
    "logFormat",
    "logLevel",
    "name",
    "once",
    "output",
    "release",
    "shutdownTimeout",
];

/// The operator's settings, listed so that every flag is classified on
/// purpose (a unit test checks each flag is in exactly one list): credential
/// files, URLs, CA and key files, directories, and the identities a
/// credential acts as.
#[cfg(test)]
const OPERATOR_SETTINGS: &[&str] = &[
    "allowMassDeletion",
    "by",
    "caFile",
    "channel",
    "channelCacheDir",
    "channelPublicKey",
    "channelTokenFile",
    "force",
    "forgeRepository",
    "from",
    "giteaTokenFile",
    "giteaUrl",
    "githubApiUrl",
    "githubAppId",
    "githubAppKeyFile",
    "githubInstallationId",
    "githubTokenFile",
    "githubWebhookSecretFile",
    "gitlabOauth",
    "gitlabTokenFile",
    "gitlabUrl",
    "gitlabWebhookTokenFile",
    "gitTokenFile",
    "gitUsername",
    "layer",
    "licenseFile",
    "maxNewPullRequestsPerHour",
    "maxOpenPullRequests",
    "noUi",
    "out",
    "reason",
    "ref",
    "refresh",
    "repo",
    "secretsOut",
    "serve",
    "sshKey",
    "stateDir",
    "to",
    "triggerTokenFile",
    "uiTokenFile",
    "wave",
    "workDir",
];

/// Whether the config repository's own `hydrant.yaml` may set `key`.
fn repository_may_set(key: &str) -> bool {
    REPOSITORY_SETTINGS.contains(&key) || REPOSITORY_KEYS.contains(&key)
}

/// A settings file as read.
#[derive(Debug, Clone)]
pub struct SettingsFile {
    pub path: PathBuf,
    pub settings: Vec<FlatSetting>,
    /// Named by `--config` or `HYDRANT_CONFIG` (the operator's), rather than
    /// found in the repository (which a pull request edits).
    pub operator: bool,
    /// `credentials`: bound only in the operator's file.
    pub credentials: crate::gates::Credentials,
}

impl SettingsFile {
    /// Reads a settings file's text: the one reader of `hydrant.yaml`, for
    /// the command line and for the repository it configures. `operator`
    /// says whether `--config` named it.
    pub fn parse(path: &Path, text: &str, operator: bool) -> Result<SettingsFile, ConfigError> {
        let settings = config::parse_flat(&path.display().to_string(), text)?;
        let credentials = if settings
            .iter()
            .any(|s| s.key == crate::gates::CREDENTIALS_KEY)
        {
            crate::gates::Credentials::parse(path, text, operator)?
        } else {
            crate::gates::Credentials::default()
        };
        Ok(SettingsFile {
            path: path.to_path_buf(),
            settings,
            operator,
            credentials,
        })
    }

    /// A file that sets nothing.
    pub fn empty(path: &Path) -> SettingsFile {
        SettingsFile {
            path: path.to_path_buf(),
            settings: Vec::new(),
            operator: false,
            credentials: Default::default(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&FlatSetting> {
        self.settings.iter().find(|s| s.key == key)
    }

    /// `channelSource`, the one setting the repository reads itself: a path
    /// inside the repository, never a URL (the repository may not choose
    /// where the operator's license or token is sent).
    pub fn channel_source(&self) -> Result<Option<String>, ConfigError> {
        let Some(setting) = self.get("channelSource") else {
            return Ok(None);
        };
        let error = |message: String| ConfigError {
            file: self.path.display().to_string(),
            line: Some(setting.line),
            message: format!("`channelSource`: {message}"),
        };
        let [path] = setting.values.as_slice() else {
            return Err(error("expected one path, such as `channels`".to_string()));
        };
        config::check_path_in_repository(path).map_err(error)?;
        Ok(Some(path.clone()))
    }
}

impl SettingsFile {
    /// `unknownKeys: error | warn`: what a key of an environment's values
    /// that nothing knows does, where `environment.yaml` does not say.
    pub fn unknown_keys(&self) -> Result<Option<crate::spec::UnknownKeys>, ConfigError> {
        let Some(setting) = self.get("unknownKeys") else {
            return Ok(None);
        };
        match setting.values.as_slice() {
            [v] if crate::spec::UnknownKeys::parse(v).is_some() => {
                Ok(crate::spec::UnknownKeys::parse(v))
            }
            _ => Err(ConfigError {
                file: self.path.display().to_string(),
                line: Some(setting.line),
                message: "`unknownKeys`: expected `error` or `warn`".to_string(),
            }),
        }
    }
}

/// Where channel specs come from: `--channel` (or `HYDRANT_CHANNEL`), else
/// the repository's `channelSource`, else [`DEFAULT_CHANNEL_SOURCE`].
pub fn channel_source(flag_or_env: Option<String>, file: Option<String>) -> String {
    flag_or_env
        .or(file)
        .unwrap_or_else(|| DEFAULT_CHANNEL_SOURCE.to_string())
}

/// Where channel specs are read from when nothing else says.
pub const DEFAULT_CHANNEL_SOURCE: &str = "channels";

/// `shutdown-timeout` → `shutdownTimeout`.
pub fn camel(long: &str) -> String {
    let mut out = String::with_capacity(long.len());
    let mut upper = false;
    for c in long.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of `--name VALUE` or `--name=VALUE` on the command line.
fn flag_value(args: &[OsString], name: &str) -> Option<String> {
    let long = format!("--{name}");
    let with_eq = format!("--{name}=");
    let mut it = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(arg) = it.next() {
        if arg == "--" {
            return None;
        }
        if arg == long {
            return it.next().map(|v| v.into_owned());
        }
        if let Some(v) = arg.strip_prefix(&with_eq) {
            return Some(v.to_string());
        }
    }
    None
}

/// Where the settings file is: `--config` or `HYDRANT_CONFIG` (which must
/// exist), else `hydrant.yaml` in `--repo` when that is a local directory.
fn locate(args: &[OsString]) -> Option<(PathBuf, bool)> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(path) = flag_value(args, "config").or_else(|| env("HYDRANT_CONFIG")) {
        return Some((PathBuf::from(path), true));
    }
    let repo = flag_value(args, "repo")
        .or_else(|| env("HYDRANT_REPO"))
        .unwrap_or_else(|| ".".to_string());
    if repo.contains("://") {
        return None;
    }
    let path = Path::new(&repo).join(config::SETTINGS_FILE);
    path.is_file().then_some((path, false))
}

/// Reads the settings file, if there is one.
pub fn load(args: &[OsString]) -> anyhow::Result<Option<SettingsFile>> {
    let Some((path, explicit)) = locate(args) else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("cannot read the settings file `{}`: {e}", path.display()),
    };
    Ok(Some(SettingsFile::parse(&path, &text, explicit)?))
}

/// The keys an argument answers to in the file.
fn keys_of(arg: &Arg) -> Vec<String> {
    let mut names: Vec<&str> = arg.get_long().into_iter().collect();
    names.extend(arg.get_all_aliases().unwrap_or_default());
    names
        .into_iter()
        .filter(|n| !NOT_SETTINGS.contains(n))
        .map(camel)
        .collect()
}

/// Every key the file may hold: the flags of every command, and the
/// repository's own keys.
fn known_keys(cmd: &Command, into: &mut BTreeSet<String>) {
    for arg in cmd.get_arguments() {
        into.extend(keys_of(arg));
    }
    for sub in cmd.get_subcommands() {
        known_keys(sub, into);
    }
}

/// The argument a key of the file sets, in any command.
fn arg_of(cmd: &Command, key: &str) -> Option<Arg> {
    cmd.get_arguments()
        .find(|arg| keys_of(arg).iter().any(|k| k == key))
        .cloned()
        .or_else(|| cmd.get_subcommands().find_map(|sub| arg_of(sub, key)))
}

/// Refuses keys that are no setting, and, in the repository's own file,
/// operator settings, naming the file, line and key.
pub fn check(cmd: &Command, file: &SettingsFile) -> Result<(), ConfigError> {
    let mut known: BTreeSet<String> = REPOSITORY_KEYS
        .iter()
        .chain(OPERATOR_KEYS)
        .map(|k| k.to_string())
        .collect();
    known_keys(cmd, &mut known);
    for s in &file.settings {
        if known.contains(&s.key) && !file.operator && !repository_may_set(&s.key) {
            let how = arg_of(cmd, &s.key)
                .map(|arg| {
                    let flag = arg.get_long().map(|l| format!("`--{l}`"));
                    let env = arg.get_env().map(|e| format!("`{}`", e.to_string_lossy()));
                    [flag, env]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" or ")
                })
                .filter(|how| !how.is_empty())
                .unwrap_or_else(|| "a flag".to_string());
            return Err(ConfigError {
                file: file.path.display().to_string(),
                line: Some(s.line),
                message: format!(
                    "`{}` is an operator setting: it says where a credential is read or sent, who acts, or where hydrant reads or writes, and the repository's own `hydrant.yaml` (edited by pull requests) may not set it\nhint: pass it with {how}, or in the file `--config` names",
                    s.key
                ),
            });
        }
        if !known.contains(&s.key) {
            let hint = match crate::config::closest(&s.key, known.iter().map(String::as_str)) {
                Some(k) => format!("; did you mean `{k}`?"),
                None => String::new(),
            };
            return Err(ConfigError {
                file: file.path.display().to_string(),
                line: Some(s.line),
                message: format!(
                    "`{}` is not a setting{hint} (settings are the camelCase names of `hydrant` flags; secrets go in files named by `…File` settings)",
                    s.key
                ),
            });
        }
    }
    Ok(())
}

/// Whether an argument's values are paths.
fn takes_path(arg: &Arg) -> bool {
    arg.get_value_names()
        .is_some_and(|names| names.iter().any(|n| matches!(n.as_str(), "FILE" | "DIR")))
}

/// Makes the file's values the defaults of the flags they name, in every command.
pub fn apply(cmd: Command, file: &SettingsFile) -> Command {
    let base = file.path.parent().unwrap_or(Path::new(""));
    cmd.mut_args(|arg| {
        let Some(setting) = keys_of(&arg).iter().find_map(|k| file.get(k)) else {
            return arg;
        };
        let values: Vec<String> = if takes_path(&arg) {
            setting
                .values
                .iter()
                .map(|v| base.join(v).display().to_string())
                .collect()
        } else {
            setting.values.clone()
        };
        // A value from the file fulfils a required flag.
        arg.default_values(values)
            .required(false)
            .required_unless_present(clap::builder::Resettable::<clap::Id>::Reset)
    })
    .mut_subcommands(|sub| apply(sub, file))
}

/// Where a resolved value came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Flag,
    Env,
    File,
    Default,
    Unset,
}

/// One setting as `hydrant config show` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Resolved {
    pub key: String,
    pub flag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    pub values: Vec<String>,
    pub source: Source,
    /// The line of the settings file, when the value came from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// For a value the command computes (a default that depends on another
    /// setting, or `auto`): what it was computed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derived: Option<String>,
}

/// The work directory a run uses: `--work-dir`, else one under the user's
/// cache directory that depends on `--repo` alone.
pub fn work_dir(flag: Option<&Path>, repo: &str) -> PathBuf {
    flag.map(Path::to_path_buf)
        .unwrap_or_else(|| crate::git::default_work_dir(repo))
}

/// Fills in the values a command computes for settings left to their
/// default, so that `config show` prints what a run would use rather than
/// nothing: the work directory (from `--repo`), the forge `auto` resolves to
/// (`forge`: the kind, or why it cannot be told), and the channel source
/// (the repository's `channelSource`, else [`DEFAULT_CHANNEL_SOURCE`]).
pub fn fill_derived(all: &mut [Resolved], forge: Result<String, String>) {
    let value = |all: &[Resolved], key: &str| {
        all.iter()
            .find(|r| r.key == key)
            .and_then(|r| r.values.first().cloned())
    };
    let repo = value(all, "repo").unwrap_or_else(|| ".".to_string());
    let local = !repo.contains("://") && Path::new(&repo).is_dir();
    for r in all.iter_mut() {
        match r.key.as_str() {
            "workDir" if r.values.is_empty() => {
                r.values = vec![work_dir(None, &repo).display().to_string()];
                r.source = Source::Default;
                r.derived = Some("from `--repo`".to_string());
            }
            "forge" if r.values.iter().all(|v| v == "auto") => match &forge {
                Ok(kind) => {
                    r.values = vec![kind.clone()];
                    r.derived = Some("`auto`, told by `--repo`".to_string());
                }
                Err(why) => r.derived = Some(format!("`auto`, but {why}")),
            },
            "channelCacheDir" if r.values.is_empty() => {
                r.values = vec![
                    crate::channel::http::default_cache_dir()
                        .display()
                        .to_string(),
                ];
                r.source = Source::Default;
            }
            "channel" if r.values.is_empty() => {
                let (source, derived) = repository_channel_source(&repo, local);
                r.values = vec![source];
                r.source = Source::Default;
                r.derived = Some(derived);
            }
            _ => {}
        }
    }
}

/// The channel source the repository at `repo` sets, and where it is set.
fn repository_channel_source(repo: &str, local: bool) -> (String, String) {
    let default = || {
        (
            DEFAULT_CHANNEL_SOURCE.to_string(),
            "no `--channel` and no `channelSource`".to_string(),
        )
    };
    if !local {
        return (
            DEFAULT_CHANNEL_SOURCE.to_string(),
            "unless `channelSource` in the base branch's hydrant.yaml says otherwise".to_string(),
        );
    }
    let path = Path::new(repo).join(config::SETTINGS_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return default();
    };
    let Ok(file) = SettingsFile::parse(&path, &text, false) else {
        return default();
    };
    match (file.channel_source(), file.get("channelSource")) {
        (Ok(Some(source)), Some(setting)) => (
            source,
            format!("`channelSource` in {}:{}", path.display(), setting.line),
        ),
        _ => default(),
    }
}

/// The settings of `cmd` as `matches` resolved them.
pub fn resolve(
    cmd: &Command,
    matches: &clap::ArgMatches,
    file: Option<&SettingsFile>,
) -> Vec<Resolved> {
    use clap::parser::ValueSource;
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let (Some(long), Some(key)) = (arg.get_long(), keys_of(arg).into_iter().next()) else {
            continue;
        };
        let id = arg.get_id().as_str();
        let values: Vec<String> = matches
            .get_raw(id)
            .map(|vs| vs.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let from_file = file.and_then(|f| keys_of(arg).iter().find_map(|k| f.get(k)));
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable) => Source::Env,
            Some(ValueSource::DefaultValue) if from_file.is_some() => Source::File,
            Some(_) => Source::Default,
            None => Source::Unset,
        };
        out.push(Resolved {
            line: from_file.filter(|_| source == Source::File).map(|s| s.line),
            key,
            flag: format!("--{long}"),
            env: arg.get_env().map(|e| e.to_string_lossy().into_owned()),
            values,
            source,
            derived: None,
        });
    }
    out
}

/// A setting's value that may not be used, and where it came from.
#[derive(Debug, thiserror::Error)]
#[error("the value of `--{flag}` (from {origin}) is refused")]
pub struct ValueError {
    pub flag: String,
    pub origin: String,
    #[source]
    pub source: CredentialError,
}

/// Whether an argument takes a base URL, to which paths are appended.
fn takes_base_url(arg: &Arg) -> bool {
    arg.get_value_names()
        .is_some_and(|names| names.iter().any(|n| n.as_str() == "URL"))
}

/// Refuses a credential inside any URL a setting holds (`--repo`,
/// `--channel`, forge URLs, whatever set it), and a query or fragment in a
/// base URL. The error shows the URL redacted. Checks `cmd` and the
/// subcommand `matches` chose.
pub fn check_values(
    cmd: &Command,
    matches: &clap::ArgMatches,
    file: Option<&SettingsFile>,
) -> Result<(), ValueError> {
    use clap::parser::ValueSource;
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        let Ok(Some(values)) = matches.try_get_raw(id) else {
            continue;
        };
        for value in values {
            let value = value.to_string_lossy();
            let checked = if takes_base_url(arg) {
                auth::check_base_url(&value)
            } else {
                auth::check_url(&value)
            };
            let Err(source) = checked else { continue };
            let origin = match matches.value_source(id) {
                Some(ValueSource::EnvVariable) => arg
                    .get_env()
                    .map(|e| format!("`{}`", e.to_string_lossy()))
                    .unwrap_or_default(),
                Some(ValueSource::DefaultValue) => file
                    .and_then(|f| {
                        let line = keys_of(arg).iter().find_map(|k| f.get(k))?.line;
                        Some(format!("`{}`, line {line}", f.path.display()))
                    })
                    .unwrap_or_else(|| "its default".to_string()),
                _ => "the command line".to_string(),
            };
            return Err(ValueError {
                flag: arg.get_long().unwrap_or(id).to_string(),
                origin,
                source,
            });
        }
    }
    if let Some((name, sub_matches)) = matches.subcommand()
        && let Some(sub) = cmd.find_subcommand(name)
    {
        check_values(sub, sub_matches, file)?;
    }
    Ok(())
}

/// A note for a clap error caused by a value from the settings file.
pub fn blame(error: &clap::Error, file: Option<&SettingsFile>) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(bad)) = error.get(ContextKind::InvalidValue) else {
        return None;
    };
    let setting = file?.settings.iter().find(|s| s.values.contains(bad))?;
    Some(format!(
        "note: `{}: {bad}` comes from `{}`, line {}",
        setting.key,
        file?.path.display(),
        setting.line
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn file(text: &str) -> SettingsFile {
        SettingsFile {
            path: PathBuf::from("/etc/hydrant/hydrant.yaml"),
            settings: config::parse_flat("hydrant.yaml", text).unwrap(),
            operator: true,
            credentials: Default::default(),
        }
    }

    /// The repository's own `hydrant.yaml`, found in `--repo`.
    fn repository_file(text: &str) -> SettingsFile {
        SettingsFile {
            path: PathBuf::from("repo/hydrant.yaml"),
            operator: false,
            ..file(text)
        }
    }

    /// Every argument of every command, with the keys it answers to.
    fn every_arg(cmd: &Command, out: &mut Vec<(String, Arg)>) {
        for arg in cmd.get_arguments() {
            for key in keys_of(arg) {
                out.push((key, arg.clone()));
            }
        }
        for sub in cmd.get_subcommands() {
            every_arg(sub, out);
        }
    }

    /// Whether an argument takes a file, a directory or a URL: by its type
    /// (`PathBuf`), its value name, or its name.
    fn takes_location(key: &str, arg: &Arg) -> bool {
        let path_typed = arg.get_value_parser().type_id() == std::any::TypeId::of::<PathBuf>()
            || arg.get_value_parser().type_id() == std::any::TypeId::of::<Option<PathBuf>>();
        let named = arg.get_value_names().is_some_and(|names| {
            names
                .iter()
                .any(|n| ["FILE", "DIR", "URL", "PATH"].iter().any(|k| n.contains(k)))
        });
        let help = arg
            .get_help()
            .map(|h| h.to_string().to_lowercase())
            .unwrap_or_default();
        path_typed
            || named
            || ["File", "Dir", "Url", "Key", "Path"]
                .iter()
                .any(|suffix| key.ends_with(suffix))
            || help.contains("url")
            || help.contains("server")
    }

    #[test]
    fn every_flag_is_classified_and_no_file_dir_or_url_flag_is_repository_settable() {
        let mut all = Vec::new();
        every_arg(&crate::cli::Cli::command(), &mut all);
        assert!(all.len() > 40, "{}", all.len());
        for (key, arg) in &all {
            let repository = REPOSITORY_SETTINGS.contains(&key.as_str());
            let operator = OPERATOR_SETTINGS.contains(&key.as_str());
            assert!(
                repository != operator,
                "`{key}` must be in exactly one of REPOSITORY_SETTINGS and OPERATOR_SETTINGS"
            );
            if takes_location(key, arg) {
                assert!(
                    operator && !repository_may_set(key),
                    "`{key}` takes a file, a directory or a URL: it must be operator-only"
                );
            }
        }
        // No stale names: each listed key is a flag.
        for key in REPOSITORY_SETTINGS.iter().chain(OPERATOR_SETTINGS) {
            assert!(all.iter().any(|(k, _)| k == key), "`{key}` is no flag");
        }
        // The ones the issue names, spelled out.
        for key in [
            "licenseFile",
            "channelTokenFile",
            "githubTokenFile",
            "githubAppKeyFile",
            "channel",
            "githubApiUrl",
            "gitlabUrl",
            "giteaUrl",
            "caFile",
            "repo",
            "stateDir",
            "workDir",
            "channelCacheDir",
            "sshKey",
            "channelPublicKey",
        ] {
            assert!(!repository_may_set(key), "{key}");
        }
    }

    #[test]
    fn the_repository_file_may_not_set_operator_settings() {
        let cmd = crate::cli::Cli::command();
        let err = check(
            &cmd,
            &repository_file("interval: 5m\nlicenseFile: /etc/passwd\n"),
        )
        .unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("repo/hydrant.yaml")
                && text.contains("`licenseFile` is an operator setting")
                && text.contains("`--license-file` or `HYDRANT_LICENSE_FILE`")
                && text.contains("hint:"),
            "{text}"
        );
        for text in [
            "channel: http://127.0.0.1:9/\n",
            "githubApiUrl: https://evil.example\n",
            "workDir: /tmp/x\n",
            "caFile: ca.pem\n",
        ] {
            assert!(check(&cmd, &repository_file(text)).is_err(), "{text}");
            check(&cmd, &file(text)).unwrap();
        }
        check(
            &cmd,
            &repository_file(
                "interval: 5m\nlisten: 0.0.0.0:9000\nchannelSource: mirror\nforge: github\n",
            ),
        )
        .unwrap();
    }

    #[test]
    fn the_repository_file_may_hold_a_rollout_block() {
        let cmd = crate::cli::Cli::command();
        let f = repository_file(
            "interval: 5m\nrollout:\n  waves:\n    - name: canary\n      environments: [dev]\n",
        );
        assert_eq!(f.get("rollout").map(|s| s.line), Some(2));
        check(&cmd, &f).unwrap();
        // Any other block is still refused, with its line.
        let err = config::parse_flat("hydrant.yaml", "rollouts:\n  waves: []\n").unwrap_err();
        assert_eq!(err.line, Some(1), "{err}");
    }

    fn values_of(argv: &[&str], env: Option<&str>) -> Result<(), ValueError> {
        let mut cmd = crate::cli::Cli::command();
        if let Some(value) = env {
            // An env twin's value, as clap would read it.
            cmd = cmd.mut_subcommand("reconcile", |sub| {
                sub.mut_arg("repo", |arg| arg.default_value(value.to_string()))
            });
        }
        let matches = cmd.clone().try_get_matches_from(argv).unwrap();
        check_values(&cmd, &matches, None)
    }

    #[test]
    fn credentials_in_any_url_setting_are_refused_without_echoing_them() {
        for argv in [
            &[
                "hydrant",
                "reconcile",
                "--repo",
                "https://x:s3cret@git.example.com/o/r",
            ][..],
            &[
                "hydrant",
                "render",
                "--all",
                "--channel",
                "https://license:s3cret@deploy.example.com",
            ],
            &[
                "hydrant",
                "reconcile",
                "--github-api-url",
                "https://s3cret@api.example.com",
            ],
            &[
                "hydrant",
                "reconcile",
                "--gitlab-url",
                "https://gitlab.example.com/?private_token=s3cret",
            ],
            &[
                "hydrant",
                "channel",
                "mirror",
                "--from",
                "http://u:s3cret@h/{channel}",
                "--to",
                "m",
            ],
        ] {
            let err = values_of(argv, None).unwrap_err();
            let chain = format!("{err}: {}", err.source);
            assert!(!chain.contains("s3cret"), "{chain}");
            assert!(
                chain.contains(&format!("`{}`", argv[argv.len() - 2])) || chain.contains("--from"),
                "{chain}"
            );
        }
        let err = values_of(&["hydrant", "reconcile"], Some("https://u:s3cret@h/o/r")).unwrap_err();
        assert!(err.to_string().contains("--repo"), "{err}");
        values_of(
            &[
                "hydrant",
                "reconcile",
                "--repo",
                "ssh://git@github.com/o/r.git",
            ],
            None,
        )
        .unwrap();
        values_of(
            &[
                "hydrant",
                "render",
                "--all",
                "--channel",
                "https://d.example.com/c/{channel}?r={release}",
            ],
            None,
        )
        .unwrap();
    }

    #[test]
    fn keys_are_camel_case_flag_names() {
        assert_eq!(camel("shutdown-timeout"), "shutdownTimeout");
        assert_eq!(camel("github-app-key-file"), "githubAppKeyFile");
        assert_eq!(camel("interval"), "interval");
    }

    #[test]
    fn the_config_flag_is_found_in_either_spelling() {
        assert_eq!(
            flag_value(&args(&["hydrant", "run", "--config", "a.yaml"]), "config"),
            Some("a.yaml".into())
        );
        assert_eq!(
            flag_value(&args(&["hydrant", "--config=b.yaml", "run"]), "config"),
            Some("b.yaml".into())
        );
        assert_eq!(
            flag_value(&args(&["hydrant", "run", "--", "--config", "x"]), "config"),
            None
        );
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line_and_a_suggestion() {
        let cmd = crate::cli::Cli::command();
        let err = check(&cmd, &file("interval: 5m\nshutdownTimout: 1m\n")).unwrap_err();
        assert_eq!(err.line, Some(2));
        let text = err.to_string();
        assert!(text.contains("did you mean `shutdownTimeout`"), "{text}");
        check(
            &cmd,
            &file("interval: 5m\nchannelSource: mirror\nlogFormat: json\n"),
        )
        .unwrap();
        let err = check(&cmd, &file("githubToken: ghp_secret\n")).unwrap_err();
        assert!(!err.to_string().contains("ghp_secret"), "{err}");
    }

    #[test]
    fn file_values_sit_between_env_and_default() {
        let f = file(
            "interval: 7m\nlisten: 0.0.0.0:9000\nenv: [dev, prod]\nlicenseFile: secrets/license\n",
        );
        let cmd = apply(crate::cli::Cli::command(), &f);
        let m = cmd
            .try_get_matches_from(["hydrant", "config", "show", "--listen", "127.0.0.1:1"])
            .unwrap();
        let (_, m) = m.subcommand().unwrap();
        let (_, m) = m.subcommand().unwrap();
        let cmd = crate::cli::Cli::command();
        let show = cmd
            .find_subcommand("config")
            .and_then(|c| c.find_subcommand("show"))
            .unwrap();
        let got = resolve(show, m, Some(&f));
        let find = |k: &str| got.iter().find(|r| r.key == k).unwrap();
        assert_eq!(find("interval").values, vec!["7m"]);
        assert_eq!(find("interval").source, Source::File);
        assert_eq!(find("interval").line, Some(1));
        assert_eq!(find("listen").values, vec!["127.0.0.1:1"]);
        assert_eq!(find("listen").source, Source::Flag);
        assert_eq!(find("env").values, vec!["dev", "prod"]);
        assert_eq!(
            find("licenseFile").values,
            vec!["/etc/hydrant/secrets/license"],
            "paths are relative to the file"
        );
        assert_eq!(find("shutdownTimeout").source, Source::Default);
        assert_eq!(find("workDir").source, Source::Unset);
    }

    #[test]
    fn the_channel_source_follows_flag_then_file_then_default() {
        assert_eq!(
            channel_source(Some("flag".into()), Some("mirror".into())),
            "flag"
        );
        assert_eq!(channel_source(None, Some("mirror".into())), "mirror");
        assert_eq!(channel_source(None, None), "channels");
        let parsed =
            SettingsFile::parse(Path::new("hydrant.yaml"), "# nothing yet\n", false).unwrap();
        assert_eq!(parsed.channel_source().unwrap(), None);
    }

    #[test]
    fn channel_source_in_the_repository_must_stay_inside_it() {
        let read = |text: &str| {
            SettingsFile::parse(Path::new("hydrant.yaml"), text, false)
                .and_then(|f| f.channel_source())
        };
        for (text, problem) in [
            ("channelSource: http://127.0.0.1:9/{channel}\n", "is a URL"),
            ("channelSource: https://u:s3cret@evil.example\n", "is a URL"),
            ("channelSource: file:///etc\n", "is a URL"),
            ("channelSource: /etc/hydrant\n", "is an absolute path"),
            (
                "channelSource: channels/../../etc\n",
                "leaves the repository",
            ),
            ("channelSource: ..\n", "leaves the repository"),
            ("channelSource: \"\"\n", "is empty"),
            ("channelSource: [a, b]\n", "expected one path"),
        ] {
            let err = read(text).unwrap_err();
            let shown = err.to_string();
            assert_eq!(err.line, Some(1), "{shown}");
            assert!(
                shown.contains("channelSource") && shown.contains(problem),
                "{text}: {shown}"
            );
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        for fine in ["channels", "vendor/channels/stable.yaml", "./mirror"] {
            let source = read(&format!("channelSource: {fine}\n")).unwrap();
            assert_eq!(source.as_deref(), Some(fine));
        }
    }
}
