//! What a request carries is what the mapping says, or the mapping is refused when it loads:
//! no JSON member written twice, no member named `""`, no template that fails every event, no
//! batch wrapped under no name.

mod support;

use serde_json::json;
use support::{HEAD, connect, failure, plan, rejected, request, text};

/// A mapping whose one `track` action has `body` (YAML, indented by 8).
fn with_body(body: &str) -> String {
    format!(
        "{HEAD}actions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n      body:\n{body}"
    )
}

#[test]
fn two_members_that_always_write_one_name_are_refused_where_the_second_is() {
    let spread_group = "        url: { from: $.a }\n        page:\n          spread: true\n          fields:\n            url: { from: $.b }\n";
    let problems = rejected(&with_body(spread_group));
    assert!(
        problems.contains("the member `url` is written here and by the field at line 13"),
        "{problems}"
    );
    assert!(problems.contains("test.yaml:17:13"), "{problems}");
    let two_spreads = "        first: { spread: true, fields: { id: { from: $.a } } }\n        second: { spread: true, fields: { id: { from: $.b } } }\n";
    let problems = rejected(&with_body(two_spreads));
    assert!(
        problems.contains("the member `id` is written here"),
        "{problems}"
    );
}

#[test]
fn members_left_out_by_their_when_may_share_a_name_and_the_first_written_wins() {
    let body = "        first: { spread: true, when: { exists: $.a }, fields: { id: { from: $.a } } }\n        second: { spread: true, when: { exists: $.b }, fields: { id: { from: $.b } } }\n        obj:\n          fields:\n            id: { from: $.c, when: { exists: $.c } }\n            more: { spread: true, fields: { id: { from: $.d } }, when: { exists: $.d } }\n";
    let connection = connect(&with_body(body), &json!({}));
    let both = plan(
        &connection,
        &json!({"type": "track", "a": "A", "b": "B", "c": "C", "d": "D"}),
    );
    assert_eq!(text(request(&both)), r#"{"id":"A","obj":{"id":"C"}}"#);
    let second = plan(&connection, &json!({"type": "track", "b": "B", "d": "D"}));
    assert_eq!(text(request(&second)), r#"{"id":"B","obj":{"id":"D"}}"#);
}

#[test]
fn a_computed_key_that_comes_out_null_leaves_its_member_out() {
    let body = "        member:\n          key: { from: $.kind, remap: { table: { gone: null }, otherwise: keep } }\n          value: 1\n        other: { value: 2 }\n";
    let connection = connect(&with_body(body), &json!({}));
    let gone = plan(&connection, &json!({"type": "track", "kind": "gone"}));
    assert_eq!(text(request(&gone)), r#"{"other":2}"#);
    let kept = plan(&connection, &json!({"type": "track", "kind": "kept"}));
    assert_eq!(text(request(&kept)), r#"{"kept":1,"other":2}"#);
}

#[test]
fn a_batch_wrapped_under_no_name_is_refused() {
    for wrap in ["\"\"", "$", "$.events"] {
        let mapping = format!(
            "{}    batch: {{ wrap: {wrap}, max_items: 10 }}\n",
            with_body("        id: { from: $.userId }\n")
        );
        let problems = rejected(&mapping);
        assert!(
            problems.contains("`wrap` names the body member that holds the merged bodies"),
            "{wrap}: {problems}"
        );
        assert!(problems.contains("test.yaml:14:"), "{wrap}: {problems}");
    }
}

#[test]
fn unknown_filters_tests_and_functions_are_refused_when_the_mapping_loads() {
    for (template, what) in [
        ("{{ event.messageId|truncate(8) }}", "the filter `truncate`"),
        (
            "{{ datetimeformat(event.timestamp) }}",
            "the function `datetimeformat`",
        ),
        (
            "{% if event.x is positive %}1{% endif %}",
            "the test `positive`",
        ),
    ] {
        let problems = rejected(&with_body(&format!(
            "        id: {{ template: \"{template}\" }}\n"
        )));
        assert!(problems.contains(what), "{template}: {problems}");
        assert!(problems.contains("test.yaml:13:"), "{template}: {problems}");
    }
}

#[test]
fn a_slice_in_a_template_reads_the_value_it_slices() {
    let connection = connect(
        &with_body("        id: { template: \"{{ event.messageId[:4] }}\", required: true }\n"),
        &json!({}),
    );
    let sliced = plan(
        &connection,
        &json!({"type": "track", "messageId": "0123456789"}),
    );
    assert_eq!(text(request(&sliced)), r#"{"id":"0123"}"#);
}

#[test]
fn a_template_that_fails_says_why() {
    let connection = connect(
        &with_body(
            "        total: { template: \"{{ event.price / event.quantity }}\", required: true }\n        guarded: { template: \"{{ event.a if event.b is defined else event.c }}\", required: true }\n",
        ),
        &json!({}),
    );
    let wrong_type = plan(
        &connection,
        &json!({"type": "track", "price": "ten", "quantity": 2, "a": 1, "c": 2}),
    );
    let message = failure(&wrong_type);
    assert!(message.contains("`total`"), "{message}");
    assert!(!message.contains("lacks"), "{message}");
    assert!(!message.contains("missing"), "{message}");
    let guard = plan(
        &connection,
        &json!({"type": "track", "price": 1, "quantity": 2, "a": 1}),
    );
    let message = failure(&guard);
    assert!(
        message
            .contains("`guarded` is required but the template reads `event.c`, which is missing"),
        "{message}"
    );
}
