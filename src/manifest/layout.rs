//! The files of `rendered/<env>/`: one canonical YAML file per object, a
//! `kustomization.yaml` listing them, and `hydrant.metadata` (JSON provenance;
//! not named `*.json` or `*.yaml`, so Argo CD's directory source does not try to
//! apply it).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{Manifest, ManifestError};
use crate::names::{self, NameKind};
use crate::yaml;

pub const KUSTOMIZATION: &str = "kustomization.yaml";
pub const METADATA: &str = "hydrant.metadata";

/// Bumped when hydrant writes the same inputs differently, so that a digest
/// match still means "nothing to re-render".
pub const RENDERER: u32 = 1;

/// What `hydrant.metadata` records.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Metadata {
    pub environment: String,
    pub namespace: String,
    pub channel: ChannelInfo,
    /// sha256 of each input.
    pub inputs: Inputs,
    /// sha256 over all inputs and [`RENDERER`]: equal digests render equal files.
    pub digest: String,
    pub renderer: u32,
    pub resources: usize,
    /// The digest of the other files as git stores them ([`outputs_digest`]):
    /// lets hydrant see that `rendered/<env>/` on a branch is what it wrote,
    /// without reading the files.
    #[serde(default)]
    pub outputs: String,
}

/// The sha256 of an environment's own files, as the inputs' digest counts
/// them.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TextDigests {
    /// `environment.yaml`.
    pub environment: String,
    /// `values.yaml`, if there is one.
    pub values: Option<String>,
    /// `pinned.yaml`, if there is one.
    pub pinned: Option<String>,
}

impl TextDigests {
    pub fn of(
        config_text: &str,
        user_text: Option<&str>,
        custom_text: Option<&str>,
    ) -> TextDigests {
        TextDigests {
            environment: sha256(config_text.as_bytes()),
            values: user_text.map(|t| sha256(t.as_bytes())),
            pinned: custom_text.map(|t| sha256(t.as_bytes())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ChannelInfo {
    pub name: String,
    pub version: String,
    pub release: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Inputs {
    pub channel: String,
    pub environment: String,
    pub values: Option<String>,
    pub pinned: Option<String>,
    pub templates: String,
}

impl Inputs {
    pub fn digest(&self) -> String {
        let text = serde_json::to_string(&(self, RENDERER)).unwrap_or_default();
        sha256(text.as_bytes())
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The id git gives a file's content (its blob id, in hex).
pub fn git_blob_id(content: &[u8]) -> String {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    hex::encode(h.finalize())
}

/// The id git gives a directory holding exactly `files` (its tree id, in
/// hex), as hydrant writes `rendered/<env>/`: regular files, no subdirectories.
pub fn git_tree_id(files: &BTreeMap<String, String>) -> String {
    use sha1::Digest;
    let mut entries = Vec::new();
    for (name, text) in files {
        entries.extend_from_slice(format!("100644 {name}\0").as_bytes());
        entries.extend_from_slice(&hex::decode(git_blob_id(text.as_bytes())).unwrap_or_default());
    }
    let mut h = sha1::Sha1::new();
    h.update(format!("tree {}\0", entries.len()).as_bytes());
    h.update(&entries);
    hex::encode(h.finalize())
}

/// A digest over the names and git blob ids of an environment's files other
/// than `hydrant.metadata`. Computed from a render, or from a git tree's
/// entries without reading a blob.
pub fn outputs_digest<'a>(entries: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut listed: Vec<(&str, String)> = entries
        .into_iter()
        .filter(|(name, _)| *name != METADATA)
        .collect();
    listed.sort();
    let text: String = listed
        .iter()
        .map(|(name, id)| format!("{name} {id}\n"))
        .collect();
    sha256(text.as_bytes())
}

/// The unified diff (3 lines of context, `a/<dir>/<name>` and
/// `b/<dir>/<name>` headers) of each file that differs between `old` and
/// `new`, the files of `dir`, by name; a file on one side only diffs against
/// nothing.
pub fn diff(
    dir: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let names: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut diffs = Vec::new();
    for name in names {
        let a = old.get(name).map(String::as_str).unwrap_or("");
        let b = new.get(name).map(String::as_str).unwrap_or("");
        if a == b {
            continue;
        }
        let path = format!("{dir}/{name}");
        let text = similar::TextDiff::from_lines(a, b)
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{path}"), &format!("b/{path}"))
            .to_string();
        diffs.push((name.clone(), text));
    }
    diffs
}

/// The file name of each manifest: `<kind>-<name>.yaml`, lowercase, with the
/// namespace added where two objects would otherwise share a name.
pub fn file_names(manifests: &[Manifest]) -> Vec<String> {
    let base = |m: &Manifest| format!("{}-{}", m.kind.to_lowercase(), m.name.to_lowercase());
    let mut counts: HashMap<String, usize> = HashMap::new();
    for m in manifests {
        *counts.entry(base(m)).or_default() += 1;
    }
    manifests
        .iter()
        .map(|m| {
            let b = base(m);
            match (&m.namespace, counts[&b] > 1) {
                (Some(ns), true) => format!(
                    "{}-{}-{}.yaml",
                    m.kind.to_lowercase(),
                    ns,
                    m.name.to_lowercase()
                ),
                _ => format!("{b}.yaml"),
            }
        })
        .collect()
}

/// The problems with the file names of `manifests`: a name that breaks the
/// rule of [`crate::names`], and two objects that would be written to the
/// same file (one would silently replace the other). Both objects of a
/// collision are named, with their templates and documents.
pub fn check_file_names(manifests: &[Manifest]) -> Vec<ManifestError> {
    let mut problems = Vec::new();
    let mut taken: HashMap<String, &Manifest> = HashMap::new();
    for (m, file) in manifests.iter().zip(file_names(manifests)) {
        let reserved = file == KUSTOMIZATION || file == METADATA;
        if let Err(e) = names::check(NameKind::FileName, &file, &m.id()) {
            problems.push(m.error(None, e.to_string()));
        } else if reserved {
            problems.push(m.error(
                None,
                format!("its file name `{file}` is one hydrant writes itself"),
            ));
        } else if let Some(first) = taken.get(&file) {
            if same_object(m, first) {
                // `validate` reports the duplicate object itself.
                continue;
            }
            problems.push(m.error(
                None,
                format!(
                    "`{}` and `{}` (template `{}`, document {}) would both be written to `{file}`; rename one",
                    m.id(),
                    first.id(),
                    first.template,
                    first.index
                ),
            ));
        } else {
            taken.insert(file, m);
        }
    }
    problems
}

/// The same kind, API group, namespace and name.
fn same_object(a: &Manifest, b: &Manifest) -> bool {
    let group = |m: &Manifest| m.api_version.rsplit_once('/').map(|(g, _)| g.to_string());
    a.kind == b.kind && a.namespace == b.namespace && a.name == b.name && group(a) == group(b)
}

/// Every file of `rendered/<env>/`, by name; sets `metadata.outputs`.
pub fn files(manifests: &[Manifest], metadata: &mut Metadata) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for (m, name) in manifests.iter().zip(file_names(manifests)) {
        let mut text = format!("# Source: templates/{}\n", m.template);
        text.push_str(&yaml::to_document(&m.value));
        files.insert(name, text);
    }
    let mut kustomization = format!(
        "# Written by hydrant for environment `{}`; do not edit.\n# Reproduce with: hydrant render --env {}\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
        metadata.environment, metadata.environment
    );
    for name in files.keys() {
        kustomization.push_str("  - ");
        kustomization.push_str(name);
        kustomization.push('\n');
    }
    if files.is_empty() {
        kustomization = kustomization.replace("resources:\n", "resources: []\n");
    }
    files.insert(KUSTOMIZATION.to_string(), kustomization);
    metadata.outputs = outputs_digest(
        files
            .iter()
            .map(|(name, text)| (name.as_str(), git_blob_id(text.as_bytes()))),
    );
    let mut meta = serde_json::to_string_pretty(metadata).unwrap_or_default();
    meta.push('\n');
    files.insert(METADATA.to_string(), meta);
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::RenderedDoc;
    use serde_json::json;

    #[test]
    fn the_diff_has_a_unified_diff_per_changed_file_and_skips_the_same() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let old = map(&[
            ("a.yaml", "x: 1\n"),
            ("gone.yaml", "g: 1\n"),
            ("same.yaml", "s\n"),
        ]);
        let new = map(&[("a.yaml", "x: 2\n"), ("same.yaml", "s\n")]);
        let diffs = diff("rendered/dev", &old, &new);
        let names: Vec<&str> = diffs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a.yaml", "gone.yaml"]);
        assert_eq!(
            diffs[0].1,
            "--- a/rendered/dev/a.yaml\n+++ b/rendered/dev/a.yaml\n@@ -1 +1 @@\n-x: 1\n+x: 2\n"
        );
        assert!(diffs[1].1.contains("-g: 1\n"), "{}", diffs[1].1);
    }

    #[test]
    fn a_rendered_directory_has_the_tree_id_git_gives_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = git2::Repository::init_bare(dir.path()).expect("repo");
        let files: BTreeMap<String, String> = [
            ("kustomization.yaml", "resources:\n  - a.yaml\n"),
            ("a.yaml", "kind: A\n"),
            ("hydrant.metadata", "{}"),
            ("a-b.yaml", ""),
        ]
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
        let mut tree = repo.treebuilder(None).expect("builder");
        for (name, text) in &files {
            let blob = repo.blob(text.as_bytes()).expect("blob");
            tree.insert(name, blob, 0o100644).expect("insert");
        }
        let id = tree.write().expect("tree");
        assert_eq!(git_tree_id(&files), id.to_string());
    }

    fn m(kind: &str, name: &str, ns: Option<&str>) -> Manifest {
        let mut meta = json!({"name": name});
        if let Some(ns) = ns {
            meta["namespace"] = json!(ns);
        }
        Manifest::from_doc(
            RenderedDoc {
                template: "t.yaml.hbs".into(),
                index: 1,
                value: json!({"apiVersion": "x.io/v1", "kind": kind, "metadata": meta}),
                from_values: vec![],
            },
            "ns",
        )
        .unwrap()
    }

    fn metadata() -> Metadata {
        let inputs = Inputs {
            channel: "c".into(),
            environment: "e".into(),
            values: None,
            pinned: None,
            templates: "t".into(),
        };
        Metadata {
            environment: "dev".into(),
            namespace: "ns".into(),
            channel: ChannelInfo {
                name: "stable".into(),
                version: "1".into(),
                release: None,
            },
            digest: inputs.digest(),
            inputs,
            renderer: RENDERER,
            resources: 2,
            outputs: String::new(),
        }
    }

    fn doc(value: serde_json::Value) -> Result<Manifest, crate::manifest::ManifestError> {
        Manifest::from_doc(
            RenderedDoc {
                template: "t.yaml.hbs".into(),
                index: 1,
                value,
                from_values: vec![],
            },
            "ns",
        )
    }

    #[test]
    fn issue_13_a_kind_that_is_not_a_kubernetes_kind_never_reaches_a_file_name() {
        for kind in [
            "x.yaml\n  - ../../evil",
            "Config Map",
            "configMap",
            "../Secret",
            "Deploy#x",
            "",
            &format!("A{}", "b".repeat(63)),
        ] {
            let got = doc(json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "a"}}));
            assert!(got.is_err(), "{kind:?} accepted");
        }
        for api in ["v1/x/y", "../v1", "Apps/v1", "apps/", "v1 ", "apps/v1\n"] {
            let got = doc(json!({"apiVersion": api, "kind": "Pod", "metadata": {"name": "a"}}));
            assert!(got.is_err(), "{api:?} accepted");
        }
        assert!(
            doc(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}}))
                .is_ok()
        );
    }

    #[test]
    fn issue_13_distinct_objects_that_share_a_file_name_are_refused_naming_both() {
        // Same kind and name in two API groups; and a namespace-name split
        // that spells the same file name.
        let a = doc(json!({"apiVersion": "a.io/v1", "kind": "Widget", "metadata": {"name": "x"}}))
            .unwrap();
        let mut b =
            doc(json!({"apiVersion": "b.io/v1", "kind": "Widget", "metadata": {"name": "x"}}))
                .unwrap();
        b.template = "other.yaml.hbs".into();
        let problems = check_file_names(&[a.clone(), b]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let text = problems[0].to_string();
        assert!(
            text.contains("other.yaml.hbs") && text.contains("t.yaml.hbs"),
            "{text}"
        );
        assert!(text.contains("widget-x.yaml"), "{text}");
        let c = m("Widget", "b-c", Some("a"));
        let d = m("Widget", "c", Some("a-b"));
        let e = m("Widget", "b-c", Some("z"));
        let f = m("Widget", "c", Some("q"));
        let problems = check_file_names(&[c, d, e, f]);
        assert!(
            problems
                .iter()
                .any(|p| p.to_string().contains("widget-a-b-c.yaml")),
            "{problems:?}"
        );
        assert!(check_file_names(&[a]).is_empty());
    }

    #[test]
    fn files_are_named_by_kind_and_name_and_listed_in_the_kustomization() {
        let files = files(
            &[m("Widget", "Alpha", None), m("Gadget", "b", None)],
            &mut metadata(),
        );
        let names: Vec<_> = files.keys().cloned().collect();
        assert_eq!(
            names,
            vec![
                "gadget-b.yaml",
                "hydrant.metadata",
                "kustomization.yaml",
                "widget-alpha.yaml"
            ]
        );
        assert!(
            files["kustomization.yaml"]
                .contains("resources:\n  - gadget-b.yaml\n  - widget-alpha.yaml\n")
        );
        assert!(!files["kustomization.yaml"].contains("hydrant.metadata"));
    }

    #[test]
    fn same_names_in_two_namespaces_get_the_namespace_in_the_file_name() {
        let files = files(
            &[m("Widget", "a", Some("x")), m("Widget", "a", Some("y"))],
            &mut metadata(),
        );
        assert!(
            files.contains_key("widget-x-a.yaml") && files.contains_key("widget-y-a.yaml"),
            "{:?}",
            files.keys()
        );
    }

    #[test]
    fn the_metadata_is_json_without_timestamps() {
        let mut meta = metadata();
        let files = files(&[], &mut meta);
        let parsed: Metadata = serde_json::from_str(&files["hydrant.metadata"]).unwrap();
        assert_eq!(parsed, meta);
        assert!(files["kustomization.yaml"].contains("resources: []"));
    }

    #[test]
    fn blob_ids_are_git_s_and_the_outputs_digest_covers_every_other_file() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_id(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        let mut meta = metadata();
        let files = files(&[m("Widget", "a", None)], &mut meta);
        let ids = |files: &BTreeMap<String, String>| -> Vec<(String, String)> {
            files
                .iter()
                .map(|(n, t)| (n.clone(), git_blob_id(t.as_bytes())))
                .collect()
        };
        let digest = |ids: &[(String, String)]| {
            outputs_digest(ids.iter().map(|(n, i)| (n.as_str(), i.clone())))
        };
        assert_eq!(digest(&ids(&files)), meta.outputs);
        let mut edited = files.clone();
        edited.insert("widget-a.yaml".into(), "edited by hand\n".into());
        assert_ne!(digest(&ids(&edited)), meta.outputs);
        let mut extra = files.clone();
        extra.insert("stray.yaml".into(), "x\n".into());
        assert_ne!(digest(&ids(&extra)), meta.outputs);
    }
}
