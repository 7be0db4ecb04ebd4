//! Reading a mapping file: YAML syntax, then the JSON Schema (every structural problem at once),
//! then the typed model. Semantic checks (paths, templates, settings) come after, in the compiler,
//! which reports through [`Document::diagnostic`].
//!
//! When the structural problems all sit inside actions, those actions are set aside and the rest
//! of the mapping is still handed on ([`Loaded::Partial`]), so that the compiler can report its
//! problems in the same pass.

use std::path::Path;
use std::sync::LazyLock;

use crate::depth::{MAX_DEPTH, too_deep};
use crate::diagnostic::{Diagnostic, DiagnosticKind, Diagnostics};
use crate::document::{Document, Target, locate};
use crate::explain::{
    duplicate_key, schema_problem, serde_pointer, strip_location, syntax_problem,
};
use crate::model::Mapping;
use crate::schema;
use crate::source_map::{self, SourceMap, Span};

/// What reading a mapping file gave.
#[derive(Debug)]
pub enum Loaded {
    /// A structurally valid mapping.
    Complete(Document),
    /// Structural problems inside some actions: those actions are left out of `document`, whose
    /// remaining parts can still be checked.
    Partial {
        /// The mapping without the broken actions.
        document: Document,
        /// The structural problems found.
        problems: Diagnostics,
    },
    /// Problems that leave nothing to check further.
    Failed(Diagnostics),
}

/// Reads and parses the mapping file at `path`.
pub fn read_file(path: &Path) -> Loaded {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => read_str(&file, &text),
        Err(error) => Loaded::Failed(Diagnostics(vec![Diagnostic::at(
            DiagnosticKind::Read,
            &file,
            "",
            None,
            format!("cannot read the file: {error}"),
        )])),
    }
}

/// Reads and parses the mapping file at `path`; any problem rejects it.
pub fn load_file(path: &Path) -> Result<Document, Diagnostics> {
    complete(read_file(path))
}

/// Parses `text` (named `file` in messages); any problem rejects it.
pub fn load_str(file: &str, text: &str) -> Result<Document, Diagnostics> {
    complete(read_str(file, text))
}

fn complete(loaded: Loaded) -> Result<Document, Diagnostics> {
    match loaded {
        Loaded::Complete(document) => Ok(document),
        Loaded::Partial { problems, .. } | Loaded::Failed(problems) => Err(problems),
    }
}

static SCHEMA: LazyLock<serde_json::Value> = LazyLock::new(schema::mapping_schema);

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    jsonschema::validator_for(&SCHEMA).expect("the generated mapping schema is a valid JSON Schema")
});

/// Parses `text` (named `file` in messages).
pub fn read_str(file: &str, text: &str) -> Loaded {
    let (yaml, json, source_map) = match parse_yaml(file, text, "the mapping") {
        Ok(parsed) => parsed,
        Err(problems) => return Loaded::Failed(problems),
    };
    let mut problems = Vec::new();

    let mut broken_actions = Vec::new();
    let mut outside_actions = false;
    for error in VALIDATOR.iter_errors(&json) {
        match action_of(error.instance_path().as_str()) {
            Some(action) => broken_actions.push(action),
            None => outside_actions = true,
        }
        problems.extend(schema_problem(
            file,
            text,
            &source_map,
            &error,
            &SCHEMA,
            "the mapping",
        ));
    }
    problems.sort_by_key(|d| (d.line, d.column));
    problems.dedup();
    if outside_actions {
        return Loaded::Failed(Diagnostics(problems));
    }

    let mut yaml = yaml;
    broken_actions.sort();
    broken_actions.dedup();
    if let Some(actions) = yaml
        .get_mut("actions")
        .and_then(serde_yaml::Value::as_mapping_mut)
    {
        for action in &broken_actions {
            actions.remove(action.as_str());
        }
    }
    match typed::<Mapping, _>(file, text, &source_map, yaml) {
        Ok(mapping) => {
            let document = Document {
                file: file.to_owned(),
                mapping,
                pruned_actions: broken_actions,
                text: text.to_owned(),
                source_map,
            };
            if problems.is_empty() {
                Loaded::Complete(document)
            } else {
                Loaded::Partial {
                    document,
                    problems: Diagnostics(problems),
                }
            }
        }
        Err(problem) => {
            if problems.is_empty() {
                problems.push(problem);
            }
            Loaded::Failed(Diagnostics(problems))
        }
    }
}

/// Duplicate keys and YAML syntax, then plain data (`what` names the document in messages):
/// the text as YAML and as JSON with its source map, or every such problem.
pub(crate) fn parse_yaml(
    file: &str,
    text: &str,
    what: &str,
) -> Result<(serde_yaml::Value, serde_json::Value, SourceMap), Diagnostics> {
    if let Some(span) = too_deep(text) {
        return Err(Diagnostics(vec![nested_too_deep(file, text, span, what)]));
    }
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
                let span = error.location().map(|at| {
                    let (line, column) = source_map::position(text, at.index());
                    Span {
                        line,
                        column,
                        len: 1,
                    }
                });
                problems.push(syntax_problem(file, text, span, &error.to_string()));
            }
            return Err(Diagnostics(problems));
        }
    };
    if !problems.is_empty() {
        return Err(Diagnostics(problems));
    }
    // `<<: *anchor` merges the anchored mapping's keys into this one (YAML merge keys): one
    // field can reuse another's options. Keys written beside `<<` win.
    let mut yaml = yaml;
    if let Err(error) = yaml.apply_merge() {
        return Err(Diagnostics(vec![
            Diagnostic::at(
                DiagnosticKind::Structure,
                file,
                text,
                source_map.first_key_named("<<"),
                format!("a YAML merge key (`<<`) cannot be applied: {error}"),
            )
            .with_help("`<<` takes an anchored mapping (`<<: *common`) or a list of them"),
        ]));
    }
    // Top-level keys starting with `x-` hold reusable pieces (anchors) and are not read.
    if let Some(map) = yaml.as_mapping_mut() {
        map.retain(|key, _| !key.as_str().is_some_and(|k| k.starts_with("x-")));
    }
    let json = serde_json::to_value(&yaml).map_err(|error| {
        Diagnostics(vec![Diagnostic::at(
            DiagnosticKind::Structure,
            file,
            text,
            None,
            format!("{what} must be plain data: {error}"),
        )])
    })?;
    Ok((yaml, json, source_map))
}

/// The problem of a document nested deeper than [`MAX_DEPTH`], with the snippet cut to the
/// characters around the place (a deep document is often one very long line).
fn nested_too_deep(file: &str, text: &str, span: Span, what: &str) -> Diagnostic {
    const AROUND: usize = 40;
    let mut diagnostic = Diagnostic::at(
        DiagnosticKind::TooDeep,
        file,
        text,
        Some(span),
        format!("{what} nests more than {MAX_DEPTH} levels of mappings and lists"),
    )
    .with_help(format!(
        "ferry reads documents nested at most {MAX_DEPTH} levels deep; a real mapping needs far fewer"
    ));
    // The line is shown from its start when the place is near it, so that the usual header
    // names the place; from just before the place otherwise.
    let skip = if diagnostic.column > 4 * AROUND {
        diagnostic.column - AROUND - 1
    } else {
        0
    };
    if skip > 0 || diagnostic.snippet.chars().count() > diagnostic.column + AROUND {
        diagnostic.snippet = diagnostic
            .snippet
            .chars()
            .skip(skip)
            .take(diagnostic.column - skip + AROUND)
            .collect();
        // The column stays the line's own; the snippet says where in the line it begins.
        diagnostic.snippet_from = u32::try_from(skip + 1).unwrap_or(u32::MAX);
    }
    diagnostic
}

/// The typed model of a checked document, or the problem at the place serde stopped.
#[allow(clippy::result_large_err)] // one problem per failed load: size does not matter here
pub(crate) fn typed<'de, T: serde::Deserialize<'de>, D: serde::Deserializer<'de>>(
    file: &str,
    text: &str,
    source_map: &SourceMap,
    value: D,
) -> Result<T, Diagnostic> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let pointer = serde_pointer(error.path());
        let message = strip_location(&error.inner().to_string());
        locate(
            DiagnosticKind::Structure,
            file,
            text,
            source_map,
            &pointer,
            Target::Value,
            message,
        )
    })
}

/// The action a JSON pointer lies in (`/actions/track/...` -> `track`), if any.
fn action_of(pointer: &str) -> Option<String> {
    let rest = pointer.strip_prefix("/actions/")?;
    let name = rest.split('/').next()?;
    Some(name.replace("~1", "/").replace("~0", "~"))
}
