//! One-shot HTTP requests over a fresh connection, written by hand so that tests can also send
//! what a well-behaved client never would.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use super::workspace::WRITE_KEY;

/// A Segment track event with this messageId and userId.
pub fn track(id: &str, user: &str) -> Value {
    serde_json::json!({"type": "track", "event": "Signed Up", "userId": user, "messageId": id})
}

/// `Basic` credentials for a Segment write key.
pub fn basic(key: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    format!("Basic {encoded}")
}

/// Posts a Segment batch with the test write key; the status and body.
pub fn post_batch(server: &str, events: &[Value]) -> (u16, String) {
    let body = serde_json::json!({ "batch": events }).to_string();
    http(
        "POST",
        &format!("{server}/v1/batch"),
        &[("Authorization", &basic(WRITE_KEY))],
        &body,
    )
}

/// One HTTP/1.1 request over a new connection; the status and body (0 and what was read when
/// the connection ended without an answer).
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let (host, path) = split(url);
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    raw(url, &bytes)
}

/// Sends `bytes` as they are to the host of `url`; the status and body of the answer.
pub fn raw(url: &str, bytes: &[u8]) -> (u16, String) {
    let (host, _) = split(url);
    let mut stream = TcpStream::connect(host).expect("the server accepts connections");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    // The server may answer before reading everything (a refused body): that is an answer too.
    let _ = stream.write_all(bytes);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    parse(&String::from_utf8_lossy(&response))
}

fn split(url: &str) -> (&str, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    rest.split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")))
}

fn parse(response: &str) -> (u16, String) {
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        decode_chunked(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

/// The body of a chunked response, or the body as it is.
fn decode_chunked(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, tail)) = rest.split_once("\r\n") else {
            return body.to_owned();
        };
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_owned();
        };
        if size == 0 {
            return out;
        }
        if tail.len() < size {
            return body.to_owned();
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
}
