//! The committed JSON Schemas match the mapping language and the server configuration, and
//! describe every property.

use std::path::Path;

use serde_json::Value;

#[test]
fn committed_schema_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/mapping.schema.json");
    let committed = std::fs::read_to_string(&path).expect("schemas/mapping.schema.json exists");
    assert!(
        committed == ferry_spec::mapping_schema_text(),
        "schemas/mapping.schema.json is stale: run `cargo run -- schema > schemas/mapping.schema.json`"
    );
}

fn undescribed(node: &Value, at: &str, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                for (name, property) in properties {
                    if property.get("description").is_none() {
                        out.push(format!("{at}/properties/{name}"));
                    }
                }
            }
            for (key, child) in map {
                undescribed(child, &format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                undescribed(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_property_has_a_description() {
    let mut missing = Vec::new();
    undescribed(&ferry_spec::mapping_schema(), "", &mut missing);
    assert!(
        missing.is_empty(),
        "properties without a description: {missing:#?}"
    );
}

#[test]
fn committed_config_schema_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/ferry.schema.json");
    let committed = std::fs::read_to_string(&path).expect("schemas/ferry.schema.json exists");
    assert!(
        committed == ferry_spec::config_schema_text(),
        "schemas/ferry.schema.json is stale: run `cargo run -- schema --config > schemas/ferry.schema.json`"
    );
}

#[test]
fn every_config_property_has_a_description() {
    let mut missing = Vec::new();
    undescribed(&ferry_spec::config_schema(), "", &mut missing);
    assert!(
        missing.is_empty(),
        "properties without a description: {missing:#?}"
    );
}
