//! Operations endpoints: health, readiness, metrics, status and reload.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::oneshot;

use crate::app::App;
use crate::metrics::DepthLabel;
use crate::wire::extole::same_secret;

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: events are accepted and delivered (not before the workers run, nor once
/// shutdown has begun).
pub(crate) async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// `GET /metrics`: every metric, with queue depths read from the store now.
pub(crate) async fn metrics(State(app): State<Arc<App>>) -> Response {
    refresh_depths(&app).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn refresh_depths(app: &App) {
    let setup = app.setup.load_full();
    for name in setup.connections.keys() {
        match app.queue.depth(name).await {
            Ok(depth) => {
                for (state, value) in [
                    ("pending", depth.pending),
                    ("in_flight", depth.in_flight),
                    ("retrying", depth.retrying),
                    ("dead", depth.dead),
                ] {
                    app.metrics
                        .depth
                        .get_or_create(&DepthLabel {
                            connection: name.clone(),
                            state,
                        })
                        .set(i64::try_from(value).unwrap_or(i64::MAX));
                }
            }
            Err(error) => {
                tracing::warn!(connection = %name, "cannot read the queue depth: {error}");
            }
        }
    }
}

/// `GET /admin/status`: the setup served, each connection with its queue depth, and the
/// outcome of the last reload (with every problem when it failed).
pub(crate) async fn status(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !admitted(&app, peer, &headers) {
        return forbidden();
    }
    let setup = app.setup.load_full();
    let mut connections = Vec::new();
    for (name, connection) in &setup.connections {
        let depth = app.queue.depth(name).await.ok();
        connections.push(json!({
            "name": name,
            "source": connection.source,
            "mapping": &*connection.connection.mapping().name,
            "mapping_file": connection.connection.mapping().file,
            "dry_run": connection.dry_run,
            "depth": depth.map(|d| json!({
                "pending": d.pending,
                "in_flight": d.in_flight,
                "retrying": d.retrying,
                "dead": d.dead,
            })),
        }));
    }
    let status = app.status.lock().await.clone();
    Json(json!({
        "ready": app.ready.load(Ordering::Acquire),
        "generation": status.generation,
        "loaded_at": status.loaded_at,
        "config": status.origin,
        "connections": connections,
        "last_reload": status.last_reload,
    }))
    .into_response()
}

/// `POST /admin/reload`: reloads now and answers with the outcome: 200, or 422 with every
/// problem (the last good setup keeps serving).
pub(crate) async fn reload(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !admitted(&app, peer, &headers) {
        return forbidden();
    }
    let (reply, outcome) = oneshot::channel();
    if app.reloads.send(reply).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the server is shutting down"})),
        )
            .into_response();
    }
    match outcome.await {
        Ok(outcome) => {
            let status = if outcome.ok {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            (status, Json(outcome)).into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the server is shutting down"})),
        )
            .into_response(),
    }
}

/// Admin endpoints answer loopback clients, and others that send the configured admin token
/// as `Authorization: Bearer TOKEN` (compared in constant time).
fn admitted(app: &App, peer: SocketAddr, headers: &HeaderMap) -> bool {
    peer.ip().to_canonical().is_loopback() || has_admin_token(app, headers)
}

/// Whether the request carries the configured admin token as `Authorization: Bearer TOKEN`
/// (compared in constant time); never, when no token is configured.
pub(crate) fn has_admin_token(app: &App, headers: &HeaderMap) -> bool {
    let setup = app.setup.load();
    let Some(token) = setup.listener.admin_token.as_deref() else {
        return false;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| same_secret(given.trim().as_bytes(), token.as_bytes()))
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({
            "error": "admin endpoints answer loopback clients, or clients that send the admin token"
        })),
    )
        .into_response()
}
