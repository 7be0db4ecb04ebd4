//! The Amplitude HTTP V2 API (`POST /2/httpapi`), as Amplitude SDKs send it.
//!
//! Amplitude refuses the whole request for one bad event, and so does ferry: [`parse`] either
//! accepts every event (and its [`Ingested::rejected`] stays empty) or answers 400 with
//! `events_with_missing_fields` / `events_with_invalid_fields`, maps from a field name to the
//! 0-based indexes of the events at fault, covering every bad event, not just the first.
//!
//! Rules (Amplitude HTTP V2 notes):
//! - `api_key` and a non-empty `events` list are required (400 with `missing_field`);
//! - each event needs a non-empty string `event_type`, and `user_id` or `device_id`; an event
//!   with neither is listed under both names in `events_with_missing_fields`;
//! - a present id must be a string of at least `options.min_id_length` characters (default
//!   `DEFAULT_MIN_ID_LENGTH`) and not one of the placeholder ids Amplitude refuses, compared
//!   without regard to case;
//! - `time`, when present, must be an integer (epoch milliseconds); `insert_id`, a string;
//! - a body of `PAYLOAD_LIMIT_BYTES` or more, or with `EVENTS_LIMIT` events or more, is 413;
//! - an event that is not a JSON object, repeats a checked field, or cannot be read as a delivery
//!   worker reads it (nested over 128 deep, a lone surrogate escape) makes the body invalid JSON.
//!
//! Events are stored exactly as sent: the Amplitude mappings read Amplitude event objects.

use std::collections::BTreeMap;

use http::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::readable::unreadable;
use super::splice::{as_str, is_null, present};
use super::{Accepted, Ingested, WireError};

/// Bodies of this many bytes or more are refused with 413 (Amplitude: under 1 MB).
pub(crate) const PAYLOAD_LIMIT_BYTES: usize = 1024 * 1024;
/// Requests with this many events or more are refused with 413 (Amplitude: fewer than 2,000).
pub(crate) const EVENTS_LIMIT: usize = 2_000;
/// The shortest `user_id` or `device_id` unless `options.min_id_length` says otherwise.
pub(crate) const DEFAULT_MIN_ID_LENGTH: usize = 5;
/// Ids Amplitude refuses whatever their length, compared without regard to case.
const PLACEHOLDER_IDS: [&str; 14] = [
    "anonymous",
    "nil",
    "none",
    "null",
    "n/a",
    "na",
    "undefined",
    "unknown",
    "",
    "00000000-0000-0000-0000-000000000000",
    "{}",
    "lmy47d",
    "0",
    "-1",
];

/// An accepted Amplitude request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmplitudeParsed {
    /// The body's `api_key`, for the handler to look up.
    pub api_key: String,
    /// The events, stored as sent; `rejected` is always empty.
    pub ingested: Ingested,
    /// The body's size, for the success response.
    pub payload_size_bytes: usize,
}

/// A request's envelope, read without copying its events.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    api_key: Option<String>,
    #[serde(borrow, default)]
    events: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    options: Option<Options>,
}

#[derive(Deserialize)]
struct Options {
    #[serde(default)]
    min_id_length: Option<usize>,
}

/// The fields of an event that are checked; `Some` when present, even as `null`.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    event_type: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    user_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    device_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    time: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    insert_id: Option<&'a RawValue>,
}

/// Reads one HTTP V2 request. See the module documentation for the rules.
pub fn parse(body: &[u8]) -> Result<AmplitudeParsed, WireError> {
    if body.len() >= PAYLOAD_LIMIT_BYTES {
        return Err(too_large());
    }
    let text = std::str::from_utf8(body).map_err(|_| invalid_json())?;
    if !text.trim_start().starts_with('{') {
        return Err(invalid_json());
    }
    let envelope: Envelope = serde_json::from_str(text).map_err(|_| invalid_json())?;
    let Some(api_key) = envelope.api_key.filter(|key| !key.is_empty()) else {
        return Err(missing_field("api_key"));
    };
    let events = match envelope.events {
        Some(events) if !events.is_empty() => events,
        _ => return Err(missing_field("events")),
    };
    if events.len() >= EVENTS_LIMIT {
        return Err(too_large());
    }
    let min_id_length = envelope
        .options
        .and_then(|options| options.min_id_length)
        .unwrap_or(DEFAULT_MIN_ID_LENGTH);

    let mut faults = Faults::default();
    let mut ingested = Ingested::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let text = event.get();
        if !text.starts_with('{') {
            return Err(invalid_json());
        }
        let probe: Probe = serde_json::from_str(text).map_err(|_| invalid_json())?;
        // Stored as sent, so it must read as a delivery worker reads it.
        if unreadable(text).is_some() {
            return Err(invalid_json());
        }
        let before = faults.count();
        let dedupe = check(&probe, index, min_id_length, &mut faults);
        if faults.count() == before {
            ingested.accepted.push(Accepted {
                dedupe,
                body: text.to_owned(),
            });
        }
    }
    if !faults.is_empty() {
        return Err(faults.into_error());
    }
    Ok(AmplitudeParsed {
        api_key,
        ingested,
        payload_size_bytes: body.len(),
    })
}

/// The body of a 200.
pub fn accepted_body(
    events_ingested: usize,
    payload_size_bytes: usize,
    server_upload_time_ms: i64,
) -> Value {
    json!({
        "code": 200,
        "events_ingested": events_ingested,
        "payload_size_bytes": payload_size_bytes,
        "server_upload_time": server_upload_time_ms,
    })
}

/// The 400 for an `api_key` no source is configured with.
///
/// Amplitude's SDKs recognise this answer by its error starting with `Invalid API key`, and then
/// stop retrying the batch.
pub(crate) fn invalid_api_key() -> WireError {
    error(
        StatusCode::BAD_REQUEST,
        json!({"code": 400, "error": "Invalid API key: the key is not known to this server"}),
    )
}

fn error(status: StatusCode, body: Value) -> WireError {
    WireError { status, body }
}

fn too_large() -> WireError {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({"code": 413, "error": "Payload too large"}),
    )
}

fn invalid_json() -> WireError {
    error(
        StatusCode::BAD_REQUEST,
        json!({"code": 400, "error": "Invalid JSON request body"}),
    )
}

fn missing_field(field: &str) -> WireError {
    error(
        StatusCode::BAD_REQUEST,
        json!({"code": 400, "error": "Request missing required field", "missing_field": field}),
    )
}

/// The events at fault, by field.
#[derive(Default)]
struct Faults {
    missing: BTreeMap<&'static str, Vec<usize>>,
    invalid: BTreeMap<&'static str, Vec<usize>>,
}

impl Faults {
    fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.invalid.is_empty()
    }

    fn count(&self) -> usize {
        self.missing
            .values()
            .chain(self.invalid.values())
            .map(Vec::len)
            .sum()
    }

    fn missing(&mut self, field: &'static str, index: usize) {
        self.missing.entry(field).or_default().push(index);
    }

    fn invalid(&mut self, field: &'static str, index: usize) {
        self.invalid.entry(field).or_default().push(index);
    }

    fn into_error(self) -> WireError {
        let message = if self.missing.is_empty() {
            "Request has events with invalid fields"
        } else {
            "Request missing required field"
        };
        let mut body = json!({"code": 400, "error": message});
        if !self.invalid.is_empty() {
            body["events_with_invalid_fields"] = json!(self.invalid);
        }
        if !self.missing.is_empty() {
            body["events_with_missing_fields"] = json!(self.missing);
        }
        error(StatusCode::BAD_REQUEST, body)
    }
}

/// What an id field holds.
enum Id<'a> {
    Missing,
    Valid(std::borrow::Cow<'a, str>),
    Invalid,
}

fn id(raw: Option<&RawValue>, min_length: usize) -> Id<'_> {
    let Some(raw) = raw.filter(|raw| !is_null(raw)) else {
        return Id::Missing;
    };
    let Some(id) = as_str(raw) else {
        return Id::Invalid;
    };
    let placeholder = PLACEHOLDER_IDS
        .iter()
        .any(|bad| bad.eq_ignore_ascii_case(&id));
    if placeholder || id.chars().count() < min_length {
        Id::Invalid
    } else {
        Id::Valid(id)
    }
}

/// Records the faults of event `index` and returns its dedupe key (meaningful only without faults).
fn check(
    probe: &Probe<'_>,
    index: usize,
    min_id_length: usize,
    faults: &mut Faults,
) -> Option<String> {
    match probe.event_type.filter(|raw| !is_null(raw)).map(as_str) {
        Some(Some(kind)) if !kind.is_empty() => {}
        Some(None) => faults.invalid("event_type", index),
        None | Some(Some(_)) => faults.missing("event_type", index),
    }
    let user = id(probe.user_id, min_id_length);
    let device = id(probe.device_id, min_id_length);
    if matches!((&user, &device), (Id::Missing, Id::Missing)) {
        faults.missing("device_id", index);
        faults.missing("user_id", index);
    }
    if matches!(user, Id::Invalid) {
        faults.invalid("user_id", index);
    }
    if matches!(device, Id::Invalid) {
        faults.invalid("device_id", index);
    }
    if probe
        .time
        .is_some_and(|raw| !is_null(raw) && raw.get().parse::<i64>().is_err())
    {
        faults.invalid("time", index);
    }
    let insert_id = match probe.insert_id.filter(|raw| !is_null(raw)) {
        None => None,
        Some(raw) => {
            let id = as_str(raw);
            if id.is_none() {
                faults.invalid("insert_id", index);
            }
            id.filter(|id| !id.is_empty())
        }
    };
    insert_id.and_then(|insert_id| dedupe_key(&user, &device, &insert_id))
}

/// `insert_id` scoped by the device (or, without one, the user) it dedupes within:
/// `device:<length>:<device_id>:<insert_id>`; the length keeps ids containing `:` apart.
fn dedupe_key(user: &Id<'_>, device: &Id<'_>, insert_id: &str) -> Option<String> {
    let (kind, scope) = match (device, user) {
        (Id::Valid(device), _) => ("device", device.as_ref()),
        (_, Id::Valid(user)) => ("user", user.as_ref()),
        _ => return None,
    };
    Some(format!("{kind}:{}:{scope}:{insert_id}", scope.len()))
}

#[cfg(test)]
mod tests;
