//! The constructs that let a real destination fit in one short mapping (docs/writing-a-mapping.md):
//! conditional parts, selector logic, lists that read the event, buckets with fallbacks and
//! spreads, entries, values, settings choices, groups and shared batch rules. One test per rule,
//! on small mappings written inline.

#![allow(clippy::needless_pass_by_value)] // tests hand `json!` literals over by value

use std::sync::Arc;

use ferry_engine::{Batcher, Body, Connection, NoState, Outcome, Plan, PlannedRequest};
use serde_json::{Value, json};

const HEAD: &str = "version: 1\nname: t\nsource: segment\n";

/// A mapping with one `track` action whose body is `body` (YAML, indented by 8), after `extra`
/// top-level sections.
fn mapping(extra: &str, body: &str) -> String {
    format!(
        "{HEAD}{extra}http:\n  base_url: https://api.example.com\n\
actions:\n  track:\n    when: {{ type: [track, identify] }}\n    request:\n      method: POST\n      path: /events\n      body:\n{body}"
    )
}

fn connect_with(text: &str, settings: Value) -> Connection {
    let mapping = ferry_engine::load_str("test.yaml", text).unwrap_or_else(|d| panic!("{d}"));
    Connection::new(Arc::new(mapping), settings.as_object().expect("a map"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn connect(text: &str) -> Connection {
    connect_with(text, json!({}))
}

fn request(plan: &Plan) -> &PlannedRequest {
    match plan.outcomes.as_slice() {
        [Outcome::Request(request)] => request,
        other => panic!("expected one request, got {other:?}"),
    }
}

fn body(plan: &Plan) -> Value {
    match &request(plan).body {
        Some(Body::Json(text)) => serde_json::from_str(text).expect("bodies are JSON"),
        other => panic!("expected a JSON body, got {other:?}"),
    }
}

fn failure(plan: &Plan) -> String {
    match plan.outcomes.as_slice() {
        [Outcome::Failed(failure)] => failure.message.clone(),
        other => panic!("expected one failure, got {other:?}"),
    }
}

fn body_of(fields: &str, event: Value) -> Value {
    body(&connect(&mapping("", fields)).plan(&event, &NoState))
}

fn rejected(text: &str) -> String {
    match ferry_engine::load_str("test.yaml", text) {
        Ok(_) => panic!("the mapping compiled"),
        Err(problems) => problems.to_string(),
    }
}

#[test]
fn when_leaves_a_field_object_or_list_entry_out() {
    let fields = "        alias:\n          when: { blank: $.userId }\n          fields:\n            name: { from: $.anonymousId }\n        id: { from: $.userId, when: { filled: $.userId } }\n        list:\n          items:\n            - { value: always }\n            - { value: known, when: { filled: $.userId } }\n";
    assert_eq!(
        body_of(
            fields,
            json!({"type": "track", "userId": "", "anonymousId": "a1"})
        ),
        json!({"alias": {"name": "a1"}, "list": ["always"]})
    );
    assert_eq!(
        body_of(
            fields,
            json!({"type": "track", "userId": "u1", "anonymousId": "a1"})
        ),
        json!({"id": "u1", "list": ["always", "known"]})
    );
}

#[test]
fn the_trace_says_which_when_left_a_part_out() {
    let connection = connect(&mapping(
        "",
        "        id: { from: $.userId, when: { filled: $.userId } }\n",
    ));
    let plan = connection.plan_traced(&json!({"type": "track", "userId": ""}), &NoState);
    assert!(
        plan.trace
            .iter()
            .any(|line| line.contains("id: left out by its `when`: `$.userId` is missing or empty")),
        "{:#?}",
        plan.trace
    );
}

#[test]
fn any_all_and_not_nest() {
    let fields = "        kind:\n          value: shop\n          when:\n            any:\n              - { event: [Order Completed, Product Viewed] }\n              - all: [{ exists: $.properties.cart_id }, { not: { equals: { $.properties.empty: true } } }]\n";
    let with = |event: Value| body_of(fields, event);
    assert_eq!(
        with(json!({"type": "track", "event": "Product Viewed"})),
        json!({"kind": "shop"})
    );
    assert_eq!(
        with(json!({"type": "track", "event": "x", "properties": {"cart_id": 1}})),
        json!({"kind": "shop"})
    );
    assert_eq!(
        with(json!({"type": "track", "event": "x", "properties": {"cart_id": 1, "empty": true}})),
        json!({})
    );
}

#[test]
fn loose_names_ignore_case_and_surrounding_spaces() {
    let text = format!(
        "{HEAD}http:\n  base_url: https://api.example.com\nactions:\n  order:\n    when: {{ type: track, event: Order Completed, loose: true }}\n    request: {{ method: POST, path: /orders }}\n"
    );
    let connection = connect(&text);
    for name in ["Order Completed", "order completed", "  ORDER COMPLETED "] {
        let plan = connection.plan(&json!({"type": "track", "event": name}), &NoState);
        assert!(matches!(plan.outcomes[0], Outcome::Request(_)), "{name}");
    }
    let plan = connection.plan(
        &json!({"type": "track", "event": "Order Complete"}),
        &NoState,
    );
    assert!(matches!(plan.outcomes[0], Outcome::Skipped(_)));
}

#[test]
fn filled_and_blank_treat_null_and_empty_text_as_absent() {
    let text = format!(
        "{HEAD}http:\n  base_url: https://api.example.com\nactions:\n  anonymous:\n    when: {{ blank: $.userId }}\n    request: {{ method: POST, path: /anonymous }}\n  known:\n    when: {{ filled: $.userId }}\n    request: {{ method: POST, path: /known }}\n"
    );
    let connection = connect(&text);
    for (user, path) in [
        (json!(""), "/anonymous"),
        (Value::Null, "/anonymous"),
        (json!("u1"), "/known"),
    ] {
        let plan = connection.plan(&json!({"type": "track", "userId": user}), &NoState);
        assert!(request(&plan).url.ends_with(path), "{user}");
    }
    let plan = connection.plan(&json!({"type": "track"}), &NoState);
    assert!(request(&plan).url.ends_with("/anonymous"));
}

#[test]
fn list_items_read_the_item_and_the_whole_event() {
    let fields = "        purchases:\n          each: $.properties.products\n          fields:\n            user: { from: $event.userId }\n            id: { from: $.sku }\n            currency: { from: [$.currency, $event.properties.currency], default: USD }\n";
    let event = json!({"type": "track", "userId": "u1", "properties": {"currency": "EUR", "products": [{"sku": "a"}, {"sku": "b", "currency": "GBP"}]}});
    assert_eq!(
        body_of(fields, event),
        json!({"purchases": [
            {"user": "u1", "id": "a", "currency": "EUR"},
            {"user": "u1", "id": "b", "currency": "GBP"}
        ]})
    );
}

#[test]
fn a_list_is_built_from_several_sources_and_where_chooses_items() {
    let fields = "        products:\n          items:\n            - each: $.properties.products\n              where: { filled: $.sku }\n              fields: { id: { from: $.sku } }\n            - when: { exists: $.properties.sku }\n              fields: { id: { from: $.properties.sku } }\n";
    let event = json!({"type": "track", "properties": {"sku": "top", "products": [{"sku": "a"}, {"sku": ""}, {"sku": "b"}]}});
    assert_eq!(
        body_of(fields, event),
        json!({"products": [{"id": "a"}, {"id": "b"}, {"id": "top"}]})
    );
}

#[test]
fn a_list_entry_whose_fields_are_all_missing_is_dropped() {
    let fields = "        items:\n          each: $.properties.products\n          fields: { id: { from: $.sku } }\n        attributes:\n          items:\n            - fields: { email: { from: $.traits.email } }\n";
    let event =
        json!({"type": "track", "properties": {"products": [{"sku": "a"}, {"name": "no sku"}]}});
    assert_eq!(
        body_of(fields, event),
        json!({"items": [{"id": "a"}], "attributes": []})
    );
}

#[test]
fn rest_of_takes_the_first_present_object_and_spreads_into_the_body() {
    let fields = "        email: { from: [$.traits.email, $.context.traits.email] }\n        traits: { rest_of: [$.traits, $.context.traits], spread: true }\n";
    assert_eq!(
        body_of(
            fields,
            json!({"type": "identify", "context": {"traits": {"email": "e@x", "plan": "pro", "email_verified": true}}})
        ),
        json!({"email": "e@x", "plan": "pro", "email_verified": true})
    );
    assert_eq!(
        body_of(
            fields,
            json!({"type": "identify", "traits": {"email": "t@x", "age": 3}, "context": {"traits": {"plan": "pro"}}})
        ),
        json!({"email": "t@x", "age": 3})
    );
}

#[test]
fn a_spread_bucket_never_repeats_a_name_written_beside_it() {
    let fields = "        plan: { value: fixed }\n        traits: { rest_of: $.traits, spread: true }\n        props: { rest_of: $.properties, spread: true }\n";
    assert_eq!(
        body_of(
            fields,
            json!({"type": "track", "traits": {"plan": "pro", "a": 1}, "properties": {"a": 2, "b": 3}})
        ),
        json!({"plan": "fixed", "a": 1, "b": 3})
    );
}

#[test]
fn entries_rewrite_braze_nested_array_operations() {
    let fields = "        attributes:\n          fields:\n            ops:\n              entries: $.traits\n              where: { any: [{ exists: $.add }, { exists: $.update }, { exists: $.remove }] }\n              spread: true\n              fields:\n                $add: { from: $.add }\n                $update:\n                  each: $.update\n                  fields:\n                    $identifier_key: { from: $.identifier }\n                    $identifier_value: { from: $, member: $.identifier }\n                    $new_object: { rest_of: $ }\n                $remove:\n                  each: $.remove\n                  fields:\n                    $identifier_key: { from: $.identifier }\n                    $identifier_value: { from: $, member: $.identifier }\n          rest_of: $.traits\n";
    let event = json!({"type": "identify", "traits": {
        "plan": "pro",
        "pets": {
            "add": [{"id": 1, "name": "a"}],
            "update": [{"identifier": "id", "id": 2, "name": "x"}],
            "remove": [{"identifier": "id", "id": 3}]
        }
    }});
    assert_eq!(
        body_of(fields, event),
        json!({"attributes": {
            "pets": {
                "$add": [{"id": 1, "name": "a"}],
                "$update": [{"$identifier_key": "id", "$identifier_value": 2, "$new_object": {"name": "x"}}],
                "$remove": [{"$identifier_key": "id", "$identifier_value": 3}]
            },
            "plan": "pro"
        }})
    );
}

#[test]
fn entries_take_computed_keys() {
    let fields = "        counts:\n          entries: $.properties\n          key: { from: $key, transform: [snake_case] }\n          from: $\n          as: string\n        group:\n          key: { template: \"ab_segment_group_{{ event.groupId }}\" }\n          value: true\n";
    assert_eq!(
        body_of(
            fields,
            json!({"type": "track", "groupId": "g1", "properties": {"itemCount": 2, "Total Value": 3.5}})
        ),
        json!({"counts": {"item_count": "2", "total_value": "3.5"}, "ab_segment_group_g1": true})
    );
}

#[test]
fn apply_runs_operations_in_the_order_written_and_remaps_may_give_null() {
    let fields = "        gender:\n          from: $.traits.gender\n          apply:\n            - transform: [trim, lower]\n            - remap: { table: { male: M, m: M, female: F, f: F, unknown: null }, otherwise: omit }\n";
    let with = |gender: &str| {
        body_of(
            fields,
            json!({"type": "identify", "traits": {"gender": gender}}),
        )
    };
    assert_eq!(with(" Male "), json!({"gender": "M"}));
    assert_eq!(with("F"), json!({"gender": "F"}));
    assert_eq!(with("Unknown"), json!({"gender": null}));
    assert_eq!(with("robot"), json!({}));
    let nulled = "        gender:\n          from: $.traits.gender\n          remap: { table: { male: M }, otherwise: send_null }\n";
    assert_eq!(
        body_of(
            nulled,
            json!({"type": "identify", "traits": {"gender": "x"}})
        ),
        json!({"gender": null})
    );
}

#[test]
fn first_takes_a_filters_first_match() {
    let fields = "        external_id:\n          from: [\"$.context.externalId[?(@.type=='brazeExternalId')].id\", $.userId]\n          first: true\n        all: { from: \"$.context.externalId[*].id\" }\n";
    let event = json!({"type": "track", "userId": "u1", "context": {"externalId": [
        {"type": "other", "id": "A"}, {"type": "brazeExternalId", "id": "B"}
    ]}});
    assert_eq!(
        body_of(fields, event),
        json!({"external_id": "B", "all": ["A", "B"]})
    );
    assert_eq!(
        body_of(fields, json!({"type": "track", "userId": "u1"})),
        json!({"external_id": "u1"})
    );
}

#[test]
fn lenient_conversion_keeps_or_omits_what_cannot_convert() {
    let fields = "        price: { from: $.properties.price, as: number, on_invalid: omit }\n        qty: { from: $.properties.qty, as: integer, on_invalid: keep }\n        when_at: { from: $.properties.at, as: date }\n";
    assert_eq!(
        body_of(
            fields,
            json!({"type": "track", "properties": {"price": "9.99", "qty": "2", "at": "2024-02-29T23:00:00-02:00"}})
        ),
        json!({"price": 9.99, "qty": 2, "when_at": "2024-03-01"})
    );
    assert_eq!(
        body_of(
            fields,
            json!({"type": "track", "properties": {"price": "free", "qty": "some"}})
        ),
        json!({"qty": "some"})
    );
}

#[test]
fn must_be_refuses_an_event_with_the_field_and_value_named() {
    let connection = connect(&mapping(
        "",
        "        email: { from: $.traits.email, must_be: string }\n",
    ));
    let plan = connection.plan(
        &json!({"type": "identify", "traits": {"email": 123}}),
        &NoState,
    );
    assert_eq!(failure(&plan), "`email` must be text, not a number (`123`)");
}

#[test]
fn empty_text_does_not_win_a_fallback_with_omit_empty() {
    let fields = "        id: { from: [$.userId, $.anonymousId], omit_empty: true }\n";
    assert_eq!(
        body_of(
            fields,
            json!({"type": "track", "userId": "", "anonymousId": "a1"})
        ),
        json!({"id": "a1"})
    );
}

#[test]
fn a_setting_outside_its_choices_is_refused_naming_the_value_and_the_choices() {
    let text = mapping(
        "settings:\n  region: { type: string, default: us, one_of: [us, eu], description: data center }\n",
        "        region: { setting: region }\n",
    );
    let mapping = Arc::new(ferry_engine::load_str("t.yaml", &text).unwrap());
    let error = Connection::new(
        Arc::clone(&mapping),
        json!({"region": "uss"}).as_object().unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        error.problems,
        vec!["setting `region` is `uss`, which is not one of its choices: `us`, `eu`"]
    );
    assert!(Connection::new(mapping, json!({"region": "eu"}).as_object().unwrap()).is_ok());
    let bad_default = mapping_text_with_default("ap");
    assert!(rejected(&bad_default).contains("the default of setting `region` is `ap`"));
}

fn mapping_text_with_default(default: &str) -> String {
    mapping(
        &format!(
            "settings:\n  region: {{ type: string, default: {default}, one_of: [us, eu], description: data center }}\n"
        ),
        "        region: { setting: region }\n",
    )
}

#[test]
fn a_missing_path_value_is_named_in_the_error() {
    let text = format!(
        "{HEAD}http:\n  base_url: https://api.example.com\nactions:\n  delete:\n    when: {{ type: delete }}\n    request: {{ method: DELETE, path: \"/customers/{{{{ event.userId }}}}\" }}\n"
    );
    let plan = connect(&text).plan(&json!({"type": "delete"}), &NoState);
    assert_eq!(
        failure(&plan),
        "the request path needs `event.userId`, which the event lacks"
    );
    let field = mapping(
        "",
        "        name: { template: \"{{ event.traits.first }} x\", required: true }\n",
    );
    let plan = connect(&field).plan(&json!({"type": "identify", "traits": {}}), &NoState);
    assert_eq!(
        failure(&plan),
        "`name` is required but the template reads `event.traits.first`, which is missing"
    );
}

#[test]
fn groups_are_written_once_and_used_by_name() {
    let text = format!(
        "{HEAD}groups:\n  user:\n    external_id: {{ from: $event.userId }}\nhttp:\n  base_url: https://api.example.com\nactions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /track\n      body:\n        events:\n          items:\n            - group: user\n              fields: {{ name: {{ from: $.event }} }}\n        purchases:\n          each: $.properties.products\n          group: user\n          fields: {{ id: {{ from: $.sku }} }}\n"
    );
    let plan = connect(&text).plan(
        &json!({"type": "track", "userId": "u1", "event": "e", "properties": {"products": [{"sku": "a"}]}}),
        &NoState,
    );
    assert_eq!(
        body(&plan),
        json!({"events": [{"external_id": "u1", "name": "e"}], "purchases": [{"external_id": "u1", "id": "a"}]})
    );
}

#[test]
fn a_shared_batch_rule_merges_requests_of_different_actions() {
    let text = format!(
        "{HEAD}http:\n  base_url: https://api.example.com\nbatches:\n  track:\n    concat: [attributes, events]\n    max_items: 2\nactions:\n  identify:\n    when: {{ type: identify }}\n    request:\n      method: POST\n      path: /users/track\n      body:\n        attributes: {{ items: [ {{ fields: {{ id: {{ from: $.userId }} }} }} ] }}\n    batch: track\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /users/track\n      body:\n        events: {{ items: [ {{ fields: {{ name: {{ from: $.event }} }} }} ] }}\n    batch: track\n"
    );
    let connection = connect(&text);
    let mut batcher = Batcher::new();
    let mut closed = Vec::new();
    for (i, event) in [
        json!({"type": "identify", "userId": "u1"}),
        json!({"type": "track", "event": "a"}),
        json!({"type": "track", "event": "b"}),
        json!({"type": "track", "event": "c"}),
    ]
    .into_iter()
    .enumerate()
    {
        let plan = connection.plan(&event, &NoState);
        let request = request(&plan).clone();
        closed.extend(batcher.push(i, request).expect("batchable"));
    }
    closed.extend(batcher.flush());
    let bodies: Vec<Value> = closed
        .iter()
        .map(|m| match &m.request.body {
            Some(Body::Json(text)) => serde_json::from_str(text).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        bodies,
        vec![
            json!({"attributes": [{"id": "u1"}], "events": [{"name": "a"}, {"name": "b"}]}),
            json!({"events": [{"name": "c"}]}),
        ]
    );
    assert_eq!(closed[0].items, vec![0, 1, 2]);
}

#[test]
fn within_reads_an_object_as_the_scope_of_its_fields() {
    let fields = "        product:\n          within: [$.properties.product, $.properties]\n          fields: { id: { from: $.sku }, user: { from: $event.userId } }\n        meta: { rest_of: $.properties }\n";
    assert_eq!(
        body_of(
            fields,
            json!({"type": "track", "userId": "u1", "properties": {"sku": "a", "color": "red"}})
        ),
        json!({"product": {"id": "a", "user": "u1"}, "meta": {"color": "red"}})
    );
    assert_eq!(
        body_of(
            "        product:\n          within: $.properties.product\n          fields: { id: { from: $.sku } }\n",
            json!({"type": "track", "properties": {}})
        ),
        json!({})
    );
}
