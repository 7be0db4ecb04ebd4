//! The Segment HTTP Tracking API (`/v1/identify`, `/v1/track`, ..., `/v1/batch`), as SDKs send it.
//!
//! # What refuses the whole request and what refuses one event
//!
//! Segment answers 200 for everything except oversized payloads and invalid JSON, and silently
//! drops events it cannot use. ferry answers the same way, but returns the dropped events as
//! [`Rejected`] so they are kept as dead letters with a reason, each as sent but for its
//! `writeKey` (see below).
//!
//! The whole request gets 400 (the body is `{"success": false, "code", "message"}`) when:
//! - a single call is over [`MAX_CALL_BYTES`] (`payload_too_large`);
//! - a batch is over `MAX_BATCH_BYTES` (`payload_too_large`) or holds more than
//!   `MAX_BATCH_EVENTS` events (`too_many_events`; Segment drops such a batch with a 200, but
//!   a 400 tells the sender while it can still split the batch);
//! - the body is not a JSON object, or a batch's `batch`, `context` or `integrations` has the
//!   wrong type (`invalid_json`), or a batch has no `batch` list (`missing_batch`);
//! - a batch item has neither `type` nor its old name `action` (`missing_type`): Segment
//!   requires `type` on every batch item, and without it ferry cannot tell which call it is.
//!
//! The batch's events as stored (its `context` and `integrations` merged into each) are held to
//! limits too: over [`MAX_STORED_FACTOR`] times the request's size in all is
//! `payload_too_large`, so that one request cannot store many times its own size. A batch `context`, `integrations` or `sentAt` that a
//! delivery worker could not read (see below) is `invalid_json`.
//!
//! One event is [`Rejected`] (the rest are accepted) when it is over [`MAX_CALL_BYTES`] inside a
//! batch or once the batch's `context` and `integrations` are merged in, is not a JSON object,
//! cannot be read as a delivery worker reads it (nested over 128 deep, a lone surrogate escape), repeats a field ferry checks, has a `type` other than identify,
//! track, page, screen, group, alias or delete, has neither `userId` nor `anonymousId` (a delete
//! needs `userId`), is a track without `event`, or has a `messageId` that is not a string of at
//! most [`MAX_MESSAGE_ID_CHARS`] characters.
//!
//! # What is stored
//!
//! The event's own text, with these fields added when it lacks them: `type` (from the path of a
//! single call, or from `action`), `receivedAt` (the server's time), and from a batch its
//! `sentAt`, `context` and `integrations`. A batch's `context` and `integrations` are merged one
//! level deep: the item's own keys win. The path's call wins over a single call's own `type`, as
//! it does at Segment. `timestamp`, `originalTimestamp` and `sentAt` are kept as sent, and numbers
//! keep every digit. A `writeKey` in the body is dropped, from a stored event and from a refused
//! one alike: it is the source's credential, not part of the event, so no mapping forwards it
//! and `ferry dlq` never shows it.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use http::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use self::event::{Probe, Refusal, Shared, Who, build};
use super::readable::unreadable_field;
use super::splice::{as_str, is_null, is_object, json_string, present, without_member};
use super::{Accepted, Ingested, Rejected, WireError};

mod event;

/// The largest single call, and the largest event inside a batch, in bytes (Segment: 32 KB).
pub const MAX_CALL_BYTES: usize = 32 * 1024;
/// The largest batch body in bytes (Segment: 500 KB).
pub(crate) const MAX_BATCH_BYTES: usize = 500 * 1024;
/// The most events one batch may hold.
pub(crate) const MAX_BATCH_EVENTS: usize = 2_500;
/// The longest `messageId`, in characters.
pub const MAX_MESSAGE_ID_CHARS: usize = 100;
/// What one batch may store, as a multiple of its own size: its `context` and `integrations` are
/// copied into each of its events.
pub const MAX_STORED_FACTOR: usize = 8;
/// What the fields ferry adds to an event (`type`, `receivedAt`, `sentAt`) may take beyond the
/// sender's limits.
pub const SERVER_FIELDS_BYTES: usize = 256;

/// A Tracking API call, named by the last segment of its path (`/v1/<call>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `/v1/identify`
    Identify,
    /// `/v1/track`
    Track,
    /// `/v1/page`
    Page,
    /// `/v1/screen`
    Screen,
    /// `/v1/group`
    Group,
    /// `/v1/alias`
    Alias,
    /// `/v1/batch`, and its other name `/v1/import`.
    Batch,
}

impl Call {
    /// The call a path segment names (`"track"`, `"import"`, ...), or `None`.
    pub(crate) fn from_path_segment(segment: &str) -> Option<Self> {
        Some(match segment {
            "identify" => Self::Identify,
            "track" => Self::Track,
            "page" => Self::Page,
            "screen" => Self::Screen,
            "group" => Self::Group,
            "alias" => Self::Alias,
            "batch" | "import" => Self::Batch,
            _ => return None,
        })
    }

    /// The `type` a single call gives its event; `None` for a batch.
    fn event_type(self) -> Option<&'static str> {
        Some(match self {
            Self::Identify => "identify",
            Self::Track => "track",
            Self::Page => "page",
            Self::Screen => "screen",
            Self::Group => "group",
            Self::Alias => "alias",
            Self::Batch => return None,
        })
    }
}

/// A request's events and the write key its body carried, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The body's `writeKey`; the handler prefers it or the Basic one as it sees fit.
    pub(crate) write_key: Option<String>,
    /// The events.
    pub ingested: Ingested,
}

/// The write key of an `Authorization: Basic base64("<writeKey>:")` header.
///
/// A missing colon is tolerated (the whole decoded text is the key); an empty key is `None`.
pub fn write_key_from_basic(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = encoded.trim();
    let decoded = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let key = text.split_once(':').map_or(text.as_str(), |(user, _)| user);
    (!key.is_empty()).then(|| key.to_owned())
}

/// Reads one Tracking API request; `received_at` is the server's time in RFC 3339.
///
/// See the module documentation for what refuses the request and what refuses one event.
pub fn parse(call: Call, body: &[u8], received_at: &str) -> Result<Parsed, WireError> {
    let received_at = json_string(received_at);
    match call.event_type() {
        Some(kind) => parse_single(kind, body, &received_at),
        None => parse_batch(body, &received_at),
    }
}

/// The body of a 200: `{"success": true}`.
pub(crate) fn accepted_body() -> Value {
    json!({ "success": true })
}

/// The 401 for a missing or unknown write key.
pub(crate) fn unauthorized() -> WireError {
    error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "the write key is missing or unknown",
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> WireError {
    WireError {
        status,
        body: json!({ "success": false, "code": code, "message": message }),
    }
}

fn bad_request(code: &str, message: &str) -> WireError {
    error(StatusCode::BAD_REQUEST, code, message)
}

/// The body as a JSON object's text, or the 400 for anything else.
fn object_text(body: &[u8]) -> Result<&str, WireError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| bad_request("invalid_json", "the body is not UTF-8"))?;
    if text.trim_start().starts_with('{') {
        Ok(text)
    } else {
        Err(bad_request(
            "invalid_json",
            "the body must be a JSON object",
        ))
    }
}

fn invalid_json(err: &serde_json::Error) -> WireError {
    bad_request(
        "invalid_json",
        &format!("the body is not valid JSON: {err}"),
    )
}

fn parse_single(
    kind: &'static str,
    body: &[u8],
    received_at: &RawValue,
) -> Result<Parsed, WireError> {
    if body.len() > MAX_CALL_BYTES {
        return Err(too_large(body.len(), MAX_CALL_BYTES, "a single call"));
    }
    let text = object_text(body)?;
    let probe: Probe = match serde_json::from_str(text) {
        Ok(probe) => probe,
        // Valid JSON that a worker could not read (a lone surrogate, deep nesting) refuses the
        // event, as it would inside a batch; anything else is not JSON at all.
        Err(e) => {
            let lenient: WriteKeyOnly = serde_json::from_str(text).map_err(|e| invalid_json(&e))?;
            let reason = format!("{} cannot be read: {e}", Who::Single);
            return Ok(Parsed {
                write_key: lenient.write_key.and_then(as_str).map(Cow::into_owned),
                ingested: Ingested {
                    accepted: Vec::new(),
                    rejected: vec![refused(1, reason, text)],
                },
            });
        }
    };
    let write_key = probe.write_key.and_then(as_str).map(Cow::into_owned);
    let mut ingested = Ingested::with_capacity(1);
    let shared = Shared {
        received_at,
        context: None,
        integrations: None,
        sent_at: None,
    };
    match build(text, &probe, Some(kind), &shared, &Who::Single) {
        Ok(accepted) => ingested.accepted.push(accepted),
        Err(Refusal::Item(reason)) => ingested.rejected.push(refused(1, reason, text)),
        // A single call's type comes from its path, so this does not happen; were it to, the
        // event would still be kept, refused, rather than dropped.
        Err(Refusal::MissingType) => {
            ingested
                .rejected
                .push(refused(1, "the event has no `type`".to_owned(), text));
        }
    }
    Ok(Parsed {
        write_key,
        ingested,
    })
}

/// What a refused event is kept as: its text as sent, less any `writeKey` of its own, which is
/// the source's credential (see the module documentation).
fn refused(position: usize, reason: String, text: &str) -> Rejected {
    if !text.trim_start().starts_with('{') {
        // Not an object: it has no fields.
        return Rejected::new(position, reason, text);
    }
    match without_member(text, "writeKey") {
        Some(kept) => Rejected::new(position, reason, &kept),
        // An event is read as JSON before it can be refused one by one, so this does not happen;
        // were it to, its text would be left out rather than kept with the key.
        None => Rejected::new(position, reason, UNREAD_TEXT),
    }
}

/// What stands for a refused event's text that could not be read to drop its `writeKey`.
const UNREAD_TEXT: &str = "…[not kept: the text could not be read to drop its `writeKey`]";

fn too_large(size: usize, limit: usize, what: &str) -> WireError {
    bad_request(
        "payload_too_large",
        &format!("{what} is {size} bytes, over the {limit}-byte limit"),
    )
}

/// A single call's `writeKey` alone, from a body whose event cannot be probed.
#[derive(Deserialize)]
struct WriteKeyOnly<'a> {
    #[serde(borrow, default, rename = "writeKey")]
    write_key: Option<&'a RawValue>,
}

/// A batch's envelope, read without copying its items.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default, deserialize_with = "present")]
    context: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    integrations: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "sentAt", deserialize_with = "present")]
    sent_at: Option<&'a RawValue>,
    #[serde(default, rename = "writeKey")]
    write_key: Option<String>,
}

fn parse_batch(body: &[u8], received_at: &RawValue) -> Result<Parsed, WireError> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(too_large(body.len(), MAX_BATCH_BYTES, "the batch"));
    }
    let text = object_text(body)?;
    let envelope: Envelope = serde_json::from_str(text).map_err(|e| invalid_json(&e))?;
    let items = envelope
        .batch
        .ok_or_else(|| bad_request("missing_batch", "the body has no `batch` list"))?;
    if items.len() > MAX_BATCH_EVENTS {
        return Err(bad_request(
            "too_many_events",
            &format!(
                "the batch holds {} events, over the limit of {MAX_BATCH_EVENTS}",
                items.len()
            ),
        ));
    }
    let shared = Shared {
        received_at,
        context: shared_object(envelope.context, "context")?,
        integrations: shared_object(envelope.integrations, "integrations")?,
        sent_at: shared_value(envelope.sent_at.filter(|raw| !is_null(raw)), "sentAt")?,
    };
    let mut ingested = Ingested::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let position = index + 1;
        let who = Who::Item(position);
        match item_outcome(item.get(), &shared, &who) {
            Ok(accepted) => ingested.accepted.push(accepted),
            Err(Refusal::Item(reason)) => {
                ingested
                    .rejected
                    .push(refused(position, reason, item.get()));
            }
            Err(Refusal::MissingType) => {
                return Err(bad_request("missing_type", &format!("{who} has no `type`")));
            }
        }
    }
    // A shared `context` copied into every event must not multiply what one request stores.
    let stored: usize = ingested.accepted.iter().map(|a| a.body.len()).sum();
    let allowed = MAX_STORED_FACTOR * body.len();
    if stored > allowed {
        return Err(bad_request(
            "payload_too_large",
            &format!(
                "the batch's {} events are {stored} bytes once its `context` and `integrations` \
                 are merged into each, over {MAX_STORED_FACTOR} times the request's {} bytes; \
                 send the context with each event, or fewer events per batch",
                ingested.accepted.len(),
                body.len()
            ),
        ));
    }
    Ok(Parsed {
        write_key: envelope.write_key,
        ingested,
    })
}

/// A batch field copied into each event (`sentAt`): 400 when a worker could not read it.
fn shared_value<'a>(
    raw: Option<&'a RawValue>,
    name: &str,
) -> Result<Option<&'a RawValue>, WireError> {
    if let Some(e) = raw.and_then(unreadable_field) {
        return Err(bad_request(
            "invalid_json",
            &format!("the batch's `{name}` cannot be read: {e}"),
        ));
    }
    Ok(raw)
}

/// A batch's `context` or `integrations`: `None` when absent, null or empty; 400 when not an
/// object, or when a worker could not read it.
fn shared_object<'a>(
    raw: Option<&'a RawValue>,
    name: &str,
) -> Result<Option<&'a RawValue>, WireError> {
    let raw = shared_value(raw, name)?;
    match raw {
        None => Ok(None),
        Some(raw) if is_null(raw) => Ok(None),
        Some(raw) if is_object(raw) => {
            let empty = raw.get()[1..].trim_start().starts_with('}');
            Ok((!empty).then_some(raw))
        }
        Some(_) => Err(bad_request(
            "invalid_json",
            &format!("the batch's `{name}` must be an object"),
        )),
    }
}

fn item_outcome(text: &str, shared: &Shared<'_>, who: &Who) -> Result<Accepted, Refusal> {
    if text.len() > MAX_CALL_BYTES {
        return Err(Refusal::Item(format!(
            "{who} is {} bytes, over the {MAX_CALL_BYTES}-byte limit for one event",
            text.len()
        )));
    }
    if !text.starts_with('{') {
        return Err(Refusal::Item(format!("{who} is not a JSON object")));
    }
    let probe: Probe = serde_json::from_str(text)
        .map_err(|e| Refusal::Item(format!("{who} cannot be read: {e}")))?;
    build(text, &probe, None, shared, who)
}

#[cfg(test)]
mod tests;
