//! Each environment's `environment.yaml`, and the YAML readers of settings
//! files (`hydrant.yaml` is read into one type by [`crate::settings`]).
//! Parsing is pure; the caller reads the files.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::yaml;

/// The file at the root of the config repository.
pub const SETTINGS_FILE: &str = "hydrant.yaml";
/// `environments/<env>/environment.yaml`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvironmentConfig {
    /// The release channel the environment follows.
    pub channel: String,
    /// A pinned release of the channel; wins over the channel's latest.
    #[serde(default, deserialize_with = "string_or_number")]
    pub release: Option<String>,
    /// The namespace the environment's resources go to.
    pub namespace: String,
    /// Allow credentials rendered literally into manifests (not recommended).
    #[serde(default)]
    pub allow_plaintext_secrets: bool,
    /// What a key of values.yaml or pinned.yaml that no template, channel or
    /// schema knows does: `error` (the default) or `warn`. When unset, the
    /// repository's `hydrant.yaml` decides.
    #[serde(default)]
    pub unknown_keys: Option<crate::spec::UnknownKeys>,
    /// Accept a channel spec older than the one last seen.
    #[serde(default)]
    pub allow_downgrade: bool,
    /// How this environment's pull requests are opened.
    #[serde(default)]
    pub pull_request: PullRequestSettings,
    /// Labels that rollout waves select environments by (`ring: canary`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How many of the environment's resources one delivery may delete: a
    /// number (`3`) or a percentage (`"25%"`); more than half by default.
    #[serde(default)]
    pub max_deletions: MaxDeletions,
    /// Deliver a change that deletes more resources than `maxDeletions`, or
    /// all of them.
    #[serde(default)]
    pub allow_mass_deletion: bool,
}

/// `maxDeletions:` in environment.yaml: how many of an environment's
/// resources one delivery may delete before it is refused. Deleting all of
/// them is refused whatever the limit, unless `allowMassDeletion` allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxDeletions {
    /// At most this many resources.
    Count(usize),
    /// At most this percentage (0 to 100) of the resources on the base branch.
    Percent(u8),
}

impl Default for MaxDeletions {
    /// Half of the resources.
    fn default() -> MaxDeletions {
        MaxDeletions::Percent(50)
    }
}

impl MaxDeletions {
    /// Whether deleting `removed` of `total` resources stays within the limit.
    pub fn allows(self, removed: usize, total: usize) -> bool {
        if total > 0 && removed >= total {
            return false;
        }
        match self {
            MaxDeletions::Count(n) => removed <= n,
            MaxDeletions::Percent(p) => removed * 100 <= usize::from(p) * total,
        }
    }
}

/// Who allowed a delivery to delete more resources than `maxDeletions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    /// `allowMassDeletion: true` in the environment's `environment.yaml`.
    Environment,
    /// `--allow-mass-deletion`, for one run.
    Run,
}

impl std::fmt::Display for Allowance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Allowance::Environment => "`allowMassDeletion: true` in `environment.yaml`",
            Allowance::Run => "`--allow-mass-deletion`",
        })
    }
}

impl std::fmt::Display for MaxDeletions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxDeletions::Count(n) => write!(f, "{n}"),
            MaxDeletions::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl<'de> Deserialize<'de> for MaxDeletions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MaxDeletions, D::Error> {
        const EXPECTED: &str =
            "expected a number of resources such as `3`, or a percentage such as \"25%\"";
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => n
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(MaxDeletions::Count)
                .ok_or_else(|| serde::de::Error::custom(EXPECTED)),
            serde_json::Value::String(s) => s
                .trim()
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<u8>().ok())
                .filter(|p| *p <= 100)
                .map(MaxDeletions::Percent)
                .ok_or_else(|| serde::de::Error::custom(EXPECTED)),
            _ => Err(serde::de::Error::custom(EXPECTED)),
        }
    }
}

/// Written as it is read: a number, or a percentage (`"25%"`).
impl serde::Serialize for MaxDeletions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MaxDeletions::Count(n) => s.serialize_u64(*n as u64),
            MaxDeletions::Percent(p) => s.serialize_str(&format!("{p}%")),
        }
    }
}

/// `pullRequest:` in environment.yaml.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PullRequestSettings {
    /// Labels set on a new pull request.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Users asked to review a new pull request.
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// Open as a draft.
    #[serde(default)]
    pub draft: bool,
    /// Merge by itself once required checks pass (dev may, prod waits).
    #[serde(default)]
    pub auto_merge: bool,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let id = match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(serde::de::Error::custom(
                "expected a release id such as \"0.62.1\"",
            ));
        }
    };
    check_release_id(&id).map_err(serde::de::Error::custom)?;
    Ok(Some(id))
}

/// Checks that `path` is a relative path inside the repository: not a URL,
/// not absolute, no `..` component, no control character.
pub fn check_path_in_repository(path: &str) -> Result<(), String> {
    let hint = "hint: give a path inside the repository, such as `channels`; a channel URL is the operator's, set with `--channel` or `HYDRANT_CHANNEL`";
    let scheme = path.split_once(':').is_some_and(|(s, _)| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    let problem = if path.trim().is_empty() {
        "is empty"
    } else if path.contains("://") || scheme {
        "is a URL"
    } else if path.starts_with(['/', '\\']) {
        "is an absolute path"
    } else if path.split(['/', '\\']).any(|part| part == "..") {
        "leaves the repository (`..`)"
    } else if path.chars().any(char::is_control) {
        "holds a control character"
    } else {
        return Ok(());
    };
    Err(format!(
        "`{}` {problem}; it must be a path inside the repository\n{hint}",
        crate::auth::redact_url(path).escape_debug()
    ))
}

/// A release id as pinned in `environment.yaml` or served as a channel's
/// `metadata.version`: a strict token, since it goes into commit trailers,
/// pull request titles, branch-free text and URLs.
pub fn check_release_id(id: &str) -> Result<(), String> {
    const MAX: usize = 128;
    let ok = !id.is_empty()
        && id.len() <= MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'_' | b'-'));
    if ok {
        return Ok(());
    }
    let mut shown: String = id
        .chars()
        .take(40)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if id.chars().count() > 40 {
        shown.push('…');
    }
    Err(format!(
        "release `{shown}` is not a release id: use 1 to {MAX} of the characters `0-9 A-Z a-z . + _ -`, such as `0.62.1`"
    ))
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{file}`{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

/// The closest known key to a misspelt one (at most three edits away).
pub(crate) fn closest<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

/// `; did you mean `namespace`?` for serde's ``unknown field `namespce`,
/// expected one of `channel`, `namespace`…``, when a field is close.
fn suggestion(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return String::new();
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return String::new();
    };
    let known = expected.split('`').skip(1).step_by(2);
    match closest(field, known) {
        Some(k) => format!("; did you mean `{k}`?"),
        None => String::new(),
    }
}

/// The line a YAML error points at, with a caret under its column (a
/// credential's value left out).
fn excerpt(text: &str, e: &yaml::YamlError) -> String {
    yaml::excerpt(text, e.line, e.col, &crate::render::is_secret_key)
}

fn invalid_yaml(file: &str, text: &str, e: &yaml::YamlError) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        line: Some(e.line),
        message: format!(
            "invalid YAML at column {}: {}{}",
            e.col,
            e.message,
            excerpt(text, e)
        ),
    }
}

/// Parses a YAML settings file into `T`, naming the file, line and key on error.
pub fn parse<T: DeserializeOwned + Default>(file: &str, text: &str) -> Result<T, ConfigError> {
    parse_required(file, text).or_else(|e| {
        if e.message == EMPTY {
            Ok(T::default())
        } else {
            Err(e)
        }
    })
}

const EMPTY: &str = "the file is empty";

/// Like [`parse`], for files that must say something.
pub fn parse_required<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, ConfigError> {
    parse_located(file, text).map(|(value, _)| value)
}

/// The line of every key and list item of a document, by its path (a list
/// item's segment is its index).
pub type Lines = HashMap<Vec<String>, usize>;

/// Like [`parse_required`], also giving the line of every key and list item,
/// for checks made after parsing that name a line.
pub fn parse_located<T: DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<(T, Lines), ConfigError> {
    let error = |line: Option<usize>, message: String| ConfigError {
        file: file.to_string(),
        line,
        message,
    };
    let node = yaml::parse_single(text)
        .map_err(|e| invalid_yaml(file, text, &e))?
        .ok_or_else(|| error(None, EMPTY.to_string()))?;
    let mut lines = Lines::new();
    let value = yaml::to_value(&node, &mut |path, line| {
        lines.insert(path.clone(), line);
    })
    .map_err(|e| error(Some(e.line), format!("{}{}", e.message, excerpt(text, &e))))?;
    yaml::add_item_lines(&node, &mut lines);
    let parsed = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path: Vec<String> = e
            .path()
            .iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                _ => None,
            })
            .collect();
        let line = (0..=path.len())
            .rev()
            .find_map(|n| lines.get(&path[..n]).copied());
        let key = if path.is_empty() {
            String::new()
        } else {
            format!("`{}`: ", yaml::display_path(&path))
        };
        let message = e.inner().to_string();
        let hint = suggestion(&message);
        error(line.or(Some(node.line)), format!("{key}{message}{hint}"))
    })?;
    Ok((parsed, lines))
}

/// One top-level key of a settings file, as text, with its line.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatSetting {
    pub key: String,
    /// One value for a scalar, one per item for a list.
    pub values: Vec<String>,
    pub line: usize,
}

/// Top-level keys of `hydrant.yaml` that hold a block of their own, read by
/// their module rather than as a flag's value: `rollout` ([`crate::rollout`])
/// and, in the operator's file only, `credentials` ([`crate::gates`]).
pub const BLOCKS: &[&str] = &["rollout", "credentials"];

/// Reads a settings file whose top-level keys each hold a scalar or a list of
/// scalars: the form of command-line settings in `hydrant.yaml`.
pub fn parse_flat(file: &str, text: &str) -> Result<Vec<FlatSetting>, ConfigError> {
    let error = |line: Option<usize>, message: String| ConfigError {
        file: file.to_string(),
        line,
        message,
    };
    let Some(node) = yaml::parse_single(text).map_err(|e| invalid_yaml(file, text, &e))? else {
        return Ok(Vec::new());
    };
    let yaml::NodeKind::Map(entries) = &node.kind else {
        return Err(error(
            Some(node.line),
            "expected a mapping of settings, such as `interval: 5m`".to_string(),
        ));
    };
    let scalar = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        if BLOCKS.contains(&key.as_str()) {
            // Read by its own module, from the same text.
            out.push(FlatSetting {
                key: key.clone(),
                values: Vec::new(),
                line: value.line,
            });
            continue;
        }
        let v = yaml::to_value(value, &mut |_, _| {})
            .map_err(|e| error(Some(e.line), format!("{}{}", e.message, excerpt(text, &e))))?;
        let values = match &v {
            serde_json::Value::Array(items) => items.iter().map(scalar).collect(),
            other => scalar(other).map(|s| vec![s]),
        };
        let values = values.ok_or_else(|| {
            error(
                Some(value.line),
                format!("`{key}`: expected a value or a list of values"),
            )
        })?;
        out.push(FlatSetting {
            key: key.clone(),
            values,
            line: value.line,
        });
    }
    out.sort_by_key(|s| s.line);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_file_parses() {
        let c: EnvironmentConfig = parse_required(
            "e.yaml",
            "channel: stable\nnamespace: wandb\nrelease: 0.62\n",
        )
        .unwrap();
        assert_eq!(c.channel, "stable");
        assert_eq!(c.release.as_deref(), Some("0.62"));
        assert!(!c.allow_plaintext_secrets);
    }

    #[test]
    fn a_typo_names_file_line_and_key() {
        let err = parse_required::<EnvironmentConfig>(
            "environments/dev/environment.yaml",
            "channel: stable\nnamespace: x\nchanel: canary\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("environments/dev/environment.yaml") && text.contains("chanel"),
            "{text}"
        );
    }

    #[test]
    fn a_misspelt_field_suggests_the_closest_one() {
        let err = parse_required::<EnvironmentConfig>(
            "environments/dev/environment.yaml",
            "channel: stable\nnamespce: x\n",
        )
        .unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        assert!(
            err.to_string().ends_with("; did you mean `namespace`?"),
            "{err}"
        );
        let err = parse_required::<EnvironmentConfig>(
            "e.yaml",
            "channel: stable\nnamespace: x\npullRequest:\n  autoMerg: true\n",
        )
        .unwrap_err();
        assert_eq!(err.line, Some(4), "{err}");
        assert!(
            err.to_string().contains("did you mean `autoMerge`?"),
            "{err}"
        );
        let err = parse_required::<EnvironmentConfig>(
            "e.yaml",
            "channel: stable\nnamespace: x\nsomethingElse: 1\n",
        )
        .unwrap_err();
        assert!(!err.to_string().contains("did you mean"), "{err}");
    }

    #[test]
    fn a_wrong_type_names_the_key_and_line() {
        let err = parse_required::<EnvironmentConfig>(
            "e.yaml",
            "channel: stable\nnamespace: x\nallowPlaintextSecrets: maybe\n",
        )
        .unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        assert!(err.to_string().contains("allowPlaintextSecrets"), "{err}");
    }

    #[test]
    fn a_release_pin_that_is_not_a_strict_token_is_refused() {
        for pin in [
            "\"1.0.0\\nHydrant-Environment: prod\"",
            "\"../../etc\"",
            "\"1.0 0\"",
            "\"a/b\"",
            "\"\"",
        ] {
            let text = format!("channel: stable\nnamespace: x\nrelease: {pin}\n");
            let err = parse_required::<EnvironmentConfig>("e.yaml", &text).unwrap_err();
            assert_eq!(err.line, Some(3), "{err}");
            assert!(err.to_string().contains("not a release id"), "{err}");
            assert!(!err.to_string().contains('\n'), "one line: {err}");
        }
        for fine in ["0.62.1", "1.0.0-rc.1+build_7", "0.62"] {
            let text = format!("channel: stable\nnamespace: x\nrelease: {fine}\n");
            parse_required::<EnvironmentConfig>("e.yaml", &text).unwrap();
        }
    }

    #[test]
    fn max_deletions_is_a_number_or_a_percentage_and_never_allows_all() {
        let parse = |v: &str| {
            parse_required::<EnvironmentConfig>(
                "e.yaml",
                &format!("channel: stable\nnamespace: x\nmaxDeletions: {v}\n"),
            )
            .map(|c| c.max_deletions)
        };
        assert_eq!(parse("3"), Ok(MaxDeletions::Count(3)));
        assert_eq!(parse("\"25%\""), Ok(MaxDeletions::Percent(25)));
        for bad in ["-1", "\"150%\"", "\"a lot\"", "2.5", "[1]"] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.line, Some(3), "{bad}: {err}");
            assert!(err.to_string().contains("`maxDeletions`"), "{bad}: {err}");
        }
        let half = MaxDeletions::default();
        assert!(half.allows(5, 10) && !half.allows(6, 10));
        assert!(half.allows(0, 0) && !half.allows(1, 1));
        assert!(!MaxDeletions::Percent(100).allows(4, 4));
        assert!(MaxDeletions::Percent(100).allows(3, 4));
        assert!(MaxDeletions::Count(2).allows(2, 3) && !MaxDeletions::Count(3).allows(3, 3));
        assert!(!MaxDeletions::Count(0).allows(1, 100));
    }

    #[test]
    fn flat_settings_keep_their_lines_and_read_lists() {
        let got = parse_flat(
            "hydrant.yaml",
            "# daemon\ninterval: 5m\nenv: [dev, prod]\ndryRun: true\nforgeMaxWait: 30\n",
        )
        .unwrap();
        let flat: Vec<(&str, Vec<&str>, usize)> = got
            .iter()
            .map(|s| {
                (
                    s.key.as_str(),
                    s.values.iter().map(String::as_str).collect(),
                    s.line,
                )
            })
            .collect();
        assert_eq!(
            flat,
            vec![
                ("interval", vec!["5m"], 2),
                ("env", vec!["dev", "prod"], 3),
                ("dryRun", vec!["true"], 4),
                ("forgeMaxWait", vec!["30"], 5),
            ]
        );
        let err = parse_flat("hydrant.yaml", "interval: 5m\nforge:\n  kind: github\n").unwrap_err();
        assert_eq!(err.line, Some(2), "the line of `forge:`: {err}");
        assert!(err.to_string().contains("`forge`"), "{err}");
        assert!(parse_flat("hydrant.yaml", "- a\n").is_err());
        assert_eq!(parse_flat("hydrant.yaml", "").unwrap(), vec![]);
    }
}
