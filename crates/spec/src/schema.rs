//! The JSON Schema of the mapping language, generated from [`crate::model`].

use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::model::Mapping;

/// The JSON Schema (draft-07, the dialect editors support best) of a mapping file.
pub fn mapping_schema() -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<Mapping>();
    schema.to_value()
}

/// The schema as committed in `schemas/mapping.schema.json`: pretty JSON with a final newline.
pub fn mapping_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&mapping_schema()).expect("a schema serializes");
    text.push('\n');
    text
}

/// Follows a schema path reported by the validator (`/properties/actions/additionalProperties/...`),
/// jumping through `$ref`s.
fn node_at(root: &Value, schema_path: &str) -> Option<Value> {
    let mut node = root;
    for segment in schema_path.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment == "$ref" {
            let target = node.get("$ref")?.as_str()?;
            node = root.pointer(target.strip_prefix('#')?)?;
            continue;
        }
        node = match node {
            Value::Object(map) => map.get(&segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(resolve(root, node).clone())
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        Some(target) => root.pointer(target).unwrap_or(node),
        None => node,
    }
}

/// The keys allowed in the object whose `additionalProperties` rule is at `schema_path`.
pub(crate) fn allowed_keys(root: &Value, schema_path: &str) -> Vec<String> {
    let parent = schema_path
        .strip_suffix("/additionalProperties")
        .unwrap_or(schema_path);
    node_at(root, parent)
        .and_then(|node| {
            node.get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
        })
        .unwrap_or_default()
}

/// What the schema node at `schema_path` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expected {
    /// One of these literal values (an enum such as `method` or `as`).
    Choices(Vec<String>),
    /// Values of these kinds, described for people: `an integer`, `a list of strings`.
    Kinds(Vec<String>),
}

impl Expected {
    /// `a string or a list of strings`, `one of `GET`, `POST` or `PUT``.
    pub(crate) fn describe(&self) -> String {
        match self {
            Expected::Choices(choices) => {
                let quoted: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
                format!("one of {}", join_or(&quoted))
            }
            Expected::Kinds(kinds) if kinds.is_empty() => "another form".to_owned(),
            Expected::Kinds(kinds) => join_or(kinds),
        }
    }
}

/// `a, b or c`.
fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// What the schema node at `schema_path` accepts: a trailing keyword (`/anyOf`, `/oneOf`, `/type`,
/// `/pattern`...) is dropped so that the node is the value's own schema.
pub(crate) fn expected(root: &Value, schema_path: &str) -> Expected {
    let node = schema_path
        .rsplit_once('/')
        .and_then(|(parent, keyword)| {
            KEYWORDS
                .contains(&keyword)
                .then(|| node_at(root, parent))
                .flatten()
        })
        .or_else(|| node_at(root, schema_path));
    let Some(node) = node else {
        return Expected::Kinds(Vec::new());
    };
    let mut choices = Vec::new();
    let mut kinds = Vec::new();
    alternatives(root, &node, &mut choices, &mut kinds);
    if kinds.is_empty() && !choices.is_empty() {
        Expected::Choices(choices)
    } else {
        kinds.extend(choices.iter().map(|c| format!("`{c}`")));
        Expected::Kinds(kinds)
    }
}

/// The smallest and largest number the schema node at `schema_path` allows, when it says.
pub(crate) fn range(root: &Value, schema_path: &str) -> (Option<Value>, Option<Value>) {
    let parent = schema_path
        .rsplit_once('/')
        .map_or(schema_path, |(parent, _)| parent);
    node_at(root, parent).map_or((None, None), |node| {
        (node.get("minimum").cloned(), node.get("maximum").cloned())
    })
}

/// The property names of the object schema at `schema_path` (minus its trailing keyword).
pub(crate) fn properties(root: &Value, schema_path: &str) -> Vec<String> {
    let parent = schema_path
        .rsplit_once('/')
        .map_or(schema_path, |(parent, _)| parent);
    allowed_keys(root, parent)
}

const KEYWORDS: &[&str] = &[
    "anyOf",
    "oneOf",
    "type",
    "pattern",
    "enum",
    "const",
    "minimum",
    "maximum",
    "minProperties",
    "maxProperties",
];

/// Collects the literal values (`choices`) and the kinds of value (`kinds`) that `node` accepts,
/// looking through `$ref`s and nested `anyOf`/`oneOf`. `null` is left out: in YAML it is the same
/// as leaving the key out, which is never what an author meant to write.
fn alternatives(root: &Value, node: &Value, choices: &mut Vec<String>, kinds: &mut Vec<String>) {
    let node = resolve(root, node);
    if let Some(constant) = node.get("const") {
        push_unique(choices, literal(constant));
        return;
    }
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        for value in values.iter().filter(|v| !v.is_null()) {
            push_unique(choices, literal(value));
        }
        return;
    }
    if let Some(branches) = node
        .get("anyOf")
        .or_else(|| node.get("oneOf"))
        // schemars wraps a documented `$ref` as `allOf: [{ $ref }]`.
        .or_else(|| node.get("allOf"))
        .and_then(Value::as_array)
    {
        for branch in branches {
            alternatives(root, branch, choices, kinds);
        }
        return;
    }
    match node.get("type") {
        Some(Value::String(kind)) => push_kind(root, node, kind, kinds),
        Some(Value::Array(types)) => {
            for kind in types.iter().filter_map(Value::as_str) {
                push_kind(root, node, kind, kinds);
            }
        }
        _ => {}
    }
}

fn push_kind(root: &Value, node: &Value, kind: &str, kinds: &mut Vec<String>) {
    let described = match kind {
        "null" => return,
        "array" => match node.get("items").map(|items| resolve(root, items)) {
            Some(items) => {
                let mut item_choices = Vec::new();
                let mut item_kinds = Vec::new();
                alternatives(root, items, &mut item_choices, &mut item_kinds);
                match (item_kinds.as_slice(), item_choices.is_empty()) {
                    ([one], true) => format!(
                        "a list of {}s",
                        one.trim_start_matches("a ").trim_start_matches("an ")
                    ),
                    _ => "a list".to_owned(),
                }
            }
            None => "a list".to_owned(),
        },
        "object" => "a mapping".to_owned(),
        "integer" => "an integer".to_owned(),
        "boolean" => "`true` or `false`".to_owned(),
        other => format!("a {other}"),
    };
    push_unique(kinds, described);
}

fn literal(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_enums_as_their_choices() {
        assert_eq!(
            expected(&mapping_schema(), "/properties/source/allOf/0/$ref/oneOf"),
            Expected::Choices(
                ["segment", "amplitude", "extole", "json"]
                    .map(String::from)
                    .to_vec()
            )
        );
    }

    #[test]
    fn describes_optional_values_without_null() {
        assert_eq!(
            expected(
                &mapping_schema(),
                "/definitions/Request/properties/body/type"
            )
            .describe(),
            "a mapping"
        );
        assert_eq!(
            expected(
                &mapping_schema(),
                "/definitions/Field/properties/from/anyOf"
            )
            .describe(),
            "a string or a list of strings"
        );
    }

    #[test]
    fn describes_types() {
        assert_eq!(
            expected(&mapping_schema(), "/properties/version/type").describe(),
            "an integer"
        );
    }
}
