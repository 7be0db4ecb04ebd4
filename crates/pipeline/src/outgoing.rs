//! Planned requests as the delivery layer sends them, and as dead letters record them (with
//! secrets redacted).

use ferry_delivery::{Method, Outgoing, RecordedRequest, RecordedResponse, Response};
use ferry_engine::{Body, Connection, PlannedRequest};

/// The request to send, exactly as planned: its headers (the body's `Content-Type` among
/// them) and its body.
pub(crate) fn outgoing(request: &PlannedRequest) -> Outgoing {
    let method =
        Method::from_bytes(request.method.as_str().as_bytes()).expect("HTTP methods are valid");
    let mut out = Outgoing::new(method, request.url.clone());
    out.headers.reserve(request.headers.len());
    for header in &request.headers {
        out.headers
            .push((header.name.to_string(), header.value.to_string()));
    }
    if let Some(body) = &request.body {
        out.body = match body {
            Body::Json(text) | Body::JsonArray(text) | Body::Ndjson(text) => text.clone().into(),
            Body::Form(_) => body.to_bytes().into(),
        };
    }
    out
}

/// The request as a dead letter records it: every secret setting redacted.
pub(crate) fn recorded(request: &PlannedRequest, connection: &Connection) -> RecordedRequest {
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                connection.redact(h.display_value()).into_owned(),
            )
        })
        .collect();
    let body = match &request.body {
        Some(body) => {
            let bytes = body.to_bytes();
            connection
                .redact(&String::from_utf8_lossy(&bytes))
                .into_owned()
        }
        None => String::new(),
    };
    RecordedRequest {
        method: request.method.as_str().to_owned(),
        url: connection.redact(&request.url).into_owned(),
        headers,
        body,
    }
}

/// The response as a dead letter records it, redacted in case it echoes a secret.
pub(crate) fn recorded_response(response: &Response, connection: &Connection) -> RecordedResponse {
    let mut recorded = RecordedResponse::from(response);
    recorded.body = connection.redact(&recorded.body).into_owned();
    for (_, value) in &mut recorded.headers {
        *value = connection.redact(value).into_owned();
    }
    recorded
}
