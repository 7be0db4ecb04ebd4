//! Where each node of a YAML document sits in its text, keyed by JSON pointer, so that problems
//! found on parsed values can be reported at the line and column the author wrote them.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A place in the text: 1-based line and column, with the byte range to underline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Characters to underline.
    pub len: usize,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    key: Option<Span>,
    value: Span,
}

/// Positions of every key and value of a YAML document, by JSON pointer (`/actions/track/when`).
#[derive(Debug, Default)]
pub struct SourceMap {
    nodes: HashMap<String, Node>,
    duplicates: Vec<(String, Span)>,
}

impl SourceMap {
    /// Indexes `text`. Text that is not valid YAML yields a partial (possibly empty) map: the
    /// syntax error itself is reported by the YAML deserializer.
    pub fn build(text: &str) -> SourceMap {
        let mut builder = Builder {
            text,
            line_starts: line_starts(text),
            map: SourceMap::default(),
            stack: Vec::new(),
        };
        let mut parser = Parser::new_from_str(text);
        // A syntax error stops the index where it occurs; what was read before stays usable.
        let _ = parser.load(&mut builder, false);
        builder.map
    }

    /// Position of the value at `pointer`, or of its closest ancestor that is known.
    pub fn value(&self, pointer: &str) -> Option<Span> {
        self.closest(pointer).map(|node| node.value)
    }

    /// Position of the key naming the value at `pointer` (the value itself for list items).
    pub fn key(&self, pointer: &str) -> Option<Span> {
        self.closest(pointer)
            .map(|node| node.key.unwrap_or(node.value))
    }

    /// The first key named `name` in the text, wherever it is.
    pub fn first_key_named(&self, name: &str) -> Option<Span> {
        let suffix = format!("/{}", escape_segment(name));
        self.nodes
            .iter()
            .filter(|(pointer, _)| pointer.ends_with(&suffix))
            .filter_map(|(_, node)| node.key)
            .min_by_key(|span| (span.line, span.column))
    }

    /// Keys written twice in one mapping: the pointer of the repeated entry and its key's position.
    pub fn duplicates(&self) -> &[(String, Span)] {
        &self.duplicates
    }

    fn closest(&self, pointer: &str) -> Option<&Node> {
        let mut pointer = pointer;
        loop {
            if let Some(node) = self.nodes.get(pointer) {
                return Some(node);
            }
            match pointer.rfind('/') {
                Some(cut) => pointer = &pointer[..cut],
                None => return None,
            }
        }
    }
}

/// Escapes one JSON pointer segment.
pub fn escape_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// `/actions/track/when` -> `actions.track.when`, `/a/0` -> `a[0]`.
pub fn display_pointer(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

enum Frame {
    Mapping {
        pointer: String,
        pending_key: Option<(String, Span)>,
        seen: Vec<String>,
    },
    Sequence {
        pointer: String,
        next: usize,
    },
}

struct Builder<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
    map: SourceMap,
    stack: Vec<Frame>,
}

/// The 1-based line and column of the `index`-th character of `text`, lines counted as
/// [`lines`] counts them. The YAML syntax checker also ends lines at NEL, LS and PS, so its own
/// line numbers can disagree with the text's; its character index does not.
pub(crate) fn position(text: &str, index: usize) -> (usize, usize) {
    let (mut line, mut column) = (1, 1);
    let mut chars = text.chars().take(index).peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                line += 1;
                column = 1;
            }
            _ => column += 1,
        }
    }
    (line, column)
}

/// The lines of `text` as YAML counts them: a line ends at `\n`, `\r\n` or a lone `\r` (the
/// parsers' line numbers count a lone `\r` as a line break; `str::lines` does not).
pub(crate) fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(at) = rest.find(['\n', '\r']) else {
            return Some(std::mem::take(&mut rest));
        };
        let line = &rest[..at];
        let end = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + end..];
        Some(line)
    })
}

/// The byte offset where each line (as [`lines`] counts them) starts.
fn line_starts(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut starts = vec![0];
    let mut at = 0;
    while at < bytes.len() {
        at += match (bytes[at], bytes.get(at + 1)) {
            (b'\r', Some(b'\n')) => 2,
            (b'\n' | b'\r', _) => 1,
            _ => {
                at += 1;
                continue;
            }
        };
        starts.push(at);
    }
    starts
}

impl Builder<'_> {
    fn span(&self, mark: Marker, scalar: Option<&str>) -> Span {
        // Markers count characters; turn the index into a byte offset to find the line.
        let line = mark.line().max(1);
        let column = mark.col() + 1;
        let len = match scalar {
            Some(text) => {
                let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
                let rest = lines(&self.text[start..]).next().unwrap_or("");
                let remaining = rest.chars().count().saturating_sub(column - 1);
                text.chars().count().clamp(1, remaining.max(1))
            }
            None => 1,
        };
        Span { line, column, len }
    }

    /// Called for every value: records it under the pointer its parent assigns.
    fn place(&mut self, value: Span) -> Option<String> {
        match self.stack.last_mut() {
            None => {
                self.map
                    .nodes
                    .insert(String::new(), Node { key: None, value });
                Some(String::new())
            }
            Some(Frame::Sequence { pointer, next }) => {
                let child = format!("{pointer}/{next}");
                *next += 1;
                self.map
                    .nodes
                    .insert(child.clone(), Node { key: None, value });
                Some(child)
            }
            Some(Frame::Mapping {
                pointer,
                pending_key,
                ..
            }) => {
                let (key, key_span) = pending_key.take()?;
                let child = format!("{pointer}/{}", escape_segment(&key));
                self.map.nodes.insert(
                    child.clone(),
                    Node {
                        key: Some(key_span),
                        value,
                    },
                );
                Some(child)
            }
        }
    }

    /// A scalar in key position of a mapping is a key, not a value.
    fn take_key(&mut self, text: &str, span: Span) -> bool {
        if let Some(Frame::Mapping {
            pointer,
            pending_key,
            seen,
        }) = self.stack.last_mut()
            && pending_key.is_none()
        {
            if seen.iter().any(|k| k == text) {
                let child = format!("{pointer}/{}", escape_segment(text));
                self.map.duplicates.push((child, span));
            } else {
                seen.push(text.to_owned());
            }
            *pending_key = Some((text.to_owned(), span));
            return true;
        }
        false
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) => {
                let span = self.span(mark, Some(&text));
                if !self.take_key(&text, span) {
                    self.place(span);
                }
            }
            Event::Alias(_) => {
                let span = self.span(mark, None);
                if !self.take_key("*alias", span) {
                    self.place(span);
                }
            }
            Event::MappingStart(..) => {
                let span = self.span(mark, None);
                let pointer = self.place(span).unwrap_or_default();
                self.stack.push(Frame::Mapping {
                    pointer,
                    pending_key: None,
                    seen: Vec::new(),
                });
            }
            Event::SequenceStart(..) => {
                let span = self.span(mark, None);
                let pointer = self.place(span).unwrap_or_default();
                self.stack.push(Frame::Sequence { pointer, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "version: 1\nactions:\n  track:\n    when: { type: track }\n    list:\n      - a\n      - \"b\"\n";

    #[test]
    fn lines_end_where_yaml_ends_them() {
        let text = "a\nb\r\nc\rd\r\re";
        assert_eq!(
            lines(text).collect::<Vec<_>>(),
            ["a", "b", "c", "d", "", "e"]
        );
        assert_eq!(line_starts(text), [0, 2, 5, 7, 9, 10]);
        assert_eq!(lines("a\n").collect::<Vec<_>>(), ["a"]);
        assert_eq!(line_starts("a\n"), [0, 2]);
        assert_eq!(lines("").count(), 0);
    }

    #[test]
    fn a_lone_carriage_return_starts_a_line() {
        let map = SourceMap::build("version: 1\rname: x\r\nsource: segment\n");
        let at = |pointer| map.value(pointer).map(|s| (s.line, s.column, s.len));
        assert_eq!(at("/name"), Some((2, 7, 1)));
        assert_eq!(at("/source"), Some((3, 9, 7)));
    }

    #[test]
    fn locates_keys_and_values_by_pointer() {
        let map = SourceMap::build(TEXT);
        assert_eq!(
            map.value("/version").map(|s| (s.line, s.column)),
            Some((1, 10))
        );
        assert_eq!(
            map.key("/actions/track").map(|s| (s.line, s.column)),
            Some((3, 3))
        );
        assert_eq!(
            map.value("/actions/track/when/type")
                .map(|s| (s.line, s.column)),
            Some((4, 19))
        );
        assert_eq!(map.value("/actions/track/list/1").map(|s| s.line), Some(7));
    }

    #[test]
    fn unknown_pointers_fall_back_to_the_closest_ancestor() {
        let map = SourceMap::build(TEXT);
        assert_eq!(
            map.key("/actions/track/nope/deeper").map(|s| s.line),
            Some(3)
        );
    }

    #[test]
    fn reports_every_duplicate_key() {
        let map = SourceMap::build("a: 1\nb: 2\na: 3\nb: 4\n");
        let lines: Vec<usize> = map.duplicates().iter().map(|(_, s)| s.line).collect();
        assert_eq!(lines, vec![3, 4]);
    }

    #[test]
    fn pointers_display_as_dotted_paths() {
        assert_eq!(display_pointer("/actions/track/when"), "actions.track.when");
        assert_eq!(display_pointer("/a/from/1"), "a.from[1]");
        assert_eq!(display_pointer("/h/a~1b"), "h.a/b");
    }
}
