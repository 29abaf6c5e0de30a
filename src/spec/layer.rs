//! One layer of values, parsed from a file, with the line of every leaf.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::render::safe;
use crate::yaml::{self, KeyPath};

/// Where a layer sits in the hierarchy, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerKind {
    /// Layer 1: the release channel's spec.
    Channel,
    /// Layer 2: the user input spec, `values.yaml`.
    User,
    /// Layer 3: the custom resource spec, `pinned.yaml`.
    Custom,
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LayerKind::Channel => "release channel",
            LayerKind::User => "user input",
            LayerKind::Custom => "custom resource",
        })
    }
}

/// The values of one layer and where they came from.
#[derive(Debug, Clone)]
pub struct Layer {
    pub kind: LayerKind,
    /// The file (or URL) the values were read from, as shown to people.
    pub file: Arc<str>,
    pub values: Map<String, Value>,
    /// The line that set each leaf.
    pub lines: HashMap<KeyPath, usize>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("`{file}`: invalid YAML at {source}{excerpt}")]
    Yaml {
        file: String,
        #[source]
        source: yaml::YamlError,
        /// The line, with a caret under the column.
        excerpt: String,
    },
    #[error("`{file}`, line {line}: the values must be a map of keys, found {found}")]
    NotAMap {
        file: String,
        line: usize,
        found: &'static str,
    },
    #[error(
        "`{file}`, line {line}: key `{key}` holds the reserved character U+{code:04X}, which hydrant keeps for itself"
    )]
    Reserved {
        file: String,
        line: usize,
        key: String,
        code: u32,
    },
}

impl Layer {
    /// An empty layer: what a missing file means.
    pub fn empty(kind: LayerKind, file: &str) -> Layer {
        Layer {
            kind,
            file: Arc::from(file),
            values: Map::new(),
            lines: HashMap::new(),
        }
    }

    /// Parses a layer from YAML (JSON is YAML too). An empty file is an empty layer.
    pub fn parse(kind: LayerKind, file: &str, text: &str) -> Result<Layer, SpecError> {
        let yaml_error = |source: yaml::YamlError| SpecError::Yaml {
            file: file.to_string(),
            excerpt: yaml::excerpt(text, source.line, source.col, &crate::render::is_secret_key),
            source,
        };
        let Some(node) = yaml::parse_single(text).map_err(yaml_error)? else {
            return Ok(Layer::empty(kind, file));
        };
        let mut lines = HashMap::new();
        let value = yaml::to_value(&node, &mut |path, line| {
            lines.insert(path.clone(), line);
        })
        .map_err(yaml_error)?;
        // Lists merge whole, but an error in an item's map names its line.
        yaml::add_item_lines(&node, &mut lines);
        Layer::from_value(kind, file, value, lines, node.line)
    }

    /// A layer from an already parsed value (a channel spec's `values`).
    pub fn from_value(
        kind: LayerKind,
        file: &str,
        value: Value,
        lines: HashMap<KeyPath, usize>,
        line: usize,
    ) -> Result<Layer, SpecError> {
        let values = match value {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(SpecError::NotAMap {
                    file: file.to_string(),
                    line,
                    found: kind_name(&other),
                });
            }
        };
        let layer = Layer {
            kind,
            file: Arc::from(file),
            values,
            lines,
        };
        layer.check_reserved()?;
        Ok(layer)
    }

    /// The line that set `path`, or the nearest enclosing line known.
    pub fn line_of(&self, path: &[String]) -> Option<usize> {
        (0..=path.len())
            .rev()
            .find_map(|n| self.lines.get(&path[..n]).copied())
    }

    fn check_reserved(&self) -> Result<(), SpecError> {
        let mut path = Vec::new();
        check_map(&self.values, &mut path, &mut |path, c| {
            SpecError::Reserved {
                file: self.file.to_string(),
                line: self.line_of(path).unwrap_or(0),
                key: yaml::display_path(path),
                code: c as u32,
            }
        })
    }
}

fn check_value(
    v: &Value,
    path: &mut KeyPath,
    err: &mut dyn FnMut(&KeyPath, char) -> SpecError,
) -> Result<(), SpecError> {
    match v {
        Value::String(s) => match safe::find_reserved(s) {
            Some(c) => Err(err(path, c)),
            None => Ok(()),
        },
        Value::Array(a) => a.iter().enumerate().try_for_each(|(i, item)| {
            path.push(i.to_string());
            let r = check_value(item, path, err);
            path.pop();
            r
        }),
        Value::Object(m) => check_map(m, path, err),
        _ => Ok(()),
    }
}

fn check_map(
    m: &Map<String, Value>,
    path: &mut KeyPath,
    err: &mut dyn FnMut(&KeyPath, char) -> SpecError,
) -> Result<(), SpecError> {
    m.iter().try_for_each(|(k, item)| {
        path.push(k.clone());
        let r = match safe::find_reserved(k) {
            Some(c) => Err(err(path, c)),
            None => check_value(item, path, err),
        };
        path.pop();
        r
    })
}

pub(crate) fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}
