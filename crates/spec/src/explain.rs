//! Turning parser and validator errors into diagnostics a mapping author can act on: what is
//! wrong in their words, where, and how to fix it.

use jsonschema::error::ValidationErrorKind;

use crate::diagnostic::{Diagnostic, DiagnosticKind};
use crate::document::{Target, locate};
use crate::schema;
use crate::source_map::{SourceMap, Span, display_pointer, escape_segment};
use crate::suggest::did_you_mean;

/// A repeated key: the repeated entry is pointed at, and named by what it is.
pub(crate) fn duplicate_key(file: &str, text: &str, pointer: &str, span: Span) -> Diagnostic {
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
    Diagnostic::at(
        DiagnosticKind::DuplicateKey,
        file,
        text,
        Some(span),
        message,
    )
    .with_help(help)
}

/// A YAML syntax error. libyaml reports where it gave up, often a line after the mistake, and
/// what it was reading ("while parsing a flow mapping at line L column C"): the second part
/// becomes the help, so the author can find the place that needs fixing.
pub(crate) fn syntax_problem(
    file: &str,
    text: &str,
    span: Option<Span>,
    error: &str,
) -> Diagnostic {
    let (problem, context) = match error.split_once(", while ") {
        Some((problem, context)) => (problem, Some(context)),
        None => (error, None),
    };
    let problem = strip_location(problem);
    let diagnostic = Diagnostic::at(
        DiagnosticKind::Syntax,
        file,
        text,
        span,
        format!("invalid YAML: {problem}"),
    );
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
pub(crate) fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(cut) => message[..cut].to_owned(),
        None => message.to_owned(),
    }
}

pub(crate) fn serde_pointer(path: &serde_path_to_error::Path) -> String {
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
    /// The schema the document was checked against.
    schema: &'a serde_json::Value,
    /// What the document is called when the problem is at its top: `the mapping`.
    document: &'a str,
}

impl Site<'_> {
    fn diagnostic(&self, target: Target, message: impl Into<String>) -> Diagnostic {
        locate(
            DiagnosticKind::Structure,
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
            self.document.to_owned()
        } else {
            format!("`{}`", display_pointer(self.pointer))
        }
    }
}

pub(crate) fn schema_problem(
    file: &str,
    text: &str,
    map: &SourceMap,
    error: &jsonschema::ValidationError<'_>,
    schema: &serde_json::Value,
    document: &str,
) -> Vec<Diagnostic> {
    let site = Site {
        file,
        text,
        map,
        pointer: error.instance_path().as_str(),
        schema,
        document,
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
            let message = match schema::range(site.schema, error.schema_path().as_str()) {
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
            let keys = schema::properties(site.schema, error.schema_path().as_str());
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
    let allowed = schema::allowed_keys(site.schema, error.schema_path().as_str());
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
    let expected = schema::expected(site.schema, schema_path);
    let kind_matches = expected_kind_matches(&expected, value);
    if kind_matches && let Some(branch) = matching_branch(error) {
        // The value has the right kind but wrong content (a list item, a key too many): the
        // branch of its kind says what exactly.
        return branch
            .iter()
            .flat_map(|inner| {
                schema_problem(
                    site.file,
                    site.text,
                    site.map,
                    inner,
                    site.schema,
                    site.document,
                )
            })
            .collect();
    }
    let mut message = format!("{} must be {}", site.name(), expected.describe());
    if !kind_matches {
        message = format!("{message}, not {}", describe_value(value));
    }
    let diagnostic = site.diagnostic(Target::Value, message);
    match wrong_value_help(&expected, value, site.schema, schema_path) {
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
    schema: &serde_json::Value,
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
            if let (Some(min), Some(max)) = schema::range(schema, schema_path)
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
