//! Property tests of what hydrant promises about values, on generated inputs:
//!
//! - layers merge as the README says (maps key by key, scalars and lists
//!   replaced whole, `null` deletes), and every leaf remembers the layer and file
//!   that set it;
//! - a value can never change the structure of a rendered manifest, and reaches
//!   it exactly, with its type;
//! - the canonical YAML writer reads back as what it wrote, and leaves bare only
//!   strings that a YAML 1.1 reader (Kubernetes') also reads as strings.
//!
//! Each property runs 256 cases; `PROPTEST_CASES=20000 cargo test --test
//! properties` runs more, and `-- --nocapture` shows how many each one ran.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use hydrant::config::EnvironmentConfig;
use hydrant::render::{Engine, RenderError, TemplateFile};
use hydrant::repo::EnvironmentFiles;
use hydrant::spec::{self, Layer, LayerKind, Merged, Origin, SpecError};
use hydrant::yaml;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------
// Running properties

/// 256 cases, or `PROPTEST_CASES`. (`ProptestConfig::default()` reads the
/// variable too; it is read here so the default of 256 does not depend on proptest's.)
/// Failures are not saved to a file: a failure found is kept as a test below.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs a property and says how many cases it generated (shrinking included).
/// A failure panics with the minimal failing input.
fn check<S: Strategy>(
    name: &str,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let count = AtomicU64::new(0);
    let started = std::time::Instant::now();
    let result = TestRunner::new(config()).run(&strategy, |input| {
        count.fetch_add(1, Ordering::Relaxed);
        property(input)
    });
    eprintln!(
        "property `{name}`: {} cases in {:.2?}",
        count.load(Ordering::Relaxed),
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("property `{name}`: {e}");
    }
}

// ---------------------------------------------------------------------------
// Values

type Path = Vec<String>;

fn path(keys: &[&str]) -> Path {
    keys.iter().map(|k| k.to_string()).collect()
}

/// The value at `path`, through maps only (lists are leaves).
fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.as_object()?.get(k))
}

/// Every leaf of a map tree: a scalar, a list or an empty map (not the root).
fn leaves(v: &Value) -> BTreeMap<Path, &Value> {
    fn walk<'a>(v: &'a Value, at: &mut Path, out: &mut BTreeMap<Path, &'a Value>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, item) in m {
                    at.push(k.clone());
                    walk(item, at, out);
                    at.pop();
                }
            }
            _ if at.is_empty() => {}
            _ => {
                out.insert(at.clone(), v);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// Every path a layer writes, with what it writes there (nulls and maps included).
fn writes(v: &Map<String, Value>) -> BTreeMap<Path, &Value> {
    fn walk<'a>(m: &'a Map<String, Value>, at: &mut Path, out: &mut BTreeMap<Path, &'a Value>) {
        for (k, item) in m {
            at.push(k.clone());
            out.insert(at.clone(), item);
            if let Value::Object(inner) = item {
                walk(inner, at, out);
            }
            at.pop();
        }
    }
    let mut out = BTreeMap::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

// ---------------------------------------------------------------------------
// 1. Merging layers

const KINDS: [LayerKind; 3] = [LayerKind::Channel, LayerKind::User, LayerKind::Custom];
const FILES: [&str; 3] = [
    "channels/stable.yaml",
    "environments/dev/values.yaml",
    "environments/dev/pinned.yaml",
];

/// Three keys, so layers keep writing to the same paths.
fn small_key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from)
}

fn small_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (-2i64..50).prop_map(Value::from),
        prop::sample::select(vec!["x", "on", "1.20", "", "a: b", "~"]).prop_map(Value::from),
    ]
}

/// A leaf a layer may write: a scalar, `null`, a list (maybe holding nulls and
/// maps with nulls, which a list keeps as they are) or an empty map.
fn layer_leaf() -> impl Strategy<Value = Value> {
    let item = prop_oneof![
        3 => small_scalar(),
        1 => Just(Value::Null),
        1 => Just(json!({"a": null, "b": 1})),
    ];
    prop_oneof![
        5 => small_scalar(),
        3 => Just(Value::Null),
        2 => prop::collection::vec(item, 0..3).prop_map(Value::Array),
        1 => Just(json!({})),
    ]
}

fn small_map(inner: impl Strategy<Value = Value>) -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(small_key(), inner, 0..=3).prop_map(|m| m.into_iter().collect())
}

/// The values of one layer: maps up to four levels deep.
fn layer_values() -> impl Strategy<Value = Map<String, Value>> {
    let tree =
        layer_leaf().prop_recursive(3, 32, 3, |inner| small_map(inner).prop_map(Value::Object));
    small_map(tree)
}

/// A layer as hydrant reads it: written as YAML, parsed with lines. Also
/// returns the YAML text, to check the lines provenance points at.
fn parse_layer(i: usize, values: &Map<String, Value>) -> Result<(Layer, String), TestCaseError> {
    let text = yaml::to_document(&Value::Object(values.clone()));
    let layer = Layer::parse(KINDS[i], FILES[i], &text)
        .map_err(|e| TestCaseError::fail(format!("layer {i} does not parse: {e}\n{text}")))?;
    prop_assert_eq!(
        &layer.values,
        values,
        "layer {} read back differently:\n{}",
        i,
        text
    );
    Ok((layer, text))
}

fn parse_layers(values: &[Map<String, Value>]) -> Result<Vec<(Layer, String)>, TestCaseError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| parse_layer(i, v))
        .collect()
}

fn merge_all(layers: &[(Layer, String)]) -> Merged {
    let refs: Vec<&Layer> = layers.iter().map(|(l, _)| l).collect();
    spec::merge(&refs)
}

fn provenance(m: &Merged) -> BTreeMap<Path, Origin> {
    m.provenance
        .iter()
        .map(|(p, o)| (p.clone(), o.clone()))
        .collect()
}

/// The README's merge rules, written as plainly as possible: a tree whose
/// leaves remember the index of the layer that set them.
#[derive(Debug, Clone)]
enum Model {
    /// A scalar, a list or an empty map, and the layer that set it.
    Leaf(Value, usize),
    /// A map with keys. When a higher layer deletes them all, it becomes an
    /// empty map set by that layer.
    Map(BTreeMap<String, Model>),
}

impl Model {
    /// A value written where nothing (or a scalar or list) was: `null`s mean absent.
    fn fresh(v: &Value, layer: usize) -> Option<Model> {
        match v {
            Value::Null => None,
            Value::Object(m) => {
                let children: BTreeMap<String, Model> = m
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), Model::fresh(v, layer)?)))
                    .collect();
                Some(if children.is_empty() {
                    Model::Leaf(json!({}), layer)
                } else {
                    Model::Map(children)
                })
            }
            other => Some(Model::Leaf(other.clone(), layer)),
        }
    }

    /// Layer `layer` writes `patch` over `acc`.
    fn apply(acc: Option<Model>, patch: &Value, layer: usize) -> Option<Model> {
        match (patch, acc) {
            (Value::Null, _) => None,
            (Value::Object(patch), Some(Model::Map(mut children))) => {
                for (k, v) in patch {
                    let child = match Model::apply(children.remove(k), v, layer) {
                        Some(Model::Map(c)) if c.is_empty() => Model::Leaf(json!({}), layer),
                        Some(child) => child,
                        None => continue,
                    };
                    children.insert(k.clone(), child);
                }
                Some(Model::Map(children))
            }
            // A map merging into an empty map: the keys it adds are its own;
            // when it adds none, the empty map stays the lower layer's.
            (Value::Object(_), Some(Model::Leaf(Value::Object(_), set_by))) => {
                match Model::fresh(patch, layer) {
                    Some(Model::Leaf(_, _)) => Some(Model::Leaf(json!({}), set_by)),
                    other => other,
                }
            }
            (patch, _) => Model::fresh(patch, layer),
        }
    }

    fn merge(layers: &[Map<String, Value>]) -> Model {
        let mut acc = Model::Map(BTreeMap::new());
        for (i, values) in layers.iter().enumerate() {
            acc = Model::apply(Some(acc), &Value::Object(values.clone()), i)
                .expect("a map patch keeps the root");
        }
        acc
    }

    /// The model as a value, and the layer of every leaf that has one.
    fn flatten(&self, at: &mut Path, origins: &mut BTreeMap<Path, usize>) -> Value {
        match self {
            Model::Leaf(v, layer) => {
                origins.insert(at.clone(), *layer);
                v.clone()
            }
            Model::Map(children) => Value::Object(
                children
                    .iter()
                    .map(|(k, child)| {
                        at.push(k.clone());
                        let v = child.flatten(at, origins);
                        at.pop();
                        (k.clone(), v)
                    })
                    .collect(),
            ),
        }
    }
}

/// Checks that an origin names layer `i`, and the line of its YAML holding the
/// key (or, for a block list, its first item).
fn check_origin(
    at: &Path,
    origin: &Origin,
    i: usize,
    layers: &[(Layer, String)],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        origin.layer,
        KINDS[i],
        "layer of `{}`",
        yaml::display_path(at)
    );
    prop_assert_eq!(
        &*origin.file,
        FILES[i],
        "file of `{}`",
        yaml::display_path(at)
    );
    let (_, text) = &layers[i];
    let lines: Vec<&str> = text.lines().collect();
    let n = origin.line.unwrap_or(0).wrapping_sub(1);
    let line = lines.get(n).map(|l| l.trim_start()).unwrap_or_default();
    let key = at.last().map(String::as_str).unwrap_or_default();
    let holds_key = |l: &str| l.trim_start().starts_with(&format!("{key}:"));
    let first_item = line.starts_with("- ") && n > 0 && holds_key(lines[n - 1]);
    prop_assert!(
        holds_key(line) || first_item,
        "`{}` points at line {:?} of layer {}, `{}`:\n{}",
        yaml::display_path(at),
        origin.line,
        i,
        line,
        text
    );
    Ok(())
}

fn two_or_three_layers() -> impl Strategy<Value = Vec<Map<String, Value>>> {
    prop::collection::vec(layer_values(), 2..=3)
}

#[test]
fn merging_follows_the_reference_model_with_provenance() {
    check("merge = model", two_or_three_layers(), |values| {
        let layers = parse_layers(&values)?;
        let merged = merge_all(&layers);
        let mut expected_origins = BTreeMap::new();
        let expected = Model::merge(&values).flatten(&mut Vec::new(), &mut expected_origins);
        prop_assert_eq!(&merged.values, &expected);

        let origins = provenance(&merged);
        let refs: Vec<&Layer> = layers.iter().map(|(l, _)| l).collect();
        for (at, &i) in &expected_origins {
            let origin = origins.get(at).ok_or_else(|| {
                TestCaseError::fail(format!("no origin for `{}`", yaml::display_path(at)))
            })?;
            check_origin(at, origin, i, &layers)?;
            let e = spec::explain(&refs, &merged, at);
            prop_assert_eq!(e.value.as_ref(), lookup(&merged.values, at));
            prop_assert_eq!(e.origin.as_ref(), Some(origin));
        }
        // Nothing else has an origin.
        for at in origins.keys() {
            prop_assert!(
                expected_origins.contains_key(at),
                "`{}` has an origin but is no leaf of {}",
                yaml::display_path(at),
                merged.values
            );
        }
        Ok(())
    });
}

/// Each layer's values as one map value, to look paths up in.
fn roots(values: &[Map<String, Value>]) -> Vec<Value> {
    values.iter().map(|m| Value::Object(m.clone())).collect()
}

#[test]
fn null_in_a_higher_layer_deletes_the_key() {
    check("null deletes", two_or_three_layers(), |values| {
        let merged = merge_all(&parse_layers(&values)?);
        let roots = roots(&values);
        for (i, layer) in values.iter().enumerate() {
            for (at, v) in writes(layer) {
                let set_again = roots[i + 1..]
                    .iter()
                    .any(|higher| lookup(higher, &at).is_some());
                if v.is_null() && !set_again {
                    prop_assert_eq!(
                        lookup(&merged.values, &at),
                        None,
                        "layer {} deletes `{}`",
                        i,
                        yaml::display_path(&at)
                    );
                }
            }
        }
        Ok(())
    });
}

/// Whether a layer above `i` writes `at`, or replaces or deletes one of its
/// ancestors (writes something other than a map there).
fn overridden_above(roots: &[Value], i: usize, at: &[String]) -> bool {
    roots[i + 1..].iter().any(|higher| {
        lookup(higher, at).is_some()
            || (1..at.len()).any(|n| lookup(higher, &at[..n]).is_some_and(|v| !v.is_object()))
    })
}

#[test]
fn the_highest_layer_setting_a_scalar_or_list_wins_and_lists_are_replaced_whole() {
    check("highest wins", two_or_three_layers(), |values| {
        let layers = parse_layers(&values)?;
        let merged = merge_all(&layers);
        let origins = provenance(&merged);
        let roots = roots(&values);
        // Whatever a layer writes that no higher layer overrides is in the result
        // exactly (a list is the layer's list, nulls and all), with its origin.
        for (i, layer) in values.iter().enumerate() {
            for (at, v) in writes(layer) {
                if v.is_null() || v.is_object() || overridden_above(&roots, i, &at) {
                    continue;
                }
                prop_assert_eq!(lookup(&merged.values, &at), Some(v));
                let origin = origins.get(&at).ok_or_else(|| {
                    TestCaseError::fail(format!("no origin for `{}`", yaml::display_path(&at)))
                })?;
                check_origin(&at, origin, i, &layers)?;
            }
        }
        // And every scalar or list of the result is what the highest layer
        // writing a scalar or list there wrote, and no layer above it overrides.
        for (at, v) in leaves(&merged.values) {
            if v.is_object() {
                continue;
            }
            let top = (0..roots.len())
                .rev()
                .find(|&i| lookup(&roots[i], &at).is_some_and(|w| !w.is_null() && !w.is_object()));
            let Some(i) = top else {
                return Err(TestCaseError::fail(format!(
                    "`{}` = {v} in the result, but no layer writes it",
                    yaml::display_path(&at)
                )));
            };
            prop_assert_eq!(lookup(&roots[i], &at), Some(v));
            prop_assert!(!overridden_above(&roots, i, &at));
        }
        Ok(())
    });
}

/// Merging is a left fold: merging (A, B, C) is merging (A, B) into one layer,
/// then C over it. (The other grouping is not promised: a `null` in B deletes
/// a key of A, but B merged with C first would have dropped that `null`.)
#[test]
fn merging_three_layers_is_merging_the_first_two_then_the_third() {
    let three = prop::collection::vec(layer_values(), 3);
    check("associativity", three, |values| {
        let layers = parse_layers(&values)?;
        let all = merge_all(&layers);
        let first_two = merge_all(&layers[..2]);
        let Value::Object(first_two_values) = first_two.values else {
            return Err(TestCaseError::fail("a merge is not a map"));
        };
        let combined = Layer::from_value(
            LayerKind::User,
            "merged",
            Value::Object(first_two_values),
            HashMap::new(),
            1,
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let stepwise = spec::merge(&[&combined, &layers[2].0]);
        prop_assert_eq!(&stepwise.values, &all.values);
        let (all_origins, stepwise_origins) = (provenance(&all), provenance(&stepwise));
        for (at, v) in leaves(&all.values) {
            if v.is_object() {
                continue;
            }
            let expected = match all_origins.get(&at) {
                Some(o) if o.layer == LayerKind::Custom => o.clone(),
                _ => Origin {
                    layer: LayerKind::User,
                    file: "merged".into(),
                    line: None,
                },
            };
            prop_assert_eq!(stepwise_origins.get(&at), Some(&expected));
        }
        Ok(())
    });
}

/// `Provenance` promises an origin for every leaf, an empty map included: a
/// map a higher layer empties by deleting its keys was set by that layer
/// (issue 8: found by `merging_follows_the_reference_model_with_provenance`).
#[test]
fn a_map_emptied_by_a_higher_layer_has_an_origin() {
    let channel = Layer::parse(LayerKind::Channel, FILES[0], "a:\n  x: 1\n").unwrap();
    let user = Layer::parse(LayerKind::User, FILES[1], "a:\n  x: null\n").unwrap();
    let merged = spec::merge(&[&channel, &user]);
    assert_eq!(merged.values, json!({"a": {}}));
    let origin = merged.provenance.origin(&path(&["a"]));
    assert_eq!(origin.map(|o| o.layer), Some(LayerKind::User));
}

/// An empty map that a higher layer merges keys into is no leaf any more, so
/// `hydrant explain --env dev a` must not name the channel for `a: {x: 1}`,
/// which only `values.yaml` wrote (issue 8: found by
/// `merging_follows_the_reference_model_with_provenance`).
#[test]
fn provenance_forgets_an_empty_map_that_received_keys() {
    let channel = Layer::parse(LayerKind::Channel, FILES[0], "a: {}\n").unwrap();
    let user = Layer::parse(LayerKind::User, FILES[1], "a:\n  x: 1\n").unwrap();
    let layers = [&channel, &user];
    let merged = spec::merge(&layers);
    assert_eq!(merged.values, json!({"a": {"x": 1}}));
    let leaves: Vec<Path> = merged.provenance.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(leaves, vec![path(&["a", "x"])]);
    let e = spec::explain(&layers, &merged, &path(&["a"]));
    assert_ne!(e.origin.map(|o| o.layer), Some(LayerKind::Channel));
}

/// A map whose keys a layer sets only to `null` (`a: {x: null}`, over nothing)
/// is an empty map in the result; its origin names the line of `a:` (issue 8:
/// found by `merging_follows_the_reference_model_with_provenance`).
#[test]
fn an_empty_map_left_by_nulls_has_a_line() {
    let user = Layer::parse(LayerKind::User, FILES[1], "a:\n  x: null\n").unwrap();
    let merged = spec::merge(&[&user]);
    assert_eq!(merged.values, json!({"a": {}}));
    let origin = merged.provenance.origin(&path(&["a"])).unwrap();
    assert_eq!(origin.line, Some(1));
}

// ---------------------------------------------------------------------------
// 2. Rendering

/// Pieces that mean something to YAML, JSON or a YAML 1.1 reader.
const META: [&str; 48] = [
    ": ", ":", "#", " #", "- ", "-", "? ", "{", "}", "[", "]", ",", "&", "*", "!", "!!str ", "|",
    ">", "'", "\"", "%", "@", "`", "\\", " ", "  ", "\n", "\r\n", "\t", "---", "...", "<<", "=",
    "on", "yes", "No", "OFF", "y", "null", "~", "true", "1.20", "0x10", "1e3", ".5", "1:20",
    "2001-1-1", ".inf",
];

/// One character: control characters (C0, DEL, C1), characters YAML treats
/// specially (NEL, line and paragraph separators, BOM, noncharacters), any
/// unicode, and now and then one hydrant reserves (U+E000..U+E00F).
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => prop::char::range('\0', '\u{1f}'),
        1 => prop::sample::select(vec![
            '\u{7f}', '\u{80}', '\u{85}', '\u{9f}', '\u{a0}', '\u{2028}', '\u{2029}', '\u{feff}',
            '\u{fffe}', '\u{ffff}', '\u{1F600}', '\u{e9}', '\u{E010}', '\u{F8FF}', '\u{10FFFF}',
        ]),
        1 => prop::char::range('\u{E000}', '\u{E00F}'),
    ]
}

fn reserved(c: char) -> bool {
    ('\u{E000}'..='\u{E00F}').contains(&c)
}

/// A string of YAML metacharacters, words, unicode and control characters;
/// sometimes long (up to 10,000 characters).
fn nasty_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(META.to_vec()).prop_map(String::from),
        3 => "[a-zA-Z0-9._/-]{1,6}",
        3 => any_char().prop_map(String::from),
    ];
    let short = prop::collection::vec(piece, 0..10).prop_map(|p| p.concat());
    let long = (short.clone(), 1..10_000usize).prop_map(|(s, n)| {
        let unit = if s.is_empty() {
            "x: y\n".to_string()
        } else {
            s
        };
        unit.chars().cycle().take(n).collect()
    });
    prop_oneof![9 => short, 1 => long]
}

/// Like [`nasty_string`], without the characters value layers refuse.
fn allowed_string() -> impl Strategy<Value = String> {
    nasty_string().prop_map(|s| s.chars().filter(|c| !reserved(*c)).collect())
}

/// A string for a map key: at most 100 characters, so that written in double
/// quotes (`\u0001` is six characters) it stays under the 1,024 characters
/// YAML allows an implicit key (see `a_key_longer_than_1024_characters_is_written_readably`).
fn key_string() -> impl Strategy<Value = String> {
    allowed_string().prop_map(|s| s.chars().take(100).collect())
}

fn engine(name: &str, text: &str) -> Engine {
    let files = [TemplateFile {
        name: name.to_string(),
        text: text.to_string(),
    }];
    Engine::new(&files).unwrap_or_else(|e| panic!("{e:?}"))
}

/// A value in every place a template can put one.
const EVERYWHERE: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  annotations:
    hydrant.test/note: {{values.x}}
data:
  plain: {{values.x}}
  quoted: {{quote values.x}}
  spliced: "pre-{{values.x}}-post"
  single: 'pre-{{values.x}}-post'
  bare: pre-{{values.x}}-post
  block: |-{{nindent 4 values.x}}
flow: [{{values.x}}, {k: {{values.x}}}]
list:
  - {{values.x}}
  - {{default "fallback" values.x}}
"#;

fn everywhere(s: &str) -> Value {
    let around = format!("pre-{s}-post");
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "annotations": {"hydrant.test/note": s}},
        "data": {
            "plain": s, "quoted": s, "spliced": around, "single": around, "bare": around,
            "block": s,
        },
        "flow": [s, {"k": s}],
        "list": [s, if s.is_empty() { "fallback" } else { s }],
    })
}

/// Reads `{x: s}` as a value layer would be read, and renders it.
fn render_value(engine: &Engine, s: &str) -> Result<Result<Vec<Value>, RenderError>, SpecError> {
    let text = yaml::to_document(&json!({ "x": s }));
    let layer = Layer::parse(LayerKind::User, FILES[1], &text)?;
    let merged = spec::merge(&[&layer]);
    let data = json!({
        "values": merged.values,
        "env": {"name": "dev", "namespace": "ns"},
        "channel": {"name": "stable", "version": "1.0.0"},
    });
    Ok(engine
        .render(data)
        .map(|docs| docs.into_iter().map(|d| d.value).collect()))
}

/// What must happen to a string a value layer refuses: an error naming the
/// file, line and key, never the value.
fn check_refused(
    s: &str,
    result: Result<Result<Vec<Value>, RenderError>, SpecError>,
) -> Result<(), TestCaseError> {
    match result {
        Err(e @ SpecError::Reserved { .. }) => {
            let text = e.to_string();
            prop_assert!(
                text.contains(FILES[1]) && text.contains("line ") && text.contains("key `x`"),
                "{}",
                text
            );
            prop_assert!(!text.contains(s), "the error shows the value: {}", text);
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "a value holding U+E000..U+E00F was not refused: {other:?}"
        ))),
    }
}

/// What must happen to a connection string with a password in it.
fn check_credential(s: &str, result: Result<Vec<Value>, RenderError>) -> Result<(), TestCaseError> {
    match result {
        Err(e) => {
            let text = e.to_string();
            prop_assert!(
                text.contains("credential") && text.contains("`x`"),
                "{}",
                text
            );
            prop_assert!(!text.contains(s), "the error shows the value: {}", text);
            Ok(())
        }
        Ok(docs) => Err(TestCaseError::fail(format!(
            "a password in a URL was written: {docs:?}"
        ))),
    }
}

/// The canonical YAML of a value reads back as exactly one document, that value.
fn check_written(v: &Value) -> Result<(), TestCaseError> {
    let text = yaml::to_document(v);
    let docs =
        yaml::parse_documents(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    prop_assert_eq!(docs.len(), 1, "{}", text);
    let back = yaml::to_value(&docs[0], &mut |_, _| {})
        .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    prop_assert_eq!(&back, v, "{}", text);
    Ok(())
}

#[test]
fn a_value_never_changes_the_structure_of_a_manifest() {
    let engine = engine("settings.yaml.hbs", EVERYWHERE);
    check("render structure", nasty_string(), |s| {
        let result = render_value(&engine, &s);
        if s.chars().any(reserved) {
            return check_refused(&s, result);
        }
        let result = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
        if hydrant::render::has_url_password(&s) {
            return check_credential(&s, result);
        }
        let docs = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(docs.len(), 1, "{:?}", docs);
        prop_assert_eq!(&docs[0], &everywhere(&s));
        check_written(&docs[0])
    });
}

/// A value used as a key stays one key. Only values whose JSON has at most 400
/// bytes: hydrant writes a value into the template's output as the hex of its
/// JSON, and YAML refuses an implicit key longer than 1,024 characters, so a
/// key from a value of more than about 500 bytes of JSON fails to render
/// ("mapping values are not allowed in this context"). Kubernetes keys are
/// shorter than that (253 characters at most).
#[test]
fn a_value_used_as_a_key_stays_one_key() {
    let engine = engine(
        "keys.yaml.hbs",
        "keys:\n  {{values.x}}: as-a-key\n  fixed: {{values.x}}\neach:\n{{#each values}}\n  {{@key}}: {{this}}\n{{/each}}\n",
    );
    let short = allowed_string().prop_filter("JSON of at most 400 bytes, not `fixed`", |s| {
        serde_json::to_string(s).unwrap().len() <= 400 && s != "fixed"
    });
    check("render keys", short, |s| {
        let docs = render_value(&engine, &s).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if hydrant::render::has_url_password(&s) {
            return check_credential(&s, docs);
        }
        let docs = docs.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut keys = Map::new();
        keys.insert(s.clone(), json!("as-a-key"));
        keys.insert("fixed".to_string(), json!(s));
        let expected = json!({"keys": keys, "each": {"x": s}});
        prop_assert_eq!(docs, vec![expected]);
        Ok(())
    });
}

const CONFIG_MAP: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  annotations:
    hydrant.test/note: {{values.x}}
data:
  plain: {{values.x}}
  quoted: {{quote values.x}}
  spliced: "pre-{{values.x}}-post"
  block: |-{{nindent 4 values.x}}
"#;

/// The whole pipeline, to the file `rendered/dev/` would hold.
#[test]
fn a_value_reaches_the_rendered_file_exactly() {
    let engine = engine("settings.yaml.hbs", CONFIG_MAP);
    let channel = hydrant::channel::parse_spec(
        "stable",
        "channels/stable.yaml",
        "metadata: {version: 1.0.0}\nvalues: {}\n",
    )
    .unwrap();
    let config_text = "channel: stable\nnamespace: ns\n";
    let config: EnvironmentConfig =
        hydrant::config::parse_required("environments/dev/environment.yaml", config_text).unwrap();
    check("rendered file", allowed_string(), |s| {
        let user_text = yaml::to_document(&json!({ "x": s }));
        let env = EnvironmentFiles {
            name: "dev".to_string(),
            config: config.clone(),
            config_text: config_text.to_string(),
            user: Layer::parse(LayerKind::User, FILES[1], &user_text)
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
            user_text: Some(user_text),
            custom: Layer::empty(LayerKind::Custom, FILES[2]),
            custom_text: None,
        };
        let rendered = hydrant::pipeline::build(&engine, &channel, &env);
        if hydrant::render::has_url_password(&s) {
            prop_assert!(rendered.is_err(), "a password in a URL was written");
            return Ok(());
        }
        let rendered = rendered.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let manifests: Vec<&String> = rendered
            .files
            .keys()
            .filter(|f| *f != "kustomization.yaml" && *f != "hydrant.metadata")
            .collect();
        prop_assert_eq!(manifests, vec!["configmap-settings.yaml"]);
        let text = &rendered.files["configmap-settings.yaml"];
        let docs =
            yaml::parse_documents(text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(docs.len(), 1, "{}", text);
        let doc = yaml::to_value(&docs[0], &mut |_, _| {})
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let expected = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "settings",
                "namespace": "ns",
                "annotations": {"hydrant.test/note": s},
            },
            "data": {"plain": s, "quoted": s, "spliced": format!("pre-{s}-post"), "block": s},
        });
        prop_assert_eq!(&doc, &expected, "{}", text);
        Ok(())
    });
}

/// Value layers refuse U+E000..U+E00F, the characters hydrant marks values and
/// trusted structure with; the channel spec's `chart`, also in the root context,
/// is not checked. Handlebars' own `lookup` writes its result through hydrant's
/// escape function, which passes text starting with U+E002 through as trusted
/// structure: a vendor's `chart` can then add keys to a manifest.
#[test]
fn a_value_from_the_channel_spec_chart_cannot_change_the_structure() {
    let engine = engine(
        "settings.yaml.hbs",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  chart: {{lookup chart \"name\"}}\n",
    );
    let spec = "metadata: {version: 1.0.0}\nchart: {name: \"\\uE002x\\n  injected: by-the-channel\"}\nvalues: {}\n";
    let Ok(channel) = hydrant::channel::parse_spec("stable", "channels/stable.yaml", spec) else {
        return; // refusing the spec is a fine answer too
    };
    let config_text = "channel: stable\nnamespace: ns\n";
    let env = EnvironmentFiles {
        name: "dev".to_string(),
        config: hydrant::config::parse_required("environment.yaml", config_text).unwrap(),
        config_text: config_text.to_string(),
        user: Layer::empty(LayerKind::User, FILES[1]),
        user_text: None,
        custom: Layer::empty(LayerKind::Custom, FILES[2]),
        custom_text: None,
    };
    if let Ok(rendered) = hydrant::pipeline::build(&engine, &channel, &env) {
        let data = &rendered.manifests[0].value["data"];
        let keys: Vec<&String> = data.as_object().unwrap().keys().collect();
        assert_eq!(keys, vec!["chart"], "{data}");
    }
}

/// A number, a boolean, or a string that looks like one. Generated floats are
/// the kind manifests hold, at most nine significant digits between 1e-12 and
/// 1e14, which a render keeps exactly; others may come out changed in their
/// last digits (see `a_float_keeps_its_value_through_a_render`). `i64::MIN` is
/// left out: see `the_smallest_integer_reads_as_an_integer`.
fn typed_value() -> impl Strategy<Value = Value> {
    let float = (-999_999_999i64..=999_999_999, -12i32..=5)
        .prop_map(|(m, e)| format!("{m}.0e{e}").parse::<f64>().unwrap());
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![i64::MIN + 1, i64::MAX, -1, 0]).prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        float.prop_map(Value::from),
        prop::sample::select(vec![
            0.1,
            1.0 / 3.0,
            1e300,
            -0.0,
            5e-324,
            1.7976931348623157e308
        ])
        .prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(vec![
            "1", "1.5", "-0", "0x10", "0o7", "1e3", "true", "null", "~", ".inf"
        ])
        .prop_map(Value::from),
    ]
}

#[test]
fn numbers_and_booleans_keep_their_type() {
    let engine = engine(
        "typed.yaml.hbs",
        "plain: {{values.n}}\nflow: [{{values.n}}]\nquoted: {{quote values.n}}\n",
    );
    check("typed values", typed_value(), |n| {
        let layer = Layer::from_value(
            LayerKind::User,
            FILES[1],
            json!({ "n": n }),
            HashMap::new(),
            1,
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let merged = spec::merge(&[&layer]);
        let docs = engine
            .render(json!({"values": merged.values}))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(docs.len(), 1);
        let text = match &n {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let expected = json!({"plain": n, "flow": [n], "quoted": text});
        prop_assert_eq!(&docs[0].value, &expected);
        if let (Some(got), Some(want)) = (docs[0].value["plain"].as_f64(), n.as_f64()) {
            prop_assert_eq!(got.to_bits(), want.to_bits(), "{} became {}", want, got);
        }
        check_written(&docs[0].value)
    });
}

/// Some floats come out of a render changed in their last digits:
/// `3710255958087550.0` (read exactly from values.yaml) is rendered as
/// `3710255958087550.5`, and `2.95905301295773e239` as
/// `2.9590530129577296e239`. The value travels through the template as JSON,
/// read back by `serde_json`, whose default float parser is not exact (with its
/// `float_roundtrip` feature it is). Found by `numbers_and_booleans_keep_their_type`.
#[test]
fn a_float_keeps_its_value_through_a_render() {
    let engine = engine("typed.yaml.hbs", "n: {{values.n}}\n");
    for (text, n) in [
        ("3710255958087550.0", 3710255958087550.0_f64),
        ("2.95905301295773e239", 2.95905301295773e239),
    ] {
        let layer = Layer::parse(LayerKind::User, FILES[1], &format!("n: {text}\n")).unwrap();
        assert_eq!(
            layer.values["n"].as_f64(),
            Some(n),
            "{text} is read exactly"
        );
        let docs = engine.render(json!({"values": layer.values})).unwrap();
        let got = docs[0].value["n"].as_f64().unwrap();
        assert_eq!(got.to_bits(), n.to_bits(), "{text} was rendered as {got:?}");
    }
}

// ---------------------------------------------------------------------------
// 3. The canonical YAML writer

/// Any JSON value: strings full of YAML metacharacters (as values and as keys),
/// numbers at their edges (any finite float: reading YAML is exact), booleans,
/// nulls, nested maps and lists.
fn json_value() -> impl Strategy<Value = Value> {
    let float = prop::num::f64::POSITIVE
        | prop::num::f64::NEGATIVE
        | prop::num::f64::NORMAL
        | prop::num::f64::SUBNORMAL
        | prop::num::f64::ZERO;
    let leaf = prop_oneof![
        3 => allowed_string().prop_map(Value::String),
        2 => typed_value(),
        1 => float.prop_map(Value::from),
        1 => Just(Value::Null),
        1 => Just(json!({})),
        1 => Just(json!([])),
    ];
    leaf.prop_recursive(4, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn the_yaml_writer_reads_back_as_what_it_wrote() {
    check("yaml round trip", json_value(), |v| {
        check_written(&v)?;
        let text = yaml::to_document(&v);
        let back = yaml::parse_single(&text)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .ok_or_else(|| TestCaseError::fail("no document"))?;
        let back = yaml::to_value(&back, &mut |_, _| {})
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // The same value, the same bytes.
        prop_assert_eq!(yaml::to_document(&back), text);
        Ok(())
    });
}

/// Whether a YAML 1.1 reader (Kubernetes reads with go-yaml v2) could take this
/// plain scalar for something other than a string: the booleans, nulls, `<<`
/// and `=` of the 1.1 type repository (compared without case, which is
/// stricter), and anything that starts like a number, a timestamp or
/// `.inf`/`.nan`.
fn yaml_1_1_non_string(text: &str) -> bool {
    const WORDS: [&str; 16] = [
        "y", "yes", "n", "no", "true", "false", "on", "off", "null", "~", "", "<<", "=", ".inf",
        ".nan", "nan",
    ];
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let numeric_start = unsigned.starts_with(|c: char| c.is_ascii_digit())
        || (unsigned.starts_with('.') && unsigned.len() > 1);
    WORDS.contains(&text.to_ascii_lowercase().as_str())
        || numeric_start
        || (text.len() > 1 && text.starts_with(['-', '+']))
}

/// A tree whose every scalar (and key) is a string.
fn string_tree() -> impl Strategy<Value = Value> {
    allowed_string()
        .prop_map(Value::String)
        .prop_recursive(3, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..4).prop_map(Value::Array),
                prop::collection::btree_map(key_string(), inner, 1..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
}

#[test]
fn the_yaml_writer_leaves_bare_only_what_yaml_1_1_reads_as_a_string() {
    check("yaml 1.1 bare strings", string_tree(), |v| {
        let text = yaml::to_document(&v);
        for event in saphyr_parser::Parser::new_from_str(&text) {
            let (event, _) = event.map_err(|e| TestCaseError::fail(format!("{e:?}\n{text}")))?;
            if let saphyr_parser::Event::Scalar(scalar, saphyr_parser::ScalarStyle::Plain, _, _) =
                event
            {
                prop_assert!(
                    !yaml_1_1_non_string(&scalar),
                    "`{}` is written bare:\n{}",
                    scalar,
                    text
                );
            }
        }
        Ok(())
    });
}

/// `-9223372036854775808` (`i64::MIN`) is an integer in the YAML 1.2 core
/// schema, but is read as the float `-9.223372036854776e18`: the magnitude is
/// parsed first and does not fit an `i64`. A value layer holding it renders a
/// float. Found by `the_yaml_writer_reads_back_as_what_it_wrote`.
#[test]
fn the_smallest_integer_reads_as_an_integer() {
    assert_eq!(yaml::resolve_plain("-9223372036854775808"), json!(i64::MIN));
}

/// YAML allows an implicit key of at most 1,024 characters, and the writer
/// writes every key as one: a longer key (from a value through `toYaml`, or in
/// any map the writer is given) gives YAML that no reader accepts. Found by
/// `the_yaml_writer_reads_back_as_what_it_wrote`.
#[test]
fn a_key_longer_than_1024_characters_is_written_readably() {
    let mut m = Map::new();
    m.insert("k".repeat(1100), json!(1));
    let v = Value::Object(m);
    let text = yaml::to_document(&v);
    let node = yaml::parse_single(&text)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap();
    assert_eq!(yaml::to_value(&node, &mut |_, _| {}).unwrap(), v);
}

// ---------------------------------------------------------------------------
// Template syntax variants (issue 13)

/// An interpolation spelled every way Handlebars reads one: spaces, tabs and
/// newlines inside the braces, `~`, `&`, triple braces; over every kind of
/// input (a value, `include` and `toYaml` output, `lookup`), with or without
/// a helper around it.
fn expression() -> impl Strategy<Value = (String, bool)> {
    let input = prop::sample::select(vec![
        "values.x",
        "(include \"p\" values)",
        "(toYaml values.m)",
        "(lookup values \"x\")",
        "(quote values.x)",
    ]);
    let helper = prop::sample::select(vec![
        "",
        "quote",
        "b64enc",
        "upper",
        "lower",
        "sha256sum",
        "default \"d\"",
        "required \"r\"",
        "toYaml",
        "nindent 2",
        "indent 2",
    ]);
    let open = prop::sample::select(vec!["{{", "{{~", "{{ ", "{{\t", "{{\n", "{{~ "]);
    let close = prop::sample::select(vec!["}}", "~}}", " }}", "\t}}", "\n}}", " ~}}"]);
    let raw = prop::sample::select(vec!["", "", "", "&", "& ", "{", "{ "]);
    (input, helper, open, close, raw).prop_map(|(input, helper, open, close, raw)| {
        let call = match (helper, input.starts_with('(')) {
            ("", false) => input.to_string(),
            ("", true) => "lookup values \"x\"".to_string(),
            (h, _) => format!("{h} {input}"),
        };
        let close = if raw.starts_with('{') {
            format!("}}{close}")
        } else {
            close.to_string()
        };
        (format!("{open}{raw}{call}{close}"), !raw.is_empty())
    })
}

/// A manifest template with one generated expression in one of the places a
/// template puts a value, sometimes inside a block.
fn syntax_variant() -> impl Strategy<Value = (String, bool)> {
    let place = prop::sample::select(vec![
        "  k: E\n",
        "  k: \"pre-E\"\n",
        "  k: 'pre-E'\n",
        "  k: pre-E-post\n",
        "  k: |-E\n",
        "  k:E\n",
        "  l:\n  - E\n",
        "  k: [E, E]\n",
    ]);
    let block = prop::sample::select(vec![
        ("", ""),
        ("{{#if values.x}}\n", "{{/if}}\n"),
        ("{{#with values}}\n", "{{/with}}\n"),
        ("{{#each values.l}}\n", "{{/each}}\n"),
        ("{{#*inline \"i\"}}\n", "{{/inline}}\n{{> i}}\n"),
    ]);
    (expression(), place, block).prop_map(|((e, raw), place, (open, close))| {
        let body = place.replace('E', &e);
        (
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: n\ndata:\n  fixed: 1\n{open}{body}{close}"
            ),
            raw,
        )
    })
}

fn variant_engine(template: &str) -> Result<Engine, Vec<RenderError>> {
    Engine::new(&[
        TemplateFile {
            name: "_partials/p.hbs".to_string(),
            text: "k: {{x}}".to_string(),
        },
        TemplateFile {
            name: "t.yaml.hbs".to_string(),
            text: template.to_string(),
        },
    ])
}

fn variant_render(engine: &Engine, s: &str) -> Result<Vec<Value>, RenderError> {
    let data = json!({
        "values": {"x": s, "m": {"k": s}, "l": [s]},
        "env": {"name": "dev", "namespace": "ns"},
    });
    engine
        .render(data)
        .map(|docs| docs.into_iter().map(|d| d.value).collect())
}

/// The shape of a document: its maps' keys and its lists' lengths, with
/// every scalar the same.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        _ => Value::Null,
    }
}

/// Issue 13: over every spelling of an expression, for any value, either the
/// template is refused at compile time, or the render is refused, or the
/// documents have exactly the structure the template gives a harmless value,
/// and no hydrant marker. Raw output is always refused at compile time.
#[test]
fn a_value_never_changes_the_structure_whatever_the_template_syntax() {
    // How many cases compiled, and rendered: the property is not vacuous.
    let compiled = AtomicU64::new(0);
    let rendered = AtomicU64::new(0);
    check(
        "template syntax variants",
        (syntax_variant(), allowed_string()),
        |((template, raw), s)| {
            let engine = match variant_engine(&template) {
                Ok(engine) => engine,
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    // Raw output is refused, or is not Handlebars (`{{&}}` takes
                    // no helper).
                    if raw {
                        let text = errors[0].to_string();
                        prop_assert!(
                            text.contains("raw output")
                                || text.contains("invalid handlebars syntax"),
                            "{:?}",
                            errors
                        );
                    }
                    return Ok(());
                }
            };
            prop_assert!(!raw, "raw output compiled: {:?}", template);
            compiled.fetch_add(1, Ordering::Relaxed);
            let harmless = if s.is_empty() { "" } else { "x" };
            let Ok(hostile) = variant_render(&engine, &s) else {
                return Ok(());
            };
            rendered.fetch_add(1, Ordering::Relaxed);
            let baseline = variant_render(&engine, harmless).map_err(|e| {
                TestCaseError::fail(format!(
                    "renders with {s:?} but not with {harmless:?}: {e}\n{template}"
                ))
            })?;
            for doc in &hostile {
                prop_assert!(
                    !doc.to_string()
                        .chars()
                        .any(|c| ('\u{E000}'..='\u{E00F}').contains(&c)),
                    "a reserved character reached the output: {}",
                    doc
                );
            }
            prop_assert_eq!(
                hostile.iter().map(shape).collect::<Vec<_>>(),
                baseline.iter().map(shape).collect::<Vec<_>>(),
                "{}",
                template
            );
            Ok(())
        },
    );
    let (compiled, rendered) = (compiled.into_inner(), rendered.into_inner());
    eprintln!("template syntax variants: {compiled} compiled, {rendered} rendered");
    assert!(rendered > 0);
}
