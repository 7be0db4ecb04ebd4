//! Planned requests as readable text, close to what goes over the wire.

use std::fmt::Write as _;

use ferry_engine::{Body, Connection, Followed, MergedRequest, Outcome, PlannedRequest};

/// Renders what event number `position` led to: requests (with the canned responses that
/// answered them), skips and failures. `connection` names the connection when a case has several.
pub fn render_followed(
    position: usize,
    connection_name: Option<&str>,
    followed: &[Followed],
    connection: &Connection,
) -> String {
    let mut out = String::new();
    let position = match connection_name {
        Some(name) => format!("{position} ({name})"),
        None => position.to_string(),
    };
    for (i, step) in followed.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match &step.outcome {
            Outcome::Request(request) => {
                let _ = writeln!(out, "## event {position} -> {}", request.label());
                out.push_str(&render_request(request, connection));
                match (&step.answer, &request.continuation) {
                    (Some(answer), _) => {
                        let body = serde_json::to_string(&answer.body).unwrap_or_default();
                        let _ = writeln!(
                            out,
                            "\n=> answered {}: {}",
                            answer.status,
                            connection.redact(&body)
                        );
                    }
                    (None, Some(_)) => {
                        out.push_str("\n=> the next steps depend on this response\n");
                    }
                    (None, None) => {}
                }
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
                let action = failure
                    .action
                    .as_deref()
                    .map(|a| format!(" -> {a}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "## event {position}{action}: error: {}",
                    failure.message
                );
            }
        }
    }
    out
}

/// A merged request: which events it carries, then the request.
pub fn render_merged(
    number: usize,
    connection_name: Option<&str>,
    merged: &MergedRequest<usize>,
    connection: &Connection,
) -> String {
    let mut out = String::new();
    let on = connection_name
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    // A shared rule merges the requests of several actions: name the rule.
    let target = merged
        .rule()
        .group()
        .map_or_else(|| merged.request.label(), str::to_owned);
    let _ = writeln!(out, "## batch {number}{on} -> {target}");
    let _ = writeln!(
        out,
        "(merges {}: {})",
        if merged.len() == 1 {
            "1 event".to_owned()
        } else {
            format!("{} events", merged.len())
        },
        ranges(&merged.items)
    );
    out.push_str(&render_request(&merged.request, connection));
    out
}

/// `1-75, 77`.
fn ranges(items: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let start = items[i];
        let mut end = start;
        while i + 1 < items.len() && items[i + 1] == end + 1 {
            i += 1;
            end = items[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(", ")
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
    if let Some(key) = &request.dedupe_key {
        let _ = writeln!(out, "(dedupe key: {})", connection.redact(key));
    }
    match &request.body {
        Some(Body::Json(text) | Body::JsonArray(text)) => {
            out.push('\n');
            out.push_str(&connection.redact(&pretty(text)));
            out.push('\n');
        }
        Some(Body::Ndjson(text)) => {
            out.push('\n');
            out.push_str(&connection.redact(text));
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
    // Checked first, so that only well-formed JSON is re-indented.
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return text.to_owned();
    }
    indent(text)
}

/// Re-indents well-formed compact or spaced JSON text by two spaces, as serde_json's pretty
/// printer does, keeping every token (numbers included) exactly as written and keys in order.
fn indent(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(char::is_ascii_whitespace) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.push(chars.next().unwrap_or_default());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pretty;

    #[test]
    fn pretty_keeps_tokens_and_order() {
        let text = r#"{"b":123456789012345678901234567890,"a":[],"c":{"d":"x\"}","e":[1.50,{}]}}"#;
        assert_eq!(
            pretty(text),
            "{\n  \"b\": 123456789012345678901234567890,\n  \"a\": [],\n  \"c\": {\n    \"d\": \"x\\\"}\",\n    \"e\": [\n      1.50,\n      {}\n    ]\n  }\n}"
        );
        assert_eq!(pretty("not json {"), "not json {");
    }
}
