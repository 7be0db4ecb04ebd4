use http::StatusCode;
use serde_json::{Map, Value, json};

use super::*;
use crate::wire::padded;

fn request(events: &Value) -> Value {
    json!({"api_key": "key_1234", "events": events})
}

fn parse_json(body: &Value) -> Result<AmplitudeParsed, WireError> {
    parse(body.to_string().as_bytes())
}

#[test]
fn good_events_are_stored_exactly_as_sent() {
    let body = r#"{"api_key":"key_1234","events":[{"event_type":"Signed Up", "user_id":"user-1","time":1732356000000,"event_properties":{"plan":"pro"}},{"event_type":"Viewed","device_id":"device-1"}]}"#;
    let parsed = parse(body.as_bytes()).unwrap();
    assert_eq!(parsed.api_key, "key_1234");
    assert_eq!(parsed.payload_size_bytes, body.len());
    assert!(parsed.ingested.rejected.is_empty());
    let bodies: Vec<&str> = parsed
        .ingested
        .accepted
        .iter()
        .map(|a| a.body.as_str())
        .collect();
    assert_eq!(
        bodies,
        [
            r#"{"event_type":"Signed Up", "user_id":"user-1","time":1732356000000,"event_properties":{"plan":"pro"}}"#,
            r#"{"event_type":"Viewed","device_id":"device-1"}"#,
        ]
    );
    for accepted in &parsed.ingested.accepted {
        let event: Map<String, Value> = serde_json::from_str(&accepted.body).unwrap();
        assert!(event.contains_key("event_type"));
    }
}

#[test]
fn one_bad_event_refuses_the_request_with_exact_index_maps() {
    let err = parse_json(&request(&json!([
        {"event_type": "ok", "user_id": "user-1"},
        {"user_id": "user-1"},
        {"event_type": "no ids"},
        {"event_type": "bad time", "device_id": "device-1", "time": "2026-11-23T10:00:00Z"},
        {"event_type": "", "user_id": "null"},
        {"event_type": 7, "device_id": "abc", "time": 1.5},
        {"event_type": "ok", "device_id": "device-1", "user_id": "unknown", "insert_id": 9},
    ])))
    .unwrap_err();
    assert_eq!(err.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        err.body,
        json!({
            "code": 400,
            "error": "Request missing required field",
            "events_with_missing_fields": {
                "event_type": [1, 4],
                "device_id": [2],
                "user_id": [2],
            },
            "events_with_invalid_fields": {
                "event_type": [5],
                "user_id": [4, 6],
                "device_id": [5],
                "time": [3, 5],
                "insert_id": [6],
            },
        })
    );
}

#[test]
fn only_invalid_fields_say_so() {
    let err = parse_json(&request(&json!([{"event_type": "e", "user_id": "abc"}]))).unwrap_err();
    assert_eq!(
        err.body,
        json!({
            "code": 400,
            "error": "Request has events with invalid fields",
            "events_with_invalid_fields": {"user_id": [0]},
        })
    );
}

#[test]
fn placeholder_ids_are_invalid_whatever_their_case_or_length_setting() {
    for bad in [
        "anonymous",
        "nil",
        "None",
        "NULL",
        "n/a",
        "na",
        "undefined",
        "Unknown",
        "",
        "00000000-0000-0000-0000-000000000000",
        "{}",
        "LMY47D",
        "0",
        "-1",
    ] {
        let body = json!({
            "api_key": "key_1234",
            "events": [{"event_type": "e", "device_id": bad}],
            "options": {"min_id_length": 1},
        });
        let err = parse_json(&body).unwrap_err();
        assert_eq!(
            err.body["events_with_invalid_fields"],
            json!({"device_id": [0]}),
            "{bad:?}"
        );
    }
}

#[test]
fn ids_must_be_long_enough_unless_min_id_length_says_otherwise() {
    let short = json!([{"event_type": "e", "user_id": "abcd"}]);
    assert!(parse_json(&request(&short)).is_err());
    let five = json!([{"event_type": "e", "user_id": "abcde"}]);
    assert!(parse_json(&request(&five)).is_ok());
    let body = json!({"api_key": "key_1234", "events": short, "options": {"min_id_length": 4}});
    assert_eq!(parse_json(&body).unwrap().ingested.accepted.len(), 1);
    let body = json!({"api_key": "key_1234", "events": [{"event_type": "e", "user_id": "ab"}], "options": {"min_id_length": 3}});
    assert!(parse_json(&body).is_err());
    let numeric = json!([{"event_type": "e", "user_id": 123_456}]);
    assert_eq!(
        parse_json(&request(&numeric)).unwrap_err().body["events_with_invalid_fields"],
        json!({"user_id": [0]})
    );
}

#[test]
fn time_must_be_integer_epoch_milliseconds() {
    let ok = json!([{"event_type": "e", "user_id": "user-1", "time": 1_732_356_000_000_i64}, {"event_type": "e", "user_id": "user-1", "time": null}]);
    assert_eq!(
        parse_json(&request(&ok)).unwrap().ingested.accepted.len(),
        2
    );
    let bad = json!([{"event_type": "e", "user_id": "user-1", "time": "1732356000000"}]);
    assert_eq!(
        parse_json(&request(&bad)).unwrap_err().body["events_with_invalid_fields"],
        json!({"time": [0]})
    );
}

#[test]
fn insert_id_dedupes_within_its_device_or_user() {
    let parsed = parse_json(&request(&json!([
        {"event_type": "e", "device_id": "device-1", "user_id": "user-1", "insert_id": "i-1"},
        {"event_type": "e", "user_id": "user:1", "insert_id": "i-1"},
        {"event_type": "e", "user_id": "user-1"},
    ])))
    .unwrap();
    let keys: Vec<Option<&str>> = parsed
        .ingested
        .accepted
        .iter()
        .map(|a| a.dedupe.as_deref())
        .collect();
    assert_eq!(
        keys,
        [
            Some("device:8:device-1:i-1"),
            Some("user:6:user:1:i-1"),
            None
        ]
    );
}

#[test]
fn a_missing_api_key_or_events_names_the_field() {
    for (body, field) in [
        (
            json!({"events": [{"event_type": "e", "user_id": "user-1"}]}),
            "api_key",
        ),
        (
            json!({"api_key": "", "events": [{"event_type": "e", "user_id": "user-1"}]}),
            "api_key",
        ),
        (json!({"api_key": "key_1234"}), "events"),
        (json!({"api_key": "key_1234", "events": []}), "events"),
        (json!({"api_key": "key_1234", "events": null}), "events"),
    ] {
        let err = parse_json(&body).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            err.body,
            json!({"code": 400, "error": "Request missing required field", "missing_field": field})
        );
    }
}

#[test]
fn invalid_json_is_a_400() {
    for body in [
        &b"{\"api_key\":"[..],
        b"[]",
        b"\"text\"",
        br#"{"api_key":"key_1234","events":{}}"#,
        br#"{"api_key":"key_1234","events":["not an event"]}"#,
        br#"{"api_key":"key_1234","events":[{"event_type":"e","user_id":"user-1","user_id":"user-2"}]}"#,
    ] {
        let err = parse(body).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.body, json!({"code": 400, "error": "Invalid JSON request body"}));
    }
}

#[test]
fn a_body_just_under_the_byte_limit_is_accepted_and_at_the_limit_refused() {
    let fields = request(&json!([{"event_type": "e", "user_id": "user-1"}]));
    let under = padded(&fields, PAYLOAD_LIMIT_BYTES - 1);
    assert!(parse(under.as_bytes()).is_ok());
    let at = padded(&fields, PAYLOAD_LIMIT_BYTES);
    let err = parse(at.as_bytes()).unwrap_err();
    assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(err.body, json!({"code": 413, "error": "Payload too large"}));
}

#[test]
fn one_event_under_the_event_limit_is_accepted_and_the_limit_refused() {
    let event = json!({"event_type": "e", "user_id": "user-1"});
    let under: Vec<Value> = std::iter::repeat_n(event.clone(), EVENTS_LIMIT - 1).collect();
    assert_eq!(
        parse_json(&request(&json!(under)))
            .unwrap()
            .ingested
            .accepted
            .len(),
        EVENTS_LIMIT - 1
    );
    let at: Vec<Value> = std::iter::repeat_n(event, EVENTS_LIMIT).collect();
    let err = parse_json(&request(&json!(at))).unwrap_err();
    assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn responses_have_amplitude_shapes() {
    assert_eq!(
        accepted_body(2, 180, 1_732_356_000_123),
        json!({"code": 200, "events_ingested": 2, "payload_size_bytes": 180, "server_upload_time": 1_732_356_000_123_i64})
    );
    let err = invalid_api_key();
    assert_eq!(err.status, StatusCode::BAD_REQUEST);
    assert_eq!(err.body["code"], 400);
    assert!(
        err.body["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid API key")
    );
}

#[test]
fn an_event_a_worker_could_not_read_refuses_the_request_and_numbers_keep_their_digits() {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    for event in [
        format!(r#"{{"event_type":"e","user_id":"user-1","event_properties":{{"d":{deep}}}}}"#),
        r#"{"event_type":"e","user_id":"user-1","event_properties":{"s":"\ud800"}}"#.to_owned(),
    ] {
        let body = format!(r#"{{"api_key":"k","events":[{event}]}}"#);
        let err = parse(body.as_bytes()).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST, "{event}");
    }
    let body = r#"{"api_key":"k","events":[{"event_type":"e","user_id":"user-1","revenue":123456789012345678901234567890,"event_properties":{"x":1e400}}]}"#;
    let parsed = parse(body.as_bytes()).unwrap();
    let text = &parsed.ingested.accepted[0].body;
    assert!(text.contains("123456789012345678901234567890"), "{text}");
    serde_json::from_str::<Value>(text).expect("a worker reads it");
}
