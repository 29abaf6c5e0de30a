//! A channel's values schema: a JSON Schema (draft 2020-12) that the merged
//! values of every environment must pass before they are rendered.
//!
//! A channel publishes it as `schema:` beside `values:` in its spec, so it
//! travels with the spec through every source, cache and signature. A
//! violation names the value's layer, file and line (from the [`Provenance`]
//! of the merge), and never the value itself. A schema never makes hydrant
//! fetch anything: a `$ref` to another document is refused when the schema is
//! compiled. This module does no IO.

use jsonschema::{Retrieve, Uri, Validator};
use serde_json::Value;

use super::known::Seg;
use super::merge::{Merged, Origin};
use crate::yaml::{self, KeyPath};

/// A compiled values schema.
pub struct ValuesSchema {
    validator: Validator,
}

impl std::fmt::Debug for ValuesSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValuesSchema")
    }
}

/// A value of the merged values that the schema refuses.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Where the offending value sits in the values (empty: the root).
    pub path: KeyPath,
    /// The layer, file and line that set it, when a layer did.
    pub origin: Option<Origin>,
    /// What the schema wants, without the value.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = if self.path.is_empty() {
            "the values".to_string()
        } else {
            format!("`{}`", yaml::display_path(&self.path))
        };
        match &self.origin {
            Some(o) => match o.line {
                Some(line) => write!(
                    f,
                    "`{}`, line {line} ({} layer): {key} does not match the channel's values schema: {}",
                    o.file, o.layer, self.message
                ),
                None => write!(
                    f,
                    "`{}` ({} layer): {key} does not match the channel's values schema: {}",
                    o.file, o.layer, self.message
                ),
            },
            None => write!(
                f,
                "{key} does not match the channel's values schema: {}",
                self.message
            ),
        }
    }
}

/// Refuses every `$ref` that leaves the schema document.
struct NoRetrieval;

impl Retrieve for NoRetrieval {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("hydrant does not fetch schemas; `{uri}` must be inside the schema").into())
    }
}

/// Compiles a values schema; the error says what is wrong with it.
pub fn compile(schema: &Value) -> Result<ValuesSchema, String> {
    let validator = jsonschema::draft202012::options()
        .with_retriever(NoRetrieval)
        .build(schema)
        .map_err(|e| format!("invalid values schema: {}", e.masked()))?;
    Ok(ValuesSchema { validator })
}

impl ValuesSchema {
    /// Every violation of the merged values, in the validator's order.
    pub fn check(&self, merged: &Merged) -> Vec<Violation> {
        self.validator
            .iter_errors(&merged.values)
            .map(|e| {
                let path: KeyPath = e
                    .instance_path()
                    .segments()
                    .map(|s| s.to_string())
                    .collect();
                let origin = origin_of(merged, &path);
                Violation {
                    path,
                    origin,
                    message: e.masked().to_string(),
                }
            })
            .collect()
    }
}

/// The keys a values schema declares, for the known-keys check: each path
/// under `properties` (through local `$ref`s and `items`, a list item being
/// [`Seg::Any`]), marked whole where the schema leaves the map open
/// (`additionalProperties` other than `false`, or `patternProperties`).
pub fn declared_keys(schema: &Value) -> Vec<(Vec<Seg>, bool)> {
    let mut out = Vec::new();
    declare(schema, schema, &mut Vec::new(), 0, &mut out);
    out
}

fn declare(
    root: &Value,
    node: &Value,
    path: &mut Vec<Seg>,
    depth: usize,
    out: &mut Vec<(Vec<Seg>, bool)>,
) {
    // Local references may be recursive: a schema deeper than any values file
    // adds nothing.
    if depth > 32 {
        return;
    }
    let Some(map) = node.as_object() else {
        return;
    };
    if let Some(target) = map
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer))
    {
        declare(root, target, path, depth + 1, out);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for sub in map.get(key).and_then(Value::as_array).into_iter().flatten() {
            declare(root, sub, path, depth + 1, out);
        }
    }
    let open = map
        .get("additionalProperties")
        .is_some_and(|a| a != &Value::Bool(false))
        || map.contains_key("patternProperties");
    if open && !path.is_empty() {
        out.push((path.clone(), true));
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            path.push(Seg::Key(name.clone()));
            out.push((path.clone(), false));
            declare(root, sub, path, depth + 1, out);
            path.pop();
        }
    }
    if let Some(items) = map.get("items") {
        path.push(Seg::Any);
        declare(root, items, path, depth + 1, out);
        path.pop();
    }
}

/// The origin of the value at `path`: the leaf itself or one enclosing it,
/// else the first leaf within it (a map whose keys the schema refuses).
fn origin_of(merged: &Merged, path: &[String]) -> Option<Origin> {
    if let Some(o) = merged.provenance.origin(path) {
        return Some(o.clone());
    }
    merged
        .provenance
        .iter()
        .find(|(k, _)| k.starts_with(path))
        .map(|(_, o)| o.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Layer, LayerKind, merge};
    use serde_json::json;

    fn merged(channel: &str, user: &str) -> Merged {
        let c = Layer::parse(LayerKind::Channel, "channels/stable.yaml", channel).unwrap();
        let u = Layer::parse(LayerKind::User, "environments/dev/values.yaml", user).unwrap();
        merge(&[&c, &u])
    }

    fn schema() -> ValuesSchema {
        compile(&json!({
            "type": "object",
            "properties": {
                "app": {
                    "type": "object",
                    "properties": {"replicas": {"type": "integer", "minimum": 0}},
                    "additionalProperties": false
                }
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_violation_names_the_file_line_and_layer_of_the_value_but_not_the_value() {
        let m = merged(
            "app:\n  replicas: 1\n",
            "# dev\napp:\n  replicas: \"fivehundred\"\n",
        );
        let found = schema().check(&m);
        assert_eq!(found.len(), 1, "{found:?}");
        let text = found[0].to_string();
        assert!(
            text.contains("`environments/dev/values.yaml`, line 3 (user input layer)")
                && text.contains("`app.replicas`")
                && text.contains("integer"),
            "{text}"
        );
        assert!(!text.contains("fivehundred"), "{text}");
    }

    #[test]
    fn every_violation_is_reported() {
        let m = merged(
            "app:\n  replicas: 1\n",
            "app:\n  replicas: -1\n  replica: 5\n",
        );
        let found = schema().check(&m);
        assert_eq!(found.len(), 2, "{found:?}");
        let all = found.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert!(all.iter().any(|t| t.contains("replica")), "{all:?}");
        assert!(all.iter().all(|t| t.contains("line ")), "{all:?}");
    }

    #[test]
    fn values_that_pass_have_no_violation() {
        let m = merged("app:\n  replicas: 1\n", "app:\n  replicas: 3\n");
        assert!(schema().check(&m).is_empty());
    }

    #[test]
    fn a_schema_that_refers_outside_itself_is_refused_and_nothing_is_fetched() {
        let err = compile(&json!({"$ref": "https://127.0.0.1:9/values.schema.json"})).unwrap_err();
        assert!(err.contains("invalid values schema"), "{err}");
        let err = compile(&json!({"type": "no-such-type"})).unwrap_err();
        assert!(err.contains("invalid values schema"), "{err}");
    }

    #[test]
    fn a_schema_declares_its_properties_through_refs_and_items() {
        let schema = serde_json::json!({
            "$defs": {"image": {"type": "object", "properties": {"tag": {"type": "string"}}}},
            "type": "object",
            "properties": {
                "app": {"type": "object", "properties": {"image": {"$ref": "#/$defs/image"}}},
                "extra": {"type": "object", "additionalProperties": {"type": "string"}},
                "hosts": {"type": "array", "items": {"properties": {"name": {}}}}
            }
        });
        let key = |k: &str| Seg::Key(k.to_string());
        let declared = declared_keys(&schema);
        assert!(declared.contains(&(vec![key("app"), key("image"), key("tag")], false)));
        assert!(declared.contains(&(vec![key("extra")], true)));
        assert!(declared.contains(&(vec![key("hosts"), Seg::Any, key("name")], false)));
    }
}
