//! Reading a mapping file: YAML syntax, then the JSON Schema (every structural problem at once),
//! then the typed model. Semantic checks (paths, templates, settings) come after, in the compiler,
//! which reports through [`Document::diagnostic`].

use std::path::Path;
use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::Mapping;
use crate::schema;
use crate::source_map::{SourceMap, escape_segment};
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
    Diagnostic::at(file, text, span, message)
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
        .map(|(pointer, span)| {
            let key = pointer.rsplit('/').next().unwrap_or_default();
            Diagnostic::at(file, text, Some(*span), format!("duplicate key `{key}`"))
                .with_help("each key may appear once in a mapping; rename or merge the two entries")
        })
        .collect();

    let yaml: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            if problems.is_empty() || !error.to_string().contains("duplicate") {
                let span = error.location().map(|at| crate::source_map::Span {
                    line: at.line(),
                    column: at.column(),
                    len: 1,
                });
                problems.push(Diagnostic::at(
                    file,
                    text,
                    span,
                    format!("invalid YAML: {}", strip_location(&error.to_string())),
                ));
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
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push('/');
                pointer.push_str(&escape_segment(key));
            }
            Segment::Unknown => {}
        }
    }
    pointer
}

fn schema_problem(
    file: &str,
    text: &str,
    map: &SourceMap,
    error: &jsonschema::ValidationError<'_>,
) -> Vec<Diagnostic> {
    let pointer = error.instance_path().as_str();
    let at = |what: &str| {
        if pointer.is_empty() {
            "the mapping".to_owned()
        } else {
            format!("`{}`{what}", display_pointer(pointer))
        }
    };
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = schema::allowed_keys(error.schema_path().as_str());
            unexpected
                .iter()
                .map(|key| {
                    let child = format!("{pointer}/{}", escape_segment(key));
                    let place = if pointer.is_empty() {
                        "at the top level".to_owned()
                    } else {
                        format!("in `{}`", display_pointer(pointer))
                    };
                    let diagnostic = locate(
                        file,
                        text,
                        map,
                        &child,
                        Target::Key,
                        format!("unknown key `{key}` {place}"),
                    );
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
        ValidationErrorKind::Required { property } => {
            let key = property.as_str().unwrap_or_default();
            vec![locate(
                file,
                text,
                map,
                pointer,
                Target::Key,
                format!("{} is missing the required key `{key}`", at("")),
            )]
        }
        ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
            vec![locate(
                file,
                text,
                map,
                pointer,
                Target::Value,
                format!(
                    "{} has the wrong shape: expected {}",
                    at(""),
                    schema::expected(error.schema_path().as_str())
                ),
            )]
        }
        _ => vec![locate(
            file,
            text,
            map,
            pointer,
            Target::Value,
            format!("{}: {}", at(""), error),
        )],
    }
}

/// `/actions/track/when` -> `actions.track.when`, `/a/0` -> `a[0]`.
pub fn display_pointer(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
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
    fn pointers_display_as_dotted_paths() {
        assert_eq!(display_pointer("/actions/track/when"), "actions.track.when");
        assert_eq!(display_pointer("/a/from/1"), "a.from[1]");
        assert_eq!(display_pointer("/h/a~1b"), "h.a/b");
    }
}
