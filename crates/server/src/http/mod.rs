//! The server's HTTP surface: the ingest endpoints SDKs post to, and the operations endpoints.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/{identify,track,page,screen,group,alias,batch,import}` | Segment's HTTP Tracking API |
//! | `POST /2/httpapi` | Amplitude's HTTP V2 API |
//! | `POST /webhooks/extole/{source}` | Extole's webhooks, with a shared secret |
//! | `GET /healthz`, `GET /readyz` | liveness, and readiness to accept events |
//! | `GET /metrics` | Prometheus metrics |
//! | `GET /admin/status`, `POST /admin/reload` | the setup served, and reloading it (loopback, or with the admin token) |
//! | `/console`, `/console/api/*` | the console (see [`crate::console`]) |
//!
//! Every request's body must arrive whole within `server.body_timeout_seconds` (408 otherwise),
//! and is read at most [`MAX_BODY_BYTES`] before and after decompression.

mod ingest;
mod listener;
mod ops;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower_http::decompression::RequestDecompressionLayer;

pub(crate) use self::listener::serve;
pub(crate) use self::ops::has_admin_token;
use crate::app::App;

/// The largest request body read, after decompression. Each wire format refuses smaller
/// bodies with its own answer; this bounds the work a request can cause.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024 + 64 * 1024;

/// Every route.
pub(crate) fn router(app: Arc<App>) -> Router {
    let ingest = Router::new()
        .route("/v1/{call}", post(ingest::segment))
        .route("/2/httpapi", post(ingest::amplitude))
        .route("/webhooks/extole/{source}", post(ingest::extole))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestDecompressionLayer::new());
    Router::new()
        .merge(ingest)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/admin/status", get(ops::status))
        .route("/admin/reload", post(ops::reload))
        .merge(crate::console::router(&app))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            body_deadline,
        ))
        .with_state(app)
}

/// Reads the whole body (as sent, before decompression) within the body timeout, so that a
/// client sending slowly holds nothing for long: 408 when it is late, 413 when it is too large.
async fn body_deadline(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let deadline = app.setup.load().listener.body_timeout;
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(error)) => {
            let too_large = std::error::Error::source(&error)
                .is_some_and(<dyn std::error::Error>::is::<http_body_util::LengthLimitError>);
            if too_large {
                let message = format!("the body is over the {MAX_BODY_BYTES}-byte limit");
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    axum::Json(json!({ "error": message })),
                )
                    .into_response()
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({ "error": "the body could not be read" })),
                )
                    .into_response()
            }
        }
        Err(_) => {
            app.metrics.bodies_timed_out.inc();
            let message = format!("the body did not arrive within {} s", deadline.as_secs());
            (
                StatusCode::REQUEST_TIMEOUT,
                [(axum::http::header::CONNECTION, "close")],
                axum::Json(json!({ "error": message })),
            )
                .into_response()
        }
    }
}
