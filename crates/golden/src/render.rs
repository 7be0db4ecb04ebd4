//! Planned requests as readable text, close to what goes over the wire.

use std::fmt::Write as _;

use ferry_engine::{Body, Connection, Outcome, PlannedRequest};

/// Renders what event number `position` led to: requests, skips and failures.
pub fn render_outcomes(position: usize, outcomes: &[Outcome], connection: &Connection) -> String {
    let mut out = String::new();
    for (i, outcome) in outcomes.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match outcome {
            Outcome::Request(request) => {
                let _ = writeln!(out, "## event {position} -> {}", request.action);
                out.push_str(&render_request(request, connection));
            }
            Outcome::Skipped(skip) => {
                let action = skip
                    .action
                    .as_deref()
                    .map(|a| format!(" -> {a}"))
                    .unwrap_or_default();
                let _ = writeln!(out, "## event {position}{action}: skipped: {}", skip.reason);
            }
            Outcome::Failed(failure) => {
                let _ = writeln!(
                    out,
                    "## event {position} -> {}: error: {}",
                    failure.action, failure.message
                );
            }
        }
    }
    out
}

/// One request: method and URL, headers, then the body (JSON pretty-printed in field order).
/// Secrets are redacted.
pub fn render_request(request: &PlannedRequest, connection: &Connection) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}",
        request.method.as_str(),
        connection.redact(&request.url)
    );
    for header in &request.headers {
        let _ = writeln!(
            out,
            "{}: {}",
            header.name,
            connection.redact(header.display_value())
        );
    }
    if let Some(body) = &request.body {
        let _ = writeln!(out, "Content-Type: {}", body.content_type());
    }
    if let Some(key) = &request.dedupe_key {
        let _ = writeln!(out, "(dedupe key: {})", connection.redact(key));
    }
    match &request.body {
        Some(Body::Json(text)) => {
            out.push('\n');
            out.push_str(&connection.redact(&pretty(text)));
            out.push('\n');
        }
        Some(Body::Form(fields)) => {
            out.push('\n');
            for (name, value) in fields {
                let _ = writeln!(out, "{name}={}", connection.redact(value));
            }
        }
        None => {}
    }
    out
}

/// Pretty-prints JSON text keeping its key order.
fn pretty(text: &str) -> String {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let mut buffer = Vec::with_capacity(text.len() * 2);
    let mut serializer = serde_json::Serializer::with_formatter(
        &mut buffer,
        serde_json::ser::PrettyFormatter::with_indent(b"  "),
    );
    match serde_transcode::transcode(&mut deserializer, &mut serializer) {
        Ok(()) => String::from_utf8(buffer).unwrap_or_else(|_| text.to_owned()),
        Err(_) => text.to_owned(),
    }
}
