//! Multi-step flows and batching, on the bundled Braze and Amplitude -> Extole mappings and on
//! small mappings written inline.

#![allow(clippy::needless_pass_by_value)] // tests hand `json!` literals over by value

use std::sync::Arc;

use ferry_engine::{
    Batcher, Body, Connection, MemoryState, NoState, Outcome, PlannedRequest, Remembered,
    StepResponse,
};
use serde_json::{Value, json};

fn bundled(name: &str, settings: Value) -> Connection {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../mappings")
        .join(format!("{name}.yaml"));
    let mapping = ferry_engine::load(&path).unwrap_or_else(|d| panic!("{d}"));
    Connection::new(Arc::new(mapping), settings.as_object().expect("a map"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn braze() -> Connection {
    bundled(
        "braze",
        json!({ "instance_url": "https://rest.iad-01.braze.com", "rest_api_key": "braze-key-1" }),
    )
}

fn inline(text: &str) -> Connection {
    let mapping = ferry_engine::load_str("test.yaml", text).unwrap_or_else(|d| panic!("{d}"));
    Connection::new(Arc::new(mapping), &serde_json::Map::new()).unwrap_or_else(|e| panic!("{e}"))
}

fn only_request(outcomes: Vec<Outcome>) -> PlannedRequest {
    match outcomes.as_slice() {
        [Outcome::Request(_)] => match outcomes.into_iter().next() {
            Some(Outcome::Request(request)) => request,
            _ => unreachable!(),
        },
        other => panic!("expected one request, got {other:?}"),
    }
}

fn body(request: &PlannedRequest) -> Value {
    match &request.body {
        Some(Body::Json(text)) => serde_json::from_str(text).expect("JSON body"),
        other => panic!("expected a JSON body, got {other:?}"),
    }
}

fn known_user(i: usize) -> Value {
    json!({"event_name": "Shared", "event_time": "2026-11-20T10:00:00Z", "external_id": format!("user-{i}")})
}

#[test]
fn batches_close_at_75_objects_per_array_and_keep_item_order() {
    let connection = braze();
    let mut batcher = Batcher::new();
    let mut closed = Vec::new();
    for i in 0..76 {
        let request = only_request(connection.plan(&known_user(i), &NoState).outcomes);
        closed.extend(batcher.push(i, request).expect("fits"));
    }
    assert_eq!(closed.len(), 1, "the 75th item fills the first batch");
    assert_eq!(closed[0].items, (0..75).collect::<Vec<_>>());
    let merged = body(&closed[0].request);
    assert_eq!(merged["attributes"].as_array().map(Vec::len), Some(75));
    assert_eq!(merged["events"][74]["external_id"], "user-74");
    let rest = batcher.flush();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].items, [75]);
}

#[test]
fn requests_with_different_credentials_never_merge() {
    let production = braze();
    let staging = bundled(
        "braze",
        json!({ "instance_url": "https://rest.iad-01.braze.com", "rest_api_key": "braze-key-2" }),
    );
    let mut batcher = Batcher::new();
    for (i, connection) in [&production, &staging, &production].into_iter().enumerate() {
        let request = only_request(connection.plan(&known_user(i), &NoState).outcomes);
        assert!(batcher.push(i, request).expect("fits").is_empty());
    }
    let merged: Vec<Vec<usize>> = batcher.flush().into_iter().map(|m| m.items).collect();
    assert_eq!(merged, [vec![0, 2], vec![1]]);
}

#[test]
fn braze_item_errors_name_the_events_that_failed() {
    let connection = braze();
    let mut batcher = Batcher::new();
    for i in 0..4 {
        let request = only_request(connection.plan(&known_user(i), &NoState).outcomes);
        batcher.push(i, request).expect("fits");
    }
    let merged = batcher.flush().pop().expect("one batch");
    let response = json!({
        "message": "success",
        "errors": [
            {"type": "'time' is invalid", "input_array": "events", "index": 2},
            {"type": "'email' is invalid", "input_array": "attributes", "index": 0},
            {"type": "'x' is invalid", "input_array": "purchases", "index": 0},
            {"type": "out of range", "input_array": "events", "index": 9}
        ]
    });
    let failures = merged.failed_items(&response);
    assert_eq!(
        failures.failed,
        [
            (0, "'email' is invalid".to_owned()),
            (2, "'time' is invalid".to_owned())
        ]
    );
    assert_eq!(failures.unattributed, ["'x' is invalid", "out of range"]);
    assert!(
        merged
            .failed_items(&json!({"message": "success"}))
            .failed
            .is_empty()
    );
}

#[test]
fn a_refused_batch_splits_in_halves_down_to_single_items() {
    let connection = braze();
    let mut batcher = Batcher::new();
    for i in 0..5 {
        let request = only_request(connection.plan(&known_user(i), &NoState).outcomes);
        batcher.push(i, request).expect("fits");
    }
    let mut first = batcher.flush().pop().expect("one batch");
    let second = first.split().expect("five items split");
    assert_eq!(first.items, [0, 1]);
    assert_eq!(second.items, [2, 3, 4]);
    assert_eq!(body(&second.request)["events"][0]["external_id"], "user-2");
    let mut single = first;
    let other = single.split().expect("two items split");
    assert_eq!(
        (single.items.clone(), other.items.clone()),
        (vec![0], vec![1])
    );
    assert!(single.split().is_none(), "one item cannot be split");
}

#[test]
fn a_batch_closes_before_it_would_pass_its_byte_limit_and_an_oversize_item_is_rejected() {
    let text = r#"version: 1
name: t
source: json
http: { base_url: "https://api.example.com", max_body_bytes: 300 }
actions:
  send:
    when: {}
    request:
      method: POST
      path: /batch
      body:
        id: { from: $.id }
        note: { from: $.note }
    batch: { wrap: events, max_items: 100, max_bytes: 120 }
"#;
    let connection = inline(text);
    let mut batcher = Batcher::new();
    let mut closed = Vec::new();
    for i in 0..6 {
        let event = json!({"id": i, "note": "twenty characters.."});
        let request = only_request(connection.plan(&event, &NoState).outcomes);
        closed.extend(batcher.push(i, request).expect("fits"));
    }
    closed.extend(batcher.flush());
    for merged in &closed {
        let Some(Body::Json(text)) = &merged.request.body else {
            panic!("JSON")
        };
        assert!(text.len() <= 120, "{} bytes: {text}", text.len());
        let parsed: Value = serde_json::from_str(text).expect("valid JSON");
        assert_eq!(
            parsed["events"].as_array().map(Vec::len),
            Some(merged.len())
        );
    }
    assert_eq!(
        closed
            .iter()
            .map(ferry_engine::MergedRequest::len)
            .sum::<usize>(),
        6
    );
    assert!(closed.len() >= 2);

    let big = json!({"id": 1, "note": "x".repeat(200)});
    let request = only_request(connection.plan(&big, &NoState).outcomes);
    let rejected = batcher.push(99, request).expect_err("too large on its own");
    assert_eq!(rejected.item, 99);
    assert!(
        rejected.reason.contains("over the batch limit of 120"),
        "{}",
        rejected.reason
    );
}

#[test]
fn a_step_may_handle_a_non_2xx_status_of_an_earlier_step() {
    let text = r#"version: 1
name: t
source: json
http: { base_url: "https://api.example.com" }
actions:
  upsert:
    when: {}
    steps:
      find:
        request: { method: GET, path: "/contacts/{{ event.id }}" }
      create:
        when: { response: find, status: 404 }
        request:
          method: POST
          path: /contacts
          body: { id: { from: $.id } }
      update:
        when: { response: find, status: [200], exists: $.body.version }
        request:
          method: PUT
          path: "/contacts/{{ event.id }}"
          body:
            id: { from: $.id }
            version: { response: find, from: $.body.version }
"#;
    let connection = inline(text);
    let event = json!({"id": "c/1"});
    let first = only_request(connection.plan(&event, &NoState).outcomes);
    assert_eq!(first.url, "https://api.example.com/contacts/c%2F1");
    let continuation = first.continuation.clone().expect("later steps wait");
    assert!(connection.expects(&continuation, 404));
    assert!(!connection.expects(&continuation, 500));

    let not_found = StepResponse::from_bytes(404, vec![], b"not json");
    let Some(Outcome::Request(create)) =
        connection.resume(&event, &NoState, &continuation, &not_found)
    else {
        panic!("404 leads to create")
    };
    assert_eq!(create.step.as_deref(), Some("create"));
    assert!(create.continuation.is_none(), "update cannot follow a 404");

    let found = StepResponse::from_bytes(200, vec![], br#"{"version": 7}"#);
    let Some(Outcome::Request(update)) = connection.resume(&event, &NoState, &continuation, &found)
    else {
        panic!("200 leads to update")
    };
    assert_eq!(body(&update), json!({"id": "c/1", "version": 7}));

    let broken = StepResponse::from_bytes(500, vec![], b"{}");
    let why = resumed_failure(&connection, &event, &continuation, &broken);
    assert!(why.contains("answered 500"), "{why}");
}

/// Why the action fails once its step is answered with `response`.
fn resumed_failure(
    connection: &Connection,
    event: &Value,
    continuation: &ferry_engine::Continuation,
    response: &StepResponse,
) -> String {
    match connection.resume(event, &NoState, continuation, response) {
        Some(Outcome::Failed(failure)) => failure.message,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_step_s_path_and_headers_read_an_earlier_step_s_response() {
    // Klaviyo answers 409 for a profile that exists, with its id: the update goes to that id.
    let text = r#"version: 1
name: t
source: json
http: { base_url: "https://api.example.com" }
actions:
  upsert:
    when: {}
    steps:
      create:
        request: { method: POST, path: /profiles, body: { email: { from: $.email } } }
      update:
        when: { response: create, status: 409 }
        request:
          method: PATCH
          path: "/profiles/{{ responses.create.body.errors[0].meta.duplicate_profile_id }}"
          headers: { X-Conflict: "{{ responses.create.status }}" }
          body:
            id: { response: create, from: "$.body.errors[0].meta.duplicate_profile_id", required: true }
            email: { from: $.email }
"#;
    let connection = inline(text);
    let event = json!({"email": "a@example.com"});
    let create = only_request(connection.plan(&event, &NoState).outcomes);
    let continuation = create
        .continuation
        .clone()
        .expect("update waits for create");
    let conflict = StepResponse::from_bytes(
        409,
        vec![],
        br#"{"errors": [{"meta": {"duplicate_profile_id": "01GW/3PH"}}]}"#,
    );
    let Some(Outcome::Request(update)) =
        connection.resume(&event, &NoState, &continuation, &conflict)
    else {
        panic!("409 leads to update")
    };
    // The response's value is one path segment: a slash in it cannot reach another path.
    assert_eq!(update.url, "https://api.example.com/profiles/01GW%2F3PH");
    assert!(
        update
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("x-conflict") && &*h.value == "409"),
        "{:?}",
        update.headers
    );
    assert_eq!(
        body(&update),
        json!({"id": "01GW/3PH", "email": "a@example.com"})
    );

    // A 409 without the id leaves the path's value missing: the action fails and says why.
    let bare = StepResponse::from_bytes(409, vec![], br#"{"errors": []}"#);
    let why = resumed_failure(&connection, &event, &continuation, &bare);
    assert!(why.contains("responses.create.body.errors"), "{why}");
}

#[test]
fn templates_read_the_responses_of_earlier_steps_only() {
    let mapping = |path: &str, steps: bool| {
        let request = format!("{{ method: GET, path: \"{path}\" }}");
        let action = if steps {
            format!(
                "    steps:\n      first:\n        request: {{ method: GET, path: /a }}\n      second:\n        request: {request}\n      third:\n        request: {{ method: GET, path: /c }}\n"
            )
        } else {
            format!("    request: {request}\n")
        };
        format!(
            "version: 1\nname: t\nsource: json\nhttp: {{ base_url: \"https://api.example.com\" }}\nactions:\n  a:\n    when: {{}}\n{action}"
        )
    };
    let refused = |text: String| match ferry_engine::load_str("test.yaml", &text) {
        Ok(_) => panic!("loaded:\n{text}"),
        Err(problems) => problems.to_string(),
    };
    let outside = refused(mapping("/x/{{ responses.first.body.id }}", false));
    assert!(
        outside.contains("only a step of an action with `steps`"),
        "{outside}"
    );
    let later = refused(mapping("/x/{{ responses.third.body.id }}", true));
    assert!(
        later.contains("step `third` runs after `second`"),
        "{later}"
    );
    let unknown = refused(mapping("/x/{{ responses.firts.body.id }}", true));
    assert!(unknown.contains("did you mean `first`?"), "{unknown}");
    assert!(
        ferry_engine::load_str(
            "test.yaml",
            &mapping("/x/{{ responses.first.body.id }}", true)
        )
        .is_ok()
    );
}

#[test]
fn when_reads_settings_and_remembered_state() {
    let text = r#"version: 1
name: t
source: segment
settings:
  mode: { type: string, default: live, description: m }
http: { base_url: "https://api.example.com" }
actions:
  known:
    when: { type: track, settings: { mode: live }, recalled: { name: email, key: $.userId } }
    request: { method: POST, path: /known }
  learn:
    when: { type: identify }
    request: { method: POST, path: /learn }
    remember:
      email: { key: $.userId, value: $.traits.email }
"#;
    let connection = inline(text);
    let track = json!({"type": "track", "event": "x", "userId": "u1"});
    assert!(matches!(
        connection.plan(&track, &NoState).outcomes.as_slice(),
        [Outcome::Skipped(_)]
    ));
    let mut state = MemoryState::default();
    state.apply(vec![Remembered {
        store: "email".into(),
        key: "u1".into(),
        value: json!("a@example.com"),
    }]);
    let request = only_request(connection.plan(&track, &state).outcomes);
    assert_eq!(request.url, "https://api.example.com/known");

    let mapping = Arc::clone(connection.mapping());
    let test_mode = Connection::new(mapping, json!({"mode": "test"}).as_object().expect("a map"))
        .expect("valid settings");
    assert!(matches!(
        test_mode.plan(&track, &state).outcomes.as_slice(),
        [Outcome::Skipped(_)]
    ));
}

#[test]
fn amplitude_events_over_two_megabytes_are_refused_with_the_limit_named() {
    let connection = bundled("amplitude-extole", json!({ "api_key": "token-1234" }));
    let event = json!({
        "event_type": "Big",
        "user_id": "ann@example.com",
        "time": 1_763_632_800_000_u64,
        "event_properties": { "blob": "x".repeat(2_000_001) }
    });
    match connection.plan(&event, &NoState).outcomes.as_slice() {
        [Outcome::Failed(failure)] => assert!(
            failure
                .message
                .contains("over the mapping's limit of 2000000"),
            "{}",
            failure.message
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
    let retry = &connection.mapping().delivery().retry;
    assert!(retry.on_status.contains(&429));
}

#[test]
fn the_first_failure_rule_that_holds_says_why_and_whether_to_retry() {
    let text = r#"version: 1
name: t
source: segment
http: { base_url: "https://api.example.com" }
actions:
  track:
    when: { type: track }
    request: { method: POST, path: /events, body: { name: { from: $.event } } }
    failure:
      - { when: { equals: { $.body.code: 40100 } }, reason: $.body.message, retry: true }
      - { when: { not: { equals: { $.body.code: 0 } } }, reason: $.body.message }
"#;
    let connection = inline(text);
    let request = only_request(
        connection
            .plan(&json!({"type": "track", "event": "x"}), &NoState)
            .outcomes,
    );
    let answer = |body: Value| StepResponse {
        status: 200,
        headers: Vec::new(),
        body,
    };
    let throttled = connection
        .refusal(
            &request,
            &answer(json!({"code": 40100, "message": "too many requests"})),
        )
        .expect("a failure");
    assert_eq!(
        (throttled.reason.as_str(), throttled.retry),
        ("too many requests", true)
    );
    let refused = connection
        .refusal(
            &request,
            &answer(json!({"code": 40002, "message": "bad pixel"})),
        )
        .expect("a failure");
    assert_eq!(
        (refused.reason.as_str(), refused.retry),
        ("bad pixel", false)
    );
    assert!(
        connection
            .refusal(&request, &answer(json!({"code": 0, "message": "OK"})))
            .is_none()
    );
}

/// Two actions naming the shared rule `events`, each with its own `failure` (`first` and
/// `second`, YAML flow mappings).
fn shared_rule_mapping(first: &str, second: &str) -> String {
    format!(
        r#"version: 1
name: t
source: segment
http: {{ base_url: "https://api.example.com" }}
batches:
  events: {{ concat: [events], max_items: 10 }}
actions:
  track:
    when: {{ type: track }}
    request: {{ method: POST, path: /batch, body: {{ events: {{ items: [{{ fields: {{ name: {{ from: $.event }} }} }}] }} }} }}
    failure: {first}
    batch: events
  page:
    when: {{ type: page }}
    request: {{ method: POST, path: /batch, body: {{ events: {{ items: [{{ fields: {{ page: {{ from: $.name }} }} }}] }} }} }}
    failure: {second}
    batch: events
"#
    )
}

fn merged_items(connection: &Connection) -> Vec<Vec<usize>> {
    let events = [
        json!({"type": "track", "event": "a"}),
        json!({"type": "page", "name": "home"}),
        json!({"type": "track", "event": "b"}),
    ];
    let mut batcher = Batcher::new();
    for (i, event) in events.iter().enumerate() {
        let request = only_request(connection.plan(event, &NoState).outcomes);
        assert!(batcher.push(i, request).expect("fits").is_empty());
    }
    batcher.flush().into_iter().map(|m| m.items).collect()
}

#[test]
fn actions_sharing_a_batch_rule_merge_when_their_failure_rules_are_written_alike() {
    let rule = "{ when: { equals: { $.body.status: 0 } }, reason: $.body.error }";
    let alike = inline(&shared_rule_mapping(rule, rule));
    assert_eq!(merged_items(&alike), [vec![0, 1, 2]]);
    let other = "{ when: { equals: { $.body.status: 0 } }, reason: $.body.message }";
    let different = inline(&shared_rule_mapping(rule, other));
    assert_eq!(merged_items(&different), [vec![0, 2], vec![1]]);
}
