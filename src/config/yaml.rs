//! A small YAML document tree that keeps what the config decoder needs and serde would lose.
//!
//! dregsy's original reads its config with `gopkg.in/yaml.v2` into Go strings, so a tag written
//! `1.30` arrives as the text `1.30`, not as the float 1.3. To keep that, scalars are stored as
//! their source text together with their style (plain or quoted) and line. Anchors, aliases and
//! merge keys (`<<`) are resolved here, so the decoder only ever sees plain trees.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// How many nodes one document may expand to. Aliases can multiply a small file
/// ("billion laughs"); this bound turns that into an error instead of an out-of-memory kill.
const MAX_NODES: usize = 1_000_000;

/// One node of a YAML document, with the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node's shape and content.
    pub kind: NodeKind,
    /// The 1-based line the node starts on.
    pub line: usize,
}

/// The shapes a node can have after anchors and merge keys are resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `~`, `null`, or an empty plain value.
    Null,
    /// A scalar with its text exactly as written (after YAML unescaping of quoted styles).
    Scalar {
        /// The text.
        text: String,
        /// Written without quotes (only plain scalars are numbers, booleans or null).
        plain: bool,
    },
    /// A sequence, in document order.
    Seq(Vec<Node>),
    /// Key/value pairs in document order; duplicate keys are kept, the decoder lets the last win.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The YAML type name the Go decoder would print for this node in an unmarshal error.
    pub fn yaml_type(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "!!null",
            NodeKind::Seq(_) => "!!seq",
            NodeKind::Map(_) => "!!map",
            NodeKind::Scalar { text, plain } => {
                if !plain {
                    "!!str"
                } else if parse_bool(text).is_some() {
                    "!!bool"
                } else if parse_int(text).is_some() {
                    "!!int"
                } else if parse_float(text).is_some() {
                    "!!float"
                } else {
                    "!!str"
                }
            }
        }
    }

    /// The scalar text, for error messages.
    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// A syntax error, with the position the parser reported.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// The 1-based line.
    pub line: usize,
    /// The 1-based column.
    pub column: usize,
    /// What the parser found wrong.
    pub message: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "yaml: line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Parses the first document of `text`. An empty stream gives `None`, as yaml.v2 decodes an
/// empty file into the zero value without error.
///
/// # Errors
///
/// A [`SyntaxError`] with the parser's position, also for a document over the node limit.
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = Builder {
        events: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
    };
    loop {
        let (event, span) = builder.next()?;
        match event {
            Event::StreamStart | Event::Nothing => continue,
            Event::DocumentStart(_) => break,
            Event::StreamEnd => return Ok(None),
            _ => return Err(error_at(span, "unexpected event before the document")),
        }
    }
    let (event, span) = builder.next()?;
    if matches!(event, Event::DocumentEnd) {
        return Ok(None);
    }
    builder.node(event, span).map(Some)
}

struct Builder<'a> {
    events: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
}

fn error_at(span: Span, message: &str) -> SyntaxError {
    SyntaxError {
        line: span.start.line(),
        column: span.start.col() + 1,
        message: message.to_string(),
    }
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        match self.events.next() {
            Some(Ok(pair)) => Ok(pair),
            Some(Err(e)) => Err(SyntaxError {
                line: e.marker().line(),
                column: e.marker().col() + 1,
                message: e.info().to_string(),
            }),
            None => Err(SyntaxError {
                line: 0,
                column: 0,
                message: "unexpected end of input".into(),
            }),
        }
    }

    fn count(&mut self, added: usize, span: Span) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(added);
        if self.nodes > MAX_NODES {
            return Err(error_at(
                span,
                "document expands to too many nodes (aliases nested too deeply?)",
            ));
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span) -> Result<Node, SyntaxError> {
        let line = span.start.line();
        self.count(1, span)?;
        match event {
            Event::Scalar(value, style, anchor, _tag) => {
                let plain = matches!(style, ScalarStyle::Plain);
                let kind = if plain && matches!(value.as_ref(), "" | "~" | "null" | "Null" | "NULL")
                {
                    NodeKind::Null
                } else {
                    NodeKind::Scalar {
                        text: value.into_owned(),
                        plain,
                    }
                };
                let node = Node { kind, line };
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| error_at(span, "unknown anchor"))?;
                self.count(node_size(&node), span)?;
                Ok(Node { line, ..node })
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, span)?);
                }
                let node = Node {
                    kind: NodeKind::Seq(items),
                    line,
                };
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::MappingStart(anchor, _) => {
                let mut pairs: Vec<(Node, Node)> = Vec::new();
                let mut merged: Vec<(Node, Node)> = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(event, span)?;
                    let (event, span) = self.next()?;
                    let value = self.node(event, span)?;
                    if is_merge_key(&key) {
                        merge_into(&mut merged, value, span)?;
                    } else {
                        pairs.push((key, value));
                    }
                }
                // Explicit keys win over merged ones, whatever their order in the document.
                for (key, value) in merged {
                    if !pairs.iter().any(|(k, _)| k.kind == key.kind) {
                        pairs.push((key, value));
                    }
                }
                let node = Node {
                    kind: NodeKind::Map(pairs),
                    line,
                };
                self.remember(anchor, &node);
                Ok(node)
            }
            _ => Err(error_at(span, "unexpected YAML event")),
        }
    }
}

fn is_merge_key(key: &Node) -> bool {
    matches!(&key.kind, NodeKind::Scalar { text, plain: true } if text == "<<")
}

/// Applies a merge value: a mapping, or a sequence of mappings where earlier ones win.
fn merge_into(merged: &mut Vec<(Node, Node)>, value: Node, span: Span) -> Result<(), SyntaxError> {
    let maps = match value.kind {
        NodeKind::Map(pairs) => vec![pairs],
        NodeKind::Seq(items) => items
            .into_iter()
            .map(|item| match item.kind {
                NodeKind::Map(pairs) => Ok(pairs),
                _ => Err(error_at(
                    span,
                    "map merge requires map or sequence of maps as the value",
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(error_at(
                span,
                "map merge requires map or sequence of maps as the value",
            ));
        }
    };
    for pairs in maps {
        for (key, value) in pairs {
            if !merged.iter().any(|(k, _)| k.kind == key.kind) {
                merged.push((key, value));
            }
        }
    }
    Ok(())
}

fn node_size(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Seq(items) => 1 + items.iter().map(node_size).sum::<usize>(),
        NodeKind::Map(pairs) => {
            1 + pairs
                .iter()
                .map(|(k, v)| node_size(k) + node_size(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// YAML 1.1 booleans, as yaml.v2 resolves plain scalars.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Some(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Some(false)
        }
        _ => None,
    }
}

/// YAML 1.1 integers as yaml.v2 resolves them: decimal, `0x`, `0b`, leading-zero octal, `_` separators.
pub fn parse_int(text: &str) -> Option<i64> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let (negative, digits) = match cleaned.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, cleaned.strip_prefix('+').unwrap_or(&cleaned)),
    };
    if digits.is_empty() {
        return None;
    }
    let magnitude = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(bin) = digits.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else if digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<i64>().ok()?
    } else {
        return None;
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// YAML 1.1 floats (`1.5`, `1e3`, `.5`, `.inf`, `.nan`), for the int decoder's truncation rule.
pub fn parse_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let body = cleaned.trim_start_matches(['+', '-']);
    if body.is_empty()
        || !body
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.')
    {
        return None;
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    cleaned.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Node {
        match parse(text) {
            Ok(Some(node)) => node,
            other => panic!("unexpected parse result {other:?}"),
        }
    }

    fn seq_texts(node: &Node) -> Vec<String> {
        match &node.kind {
            NodeKind::Seq(items) => items
                .iter()
                .map(|i| i.text().unwrap_or("<null>").to_string())
                .collect(),
            other => panic!("not a sequence: {other:?}"),
        }
    }

    #[test]
    fn scalars_keep_their_source_text() {
        let node = doc("[1.30, 1.0, 010, 0x1F, true, 1e3, '1.30']");
        assert_eq!(
            seq_texts(&node),
            ["1.30", "1.0", "010", "0x1F", "true", "1e3", "1.30"]
        );
    }

    #[test]
    fn null_forms() {
        let node = doc("- ~\n- null\n-\n- x\n- ''\n");
        match node.kind {
            NodeKind::Seq(items) => {
                assert_eq!(items[0].kind, NodeKind::Null);
                assert_eq!(items[1].kind, NodeKind::Null);
                assert_eq!(items[2].kind, NodeKind::Null);
                assert!(matches!(items[3].kind, NodeKind::Scalar { .. }));
                assert!(
                    matches!(&items[4].kind, NodeKind::Scalar { text, plain: false } if text.is_empty())
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let node = doc("base: &b {a: 1, b: 2}\nchild:\n  <<: *b\n  b: 3\nlist: [*b]\n");
        let NodeKind::Map(pairs) = node.kind else {
            panic!("not a map")
        };
        let child = &pairs[1].1;
        let NodeKind::Map(child_pairs) = &child.kind else {
            panic!("child not a map")
        };
        let b = child_pairs
            .iter()
            .find(|(k, _)| k.text() == Some("b"))
            .map(|(_, v)| v.text());
        assert_eq!(b, Some(Some("3")), "explicit key wins over merged");
        assert!(child_pairs.iter().any(|(k, _)| k.text() == Some("a")));
        // A block mapping starts at its first key.
        assert_eq!(child.line, 3);
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("a: [1, 2\nb: c").expect_err("must fail");
        assert!(err.line >= 1, "{err}");
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&text).expect_err("must refuse");
        assert!(err.message.contains("too many nodes"), "{err}");
    }

    #[test]
    fn empty_documents() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("# only a comment\n"), Ok(None));
    }

    #[test]
    fn yaml11_scalars() {
        assert_eq!(parse_bool("on"), Some(true));
        assert_eq!(parse_bool("No"), Some(false));
        assert_eq!(parse_bool("nope"), None);
        assert_eq!(parse_int("010"), Some(8));
        assert_eq!(parse_int("0x1F"), Some(31));
        assert_eq!(parse_int("-60"), Some(-60));
        assert_eq!(parse_int("1_000"), Some(1000));
        assert_eq!(parse_int("60.7"), None);
        assert_eq!(parse_float("60.7"), Some(60.7));
        assert_eq!(parse_float("1e3"), Some(1000.0));
        assert_eq!(parse_float("abc"), None);
    }
}
