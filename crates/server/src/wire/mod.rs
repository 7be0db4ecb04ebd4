//! The wire formats `ferry serve` accepts, as pure functions.
//!
//! Each module turns one request body (and, where the format has it, its headers) into
//! [`Ingested`] events or one [`WireError`], and builds the exact responses the senders' SDKs
//! expect. Nothing here does I/O: the axum handlers look up keys, call these functions and write
//! the outcome to the queue.
//!
//! Events are never parsed into a `serde_json::Value` on the common path: an envelope is read with
//! borrowed raw items, a small probe reads the fields that are validated, and the stored text is
//! the item's own text with server fields spliced in as serde_json-escaped values.

pub mod amplitude;
pub mod extole;
mod outcome;
mod readable;
pub mod segment;
mod splice;

#[cfg(feature = "fuzzing")]
pub use outcome::MAX_REJECTED_TEXT_BYTES;
pub use outcome::{Accepted, Ingested, Rejected, WireError};

/// A JSON object of exactly `len` bytes holding `fields` and a padding string, for tests of the
/// size limits.
#[cfg(test)]
pub(crate) fn padded(fields: &serde_json::Value, len: usize) -> String {
    use serde_json::Value;
    let mut object = fields.as_object().unwrap().clone();
    object.insert("pad".into(), Value::String(String::new()));
    let base = serde_json::to_string(&object).unwrap().len();
    object.insert("pad".into(), Value::String("x".repeat(len - base)));
    let text = serde_json::to_string(&object).unwrap();
    assert_eq!(text.len(), len);
    text
}
