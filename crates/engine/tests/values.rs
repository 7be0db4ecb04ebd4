//! Shaping values: type checks where the mapping puts them, fallbacks that can prefer `null` or
//! skip a value that cannot be converted, a pinned clock, time patterns, text operations,
//! hashes of normalised values, lists made into objects or sums, and named values computed once
//! per event.

mod support;

use serde_json::{Value, json};
use support::{HEAD, connect, failure, json as body, load, plan, rejected, request};

/// A mapping with one `track` action whose body is `fields` (YAML, indented by 8), after
/// `extra` top-level sections.
fn mapping(extra: &str, fields: &str) -> String {
    format!(
        "{HEAD}{extra}actions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n      body:\n{fields}"
    )
}

fn body_of(fields: &str, event: &Value) -> Value {
    body(request(&plan(
        &connect(&mapping("", fields), &json!({})),
        event,
    )))
}

fn fails(fields: &str, event: &Value) -> String {
    failure(&plan(&connect(&mapping("", fields), &json!({})), event))
}

#[test]
fn a_type_is_checked_as_the_value_arrives_when_apply_says_so() {
    let fields = "        email: { from: $.email, apply: [{ must_be: string }, { transform: [trim, lower] }] }\n";
    assert_eq!(
        body_of(fields, &json!({"type": "track", "email": " A@B.io "})),
        json!({"email": "a@b.io"})
    );
    let message = fails(fields, &json!({"type": "track", "email": 123}));
    assert_eq!(message, "`email`: must be text, not a number (`123`)");
    // After the transforms (the field's own `must_be`), 123 has become "123".
    let late = "        email: { from: $.email, transform: [lower], must_be: string }\n";
    assert_eq!(
        body_of(late, &json!({"type": "track", "email": 123})),
        json!({"email": "123"})
    );
}

#[test]
fn keep_null_first_prefers_an_explicit_null_to_a_later_path() {
    let fields = "        first: { from: [$.country, $.address.country], keep_null: first }\n        last: { from: [$.country, $.address.country], keep_null: true }\n";
    let event = json!({"type": "track", "country": null, "address": {"country": "NL"}});
    assert_eq!(
        body_of(fields, &event),
        json!({"first": null, "last": "NL"})
    );
    let absent = json!({"type": "track", "address": {"country": "NL"}});
    assert_eq!(
        body_of(fields, &absent),
        json!({"first": "NL", "last": "NL"})
    );
}

#[test]
fn on_invalid_next_reads_the_next_path_then_the_default() {
    let fields = "        at: { from: [$.timestamp, $.originalTimestamp], as: unix_millis, on_invalid: next, default: 0 }\n";
    assert_eq!(
        body_of(
            fields,
            &json!({"type": "track", "timestamp": "yesterday", "originalTimestamp": "2026-11-02T09:00:00Z"})
        ),
        json!({"at": 1_793_610_000_000_i64})
    );
    assert_eq!(
        body_of(fields, &json!({"type": "track", "timestamp": "never"})),
        json!({"at": 0})
    );
    let problems = rejected(&mapping(
        "",
        "        at: { from: $.timestamp, as: unix_millis, on_invalid: next }\n",
    ));
    assert!(
        problems.contains("`on_invalid: next` reads the next path"),
        "{problems}"
    );
}

#[test]
fn now_reads_the_pinned_clock_and_falls_back_after_from() {
    let fields = "        sent: { now: true, format_time: \"%Y-%m-%dT%H:%M:%S\" }\n        at: { from: $.timestamp, now: true, as: unix_seconds }\n";
    let mut connection =
        ferry_engine::Connection::new(load(&mapping("", fields)), json!({}).as_object().unwrap())
            .unwrap();
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-02T09:00:00Z").expect("a time");
    connection.pin_clock(now.with_timezone(&chrono::Utc).into());
    let planned = plan(&connection, &json!({"type": "track"}));
    assert_eq!(
        body(request(&planned)),
        json!({"sent": "2026-11-02T09:00:00", "at": 1_793_610_000})
    );
    let given = plan(
        &connection,
        &json!({"type": "track", "timestamp": "2026-01-01T00:00:00Z"}),
    );
    assert_eq!(body(request(&given))["at"], json!(1_767_225_600));
}

#[test]
fn times_are_written_with_a_pattern_or_in_microseconds() {
    let fields = "        day: { from: $.t, format_time: \"%Y-%m-%d %H:%M\" }\n        micros: { from: $.t, as: unix_micros }\n        from_ms: { from: $.ms, time_unit: milliseconds, format_time: \"%s\" }\n";
    assert_eq!(
        body_of(
            fields,
            &json!({"type": "track", "t": "2026-11-02T09:00:00.123456+01:00", "ms": 1_700_000_000_123_i64})
        ),
        json!({"day": "2026-11-02 08:00", "micros": 1_793_606_400_123_456_i64, "from_ms": "1700000000"})
    );
    let problems = rejected(&mapping(
        "",
        "        day: { from: $.t, format_time: \"%Y-%Q\" }\n",
    ));
    assert!(problems.contains("is not a time format"), "{problems}");
}

#[test]
fn times_are_written_in_a_time_zone_the_mapping_or_the_event_names() {
    let fields = concat!(
        "        paris: { from: $.t, format_time: { pattern: \"%H:%M %Z\", zone: Europe/Paris } }\n",
        "        local: { from: $.t, format_time: { pattern: \"%Y-%m-%d %H:%M %Z\", zone: $.context.timezone } }\n",
        "        items: { each: $.stops, format_time: { pattern: \"%H:%M %Z\", zone: $event.context.timezone }, from: $.at }\n",
    );
    let event = |t: &str, zone: &str| json!({"type": "track", "t": t, "context": {"timezone": zone}, "stops": [{"at": t}]});
    // Summer and winter time: the abbreviation and offset are those at that instant.
    assert_eq!(
        body_of(fields, &event("2026-07-01T10:00:00Z", "Asia/Kolkata")),
        json!({"paris": "12:00 CEST", "local": "2026-07-01 15:30 IST", "items": ["15:30 IST"]})
    );
    assert_eq!(
        body_of(fields, &event("2026-12-01T10:00:00Z", "America/New_York")),
        json!({"paris": "11:00 CET", "local": "2026-12-01 05:00 EST", "items": ["05:00 EST"]})
    );
    // A zone the event names that does not exist fails the field, with the name.
    let why = fails(fields, &event("2026-12-01T10:00:00Z", "Mars/Olympus"));
    assert!(why.contains("`Mars/Olympus` is not a time zone"), "{why}");
    // A zone written in the mapping is checked when it loads.
    let problems = rejected(&mapping(
        "",
        "        day: { from: $.t, format_time: { pattern: \"%H:%M\", zone: Europe/Pariss } }\n",
    ));
    assert!(
        problems.contains("`Europe/Pariss` is not a time zone") && problems.contains("test.yaml:"),
        "{problems}"
    );
}

#[test]
fn text_is_truncated_and_captured() {
    let fields = "        id: { from: $.messageId, truncate: 8 }\n        chrome: { from: $.ua, capture: \"Chrome/([0-9.]+)\" }\n        major: { from: $.ua, capture: \"Chrome/(\\\\d+)\", as: integer }\n        gone: { from: $.ua, capture: \"Firefox/([0-9.]+)\", default: none }\n";
    let ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_2) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.117 Safari/537.36";
    assert_eq!(
        body_of(
            fields,
            &json!({"type": "track", "messageId": "dd266c67-9199-4a52", "ua": ua})
        ),
        json!({"id": "dd266c67", "chrome": "79.0.3945.117", "major": 79, "gone": "none"})
    );
    let problems = rejected(&mapping("", "        x: { from: $.a, capture: \"(\" }\n"));
    assert!(
        problems.contains("is not a regular expression"),
        "{problems}"
    );
}

#[test]
fn a_user_agent_is_read_by_a_parser() {
    let fields = "        browser: { from: $.ua, user_agent: browser }\n        version: { from: $.ua, user_agent: browser_version }\n        os: { from: $.ua, user_agent: os }\n        os_version: { from: $.ua, user_agent: os_version }\n        device: { from: $.ua, user_agent: device }\n";
    let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 14_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0 Mobile/15E148 Safari/604.1";
    assert_eq!(
        body_of(fields, &json!({"type": "track", "ua": ua})),
        json!({"browser": "Safari", "version": "14.0", "os": "iPhone", "os_version": "14.0", "device": "smartphone"})
    );
    assert_eq!(
        body_of(fields, &json!({"type": "track", "ua": "curl"})),
        json!({})
    );
    // The parts of the last text parsed are remembered: another text is parsed again.
    let windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    for (ua, browser) in [(windows, "Chrome"), (ua, "Safari"), (windows, "Chrome")] {
        let body = body_of(fields, &json!({"type": "track", "ua": ua}));
        assert_eq!(body["browser"], json!(browser), "{body}");
    }
    assert_eq!(
        body_of(fields, &json!({"type": "track", "ua": windows})),
        json!({"browser": "Chrome", "version": "120.0.0.0", "os": "Windows 10", "os_version": "NT 10.0", "device": "pc"})
    );
}

#[test]
fn normalised_values_are_hashed() {
    let fields = "        em: { from: $.email, transform: [trim, lower, sha256] }\n        ph: { from: $.phone, transform: [e164, sha256] }\n        digits: { from: $.phone, transform: [digits] }\n";
    let body = body_of(
        fields,
        &json!({"type": "track", "email": "  John@Example.COM ", "phone": "+1 (555) 010-9999"}),
    );
    assert_eq!(
        body["em"],
        json!("855f96e983f1f8e8be944692b6f719fd54329826cb62e98015efee8e2e071dd4")
    );
    assert_eq!(
        body["ph"],
        json!("d6793cafee143dab64595a0d6ef1f17cd3e7e39c1b87fdd338410e4c71cc4aaf")
    );
    assert_eq!(body["digits"], json!("15550109999"));
    let message = fails(
        "        ph: { from: $.phone, transform: [e164] }\n",
        &json!({"type": "track", "phone": "call me"}),
    );
    assert!(message.contains("is not a phone number"), "{message}");
}

#[test]
fn lists_are_counted_summed_and_made_into_objects() {
    let fields = "        count: { from: $.products, count: true }\n        revenue: { each: $.products, template: \"{{ event.price * event.quantity }}\", sum: true }\n        unset: { from: $.unset, to_object: \"-\" }\n        one: { each: $.product, single_as_list: true, from: $.sku }\n";
    let event = json!({
        "type": "track",
        "products": [{"price": 10.5, "quantity": 2}, {"price": 4, "quantity": 1}],
        "unset": ["email", "phone"],
        "product": {"sku": "s1"}
    });
    assert_eq!(
        body_of(fields, &event),
        json!({"count": 2, "revenue": 25, "unset": {"email": "-", "phone": "-"}, "one": ["s1"]})
    );
}

#[test]
fn numbers_are_multiplied_by_a_value_and_rounded() {
    let fields = "        revenue: { each: $.products, from: $.price, times: $.quantity, sum: true }\n        line: { from: \"$.products[0].price\", times: $.tax_rate, round: 2 }\n        each_line: { each: $.products, from: $.price, times: $.quantity }\n";
    let event = json!({
        "type": "track",
        "tax_rate": "1.2",
        "products": [{"price": 10.5, "quantity": 2}, {"price": "4"}, {"price": 3, "quantity": 3}]
    });
    // Inside `each`, `$` in `times` is the item; a missing factor multiplies by 1.
    assert_eq!(
        body_of(fields, &event),
        json!({"revenue": 34, "line": 12.6, "each_line": [21.0, 4, 9]})
    );
    let message = fails(
        "        line: { from: $.price, times: $.quantity }\n",
        &json!({"type": "track", "price": 2, "quantity": "two"}),
    );
    assert!(
        message.contains("`times` needs a factor that is a number, not text `two`"),
        "{message}"
    );
}

#[test]
fn computed_values_are_made_once_and_read_by_fields_and_conditions() {
    let extra = "computed:\n  kind:\n    from: $.event\n    remap: { table: { Order Completed: purchase, Product Viewed: view }, otherwise: omit }\n  label: { template: \"{{ computed.kind }}-{{ event.userId }}\", when: { filled: $computed.kind } }\n";
    let fields = "        kind: { from: $computed.kind, required: true }\n        label: { from: $computed.label }\n";
    let text = mapping(extra, fields).replace(
        "when: { type: track }",
        "when: { type: track, filled: $computed.kind }",
    );
    let connection = connect(&text, &json!({}));
    let bought = plan(
        &connection,
        &json!({"type": "track", "event": "Order Completed", "userId": "u1"}),
    );
    assert_eq!(
        body(request(&bought)),
        json!({"kind": "purchase", "label": "purchase-u1"})
    );
    let other = plan(&connection, &json!({"type": "track", "event": "Clicked"}));
    assert!(support::skip(&other).contains("no action matches"));
    let problems = rejected(&mapping(
        "computed:\n  a: { from: $computed.b }\n  b: { value: 1 }\n",
        "        x: { from: $computed.c }\n",
    ));
    assert!(
        problems.contains("computed value `b` is computed after this one"),
        "{problems}"
    );
    assert!(
        problems.contains("no computed value is named `c`"),
        "{problems}"
    );
}

#[test]
fn computed_values_are_read_by_name_below_them_and_all_at_once() {
    let extra = "computed:\n  obj: { fields: { inner: { from: $.userId } } }\n  none: { from: $.missing }\n  shout: { template: \"{{ computed.obj.inner | upper }}\" }\n  count: { template: \"{{ computed | length }}\" }\n";
    let fields = "        inner: { from: $computed.obj.inner }\n        shout: { from: $computed.shout }\n        count: { from: $computed.count, as: integer }\n        none: { from: [$computed.none, $computed.obj.absent], default: gone }\n";
    let connection = connect(&mapping(extra, fields), &json!({}));
    let planned = body(request(&plan(
        &connection,
        &json!({"type": "track", "userId": "u1"}),
    )));
    // `count` sees the two values made before it: `none` is missing, not null.
    assert_eq!(
        planned,
        json!({"inner": "u1", "shout": "U1", "count": 2, "none": "gone"})
    );
}

/// Remembers one email for every user, and counts how often it is asked for it.
#[derive(Default)]
struct CountedRecall(std::cell::Cell<usize>);

impl ferry_engine::Recall for CountedRecall {
    fn recall(&self, _store: &str, _key: &str) -> Option<Value> {
        self.0.set(self.0.get() + 1);
        Some(json!("a@b.io"))
    }
}

#[test]
fn a_computed_value_is_made_when_first_read_and_only_once() {
    let text = format!(
        "{HEAD}computed:\n  email: {{ from: $.properties.email, recall: {{ name: email, key: $.userId }} }}\n  domain: {{ from: $computed.email, capture: \"@(.*)\" }}\nactions:\n  identify:\n    when: {{ type: identify }}\n    request: {{ method: POST, path: /i }}\n    remember:\n      email: {{ key: $.userId, value: $.traits.email }}\n  track:\n    when: {{ type: track, filled: $computed.email }}\n    request:\n      method: POST\n      path: /t\n      body:\n        email: {{ from: $computed.email }}\n        domain: {{ from: $computed.domain }}\n  page:\n    when: {{ type: page }}\n    request: {{ method: POST, path: /p, body: {{ name: {{ from: $.name }} }} }}\n"
    );
    let connection = connect(&text, &json!({}));
    let state = CountedRecall::default();
    // No action a page selects reads the value: nothing is recalled.
    let page = connection.plan(
        &json!({"type": "page", "userId": "u1", "name": "Home"}),
        &state,
    );
    assert_eq!(body(request(&page)), json!({"name": "Home"}));
    assert_eq!(state.0.get(), 0);
    // Read by a `when`, a field and another computed value: recalled once.
    let track = connection.plan(&json!({"type": "track", "userId": "u1"}), &state);
    assert_eq!(
        body(request(&track)),
        json!({"email": "a@b.io", "domain": "b.io"})
    );
    assert_eq!(state.0.get(), 1);
    // A traced plan makes every value, in order, to say where each came from.
    let traced = connection.plan_traced(
        &json!({"type": "page", "userId": "u1", "name": "Home"}),
        &state,
    );
    assert_eq!(state.0.get(), 2);
    let lines = traced.trace.join("\n");
    assert!(lines.contains("computed.domain"), "{lines}");
}

#[test]
fn a_computed_value_that_fails_fails_the_fields_that_read_it() {
    let extra = "computed:\n  id: { from: $.userId, required: true }\n";
    let connection = connect(
        &mapping(extra, "        id: { from: $computed.id }\n"),
        &json!({}),
    );
    let message = failure(&plan(&connection, &json!({"type": "track"})));
    assert_eq!(
        message,
        "`computed.id` is required but `$.userId` is missing"
    );
}

#[test]
fn value_null_and_default_null_send_json_null() {
    let fields = "        cleared: { value: null }\n        time: { from: $.timestamp, as: unix_millis, default: null }\n        tags: { each: $.tags, default: null }\n        list: { items: [{ value: null }, { from: $.userId }] }\n";
    assert_eq!(
        body_of(fields, &json!({"type": "track"})),
        json!({"cleared": null, "time": null, "tags": null, "list": [null]})
    );
    assert_eq!(
        body_of(
            fields,
            &json!({"type": "track", "timestamp": "2026-11-02T09:00:00Z", "tags": ["a"], "userId": "u1"})
        ),
        json!({"cleared": null, "time": 1_793_610_000_000_u64, "tags": ["a"], "list": [null, "u1"]})
    );
    // A `null` the event holds is still missing: the default stands for it.
    assert_eq!(
        body_of(fields, &json!({"type": "track", "timestamp": null}))["time"],
        Value::Null
    );
}

#[test]
fn a_literal_null_is_not_shaped_and_a_when_still_leaves_it_out() {
    let fields = "        a: { value: null, transform: [upper] }\n        b: { value: null, when: { filled: $.userId } }\n";
    assert_eq!(
        body_of(fields, &json!({"type": "track"})),
        json!({"a": null})
    );
}
