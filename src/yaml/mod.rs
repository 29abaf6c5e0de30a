//! YAML in and out, the way Kubernetes needs it.
//!
//! [`load`] reads YAML into a positioned tree; [`to_value`] turns that tree into a
//! JSON value using the YAML 1.2 core schema (so `on`, `yes` and `no` stay
//! strings) and reports the line of every leaf; [`emit`] writes values back as
//! canonical YAML that a YAML 1.1 reader (Kubernetes' own) reads the same way.
//!
//! This module is shared by the value layers, the channel specs and the
//! manifests, so it sits beside them rather than inside `render`. It does no IO.

pub mod emit;
pub mod load;

pub use emit::{to_block, to_document};
pub use load::{Node, NodeKind, YamlError, parse_documents, parse_single};

use saphyr_parser::ScalarStyle;
use serde_json::{Map, Number, Value};

/// A path of map keys and list indices from the root of a value.
pub type KeyPath = Vec<String>;

/// Resolves a plain (unquoted) scalar with the YAML 1.2 core schema.
pub fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_int(text) {
        return Value::Number(n);
    }
    if looks_like_float(text)
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

fn parse_int(text: &str) -> Option<Number> {
    let (neg, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(rest) = digits.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = digits.strip_prefix("0o") {
        (8, rest)
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if radix != 10 && text.starts_with(['-', '+']) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        // i64::MIN's magnitude is one more than i64::MAX.
        let v = 0i64.checked_sub_unsigned(magnitude)?;
        Some(Number::from(v))
    } else {
        Some(Number::from(magnitude))
    }
}

fn looks_like_float(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (!a.is_empty() || !b.is_empty())
                && a.chars().all(|c| c.is_ascii_digit())
                && b.chars().all(|c| c.is_ascii_digit())
        }
        None => !mantissa.is_empty() && mantissa.chars().all(|c| c.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

/// Whether `text` is written as an integer (`42`, `-7`, `0x1f`, `0o17`)
/// whatever its size.
fn looks_like_int(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (radix, digits) = match (digits.strip_prefix("0x"), digits.strip_prefix("0o")) {
        (Some(rest), _) => (16, rest),
        (_, Some(rest)) => (8, rest),
        _ => (10, digits),
    };
    !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix))
}

/// Converts a scalar's text to a value, honouring the core schema tags. An
/// integer that does not fit in 64 bits is an error: as a float it would
/// silently lose digits.
pub fn scalar_value(text: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Value, String> {
    let tag = tag.map(|t| t.strip_prefix("tag:yaml.org,2002:").unwrap_or(t));
    let typed =
        style == ScalarStyle::Plain && tag.is_none() || matches!(tag, Some("int" | "float"));
    if typed && looks_like_int(text) && parse_int(text).is_none() {
        return Err(format!(
            "`{text}` is an integer beyond 64 bits, which would lose digits; quote it to keep it as text"
        ));
    }
    match tag {
        None if style == ScalarStyle::Plain => Ok(resolve_plain(text)),
        None | Some("str") | Some("!") => Ok(Value::String(text.to_string())),
        Some(kind @ ("int" | "float" | "bool" | "null")) => {
            let v = resolve_plain(text);
            let ok = match kind {
                "int" => v.is_i64() || v.is_u64(),
                "float" => v.is_number(),
                "bool" => v.is_boolean(),
                _ => v.is_null(),
            };
            if ok {
                Ok(v)
            } else {
                Err(format!("`{text}` is not a valid !!{kind}"))
            }
        }
        Some(other) => Err(format!("unsupported tag `{other}`")),
    }
}

/// Converts a loaded node to a JSON value with the core schema, calling
/// `on_leaf(path, line)` for every leaf: a scalar, a list (lists are replaced
/// whole by higher layers, so a list is one leaf) or an empty map; and for
/// every key holding a map, with the key's line, so that a map a higher layer
/// empties with `null`s can still be traced to a line.
pub fn to_value(node: &Node, on_leaf: &mut dyn FnMut(&KeyPath, usize)) -> Result<Value, YamlError> {
    let mut path = Vec::new();
    convert(node, &mut path, on_leaf)
}

fn convert(
    node: &Node,
    path: &mut KeyPath,
    on_leaf: &mut dyn FnMut(&KeyPath, usize),
) -> Result<Value, YamlError> {
    match &node.kind {
        NodeKind::Scalar { text, style, tag } => {
            on_leaf(path, node.line);
            scalar_value(text, *style, tag.as_deref()).map_err(|message| YamlError {
                line: node.line,
                col: node.col,
                message,
            })
        }
        NodeKind::Seq(items) => {
            on_leaf(path, node.line);
            let mut ignore = |_: &KeyPath, _: usize| {};
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                let v = convert(item, path, &mut ignore);
                path.pop();
                out.push(v?);
            }
            Ok(Value::Array(out))
        }
        NodeKind::Map(entries) => {
            if entries.is_empty() || !path.is_empty() {
                on_leaf(path, node.line);
            }
            let mut out = Map::new();
            for (key, value) in entries {
                path.push(key.clone());
                let v = convert(value, path, on_leaf);
                path.pop();
                out.insert(key.clone(), v?);
            }
            Ok(Value::Object(out))
        }
    }
}

/// Adds the line of every item of a list, and of what it holds, to `lines`
/// (which [`to_value`] reports as one leaf): where a settings error in the
/// third entry of a list points. Lines already known are kept.
pub fn add_item_lines(node: &Node, lines: &mut std::collections::HashMap<KeyPath, usize>) {
    fn walk(
        node: &Node,
        path: &mut KeyPath,
        in_list: bool,
        lines: &mut std::collections::HashMap<KeyPath, usize>,
    ) {
        if in_list {
            lines.entry(path.clone()).or_insert(node.line);
        }
        let children: Vec<(String, &Node)> = match &node.kind {
            NodeKind::Scalar { .. } => return,
            NodeKind::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| (i.to_string(), n))
                .collect(),
            NodeKind::Map(entries) => entries.iter().map(|(k, n)| (k.clone(), n)).collect(),
        };
        let list = in_list || matches!(node.kind, NodeKind::Seq(_));
        for (key, child) in children {
            path.push(key);
            walk(child, path, list, lines);
            path.pop();
        }
    }
    walk(node, &mut Vec::new(), false, lines);
}

/// Shows a key path the way people write it: `global.extraEnv.BUCKET`, with
/// keys that hold dots or spaces in brackets: `ingress.annotations["a.b/c"]`.
pub fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for (i, key) in path.iter().enumerate() {
        let simple = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if simple {
            if i > 0 {
                out.push('.');
            }
            out.push_str(key);
        } else {
            out.push('[');
            out.push_str(&serde_json::to_string(key).unwrap_or_default());
            out.push(']');
        }
    }
    out
}

/// Parses a key path written as [`display_path`] writes it.
pub fn parse_path(text: &str) -> Result<KeyPath, String> {
    let mut path = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after
                .find("\"]")
                .ok_or_else(|| format!("unclosed `[` in key path `{text}`"))?;
            let key: String = serde_json::from_str(&after[..end + 1])
                .map_err(|_| format!("expected a quoted key inside `[...]` in `{text}`"))?;
            path.push(key);
            rest = after[end + 2..]
                .strip_prefix('.')
                .unwrap_or(&after[end + 2..]);
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end == 0 {
                return Err(format!("empty key in key path `{text}`"));
            }
            path.push(rest[..end].to_string());
            rest = rest[end..].strip_prefix('.').unwrap_or(&rest[end..]);
        }
    }
    if path.is_empty() {
        return Err("empty key path".to_string());
    }
    Ok(path)
}

/// The line of `text` that a YAML error at `line` and `col` (both from 1)
/// points at, with a caret under the column, to follow an error message:
///
/// ```text
///     3 |   bad: [unclosed
///       |        ^
/// ```
///
/// An error past the end of a line (or on a blank last line) points just
/// after the last line that holds something. A line whose key `hides` names
/// (a credential) shows the key alone, never its value. Empty when `text`
/// has nothing to show.
pub fn excerpt(text: &str, line: usize, col: usize, hides: &dyn Fn(&str) -> bool) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut at = line.clamp(1, lines.len().max(1));
    let mut col = match line > lines.len() {
        true => usize::MAX,
        false => col.max(1),
    };
    while at > 1 && lines.get(at - 1).is_none_or(|l| l.trim().is_empty()) {
        at -= 1;
        col = usize::MAX;
    }
    let Some(shown) = lines.get(at - 1).filter(|l| !l.trim().is_empty()) else {
        return String::new();
    };
    let mut shown: String = shown
        .chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect();
    let body = shown.trim_start().trim_start_matches("- ");
    if let Some((key, _)) = body.split_once(':') {
        let key = key.trim().trim_matches(['"', '\'']);
        if hides(key) {
            let end = shown.find(':').map_or(shown.len(), |i| i + 1);
            shown.truncate(end);
            shown.push_str(" …");
        }
    }
    const MAX: usize = 160;
    if shown.chars().count() > MAX {
        shown = shown.chars().take(MAX).collect::<String>() + "…";
    }
    let width = shown.chars().count();
    let col = col.min(width + 1);
    // Tabs stay tabs under the line so that the caret lines up.
    let pad: String = shown
        .chars()
        .take(col - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let number = at.to_string();
    let gutter = " ".repeat(number.len());
    format!("\n {number} | {shown}\n {gutter} | {pad}^")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_shows_the_line_with_a_caret_under_the_column() {
        let never = |_: &str| false;
        let text = "global:\n  host: ok\n  bad: [unclosed\n";
        assert_eq!(
            excerpt(text, 3, 8, &never),
            "\n 3 |   bad: [unclosed\n   |        ^"
        );
        // Past the end: just after the last line that holds something.
        assert_eq!(
            excerpt(text, 4, 1, &never),
            "\n 3 |   bad: [unclosed\n   |                 ^"
        );
        assert_eq!(
            excerpt("a:\n\tb: c\n", 2, 3, &never),
            "\n 2 | \tb: c\n   | \t ^"
        );
        assert_eq!(excerpt("", 1, 1, &never), "");
        let secret = |k: &str| k == "password";
        let shown = excerpt("db:\n  password: \"hunter2\n", 2, 13, &secret);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("2 |   password: …"), "{shown}");
    }
    use serde_json::json;

    #[test]
    fn issue_13_integers_beyond_64_bits_are_refused_not_rounded() {
        for big in [
            "18446744073709551616",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "0x1ffffffffffffffff",
        ] {
            let err = scalar_value(big, ScalarStyle::Plain, None).unwrap_err();
            assert!(err.contains("beyond 64 bits"), "{err}");
            assert!(scalar_value(big, ScalarStyle::Plain, Some("tag:yaml.org,2002:int")).is_err());
        }
        assert_eq!(
            scalar_value(
                "123456789012345678901234567890",
                ScalarStyle::DoubleQuoted,
                None
            )
            .unwrap(),
            json!("123456789012345678901234567890")
        );
        assert_eq!(
            scalar_value("1.5e3", ScalarStyle::Plain, None).unwrap(),
            json!(1500.0)
        );
    }

    #[test]
    fn yaml_1_1_booleans_stay_strings() {
        for word in ["on", "off", "yes", "no", "y", "n", "On", "YES"] {
            assert_eq!(resolve_plain(word), json!(word));
        }
    }

    #[test]
    fn core_schema_numbers_booleans_and_null_resolve() {
        assert_eq!(resolve_plain("42"), json!(42));
        assert_eq!(resolve_plain("-7"), json!(-7));
        assert_eq!(resolve_plain("-9223372036854775808"), json!(i64::MIN));
        assert_eq!(resolve_plain("18446744073709551615"), json!(u64::MAX));
        assert_eq!(resolve_plain("0x1F"), json!(31));
        assert_eq!(resolve_plain("0o17"), json!(15));
        assert_eq!(resolve_plain("1.5"), json!(1.5));
        assert_eq!(resolve_plain("1e3"), json!(1000.0));
        assert_eq!(resolve_plain("true"), json!(true));
        assert_eq!(resolve_plain("~"), Value::Null);
        assert_eq!(resolve_plain("0.62.1"), json!("0.62.1"));
        assert_eq!(resolve_plain("1:20"), json!("1:20"));
        assert_eq!(resolve_plain("-"), json!("-"));
        assert_eq!(resolve_plain("."), json!("."));
    }

    #[test]
    fn quoted_scalars_are_strings_and_tags_are_checked() {
        assert_eq!(
            scalar_value("42", ScalarStyle::DoubleQuoted, None).unwrap(),
            json!("42")
        );
        assert_eq!(
            scalar_value("42", ScalarStyle::Plain, Some("tag:yaml.org,2002:str")).unwrap(),
            json!("42")
        );
        assert!(scalar_value("x", ScalarStyle::Plain, Some("tag:yaml.org,2002:int")).is_err());
        assert!(scalar_value("x", ScalarStyle::Plain, Some("!custom")).is_err());
    }

    #[test]
    fn leaves_are_reported_with_their_lines() {
        let node = parse_single("a:\n  b: 1\n  c: [1, 2]\n  d: {}\n")
            .unwrap()
            .unwrap();
        let mut leaves = Vec::new();
        let v = to_value(&node, &mut |p, l| leaves.push((p.join("."), l))).unwrap();
        assert_eq!(v, json!({"a": {"b": 1, "c": [1, 2], "d": {}}}));
        assert_eq!(
            leaves,
            vec![
                ("a".to_string(), 1),
                ("a.b".to_string(), 2),
                ("a.c".to_string(), 3),
                ("a.d".to_string(), 4)
            ]
        );
    }

    #[test]
    fn key_paths_round_trip_through_their_display_form() {
        let path = vec![
            "ingress".to_string(),
            "annotations".to_string(),
            "nginx.ingress.kubernetes.io/proxy-body-size".to_string(),
        ];
        let shown = display_path(&path);
        assert_eq!(
            shown,
            "ingress.annotations[\"nginx.ingress.kubernetes.io/proxy-body-size\"]"
        );
        assert_eq!(parse_path(&shown).unwrap(), path);
        assert_eq!(
            parse_path("global.extraEnv.BUCKET").unwrap(),
            vec!["global", "extraEnv", "BUCKET"]
        );
        assert!(parse_path("a..b").is_err());
    }
}
