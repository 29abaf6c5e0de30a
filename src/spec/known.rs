//! Known keys: which keys of a value layer anything reads.
//!
//! A key set in `values.yaml` or `pinned.yaml` is *known* when the channel
//! spec defines it, a template refers to it (the render module walks the
//! compiled templates into a [`KnownKeys`]), or a channel values schema
//! declares it ([`KnownKeys::declare`]). Every other key is reported by
//! [`unknown_keys`] with the file, line and the closest known key, so that a
//! typo (`replica` for `replicas`) is not silently ignored. This module does
//! no IO.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Layer;
use crate::yaml;

/// One step of a known path: a map key, or any key or list item (`#each`
/// iterates every one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    Key(String),
    Any,
}

/// The keys below `values` that something reads, as a tree. A node marked
/// `whole` is read whole (handed to `toYaml`, written, iterated as data), so
/// every key below it is known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KnownKeys {
    whole: bool,
    children: BTreeMap<String, KnownKeys>,
    any: Option<Box<KnownKeys>>,
}

/// What an environment does with a key nothing knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UnknownKeys {
    /// Refuse to render the environment (the default).
    #[default]
    Error,
    /// Render it, with a warning.
    Warn,
}

impl UnknownKeys {
    /// Reads `unknownKeys: error | warn`.
    pub fn parse(text: &str) -> Option<UnknownKeys> {
        match text {
            "error" => Some(UnknownKeys::Error),
            "warn" => Some(UnknownKeys::Warn),
            _ => None,
        }
    }
}

/// A key of a layer that nothing reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    pub file: String,
    pub line: Option<usize>,
    /// The key's path, as `display_path` writes it.
    pub key: String,
    /// The closest known key, as a path.
    pub suggestion: Option<String>,
}

impl std::fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.file.is_empty() {
            write!(f, "`{}`", self.file)?;
            if let Some(line) = self.line {
                write!(f, ", line {line}")?;
            }
            f.write_str(": ")?;
        }
        write!(
            f,
            "`{}` is not a key any template or the channel knows",
            self.key
        )?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean `{s}`?")?;
        }
        Ok(())
    }
}

impl KnownKeys {
    /// Records that `path` (below `values`) is read; `whole` when everything
    /// below it is read too.
    pub fn insert(&mut self, path: &[Seg], whole: bool) {
        let mut node = self;
        for seg in path {
            if node.whole {
                return;
            }
            node = match seg {
                Seg::Key(k) => node.children.entry(k.clone()).or_default(),
                Seg::Any => node.any.get_or_insert_with(Default::default),
            };
        }
        if whole {
            node.whole = true;
            node.children.clear();
            node.any = None;
        }
    }

    /// Makes every key `values` holds known (a channel spec's values); list
    /// items count as any item.
    pub fn define(&mut self, values: &Map<String, Value>) {
        let mut path = Vec::new();
        define_map(self, values, &mut path);
    }

    /// Makes every key a channel's values schema declares known (see
    /// [`super::schema::declared_keys`]); a path marked whole is a map the
    /// schema leaves open, so every key below it is known.
    pub fn declare(&mut self, paths: impl IntoIterator<Item = (Vec<Seg>, bool)>) {
        for (p, whole) in paths {
            self.insert(&p, whole);
        }
    }

    /// Is the key at `path` known? `Seg::Any` stands for a list item.
    pub fn knows(&self, path: &[Seg]) -> bool {
        let mut nodes = vec![self];
        for seg in path {
            if nodes.iter().any(|n| n.whole) {
                return true;
            }
            nodes = step(&nodes, seg);
            if nodes.is_empty() {
                return false;
            }
        }
        true
    }

    /// The known keys one level below the nodes, for suggestions.
    fn names(nodes: &[&KnownKeys]) -> BTreeSet<String> {
        nodes
            .iter()
            .flat_map(|n| n.children.keys().cloned())
            .collect()
    }

    /// Every known path that ends at a named key, for suggestions across
    /// levels (`ldap.host` set at the top level for `global.ldap.host`).
    fn all_paths(&self, prefix: &mut Vec<String>, out: &mut BTreeSet<String>) {
        for (k, child) in &self.children {
            prefix.push(k.clone());
            out.insert(yaml::display_path(prefix));
            child.all_paths(prefix, out);
            prefix.pop();
        }
        if let Some(any) = &self.any {
            prefix.push("0".to_string());
            any.all_paths(prefix, out);
            prefix.pop();
        }
    }
}

fn step<'a>(nodes: &[&'a KnownKeys], seg: &Seg) -> Vec<&'a KnownKeys> {
    let mut next = Vec::new();
    for n in nodes {
        if let Seg::Key(k) = seg
            && let Some(c) = n.children.get(k)
        {
            next.push(c);
        }
        if let Some(any) = &n.any {
            next.push(any.as_ref());
        }
    }
    next
}

fn define_map(known: &mut KnownKeys, values: &Map<String, Value>, path: &mut Vec<Seg>) {
    for (k, v) in values {
        path.push(Seg::Key(k.clone()));
        known.insert(path, false);
        define_value(known, v, path);
        path.pop();
    }
}

fn define_value(known: &mut KnownKeys, v: &Value, path: &mut Vec<Seg>) {
    match v {
        Value::Object(m) => define_map(known, m, path),
        Value::Array(items) => {
            path.push(Seg::Any);
            known.insert(path, false);
            for item in items {
                define_value(known, item, path);
            }
            path.pop();
        }
        _ => {}
    }
}

/// The keys of `layer` that none of `known` knows (the templates', the
/// channel's, the schema's), each reported once: the keys below an unknown
/// key are not reported again.
pub fn unknown_keys(known: &[&KnownKeys], layer: &Layer) -> Vec<UnknownKey> {
    let mut out = Vec::new();
    let mut walk = Walk {
        known,
        layer,
        path: Vec::new(),
        out: &mut out,
    };
    walk.map(&layer.values, known.to_vec());
    out
}

struct Walk<'a, 'o> {
    known: &'a [&'a KnownKeys],
    layer: &'a Layer,
    /// The path in the layer, list items by index.
    path: Vec<String>,
    out: &'o mut Vec<UnknownKey>,
}

impl<'a> Walk<'a, '_> {
    fn map(&mut self, m: &Map<String, Value>, nodes: Vec<&'a KnownKeys>) {
        if nodes.iter().any(|n| n.whole) {
            return;
        }
        for (k, v) in m {
            self.path.push(k.clone());
            let next = step(&nodes, &Seg::Key(k.clone()));
            if next.is_empty() {
                let suggestion = suggest(self.known, &nodes, &self.path);
                self.out.push(UnknownKey {
                    file: self.layer.file.to_string(),
                    line: self.layer.line_of(&self.path),
                    key: yaml::display_path(&self.path),
                    suggestion,
                });
            } else {
                self.value(v, next);
            }
            self.path.pop();
        }
    }

    fn value(&mut self, v: &Value, nodes: Vec<&'a KnownKeys>) {
        if nodes.iter().any(|n| n.whole) {
            return;
        }
        match v {
            Value::Object(m) => self.map(m, nodes),
            Value::Array(items) => {
                let next = step(&nodes, &Seg::Any);
                if next.is_empty() {
                    // A list nothing iterates: its items are read as they are.
                    return;
                }
                for (i, item) in items.iter().enumerate() {
                    self.path.push(i.to_string());
                    self.value(item, next.clone());
                    self.path.pop();
                }
            }
            _ => {}
        }
    }
}

/// What `path` most likely meant: a sibling one edit away, else the same
/// key at another level (`global.ldap` for `ldap`), else a sibling spelled
/// alike, else any known path spelled alike.
fn suggest(known: &[&KnownKeys], nodes: &[&KnownKeys], path: &[String]) -> Option<String> {
    let (key, parent) = path.split_last()?;
    let names = KnownKeys::names(nodes);
    let sibling = crate::config::closest(key, names.iter().map(String::as_str)).map(|s| {
        let mut p = parent.to_vec();
        p.push(s.to_string());
        (strsim::damerau_levenshtein(key, s), yaml::display_path(&p))
    });
    if let Some((d, p)) = &sibling
        && *d <= 1
    {
        return Some(p.clone());
    }
    let mut all = BTreeSet::new();
    for k in known {
        k.all_paths(&mut Vec::new(), &mut all);
    }
    let shown = yaml::display_path(path);
    let elsewhere = all
        .iter()
        .filter(|p| p.ends_with(&format!(".{shown}")))
        .min_by_key(|p| p.len())
        .cloned();
    elsewhere.or(sibling.map(|(_, p)| p)).or_else(|| {
        crate::config::closest(&shown, all.iter().map(String::as_str)).map(String::from)
    })
}

/// Whether a key path, as `explain` takes it, is known; if not, the unknown
/// part of it with a suggestion (`file` and `line` are left empty). A
/// segment that is a number also stands for a list item.
pub fn unknown_path(known: &[&KnownKeys], path: &[String]) -> Option<UnknownKey> {
    let mut nodes: Vec<&KnownKeys> = known.to_vec();
    for (i, key) in path.iter().enumerate() {
        if nodes.iter().any(|n| n.whole) {
            return None;
        }
        let mut next = step(&nodes, &Seg::Key(key.clone()));
        if key.parse::<usize>().is_ok() {
            next.extend(step(&nodes, &Seg::Any));
        }
        if next.is_empty() {
            return Some(UnknownKey {
                file: String::new(),
                line: None,
                key: yaml::display_path(&path[..=i]),
                suggestion: suggest(known, &nodes, &path[..=i]),
            });
        }
        nodes = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::LayerKind;

    fn key(k: &str) -> Seg {
        Seg::Key(k.to_string())
    }

    fn layer(text: &str) -> Layer {
        Layer::parse(LayerKind::User, "values.yaml", text).expect("parses")
    }

    #[test]
    fn a_key_a_template_reads_is_known_and_its_parents_too() {
        let mut known = KnownKeys::default();
        known.insert(&[key("app"), key("replicas")], false);
        assert!(known.knows(&[key("app")]));
        assert!(known.knows(&[key("app"), key("replicas")]));
        assert!(!known.knows(&[key("app"), key("replica")]));
    }

    #[test]
    fn a_key_below_a_map_read_whole_is_known() {
        let mut known = KnownKeys::default();
        known.insert(&[key("app"), key("resources")], true);
        assert!(known.knows(&[key("app"), key("resources"), key("limits"), key("cpu")]));
    }

    #[test]
    fn a_typo_is_reported_with_file_line_and_the_closest_sibling() {
        let mut known = KnownKeys::default();
        known.insert(&[key("app"), key("replicas")], false);
        let found = unknown_keys(&[&known], &layer("app:\n  replica: 5\n"));
        assert_eq!(
            found,
            vec![UnknownKey {
                file: "values.yaml".into(),
                line: Some(2),
                key: "app.replica".into(),
                suggestion: Some("app.replicas".into()),
            }]
        );
        assert_eq!(
            found[0].to_string(),
            "`values.yaml`, line 2: `app.replica` is not a key any template or the channel knows; did you mean `app.replicas`?"
        );
    }

    #[test]
    fn keys_below_an_unknown_key_are_reported_once() {
        let known = KnownKeys::default();
        let found = unknown_keys(&[&known], &layer("ap:\n  replicas: 1\n  image: {}\n"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key, "ap");
    }

    #[test]
    fn a_key_in_a_list_items_map_is_checked_against_what_each_reads() {
        let mut known = KnownKeys::default();
        known.insert(&[key("hosts"), Seg::Any, key("name")], false);
        let found = unknown_keys(&[&known], &layer("hosts:\n  - name: a\n  - nme: b\n"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key, "hosts.1.nme");
        assert_eq!(found[0].line, Some(3));
        assert_eq!(found[0].suggestion.as_deref(), Some("hosts.1.name"));
    }

    #[test]
    fn the_channels_keys_are_known_and_lists_stand_for_every_item() {
        let mut known = KnownKeys::default();
        let channel = layer("app:\n  tolerations:\n    - key: a\n");
        known.define(&channel.values);
        assert!(known.knows(&[key("app"), key("tolerations"), Seg::Any, key("key")]));
        assert!(unknown_keys(&[&known], &layer("app:\n  tolerations:\n    - key: b\n")).is_empty());
    }

    #[test]
    fn a_path_asked_about_is_checked_like_a_key_set() {
        let mut known = KnownKeys::default();
        known.insert(&[key("app"), key("replicas")], false);
        known.insert(&[key("tls"), Seg::Any, key("hosts")], false);
        let path = |p: &str| p.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(unknown_path(&[&known], &path("app.replicas")), None);
        assert_eq!(unknown_path(&[&known], &path("tls.0.hosts")), None);
        let found = unknown_path(&[&known], &path("app.replica.x")).expect("unknown");
        assert_eq!(
            found.to_string(),
            "`app.replica` is not a key any template or the channel knows; did you mean `app.replicas`?"
        );
    }

    #[test]
    fn a_key_set_at_the_wrong_level_suggests_where_it_belongs() {
        let mut known = KnownKeys::default();
        known.insert(&[key("global"), key("ldap"), key("host")], false);
        let found = unknown_keys(&[&known], &layer("ldap:\n  host: x\n"));
        assert_eq!(found[0].key, "ldap");
        assert_eq!(found[0].suggestion.as_deref(), Some("global.ldap"));
    }
}
