//! A parsed mapping with its text and source positions, so any later check can report a problem
//! at the line and column where the author wrote it.

use crate::diagnostic::{Diagnostic, DiagnosticKind};
use crate::model::Mapping;
use crate::pointer::Pointer;
use crate::source_map::{SourceMap, Span, lines};

/// A parsed mapping file, with what is needed to locate problems in it.
#[derive(Debug)]
pub struct Document {
    /// The file name, as the user gave it.
    pub file: String,
    /// The typed mapping.
    pub mapping: Mapping,
    /// Actions left out because they have structural problems (already reported): the rest of
    /// the mapping is still checked, so that every problem is reported in one pass.
    pub pruned_actions: Vec<String>,
    pub(crate) text: String,
    pub(crate) source_map: SourceMap,
}

/// Which part of a key-value entry a problem points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The key naming the entry.
    Key,
    /// The value.
    Value,
}

impl Document {
    /// A problem at the JSON pointer `pointer` of this document.
    pub fn diagnostic(
        &self,
        kind: DiagnosticKind,
        pointer: &Pointer,
        target: Target,
        message: impl Into<String>,
    ) -> Diagnostic {
        locate(
            kind,
            &self.file,
            &self.text,
            &self.source_map,
            pointer.as_str(),
            target,
            message,
        )
    }
}

pub(crate) fn locate(
    kind: DiagnosticKind,
    file: &str,
    text: &str,
    map: &SourceMap,
    pointer: &str,
    target: Target,
    message: impl Into<String>,
) -> Diagnostic {
    let span = match target {
        Target::Key => map.key(pointer),
        Target::Value => map.value(pointer),
    };
    let span = span.map(|span| first_key_of_block(text, cover_quotes(text, span)));
    Diagnostic::at(kind, file, text, span, message)
}

/// yaml-rust2 places a block mapping where it read its first `:`. Point at the first key
/// instead, so that a problem with the whole mapping underlines a name, not a colon.
fn first_key_of_block(text: &str, span: Span) -> Span {
    let Some(line) = lines(text).nth(span.line.saturating_sub(1)) else {
        return span;
    };
    let chars: Vec<char> = line.chars().collect();
    let at = span.column.saturating_sub(1);
    let is_colon =
        chars.get(at) == Some(&':') && chars.get(at + 1).is_none_or(|c| c.is_whitespace());
    if !is_colon {
        return span;
    }
    let mut start = 0;
    while start < at
        && (chars[start] == ' ' || (chars[start] == '-' && chars.get(start + 1) == Some(&' ')))
    {
        start += 1;
    }
    if start >= at {
        return span;
    }
    Span {
        line: span.line,
        column: start + 1,
        len: at - start,
    }
}

/// A quoted scalar's span starts at its opening quote but is as long as its unquoted text:
/// stretch it to the closing quote so that the caret underlines the whole value as written.
fn cover_quotes(text: &str, span: Span) -> Span {
    let Some(line) = lines(text).nth(span.line.saturating_sub(1)) else {
        return span;
    };
    let mut chars = line.chars().skip(span.column.saturating_sub(1));
    let Some(quote @ ('"' | '\'')) = chars.next() else {
        return span;
    };
    let mut len = 1;
    let mut escaped = false;
    let mut rest = chars.peekable();
    while let Some(c) = rest.next() {
        len += 1;
        match c {
            '\\' if quote == '"' && !escaped => {
                escaped = true;
                continue;
            }
            '\'' if quote == '\'' && rest.peek() == Some(&'\'') => {
                rest.next();
                len += 1;
            }
            c if c == quote && !escaped => return Span { len, ..span },
            _ => {}
        }
        escaped = false;
    }
    // The string goes on over the next lines: underline the rest of this one.
    Span { len, ..span }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carets_cover_quoted_values_with_their_quotes() {
        let text = "a: \"x\\\"y\" # note\nb: 'it''s'\n";
        let span = |line, column| Span {
            line,
            column,
            len: 1,
        };
        assert_eq!(cover_quotes(text, span(1, 4)).len, 6);
        assert_eq!(cover_quotes(text, span(2, 4)).len, 7);
    }

    #[test]
    fn a_block_mapping_is_shown_at_its_first_key() {
        let text = "auth:\n  - bearer: x\n";
        let at = first_key_of_block(
            text,
            Span {
                line: 2,
                column: 11,
                len: 1,
            },
        );
        assert_eq!((at.column, at.len), (5, 6));
    }
}
