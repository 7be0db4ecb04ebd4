//! YAML that mappings may use beyond plain data: merge keys (`<<: *anchor`) that let a field
//! reuse another's options, and top-level `x-` keys that hold anchors without being read.

mod support;

use serde_json::json;
use support::{HEAD, connect, json as body, plan, rejected, request};

#[test]
fn a_merge_key_reuses_an_anchored_fields_options() {
    let text = format!(
        "{HEAD}x-time: &time {{ as: unix_millis, required: true }}\nactions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n      body:\n        sent: {{ <<: *time, from: $.sentAt }}\n        at:\n          <<: *time\n          from: $.timestamp\n          required: false\n"
    );
    let connection = connect(&text, &json!({}));
    let planned = plan(
        &connection,
        &json!({"type": "track", "sentAt": "2026-11-02T09:00:00Z", "timestamp": "2026-11-02T09:00:01Z"}),
    );
    assert_eq!(
        body(request(&planned)),
        json!({"sent": 1_793_610_000_000_i64, "at": 1_793_610_001_000_i64})
    );
    let missing = plan(&connection, &json!({"type": "track", "timestamp": 0}));
    assert_eq!(
        support::failure(&missing),
        "`sent` is required but `$.sentAt` is missing"
    );
}

#[test]
fn a_merge_of_something_else_than_a_mapping_is_refused() {
    let text = format!(
        "{HEAD}x-list: &list [1, 2]\nactions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n      body:\n        a: {{ <<: *list, value: 1 }}\n"
    );
    let problems = rejected(&text);
    assert!(
        problems.contains("a YAML merge key (`<<`) cannot be applied"),
        "{problems}"
    );
}
