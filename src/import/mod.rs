//! `hydrant import`: an environment from what the operator was given.
//!
//! A team moving from the W&B operator has a `WeightsAndBiases` custom
//! resource (its `spec.values` is the custom resource spec, layer 3) and
//! perhaps values set through the system console or Helm (`helm get values`,
//! the user input spec, layer 2). [`translate`] turns either into the layer
//! hydrant reads: every plaintext credential is replaced by the Secret
//! reference the templates read ([`crate::spec::references`]) and moved into
//! one Secret manifest; keys no template or channel knows are listed with
//! their line; and the notes say what works differently here. This module
//! does no IO; [`write`] reads the file and writes the environment.

pub mod write;

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::render::guard;
use crate::spec::references::{self, Reference};
use crate::spec::{KnownKeys, Layer, LayerKind, SpecError, UnknownKey};
use crate::yaml::{self, KeyPath};

/// The custom resource's API version and kind.
pub const API_VERSION: &str = "apps.wandb.com/v1";
pub const KIND: &str = "WeightsAndBiases";

/// The channel an imported environment follows when the resource names none.
pub const DEFAULT_CHANNEL: &str = "stable";

/// Keys of the operator's chart that hydrant's templates read under another
/// name: (the chart's key, hydrant's key). The reference's examples set
/// `global.mysql.name` beside `global.mysql.database`, to the same value.
const RENAMES: [(&[&str], &[&str]); 1] = [(
    &["global", "mysql", "name"],
    &["global", "mysql", "database"],
)];

/// Which layer the file becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportLayer {
    /// The operator's `WeightsAndBiases` resource → `pinned.yaml` (layer 3).
    #[default]
    Pinned,
    /// `helm get values` output → `values.yaml` (layer 2).
    Values,
}

impl ImportLayer {
    pub fn kind(self) -> LayerKind {
        match self {
            ImportLayer::Pinned => LayerKind::Custom,
            ImportLayer::Values => LayerKind::User,
        }
    }

    /// The file of the environment it becomes.
    pub fn file_name(self) -> &'static str {
        match self {
            ImportLayer::Pinned => "pinned.yaml",
            ImportLayer::Values => "values.yaml",
        }
    }

    /// The Secret the layer's credentials go to.
    pub fn secret_name(self, env: &str) -> String {
        match self {
            ImportLayer::Pinned => format!("{env}-wandb-credentials"),
            ImportLayer::Values => format!("{env}-wandb-values-credentials"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(
        "`{file}`, line {line}: `{key}` is `{found}`, not `{want}`: `hydrant import` reads the operator's `{KIND}` resource (`apiVersion: {API_VERSION}`)"
    )]
    NotTheResource {
        file: String,
        line: usize,
        key: &'static str,
        found: String,
        want: &'static str,
    },
    #[error("`{file}`, line {line}: `spec.values` of the resource must be a map of values")]
    NoValues { file: String, line: usize },
}

impl ImportError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            ImportError::NotTheResource { .. } => Some(
                "for `helm get values` output, pass `--layer values`; for the operator, `kubectl get wandb <name> -o yaml` prints the resource"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

/// A credential moved out of the values into the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Where it was, as `display_path` writes it.
    pub from: String,
    pub line: Option<usize>,
    /// The reference written in its place, if the templates have one.
    pub reference: Option<String>,
    /// Its key in the Secret.
    pub secret_key: String,
}

/// The Secret manifest holding the credentials. Its `Debug` and `Display`
/// never show the values.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretManifest {
    pub name: String,
    pub namespace: String,
    pub data: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretManifest")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretManifest {
    /// The manifest, as YAML (`stringData`): it holds the credentials.
    pub fn to_yaml(&self) -> String {
        let data: Map<String, Value> = self
            .data
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "type": "Opaque",
            "stringData": data,
        });
        yaml::emit::to_document(&manifest)
    }
}

/// What an import makes of a file.
#[derive(Debug, Clone)]
pub struct Translation {
    pub layer: ImportLayer,
    /// The layer's values, with references in place of credentials.
    pub values: Map<String, Value>,
    /// The Secret, when there were credentials.
    pub secret: Option<SecretManifest>,
    pub moved: Vec<Moved>,
    /// Keys nothing reads, with their line in the file imported.
    pub unplaced: Vec<UnknownKey>,
    /// The namespace the resource names.
    pub namespace: Option<String>,
    /// The channel the environment follows.
    pub channel: String,
    /// What works differently here, for people.
    pub notes: Vec<String>,
}

/// What the file imported holds, parsed: the values and where each came from.
struct Source {
    layer: Layer,
    /// The path of the values in the file (`spec.values` of the resource).
    prefix: KeyPath,
    values: Map<String, Value>,
    namespace: Option<String>,
    notes: Vec<String>,
}

/// Translates the file `file` (its `text`) into environment `env`'s layer;
/// `known` are the keys the templates read, `channel` the values of the
/// channel the environment follows (when it could be read).
pub fn translate(
    layer: ImportLayer,
    env: &str,
    file: &str,
    text: &str,
    known: &[&KnownKeys],
    channel: Option<&Map<String, Value>>,
) -> Result<Translation, ImportError> {
    let source = match layer {
        ImportLayer::Pinned => resource(file, text)?,
        ImportLayer::Values => helm_values(file, text)?,
    };
    let namespace = source.namespace.clone();
    let mut notes = source.notes.clone();
    let secret_name = layer.secret_name(env);
    let mut values = source.values.clone();
    let mut lines: HashMap<KeyPath, usize> = source
        .layer
        .lines
        .iter()
        .filter_map(|(p, l)| {
            p.strip_prefix(source.prefix.as_slice())
                .map(|p| (p.to_vec(), *l))
        })
        .collect();
    let line_of = |path: &[String]| {
        let mut full = source.prefix.clone();
        full.extend_from_slice(path);
        source.layer.line_of(&full)
    };

    let root = Value::Object(source.values.clone());
    let mut data = BTreeMap::new();
    let mut moved = Vec::new();
    for path in guard::secrets_within(&[], &root, &root) {
        let Some(value) = guard::lookup(&root, &path).and_then(text_of) else {
            continue;
        };
        let line = line_of(&path);
        remove_path(&mut values, &path);
        let reference = references::reference_for(&path);
        let key = match reference {
            Some(r) => r.secret_key.to_string(),
            None => secret_key_of(&path),
        };
        if let Some(r) = reference {
            place(&mut values, &mut lines, r, &secret_name, line);
        }
        data.insert(key.clone(), value);
        moved.push(Moved {
            from: yaml::display_path(&path),
            line,
            reference: reference.map(|r| r.reference.join(".")),
            secret_key: key,
        });
    }
    if moved.iter().any(|m| m.from == "global.extraEnv.BUCKET") {
        notes.push(
            "`global.extraEnv.BUCKET` held the bucket's connection string with its keys: it is in the Secret whole and read through `global.bucket.urlSecret`, so the variable is no longer set from the values"
                .to_string(),
        );
    }
    let unreferenced: Vec<&Moved> = moved.iter().filter(|m| m.reference.is_none()).collect();
    if !unreferenced.is_empty() {
        notes.push(format!(
            "{} held a credential no template takes by reference: it is in the Secret, and nothing reads it until a template does",
            list(unreferenced.iter().map(|m| m.from.as_str()))
        ));
    }

    notes.extend(rename(&mut values, &mut lines));
    let checked = Layer {
        kind: layer.kind(),
        file: file.into(),
        values: values.clone(),
        lines,
    };
    let unplaced = crate::spec::unknown_keys(known, &checked);
    notes.extend(differences(layer, &values, channel));
    Ok(Translation {
        layer,
        secret: (!data.is_empty()).then(|| SecretManifest {
            name: secret_name,
            namespace: namespace.clone().unwrap_or_else(|| "default".to_string()),
            data,
        }),
        values,
        moved,
        unplaced,
        namespace,
        channel: DEFAULT_CHANNEL.to_string(),
        notes,
    })
}

/// The operator's custom resource: its `spec.values`, namespace and the
/// parts hydrant does not take.
fn resource(file: &str, text: &str) -> Result<Source, ImportError> {
    let layer = Layer::parse(LayerKind::Custom, file, text)?;
    let line = |p: &[&str]| {
        let p: KeyPath = p.iter().map(|s| s.to_string()).collect();
        layer.line_of(&p).unwrap_or(1)
    };
    for (key, want) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        let found = layer.values.get(key);
        if found.and_then(Value::as_str) != Some(want) {
            return Err(ImportError::NotTheResource {
                file: file.to_string(),
                line: line(&[key]),
                key,
                found: found.map_or_else(|| "missing".to_string(), shown),
                want,
            });
        }
    }
    let spec = layer.values.get("spec").and_then(Value::as_object);
    let values = match spec.and_then(|s| s.get("values")) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(ImportError::NoValues {
                file: file.to_string(),
                line: line(&["spec", "values"]),
            });
        }
    };
    let mut notes = vec![format!(
        "the operator's release channel is chosen by the deploy server from the license, and the resource names none: the environment follows `{DEFAULT_CHANNEL}`; change `channel:` in environment.yaml if the license is on another"
    )];
    let others: Vec<&String> = spec
        .map(|s| s.keys().filter(|k| *k != "values").collect())
        .unwrap_or_default();
    if !others.is_empty() {
        notes.push(format!(
            "{} of the resource {} not imported: hydrant renders the channel's release with the repository's templates/",
            list(others.iter().map(|k| format!("spec.{k}"))),
            if others.len() == 1 { "is" } else { "are" }
        ));
    }
    let namespace = layer
        .values
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .map(String::from);
    if namespace.is_none() {
        notes.push(
            "the resource names no `metadata.namespace`: the environment renders into `default`"
                .to_string(),
        );
    }
    Ok(Source {
        prefix: vec!["spec".to_string(), "values".to_string()],
        values,
        namespace,
        notes,
        layer,
    })
}

/// `helm get values` output: the values, after its `USER-SUPPLIED VALUES:`
/// heading (kept as a comment, so lines stay the file's lines).
fn helm_values(file: &str, text: &str) -> Result<Source, ImportError> {
    let text: String = text
        .lines()
        .map(|l| {
            if matches!(l.trim_end(), "USER-SUPPLIED VALUES:" | "COMPUTED VALUES:") {
                format!("# {l}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let layer = Layer::parse(LayerKind::User, file, &text)?;
    Ok(Source {
        prefix: Vec::new(),
        values: layer.values.clone(),
        namespace: None,
        notes: Vec::new(),
        layer,
    })
}

/// Moves the keys hydrant names differently to its name ([`RENAMES`]); one
/// that repeats the value already set under hydrant's name is dropped. A key
/// whose value differs from the one under hydrant's name stays, to be listed
/// as unplaced.
fn rename(values: &mut Map<String, Value>, lines: &mut HashMap<KeyPath, usize>) -> Vec<String> {
    let mut notes = Vec::new();
    for (from, to) in RENAMES {
        let from_path: KeyPath = from.iter().map(|s| s.to_string()).collect();
        let to_path: KeyPath = to.iter().map(|s| s.to_string()).collect();
        let root = Value::Object(values.clone());
        let Some(value) = guard::lookup(&root, &from_path).cloned() else {
            continue;
        };
        match guard::lookup(&root, &to_path) {
            Some(existing) if *existing != value => continue,
            Some(_) => notes.push(format!(
                "`{}` repeats `{}`: dropped",
                from.join("."),
                to.join(".")
            )),
            None => {
                references::set_path(values, to, value);
                if let Some(line) = lines.get(&from_path).copied() {
                    lines.insert(to_path, line);
                }
                notes.push(format!(
                    "`{}` is `{}` in hydrant: renamed",
                    from.join("."),
                    to.join(".")
                ));
            }
        }
        remove_path(values, &from_path);
    }
    notes
}

/// Writes the reference to the Secret in place of a credential, on the
/// credential's line.
fn place(
    values: &mut Map<String, Value>,
    lines: &mut HashMap<KeyPath, usize>,
    r: &Reference,
    secret: &str,
    line: Option<usize>,
) {
    references::set_path(values, r.reference, r.value(secret));
    if r.credential.last() == Some(&"BUCKET") {
        prune_empty(values, &["global", "extraEnv"]);
    }
    if let Some(line) = line {
        let mut path: KeyPath = r.reference.iter().map(|s| s.to_string()).collect();
        for field in ["name", "key", "enabled", "secret"] {
            path.push(field.to_string());
            lines.insert(path.clone(), line);
            path.pop();
        }
        lines.insert(path, line);
    }
}

/// Removes the map at `path` if it is empty.
fn prune_empty(values: &mut Map<String, Value>, path: &[&str]) {
    let owned: KeyPath = path.iter().map(|s| s.to_string()).collect();
    let root = Value::Object(values.clone());
    if matches!(guard::lookup(&root, &owned), Some(Value::Object(m)) if m.is_empty()) {
        remove_path(values, &owned);
    }
}

/// Removes the leaf at `path` (through maps and list indexes; a list item
/// becomes `null`).
fn remove_path(values: &mut Map<String, Value>, path: &[String]) {
    let mut root = Value::Object(std::mem::take(values));
    remove_in(&mut root, path);
    if let Value::Object(m) = root {
        *values = m;
    }
}

fn remove_in(root: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = root;
    for p in parents {
        let next = match node {
            Value::Object(m) => m.get_mut(p),
            Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        };
        let Some(next) = next else { return };
        node = next;
    }
    match node {
        Value::Object(m) => {
            m.remove(last);
        }
        Value::Array(a) => {
            if let Some(v) = last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                *v = Value::Null;
            }
        }
        _ => {}
    }
}

/// A credential's value as text (a number too).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A Secret key for a credential with no reference form: its path, in the
/// characters a Secret key may hold.
fn secret_key_of(path: &[String]) -> String {
    path.iter()
        .map(|p| {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                        c
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A value as a message shows it (never a credential: `apiVersion`, `kind`).
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.chars().take(80).collect(),
        Value::Object(_) => "a map".to_string(),
        Value::Array(_) => "a list".to_string(),
        other => other.to_string(),
    }
}

/// `` `a`, `b` and `c` ``.
fn list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items
        .into_iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect();
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// What works differently from the operator, for these values.
fn differences(
    layer: ImportLayer,
    values: &Map<String, Value>,
    channel: Option<&Map<String, Value>>,
) -> Vec<String> {
    let mut notes = Vec::new();
    let mut lists = Vec::new();
    let mut same = Vec::new();
    let channel = channel.map(|c| Value::Object(c.clone()));
    leaves(
        &mut Vec::new(),
        &Value::Object(values.clone()),
        &mut |path, v| {
            if v.is_array() {
                lists.push(yaml::display_path(path));
            }
            if let Some(c) = &channel
                && guard::lookup(c, path) == Some(v)
            {
                same.push(yaml::display_path(path));
            }
        },
    );
    notes.push(match lists.len() {
        0 => "lists replace instead of appending: a list set in this layer replaces the lower layers' list whole, where the operator appended to it".to_string(),
        n => format!(
            "lists replace instead of appending: {} replace{} the lower layers' list whole, where the operator appended to it",
            list(&lists),
            if n == 1 { "s" } else { "" }
        ),
    });
    if !same.is_empty() {
        notes.push(format!(
            "{} set{} the value the channel already provides; removing {} lets the channel's releases change {}",
            list(&same),
            if same.len() == 1 { "s" } else { "" },
            if same.len() == 1 { "it" } else { "them" },
            if same.len() == 1 { "it" } else { "them" },
        ));
    }
    if layer == ImportLayer::Pinned {
        notes.push(
            "pinned.yaml is layer 3: each key in it wins over the channel and values.yaml, so a channel release cannot change it (an image tag set here stays); `null` deletes a key of a lower layer"
                .to_string(),
        );
    }
    notes
}

/// Calls `f` with every leaf and every list of `v`, by path.
fn leaves(path: &mut KeyPath, v: &Value, f: &mut dyn FnMut(&KeyPath, &Value)) {
    match v {
        Value::Object(m) => {
            for (k, item) in m {
                path.push(k.clone());
                leaves(path, item, f);
                path.pop();
            }
        }
        other => f(path, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GCP: &str = "apiVersion: apps.wandb.com/v1
kind: WeightsAndBiases
metadata:
  name: wandb
  namespace: default
spec:
  values:
    global:
      host: https://abc-wandb.sandbox-gcp.wandb.ml
      bucket:
        name: abc-wandb-moving-pipefish
        provider: gcs
      mysql:
        database: wandb_local
        name: wandb_local
        password: 8wtX6cJHizAZvYScjDzZcUarK4zZGjpV
        user: wandb
      license: eyJhbGnUzaHgyQjQyQWhEU3
    ingress:
      annotations:
        kubernetes.io/ingress.class: gce
";

    fn known(paths: &[&str]) -> KnownKeys {
        let mut k = KnownKeys::default();
        for p in paths {
            let segs: Vec<crate::spec::Seg> = p
                .split('.')
                .map(|s| crate::spec::Seg::Key(s.to_string()))
                .collect();
            k.insert(&segs, p.ends_with("annotations"));
        }
        k
    }

    fn gcp_known() -> KnownKeys {
        known(&[
            "global.host",
            "global.bucket.name",
            "global.bucket.provider",
            "global.mysql.database",
            "global.mysql.host",
            "global.mysql.user",
            "global.mysql.passwordSecret.name",
            "global.mysql.passwordSecret.key",
            "global.licenseSecret.name",
            "global.licenseSecret.key",
            "ingress.annotations",
        ])
    }

    #[test]
    fn the_credentials_of_the_resource_become_references_to_one_secret() {
        let k = gcp_known();
        let t = translate(
            ImportLayer::Pinned,
            "prod",
            "operator.yaml",
            GCP,
            &[&k],
            None,
        )
        .unwrap();
        let v = Value::Object(t.values.clone());
        assert_eq!(
            v["global"]["licenseSecret"],
            serde_json::json!({"name": "prod-wandb-credentials", "key": "license"})
        );
        assert_eq!(
            v["global"]["mysql"]["passwordSecret"],
            serde_json::json!({"name": "prod-wandb-credentials", "key": "mysql-password"})
        );
        assert!(
            v["global"].get("license").is_none() && v["global"]["mysql"].get("password").is_none()
        );
        let secret = t.secret.expect("a secret");
        assert_eq!(secret.namespace, "default");
        assert_eq!(
            secret.data.keys().collect::<Vec<_>>(),
            ["license", "mysql-password"]
        );
        let text = yaml::emit::to_document(&v);
        assert!(
            !text.contains("8wtX6c") && !text.contains("eyJhbG"),
            "{text}"
        );
        assert!(!format!("{secret:?}").contains("8wtX6c"));
        assert!(t.unplaced.is_empty(), "{:?}", t.unplaced);
        assert!(
            t.notes
                .iter()
                .any(|n| n == "`global.mysql.name` repeats `global.mysql.database`: dropped"),
            "{:?}",
            t.notes
        );
        assert_eq!(t.namespace.as_deref(), Some("default"));
        let line = |k: &str| t.moved.iter().find(|m| m.from == k).and_then(|m| m.line);
        assert_eq!(line("global.mysql.password"), Some(16), "{:?}", t.moved);
        assert_eq!(line("global.license"), Some(18), "{:?}", t.moved);
    }

    #[test]
    fn a_bucket_url_with_keys_moves_whole_and_its_variable_goes() {
        let text =
            "global:\n  extraEnv:\n    BUCKET: \"s3://wandb:changeme@mydb.com/wandb?tls=true\"\n";
        let t = translate(ImportLayer::Values, "dev", "values.yaml", text, &[], None).unwrap();
        let v = Value::Object(t.values.clone());
        assert_eq!(
            v,
            serde_json::json!({"global": {"bucket": {"urlSecret": {"name": "dev-wandb-values-credentials", "key": "bucket-url"}}}})
        );
        assert_eq!(
            t.secret.unwrap().data["bucket-url"],
            "s3://wandb:changeme@mydb.com/wandb?tls=true"
        );
    }

    #[test]
    fn the_redis_password_becomes_redis_auth() {
        let text = "global:\n  redis:\n    host: r\n    password: supersecret\n";
        let t = translate(ImportLayer::Values, "dev", "v.yaml", text, &[], None).unwrap();
        assert_eq!(
            Value::Object(t.values)["global"]["redis"]["auth"],
            serde_json::json!({"enabled": true, "secret": "dev-wandb-values-credentials", "key": "redis-password"})
        );
    }

    #[test]
    fn an_unknown_key_is_listed_with_its_line_in_the_file_imported() {
        let text = GCP.replace("    ingress:\n", "    weavee:\n      x: 1\n    ingress:\n");
        let k = gcp_known();
        let t = translate(
            ImportLayer::Pinned,
            "prod",
            "operator.yaml",
            &text,
            &[&k],
            None,
        )
        .unwrap();
        assert_eq!(t.unplaced.len(), 1, "{:?}", t.unplaced);
        assert_eq!(t.unplaced[0].key, "weavee");
        assert_eq!(t.unplaced[0].line, Some(19));
        assert_eq!(t.unplaced[0].file, "operator.yaml");
    }

    #[test]
    fn another_kind_is_refused_naming_the_file_and_line() {
        let text = "apiVersion: apps/v1\nkind: Deployment\n";
        let err = translate(ImportLayer::Pinned, "p", "d.yaml", text, &[], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`d.yaml`, line 1: `apiVersion` is `apps/v1`, not `apps.wandb.com/v1`: `hydrant import` reads the operator's `WeightsAndBiases` resource (`apiVersion: apps.wandb.com/v1`)"
        );
        let text = "apiVersion: apps.wandb.com/v1\nkind: Other\n";
        let err = translate(ImportLayer::Pinned, "p", "d.yaml", text, &[], None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`d.yaml`, line 2: `kind` is `Other`"),
            "{err}"
        );
    }

    #[test]
    fn helm_values_output_is_read_under_its_heading() {
        let text = "USER-SUPPLIED VALUES:\nglobal:\n  host: https://h\n";
        let t = translate(ImportLayer::Values, "p", "v.yaml", text, &[], None).unwrap();
        assert_eq!(
            Value::Object(t.values),
            serde_json::json!({"global": {"host": "https://h"}})
        );
        assert!(t.secret.is_none());
    }

    #[test]
    fn the_notes_say_lists_replace_and_which_keys_repeat_the_channel() {
        let text = "global:\n  host: h\n  customCACerts: [a]\n";
        let channel: Map<String, Value> =
            serde_json::from_str(r#"{"global": {"host": "h", "customCACerts": ["b"]}}"#).unwrap();
        let t = translate(
            ImportLayer::Values,
            "p",
            "v.yaml",
            text,
            &[],
            Some(&channel),
        )
        .unwrap();
        let notes = t.notes.join("\n");
        assert!(
            notes.contains("lists replace instead of appending: `global.customCACerts`"),
            "{notes}"
        );
        assert!(
            notes.contains("`global.host` sets the value the channel already provides"),
            "{notes}"
        );
    }

    #[test]
    fn a_key_hydrant_names_differently_is_renamed_unless_it_disagrees() {
        let text = "global:\n  mysql:\n    name: wandb_local\n";
        let t = translate(ImportLayer::Values, "p", "v.yaml", text, &[], None).unwrap();
        assert_eq!(
            Value::Object(t.values),
            serde_json::json!({"global": {"mysql": {"database": "wandb_local"}}})
        );
        let text = "global:\n  mysql:\n    name: a\n    database: b\n";
        let t = translate(ImportLayer::Values, "p", "v.yaml", text, &[], None).unwrap();
        assert_eq!(
            Value::Object(t.values),
            serde_json::json!({"global": {"mysql": {"name": "a", "database": "b"}}})
        );
    }

    #[test]
    fn a_credential_with_no_reference_form_still_leaves_the_values() {
        let text = "app:\n  extraEnv:\n    API_TOKEN: t0k3n-value\n";
        let t = translate(ImportLayer::Values, "p", "v.yaml", text, &[], None).unwrap();
        assert_eq!(
            Value::Object(t.values),
            serde_json::json!({"app": {"extraEnv": {}}})
        );
        assert_eq!(t.moved[0].reference, None);
        assert_eq!(
            t.secret.unwrap().data["app.extraEnv.API_TOKEN"],
            "t0k3n-value"
        );
        assert!(
            t.notes
                .iter()
                .any(|n| n.contains("no template takes by reference"))
        );
    }
}
