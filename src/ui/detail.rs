//! What the page of one environment shows beyond its status: the plan of
//! the last cycle (decision and reason), the files its render changed, and
//! where its own key values come from, as `hydrant explain` tells it.
//!
//! Built once per cycle from the cycle's outcomes and the repository it
//! read; a value whose key or text looks like a credential is not shown.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::delivery::Outcome;
use crate::project::{ChannelFetch, Project};

/// How many of an environment's own keys are explained.
pub const EXPLAINED_KEYS: usize = 25;

/// The longest value shown, in characters.
const VALUE_CHARS: usize = 160;

/// One environment's plan, changed files and provenance.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Detail {
    /// What the planner decided (`open`, `update`, `nothing` …) and why.
    pub decision: String,
    pub action: String,
    pub reason: String,
    /// The files of `rendered/<env>/` its pull request changes: (`+`, `-`
    /// or `~`, path).
    pub files: Vec<(char, String)>,
    pub provenance: Vec<Provenance>,
    /// Why the provenance could not be read, when it could not.
    pub provenance_error: Option<String>,
}

/// Where a key's value comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    pub key: String,
    /// The value, as JSON, cut short; `None` when no layer sets it.
    pub value: Option<String>,
    /// The layer, file and line that set it.
    pub origin: Option<String>,
    /// What the other layers say of it.
    pub others: Vec<String>,
}

/// The shown form of a value: a scalar as compact JSON cut to
/// [`VALUE_CHARS`]; a note for a map or a list (whose parts could hold a
/// credential) or a value that looks like a credential.
fn shown(path: &[String], value: &serde_json::Value, root: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => return format!("(a map of {} keys)", map.len()),
        serde_json::Value::Array(items) => return format!("(a list of {} items)", items.len()),
        _ => {}
    }
    let secret = path.iter().any(|k| crate::render::guard::is_secret_key(k))
        || crate::render::guard::is_plaintext_secret(path, value, root);
    if secret {
        return "(hidden: it looks like a credential)".to_string();
    }
    let text = value.to_string();
    match text.char_indices().nth(VALUE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// The provenance of the keys an environment's own layers set (at most
/// [`EXPLAINED_KEYS`]), its channel's spec taken from `specs` when read
/// before. The spec is read by release (the pinned one, or the version the
/// cycle found latest in `fetches`): the channel's latest is never asked
/// for here, so a new release is found by the cycles and polls that count it.
fn provenance(
    project: &Project,
    env: &str,
    fetches: &[ChannelFetch],
    specs: &mut HashMap<(String, Option<String>), Option<crate::channel::ChannelSpec>>,
) -> Result<Vec<Provenance>, String> {
    let files = project.environment_files(env).map_err(|e| e.to_string())?;
    let channel = files.config.channel.clone();
    let release = match &files.config.release {
        Some(r) => r.clone(),
        None => fetches
            .iter()
            .rev()
            .find(|f| f.key == (channel.clone(), None))
            .and_then(|f| f.version.clone())
            .ok_or_else(|| "its channel's latest release is not known".to_string())?,
    };
    let key = (channel, Some(release));
    let spec = specs
        .entry(key)
        .or_insert_with_key(|(channel, release)| {
            project
                .channel_spec(channel, release.as_deref(), "environment.yaml")
                .ok()
        })
        .clone()
        .ok_or_else(|| "its channel's spec could not be read".to_string())?;
    let layers = crate::pipeline::layers(&spec, &files);
    let merged = crate::spec::merge(&layers);
    let root = merged.values.clone();
    // The leaves its own layers set: where a value is a map, its leaves say more.
    let leaf = |path: &&Vec<String>| {
        !path.is_empty()
            && !path
                .iter()
                .try_fold(&root, |v, k| v.get(k.as_str()))
                .is_some_and(serde_json::Value::is_object)
    };
    let mut keys: Vec<&Vec<String>> = files
        .user
        .lines
        .keys()
        .chain(files.custom.lines.keys())
        .filter(leaf)
        .collect();
    keys.sort();
    keys.dedup();
    Ok(keys
        .into_iter()
        .take(EXPLAINED_KEYS)
        .map(|path| {
            let e = crate::spec::explain(&layers, &merged, path);
            Provenance {
                key: e.key.clone(),
                value: e.value.as_ref().map(|v| shown(path, v, &root)),
                origin: e.origin.as_ref().map(ToString::to_string),
                others: e
                    .layers
                    .iter()
                    .filter(|say| Some(&say.origin) != e.origin.as_ref())
                    .map(|say| format!("{}: {}", say.origin, shown(path, &say.value, &root)))
                    .collect(),
            }
        })
        .collect())
}

/// Each environment's detail from a cycle's outcomes over `project`, and
/// the channel fetches the cycle made.
pub fn build(
    outcomes: &[Outcome],
    project: &Project,
    fetches: &[ChannelFetch],
) -> BTreeMap<String, Detail> {
    let mut specs = HashMap::new();
    outcomes
        .iter()
        .map(|o| {
            let found = provenance(project, &o.env, fetches, &mut specs);
            let (provenance, provenance_error) = match found {
                Ok(p) => (p, None),
                Err(e) => (Vec::new(), Some(e)),
            };
            let detail = Detail {
                decision: o.decision.to_string(),
                action: o.action.to_string(),
                reason: o.reason.clone(),
                files: o
                    .files
                    .iter()
                    .map(|f| (f.change.mark(), f.path.clone()))
                    .collect(),
                provenance,
                provenance_error,
            };
            (o.env.clone(), detail)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn a_credential_a_map_or_a_list_is_never_shown_as_it_is() {
        let root = json!({"global": {"license": "abc123secretvalue", "host": "https://x"}});
        assert_eq!(
            shown(
                &path(&["global", "license"]),
                &root["global"]["license"],
                &root
            ),
            "(hidden: it looks like a credential)"
        );
        assert_eq!(
            shown(&path(&["global"]), &root["global"], &root),
            "(a map of 2 keys)"
        );
        assert_eq!(
            shown(&path(&["extra"]), &json!(["a", "b"]), &root),
            "(a list of 2 items)"
        );
        assert_eq!(
            shown(&path(&["global", "host"]), &root["global"]["host"], &root),
            "\"https://x\""
        );
    }
}
