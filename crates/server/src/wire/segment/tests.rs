use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Map, Value, json};

use super::*;
use crate::wire::padded;

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
    assert!(rejected[0].text.len() <= crate::wire::outcome::MAX_REJECTED_TEXT_BYTES);
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

/// Valid JSON, as Segment reads it: the event is refused (and kept), not the request.
#[test]
fn a_single_call_repeating_a_checked_field_is_rejected() {
    let parsed = parse(
        Call::Track,
        br#"{"userId":"u","userId":"v","event":"E","writeKey":"k"}"#,
        AT,
    )
    .unwrap();
    assert!(parsed.ingested.accepted.is_empty());
    let reason = &parsed.ingested.rejected[0].reason;
    assert!(reason.contains("duplicate field `userId`"), "{reason}");
    assert_eq!(
        parsed.write_key.as_deref(),
        Some("k"),
        "the request still authenticates"
    );
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

/// Every accepted event must read as a delivery worker reads it.
fn worker_reads(parsed: &Parsed) {
    for accepted in &parsed.ingested.accepted {
        serde_json::from_str::<Value>(&accepted.body)
            .unwrap_or_else(|e| panic!("a worker cannot read {}: {e}", accepted.body));
    }
}

#[test]
fn a_path_type_that_differs_from_the_body_never_panics_on_what_the_probe_skipped() {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    for body in [
        r#"{"type":"identify","event":"e","userId":"u","properties":{"x":1e400}}"#.to_owned(),
        format!(r#"{{"userId":"u","event":"e","receivedAt":null,"properties":{{"d":{deep}}}}}"#),
        r#"{"type":"identify","event":"e","userId":"u","properties":{"s":"\ud800"}}"#.to_owned(),
    ] {
        let parsed = parse(Call::Track, body.as_bytes(), AT).expect("a 200 either way");
        worker_reads(&parsed);
        let accepted = parsed.ingested.accepted.len();
        let rejected = parsed.ingested.rejected.len();
        assert_eq!(accepted + rejected, 1, "{body}");
    }
    // 1e400 is a number: kept exactly; the others cannot be read, and say why.
    let kept = parse(
        Call::Track,
        br#"{"type":"identify","event":"e","userId":"u","properties":{"x":1e400}}"#,
        AT,
    )
    .unwrap();
    assert_eq!(only(&kept)["properties"]["x"].to_string(), "1e+400");
    let surrogate = parse(
        Call::Track,
        br#"{"event":"e","userId":"u","properties":{"s":"\ud800"}}"#,
        AT,
    )
    .unwrap();
    let reason = &surrogate.ingested.rejected[0].reason;
    assert!(reason.starts_with("the event cannot be read: "), "{reason}");
}

#[test]
fn a_batch_with_an_unreadable_item_stores_the_others() {
    let deep = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
    let body = format!(
        r#"{{"context":{{"ip":"1e400","n":1e400}},"batch":[
            {{"type":"track","event":"ok","userId":"u1","context":{{"own":1}}}},
            {{"type":"track","event":"deep","userId":"u2","receivedAt":null,"properties":{deep}}},
            {{"type":"track","event":"lone","userId":"u3","properties":{{"s":"\ud800"}}}},
            {{"type":"track","event":"ok2","userId":"u4"}}
        ]}}"#
    );
    let parsed = parse(Call::Batch, body.as_bytes(), AT).expect("the batch is accepted");
    worker_reads(&parsed);
    let kept: Vec<String> = parsed
        .ingested
        .accepted
        .iter()
        .map(|a| stored(a)["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kept, ["ok", "ok2"]);
    let positions: Vec<usize> = parsed
        .ingested
        .rejected
        .iter()
        .map(|r| r.position)
        .collect();
    assert_eq!(positions, [2, 3]);
    // The item's own context merged with the batch's, whose number keeps its digits.
    let first = stored(&parsed.ingested.accepted[0]);
    assert_eq!(first["context"]["n"].to_string(), "1e+400");
    assert_eq!(first["context"]["own"], 1);
}

#[test]
fn an_unreadable_batch_context_refuses_the_request() {
    let body = r#"{"context":{"s":"\udc00"},"batch":[{"type":"track","event":"e","userId":"u"}]}"#;
    let err = parse(Call::Batch, body.as_bytes(), AT).unwrap_err();
    assert_eq!(code(&err), "invalid_json");
}

#[test]
fn numbers_are_stored_with_every_digit() {
    let body = br#"{"event":"Order","userId":"u","properties":{"cart_value":123456789012345678901234567890,"p":0.1000000000000000055511151231257827}}"#;
    let parsed = parse(Call::Track, body, AT).unwrap();
    let text = &parsed.ingested.accepted[0].body;
    assert!(text.contains("123456789012345678901234567890"), "{text}");
    assert!(
        text.contains("0.1000000000000000055511151231257827"),
        "{text}"
    );
}

#[test]
fn a_shared_context_cannot_multiply_what_a_request_stores() {
    // 2,400 page calls of ~50 bytes and a 40 KB context: each event alone is over the limit
    // once the context is merged in.
    let page = json!({"type": "page", "userId": "u"});
    let context = json!({"pad": "x".repeat(40 * 1024)});
    let body = json!({"context": context, "batch": vec![page.clone(); 2_400]}).to_string();
    let parsed = parse(Call::Batch, body.as_bytes(), AT).unwrap();
    assert!(parsed.ingested.accepted.is_empty());
    assert_eq!(parsed.ingested.rejected.len(), 2_400);
    assert!(
        parsed.ingested.rejected[0]
            .reason
            .contains("once the batch's `context` and `integrations` are merged in"),
        "{}",
        parsed.ingested.rejected[0].reason
    );
    // A 10 KB context on 2,400 events fits each event but not the batch.
    let context = json!({"pad": "x".repeat(10 * 1024)});
    let body = json!({"context": context, "batch": vec![page.clone(); 2_400]}).to_string();
    let err = parse(Call::Batch, body.as_bytes(), AT).unwrap_err();
    assert_eq!(code(&err), "payload_too_large");
    // Whatever is accepted stays within a small multiple of the request.
    for (pad, events) in [(100, 2_400), (1_000, 400), (30_000, 15), (200, 2_000)] {
        let context = json!({"pad": "x".repeat(pad)});
        let body = json!({"context": context, "batch": vec![page.clone(); events]}).to_string();
        if let Ok(parsed) = parse(Call::Batch, body.as_bytes(), AT) {
            let stored: usize = parsed.ingested.accepted.iter().map(|a| a.body.len()).sum();
            let rejected: usize = parsed.ingested.rejected.iter().map(|r| r.text.len()).sum();
            assert!(
                stored + rejected <= (MAX_STORED_FACTOR + 1) * body.len(),
                "a {}-byte request stored {stored} bytes",
                body.len()
            );
        }
    }
}

#[test]
fn a_write_key_in_the_body_is_not_stored() {
    for (call, body) in [
        (
            Call::Track,
            json!({"writeKey": "wk-1", "event": "e", "userId": "u", "properties": {"a": 1}}),
        ),
        (
            Call::Batch,
            json!({"writeKey": "wk-1", "batch": [{"type": "track", "event": "e", "userId": "u", "writeKey": "wk-2"}]}),
        ),
    ] {
        let parsed = parse(call, body.to_string().as_bytes(), AT).unwrap();
        assert_eq!(parsed.write_key.as_deref(), Some("wk-1"));
        let text = &parsed.ingested.accepted[0].body;
        assert!(
            !text.contains("writeKey") && !text.contains("wk-"),
            "{text}"
        );
        assert_eq!(stored(&parsed.ingested.accepted[0])["userId"], "u");
    }
}

/// A refused event is kept as sent but for its `writeKey`, whatever refused it, alone or in a
/// batch.
#[test]
fn a_refused_event_keeps_no_write_key() {
    let singles = [
        (Call::Track, r#"{"writeKey":"wk-1","userId":"u"}"#),
        (Call::Identify, r#" {"userId":[],"writeKey":"wk-1"} "#),
        (
            Call::Track,
            r#"{"userId":"u","event":"e","s":"\ud800","write\u004bey":"wk-1"}"#,
        ),
    ];
    for (call, body) in singles {
        let parsed = parse(call, body.as_bytes(), AT).unwrap();
        assert_eq!(parsed.write_key.as_deref(), Some("wk-1"), "{body}");
        assert!(parsed.ingested.accepted.is_empty(), "{body}");
        let text = &parsed.ingested.rejected[0].text;
        assert!(!text.contains("wk-"), "{body}: {text}");
        assert!(text.contains(r#""userId":"#), "{body}: {text}");
    }
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let items = [
        r#"{"writeKey":"wk-2","type":"launch","userId":"u"}"#.to_owned(),
        r#"{"type":"identify","writeKey":"wk-2","userId":"u","writeKey":"wk-3"}"#.to_owned(),
        format!(
            r#"{{"writeKey":"wk-2","type":"page","userId":"u","pad":"{}"}}"#,
            "x".repeat(MAX_CALL_BYTES)
        ),
        format!(r#"{{"writeKey":"wk-2","type":"track","userId":"u","deep":{deep}}}"#),
    ];
    let body = format!(
        r#"{{"writeKey":"wk-1","batch":[{{"type":"identify","userId":"u","writeKey":"wk-2"}},{}]}}"#,
        items.join(",")
    );
    let parsed = parse(Call::Batch, body.as_bytes(), AT).unwrap();
    assert_eq!(parsed.ingested.accepted.len(), 1);
    assert_eq!(parsed.ingested.rejected.len(), items.len());
    for rejected in &parsed.ingested.rejected {
        assert!(
            !rejected.text.contains("writeKey") && !rejected.text.contains("wk-"),
            "{rejected:?}"
        );
        assert!(rejected.text.contains(r#""userId":"u""#), "{rejected:?}");
    }
    // The rest of a refused event is kept as written.
    assert_eq!(
        parsed.ingested.rejected[0].text,
        r#"{"type":"launch","userId":"u"}"#
    );
    // An item that is not an object has no field to drop.
    let parsed = parse(Call::Batch, br#"{"batch":[["writeKey"]]}"#, AT).unwrap();
    assert_eq!(parsed.ingested.rejected[0].text, r#"["writeKey"]"#);
}

/// The probe checks what a worker reads in the same pass: at every depth around the limit, in a
/// probed field (`context`), another field (`properties`) and a batch's shared `context`, an
/// event is accepted exactly when a worker can read it as stored.
#[test]
fn an_event_is_accepted_exactly_when_a_worker_reads_it() {
    let nested = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
    for levels in 122..=128 {
        for field in ["context", "properties"] {
            let event = format!(
                r#"{{"type":"track","event":"e","userId":"u","{field}":{{"d":{}}}}}"#,
                nested(levels)
            );
            let readable = serde_json::from_str::<Value>(&event).is_ok();
            let single = parse(Call::Track, event.as_bytes(), AT).unwrap();
            worker_reads(&single);
            assert_eq!(
                single.ingested.accepted.len() == 1,
                readable,
                "{field} {levels}"
            );
            let batch = parse(
                Call::Batch,
                format!(r#"{{"batch":[{event}]}}"#).as_bytes(),
                AT,
            )
            .unwrap();
            worker_reads(&batch);
            assert_eq!(
                batch.ingested.accepted.len() == 1,
                readable,
                "{field} {levels}"
            );
        }
        let shared = format!(
            r#"{{"batch":[{{"type":"track","event":"e","userId":"u"}}],"context":{{"d":{}}}}}"#,
            nested(levels)
        );
        let stored = format!(
            r#"{{"type":"track","event":"e","userId":"u","context":{{"d":{}}}}}"#,
            nested(levels)
        );
        let readable = serde_json::from_str::<Value>(&stored).is_ok();
        match parse(Call::Batch, shared.as_bytes(), AT) {
            Ok(parsed) => {
                assert!(readable, "batch context {levels}");
                worker_reads(&parsed);
            }
            Err(err) => {
                assert!(!readable, "batch context {levels}");
                assert_eq!(code(&err), "invalid_json");
            }
        }
    }
}
