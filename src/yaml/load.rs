//! Reading YAML into a tree that remembers where every node came from.
//!
//! hydrant reads YAML from people (value layers, environment settings, channel
//! specs) and from its own templates. Both need line numbers in errors and
//! provenance, so the loader builds a [`Node`] tree from parser events, keeping the
//! line and column of every node. What a scalar *means* (a number, a boolean, a
//! string with interpolated values) is decided by the caller: see
//! [`crate::yaml::resolve_plain`] for the YAML 1.2 core schema used for values.
//!
//! The loader is strict where YAML is loose: duplicate keys, complex keys and
//! custom tags are errors, and it bounds nesting depth and alias expansion so a
//! hostile file (a "billion laughs") cannot exhaust memory.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// At most this many nodes are built from one stream, aliases expanded.
pub const MAX_NODES: usize = 2_000_000;
/// At most this deep may maps and sequences nest.
pub const MAX_DEPTH: usize = 100;

/// A YAML node with the position it starts at (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar {
        text: String,
        style: ScalarStyle,
        tag: Option<String>,
    },
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

/// A YAML syntax or structure error at a position in the input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {col}: {message}")]
pub struct YamlError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl YamlError {
    fn at(line: usize, col: usize, message: impl Into<String>) -> Self {
        YamlError {
            line,
            col,
            message: message.into(),
        }
    }
}

/// Parses every document of a YAML stream. An empty document (nothing but
/// comments) yields no node.
pub fn parse_documents(src: &str) -> Result<Vec<Node>, YamlError> {
    let rewritten = surrogate_pairs_as_yaml(src);
    let src = rewritten.as_deref().unwrap_or(src);
    // The parser places what it finds at the end of a last line without a
    // line break (an error, an empty value) on the line after it, which the
    // file does not have.
    let last_line = 1 + src.replace("\r\n", "\n").matches(['\n', '\r']).count();
    let mut builder = Builder {
        last_line,
        ..Builder::default()
    };
    for event in Parser::new_from_str(src) {
        let (event, span) = event.map_err(|e| {
            YamlError::at(
                e.marker().line().min(last_line),
                e.marker().col() + 1,
                e.info().to_string(),
            )
        })?;
        builder.push(event, span)?;
    }
    Ok(builder.documents)
}

/// JSON writes a character beyond U+FFFF as two `\\uXXXX` escapes (a UTF-16
/// surrogate pair, as deploy servers that escape all non-ASCII text do), which
/// YAML refuses. In a text that is JSON, each pair is rewritten as the one
/// `\\UXXXXXXXX` escape YAML reads, so the text means what JSON says it means.
fn surrogate_pairs_as_yaml(src: &str) -> Option<String> {
    if !src.contains("\\u") || serde_json::from_str::<serde::de::IgnoredAny>(src).is_err() {
        return None;
    }
    let hex = |at: usize| {
        src.get(at..at + 4)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
    };
    let bytes = src.as_bytes();
    let (mut out, mut copied, mut i, mut in_string) = (String::new(), 0, 0, false);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                if bytes.get(i + 1) == Some(&b'u') {
                    if let (
                        Some(hi @ 0xD800..=0xDBFF),
                        Some(b'\\'),
                        Some(b'u'),
                        Some(lo @ 0xDC00..=0xDFFF),
                    ) = (hex(i + 2), bytes.get(i + 6), bytes.get(i + 7), hex(i + 8))
                    {
                        out.push_str(&src[copied..i]);
                        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        out.push_str(&format!("\\U{c:08X}"));
                        copied = i + 12;
                    }
                    i += 5;
                } else {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&src[copied..]);
    Some(out)
}

/// Parses a stream that must hold at most one document (an empty stream is `None`).
pub fn parse_single(src: &str) -> Result<Option<Node>, YamlError> {
    let mut docs = parse_documents(src)?;
    match docs.len() {
        0 | 1 => Ok(docs.pop()),
        _ => {
            let second = &docs[1];
            Err(YamlError::at(
                second.line,
                second.col,
                "expected a single YAML document, found several (a `---` separator?)",
            ))
        }
    }
}

enum Frame {
    Seq(Node, usize),
    /// A map under construction, and the key waiting for its value.
    /// The map, its anchor, the key waiting for its value, and the keys
    /// seen so far (a set: checking a duplicate costs the same at any size).
    Map(Node, usize, Option<(String, usize, usize)>, HashSet<String>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    documents: Vec<Node>,
    nodes: usize,
    /// The input's last line.
    last_line: usize,
}

fn tag_name(tag: Option<std::borrow::Cow<'_, saphyr_parser::Tag>>) -> Option<String> {
    tag.map(|t| format!("{}{}", t.handle, t.suffix))
}

impl Builder {
    fn push(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
        let (line, col) = (span.start.line().min(self.last_line), span.start.col() + 1);
        let is_seq = matches!(event, Event::SequenceStart(..));
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd => Ok(()),
            Event::DocumentStart(_) => {
                self.anchors.clear();
                Ok(())
            }
            Event::DocumentEnd => Ok(()),
            Event::Alias(id) => {
                let node =
                    self.anchors.get(&id).cloned().ok_or_else(|| {
                        YamlError::at(line, col, "alias refers to an unknown anchor")
                    })?;
                self.count(count_nodes(&node), line, col)?;
                let node = Node { line, col, ..node };
                self.add(node)
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, line, col)?;
                let node = Node {
                    kind: NodeKind::Scalar {
                        text: text.into_owned(),
                        style,
                        tag: tag_name(tag),
                    },
                    line,
                    col,
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.add(node)
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                self.count(1, line, col)?;
                if self.stack.len() >= MAX_DEPTH {
                    return Err(YamlError::at(
                        line,
                        col,
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    ));
                }
                if let Some(tag) = tag_name(tag)
                    && tag != "tag:yaml.org,2002:seq"
                    && tag != "tag:yaml.org,2002:map"
                {
                    return Err(YamlError::at(
                        line,
                        col,
                        format!("unsupported tag `{tag}` on a collection"),
                    ));
                }
                let kind = if is_seq {
                    NodeKind::Seq(Vec::new())
                } else {
                    NodeKind::Map(Vec::new())
                };
                let node = Node { kind, line, col };
                self.stack.push(if is_seq {
                    Frame::Seq(node, anchor)
                } else {
                    Frame::Map(node, anchor, None, HashSet::new())
                });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq(node, anchor)) | Some(Frame::Map(node, anchor, None, _)) => {
                        (node, anchor)
                    }
                    Some(Frame::Map(_, _, Some((key, l, c)), _)) => {
                        return Err(YamlError::at(l, c, format!("key `{key}` has no value")));
                    }
                    None => return Err(YamlError::at(line, col, "unbalanced collection end")),
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.add(node)
            }
        }
    }

    fn count(&mut self, n: usize, line: usize, col: usize) -> Result<(), YamlError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(YamlError::at(
                line,
                col,
                format!(
                    "document expands to more than {MAX_NODES} nodes (aliases expanding out of bounds?)"
                ),
            ));
        }
        Ok(())
    }

    fn add(&mut self, node: Node) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => {
                // An empty document (`---` followed by nothing) parses as an
                // empty plain scalar: it holds nothing, so it is not kept.
                let empty = matches!(&node.kind,
                    NodeKind::Scalar { text, style: ScalarStyle::Plain, tag: None } if text.is_empty());
                if !empty {
                    self.documents.push(node);
                }
                Ok(())
            }
            Some(Frame::Seq(seq, _)) => {
                if let NodeKind::Seq(items) = &mut seq.kind {
                    items.push(node);
                }
                Ok(())
            }
            Some(Frame::Map(map, _, pending, seen)) => match pending.take() {
                None => {
                    let key = match node.kind {
                        NodeKind::Scalar { text, .. } => text,
                        _ => {
                            return Err(YamlError::at(
                                node.line,
                                node.col,
                                "a map key must be a scalar",
                            ));
                        }
                    };
                    if !seen.insert(key.clone()) {
                        return Err(YamlError::at(
                            node.line,
                            node.col,
                            format!("duplicate key `{key}`"),
                        ));
                    }
                    *pending = Some((key, node.line, node.col));
                    Ok(())
                }
                Some((key, line, col)) => {
                    // A map value is placed at its key, the line people read
                    // as where the map is set (a block map starts a line below).
                    let mut node = node;
                    if matches!(node.kind, NodeKind::Map(_)) {
                        node.line = line;
                        node.col = col;
                    }
                    if let NodeKind::Map(entries) = &mut map.kind {
                        entries.push((key, node));
                    }
                    Ok(())
                }
            },
        }
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Scalar { .. } => 1,
        NodeKind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        NodeKind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(_, v)| 1 + count_nodes(v))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_keys(node: &Node) -> Vec<&str> {
        match &node.kind {
            NodeKind::Map(entries) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            _ => panic!("not a map"),
        }
    }

    #[test]
    fn nodes_remember_their_line_and_column() {
        let doc = parse_single("a: 1\nb:\n  c: x\n").unwrap().unwrap();
        let NodeKind::Map(entries) = &doc.kind else {
            panic!()
        };
        let (_, b) = &entries[1];
        let NodeKind::Map(inner) = &b.kind else {
            panic!()
        };
        assert_eq!((inner[0].1.line, inner[0].1.col), (3, 6));
    }

    #[test]
    fn duplicate_keys_are_an_error_with_their_line() {
        let err = parse_single("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("duplicate key `a`"), "{err}");
    }

    #[test]
    fn issue_13_duplicate_key_checks_stay_linear_in_the_number_of_keys() {
        let n = 150_000;
        let mut src: String = (0..n).map(|i| format!("k{i}: {i}\n")).collect();
        let started = std::time::Instant::now();
        let docs = parse_documents(&src).unwrap();
        assert_eq!(map_keys(&docs[0]).len(), n);
        src.push_str("k7: again\n");
        let err = parse_documents(&src).unwrap_err();
        assert_eq!(err.line, n + 1, "{err}");
        assert!(err.message.contains("duplicate key `k7`"), "{err}");
        // Scanning every earlier key takes minutes here; a set takes well under a second.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse_single("a: 1\n b: 2\n").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
    }

    #[test]
    fn aliases_are_expanded() {
        let doc = parse_single("base: &b {x: 1}\ncopy: *b\n")
            .unwrap()
            .unwrap();
        let NodeKind::Map(entries) = &doc.kind else {
            panic!()
        };
        assert_eq!(map_keys(&entries[1].1), vec!["x"]);
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let err = parse_single(&src).unwrap_err();
        assert!(err.message.contains("more than"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = format!("{}{}", "[".repeat(MAX_DEPTH + 5), "]".repeat(MAX_DEPTH + 5));
        let err = parse_single(&src).unwrap_err();
        assert!(err.message.contains("nesting deeper"), "{err}");
    }

    #[test]
    fn several_documents_in_a_single_document_file_are_an_error() {
        let err = parse_single("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(err.message.contains("single YAML document"), "{err}");
    }

    #[test]
    fn comment_only_documents_yield_nothing() {
        assert!(parse_documents("# nothing here\n").unwrap().is_empty());
        assert_eq!(
            parse_documents("---\na: 1\n---\n# empty\n").unwrap().len(),
            1
        );
    }

    /// Issue 8 (found by the `channel_spec` fuzz target): a JSON spec with a
    /// character beyond U+FFFF escaped as JSON does it, a surrogate pair, was
    /// refused as invalid.
    #[test]
    fn issue_8_json_surrogate_pair_escapes_read_as_their_character() {
        let doc = parse_single(r#"{"note": "ship \ud83d\ude80 \u00e9", "k\ud83d\ude00": 1}"#)
            .unwrap()
            .unwrap();
        let value = crate::yaml::to_value(&doc, &mut |_, _| {}).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"note": "ship \u{1F680} \u{e9}", "k\u{1F600}": 1})
        );
        // Outside JSON, and outside JSON strings, the text is left as written.
        let doc = parse_single("note: \\ud83d\\ude80\n").unwrap().unwrap();
        let value = crate::yaml::to_value(&doc, &mut |_, _| {}).unwrap();
        assert_eq!(value, serde_json::json!({"note": "\\ud83d\\ude80"}));
    }

    /// Issue 8 (found by the `yaml_values` and `settings_file` fuzz targets):
    /// an error or an empty value at the end of a file without a final line
    /// break was placed on the line after the last one.
    #[test]
    fn issue_8_an_error_at_the_end_names_a_line_of_the_file() {
        for src in ["a: 1\nb: [x", "a:\n  b: c\n  e", "#a\n?\n? "] {
            let err = parse_documents(src).unwrap_err();
            assert!(err.line <= src.lines().count(), "{src:?}: {err}");
        }
        // An empty value there too.
        let doc = parse_single("a: 1\nb:").unwrap().unwrap();
        let NodeKind::Map(entries) = &doc.kind else {
            panic!()
        };
        assert_eq!(entries[1].1.line, 2);
    }
}
