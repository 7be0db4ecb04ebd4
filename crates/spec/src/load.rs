//! Reading a mapping file: YAML syntax, then the JSON Schema (every structural problem at once),
//! then the typed model. Semantic checks (paths, templates, settings) come after, in the compiler,
//! which reports through [`Document::diagnostic`].

use std::path::Path;
use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::Mapping;
use crate::schema;
use crate::source_map::{SourceMap, Span, escape_segment};
use crate::suggest::did_you_mean;

/// A parsed mapping file, with what is needed to locate problems in it.
#[derive(Debug)]
pub struct Document {
    /// The file name, as the user gave it.
    pub file: String,
    /// The typed mapping.
    pub mapping: Mapping,
    text: String,
    source_map: SourceMap,
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
        pointer: &str,
        target: Target,
        message: impl Into<String>,
    ) -> Diagnostic {
        locate(
            &self.file,
            &self.text,
            &self.source_map,
            pointer,
            target,
            message,
        )
    }
}

fn locate(
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
    Diagnostic::at(file, text, span, message)
}

/// yaml-rust2 places a block mapping where it read its first `:`. Point at the first key
/// instead, so that a problem with the whole mapping underlines a name, not a colon.
fn first_key_of_block(text: &str, span: Span) -> Span {
    let Some(line) = text.lines().nth(span.line.saturating_sub(1)) else {
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
    let Some(line) = text.lines().nth(span.line.saturating_sub(1)) else {
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

/// Reads and parses the mapping file at `path`.
pub fn load_file(path: &Path) -> Result<Document, Diagnostics> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&file, &text),
        Err(error) => Err(Diagnostics(vec![Diagnostic::at(
            &file,
            "",
            None,
            format!("cannot read the file: {error}"),
        )])),
    }
}

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    jsonschema::validator_for(&schema::mapping_schema())
        .expect("the generated mapping schema is a valid JSON Schema")
});

/// Parses `text` (named `file` in messages) into a [`Document`], or returns every structural
/// problem found.
pub fn load_str(file: &str, text: &str) -> Result<Document, Diagnostics> {
    let source_map = SourceMap::build(text);
    let mut problems: Vec<Diagnostic> = source_map
        .duplicates()
        .iter()
        .map(|(pointer, span)| duplicate_key(file, text, pointer, *span))
        .collect();

    let yaml: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            if problems.is_empty() || !error.to_string().contains("duplicate") {
                let span = error.location().map(|at| Span {
                    line: at.line(),
                    column: at.column(),
                    len: 1,
                });
                problems.push(syntax_problem(file, text, span, &error.to_string()));
            }
            return Err(Diagnostics(problems));
        }
    };
    if !problems.is_empty() {
        return Err(Diagnostics(problems));
    }

    let json: serde_json::Value = match serde_json::to_value(&yaml) {
        Ok(json) => json,
        Err(error) => {
            return Err(Diagnostics(vec![Diagnostic::at(
                file,
                text,
                None,
                format!("the mapping must be plain data: {error}"),
            )]));
        }
    };

    for error in VALIDATOR.iter_errors(&json) {
        problems.extend(schema_problem(file, text, &source_map, &error));
    }
    if !problems.is_empty() {
        problems.sort_by_key(|d| (d.line, d.column));
        problems.dedup();
        return Err(Diagnostics(problems));
    }

    let deserializer = serde_yaml::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Mapping>(deserializer) {
        Ok(mapping) => Ok(Document {
            file: file.to_owned(),
            mapping,
            text: text.to_owned(),
            source_map,
        }),
        Err(error) => {
            let pointer = serde_pointer(error.path());
            let message = strip_location(&error.inner().to_string());
            Err(Diagnostics(vec![locate(
                file,
                text,
                &source_map,
                &pointer,
                Target::Value,
                message,
            )]))
        }
    }
}

/// A repeated key: the repeated entry is pointed at, and named by what it is.
fn duplicate_key(file: &str, text: &str, pointer: &str, span: Span) -> Diagnostic {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or_default();
    let key = key.replace("~1", "/").replace("~0", "~");
    let (message, help) = match parent {
        "/actions" => (
            format!("action `{key}` is defined twice"),
            "every action needs its own name: rename one of the two, or merge them".to_owned(),
        ),
        "/settings" => (
            format!("setting `{key}` is declared twice"),
            "remove one of the two declarations, or rename one".to_owned(),
        ),
        "" => (
            format!("duplicate key `{key}` at the top level"),
            "each key may appear once in a mapping; merge the two entries".to_owned(),
        ),
        parent => (
            format!("duplicate key `{key}` in `{}`", display_pointer(parent)),
            "each key may appear once in a mapping; rename or merge the two entries".to_owned(),
        ),
    };
    Diagnostic::at(file, text, Some(span), message).with_help(help)
}

/// A YAML syntax error. libyaml reports where it gave up, often a line after the mistake, and
/// what it was reading ("while parsing a flow mapping at line L column C"): the second part
/// becomes the help, so the author can find the place that needs fixing.
fn syntax_problem(file: &str, text: &str, span: Option<Span>, error: &str) -> Diagnostic {
    let (problem, context) = match error.split_once(", while ") {
        Some((problem, context)) => (problem, Some(context)),
        None => (error, None),
    };
    let problem = strip_location(problem);
    let diagnostic = Diagnostic::at(file, text, span, format!("invalid YAML: {problem}"));
    let started = context.and_then(|context| {
        let (what, at) = context.split_once(" at line ")?;
        let (line, column) = at.split_once(" column ")?;
        let what = what
            .trim_start_matches("parsing ")
            .trim_start_matches("scanning ");
        Some((what.to_owned(), line.to_owned(), column.trim().to_owned()))
    });
    let help = if problem.contains("tab character") {
        Some("indent with spaces: YAML does not allow tabs for indentation".to_owned())
    } else if problem.contains("mapping values are not allowed") {
        Some(
            "a `key: value` cannot start here: check the indentation of this line and the lines \
             above, or quote a value that contains `: `"
                .to_owned(),
        )
    } else {
        started.map(|(what, line, column)| match what.as_str() {
            "a flow mapping" => format!(
                "the `{{` at line {line}, column {column} is not closed: end it with `}}` on \
                 the same line, or write the mapping as indented lines"
            ),
            "a flow sequence" => format!(
                "the `[` at line {line}, column {column} is not closed: end it with `]` on \
                 the same line, or write the list as `- ` lines"
            ),
            "a block mapping" => format!(
                "in the mapping that starts at line {line}, column {column}: check that its \
                 keys are indented alike"
            ),
            what => format!("while reading {what} that starts at line {line}, column {column}"),
        })
    };
    match help {
        Some(help) => diagnostic.with_help(help),
        None => diagnostic,
    }
}

/// serde_yaml appends " at line L column C"; the diagnostic shows the place itself.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(cut) => message[..cut].to_owned(),
        None => message.to_owned(),
    }
}

fn serde_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => {
                pointer.push('/');
                pointer.push_str(&index.to_string());
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push('/');
                pointer.push_str(&escape_segment(key));
            }
            Segment::Unknown => {}
        }
    }
    pointer
}

/// Where a schema error is: the file, and the JSON pointer of the value in it.
struct Site<'a> {
    file: &'a str,
    text: &'a str,
    map: &'a SourceMap,
    pointer: &'a str,
}

impl Site<'_> {
    fn diagnostic(&self, target: Target, message: impl Into<String>) -> Diagnostic {
        locate(
            self.file,
            self.text,
            self.map,
            self.pointer,
            target,
            message,
        )
    }

    /// `` `actions.track.when` `` (or "the mapping" at the top).
    fn name(&self) -> String {
        if self.pointer.is_empty() {
            "the mapping".to_owned()
        } else {
            format!("`{}`", display_pointer(self.pointer))
        }
    }
}

fn schema_problem(
    file: &str,
    text: &str,
    map: &SourceMap,
    error: &jsonschema::ValidationError<'_>,
) -> Vec<Diagnostic> {
    let site = Site {
        file,
        text,
        map,
        pointer: error.instance_path().as_str(),
    };
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            unknown_keys(&site, error, unexpected)
        }
        ValidationErrorKind::Required { property } => {
            let key = property.as_str().unwrap_or_default();
            vec![site.diagnostic(
                Target::Key,
                format!("{} is missing the required key `{key}`", site.name()),
            )]
        }
        ValidationErrorKind::AnyOf { .. }
        | ValidationErrorKind::OneOfNotValid { .. }
        | ValidationErrorKind::Type { .. }
        | ValidationErrorKind::Enum { .. }
        | ValidationErrorKind::Constant { .. } => wrong_value(&site, error),
        ValidationErrorKind::Minimum { .. } | ValidationErrorKind::Maximum { .. } => {
            let value = error.instance();
            let name = site.name();
            let message = match schema::range(error.schema_path().as_str()) {
                (Some(min), Some(max)) if min == max => {
                    format!("{name} must be {min}, not {value}")
                }
                (Some(min), _) if matches!(error.kind(), ValidationErrorKind::Minimum { .. }) => {
                    format!("{name} must be at least {min}, not {value}")
                }
                (_, Some(max)) => format!("{name} must be at most {max}, not {value}"),
                _ => format!("{name}: {error}"),
            };
            vec![site.diagnostic(Target::Value, message)]
        }
        // Only `http.auth` limits its number of keys, to exactly one.
        ValidationErrorKind::MinProperties { .. } | ValidationErrorKind::MaxProperties { .. } => {
            let keys = schema::properties(error.schema_path().as_str());
            let quoted: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
            let target = if matches!(error.kind(), ValidationErrorKind::MaxProperties { .. }) {
                Target::Key
            } else {
                Target::Value
            };
            vec![site.diagnostic(
                target,
                format!(
                    "{} must set exactly one of {}",
                    site.name(),
                    join_or(&quoted)
                ),
            )]
        }
        ValidationErrorKind::Pattern { pattern } => {
            let value = error.instance();
            if site.pointer == "/name" {
                let diagnostic = site.diagnostic(
                    Target::Value,
                    format!(
                        "`name` must be lowercase letters, digits, `_` and `-`, starting with a \
                         letter, not {}",
                        describe_value(value)
                    ),
                );
                vec![match value.as_str().and_then(identifier) {
                    Some(name) => diagnostic.with_help(format!("try `name: {name}`")),
                    None => diagnostic,
                }]
            } else {
                vec![site.diagnostic(
                    Target::Value,
                    format!(
                        "{} must match `{pattern}`, not {}",
                        site.name(),
                        describe_value(value)
                    ),
                )]
            }
        }
        _ => vec![site.diagnostic(Target::Value, format!("{}: {error}", site.name()))],
    }
}

fn unknown_keys(
    site: &Site<'_>,
    error: &jsonschema::ValidationError<'_>,
    unexpected: &[String],
) -> Vec<Diagnostic> {
    let allowed = schema::allowed_keys(error.schema_path().as_str());
    let place = if site.pointer.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("in {}", site.name())
    };
    unexpected
        .iter()
        .map(|key| {
            let child = format!("{}/{}", site.pointer, escape_segment(key));
            let diagnostic = Site {
                pointer: &child,
                ..*site
            }
            .diagnostic(Target::Key, format!("unknown key `{key}` {place}"));
            match did_you_mean(key, allowed.iter().map(String::as_str)) {
                Some(near) => diagnostic.with_help(format!("did you mean `{near}`?")),
                None if !allowed.is_empty() => {
                    diagnostic.with_help(format!("allowed keys: {}", allowed.join(", ")))
                }
                None => diagnostic,
            }
        })
        .collect()
}

/// A value of the wrong kind, or not one of the allowed choices.
fn wrong_value(site: &Site<'_>, error: &jsonschema::ValidationError<'_>) -> Vec<Diagnostic> {
    let schema_path = error.schema_path().as_str();
    let value = error.instance();
    let expected = schema::expected(schema_path);
    let kind_matches = expected_kind_matches(&expected, value);
    if kind_matches && let Some(branch) = matching_branch(error) {
        // The value has the right kind but wrong content (a list item, a key too many): the
        // branch of its kind says what exactly.
        return branch
            .iter()
            .flat_map(|inner| schema_problem(site.file, site.text, site.map, inner))
            .collect();
    }
    let mut message = format!("{} must be {}", site.name(), expected.describe());
    if !kind_matches {
        message = format!("{message}, not {}", describe_value(value));
    }
    let diagnostic = site.diagnostic(Target::Value, message);
    match wrong_value_help(&expected, value, schema_path) {
        Some(help) => vec![diagnostic.with_help(help)],
        None => vec![diagnostic],
    }
}

/// For an `anyOf`/`oneOf` error, the errors of the one branch whose type the value has.
fn matching_branch<'e>(
    error: &'e jsonschema::ValidationError<'_>,
) -> Option<&'e [jsonschema::ValidationError<'static>]> {
    let (ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context }) =
        error.kind()
    else {
        return None;
    };
    let here = error.instance_path().as_str();
    let mut fitting = context.iter().filter(|branch| {
        !branch.is_empty()
            && !branch.iter().any(|inner| {
                inner.instance_path().as_str() == here
                    && matches!(
                        inner.kind(),
                        ValidationErrorKind::Type { .. }
                            | ValidationErrorKind::Constant { .. }
                            | ValidationErrorKind::Enum { .. }
                    )
            })
    });
    match (fitting.next(), fitting.next()) {
        (Some(branch), None) => Some(branch),
        _ => None,
    }
}

/// Whether `value` is of a kind `expected` names (then only its content is wrong, e.g. an item
/// of a list, and "not a list" would mislead).
fn expected_kind_matches(expected: &schema::Expected, value: &serde_json::Value) -> bool {
    use serde_json::Value;
    let schema::Expected::Kinds(kinds) = expected else {
        return false;
    };
    kinds.iter().any(|kind| match value {
        Value::Array(_) => kind.starts_with("a list"),
        Value::Object(_) => kind == "a mapping",
        _ => false,
    })
}

/// `the string "one"`, `the number 2`, `a list`.
fn describe_value(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "empty".to_owned(),
        Value::Bool(_) => format!("`{value}`"),
        Value::Number(_) => format!("the number {value}"),
        Value::String(text) => format!("`{text}`"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

/// How to fix a value of the wrong kind or a misspelt choice.
fn wrong_value_help(
    expected: &schema::Expected,
    value: &serde_json::Value,
    schema_path: &str,
) -> Option<String> {
    match expected {
        schema::Expected::Choices(choices) => {
            let text = value.as_str()?;
            let near = choices
                .iter()
                .find(|c| c.eq_ignore_ascii_case(text))
                .map(String::as_str)
                .or_else(|| did_you_mean(text, choices.iter().map(String::as_str)))?;
            Some(format!("did you mean `{near}`?"))
        }
        schema::Expected::Kinds(kinds) => {
            let text = value.as_str()?;
            let wants = |kind: &str| kinds.iter().any(|k| k == kind);
            if let (Some(min), Some(max)) = schema::range(schema_path)
                && min == max
            {
                Some(format!("the only allowed value is `{min}`"))
            } else if wants("`true` or `false`") {
                Some("write `true` or `false`, without quotes".to_owned())
            } else if (wants("an integer") || wants("a number"))
                && text.trim().parse::<f64>().is_ok()
            {
                Some(format!(
                    "write the number without quotes: `{}`",
                    text.trim()
                ))
            } else {
                None
            }
        }
    }
}

/// `Extole Platform` -> `extole_platform`, when that makes a valid name.
fn identifier(text: &str) -> Option<String> {
    let name: String = text
        .trim()
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_' | '-') => c,
            _ => '_',
        })
        .collect();
    let name = name.trim_start_matches(|c: char| !c.is_ascii_lowercase());
    (!name.is_empty()).then(|| name.to_owned())
}

/// `a, b or c`.
fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
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

    #[test]
    fn pointers_display_as_dotted_paths() {
        assert_eq!(display_pointer("/actions/track/when"), "actions.track.when");
        assert_eq!(display_pointer("/a/from/1"), "a.from[1]");
        assert_eq!(display_pointer("/h/a~1b"), "h.a/b");
    }
}
