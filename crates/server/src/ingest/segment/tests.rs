use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Map, Value, json};

use super::*;

const AT: &str = "2026-11-23T10:00:00.000Z";

/// Parses a stored body, failing unless it is one JSON object.
fn stored(accepted: &Accepted) -> Map<String, Value> {
    match serde_json::from_str(&accepted.body) {
        Ok(Value::Object(map)) => map,
        other => panic!(
            "stored body is not an object: {other:?} from {}",
            accepted.body
        ),
    }
}

fn single(call: Call, body: &Value) -> Parsed {
    parse(call, body.to_string().as_bytes(), AT).expect("a good single call")
}

fn only(parsed: &Parsed) -> Map<String, Value> {
    assert!(
        parsed.ingested.rejected.is_empty(),
        "{:?}",
        parsed.ingested.rejected
    );
    assert_eq!(parsed.ingested.accepted.len(), 1);
    stored(&parsed.ingested.accepted[0])
}

fn batch(body: &Value) -> Result<Parsed, WireError> {
    parse(Call::Batch, body.to_string().as_bytes(), AT)
}

fn code(err: &WireError) -> &str {
    assert_eq!(err.body["success"], false);
    err.body["code"].as_str().unwrap()
}

/// A JSON object of exactly `len` bytes holding `fields` and a padding string.
fn padded(fields: &Value, len: usize) -> String {
    let mut object = fields.as_object().unwrap().clone();
    object.insert("pad".into(), Value::String(String::new()));
    let base = serde_json::to_string(&object).unwrap().len();
    object.insert("pad".into(), Value::String("x".repeat(len - base)));
    let text = serde_json::to_string(&object).unwrap();
    assert_eq!(text.len(), len);
    text
}

#[test]
fn path_segments_name_calls() {
    for (segment, call) in [
        ("identify", Call::Identify),
        ("track", Call::Track),
        ("page", Call::Page),
        ("screen", Call::Screen),
        ("group", Call::Group),
        ("alias", Call::Alias),
        ("batch", Call::Batch),
        ("import", Call::Batch),
    ] {
        assert_eq!(Call::from_path_segment(segment), Some(call), "{segment}");
    }
    assert_eq!(Call::from_path_segment("delete"), None);
    assert_eq!(Call::from_path_segment("Track"), None);
}

#[test]
fn every_single_call_stores_its_type_and_received_at() {
    for (call, kind) in [
        (Call::Identify, "identify"),
        (Call::Track, "track"),
        (Call::Page, "page"),
        (Call::Screen, "screen"),
        (Call::Group, "group"),
        (Call::Alias, "alias"),
    ] {
        let parsed = single(
            call,
            &json!({"userId": "u1", "event": "Signed Up", "traits": {"a": 1}}),
        );
        let event = only(&parsed);
        assert_eq!(event["type"], kind);
        assert_eq!(event["receivedAt"], AT);
        assert_eq!(event["userId"], "u1");
        assert_eq!(event["traits"], json!({"a": 1}));
    }
}

#[test]
fn the_path_wins_over_the_body_type() {
    let parsed = single(
        Call::Track,
        &json!({"type": "identify", "userId": "u", "event": "E"}),
    );
    let event = only(&parsed);
    assert_eq!(event["type"], "track");
    assert_eq!(
        parsed.ingested.accepted[0].body.matches("\"type\"").count(),
        1
    );
}

#[test]
fn a_matching_body_type_is_spliced_not_rebuilt() {
    let body = r#"{"type":"track", "userId":"u","event":"E"}"#;
    let parsed = parse(Call::Track, body.as_bytes(), AT).unwrap();
    assert_eq!(
        parsed.ingested.accepted[0].body,
        format!(r#"{{"receivedAt":"{AT}",{}"#, &body[1..])
    );
}

#[test]
fn received_at_is_kept_when_sent() {
    let parsed = single(
        Call::Track,
        &json!({"userId": "u", "event": "E", "receivedAt": "then"}),
    );
    assert_eq!(only(&parsed)["receivedAt"], "then");
    let parsed = single(
        Call::Track,
        &json!({"userId": "u", "event": "E", "receivedAt": null}),
    );
    assert_eq!(only(&parsed)["receivedAt"], AT);
}

#[test]
fn basic_auth_carries_the_write_key() {
    let header = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    };
    let basic = |text: &str| header(&format!("Basic {}", STANDARD.encode(text)));
    assert_eq!(
        write_key_from_basic(&basic("wk_123:")).as_deref(),
        Some("wk_123")
    );
    assert_eq!(
        write_key_from_basic(&basic("wk_123")).as_deref(),
        Some("wk_123")
    );
    assert_eq!(
        write_key_from_basic(&basic("wk_123:ignored")).as_deref(),
        Some("wk_123")
    );
    let lower = header(&format!("basic {}", STANDARD.encode("wk:")));
    assert_eq!(write_key_from_basic(&lower).as_deref(), Some("wk"));
    let unpadded = header("Basic d2s6"); // "wk:" has no padding; "wk" is "d2s" unpadded
    assert_eq!(write_key_from_basic(&unpadded).as_deref(), Some("wk"));
    assert_eq!(
        write_key_from_basic(&header("Basic d2s")).as_deref(),
        Some("wk")
    );
    assert_eq!(write_key_from_basic(&basic(":")), None);
    assert_eq!(write_key_from_basic(&header("Bearer wk_123")), None);
    assert_eq!(write_key_from_basic(&header("Basic !!!")), None);
    assert_eq!(write_key_from_basic(&HeaderMap::new()), None);
}

#[test]
fn the_body_write_key_is_returned() {
    let parsed = single(
        Call::Identify,
        &json!({"writeKey": "wk_body", "userId": "u"}),
    );
    assert_eq!(parsed.write_key.as_deref(), Some("wk_body"));
    let parsed = batch(&json!({"writeKey": "wk_batch", "batch": []})).unwrap();
    assert_eq!(parsed.write_key.as_deref(), Some("wk_batch"));
    assert_eq!(
        single(Call::Identify, &json!({"userId": "u"})).write_key,
        None
    );
}

#[test]
fn batch_context_and_integrations_merge_into_items_and_items_win() {
    let parsed = batch(&json!({
        "context": {"ip": "1.1.1.1", "library": {"name": "lib"}},
        "integrations": {"All": false},
        "batch": [
            {"type": "identify", "userId": "u1"},
            {"type": "identify", "userId": "u2", "context": {"ip": "2.2.2.2"}},
            {"type": "identify", "userId": "u3", "context": null, "integrations": {"All": true, "X": false}},
            {"type": "identify", "userId": "u4", "context": "odd"},
        ],
    }))
    .unwrap();
    let events: Vec<_> = parsed.ingested.accepted.iter().map(stored).collect();
    assert_eq!(events.len(), 4);
    assert_eq!(
        events[0]["context"],
        json!({"ip": "1.1.1.1", "library": {"name": "lib"}})
    );
    assert_eq!(events[0]["integrations"], json!({"All": false}));
    assert_eq!(
        events[1]["context"],
        json!({"ip": "2.2.2.2", "library": {"name": "lib"}})
    );
    assert_eq!(
        events[2]["context"],
        json!({"ip": "1.1.1.1", "library": {"name": "lib"}})
    );
    assert_eq!(events[2]["integrations"], json!({"All": true, "X": false}));
    assert_eq!(events[3]["context"], "odd");
    for event in &events {
        assert_eq!(event["receivedAt"], AT);
    }
}

#[test]
fn a_batch_context_of_the_wrong_type_refuses_the_request() {
    let err = batch(&json!({"context": [1], "batch": []})).unwrap_err();
    assert_eq!(err.status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&err), "invalid_json");
}

#[test]
fn batch_sent_at_is_copied_into_items_that_lack_it() {
    let parsed = batch(&json!({
        "sentAt": "2026-11-23T09:59:59Z",
        "batch": [
            {"type": "track", "userId": "u", "event": "A", "timestamp": "2026-11-23T09:00:00Z"},
            {"type": "track", "userId": "u", "event": "B", "sentAt": "own", "originalTimestamp": "orig"},
        ],
    }))
    .unwrap();
    let events: Vec<_> = parsed.ingested.accepted.iter().map(stored).collect();
    assert_eq!(events[0]["sentAt"], "2026-11-23T09:59:59Z");
    assert_eq!(events[0]["timestamp"], "2026-11-23T09:00:00Z");
    assert_eq!(events[1]["sentAt"], "own");
    assert_eq!(events[1]["originalTimestamp"], "orig");
}

#[test]
fn a_single_call_at_the_limit_is_accepted_and_one_byte_more_is_refused() {
    let fields = json!({"userId": "u", "event": "E"});
    let at = padded(&fields, MAX_CALL_BYTES);
    let parsed = parse(Call::Track, at.as_bytes(), AT).unwrap();
    assert_eq!(parsed.ingested.accepted.len(), 1);
    let over = padded(&fields, MAX_CALL_BYTES + 1);
    let err = parse(Call::Track, over.as_bytes(), AT).unwrap_err();
    assert_eq!(err.status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&err), "payload_too_large");
}

#[test]
fn a_batch_at_the_byte_limit_is_accepted_and_one_byte_more_is_refused() {
    let item = json!({"type": "track", "userId": "u", "event": "E", "properties": {"p": "y".repeat(20_000)}});
    let items: Vec<Value> = std::iter::repeat_n(item, 20).collect();
    let fields = json!({"batch": items});
    let at = padded(&fields, MAX_BATCH_BYTES);
    let parsed = parse(Call::Batch, at.as_bytes(), AT).unwrap();
    assert_eq!(parsed.ingested.accepted.len(), 20);
    let over = padded(&fields, MAX_BATCH_BYTES + 1);
    let err = parse(Call::Batch, over.as_bytes(), AT).unwrap_err();
    assert_eq!(code(&err), "payload_too_large");
}

#[test]
fn a_batch_at_the_event_limit_is_accepted_and_one_more_is_refused() {
    let item = json!({"type": "identify", "userId": "u"});
    let at: Vec<Value> = std::iter::repeat_n(item.clone(), MAX_BATCH_EVENTS).collect();
    let parsed = batch(&json!({"batch": at})).unwrap();
    assert_eq!(parsed.ingested.accepted.len(), MAX_BATCH_EVENTS);
    let over: Vec<Value> = std::iter::repeat_n(item, MAX_BATCH_EVENTS + 1).collect();
    let err = batch(&json!({"batch": over})).unwrap_err();
    assert_eq!(err.status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&err), "too_many_events");
}

#[test]
fn an_oversized_item_is_rejected_and_the_others_kept() {
    let fields = json!({"type": "track", "userId": "u", "event": "E"});
    let at = padded(&fields, MAX_CALL_BYTES);
    let over = padded(&fields, MAX_CALL_BYTES + 1);
    let body = format!(r#"{{"batch":[{at},{over},{{"type":"identify","userId":"u"}}]}}"#);
    let parsed = parse(Call::Batch, body.as_bytes(), AT).unwrap();
    assert_eq!(parsed.ingested.accepted.len(), 2);
    let rejected = &parsed.ingested.rejected;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].position, 2);
    assert!(
        rejected[0]
            .reason
            .starts_with("event 2 of the batch is 32769 bytes"),
        "{}",
        rejected[0].reason
    );
    assert!(rejected[0].text.len() <= crate::ingest::MAX_REJECTED_TEXT_BYTES);
    assert!(rejected[0].text.ends_with("bytes in all]"));
}

#[test]
fn bad_items_are_rejected_one_by_one_with_reasons() {
    let parsed = batch(&json!({"batch": [
        {"type": "track", "userId": "u", "event": "Good"},
        {"type": "track", "event": "No ids"},
        {"type": "track", "userId": "u"},
        {"type": "explode", "userId": "u"},
        {"type": "identify", "userId": "u", "messageId": "m".repeat(101)},
        "not an object",
        {"type": "delete", "anonymousId": "a"},
        {"type": "identify", "userId": {"nested": true}},
        {"type": "track", "userId": "u", "event": ""},
        {"type": "identify", "userId": "u", "messageId": 12},
        {"type": "delete", "userId": "gone"},
        {"type": "identify", "userId": 42},
        {"type": "identify", "userId": "", "anonymousId": "anon"},
    ]}))
    .unwrap();
    let accepted: Vec<_> = parsed.ingested.accepted.iter().map(stored).collect();
    assert_eq!(accepted.len(), 4);
    assert_eq!(accepted[1]["type"], "delete");
    assert_eq!(accepted[2]["userId"], 42);
    let reasons: Vec<(usize, &str)> = parsed
        .ingested
        .rejected
        .iter()
        .map(|r| (r.position, r.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (2, "event 2 of the batch has neither userId nor anonymousId"),
            (3, "event 3 of the batch is a track without `event`"),
            (
                4,
                "event 4 of the batch has type `explode`, which is not one of identify, track, page, screen, group, alias, delete"
            ),
            (
                5,
                "event 5 of the batch has a `messageId` over 100 characters"
            ),
            (6, "event 6 of the batch is not a JSON object"),
            (7, "event 7 of the batch is a delete without `userId`"),
            (
                8,
                "event 8 of the batch has a `userId` that is neither a string nor a number"
            ),
            (9, "event 9 of the batch is a track without `event`"),
            (
                10,
                "event 10 of the batch has a `messageId` that is not a string"
            ),
        ]
    );
    assert_eq!(parsed.ingested.rejected[4].text, "\"not an object\"");
}

#[test]
fn a_single_call_without_ids_is_rejected_with_a_200() {
    let parsed = single(Call::Track, &json!({"event": "E"}));
    assert!(parsed.ingested.accepted.is_empty());
    assert_eq!(parsed.ingested.rejected[0].position, 1);
    assert_eq!(
        parsed.ingested.rejected[0].reason,
        "the event has neither userId nor anonymousId"
    );
}

#[test]
fn a_batch_item_without_type_refuses_the_request() {
    let err = batch(&json!({"batch": [{"type": "identify", "userId": "u"}, {"userId": "u"}]}))
        .unwrap_err();
    assert_eq!(err.status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&err), "missing_type");
    assert_eq!(err.body["message"], "event 2 of the batch has no `type`");
}

#[test]
fn action_is_read_as_the_old_name_of_type() {
    let parsed = batch(&json!({"batch": [
        {"action": "track", "userId": "u", "event": "E"},
        {"action": "identify", "type": null, "userId": "u"},
        {"action": "identify", "type": "page", "userId": "u"},
    ]}))
    .unwrap();
    let kinds: Vec<Value> = parsed
        .ingested
        .accepted
        .iter()
        .map(|a| stored(a)["type"].clone())
        .collect();
    assert_eq!(kinds, [json!("track"), json!("identify"), json!("page")]);
}

#[test]
fn message_id_is_the_dedupe_key() {
    let id = "m".repeat(MAX_MESSAGE_ID_CHARS);
    let parsed = single(Call::Identify, &json!({"userId": "u", "messageId": id}));
    assert_eq!(
        parsed.ingested.accepted[0].dedupe.as_deref(),
        Some(id.as_str())
    );
    let parsed = single(Call::Identify, &json!({"userId": "u"}));
    assert_eq!(parsed.ingested.accepted[0].dedupe, None);
    let parsed = single(
        Call::Identify,
        &json!({"userId": "u", "messageId": "é".repeat(100)}),
    );
    assert_eq!(
        parsed.ingested.accepted.len(),
        1,
        "characters, not bytes, are counted"
    );
}

#[test]
fn event_data_cannot_inject_fields() {
    let evil = r#"","injected":"x"#;
    let parsed = batch(&json!({
        "sentAt": evil,
        "context": {"ip": evil},
        "batch": [
            {"type": "track", "userId": evil, "event": evil, "messageId": evil},
            {"type": "track", "userId": "u", "event": "E", "context": {"page": evil}},
        ],
    }))
    .unwrap();
    for accepted in &parsed.ingested.accepted {
        let event = stored(accepted);
        assert!(!event.contains_key("injected"), "{}", accepted.body);
        assert_eq!(event["sentAt"], evil);
    }
    let parsed = parse(Call::Track, br#"{"userId":"u","event":"E"}"#, evil).unwrap();
    let event = only(&parsed);
    assert!(!event.contains_key("injected"));
    assert_eq!(event["receivedAt"], evil);
}

#[test]
fn invalid_bodies_refuse_the_request() {
    for (call, body, want) in [
        (Call::Track, &b"{\"userId\":"[..], "invalid_json"),
        (Call::Track, b"[]", "invalid_json"),
        (Call::Track, b"\xff\xfe", "invalid_json"),
        (
            Call::Track,
            br#"{"userId":"u","userId":"v"}"#,
            "invalid_json",
        ),
        (Call::Batch, br#"{"batch": {}}"#, "invalid_json"),
        (Call::Batch, br#"{"batch": []} trailing"#, "invalid_json"),
        (Call::Batch, br#"[{"type":"track"}]"#, "invalid_json"),
        (Call::Batch, br#"{"events": []}"#, "missing_batch"),
    ] {
        let err = parse(call, body, AT).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(code(&err), want, "{}", String::from_utf8_lossy(body));
        assert!(err.body["message"].is_string());
    }
}

#[test]
fn a_batch_item_repeating_a_checked_field_is_rejected() {
    let body = br#"{"batch":[{"type":"identify","userId":"u","userId":"v"},{"type":"identify","userId":"w"}]}"#;
    let parsed = parse(Call::Batch, body, AT).unwrap();
    assert_eq!(parsed.ingested.accepted.len(), 1);
    assert_eq!(parsed.ingested.rejected[0].position, 1);
    assert!(
        parsed.ingested.rejected[0]
            .reason
            .contains("duplicate field `userId`")
    );
}

#[test]
fn responses_have_segment_shapes() {
    assert_eq!(accepted_body(), json!({"success": true}));
    let err = unauthorized();
    assert_eq!(err.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&err), "unauthorized");
}
