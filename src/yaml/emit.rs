//! Canonical YAML output.
//!
//! Every string is written so that both YAML 1.2 and YAML 1.1 readers (Kubernetes
//! reads with a 1.1 library) get back exactly that string: anything that could be
//! read as a number, a boolean (`on`, `yes`, `no`, `off`), null, or that holds an
//! indicator is double-quoted; multi-line text becomes a literal block. Keys are
//! written in a fixed order (`apiVersion`, `kind`, `metadata`, `name`,
//! `namespace`, then alphabetical), so the same value always gives the same bytes.

use std::fmt::Write;

use serde_json::{Map, Value};

const FIRST_KEYS: [&str; 5] = ["apiVersion", "kind", "metadata", "name", "namespace"];

/// Writes a value as one YAML document (no `---`), ending in a newline.
pub fn to_document(value: &Value) -> String {
    let mut out = String::with_capacity(1024);
    match value {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0, false),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, a, 0, false),
        Value::String(s) if !is_plain_safe(s) => {
            write_double_quoted(&mut out, s);
            out.push('\n');
        }
        other => {
            write_scalar(&mut out, other, 0);
            out.push('\n');
        }
    }
    out
}

/// Writes a value as block YAML without a trailing newline, as Helm's `toYaml` does.
pub fn to_block(value: &Value) -> String {
    let mut out = to_document(value);
    while out.ends_with('\n') {
        out.pop();
    }
    out
}

fn ordered(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|(a, _), (b, _)| {
        let rank = |k: &str| {
            FIRST_KEYS
                .iter()
                .position(|f| *f == k)
                .unwrap_or(FIRST_KEYS.len())
        };
        rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
    });
    entries
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

/// `inline_first`: the caller already wrote `- ` and the first entry goes on that line.
fn write_map(out: &mut String, map: &Map<String, Value>, indent: usize, inline_first: bool) {
    for (i, (key, value)) in ordered(map).into_iter().enumerate() {
        if i > 0 || !inline_first {
            pad(out, indent);
        }
        let mut written = String::new();
        write_string(&mut written, key, indent, true);
        // YAML allows an implicit key of at most 1024 characters; a longer one
        // is written as an explicit `? key` / `: value` pair.
        if written.chars().count() > 1000 {
            out.push_str("? ");
            out.push_str(&written);
            out.push('\n');
            pad(out, indent);
        } else {
            out.push_str(&written);
        }
        out.push(':');
        write_child(out, value, indent + 2);
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize, inline_first: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !inline_first {
            pad(out, indent);
        }
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => write_map(out, m, indent + 2, true),
            Value::Array(a) if !a.is_empty() => write_seq(out, a, indent + 2, true),
            scalar => {
                write_scalar(out, scalar, indent + 2);
                out.push('\n');
            }
        }
    }
}

/// Writes what follows `key:`, with nested blocks at `indent`.
fn write_child(out: &mut String, value: &Value, indent: usize) {
    if is_block(value) {
        out.push('\n');
        match value {
            Value::Object(m) => write_map(out, m, indent, false),
            Value::Array(a) => write_seq(out, a, indent, false),
            _ => unreachable!(),
        }
    } else {
        out.push(' ');
        write_scalar(out, value, indent);
        out.push('\n');
    }
}

fn write_scalar(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(out, s, indent, false),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

fn write_string(out: &mut String, s: &str, indent: usize, is_key: bool) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else if !is_key && literal_block_fits(s) {
        write_literal(out, s, indent);
    } else {
        write_double_quoted(out, s);
    }
}

/// A string that every YAML reader takes as this very string when written bare.
pub fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if s.ends_with([' ', ':']) || first == ' ' {
        return false;
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._/@=+:, ()".contains(c);
    if !s.chars().all(allowed) {
        return false;
    }
    if !(first.is_ascii_alphanumeric() || first == '/' || first == '_' || first == '.') {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s == "=" || s.contains(',') {
        return false;
    }
    // Anything that starts like a number is quoted: YAML 1.1 reads `1:20`,
    // `0x1F`, `1_000` and `.5` as numbers.
    let digit_start = first.is_ascii_digit() || (first == '.' && s.len() > 1);
    if digit_start {
        return false;
    }
    !is_reserved_word(s)
}

fn is_reserved_word(s: &str) -> bool {
    const WORDS: [&str; 16] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", ".inf", ".nan", "-.inf",
        "+.inf", "<<", "nan",
    ];
    let lower = s.to_ascii_lowercase();
    WORDS.contains(&lower.as_str())
}

fn literal_block_fits(s: &str) -> bool {
    s.contains('\n')
        && s.chars()
            .all(|c| c == '\n' || c == '\t' || (!c.is_control() && !is_special_unicode(c)))
        && s.lines().any(|l| !l.trim().is_empty())
        && !s.starts_with(['\n', ' ', '\t'])
        && !s.lines().any(|l| l.ends_with([' ', '\t']))
}

fn is_special_unicode(c: char) -> bool {
    matches!(
        c,
        '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
    )
}

fn write_literal(out: &mut String, s: &str, indent: usize) {
    let trailing = s.len() - s.trim_end_matches('\n').len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    out.push('|');
    out.push_str(chomp);
    let body = s.trim_end_matches('\n');
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
    }
    // Keep-chomping: the extra trailing newlines are written as empty lines.
    for _ in 1..trailing {
        out.push('\n');
    }
}

fn write_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() || is_special_unicode(c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{parse_single, to_value};
    use serde_json::json;

    fn round_trip(v: &Value) -> Value {
        let text = to_document(v);
        let node = parse_single(&text).unwrap().unwrap();
        to_value(&node, &mut |_, _| {}).unwrap()
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        for s in [
            "on", "yes", "No", "OFF", "true", "null", "~", "1.20", "0x1F", "1:20", "", " x", "x:",
            "- x", "#c", "a: b", "a #b", "=", "<<", "*x", "&x", "!x", "|", ">", "{a}", "[a]", "'",
            "\"", "---", "...",
        ] {
            let doc = to_document(&json!({ "k": s }));
            assert!(doc.contains('"'), "{s:?} was written bare: {doc}");
            assert_eq!(round_trip(&json!({ "k": s })), json!({ "k": s }), "{s:?}");
        }
    }

    #[test]
    fn ordinary_strings_stay_bare() {
        assert_eq!(
            to_document(&json!({"image": "wandb/local:0.62.1"})),
            "image: wandb/local:0.62.1\n"
        );
        assert_eq!(
            to_document(&json!({"host": "https://wandb.example.com"})),
            "host: https://wandb.example.com\n"
        );
        assert_eq!(to_document(&json!({"cpu": "500m"})), "cpu: \"500m\"\n");
    }

    #[test]
    fn keys_come_in_kubernetes_order() {
        let v = json!({"spec": {}, "metadata": {"namespace": "ns", "name": "x", "labels": {}}, "kind": "Service", "apiVersion": "v1"});
        assert_eq!(
            to_document(&v),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  namespace: ns\n  labels: {}\nspec: {}\n"
        );
    }

    #[test]
    fn multi_line_strings_become_literal_blocks_that_round_trip() {
        for s in [
            "a\nb\n",
            "a\nb",
            "a\n\nb\n\n",
            "line\n\tTabbed\n  indented\n",
        ] {
            let v = json!({"data": {"f": s}});
            let doc = to_document(&v);
            assert!(doc.contains('|'), "{doc}");
            assert_eq!(round_trip(&v), v, "{doc}");
        }
    }

    #[test]
    fn control_and_special_characters_round_trip_quoted() {
        for s in [
            "a\rb",
            "nul\0",
            "bell\u{7}",
            "del\u{7f}",
            "ls\u{2028}",
            "bom\u{feff}",
            "trailing \nspace",
            "\nleading newline",
            "  indented\nnext\n",
            "\u{e9}t\u{e9} \u{1F600}",
        ] {
            let v = json!({ "k": s });
            assert_eq!(round_trip(&v), v, "{s:?} -> {}", to_document(&v));
        }
    }

    #[test]
    fn nested_lists_and_maps_round_trip() {
        let v = json!({"a": [{"name": "x", "v": [1, [2, 3], {}]}, [], "s"], "b": {"c": {"d": null, "e": false, "f": 1.5}}});
        assert_eq!(round_trip(&v), v, "{}", to_document(&v));
    }

    #[test]
    fn a_key_too_long_for_an_implicit_key_round_trips() {
        let long = "k".repeat(3000);
        for v in [
            json!({ long.clone(): "v", "short": 1 }),
            json!({ "outer": { long.clone(): { "inner": [1, 2] } } }),
            json!([{ long.clone(): null }]),
        ] {
            assert_eq!(round_trip(&v), v);
        }
    }

    #[test]
    fn to_block_has_no_trailing_newline() {
        assert_eq!(to_block(&json!({"a": 1, "b": [1]})), "a: 1\nb:\n  - 1");
    }
}
