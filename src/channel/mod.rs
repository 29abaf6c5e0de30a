//! Release channels: where layer 1 of the spec hierarchy comes from.
//!
//! A channel spec has the shape served by the reference operator's deploy
//! server: `{metadata: {version, ...}, chart?: {...}, values: {...}}`. A
//! [`Source`] fetches the latest spec of a channel, or a pinned release of it.
//! [`parse_spec`] is pure; sources do the IO.

mod file;
pub mod flags;
pub mod http;
mod verify;

pub use file::{EXTENSIONS, FileSource};
pub use http::{Auth, HttpOptions, HttpSource};
pub use verify::Verifier;

use serde_json::{Map, Value};

use crate::spec::{Layer, LayerKind};
use crate::yaml;

/// A release channel's spec.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    pub channel: String,
    /// `metadata.version`.
    pub version: String,
    /// All of `metadata`, unknown fields kept.
    pub metadata: Map<String, Value>,
    pub chart: Option<Value>,
    /// `schema`: a JSON Schema (draft 2020-12) the merged values must pass.
    pub schema: Option<std::sync::Arc<Value>>,
    /// `values`, as layer 1.
    pub values: Layer,
    /// How this spec was obtained.
    pub fetch: Fetch,
    /// The version last accepted from this channel, when hydrant remembers one.
    pub previous_version: Option<String>,
    /// The spec's exact text, as served or read.
    pub raw: String,
    /// Its signature (base64), when it was verified.
    pub signature: Option<String>,
}

/// How a spec was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// Read from a file or directory (bundled, or a mirror).
    File,
    /// Downloaded just now.
    Network,
    /// The server answered 304: the cached spec is current.
    NotModified,
    /// The channel could not be reached: the last good spec, this old.
    StaleCache { age_secs: u64, reason: String },
}

impl std::fmt::Display for Fetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fetch::File => f.write_str("file"),
            Fetch::Network => f.write_str("network"),
            Fetch::NotModified => f.write_str("cache (304 not modified)"),
            Fetch::StaleCache { age_secs, reason } => {
                write!(f, "stale cache, {} old ({reason})", http::age(*age_secs))
            }
        }
    }
}

impl ChannelSpec {
    /// Whether this spec goes back from the version last accepted.
    pub fn is_downgrade(&self) -> bool {
        self.previous_version
            .as_deref()
            .is_some_and(|p| is_downgrade(p, &self.version))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("no spec for channel `{channel}` in `{source_name}` (looked for {looked_for}){}", known_list(.known))]
    NotFound {
        channel: String,
        source_name: String,
        looked_for: String,
        known: Vec<String>,
    },
    #[error(
        "release `{release}` of channel `{channel}` is not in `{source_name}` (looked for {looked_for})"
    )]
    ReleaseNotFound {
        channel: String,
        release: String,
        source_name: String,
        looked_for: String,
    },
    #[error("`{origin}`: {message}")]
    Invalid { origin: String, message: String },
    #[error("cannot reach channel `{url}`, and no spec of it is cached: {message}")]
    Unreachable { url: String, message: String },
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A failed fetch is kept for the rest of its cycle like a spec (see
/// [`crate::project`]); an I/O error is kept as its kind and message.
impl Clone for ChannelError {
    fn clone(&self) -> Self {
        match self {
            ChannelError::NotFound {
                channel,
                source_name,
                looked_for,
                known,
            } => ChannelError::NotFound {
                channel: channel.clone(),
                source_name: source_name.clone(),
                looked_for: looked_for.clone(),
                known: known.clone(),
            },
            ChannelError::ReleaseNotFound {
                channel,
                release,
                source_name,
                looked_for,
            } => ChannelError::ReleaseNotFound {
                channel: channel.clone(),
                release: release.clone(),
                source_name: source_name.clone(),
                looked_for: looked_for.clone(),
            },
            ChannelError::Invalid { origin, message } => ChannelError::Invalid {
                origin: origin.clone(),
                message: message.clone(),
            },
            ChannelError::Unreachable { url, message } => ChannelError::Unreachable {
                url: url.clone(),
                message: message.clone(),
            },
            ChannelError::Io { path, source } => ChannelError::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
        }
    }
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!("; channels there: {}", known.join(", "))
    }
}

/// Where channel specs come from.
pub trait Source: Send + Sync {
    /// The latest spec of `channel`, or release `release` of it.
    fn fetch(&self, channel: &str, release: Option<&str>) -> Result<ChannelSpec, ChannelError>;
    /// The source as shown to people (never with credentials).
    fn describe(&self) -> String;
}

/// Whether going from version `from` to `to` is a downgrade. Versions are
/// compared as semver where both parse (a leading `v` is ignored), else not at all.
pub fn is_downgrade(from: &str, to: &str) -> bool {
    let parse = |v: &str| semver::Version::parse(v.trim_start_matches('v')).ok();
    match (parse(from), parse(to)) {
        (Some(a), Some(b)) => b < a,
        _ => false,
    }
}

/// Parses a channel spec (YAML or JSON) read from `origin`.
pub fn parse_spec(channel: &str, origin: &str, text: &str) -> Result<ChannelSpec, ChannelError> {
    let invalid = |message: String| ChannelError::Invalid {
        origin: origin.to_string(),
        message,
    };
    let node = yaml::parse_single(text)
        .map_err(|e| {
            invalid(format!(
                "invalid YAML or JSON at {e}{}",
                yaml::excerpt(text, e.line, e.col, &crate::render::is_secret_key)
            ))
        })?
        .ok_or_else(|| invalid("the spec is empty".to_string()))?;
    let mut lines = std::collections::HashMap::new();
    let value = yaml::to_value(&node, &mut |path, line| {
        if path.first().map(String::as_str) == Some("values") {
            lines.insert(path[1..].to_vec(), line);
        }
    })
    .map_err(|e| {
        invalid(format!(
            "invalid value at {e}{}",
            yaml::excerpt(text, e.line, e.col, &crate::render::is_secret_key)
        ))
    })?;
    let Value::Object(mut top) = value else {
        return Err(invalid(
            "a channel spec must be a map with `metadata` and `values`".to_string(),
        ));
    };
    let metadata = match top.remove("metadata") {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid("`metadata` must be a map".to_string())),
        None => {
            return Err(invalid(
                "the spec has no `metadata` (with `metadata.version`)".to_string(),
            ));
        }
    };
    let version = match metadata.get("version") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(invalid("the spec has no `metadata.version`".to_string())),
    };
    // The version goes into commit trailers, titles and URLs: one strict token.
    crate::config::check_release_id(&version)
        .map_err(|e| invalid(format!("`metadata.version`: {e}")))?;
    let values_line = match &node.kind {
        yaml::NodeKind::Map(entries) => entries
            .iter()
            .find(|(k, _)| k == "values")
            .map(|(_, v)| v.line)
            .unwrap_or(node.line),
        _ => node.line,
    };
    let values = match top.remove("values") {
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err(invalid("`values` must be a map".to_string())),
        None => return Err(invalid(
            "the spec has no `values`: a channel spec is `{metadata: {version}, values: {...}}`"
                .to_string(),
        )),
    };
    let values = Layer::from_value(LayerKind::Channel, origin, values, lines, values_line)
        .map_err(|e| invalid(e.to_string()))?;
    // `metadata` and `chart` reach the templates too: they may no more hold
    // hydrant's reserved characters than the values may.
    for (name, part) in [
        ("metadata", Some(&Value::Object(metadata.clone()))),
        ("chart", top.get("chart")),
    ] {
        if let Some((path, c)) = part.and_then(crate::render::safe::find_reserved_in) {
            let key = std::iter::once(name.to_string())
                .chain(path)
                .collect::<Vec<_>>();
            return Err(invalid(format!(
                "key `{}` holds the reserved character U+{:04X}, which hydrant keeps for itself",
                yaml::display_path(&key),
                c as u32
            )));
        }
    }
    let schema = match top.remove("schema") {
        None | Some(Value::Null) => None,
        Some(schema) => {
            crate::spec::compile_schema(&schema).map_err(|e| invalid(format!("`schema`: {e}")))?;
            Some(std::sync::Arc::new(schema))
        }
    };
    Ok(ChannelSpec {
        channel: channel.to_string(),
        version,
        metadata,
        chart: top.remove("chart"),
        schema,
        values,
        fetch: Fetch::File,
        previous_version: None,
        raw: text.to_string(),
        signature: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_in_chart_or_metadata_are_refused() {
        for spec in [
            "metadata: {version: 1.0.0}\nchart: {name: \"\\uE002x\\n  injected: y\"}\nvalues: {}\n",
            "metadata: {version: 1.0.0, note: \"\\uE000\"}\nvalues: {}\n",
        ] {
            let err = parse_spec("stable", "channels/stable.yaml", spec).unwrap_err();
            assert!(err.to_string().contains("reserved character"), "{err}");
        }
    }

    #[test]
    fn a_spec_parses_with_lines_for_its_values() {
        let spec = parse_spec("stable", "channels/stable.yaml", "metadata:\n  version: 0.62.1\n  extra: kept\nchart: {name: x}\nvalues:\n  global:\n    host: h\n").unwrap();
        assert_eq!(spec.version, "0.62.1");
        assert_eq!(spec.metadata["extra"], "kept");
        assert_eq!(
            spec.values.line_of(&["global".into(), "host".into()]),
            Some(7)
        );
    }

    #[test]
    fn a_spec_may_carry_a_values_schema_and_a_broken_one_is_refused() {
        let spec = parse_spec(
            "stable",
            "channels/stable.yaml",
            "metadata: {version: 1.0.0}\nschema: {type: object}\nvalues: {}\n",
        )
        .unwrap();
        assert_eq!(
            spec.schema.as_deref(),
            Some(&serde_json::json!({"type": "object"}))
        );
        let err = parse_spec(
            "stable",
            "channels/stable.yaml",
            "metadata: {version: 1.0.0}\nschema: {type: 5}\nvalues: {}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("channels/stable.yaml") && err.contains("`schema`"),
            "{err}"
        );
    }

    #[test]
    fn json_specs_parse_too() {
        let spec = parse_spec(
            "stable",
            "s.json",
            r#"{"metadata": {"version": "1.0.0"}, "values": {"a": 1}}"#,
        )
        .unwrap();
        assert_eq!(spec.values.values["a"], 1);
    }

    #[test]
    fn a_spec_without_values_is_an_error_naming_the_file() {
        let err = parse_spec(
            "stable",
            "channels/stable.yaml",
            "metadata:\n  version: 1\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("channels/stable.yaml")
                && err.to_string().contains("no `values`"),
            "{err}"
        );
    }

    #[test]
    fn downgrades_are_recognised_by_semver() {
        assert!(is_downgrade("0.63.0", "0.62.1"));
        assert!(is_downgrade("0.63.0", "0.63.0-rc.2"));
        assert!(!is_downgrade("0.63.0-rc.2", "0.63.0"));
        assert!(!is_downgrade("0.9.0", "0.10.0"));
        assert!(!is_downgrade("weekly", "daily"));
    }

    #[test]
    fn a_channel_version_that_is_not_a_strict_token_is_refused_naming_its_origin() {
        for version in [
            "\"1.0.0\\nHydrant-Environment: prod\"",
            "\"1.0.0 (beta)\"",
            "\"`x`\"",
            "\"<!--\"",
            &format!("\"{}\"", "9".repeat(129)),
        ] {
            let text = format!("metadata: {{version: {version}}}\nvalues: {{}}\n");
            let err = parse_spec("stable", "https://deploy.example.com/c/stable", &text)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("https://deploy.example.com/c/stable")
                    && err.contains("metadata.version")
                    && err.contains("not a release id"),
                "{err}"
            );
            assert!(!err.contains('\n'), "{err}");
        }
        let spec = parse_spec(
            "stable",
            "x",
            "metadata: {version: 0.63.0-rc.1+g1a2b}\nvalues: {}\n",
        )
        .unwrap();
        assert_eq!(spec.version, "0.63.0-rc.1+g1a2b");
    }

    #[test]
    fn a_spec_without_a_version_is_an_error() {
        let err = parse_spec("stable", "x.yaml", "metadata: {}\nvalues: {}\n").unwrap_err();
        assert!(err.to_string().contains("metadata.version"), "{err}");
    }
}
