//! `GET /console/api/events`: the recent events, newest first, with what became of each; and
//! `GET /console/api/events/{id}`: one event in full: as stored, what each connection of its
//! source plans for it now (requests, skips, failures, secrets redacted) with the trace of
//! every field, and what became of it (status, attempts with their times, responses).

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_engine::{CannedResponses, DryRun, Outcome, Shown};
use ferry_golden::RequestLines;
use ferry_pipeline::{Exchange, Journal, Note};
use serde::Deserialize;
use serde_json::{Value, json};

use super::recent::{Entry, KEPT};
use super::sightings::Fate;
use crate::app::App;
use crate::setup::ConnectionSetup;

#[derive(Debug, Deserialize)]
pub(crate) struct Listing {
    limit: Option<usize>,
    source: Option<String>,
}

/// An event as lists show it.
pub(crate) fn listed(entry: &Entry) -> Value {
    let summary = entry.summary();
    json!({
        "id": entry.id,
        "source": &*entry.source,
        "at_ms": entry.at_ms,
        "type": summary.kind,
        "name": summary.name,
        "user": summary.user,
        "fates": entry.fates.iter().map(|(connection, fate)| {
            let mut shown = self::fate(fate);
            shown["connection"] = json!(&**connection);
            shown
        }).collect::<Vec<_>>(),
    })
}

/// What became of an event for one connection, as lists show it.
pub(crate) fn fate(fate: &Fate) -> Value {
    json!({
        "status": fate.status.as_str(),
        "reason": fate.reason,
        "at_ms": fate.at_ms,
        "attempt": fate.attempt,
        "took_ms": fate.took_ms,
    })
}

pub(crate) async fn recent(
    State(app): State<Arc<App>>,
    Query(listing): Query<Listing>,
) -> Json<Value> {
    let limit = listing.limit.unwrap_or(100).min(KEPT);
    let recent = app.console.recent();
    let events: Vec<Value> = recent
        .newest(limit, listing.source.as_deref())
        .map(listed)
        .collect();
    Json(json!({ "events": events, "kept": KEPT }))
}

pub(crate) async fn one(State(app): State<Arc<App>>, Path(id): Path<i64>) -> Response {
    let found = {
        let recent = app.console.recent();
        recent.get(id).map(|entry| {
            (
                Arc::clone(&entry.source),
                entry.at_ms,
                Arc::clone(&entry.body),
                entry.fates.clone(),
            )
        })
    };
    let Some((source, at_ms, body, fates)) = found else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({
                "error": format!(
                    "event {id} is not among the {KEPT} most recent events this server saw"
                )
            })),
        )
            .into_response();
    };
    let event: Option<Value> = serde_json::from_str(&body).ok();
    let setup = app.setup.load_full();
    let connections: Vec<Value> = setup
        .connections_of(&source)
        .map(|connection| {
            let fate = fates
                .iter()
                .find(|(name, _)| **name == *connection.name)
                .map(|(_, fate)| fate);
            explain(connection, event.as_ref(), fate)
        })
        .collect();
    Json(json!({
        "id": id,
        "source": &*source,
        "at_ms": at_ms,
        "event": event.unwrap_or(Value::String(body.to_string())),
        "connections": connections,
    }))
    .into_response()
}

/// What `connection` plans for `event` now, and what became of it.
fn explain(connection: &ConnectionSetup, event: Option<&Value>, fate: Option<&Fate>) -> Value {
    let mapping = connection.connection.mapping();
    let (planned, trace) = match event {
        Some(event) => plan(connection, event),
        None => (Vec::new(), Vec::new()),
    };
    json!({
        "name": connection.name,
        "mapping": &*mapping.name,
        "dry_run": connection.dry_run,
        "planned": planned,
        "trace": trace,
        "fate": fate.map(|f| {
            let mut shown = self::fate(f);
            shown["journal"] = f.journal.as_deref().map_or(Value::Null, journal);
            shown
        }),
    })
}

/// The dry run of one event: each outcome as `ferry map` prints it (requests as its JSON lines),
/// and the trace, secrets redacted.
fn plan(connection: &ConnectionSetup, event: &Value) -> (Vec<Value>, Vec<String>) {
    let bound = &*connection.connection;
    let mut dry_run = DryRun::new(bound, CannedResponses::default(), false, true);
    let (shown, trace) = dry_run.event(1, event);
    let lines = RequestLines {
        mapping: &bound.mapping().name,
        connection: bound,
        show_secrets: false,
    };
    let mut planned = Vec::new();
    for output in shown {
        let Shown::Event { followed, .. } = output else {
            continue;
        };
        planned.push(match followed.outcome {
            Outcome::Request(request) => {
                let mut line = Vec::new();
                let _ = lines.write(&mut line, &[1], &request, None);
                let request: Value = serde_json::from_slice(&line).unwrap_or(Value::Null);
                json!({ "kind": "request", "request": request })
            }
            Outcome::Skipped(skip) => json!({
                "kind": "skipped",
                "action": skip.action.as_deref(),
                "reason": bound.redact(&skip.reason),
            }),
            Outcome::Failed(failure) => json!({
                "kind": "failed",
                "action": failure.action.as_deref(),
                "reason": bound.redact(&failure.message),
            }),
        });
    }
    let trace = trace
        .iter()
        .map(|line| bound.redact(line).into_owned())
        .collect();
    (planned, trace)
}

/// A watched event's journal, as the event page shows it.
fn journal(journal: &Journal) -> Value {
    let planned: Vec<Value> = journal
        .planned
        .iter()
        .map(|note| match note {
            Note::Request { label, method, url } => {
                json!({ "kind": "request", "action": label, "method": method, "url": url })
            }
            Note::Skipped { action, reason } => {
                json!({ "kind": "skipped", "action": action.as_deref(), "reason": reason })
            }
            Note::Failed { action, reason } => {
                json!({ "kind": "failed", "action": action.as_deref(), "reason": reason })
            }
        })
        .collect();
    let exchanges: Vec<Value> = journal.exchanges.iter().map(|e| exchange(e)).collect();
    json!({ "planned": planned, "exchanges": exchanges })
}

fn exchange(exchange: &Exchange) -> Value {
    json!({
        "action": &*exchange.action,
        "step": exchange.step.as_deref(),
        "events": exchange.events,
        "request": {
            "method": exchange.request.method,
            "url": exchange.request.url,
            "headers": exchange.request.headers,
            "body": exchange.request.body,
        },
        "attempts": exchange.attempts.iter().map(|a| json!({
            "at_ms": a.at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()),
            "took_ms": a.took.as_secs_f64() * 1000.0,
            "status": a.status,
            "error": a.error,
        })).collect::<Vec<_>>(),
        "response": exchange.response.as_ref().map(|r| json!({
            "status": r.status,
            "headers": r.headers,
            "body": r.body,
        })),
        "failure": exchange.failure,
    })
}
