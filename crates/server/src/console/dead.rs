//! The dead-letter page's API: list (filtered by connection and reason), show one (the event,
//! the reason, the last request and response), replay and purge. On JetStream every node
//! answers for the whole shared store.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_queue::{DeadSummary, Select};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;

/// Most dead letters a list shows.
const LISTED: usize = 1000;
/// The `connection` filter naming events refused at ingest (they have no connection).
const INGEST: &str = "(ingest)";

#[derive(Debug, Deserialize)]
pub(crate) struct Listing {
    connection: Option<String>,
    /// Words the reason must contain (any case).
    reason: Option<String>,
    limit: Option<usize>,
}

/// Which dead letters a replay or purge acts on: `{"id": N}`, `{"connection": NAME}` or
/// `{"all": true}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Which {
    id: Option<i64>,
    connection: Option<String>,
    #[serde(default)]
    all: bool,
}

impl Which {
    /// What to act on, or why the request does not say.
    fn select(self) -> Result<Select, &'static str> {
        match (self.id, self.connection, self.all) {
            (Some(id), None, false) => Ok(Select::One(id)),
            (None, Some(connection), false) => Ok(Select::Connection(connection)),
            (None, None, true) => Ok(Select::All),
            _ => Err("give exactly one of `id`, `connection` or `all: true`"),
        }
    }
}

fn summary(letter: &DeadSummary) -> Value {
    json!({
        "id": letter.id,
        "at_ms": letter.at_ms,
        "connection": letter.connection,
        "source": letter.source,
        "event_id": letter.event_id.map(|e| e.0),
        "mapping": letter.mapping,
        "reason": letter.reason,
    })
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

fn unavailable(error: &ferry_queue::QueueError) -> Response {
    tracing::error!("the console cannot read the dead letters: {error}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": format!("the store cannot be read: {error}") })),
    )
        .into_response()
}

pub(crate) async fn list(State(app): State<Arc<App>>, Query(listing): Query<Listing>) -> Response {
    let limit = listing.limit.unwrap_or(200).min(LISTED);
    let ingest = listing.connection.as_deref() == Some(INGEST);
    let connection = listing.connection.as_deref().filter(|_| !ingest);
    let words = listing.reason.unwrap_or_default().to_lowercase();
    let filtered = ingest || !words.is_empty();
    let fetched = if filtered { LISTED } else { limit };
    let letters = match app.queue.dead_letters(connection, fetched).await {
        Ok(letters) => letters,
        Err(error) => return unavailable(&error),
    };
    let listed: Vec<Value> = letters
        .iter()
        .filter(|l| !ingest || l.connection.is_none())
        .filter(|l| words.is_empty() || l.reason.to_lowercase().contains(&words))
        .take(limit)
        .map(summary)
        .collect();
    let setup = app.setup.load();
    let connections: Vec<&str> = setup.connections.keys().map(String::as_str).collect();
    Json(json!({
        "letters": listed,
        "connections": connections,
        "ingest": INGEST,
    }))
    .into_response()
}

pub(crate) async fn show(State(app): State<Arc<App>>, Path(id): Path<i64>) -> Response {
    match app.queue.dead_letter(id).await {
        Ok(Some(record)) => {
            let event: Value = serde_json::from_str(&record.event)
                .unwrap_or_else(|_| Value::String(record.event.clone()));
            let mut shown = summary(&record.summary);
            shown["event"] = event;
            shown["letters"] = Value::Array(record.letters);
            Json(shown).into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no dead letter {id}") })),
        )
            .into_response(),
        Err(error) => unavailable(&error),
    }
}

pub(crate) async fn replay(State(app): State<Arc<App>>, Json(which): Json<Which>) -> Response {
    let select = match which.select() {
        Ok(select) => select,
        Err(message) => return bad_request(message),
    };
    match app.queue.replay(select).await {
        Ok(replayed) => {
            tracing::info!(
                queued = replayed.queued,
                "dead letters replayed from the console"
            );
            Json(json!({
                "queued": replayed.queued,
                "skipped": replayed.skipped.iter().map(|(id, why)| json!({"id": id, "reason": why})).collect::<Vec<_>>(),
            }))
            .into_response()
        }
        Err(error) => unavailable(&error),
    }
}

pub(crate) async fn purge(State(app): State<Arc<App>>, Json(which): Json<Which>) -> Response {
    let select = match which.select() {
        Ok(select) => select,
        Err(message) => return bad_request(message),
    };
    match app.queue.purge(select).await {
        Ok(purged) => {
            tracing::info!(purged, "dead letters purged from the console");
            Json(json!({ "purged": purged })).into_response()
        }
        Err(error) => unavailable(&error),
    }
}
