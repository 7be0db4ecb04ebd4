//! What a bucket (`rest_of`) leaves out, precisely: a key read by a field that this event
//! writes, or by a field written whatever happens; a name written beside it; never a key read
//! only by a field, or named only by a spread object, that its `when` left out for the event.

mod support;

use serde_json::json;
use support::{HEAD, connect, json as body, plan, request};

fn mapping(fields: &str) -> String {
    format!(
        "{HEAD}actions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n      body:\n{fields}"
    )
}

#[test]
fn a_field_left_out_by_its_when_does_not_hide_its_key_from_the_bucket() {
    let fields = "        order_id: { from: $.properties.order_id, when: { event: Order Completed } }\n        product_id: { from: $.properties.product_id, when: { event: Product Viewed } }\n        metadata: { rest_of: $.properties }\n";
    let connection = connect(&mapping(fields), &json!({}));
    let properties = json!({"order_id": "o1", "product_id": "p1", "color": "red"});
    let order = plan(
        &connection,
        &json!({"type": "track", "event": "Order Completed", "properties": properties}),
    );
    assert_eq!(
        body(request(&order)),
        json!({"order_id": "o1", "metadata": {"color": "red", "product_id": "p1"}})
    );
    let viewed = plan(
        &connection,
        &json!({"type": "track", "event": "Product Viewed", "properties": properties}),
    );
    assert_eq!(
        body(request(&viewed)),
        json!({"product_id": "p1", "metadata": {"color": "red", "order_id": "o1"}})
    );
}

#[test]
fn a_when_above_a_field_counts_as_its_own() {
    let fields = "        order:\n          when: { event: Order Completed }\n          fields: { id: { from: $.properties.order_id } }\n        metadata: { rest_of: $.properties }\n";
    let connection = connect(&mapping(fields), &json!({}));
    let other = plan(
        &connection,
        &json!({"type": "track", "event": "Clicked", "properties": {"order_id": "o1"}}),
    );
    assert_eq!(
        body(request(&other)),
        json!({"metadata": {"order_id": "o1"}})
    );
    let order = plan(
        &connection,
        &json!({"type": "track", "event": "Order Completed", "properties": {"order_id": "o1"}}),
    );
    assert_eq!(
        body(request(&order)),
        json!({"order": {"id": "o1"}, "metadata": {}})
    );
}

#[test]
fn a_spread_object_left_out_by_its_when_hides_no_names() {
    let fields = "        ids:\n          spread: true\n          when: { filled: $.userId }\n          fields: { email: { from: $.userId } }\n        traits: { rest_of: $.traits, spread: true }\n";
    let connection = connect(&mapping(fields), &json!({}));
    let anonymous = plan(
        &connection,
        &json!({"type": "track", "traits": {"email": "t@x.io", "plan": "pro"}}),
    );
    assert_eq!(
        body(request(&anonymous)),
        json!({"email": "t@x.io", "plan": "pro"})
    );
    let known = plan(
        &connection,
        &json!({"type": "track", "userId": "u@x.io", "traits": {"email": "t@x.io", "plan": "pro"}}),
    );
    assert_eq!(
        body(request(&known)),
        json!({"email": "u@x.io", "plan": "pro"})
    );
}

#[test]
fn where_inside_entries_reads_the_entry_key() {
    let fields = "        custom:\n          entries: $.traits\n          where: { not: { matches: { $key: \"^(email|name)$\" } } }\n          from: $\n";
    let connection = connect(&mapping(fields), &json!({}));
    let planned = plan(
        &connection,
        &json!({"type": "track", "traits": {"email": "e", "name": "n", "plan": "pro"}}),
    );
    assert_eq!(body(request(&planned)), json!({"custom": {"plan": "pro"}}));
}

#[test]
fn except_can_come_from_a_setting() {
    let text = format!(
        "{HEAD}settings:\n  hidden: {{ type: list, description: h }}\nactions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n      body:\n        props: {{ rest_of: $.properties, except: {{ setting: hidden }} }}\n"
    );
    let event = json!({"type": "track", "properties": {"a": 1, "b": 2, "c": 3}});
    let all = connect(&text, &json!({}));
    assert_eq!(
        body(request(&plan(&all, &event))),
        json!({"props": {"a": 1, "b": 2, "c": 3}})
    );
    let some = connect(&text, &json!({"hidden": ["b", "c"]}));
    assert_eq!(
        body(request(&plan(&some, &event))),
        json!({"props": {"a": 1}})
    );
}
