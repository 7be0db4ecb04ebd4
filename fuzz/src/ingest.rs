//! The ingest targets: the Segment, Amplitude and Extole wire formats with arbitrary bodies and
//! headers, and the promise ingest makes to delivery workers: every accepted event's stored text
//! parses as a `serde_json::Value` (an object), and a batch never stores more than
//! [`segment::MAX_STORED_FACTOR`] times its request's size.

use std::collections::BTreeMap;

use ferry_server::wire::{
    Ingested, MAX_REJECTED_TEXT_BYTES, WireError, amplitude, extole, segment,
};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::Sha256;

/// The server time the targets give `segment::parse`.
pub const RECEIVED_AT: &str = "2026-11-28T09:00:00.000Z";

/// The Tracking API calls, in the order byte 0 of a Segment input picks them.
pub const CALLS: [segment::Call; 7] = [
    segment::Call::Identify,
    segment::Call::Track,
    segment::Call::Page,
    segment::Call::Screen,
    segment::Call::Group,
    segment::Call::Alias,
    segment::Call::Batch,
];

/// The secret the Extole target's source shares.
pub const EXTOLE_SECRET: &str = "fuzz-extole-secret";

/// Splits off the first line (without its `\n`); the whole input when there is none.
fn first_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// A header map holding `name: value` when `value` is non-empty and HTTP can carry it.
fn headers(pairs: &[(http::HeaderName, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if !value.is_empty()
            && let Ok(value) = HeaderValue::from_bytes(value)
        {
            map.insert(name.clone(), value);
        }
    }
    map
}

/// Every accepted event reads as a worker reads it; refused events keep at most
/// [`MAX_REJECTED_TEXT_BYTES`] of their text, in request order.
fn check_ingested(ingested: &Ingested) -> Vec<serde_json::Map<String, Value>> {
    let mut events = Vec::new();
    for accepted in &ingested.accepted {
        match serde_json::from_str::<Value>(&accepted.body) {
            Ok(Value::Object(event)) => events.push(event),
            Ok(other) => panic!("an accepted event is stored as a non-object: {other}"),
            Err(e) => panic!(
                "an accepted event is stored as text a worker cannot read ({e}): {}",
                accepted.body
            ),
        }
    }
    let mut last = 0;
    for rejected in &ingested.rejected {
        assert!(rejected.text.len() <= MAX_REJECTED_TEXT_BYTES);
        assert!(rejected.position > last, "refused events out of order");
        last = rejected.position;
    }
    events
}

fn check_refusal(error: &WireError) {
    assert!(
        error.status.is_client_error(),
        "a refusal with status {}",
        error.status
    );
    assert!(error.body.is_object());
}

/// How many items a list body holds, read as the parsers read them (borrowed raw values).
fn items_of(text: &str, key: Option<&str>) -> Option<usize> {
    match key {
        None => serde_json::from_str::<Vec<&RawValue>>(text)
            .ok()
            .map(|v| v.len()),
        Some(key) => {
            let object: serde_json::Map<String, Value> = serde_json::from_str(text).ok()?;
            object.get(key)?.as_array().map(Vec::len)
        }
    }
}

/// Byte 0 picks the call, the first line after it is the `Authorization` header, the rest is
/// the body.
pub fn segment(data: &[u8]) {
    let Some((&call, rest)) = data.split_first() else {
        return;
    };
    let call = CALLS[usize::from(call) % CALLS.len()];
    let (authorization, body) = first_line(rest);
    let headers = headers(&[(http::header::AUTHORIZATION, authorization)]);
    if let Some(key) = segment::write_key_from_basic(&headers) {
        assert!(!key.is_empty());
    }
    let parsed = match segment::parse(call, body, RECEIVED_AT) {
        Ok(parsed) => parsed,
        Err(error) => return check_refusal(&error),
    };
    let ingested = &parsed.ingested;
    let events = check_ingested(ingested);
    for (event, accepted) in events.iter().zip(&ingested.accepted) {
        assert!(
            !event.contains_key("writeKey"),
            "a write key is stored: {}",
            accepted.body
        );
        let kind = event.get("type").and_then(Value::as_str);
        assert!(
            matches!(
                kind,
                Some("identify" | "track" | "page" | "screen" | "group" | "alias" | "delete")
            ),
            "an event is stored with type {kind:?}"
        );
        assert!(event.contains_key("receivedAt"));
        assert!(accepted.body.len() <= segment::MAX_CALL_BYTES + segment::SERVER_FIELDS_BYTES);
        if let Some(id) = &accepted.dedupe {
            assert!(!id.is_empty() && id.chars().count() <= segment::MAX_MESSAGE_ID_CHARS);
        }
    }
    for rejected in &ingested.rejected {
        // Read as the parsers read an item: a refused event's text (unless cut) is an object
        // without `writeKey`, or not an object at all.
        if let Ok(fields) = serde_json::from_str::<BTreeMap<String, &RawValue>>(&rejected.text) {
            assert!(
                !fields.contains_key("writeKey"),
                "a refused event keeps its write key: {}",
                rejected.text
            );
        }
    }
    let stored: usize = ingested.accepted.iter().map(|a| a.body.len()).sum();
    let handled = ingested.accepted.len() + ingested.rejected.len();
    if call == segment::Call::Batch {
        assert!(
            stored <= segment::MAX_STORED_FACTOR * body.len(),
            "a batch of {} bytes stored {stored} bytes",
            body.len()
        );
        let text = std::str::from_utf8(body).expect("an accepted body is UTF-8");
        if let Some(items) = items_of(text, Some("batch")) {
            assert_eq!(
                handled, items,
                "every item of a batch is accepted or refused"
            );
        }
    } else {
        assert_eq!(handled, 1, "a single call is one event");
        if let Some(event) = events.first() {
            let expected = format!("{call:?}").to_lowercase();
            assert_eq!(
                event.get("type").and_then(Value::as_str),
                Some(expected.as_str()),
                "the path's call wins over the body's type"
            );
        }
    }
}

/// The whole input is the body.
pub fn amplitude(body: &[u8]) {
    let parsed = match amplitude::parse(body) {
        Ok(parsed) => parsed,
        Err(error) => return check_refusal(&error),
    };
    assert!(!parsed.api_key.is_empty());
    assert_eq!(parsed.payload_size_bytes, body.len());
    let ingested = &parsed.ingested;
    assert!(
        ingested.rejected.is_empty(),
        "Amplitude refuses whole requests"
    );
    let events = check_ingested(ingested);
    for (event, accepted) in events.iter().zip(&ingested.accepted) {
        assert!(matches!(event.get("event_type"), Some(Value::String(s)) if !s.is_empty()));
        // Stored exactly as sent.
        assert!(
            std::str::from_utf8(body)
                .expect("an accepted body is UTF-8")
                .contains(&accepted.body)
        );
    }
    let text = std::str::from_utf8(body).expect("an accepted body is UTF-8");
    if let Some(items) = items_of(text, Some("events")) {
        assert_eq!(ingested.accepted.len(), items, "every event is accepted");
    }
    let _ = amplitude::accepted_body(ingested.accepted.len(), parsed.payload_size_bytes, 0);
}

/// The lowercase hex HMAC-SHA256 of `body` under `secret`.
pub fn extole_signature(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The first line is the `Authorization` header, the second `X-Extole-Signature`, the rest is
/// the body.
pub fn extole(data: &[u8]) {
    let (authorization, rest) = first_line(data);
    let (signature, body) = first_line(rest);
    let signature_header = http::HeaderName::from_static(extole::SIGNATURE_HEADER);
    let given = headers(&[
        (http::header::AUTHORIZATION, authorization),
        (signature_header.clone(), signature),
    ]);
    // What the headers must authenticate: the secret as a bearer token, or the body's HMAC.
    let expected_hex = extole_signature(body, EXTOLE_SECRET);
    let text_of = |name: &http::HeaderName| given.get(name).and_then(|v| v.to_str().ok());
    let bearer = text_of(&http::header::AUTHORIZATION)
        .and_then(|v| v.trim().split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && token.trim() == EXTOLE_SECRET
        });
    let signed = text_of(&signature_header)
        .and_then(|v| v.trim().strip_prefix("sha256="))
        .is_some_and(|hex| hex.eq_ignore_ascii_case(&expected_hex));
    let authenticated = extole::authenticate(&given, body, EXTOLE_SECRET);
    if bearer || signed {
        assert!(authenticated, "the right secret was refused");
    }
    if authenticated && !bearer && !signed {
        // Only another spelling of the right HMAC may pass: `sha256=` and hex digits.
        let hex = text_of(&signature_header)
            .and_then(|v| v.trim().strip_prefix("sha256="))
            .expect("only a signature can pass without the bearer token");
        assert_eq!(hex.len(), expected_hex.len(), "a forged signature passed");
    }
    assert!(
        !extole::authenticate(&given, body, ""),
        "an empty secret passed"
    );
    let right = headers(&[(
        signature_header.clone(),
        format!("sha256={expected_hex}").as_bytes(),
    )]);
    assert!(extole::authenticate(&right, body, EXTOLE_SECRET));
    assert!(!extole::authenticate(&right, body, "another-secret"));

    let ingested = match extole::parse(body) {
        Ok(ingested) => ingested,
        Err(error) => return check_refusal(&error),
    };
    let events = check_ingested(&ingested);
    for event in &events {
        let named = matches!(event.get("event_name"), Some(Value::String(s)) if !s.is_empty());
        let delete = event.get("type").and_then(Value::as_str) == Some("delete");
        assert!(named || delete, "an item without event_name was accepted");
    }
    let text = std::str::from_utf8(body).expect("an accepted body is UTF-8");
    let items = if text.trim_start().starts_with('[') {
        items_of(text, None)
    } else {
        Some(1)
    };
    if let Some(items) = items {
        assert_eq!(
            ingested.accepted.len() + ingested.rejected.len(),
            items,
            "every item is accepted or refused"
        );
    }
    let _ = extole::accepted_body(&ingested);
}
