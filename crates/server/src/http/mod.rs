//! The server's HTTP surface: the ingest endpoints SDKs post to, and the operations endpoints.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/{identify,track,page,screen,group,alias,batch,import}` | Segment's HTTP Tracking API |
//! | `POST /2/httpapi` | Amplitude's HTTP V2 API |
//! | `POST /webhooks/extole/{source}` | Extole's webhooks, with a shared secret |
//! | `GET /healthz`, `GET /readyz` | liveness, and readiness to accept events |
//! | `GET /metrics` | Prometheus metrics |
//! | `GET /admin/status`, `POST /admin/reload` | the setup served, and reloading it (loopback only) |

mod ingest;
mod ops;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use ferry_queue::Queue;
use tokio::sync::{Mutex, mpsc, oneshot};
use tower_http::decompression::RequestDecompressionLayer;

use crate::metrics::Metrics;
use crate::reload::{ReloadOutcome, Status};
use crate::setup::Setup;

/// The largest request body read, after decompression. Each wire format refuses smaller
/// bodies with its own answer; this bounds the work a request can cause.
pub const MAX_BODY_BYTES: usize = 1024 * 1024 + 64 * 1024;

/// What handlers share.
pub struct App {
    /// The setup being served; swapped whole by a reload.
    pub setup: ArcSwap<Setup>,
    pub queue: Arc<dyn Queue>,
    pub metrics: Arc<Metrics>,
    /// The outcome of the last reload.
    pub status: Mutex<Status>,
    /// Asks the reloader to reload, and waits for the outcome.
    pub reloads: mpsc::Sender<oneshot::Sender<ReloadOutcome>>,
    /// False until the workers run, and again once shutdown begins.
    pub ready: AtomicBool,
}

/// Every route.
pub fn router(app: Arc<App>) -> Router {
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
        .with_state(app)
}
