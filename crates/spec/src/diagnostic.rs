//! Located problems in a mapping file, rendered the way compilers show them.

use std::fmt;

use annotate_snippets::{AnnotationKind, Level, Origin, Renderer, Snippet};

use crate::source_map::{Span, lines};

/// What kind of problem a diagnostic reports, so that tools and tests can tell problems apart
/// without reading their messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DiagnosticKind {
    /// The file cannot be read.
    Read,
    /// YAML syntax.
    Syntax,
    /// Nested deeper than ferry reads.
    TooDeep,
    /// A key written twice in one YAML mapping.
    DuplicateKey,
    /// The document's structure: an unknown key, a wrong type, a missing key.
    Structure,
    /// A JSONPath.
    Path,
    /// A template: its syntax, or a variable, filter, test or function nothing defines.
    Template,
    /// A setting's declaration, or a reference to a setting.
    Setting,
    /// A field's sources and the keys beside them.
    Field,
    /// A condition (`when`, `where`, `refuse`, `failure`).
    Selector,
    /// An output name written twice in one object.
    DuplicateName,
    /// A header.
    Header,
    /// The base URL, the request path, the body format or the auth.
    Request,
    /// A batch rule.
    Batch,
    /// Steps and the responses they read.
    Step,
    /// Remembered values.
    Recall,
    /// Groups of fields.
    Group,
    /// A remap or another operation on values.
    Operation,
    /// Computed values.
    Computed,
    /// A problem of `ferry.yaml` beyond its structure.
    Config,
    /// Two mapping files, or a mapping and the configuration, disagree.
    Conflict,
}

/// One problem in a mapping file, with where it is and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What kind of problem it is.
    pub kind: DiagnosticKind,
    /// The file, as the user named it.
    pub file: String,
    /// 1-based line (0 when the problem has no place in the text).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Characters underlined from `column`.
    pub len: usize,
    /// The text of the line, or of the part of it around `column` when the line is too long to
    /// show whole.
    pub snippet: String,
    /// The 1-based column of the line at which `snippet` begins (1 when it is the whole line).
    pub snippet_from: u32,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when ferry can tell.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A problem of `kind` at `span` of `text`.
    pub fn at(
        kind: DiagnosticKind,
        file: &str,
        text: &str,
        span: Option<Span>,
        message: impl Into<String>,
    ) -> Self {
        let span = span.unwrap_or(Span {
            line: 0,
            column: 0,
            len: 0,
        });
        let snippet = if span.line == 0 {
            String::new()
        } else {
            lines(text).nth(span.line - 1).unwrap_or("").to_owned()
        };
        Diagnostic {
            kind,
            file: file.to_owned(),
            line: span.line,
            column: span.column,
            len: span.len.max(1),
            snippet,
            snippet_from: 1,
            message: message.into(),
            help: None,
        }
    }

    /// Adds a hint on how to fix the problem.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = Level::ERROR.primary_title(self.message.as_str());
        let mut group = if self.line == 0 {
            title.element(Origin::path(self.file.as_str()))
        } else {
            let start = byte_offset(
                &self.snippet,
                self.column.saturating_sub(self.snippet_from as usize),
            );
            let end = start + byte_offset(&self.snippet[start..], self.len).max(1);
            let snippet = Snippet::source(self.snippet.as_str())
                .line_start(self.line)
                .annotation(
                    AnnotationKind::Primary.span(start..end.min(self.snippet.len().max(start + 1))),
                );
            if self.snippet_from == 1 {
                title.element(snippet.path(self.file.as_str()))
            } else {
                // Part of a long line: the place is named as the line's own column.
                title
                    .element(
                        Origin::path(self.file.as_str())
                            .line(self.line)
                            .char_column(self.column),
                    )
                    .element(snippet)
            }
        };
        if let Some(help) = &self.help {
            group = group.element(Level::HELP.message(help.as_str()));
        }
        writeln!(f, "{}", Renderer::plain().render(&[group]))
    }
}

/// Byte offset of the `chars`-th character of `text` (its length when shorter).
fn byte_offset(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(at, _)| at)
}

/// Every problem found in one or more mapping files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column_and_caret() {
        let text = "version: 1\nname: Bad Name\n";
        let span = Span {
            line: 2,
            column: 7,
            len: 8,
        };
        let rendered = Diagnostic::at(
            DiagnosticKind::Structure,
            "m.yaml",
            text,
            Some(span),
            "bad `name`",
        )
        .with_help("use lowercase")
        .to_string();
        assert_eq!(
            rendered,
            "error: bad `name`\n --> m.yaml:2:7\n  |\n2 | name: Bad Name\n  |       ^^^^^^^^\n  |\n  = help: use lowercase\n"
        );
    }

    #[test]
    fn carets_line_up_under_wide_characters() {
        let text = "name: 日本語 value\n";
        let span = Span {
            line: 1,
            column: 11,
            len: 5,
        };
        let rendered = Diagnostic::at(DiagnosticKind::Structure, "m.yaml", text, Some(span), "bad")
            .to_string();
        // Each CJK character takes two columns on a terminal.
        assert!(
            rendered.contains("1 | name: 日本語 value\n  |              ^^^^^\n"),
            "{rendered}"
        );
    }
}
