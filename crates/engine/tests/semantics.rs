//! The documented field semantics (docs/writing-a-mapping.md), one test per rule, on small
//! mappings written inline.

#![allow(clippy::needless_pass_by_value)] // tests hand `json!` literals over by value

use std::sync::Arc;

use ferry_engine::{Body, Connection, MemoryState, NoState, Outcome, Plan, PlannedRequest};
use serde_json::{Value, json};

const HEAD: &str = "version: 1\nname: t\nsource: segment\n";

/// A mapping with one `track` action whose body is `body` (YAML, indented by 8).
fn mapping_with_body(settings: &str, body: &str) -> String {
    format!(
        "{HEAD}settings:\n  key: {{ type: string, secret: true, default: s3cr3t-value, description: k }}\n{settings}\
http:\n  base_url: https://api.example.com/v1\n  auth: {{ bearer: \"{{{{ settings.key }}}}\" }}\n\
actions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n      body:\n{body}"
    )
}

fn connect(text: &str, settings: Value) -> Connection {
    let mapping = ferry_engine::load_str("test.yaml", text).unwrap_or_else(|d| panic!("{d}"));
    Connection::new(
        Arc::new(mapping),
        settings.as_object().expect("settings map"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn plan(connection: &Connection, event: &Value) -> Plan {
    connection.plan(event, &NoState)
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

fn body_of(fields: &str, event: Value) -> Plan {
    let connection = connect(&mapping_with_body("", fields), json!({}));
    plan(&connection, &event)
}

fn track(properties: Value) -> Value {
    json!({ "type": "track", "event": "E", "userId": "u1", "properties": properties })
}

#[test]
fn a_missing_value_is_left_out() {
    let plan = body_of(
        "        a: { from: $.properties.a }\n        b: { value: 1 }\n",
        track(json!({})),
    );
    assert_eq!(body(&plan), json!({ "b": 1 }));
}

#[test]
fn null_counts_as_missing_unless_keep_null() {
    let fields = "        a: { from: $.properties.a }\n        b: { from: $.properties.b, keep_null: true }\n";
    let plan = body_of(fields, track(json!({ "a": null, "b": null })));
    assert_eq!(body(&plan), json!({ "b": null }));
}

#[test]
fn empty_values_are_sent_unless_omit_empty() {
    let fields = "        a: { from: $.properties.a }\n        b: { from: $.properties.b, omit_empty: true }\n        c: { from: $.properties.c, omit_empty: true }\n";
    let plan = body_of(fields, track(json!({ "a": "", "b": "", "c": [] })));
    assert_eq!(body(&plan), json!({ "a": "" }));
}

#[test]
fn fallbacks_take_the_first_non_null_value() {
    let fields = "        a: { from: [$.properties.x, $.properties.y, $.properties.z] }\n";
    let plan = body_of(
        fields,
        track(json!({ "x": null, "y": "second", "z": "third" })),
    );
    assert_eq!(body(&plan), json!({ "a": "second" }));
}

#[test]
fn defaults_fill_missing_and_null_values_as_written() {
    let fields = "        a: { from: $.properties.a, default: none, as: integer }\n        b: { from: $.properties.b, default: 0 }\n";
    let plan = body_of(fields, track(json!({ "b": null })));
    assert_eq!(body(&plan), json!({ "a": "none", "b": 0 }));
}

#[test]
fn a_missing_required_value_fails_the_action_naming_the_field() {
    let fields = "        data:\n          fields:\n            id: { from: [$.properties.id, $.properties.uid], required: true }\n";
    let message = failure(&body_of(fields, track(json!({}))));
    assert_eq!(
        message,
        "`data.id` is required but none of `$.properties.id`, `$.properties.uid` is present"
    );
}

#[test]
fn json_looking_text_stays_text() {
    let fields = "        a: { from: $.properties.a }\n";
    let tricky = "\",\"admin\":true,\"x\":\"";
    let plan = body_of(fields, track(json!({ "a": tricky })));
    let text = match &request(&plan).body {
        Some(Body::Json(text)) => text.clone(),
        _ => unreachable!(),
    };
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed, json!({ "a": tricky }));
    assert_eq!(
        parsed.as_object().unwrap().len(),
        1,
        "no field was injected: {text}"
    );
}

#[test]
fn remap_keeps_drops_fails_or_defaults_unlisted_values() {
    let rule = |otherwise: &str| {
        format!(
            "        name: {{ from: $.event, remap: {{ table: {{ A: a }}, otherwise: {otherwise} }} }}\n"
        )
    };
    let event = json!({ "type": "track", "event": "B" });
    assert_eq!(
        body(&body_of(&rule("keep"), event.clone())),
        json!({ "name": "B" })
    );
    let dropped = body_of(&rule("drop"), event.clone());
    assert!(
        matches!(dropped.outcomes.as_slice(), [Outcome::Skipped(s)] if s.reason.contains("not in the remap table"))
    );
    assert!(
        failure(&body_of(&rule("error"), event.clone())).contains("`B` is not in the remap table")
    );
    let with_default = "        name: { from: $.event, remap: { table: { A: a }, otherwise: default, default: other } }\n";
    assert_eq!(
        body(&body_of(with_default, event)),
        json!({ "name": "other" })
    );
    let listed = json!({ "type": "track", "event": "A" });
    assert_eq!(
        body(&body_of(&rule("error"), listed)),
        json!({ "name": "a" })
    );
}

#[test]
fn a_remap_setting_wins_over_the_mapping_table() {
    let settings = "  names: { type: map, default: {}, description: names }\n";
    let fields = "        name: { from: $.event, remap: { table: { A: from-table, B: b }, setting: names } }\n";
    let connection = connect(
        &mapping_with_body(settings, fields),
        json!({ "names": { "A": "from-setting" } }),
    );
    let a = plan(&connection, &json!({ "type": "track", "event": "A" }));
    assert_eq!(body(&a), json!({ "name": "from-setting" }));
    let b = plan(&connection, &json!({ "type": "track", "event": "B" }));
    assert_eq!(body(&b), json!({ "name": "b" }));
}

#[test]
fn transforms_run_in_order_before_conversion() {
    let fields = "        email: { from: $.properties.email, transform: [trim, lower, sha256] }\n        n: { from: $.properties.n, transform: [trim], as: integer }\n        slug: { from: $.event, transform: [snake_case] }\n";
    let event = json!({ "type": "track", "event": "Order Completed", "properties": { "email": "  A@B.com ", "n": " 42 " } });
    let out = body(&body_of(fields, event));
    assert_eq!(
        out["email"],
        "fb98d44ad7501a959f3f4f4a3f004fe2d9e581ea6207e218c4b02c08a4d75adf"
    );
    assert_eq!(out["n"], 42);
    assert_eq!(out["slug"], "order_completed");
}

#[test]
fn a_value_that_cannot_be_converted_fails_naming_the_field() {
    let fields = "        total: { from: $.properties.total, as: number }\n";
    let message = failure(&body_of(fields, track(json!({ "total": "ninety" }))));
    assert_eq!(message, "`total`: cannot convert text `ninety` to a number");
}

#[test]
fn times_are_read_in_the_declared_unit() {
    let fields = "        s: { from: $.properties.t, as: iso8601 }\n        ms: { from: $.properties.t, as: iso8601, time_unit: milliseconds }\n";
    let out = body(&body_of(
        fields,
        track(json!({ "t": 1_700_000_000_000_i64 / 1000 })),
    ));
    assert_eq!(out["s"], "2023-11-14T22:13:20.000Z");
    assert_eq!(out["ms"], "1970-01-20T16:13:20.000Z");
}

#[test]
fn the_bucket_holds_every_key_no_other_field_reads() {
    let fields = "        first: { from: [$.properties.firstName, $.properties.first_name] }\n        data:\n          fields:\n            email: { from: $.properties.email }\n            plan: { value: fixed }\n          rest_of: $.properties\n          except: [password]\n";
    let event = track(json!({
        "email": "a@b.c", "first_name": "Zoë", "password": "x", "plan": "pro", "age": 3, "gone": null
    }));
    let out = body(&body_of(fields, event));
    assert_eq!(
        out,
        json!({ "first": "Zoë", "data": { "email": "a@b.c", "plan": "fixed", "age": 3 } })
    );
}

#[test]
fn the_bucket_can_prefix_flatten_and_convert() {
    let fields = "        attributes:\n          rest_of: $.properties\n          prefix: p_\n          flatten: true\n          as: string\n";
    let out = body(&body_of(
        fields,
        track(json!({ "address": { "city": "Porto", "zip": 4000 }, "vip": true })),
    ));
    assert_eq!(
        out,
        json!({ "attributes": { "p_address_city": "Porto", "p_address_zip": "4000", "p_vip": "true" } })
    );
}

#[test]
fn each_maps_every_item_and_drops_items_left_out() {
    let fields = "        skus:\n          each: $.properties.products\n          from: $.sku\n          transform: [upper]\n        items:\n          each: $.properties.products\n          fields:\n            id: { from: $.sku }\n            price: { from: $.price, as: number }\n";
    let event = track(json!({ "products": [ { "sku": "a", "price": "1.5" }, { "price": 2 } ] }));
    let out = body(&body_of(fields, event));
    assert_eq!(out["skus"], json!(["A"]));
    assert_eq!(
        out["items"],
        json!([{ "id": "a", "price": 1.5 }, { "price": 2 }])
    );
}

#[test]
fn each_item_can_have_its_own_bucket() {
    let fields = "        products:\n          each: $.properties.products\n          fields:\n            id: { from: $.product_id }\n          rest_of: $\n";
    let event = track(json!({ "products": [ { "product_id": "p1", "sku": "S", "price": 3 } ] }));
    let out = body(&body_of(fields, event));
    assert_eq!(
        out["products"],
        json!([{ "id": "p1", "price": 3, "sku": "S" }])
    );
}

#[test]
fn wildcard_paths_yield_every_match() {
    let fields = "        skus: { from: \"$.properties.products[*].sku\" }\n        cheap: { from: \"$.properties.products[?@.price < 2].sku\" }\n";
    let event =
        track(json!({ "products": [ { "sku": "a", "price": 1 }, { "sku": "b", "price": 5 } ] }));
    let out = body(&body_of(fields, event));
    assert_eq!(out, json!({ "skus": ["a", "b"], "cheap": ["a"] }));
}

#[test]
fn a_template_reading_a_missing_value_makes_the_field_missing() {
    let fields = "        full: { template: \"{{ event.properties.first }} {{ event.properties.last }}\", default: anonymous }\n        greeting: { template: \"hi {{ event.properties.first if event.properties.first is defined else 'there' }}\" }\n";
    let out = body(&body_of(fields, track(json!({ "last": "Doe" }))));
    assert_eq!(out, json!({ "full": "anonymous", "greeting": "hi there" }));
}

#[test]
fn event_values_in_the_path_are_encoded_and_cannot_change_the_host() {
    let text = format!(
        "{HEAD}http:\n  base_url: https://api.example.com\nactions:\n  t:\n    when: {{ type: track }}\n    request:\n      method: GET\n      path: \"/users/{{{{ event.userId }}}}\"\n      query:\n        q: {{ from: $.properties.q }}\n"
    );
    let connection = connect(&text, json!({}));
    let event = json!({ "type": "track", "userId": "@evil.com/../x?y#z", "properties": { "q": "a b&c=d" } });
    let url = request(&plan(&connection, &event)).url.clone();
    assert_eq!(
        url,
        "https://api.example.com/users/%40evil.com%2F..%2Fx%3Fy%23z?q=a+b%26c%3Dd"
    );
}

#[test]
fn form_bodies_are_flat_text() {
    let text = format!(
        "{HEAD}http:\n  base_url: https://api.example.com\nactions:\n  t:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /f\n      format: form\n      body:\n        n: {{ from: $.properties.n }}\n        b: {{ value: true }}\n        s: {{ from: $.properties.s }}\n"
    );
    let connection = connect(&text, json!({}));
    let planned = plan(
        &connection,
        &track(json!({ "n": 5, "s": "say \"hi\"\n\u{e9}" })),
    );
    let body = request(&planned).body.as_ref().expect("a body");
    // Text is sent as its characters, not as the JSON that quotes and escapes them.
    assert_eq!(
        String::from_utf8(body.to_bytes()).unwrap(),
        "n=5&b=true&s=say+%22hi%22%0A%C3%A9"
    );
    assert_eq!(body.content_type(), "application/x-www-form-urlencoded");
}

#[test]
fn oversized_bodies_fail_instead_of_being_sent() {
    let text = mapping_with_body("", "        a: { from: $.properties.a }\n")
        .replace("  auth:", "  max_body_bytes: 64\n  auth:");
    let connection = connect(&text, json!({}));
    let message = failure(&plan(&connection, &track(json!({ "a": "x".repeat(100) }))));
    assert!(
        message.contains("over the mapping's limit of 64"),
        "{message}"
    );
}

#[test]
fn header_values_cannot_carry_line_breaks_from_events() {
    let text = format!(
        "{HEAD}http:\n  base_url: https://api.example.com\nactions:\n  t:\n    when: {{ type: track }}\n    request:\n      method: GET\n      path: /h\n      headers:\n        X-Id: \"{{{{ event.userId }}}}\"\n"
    );
    let connection = connect(&text, json!({}));
    let message = failure(&plan(
        &connection,
        &json!({ "type": "track", "userId": "a\r\nX-Admin: 1" }),
    ));
    assert!(message.contains("control character"), "{message}");
}

#[test]
fn secrets_are_redacted_in_shown_headers_and_messages() {
    let fields =
        "        a: { template: \"{{ settings.key }}-{{ event.properties.n }}\", as: integer }\n";
    let connection = connect(&mapping_with_body("", fields), json!({}));
    let planned = plan(&connection, &track(json!({ "n": 1 })));
    let message = failure(&planned);
    assert!(!message.contains("s3cr3t-value"), "{message}");
    assert!(message.contains("[redacted]"), "{message}");
    let ok = connect(
        &mapping_with_body("", "        a: { value: 1 }\n"),
        json!({}),
    );
    let planned = plan(&ok, &track(json!({})));
    let auth = &request(&planned).headers[0];
    assert_eq!(&*auth.value, "Bearer s3cr3t-value");
    assert_eq!(auth.display_value(), "Bearer [redacted]");
    assert!(!format!("{ok:?}").contains("s3cr3t-value"));
}

#[test]
fn several_actions_may_match_one_event_and_none_is_a_skip() {
    let text = format!(
        "{HEAD}http:\n  base_url: https://api.example.com\nactions:\n  all:\n    when: {{ type: track }}\n    request: {{ method: POST, path: /a }}\n  orders:\n    when: {{ type: track, event: [Order Completed, Order Refunded], exists: $.properties.order_id }}\n    request: {{ method: POST, path: /o }}\n  not_tests:\n    when: {{ type: track, not: {{ equals: {{ $.context.test: true }} }} }}\n    request: {{ method: POST, path: /n }}\n"
    );
    let connection = connect(&text, json!({}));
    let urls = |event: Value| -> Vec<String> {
        plan(&connection, &event)
            .outcomes
            .iter()
            .map(|o| match o {
                Outcome::Request(r) => r.url.clone(),
                Outcome::Skipped(s) => format!("skipped: {}", s.reason),
                Outcome::Failed(f) => format!("failed: {}", f.message),
            })
            .collect()
    };
    let order =
        json!({ "type": "track", "event": "Order Completed", "properties": { "order_id": 1 } });
    assert_eq!(
        urls(order),
        [
            "https://api.example.com/a",
            "https://api.example.com/o",
            "https://api.example.com/n"
        ]
    );
    let test_event =
        json!({ "type": "track", "event": "Order Completed", "context": { "test": true } });
    assert_eq!(urls(test_event), ["https://api.example.com/a"]);
    assert_eq!(
        urls(json!({ "type": "page" })),
        ["skipped: no action matches type `page`"]
    );
}

#[test]
fn remembered_values_are_recalled_by_later_events() {
    let text = format!(
        "{HEAD}http:\n  base_url: https://api.example.com\nactions:\n  identify:\n    when: {{ type: identify }}\n    request: {{ method: POST, path: /i }}\n    remember:\n      email: {{ key: $.userId, value: $.traits.email }}\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /t\n      body:\n        email: {{ from: $.properties.email, recall: {{ name: email, key: $.userId }}, required: true }}\n"
    );
    let connection = connect(&text, json!({}));
    let mut state = MemoryState::default();
    let identify = connection.plan(
        &json!({ "type": "identify", "userId": 7, "traits": { "email": "a@b.c" } }),
        &state,
    );
    state.apply(identify.remember);
    let track = connection.plan(&json!({ "type": "track", "userId": 7 }), &state);
    assert_eq!(body(&track), json!({ "email": "a@b.c" }));
    let stranger = connection.plan(&json!({ "type": "track", "userId": 8 }), &state);
    assert!(failure(&stranger).ends_with("no `email` is remembered for `$.userId` (`8`)"));
}

#[test]
fn events_that_are_not_objects_fail_clearly() {
    let connection = connect(
        &mapping_with_body("", "        a: { value: 1 }\n"),
        json!({}),
    );
    assert_eq!(
        failure(&plan(&connection, &json!([1, 2]))),
        "an event must be a JSON object, not a list"
    );
}

#[test]
fn settings_are_checked_together_when_binding() {
    let text = format!(
        "{HEAD}settings:\n  id: {{ type: integer, required: true, description: id }}\n  flag: {{ type: boolean, default: false, description: f }}\nhttp:\n  base_url: https://api.example.com\nactions: {{}}\n"
    );
    let mapping = Arc::new(ferry_engine::load_str("t.yaml", &text).unwrap());
    let error = Connection::new(
        mapping,
        json!({ "flag": "yes", "idd": 1 }).as_object().unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        error.problems,
        [
            "unknown setting `idd`; did you mean `id`?",
            "missing required setting `id`: id",
            "setting `flag` must be true or false, not text",
        ]
    );
}
