use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use super::*;

const SECRET: &str = "s3cret-shared-with-extole";

fn stored(accepted: &Accepted) -> Map<String, Value> {
    match serde_json::from_str(&accepted.body) {
        Ok(Value::Object(map)) => map,
        other => panic!("stored body is not an object: {other:?}"),
    }
}

fn headers(name: &str, value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
        HeaderValue::from_str(value).unwrap(),
    );
    headers
}

fn signature(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let mut hex = String::from("sha256=");
    for byte in mac.finalize().into_bytes() {
        write!(hex, "{byte:02x}").unwrap();
    }
    hex
}

#[test]
fn a_single_event_is_stored_as_sent() {
    let body = br#"{"event_name": "Shared", "event_time": "2026-11-20T10:02:00Z", "external_id": "advocate-1", "event_id": "ev-1"}"#;
    let ingested = parse(body).unwrap();
    assert!(ingested.rejected.is_empty());
    assert_eq!(ingested.accepted.len(), 1);
    assert_eq!(ingested.accepted[0].body.as_bytes(), body);
    assert_eq!(ingested.accepted[0].dedupe.as_deref(), Some("ev-1"));
}

#[test]
fn an_array_keeps_good_items_and_rejects_the_others_by_position() {
    let body = json!([
        {"event_name": "Created Share Link", "email": "ann@example.com", "id": 17},
        {"type": "delete", "external_id": "advocate-1"},
        {"event_name": "", "email": "ann@example.com"},
        ["not", "an", "object"],
        {"event_name": 3},
        {"email": "ann@example.com", "type": "update"},
        {"event_name": "Shared", "event_id": "ev-9", "id": "other"},
    ]);
    let ingested = parse(body.to_string().as_bytes()).unwrap();
    let accepted: Vec<_> = ingested.accepted.iter().map(stored).collect();
    assert_eq!(accepted.len(), 3);
    assert_eq!(accepted[1]["type"], "delete");
    let keys: Vec<_> = ingested
        .accepted
        .iter()
        .map(|a| a.dedupe.as_deref())
        .collect();
    assert_eq!(keys, [Some("17"), None, Some("ev-9")]);
    let rejected: Vec<(usize, &str)> = ingested
        .rejected
        .iter()
        .map(|r| (r.position, r.reason.as_str()))
        .collect();
    let unnamed = "has no `event_name` and is not a deletion (`\"type\": \"delete\"`)";
    assert_eq!(
        rejected,
        [
            (3, format!("item 3 {unnamed}").as_str()),
            (4, "item 4 is not a JSON object"),
            (5, format!("item 5 {unnamed}").as_str()),
            (6, format!("item 6 {unnamed}").as_str()),
        ]
    );
    assert_eq!(ingested.rejected[1].text, r#"["not","an","object"]"#);
    assert_eq!(
        accepted_body(&ingested),
        json!({"accepted": 3, "rejected": [
            {"position": 3, "reason": format!("item 3 {unnamed}")},
            {"position": 4, "reason": "item 4 is not a JSON object"},
            {"position": 5, "reason": format!("item 5 {unnamed}")},
            {"position": 6, "reason": format!("item 6 {unnamed}")},
        ]})
    );
}

#[test]
fn surrounding_whitespace_is_no_problem() {
    let ingested = parse(b"\n  {\"event_name\": \"Shared\"}\n").unwrap();
    assert_eq!(ingested.accepted.len(), 1);
    let ingested =
        parse(b" [ {\"event_name\": \"Shared\"} ,\n {\"event_name\": \"Subscribed\"} ] ").unwrap();
    assert_eq!(ingested.accepted.len(), 2);
    assert!(ingested.accepted.iter().all(|a| !stored(a).is_empty()));
}

#[test]
fn invalid_json_is_a_400() {
    for body in [&b"{\"event_name\":"[..], b"", b"[{}", b"{} {}"] {
        let err = parse(body).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.body["error"]
                .as_str()
                .unwrap()
                .starts_with("the body is not valid JSON")
        );
    }
}

/// An array body of exactly `len` bytes holding `count` events, the last one padded.
fn body_of(len: usize, count: usize) -> String {
    let mut items = vec![r#"{"event_name":"E"}"#.to_owned(); count - 1];
    items.push(r#"{"event_name":"E","pad":""}"#.to_owned());
    let fixed = format!("[{}]", items.join(",")).len();
    let pad = "x".repeat(len - fixed);
    *items.last_mut().unwrap() = format!(r#"{{"event_name":"E","pad":"{pad}"}}"#);
    let body = format!("[{}]", items.join(","));
    assert_eq!(body.len(), len);
    body
}

#[test]
fn a_body_at_the_byte_limit_is_accepted_and_one_byte_more_refused() {
    let at = body_of(MAX_BODY_BYTES, 1);
    assert_eq!(parse(at.as_bytes()).unwrap().accepted.len(), 1);
    let over = body_of(MAX_BODY_BYTES + 1, 1);
    let err = parse(over.as_bytes()).unwrap_err();
    assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(err.body["error"].is_string());
}

#[test]
fn a_body_at_the_item_limit_is_accepted_and_one_item_more_refused() {
    let at = body_of(40_000, MAX_ITEMS);
    assert_eq!(parse(at.as_bytes()).unwrap().accepted.len(), MAX_ITEMS);
    let over = body_of(40_000, MAX_ITEMS + 1);
    assert_eq!(
        parse(over.as_bytes()).unwrap_err().status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[test]
fn a_bearer_token_authenticates_only_when_it_is_the_secret() {
    let body = b"{}";
    assert!(authenticate(
        &headers("authorization", &format!("Bearer {SECRET}")),
        body,
        SECRET
    ));
    assert!(authenticate(
        &headers("authorization", &format!("bearer {SECRET}")),
        body,
        SECRET
    ));
    assert!(!authenticate(
        &headers("authorization", "Bearer wrong"),
        body,
        SECRET
    ));
    assert!(!authenticate(
        &headers("authorization", &format!("Bearer {SECRET}x")),
        body,
        SECRET
    ));
    assert!(!authenticate(
        &headers("authorization", &format!("Basic {SECRET}")),
        body,
        SECRET
    ));
    assert!(!authenticate(&HeaderMap::new(), body, SECRET));
}

#[test]
fn a_signature_authenticates_only_the_body_it_signs() {
    let body = br#"{"event_name":"Shared"}"#;
    let good = signature(body, SECRET);
    assert!(authenticate(
        &headers(SIGNATURE_HEADER, &good),
        body,
        SECRET
    ));
    assert!(authenticate(
        &headers(
            "X-Extole-Signature",
            &good.to_uppercase().replace("SHA256=", "sha256=")
        ),
        body,
        SECRET
    ));
    assert!(!authenticate(
        &headers(SIGNATURE_HEADER, &good),
        br#"{"event_name":"Other"}"#,
        SECRET
    ));
    assert!(!authenticate(
        &headers(SIGNATURE_HEADER, &signature(body, "wrong")),
        body,
        SECRET
    ));
    assert!(!authenticate(
        &headers(SIGNATURE_HEADER, good.trim_start_matches("sha256=")),
        body,
        SECRET
    ));
    assert!(!authenticate(
        &headers(SIGNATURE_HEADER, "sha256=zz"),
        body,
        SECRET
    ));
    assert!(!authenticate(
        &headers(SIGNATURE_HEADER, "sha256=abc"),
        body,
        SECRET
    ));
}

#[test]
fn an_empty_secret_authenticates_nothing() {
    let body = b"{}";
    assert!(!authenticate(
        &headers("authorization", "Bearer "),
        body,
        ""
    ));
    assert!(!authenticate(
        &headers(SIGNATURE_HEADER, &signature(body, "")),
        body,
        ""
    ));
}

#[test]
fn unauthorized_is_a_401_with_an_error() {
    let err = unauthorized();
    assert_eq!(err.status, StatusCode::UNAUTHORIZED);
    assert!(err.body["error"].is_string());
}

#[test]
fn an_item_a_worker_could_not_read_is_rejected_and_the_others_kept() {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let body = format!(
        r#"[{{"event_name":"a","data":{deep}}},{{"event_name":"b","s":"\ud800"}},{{"event_name":"c","n":1e400}}]"#
    );
    let ingested = parse(body.as_bytes()).unwrap();
    let kept: Vec<String> = ingested
        .accepted
        .iter()
        .map(|a| stored(a)["event_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kept, ["c"]);
    let reasons: Vec<&str> = ingested
        .rejected
        .iter()
        .map(|r| r.reason.as_str())
        .collect();
    assert!(
        reasons[0].starts_with("item 1 cannot be read: "),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("item 2 cannot be read: "),
        "{reasons:?}"
    );
}
