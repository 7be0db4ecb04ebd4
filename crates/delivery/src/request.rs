//! What goes out and what comes back: plain data, free of any HTTP client's types.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
pub use http::Method;

/// A request ready to send: fully rendered, secrets included.
///
/// Its `Debug` output shows only the method, the URL without its query, the header names and
/// the body's length, so it may be logged; never log its fields directly.
#[derive(Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Outgoing {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    #[must_use]
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url.split(['?', '#']).next().unwrap_or_default();
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Outgoing")
            .field("method", &self.method)
            .field("url", &url)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A response as received, its body already decoded (gzip) and read in full.
///
/// Its `Debug` output leaves out header values and the body, which may echo secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Response {
    /// The first value of a header, its name compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn body_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The status and its standard reason, e.g. `503 Service Unavailable`.
    pub fn status_line(&self) -> String {
        status_line(self.status)
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The status and its standard reason, e.g. `503 Service Unavailable`; just the number when
/// the status has no standard reason.
pub(crate) fn status_line(status: u16) -> String {
    match http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let request = Outgoing::new(Method::POST, "https://api.example.com/v1/x?api_key=s3cret")
            .with_header("Authorization", "Bearer s3cret")
            .with_body(r#"{"token":"s3cret"}"#);
        let shown = format!("{request:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("https://api.example.com/v1/x"), "{shown}");
        assert!(shown.contains("Authorization"), "{shown}");

        let response = Response {
            status: 401,
            headers: vec![("Set-Cookie".into(), "s3cret".into())],
            body: Bytes::from_static(b"bad key s3cret"),
        };
        let shown = format!("{response:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn status_lines_carry_the_standard_reason() {
        assert_eq!(status_line(503), "503 Service Unavailable");
        assert_eq!(status_line(429), "429 Too Many Requests");
        assert_eq!(status_line(599), "599");
    }

    #[test]
    fn headers_are_found_whatever_their_case() {
        let response = Response {
            status: 200,
            headers: vec![("retry-after".into(), "3".into())],
            body: Bytes::new(),
        };
        assert_eq!(response.header("Retry-After"), Some("3"));
        assert_eq!(response.header("X-Other"), None);
    }
}
