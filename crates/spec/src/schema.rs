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
fn node_at(schema_path: &str) -> Option<Value> {
    let root = mapping_schema();
    let mut node = &root;
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
    Some(resolve(&root, node).clone())
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
pub(crate) fn allowed_keys(schema_path: &str) -> Vec<String> {
    let parent = schema_path
        .strip_suffix("/additionalProperties")
        .unwrap_or(schema_path);
    node_at(parent)
        .and_then(|node| {
            node.get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
        })
        .unwrap_or_default()
}

/// A short description of what the `anyOf`/`oneOf` at `schema_path` accepts.
pub(crate) fn expected(schema_path: &str) -> String {
    let root = mapping_schema();
    let Some(node) = node_at(
        schema_path
            .trim_end_matches("/anyOf")
            .trim_end_matches("/oneOf"),
    ) else {
        return "another form".to_owned();
    };
    let branches = node
        .get("anyOf")
        .or_else(|| node.get("oneOf"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = branches
        .iter()
        .map(|branch| describe(resolve(&root, branch)))
        .collect();
    if names.is_empty() {
        "another form".to_owned()
    } else {
        names.join(" or ")
    }
}

fn describe(node: &Value) -> String {
    match node.get("type").and_then(Value::as_str) {
        Some("array") => match node
            .get("items")
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
        {
            Some(item) => format!("a list of {item}s"),
            None => "a list".to_owned(),
        },
        Some("object") => "an object".to_owned(),
        Some("integer") => "an integer".to_owned(),
        Some(other) => format!("a {other}"),
        None => match node.get("enum") {
            Some(values) => format!("one of {values}"),
            None => "a value".to_owned(),
        },
    }
}
