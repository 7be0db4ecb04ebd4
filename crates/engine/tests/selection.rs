//! Which events an action plans for, and how many requests: refusals with a reason, skips
//! declared by `required: skip`, conditions on settings, on computed values, on patterns and on
//! types, one request per item of a list, and lookup tables kept as lists of `{from, to}` pairs.

mod support;

use ferry_engine::{FailureKind, Outcome, SkipKind};
use serde_json::{Value, json};
use support::{HEAD, connect, failure, json as body, plan, rejected, request, requests, skip};

fn mapping(extra: &str, actions: &str) -> String {
    format!("{HEAD}{extra}actions:\n{actions}")
}

/// One `track` action: `keys` (indented by 4) before its request, whose body is `fields`
/// (indented by 8).
fn track(keys: &str, fields: &str) -> String {
    format!(
        "  track:\n    when: {{ type: track }}\n{keys}    request:\n      method: POST\n      path: /events\n      body:\n{fields}"
    )
}

#[test]
fn a_mapping_refuses_an_event_with_its_own_reason() {
    let keys = "    refuse:\n      - { when: { blank: [$.userId, $.traits.email] }, reason: userId or email is required }\n      - { when: { not: { event: [Signed Up, Order Completed] } }, reason: \"event name {{ event.event }} is not valid\" }\n";
    let connection = connect(
        &mapping("", &track(keys, "        id: { from: $.userId }\n")),
        &json!({}),
    );
    let anonymous = plan(&connection, &json!({"type": "track", "event": "Signed Up"}));
    assert_eq!(failure(&anonymous), "userId or email is required");
    let Outcome::Failed(refused) = &anonymous.outcomes[0] else {
        panic!("a failure");
    };
    assert_eq!(refused.kind, FailureKind::Refused);
    let unknown = plan(
        &connection,
        &json!({"type": "track", "event": "Clicked", "userId": "u1"}),
    );
    assert_eq!(failure(&unknown), "event name Clicked is not valid");
    let fine = plan(
        &connection,
        &json!({"type": "track", "event": "Signed Up", "userId": "u1"}),
    );
    assert_eq!(body(request(&fine)), json!({"id": "u1"}));
}

#[test]
fn the_mapping_refuses_events_before_any_action_is_selected() {
    let extra = "computed:\n  kind: { from: $.type }\nrefuse:\n  - { when: { blank: $.type }, reason: the event type is required }\n  - { when: { not: { type: [track, identify] } }, reason: \"{{ computed.kind }} calls are not accepted\" }\n";
    let connection = connect(
        &mapping(extra, &track("", "        id: { from: $.userId }\n")),
        &json!({}),
    );
    let group = plan(&connection, &json!({"type": "group", "userId": "u1"}));
    assert_eq!(
        group.outcomes.len(),
        1,
        "no action runs: {:?}",
        group.outcomes
    );
    let Outcome::Failed(refused) = &group.outcomes[0] else {
        panic!("a failure: {:?}", group.outcomes);
    };
    assert_eq!(refused.kind, FailureKind::Refused);
    assert!(refused.action.is_none());
    assert_eq!(refused.message, "group calls are not accepted");
    assert_eq!(
        failure(&plan(&connection, &json!({"userId": "u1"}))),
        "the event type is required"
    );
    // An identify passes the mapping's rules, and no action selects it: a skip, not a refusal.
    let identify = plan(&connection, &json!({"type": "identify", "userId": "u1"}));
    assert!(matches!(&identify.outcomes[..], [Outcome::Skipped(_)]));
    let track = plan(&connection, &json!({"type": "track", "userId": "u1"}));
    assert_eq!(body(request(&track)), json!({"id": "u1"}));
}

#[test]
fn required_on_a_spread_object_fails_when_it_writes_nothing() {
    let fields = "        ids:\n          spread: true\n          required: true\n          fields: { user_id: { from: $.userId }, email: { from: $.email } }\n";
    let connection = connect(&mapping("", &track("", fields)), &json!({}));
    let message = failure(&plan(&connection, &json!({"type": "track"})));
    assert_eq!(message, "`ids` is required but it writes no member");
    let written = plan(&connection, &json!({"type": "track", "email": "a@b.io"}));
    assert_eq!(body(request(&written)), json!({"email": "a@b.io"}));
}

#[test]
fn required_skip_skips_the_action_for_the_event() {
    let fields = "        $add:\n          rest_of: $.properties\n          only: [points, visits]\n          required: skip\n        user: { from: $.userId, required: true }\n";
    let connection = connect(&mapping("", &track("", fields)), &json!({}));
    let none = plan(
        &connection,
        &json!({"type": "track", "userId": "u1", "properties": {"other": 1}}),
    );
    assert_eq!(skip(&none), "`$add` came out empty");
    let Outcome::Skipped(skipped) = &none.outcomes[0] else {
        panic!("a skip");
    };
    assert_eq!(skipped.kind, SkipKind::Required);
    let traced = connection.plan_traced(
        &json!({"type": "track", "userId": "u1", "properties": {}}),
        &ferry_engine::NoState,
    );
    assert!(
        traced
            .trace
            .iter()
            .any(|line| line.contains("skipped: `$add` came out empty")),
        "{:#?}",
        traced.trace
    );
    let some = plan(
        &connection,
        &json!({"type": "track", "userId": "u1", "properties": {"points": 2}}),
    );
    assert_eq!(
        body(request(&some)),
        json!({"$add": {"points": 2}, "user": "u1"})
    );
}

#[test]
fn conditions_read_settings_and_computed_values() {
    let extra = "settings:\n  api_secret: { type: string, description: s }\n  region: { type: string, default: us, description: r }\ncomputed:\n  kind: { from: $.event, remap: { table: { Order Completed: purchase }, otherwise: omit } }\n";
    let actions = format!(
        "{}{}",
        track(
            "",
            "        secret_set: { value: true, when: { filled: $settings.api_secret } }\n        region: { from: $settings.region }\n"
        ),
        "  purchase:\n    when: { type: track, equals: { $computed.kind: purchase } }\n    request: { method: POST, path: /purchase }\n"
    );
    let text = mapping(extra, &actions);
    let unset = connect(&text, &json!({}));
    let planned = plan(&unset, &json!({"type": "track", "event": "Clicked"}));
    assert_eq!(body(request(&planned)), json!({"region": "us"}));
    let set = connect(&text, &json!({"api_secret": "s"}));
    let planned = plan(&set, &json!({"type": "track", "event": "Order Completed"}));
    let [tracked, purchase] = requests(&planned)[..] else {
        panic!("two requests");
    };
    assert_eq!(body(tracked), json!({"secret_set": true, "region": "us"}));
    assert_eq!(purchase.url, "https://api.example.com/purchase");
    let problems = rejected(&mapping(
        extra,
        &track("", "        x: { from: $settings.nope }\n"),
    ));
    assert!(problems.contains("unknown setting `nope`"), "{problems}");
}

#[test]
fn an_action_plans_one_request_per_item_of_a_list() {
    let extra =
        "settings:\n  event_map: { type: list, default: [], description: events to conversions }\n";
    let keys = "    for_each:\n      each: $settings.event_map\n      where: { same: [$item.from, $.event] }\n";
    let fields = "        event_name: { from: $item.to }\n        user: { from: $.userId }\n";
    let text = mapping(extra, &track(keys, fields));
    let settings = json!({"event_map": [
        {"from": "Order Completed", "to": "Purchase"},
        {"from": "Signed Up", "to": "CompleteRegistration"},
        {"from": "Order Completed", "to": "CompletePayment"}
    ]});
    let connection = connect(&text, &settings);
    let planned = plan(
        &connection,
        &json!({"type": "track", "event": "Order Completed", "userId": "u1"}),
    );
    let bodies: Vec<Value> = requests(&planned).into_iter().map(body).collect();
    assert_eq!(
        bodies,
        [
            json!({"event_name": "Purchase", "user": "u1"}),
            json!({"event_name": "CompletePayment", "user": "u1"})
        ]
    );
    let none = plan(&connection, &json!({"type": "track", "event": "Clicked"}));
    assert!(skip(&none).contains("`for_each` found no item"), "{none:?}");
    let problems = rejected(&mapping("", &track("", "        x: { from: $item.to }\n")));
    assert!(
        problems.contains("`$item` is the item of the action's `for_each`"),
        "{problems}"
    );
}

#[test]
fn each_iterates_a_setting_list_with_a_filter_on_the_event() {
    let extra = "settings:\n  mappings: { type: list, default: [], description: m }\n";
    let fields = "        data:\n          each: $settings.mappings\n          where: { same: [$.from, $event.event] }\n          fields: { name: { from: $.to } }\n";
    let connection = connect(
        &mapping(extra, &track("", fields)),
        &json!({"mappings": [{"from": "a", "to": "A"}, {"from": "b", "to": "B"}, {"from": "a", "to": "AA"}]}),
    );
    let planned = plan(&connection, &json!({"type": "track", "event": "a"}));
    assert_eq!(
        body(request(&planned)),
        json!({"data": [{"name": "A"}, {"name": "AA"}]})
    );
}

#[test]
fn lookup_tables_kept_as_pairs_remap_and_select() {
    let extra = "settings:\n  events: { type: list, default: [], description: pairs }\n";
    let actions = "  track:\n    when: { type: track, event: { setting: events }, loose: case }\n    request:\n      method: POST\n      path: /events\n      body:\n        name: { from: $.event, remap: { setting: events, otherwise: keep } }\n        kind: { from: $.kind, remap: { otherwise: default, default: other } }\n";
    let connection = connect(
        &mapping(extra, actions),
        &json!({"events": [{"from": "Order Completed", "to": "purchase"}, {"from": "order completed", "to": "lower"}]}),
    );
    let planned = plan(
        &connection,
        &json!({"type": "track", "event": "Order Completed", "kind": "x"}),
    );
    assert_eq!(
        body(request(&planned)),
        json!({"name": "purchase", "kind": "other"})
    );
    // `loose: case` ignores case, and keeps spaces.
    let upper = plan(
        &connection,
        &json!({"type": "track", "event": "ORDER COMPLETED"}),
    );
    assert_eq!(body(request(&upper))["name"], json!("ORDER COMPLETED"));
    let spaced = plan(
        &connection,
        &json!({"type": "track", "event": " Order Completed"}),
    );
    assert!(skip(&spaced).contains("no action matches"), "{spaced:?}");
}

#[test]
fn a_remap_matches_through_transforms_and_chooses_the_first_or_last_pair() {
    let extra = "settings:\n  events: { type: list, default: [], description: pairs }\n";
    let fields = "        first: { from: $.event, remap: { setting: events, match: [spaces_to_underscores, lower], otherwise: omit } }\n        last: { from: $.event, remap: { setting: events, match: [lower], pairs: last, otherwise: omit } }\n        exact: { from: $.event, remap: { setting: events, otherwise: omit } }\n        kind: { from: $.kind, remap: { table: { Web Site: website }, match: [trim, lower], otherwise: omit } }\n";
    let text = mapping(extra, &track("", fields));
    let pairs = json!({"events": [
        {"from": "Order Completed", "to": "purchase"},
        {"from": "order completed", "to": "lower"},
        {"from": "Signed Up"},
        {"from": "Opened", "to": ""},
        {"from": 42, "to": "answer"}
    ]});
    let connection = connect(&text, &pairs);
    let planned = plan(
        &connection,
        &json!({"type": "track", "event": "ORDER  Completed", "kind": " WEB SITE "}),
    );
    assert_eq!(
        body(request(&planned)),
        json!({"first": "purchase", "kind": "website"})
    );
    let lower = plan(
        &connection,
        &json!({"type": "track", "event": "ORDER COMPLETED"}),
    );
    assert_eq!(
        body(request(&lower)),
        json!({"first": "purchase", "last": "lower"})
    );
    // A pair without a `to`, or with an empty one, is an unfinished row; a number names its text.
    for unfinished in ["Signed Up", "Opened"] {
        let planned = plan(&connection, &json!({"type": "track", "event": unfinished}));
        assert_eq!(body(request(&planned)), json!({}), "{unfinished}");
    }
    let number = plan(&connection, &json!({"type": "track", "event": 42}));
    assert_eq!(
        body(request(&number)),
        json!({"first": "answer", "last": "answer", "exact": "answer"})
    );

    // The mapping's own keys must stay apart once matched, and `pairs` needs a setting.
    let twice = rejected(&mapping(
        "",
        &track(
            "",
            "        x: { from: $.a, remap: { table: { Web: a, web: b }, match: [lower] } }\n",
        ),
    ));
    assert!(
        twice.contains("remap entries `Web` and `web` are the same key (`web`) once matched"),
        "{twice}"
    );
    let no_setting = rejected(&mapping(
        "",
        &track(
            "",
            "        x: { from: $.a, remap: { table: { a: b }, pairs: last } }\n",
        ),
    ));
    assert!(
        no_setting.contains("this remap has no `setting`"),
        "{no_setting}"
    );
    // A setting's key the `match` cannot take refuses the connection, naming the setting.
    let phones = mapping(
        extra,
        &track(
            "",
            "        x: { from: $.phone, remap: { setting: events, match: [e164] } }\n",
        ),
    );
    let refused = ferry_engine::Connection::new(
        support::load(&phones),
        json!({"events": [{"from": "+1 555 010 9999", "to": "a"}, {"from": "front desk", "to": "b"}]})
            .as_object()
            .expect("a map"),
    )
    .expect_err("a key that is no phone number");
    assert!(
        refused
            .to_string()
            .contains("setting `events`: `front desk` cannot be matched"),
        "{refused}"
    );
    // A secret setting's keys are not repeated in the reason.
    let secret = ferry_engine::Connection::new(
        support::load(&phones.replace("description: pairs", "description: pairs, secret: true")),
        json!({"events": [{"from": "front desk", "to": "b"}]})
            .as_object()
            .expect("a map"),
    )
    .expect_err("a key that is no phone number")
    .to_string();
    assert!(
        secret.contains("setting `events`: a key cannot be matched")
            && !secret.contains("front desk"),
        "{secret}"
    );
}

#[test]
fn matches_tests_a_regular_expression() {
    let actions = "  track:\n    when: { type: track, matches: { $.context.userAgent: \"(iPhone|Android)\" } }\n    request: { method: POST, path: /mobile }\n";
    let connection = connect(&mapping("", actions), &json!({}));
    let mobile = plan(
        &connection,
        &json!({"type": "track", "context": {"userAgent": "x (iPhone; CPU)"}}),
    );
    assert_eq!(request(&mobile).url, "https://api.example.com/mobile");
    let desktop = plan(
        &connection,
        &json!({"type": "track", "context": {"userAgent": "x (Macintosh)"}}),
    );
    assert!(skip(&desktop).contains("no action matches"));
}

#[test]
fn is_tests_the_type_of_a_value() {
    let keys = "    refuse:\n      - { when: { is: { $.properties.category: object } }, reason: the category must be text or a list }\n      - { when: { is: { $.properties.query: [object, list] } }, reason: the query must be text }\n";
    let connection = connect(
        &mapping(
            "",
            &track(
                keys,
                "        n: { from: $.properties.n, when: { is: { $.properties.n: integer } } }\n",
            ),
        ),
        &json!({}),
    );
    let track =
        |properties: Value| json!({"type": "track", "event": "Searched", "properties": properties});
    let object = plan(&connection, &track(json!({"category": {"a": 1}})));
    assert_eq!(failure(&object), "the category must be text or a list");
    let listed = plan(&connection, &track(json!({"query": ["a"]})));
    assert_eq!(failure(&listed), "the query must be text");
    let fine = plan(
        &connection,
        &track(json!({"category": ["a", "b"], "query": "shoes", "n": 3})),
    );
    assert_eq!(body(request(&fine)), json!({"n": 3}));
    // A missing value, null, or another type: the condition does not hold.
    for n in [json!(null), json!("3"), json!(3.5)] {
        let other = plan(&connection, &track(json!({"category": null, "n": n})));
        assert_eq!(body(request(&other)), json!({}), "{n}");
    }
    let traced = connection.plan_traced(&track(json!({"n": "3"})), &ferry_engine::NoState);
    assert!(
        traced
            .trace
            .iter()
            .any(|line| line.contains("`$.properties.n` is not a whole number")),
        "{:?}",
        traced.trace
    );
}

#[test]
fn time_outside_holds_for_times_too_far_from_the_pinned_clock() {
    let keys = "    refuse:\n      - { when: { time_outside: { $.timestamp: { past: 7d } } }, reason: too old }\n      - { when: { time_outside: { $.properties.sent_ms: { future: 1m, unit: milliseconds } } }, reason: ahead of the clock }\n";
    let mut connection = connect(
        &mapping(
            "",
            &track(
                keys,
                "        id: { from: $.userId }\n        day_old: { value: true, when: { time_outside: { $.timestamp: { past: 1d } } } }\n",
            ),
        ),
        &json!({}),
    );
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-02T09:00:00Z").expect("a time");
    connection.pin_clock(now.with_timezone(&chrono::Utc).into());
    let event = |timestamp: Value, sent_ms: Value| json!({"type": "track", "userId": "u1", "timestamp": timestamp, "properties": {"sent_ms": sent_ms}});
    let old = plan(
        &connection,
        &event(json!("2026-10-26T08:59:59Z"), json!(null)),
    );
    assert_eq!(failure(&old), "too old");
    // Exactly the span is not more than it; a unix number is read in seconds by default.
    let edge = plan(&connection, &event(json!(1_793_005_200), json!(null)));
    assert_eq!(body(request(&edge)), json!({"id": "u1", "day_old": true}));
    let ahead = plan(
        &connection,
        &event(json!("2026-11-02T09:00:00Z"), json!(1_793_610_060_001_i64)),
    );
    assert_eq!(failure(&ahead), "ahead of the clock");
    // No time, or text that is not one: the condition does not hold.
    for timestamp in [json!(null), json!("yesterday")] {
        let fine = plan(&connection, &event(timestamp, json!(1_793_610_060_000_i64)));
        assert_eq!(body(request(&fine)), json!({"id": "u1"}));
    }
    let traced = connection.plan_traced(
        &json!({"type": "track", "userId": "u1", "timestamp": "2026-11-01T10:00:00Z"}),
        &ferry_engine::NoState,
    );
    assert!(
        traced
            .trace
            .iter()
            .any(|line| line.contains("`$.timestamp` is no time more than 1d before now")),
        "{:?}",
        traced.trace
    );
    let refusing = |window: &str| {
        let keys = format!(
            "    refuse:\n      - {{ when: {{ time_outside: {{ $.timestamp: {window} }} }}, reason: x }}\n"
        );
        rejected(&mapping("", &track(&keys, "")))
    };
    let message = refusing("{ past: 7 days }");
    assert!(
        message.contains("must match `^[0-9]+(s|m|h|d)$`, not `7 days`"),
        "{message}"
    );
    // A span too long to count in milliseconds is refused, not wrapped around.
    let message = refusing("{ past: 9999999999999999d }");
    assert!(
        message.contains("`9999999999999999d` is not a span of time"),
        "{message}"
    );
    let message = refusing("{ unit: milliseconds }");
    assert!(
        message.contains("a time window needs `past`, `future` or both"),
        "{message}"
    );
}
