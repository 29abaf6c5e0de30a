//! How a value is kept from changing the structure of a manifest.
//!
//! Templates are trusted text; values are not. While a template renders, every
//! value it interpolates is written as an inert *sentinel*: a private-use
//! character, the value's JSON in hex, and a closing private-use character. Hex
//! digits and private-use characters mean nothing to YAML, so the rendered text
//! is parsed with a structure decided by the template alone. Only then is each
//! sentinel replaced, inside the scalar that holds it, by the value itself:
//!
//! - a scalar that is nothing but one sentinel, unquoted, becomes the value with
//!   its own type (a string stays a string, even `"on"`, `"1.20"` or `"true"`);
//! - a sentinel inside a longer or quoted scalar is spliced in as text.
//!
//! Helpers that produce YAML structure themselves (`toYaml`, `include`,
//! `nindent`) return *trusted* text, marked with [`TRUSTED`]; whatever values
//! such text contains are sentinels too. Value layers and templates may not
//! contain the reserved characters at all (see [`find_reserved`]), so neither
//! can forge a sentinel or a trusted mark.
//!
//! The scheme is closed under every helper: a helper given trusted text or
//! sentinels takes their plain text ([`plain_text`], [`plain_value`]) with the
//! keys of the values inside, and writes its result as a sentinel carrying
//! those keys. A decoded value holding a reserved character is an error, so
//! none ever reaches a manifest.

use serde_json::Value;

/// Opens a value sentinel.
pub const OPEN: char = '\u{E000}';
/// Closes a value sentinel.
pub const CLOSE: char = '\u{E001}';
/// Marks text produced by a structure-building helper.
pub const TRUSTED: char = '\u{E002}';

/// Whether a string holds a character hydrant reserves for its own use.
pub fn find_reserved(s: &str) -> Option<char> {
    s.chars().find(|c| ('\u{E000}'..='\u{E00F}').contains(c))
}

/// The first reserved character anywhere in a value, keys included, with the
/// path to it.
pub fn find_reserved_in(v: &Value) -> Option<(Vec<String>, char)> {
    match v {
        Value::String(s) => find_reserved(s).map(|c| (Vec::new(), c)),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            find_reserved_in(item).map(|(mut path, c)| {
                path.insert(0, i.to_string());
                (path, c)
            })
        }),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let found = match find_reserved(k) {
                Some(c) => Some((Vec::new(), c)),
                None => find_reserved_in(item),
            };
            found.map(|(mut path, c)| {
                path.insert(0, k.clone());
                (path, c)
            })
        }),
        _ => None,
    }
}

/// Writes a value as a sentinel, with the key it was read from when known
/// (`global.host`), so a rendered field can be traced back to its layer.
pub fn encode_into(out: &mut String, value: &Value, key: Option<&[String]>) {
    match key {
        Some(key) => encode_with_keys(out, value, std::slice::from_ref(&key.to_vec())),
        None => encode_with_keys(out, value, &[]),
    }
}

/// Writes a value as a sentinel with every key it was computed from (a value
/// made by a helper from several values keeps all their keys).
pub fn encode_with_keys(out: &mut String, value: &Value, keys: &[Vec<String>]) {
    let json = serde_json::to_string(value).unwrap_or_default();
    out.reserve(json.len() * 2 + 6);
    out.push(OPEN);
    push_hex(out, json.as_bytes());
    for key in keys {
        out.push('.');
        push_hex(out, key.join("\u{1}").as_bytes());
    }
    out.push(CLOSE);
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

/// A value as a sentinel, with no key.
pub fn encode(value: &Value) -> String {
    let mut out = String::new();
    encode_into(&mut out, value, None);
    out
}

/// Marks text as trusted structure.
pub fn trusted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 3);
    out.push(TRUSTED);
    out.push_str(text);
    out
}

/// The text of a trusted string, or `None` when it is a plain value.
pub fn as_trusted(text: &str) -> Option<&str> {
    text.strip_prefix(TRUSTED)
}

/// What a rendered scalar turned out to be.
pub enum Decoded {
    /// No value was interpolated: the template's own text.
    Literal,
    /// The scalar is exactly one unquoted value: that value, typed, and its keys.
    Whole(Value, Vec<Vec<String>>),
    /// Values spliced into text, and the keys of those that have one.
    Spliced(String, Vec<Vec<String>>),
}

/// Replaces the sentinels in one scalar. `whole_allowed` is true for an
/// unquoted, untagged scalar, where a lone sentinel keeps the value's type.
pub fn decode_scalar(text: &str, whole_allowed: bool) -> Result<Decoded, String> {
    if !text.contains(OPEN) {
        if find_reserved(text).is_some() {
            return Err(stray());
        }
        return Ok(Decoded::Literal);
    }
    if whole_allowed && text.starts_with(OPEN) && text.ends_with(CLOSE) {
        let inner = &text[OPEN.len_utf8()..text.len() - CLOSE.len_utf8()];
        if !inner.contains(OPEN) {
            let (value, keys) = decode_one(inner)?;
            return Ok(Decoded::Whole(value, keys));
        }
    }
    let mut out = String::with_capacity(text.len() / 2);
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len_utf8()..];
        let end = after
            .find(CLOSE)
            .ok_or_else(|| "an interpolated value was cut in two".to_string())?;
        let (value, key) = decode_one(&after[..end])?;
        keys.extend(key);
        out.push_str(&scalar_text(&value));
        rest = &after[end + CLOSE.len_utf8()..];
    }
    out.push_str(rest);
    if find_reserved(&out).is_some() {
        return Err(stray());
    }
    Ok(Decoded::Spliced(out, keys))
}

fn stray() -> String {
    "rendered text holds a stray hydrant marker (U+E000..U+E00F)".to_string()
}

fn decode_one(text: &str) -> Result<(Value, Vec<Vec<String>>), String> {
    let garbled = || "an interpolated value was garbled".to_string();
    let mut parts = text.split('.');
    let bytes = hex::decode(parts.next().unwrap_or_default()).map_err(|_| garbled())?;
    let value = serde_json::from_slice(&bytes).map_err(|_| garbled())?;
    let mut keys = Vec::new();
    for k in parts {
        let bytes = hex::decode(k).map_err(|_| garbled())?;
        let joined = String::from_utf8(bytes).map_err(|_| garbled())?;
        keys.push(joined.split('\u{1}').map(String::from).collect());
    }
    // Values hold no reserved character (value layers and templates refuse
    // them, helpers decode what they receive): one here is a bug, not output.
    if find_reserved_in(&value).is_some() {
        return Err(stray());
    }
    Ok((value, keys))
}

/// The plain text of a string a helper received: trusted text loses its mark
/// and every sentinel in it is replaced by its value's text. Returns the text
/// and the keys of the values it holds. A string with no reserved character is
/// returned as it is.
pub fn plain_text(text: &str) -> Result<(String, Vec<Vec<String>>), String> {
    if find_reserved(text).is_none() {
        return Ok((text.to_string(), Vec::new()));
    }
    let text = as_trusted(text).unwrap_or(text);
    match decode_scalar(text, false)? {
        Decoded::Literal => Ok((text.to_string(), Vec::new())),
        Decoded::Whole(v, keys) => Ok((scalar_text(&v), keys)),
        Decoded::Spliced(s, keys) => Ok((s, keys)),
    }
}

/// A value with every string in it (keys included) made plain text (see
/// [`plain_text`]), and the keys of the values those strings held.
pub fn plain_value(v: &Value, keys: &mut Vec<Vec<String>>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => {
            let (text, found) = plain_text(s)?;
            keys.extend(found);
            Value::String(text)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| plain_value(item, keys))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, item) in map {
                let (k, found) = plain_text(k)?;
                keys.extend(found);
                out.insert(k, plain_value(item, keys)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// How a scalar reads as text once spliced into a longer string.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_lone_unquoted_sentinel_keeps_the_value_type() {
        for v in [
            json!("on"),
            json!("1.20"),
            json!("true"),
            json!(3),
            json!(false),
            json!(""),
        ] {
            match decode_scalar(&encode(&v), true).unwrap() {
                Decoded::Whole(got, keys) if keys.is_empty() => assert_eq!(got, v),
                _ => panic!("not whole"),
            }
        }
    }

    #[test]
    fn sentinels_inside_text_are_spliced_as_text() {
        let mut text = String::from("wandb-");
        encode_into(
            &mut text,
            &json!("a: b"),
            Some(&["global".to_string(), "name".to_string()]),
        );
        text.push('-');
        encode_into(&mut text, &json!(2), None);
        match decode_scalar(&text, true).unwrap() {
            Decoded::Spliced(s, keys) => {
                assert_eq!(s, "wandb-a: b-2");
                assert_eq!(keys, vec![vec!["global".to_string(), "name".to_string()]]);
            }
            _ => panic!("not spliced"),
        }
    }

    #[test]
    fn quoted_lone_sentinels_become_strings() {
        match decode_scalar(&encode(&json!(3)), false).unwrap() {
            Decoded::Spliced(s, _) => assert_eq!(s, "3"),
            _ => panic!("not spliced"),
        }
    }

    #[test]
    fn sentinels_are_inert_yaml() {
        let s = encode(&json!("x\n---\n- [a]: {b} # c"));
        assert!(
            s.chars()
                .all(|c| c.is_ascii_hexdigit() || c == OPEN || c == CLOSE)
        );
    }

    #[test]
    fn reserved_characters_are_found() {
        assert_eq!(find_reserved("ok"), None);
        assert_eq!(find_reserved("x\u{E001}"), Some('\u{E001}'));
    }
}
