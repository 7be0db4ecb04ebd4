//! Ingest handlers: authenticate, read the wire format (see [`crate::wire`]), commit to the
//! queue, and only then acknowledge.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferry_queue::{Enqueued, NewEvent, RejectedEvent};
use ferry_spec::config::SourceKind;
use serde_json::json;

use crate::app::App;
use crate::console::Sighting;
use crate::metrics;
use crate::wire::{Ingested, WireError, amplitude, extole, segment};

/// `POST /v1/{call}`: Segment's HTTP Tracking API.
pub(crate) async fn segment(
    State(app): State<Arc<App>>,
    Path(call): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let Some(call) = segment::Call::from_path_segment(&call) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"success": false, "code": "not_found", "message": "no such call"})),
        )
            .into_response();
    };
    let received = SystemTime::now();
    let parsed = match segment::parse(call, &body, &ferry_delivery::timestamp(received)) {
        Ok(parsed) => parsed,
        Err(refused) => return refuse(&app, "segment", None, refused),
    };
    let key = segment::write_key_from_basic(&headers).or(parsed.write_key);
    let setup = app.setup.load();
    let Some(source) = key
        .as_deref()
        .and_then(|k| setup.source_for_key(SourceKind::Segment, k))
    else {
        return refuse(&app, "segment", None, segment::unauthorized());
    };
    match commit(&app, source, parsed.ingested, received, started).await {
        Ok(_) => Json(segment::accepted_body()).into_response(),
        Err(unavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"success": false, "code": "unavailable", "message": unavailable})),
        )
            .into_response(),
    }
}

/// `POST /2/httpapi`: Amplitude's HTTP V2 API.
pub(crate) async fn amplitude(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let started = Instant::now();
    let received = SystemTime::now();
    let parsed = match amplitude::parse(&body) {
        Ok(parsed) => parsed,
        Err(refused) => return refuse(&app, "amplitude", None, refused),
    };
    let setup = app.setup.load();
    let Some(source) = setup.source_for_key(SourceKind::Amplitude, &parsed.api_key) else {
        return refuse(&app, "amplitude", None, amplitude::invalid_api_key());
    };
    let events = parsed.ingested.accepted.len();
    match commit(&app, source, parsed.ingested, received, started).await {
        Ok(_) => Json(amplitude::accepted_body(
            events,
            parsed.payload_size_bytes,
            millis(received),
        ))
        .into_response(),
        Err(unavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"code": 503, "error": unavailable})),
        )
            .into_response(),
    }
}

/// `POST /webhooks/extole/{source}`: Extole's webhooks, authenticated by the source's secret.
pub(crate) async fn extole(
    State(app): State<Arc<App>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let received = SystemTime::now();
    let setup = app.setup.load();
    let known = setup
        .sources
        .get_key_value(&source)
        .filter(|(_, s)| s.kind == SourceKind::Extole);
    let Some((name, found)) = known else {
        let unknown = WireError {
            status: StatusCode::NOT_FOUND,
            body: json!({"error": format!("no Extole source is named `{source}`")}),
        };
        return refuse(&app, "extole", None, unknown);
    };
    if !found
        .keys()
        .iter()
        .any(|secret| extole::authenticate(&headers, &body, secret))
    {
        return refuse(&app, "extole", Some(name), extole::unauthorized());
    }
    let ingested = match extole::parse(&body) {
        Ok(ingested) => ingested,
        Err(refused) => return refuse(&app, "extole", Some(name), refused),
    };
    let answer = extole::accepted_body(&ingested);
    match commit(&app, name, ingested, received, started).await {
        Ok(_) => Json(answer).into_response(),
        Err(unavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": unavailable})),
        )
            .into_response(),
    }
}

/// Answers a request refused whole, and tells the console why.
fn refuse(app: &App, endpoint: &'static str, source: Option<&str>, refused: WireError) -> Response {
    if app.setup.load().listener.console {
        app.console.report(Sighting::Refused {
            endpoint,
            source: source.map(Into::into),
            status: refused.status.as_u16(),
            reason: refused.reason(),
            at_ms: millis(SystemTime::now()),
        });
    }
    refused.into_response()
}

/// Commits the events of one request (and its refused events, as dead letters) and counts
/// them. The request may be acknowledged only once this returns `Ok`.
async fn commit(
    app: &App,
    source: &str,
    ingested: Ingested,
    received: SystemTime,
    started: Instant,
) -> Result<usize, String> {
    let received_at_ms = millis(received);
    let label = metrics::source(source);
    let rejected_count = ingested.rejected.len();
    // The console keeps the text of recent events: a copy, made only while it is on.
    let watched = app.setup.load().listener.console;
    let bodies: Vec<Arc<str>> = if watched {
        ingested
            .accepted
            .iter()
            .map(|a| Arc::from(a.body.as_str()))
            .collect()
    } else {
        Vec::new()
    };
    let rejected_reasons: Vec<String> = if watched {
        ingested.rejected.iter().map(|r| r.reason.clone()).collect()
    } else {
        Vec::new()
    };
    let events = ingested
        .accepted
        .into_iter()
        .map(|accepted| NewEvent {
            source: source.to_owned(),
            dedupe: accepted.dedupe,
            received_at_ms,
            body: accepted.body,
        })
        .collect();
    let rejected = ingested
        .rejected
        .into_iter()
        .map(|rejected| RejectedEvent {
            source: source.to_owned(),
            received_at_ms,
            reason: format!("refused at ingest: {}", rejected.reason),
            body: rejected.text,
        })
        .collect();
    let outcome = app.queue.enqueue(events, rejected).await.map_err(|error| {
        tracing::error!(source, "cannot store events: {error}");
        "the events could not be stored; try again".to_owned()
    })?;
    let stored = outcome
        .iter()
        .filter(|o| matches!(o, Enqueued::Stored(_)))
        .count();
    if watched {
        let events = outcome
            .iter()
            .zip(bodies)
            .filter_map(|(enqueued, body)| match enqueued {
                Enqueued::Stored(id) => Some((id.0, body)),
                Enqueued::Duplicate => None,
            })
            .collect();
        app.console.report(Sighting::Received {
            source: source.into(),
            at_ms: received_at_ms,
            events,
            rejected: rejected_reasons,
        });
    }
    app.metrics
        .received
        .get_or_create(&label)
        .inc_by(stored as u64);
    app.metrics
        .duplicates
        .get_or_create(&label)
        .inc_by((outcome.len() - stored) as u64);
    if rejected_count > 0 {
        app.metrics
            .rejected
            .get_or_create(&label)
            .inc_by(rejected_count as u64);
        tracing::warn!(
            source,
            "{rejected_count} events of a request were refused and kept as dead letters"
        );
    }
    app.metrics
        .ack_seconds
        .get_or_create(&label)
        .observe(started.elapsed().as_secs_f64());
    Ok(stored)
}

fn millis(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
