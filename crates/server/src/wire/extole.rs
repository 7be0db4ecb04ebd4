//! Extole's outbound webhooks: Extole events posted to ferry, one object or an array of them.
//!
//! Each item must be a JSON object with a non-empty string `event_name`, or a deletion
//! (`"type": "delete"`); any other item is [`Rejected`] with its 1-based position and the rest are
//! accepted. A body over `MAX_BODY_BYTES` or with more than `MAX_ITEMS` items is refused with
//! 413, invalid JSON with 400; error bodies are `{"error": "..."}`. Items are stored as sent, and
//! an `event_id` (or else `id`) string or number is the dedupe key.
//!
//! Requests are authenticated with a secret shared with Extole, see [`authenticate`].

use hmac::{Hmac, Mac};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::readable::unreadable;
use super::splice::{as_str, is_null, present};
use super::{Accepted, Ingested, Rejected, WireError};

/// The largest body, in bytes.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The most items one body may hold.
pub(crate) const MAX_ITEMS: usize = 1_000;
/// The header carrying `sha256=<hex HMAC-SHA256 of the raw body>`.
pub const SIGNATURE_HEADER: &str = "x-extole-signature";

/// Whether the request carries the shared `secret`: either `Authorization: Bearer <secret>`, or
/// an `X-Extole-Signature: sha256=<hex>` header whose HMAC-SHA256 of the raw body matches.
///
/// Both comparisons take the same time wherever the values differ. An empty secret never
/// authenticates anything.
pub fn authenticate(headers: &HeaderMap, body: &[u8], secret: &str) -> bool {
    if secret.is_empty() {
        return false;
    }
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, token)| same_secret(token.trim().as_bytes(), secret.as_bytes()));
    if bearer {
        return true;
    }
    headers
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().strip_prefix("sha256="))
        .and_then(decode_hex)
        .is_some_and(|signature| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .expect("HMAC takes a key of any length");
            mac.update(body);
            mac.verify_slice(&signature).is_ok()
        })
}

/// Compares two byte strings in constant time: their SHA-256 digests are compared byte by byte,
/// so neither where they differ nor the secret's length shows in the time taken.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digits = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(digits, 16).ok()
        })
        .collect()
}

/// The fields of an item that are checked; `Some` when present, even as `null`.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    event_name: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type", deserialize_with = "present")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    event_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

/// Reads one webhook body. See the module documentation for the rules.
pub fn parse(body: &[u8]) -> Result<Ingested, WireError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the body is {} bytes, over the {MAX_BODY_BYTES}-byte limit",
                body.len()
            ),
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "the body is not UTF-8"))?;
    let invalid = |err: serde_json::Error| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("the body is not valid JSON: {err}"),
        )
    };
    let items: Vec<&RawValue> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(invalid)?
    } else {
        vec![serde_json::from_str(text).map_err(invalid)?]
    };
    if items.len() > MAX_ITEMS {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the body holds {} items, over the limit of {MAX_ITEMS}",
                items.len()
            ),
        ));
    }
    let mut ingested = Ingested::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let position = index + 1;
        match accept(item.get()) {
            Ok(accepted) => ingested.accepted.push(accepted),
            Err(reason) => ingested.rejected.push(Rejected::new(
                position,
                format!("item {position} {reason}"),
                item.get(),
            )),
        }
    }
    Ok(ingested)
}

/// One item as stored, or why it is refused (to follow `item <n> `).
fn accept(text: &str) -> Result<Accepted, String> {
    if !text.starts_with('{') {
        return Err("is not a JSON object".to_owned());
    }
    let probe: Probe = serde_json::from_str(text).map_err(|e| format!("cannot be read: {e}"))?;
    // Stored as sent, so it must read as a delivery worker reads it.
    if let Some(e) = unreadable(text) {
        return Err(format!("cannot be read: {e}"));
    }
    let named = probe
        .event_name
        .and_then(as_str)
        .is_some_and(|name| !name.is_empty());
    let deletion = probe.kind.and_then(as_str).as_deref() == Some("delete");
    if !named && !deletion {
        return Err(
            "has no `event_name` and is not a deletion (`\"type\": \"delete\"`)".to_owned(),
        );
    }
    Ok(Accepted {
        dedupe: key(probe.event_id).or_else(|| key(probe.id)),
        body: text.to_owned(),
    })
}

/// A dedupe key from a string or number field.
fn key(raw: Option<&RawValue>) -> Option<String> {
    let raw = raw.filter(|raw| !is_null(raw))?;
    match as_str(raw) {
        Some(text) => (!text.is_empty()).then(|| text.into_owned()),
        None if raw
            .get()
            .starts_with(|c: char| c == '-' || c.is_ascii_digit()) =>
        {
            Some(raw.get().to_owned())
        }
        None => None,
    }
}

/// The body of a success: how many items were accepted, and where and why others were not.
pub fn accepted_body(ingested: &Ingested) -> Value {
    let rejected: Vec<Value> = ingested
        .rejected
        .iter()
        .map(|r| json!({"position": r.position, "reason": r.reason}))
        .collect();
    json!({"accepted": ingested.accepted.len(), "rejected": rejected})
}

/// The 401 for a request without the shared secret.
pub(crate) fn unauthorized() -> WireError {
    error(
        StatusCode::UNAUTHORIZED,
        "the request has neither the bearer token nor a valid signature",
    )
}

fn error(status: StatusCode, message: &str) -> WireError {
    WireError {
        status,
        body: json!({ "error": message }),
    }
}

#[cfg(test)]
mod tests;
