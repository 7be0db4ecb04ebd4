//! An optional section left out means exactly what the same section written empty (`{}`) means,
//! everywhere in the mapping model and in `ferry.yaml`.

use ferry_spec::model::{Delivery, Mapping, Retry};
use serde_json::{Value, json};

fn value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("the model serialises")
}

#[test]
fn absent_delivery_is_an_empty_delivery() {
    let empty: Delivery = serde_json::from_value(json!({})).expect("`{}` is a delivery section");
    assert_eq!(value(&Delivery::default()), value(&empty));
    assert_eq!(Delivery::default().timeout_ms, 10_000);
    assert_eq!(Delivery::default().max_total_ms, 120_000);
}

#[test]
fn absent_retry_is_an_empty_retry() {
    let empty: Retry = serde_json::from_value(json!({})).expect("`{}` is a retry section");
    assert_eq!(value(&Retry::default()), value(&empty));
}

/// Every optional key of a mapping, left out or written empty, gives the same mapping.
#[test]
fn a_mapping_without_optional_sections_equals_one_with_them_empty() {
    let bare = json!({
        "version": 1, "name": "t", "source": "segment",
        "http": { "base_url": "https://x.example" },
        "actions": { "a": { "when": {}, "request": { "method": "POST", "path": "/" } } }
    });
    let empty = json!({
        "version": 1, "name": "t", "source": "segment",
        "settings": {},
        "http": { "base_url": "https://x.example", "headers": {} },
        "delivery": { "retry": {} },
        "actions": { "a": { "when": {}, "request": { "method": "POST", "path": "/", "query": {}, "headers": {} } } }
    });
    let bare: Mapping = serde_json::from_value(bare).expect("a bare mapping");
    let empty: Mapping = serde_json::from_value(empty).expect("a mapping with empty sections");
    assert_eq!(value(&bare), value(&empty));
}

#[test]
fn absent_ferry_yaml_sections_are_empty_ones() {
    let bare = "version: 1\nsources: { web: { type: segment, keys: [k] } }\n";
    let empty = "version: 1\nstore: {}\nretry: {}\nconnections: {}\nsources: { web: { type: segment, keys: [k] } }\n";
    let bare = ferry_spec::load_config_str("a.yaml", bare).expect("valid");
    let empty = ferry_spec::load_config_str("b.yaml", empty).expect("valid");
    assert_eq!(format!("{:?}", bare.config), format!("{:?}", empty.config));
}
