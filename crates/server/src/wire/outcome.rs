//! What one request becomes: events to store, events kept as dead letters, or a refusal.

use http::StatusCode;

/// The most bytes of an item's text a [`Rejected`] keeps, marker included.
pub const MAX_REJECTED_TEXT_BYTES: usize = 32 * 1024;

/// An event ready to be stored: its JSON object text exactly as the mapping will read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The key the queue deduplicates on, when the sender gave one.
    pub dedupe: Option<String>,
    /// The event as one JSON object.
    pub body: String,
}

/// An event refused inside an otherwise good request, kept as a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The 1-based position of the item in the request.
    pub position: usize,
    /// Why it was refused, for the dead-letter record and the sender.
    pub(crate) reason: String,
    /// The item's raw JSON text, cut to at most [`MAX_REJECTED_TEXT_BYTES`] with a marker.
    pub text: String,
}

impl Rejected {
    /// A rejection of the item at `position` (1-based) whose raw text is `raw`.
    pub(crate) fn new(position: usize, reason: String, raw: &str) -> Self {
        Self {
            position,
            reason,
            text: cut(raw),
        }
    }
}

/// Cuts `raw` to at most [`MAX_REJECTED_TEXT_BYTES`], on a character boundary, ending with a
/// marker that says how long the whole text was.
fn cut(raw: &str) -> String {
    if raw.len() <= MAX_REJECTED_TEXT_BYTES {
        return raw.to_owned();
    }
    let marker = format!("…[cut: {} bytes in all]", raw.len());
    let mut end = MAX_REJECTED_TEXT_BYTES - marker.len();
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    let mut text = String::with_capacity(end + marker.len());
    text.push_str(&raw[..end]);
    text.push_str(&marker);
    text
}

/// The events of one accepted request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Events to store, in request order.
    pub accepted: Vec<Accepted>,
    /// Events refused one by one, in request order.
    pub rejected: Vec<Rejected>,
}

impl Ingested {
    /// An empty outcome with room for `items` events.
    pub(crate) fn with_capacity(items: usize) -> Self {
        Self {
            accepted: Vec::with_capacity(items),
            rejected: Vec::new(),
        }
    }
}

/// A refusal of the whole request: the status and JSON body this wire format answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct WireError {
    /// The HTTP status to answer with.
    pub status: StatusCode,
    /// The JSON body to answer with, in the shape the sender's SDK expects.
    pub body: serde_json::Value,
}

impl WireError {
    /// Why the request was refused, as its body tells the sender.
    pub fn reason(&self) -> String {
        ["message", "error"]
            .iter()
            .find_map(|key| self.body.get(*key).and_then(serde_json::Value::as_str))
            .map_or_else(|| self.body.to_string(), str::to_owned)
    }
}

impl axum::response::IntoResponse for WireError {
    fn into_response(self) -> axum::response::Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(Rejected::new(1, String::new(), "{}").text, "{}");
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary_with_a_marker() {
        let raw = "é".repeat(MAX_REJECTED_TEXT_BYTES);
        let text = Rejected::new(1, String::new(), &raw).text;
        assert!(text.len() <= MAX_REJECTED_TEXT_BYTES);
        assert!(text.ends_with(&format!("…[cut: {} bytes in all]", raw.len())));
    }
}
