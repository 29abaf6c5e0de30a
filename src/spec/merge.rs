//! Merging layers, keeping the provenance of every leaf.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::layer::{Layer, LayerKind};
use crate::yaml::KeyPath;

/// Which layer, file and line set a value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Origin {
    pub layer: LayerKind,
    pub file: Arc<str>,
    pub line: Option<usize>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} ({}:{line})", self.layer, self.file),
            None => write!(f, "{} ({})", self.layer, self.file),
        }
    }
}

/// The origin of every leaf of a merged value. A leaf is a scalar, a list
/// (lists are replaced whole) or an empty map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Provenance(BTreeMap<KeyPath, Origin>);

impl Provenance {
    /// The origin of `path`, or of the nearest leaf enclosing it (an item of a list).
    pub fn origin(&self, path: &[String]) -> Option<&Origin> {
        (0..=path.len()).rev().find_map(|n| self.0.get(&path[..n]))
    }

    /// Every leaf and its origin, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&KeyPath, &Origin)> {
        self.0.iter()
    }

    fn forget(&mut self, prefix: &[String]) {
        let doomed: Vec<KeyPath> = self
            .0
            .range::<[String], _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.0.remove(&k);
        }
    }

    fn record(&mut self, path: &mut KeyPath, value: &Value, layer: &Layer) {
        match value {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    path.push(k.clone());
                    self.record(path, v, layer);
                    path.pop();
                }
            }
            _ => {
                let origin = Origin {
                    layer: layer.kind,
                    file: layer.file.clone(),
                    line: layer.line_of(path),
                };
                self.0.insert(path.clone(), origin);
            }
        }
    }
}

/// The merged values of an environment and where each leaf came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub values: Value,
    pub provenance: Provenance,
}

/// Merges layers, lowest first.
pub fn merge(layers: &[&Layer]) -> Merged {
    let mut values = Map::new();
    let mut provenance = Provenance::default();
    let mut path = Vec::new();
    for layer in layers {
        apply(
            &mut values,
            &mut provenance,
            &mut path,
            &layer.values,
            layer,
        );
    }
    Merged {
        values: Value::Object(values),
        provenance,
    }
}

fn apply(
    acc: &mut Map<String, Value>,
    provenance: &mut Provenance,
    path: &mut KeyPath,
    patch: &Map<String, Value>,
    layer: &Layer,
) {
    for (key, value) in patch {
        path.push(key.clone());
        match (value, acc.get_mut(key)) {
            (Value::Null, _) => {
                acc.remove(key);
                provenance.forget(path);
            }
            (Value::Object(patch_map), Some(Value::Object(acc_map))) => {
                let was_empty = acc_map.is_empty();
                apply(acc_map, provenance, path, patch_map, layer);
                if !acc_map.is_empty() {
                    // No longer an empty map: its keys have their own origins.
                    provenance.0.remove(path.as_slice());
                } else if !was_empty {
                    // This layer deleted every key: the empty map is its doing.
                    provenance.record(path, &Value::Object(Map::new()), layer);
                }
            }
            _ => {
                provenance.forget(path);
                let cleaned = without_nulls(value);
                provenance.record(path, &cleaned, layer);
                acc.insert(key.clone(), cleaned);
            }
        }
        path.pop();
    }
}

/// A merge patch applied to nothing: nulls inside new maps mean "absent".
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// How one key came to have its value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Explanation {
    pub key: String,
    /// The final value, `None` when no layer sets it (or the last one deleted it).
    pub value: Option<Value>,
    pub origin: Option<Origin>,
    /// What each layer says about the key, lowest first (layers silent on it are left out).
    pub layers: Vec<LayerSay>,
}

/// One layer's say about a key.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerSay {
    pub origin: Origin,
    /// The layer's value; `null` deletes the key.
    pub value: Value,
    /// Set where the layer replaced a whole enclosing value (`path` is where).
    pub via: Option<String>,
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| match v {
        Value::Object(m) => m.get(k),
        Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// Explains `path` in the merge of `layers` (lowest first).
pub fn explain(layers: &[&Layer], merged: &Merged, path: &[String]) -> Explanation {
    let mut says = Vec::new();
    for layer in layers {
        let root = Value::Object(layer.values.clone());
        // The deepest prefix of the path this layer sets to something that is not
        // a map it merges into: the key itself, or a value replacing an ancestor.
        for n in (1..=path.len()).rev() {
            let Some(v) = lookup(&root, &path[..n]) else {
                continue;
            };
            let is_exact = n == path.len();
            if is_exact || !v.is_object() {
                let value = if is_exact {
                    v.clone()
                } else {
                    lookup(v, &path[n..]).cloned().unwrap_or(Value::Null)
                };
                says.push(LayerSay {
                    origin: Origin {
                        layer: layer.kind,
                        file: layer.file.clone(),
                        line: layer.line_of(&path[..n]),
                    },
                    value,
                    via: (!is_exact).then(|| crate::yaml::display_path(&path[..n])),
                });
            }
            break;
        }
    }
    Explanation {
        key: crate::yaml::display_path(path),
        value: lookup(&merged.values, path).cloned(),
        origin: lookup(&merged.values, path).and_then(|_| merged.provenance.origin(path).cloned()),
        layers: says,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layer(kind: LayerKind, text: &str) -> Layer {
        let file = match kind {
            LayerKind::Channel => "channels/stable.yaml",
            LayerKind::User => "environments/dev/values.yaml",
            LayerKind::Custom => "environments/dev/pinned.yaml",
        };
        Layer::parse(kind, file, text).unwrap()
    }

    fn merged(channel: &str, user: &str, custom: &str) -> Merged {
        let (a, b, c) = (
            layer(LayerKind::Channel, channel),
            layer(LayerKind::User, user),
            layer(LayerKind::Custom, custom),
        );
        merge(&[&a, &b, &c])
    }

    fn p(s: &str) -> Vec<String> {
        crate::yaml::parse_path(s).unwrap()
    }

    #[test]
    fn maps_merge_recursively() {
        let m = merged("a: {x: 1, y: 2}\n", "a: {y: 3, z: 4}\n", "");
        assert_eq!(m.values, json!({"a": {"x": 1, "y": 3, "z": 4}}));
    }

    #[test]
    fn a_higher_layer_scalar_replaces_the_lower_one() {
        let m = merged("v: 1\n", "v: 2\n", "v: 3\n");
        assert_eq!(m.values, json!({"v": 3}));
    }

    #[test]
    fn lists_are_replaced_whole() {
        let m = merged("l: [1, 2, 3]\n", "l: [4]\n", "");
        assert_eq!(m.values, json!({"l": [4]}));
    }

    #[test]
    fn null_in_a_higher_layer_deletes_the_key() {
        let m = merged("a: {x: 1, y: {z: 2}}\n", "a: {y: null}\n", "");
        assert_eq!(m.values, json!({"a": {"x": 1}}));
        assert!(m.provenance.origin(&p("a.y.z")).is_none());
    }

    #[test]
    fn nulls_inside_a_new_map_are_dropped() {
        let m = merged("", "a: {x: null, y: 1}\n", "");
        assert_eq!(m.values, json!({"a": {"y": 1}}));
    }

    #[test]
    fn a_map_meeting_a_scalar_takes_the_higher_layer() {
        let m = merged("a: {x: 1}\n", "a: off\n", "");
        assert_eq!(m.values, json!({"a": "off"}));
        let m = merged("a: plain\n", "a: {x: 1}\n", "");
        assert_eq!(m.values, json!({"a": {"x": 1}}));
        assert_eq!(
            m.provenance.origin(&p("a.x")).unwrap().layer,
            LayerKind::User
        );
    }

    #[test]
    fn every_leaf_records_layer_file_and_line() {
        let m = merged(
            "a:\n  x: 1\n  y: 2\n",
            "# user\na:\n  y: 3\n",
            "\n\nl: [1]\n",
        );
        let x = m.provenance.origin(&p("a.x")).unwrap();
        assert_eq!(
            (x.layer, &*x.file, x.line),
            (LayerKind::Channel, "channels/stable.yaml", Some(2))
        );
        let y = m.provenance.origin(&p("a.y")).unwrap();
        assert_eq!(
            (y.layer, &*y.file, y.line),
            (LayerKind::User, "environments/dev/values.yaml", Some(3))
        );
        let item = m.provenance.origin(&p("l.0")).unwrap();
        assert_eq!((item.layer, item.line), (LayerKind::Custom, Some(3)));
    }

    #[test]
    fn a_missing_layer_is_an_empty_layer() {
        let m = merged("a: 1\n", "", "# only comments\n");
        assert_eq!(m.values, json!({"a": 1}));
    }

    #[test]
    fn explain_shows_the_winner_and_what_it_overrode() {
        let (a, b, c) = (
            layer(LayerKind::Channel, "app:\n  replicas: 1\n"),
            layer(LayerKind::User, "app:\n  replicas: 2\n"),
            layer(LayerKind::Custom, "other: x\n"),
        );
        let layers = [&a, &b, &c];
        let m = merge(&layers);
        let e = explain(&layers, &m, &p("app.replicas"));
        assert_eq!(e.value, Some(json!(2)));
        assert_eq!(e.origin.as_ref().unwrap().layer, LayerKind::User);
        assert_eq!(e.layers.len(), 2);
        assert_eq!(e.layers[0].value, json!(1));
        assert_eq!(e.layers[0].origin.line, Some(2));
    }

    #[test]
    fn explain_shows_a_deletion_and_a_replaced_ancestor() {
        let (a, b, c) = (
            layer(LayerKind::Channel, "r:\n  limits:\n    cpu: 1\n"),
            layer(LayerKind::User, "r:\n  limits: null\n"),
            layer(LayerKind::Custom, ""),
        );
        let layers = [&a, &b, &c];
        let m = merge(&layers);
        let e = explain(&layers, &m, &p("r.limits.cpu"));
        assert_eq!(e.value, None);
        assert_eq!(e.layers[1].value, Value::Null);
        assert_eq!(e.layers[1].via.as_deref(), Some("r.limits"));
    }

    #[test]
    fn reserved_characters_in_values_are_refused_with_file_line_and_key() {
        let err = Layer::parse(LayerKind::User, "v.yaml", "a:\n  b: \"x\\uE000y\"\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("v.yaml") && text.contains("line 2") && text.contains("a.b"),
            "{text}"
        );
    }

    #[test]
    fn a_layer_that_is_not_a_map_is_refused() {
        let err = Layer::parse(LayerKind::User, "v.yaml", "- a\n- b\n").unwrap_err();
        assert!(err.to_string().contains("must be a map"), "{err}");
    }
}
