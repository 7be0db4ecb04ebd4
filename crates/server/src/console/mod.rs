//! The console at `/console`: operators watch events arrive and see what each connection made
//! of them, inspect one event (the stored event, its planned requests and trace, the responses
//! and attempts), inspect, replay and purge dead letters, and try mappings in a playground.
//!
//! ```text
//! ingest (http::ingest) --received/refused--\
//! workers (worker, settle) --claimed/settled-+-> Sightings (bounded, never waits) -> console task
//!                                                     | recent events, per-connection stats, rates
//!                                                     \-> live stream (rate-limited) -> viewers
//! browser: /console (assets) --fetch + Bearer token--> /console/api/* (access rules: access.rs)
//! ```
//!
//! Nothing here slows ingest: the parts hand over what they saw with `try_send` (dropped and
//! counted when the console falls behind), bodies are parsed only for what a viewer is shown,
//! and the live stream shows at most [`LIVE_PER_SECOND`] events a second, counting the rest.
//!
//! - `sightings`: what the other parts report, and the task that folds it in.
//! - `recent`: the most recent events and what became of them; `stats`: per-source and
//!   per-connection numbers and their per-second history.
//! - `access`: who is answered; `assets`: the page, its script and style, built in.
//! - `overview`, `events`, `stream`, `dead`, `playground`: the API behind each page.

mod access;
mod assets;
mod dead;
mod events;
mod overview;
mod playground;
mod recent;
mod sightings;
mod stats;
mod stream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::{broadcast, mpsc, watch};

use crate::app::App;

use self::recent::Recent;
use self::sightings::Budget;
pub(crate) use self::sightings::{Fate, FateStatus, Sighting};
use self::stats::Stats;
use self::stream::Live;

/// Most events a second the live stream shows; the rest are counted and the count is shown.
pub(crate) const LIVE_PER_SECOND: u32 = 100;
/// Most sightings waiting for the console task; beyond, they are dropped and counted.
const SIGHTINGS_WAITING: usize = 4096;
/// Most live messages a slow viewer may fall behind before the oldest are dropped (and the
/// number dropped shown to it).
const LIVE_BUFFER: usize = 512;

/// What the console knows, shared by the parts that report to it and the API that reads it.
pub(crate) struct Console {
    sightings: mpsc::Sender<Sighting>,
    /// Sightings dropped because the console task fell behind.
    lost: AtomicU64,
    live: broadcast::Sender<Arc<Live>>,
    /// What is left of this second's [`LIVE_PER_SECOND`].
    budget: Budget,
    recent: Mutex<Recent>,
    stats: Mutex<Stats>,
    /// Set at shutdown, so that live streams end and let the listener stop.
    closing: watch::Sender<bool>,
}

impl Console {
    /// The console and the receiving end of its sightings, for [`Console::run`].
    pub(crate) fn new() -> (Console, mpsc::Receiver<Sighting>) {
        let (sightings, receiver) = mpsc::channel(SIGHTINGS_WAITING);
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        let console = Console {
            sightings,
            lost: AtomicU64::new(0),
            live,
            budget: Budget::default(),
            recent: Mutex::new(Recent::default()),
            stats: Mutex::new(Stats::default()),
            closing: watch::channel(false).0,
        };
        (console, receiver)
    }

    /// Hands over what a part saw, without waiting: when the console task is behind, the
    /// sighting is dropped and counted.
    pub(crate) fn report(&self, sighting: Sighting) {
        if self.sightings.try_send(sighting).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether anyone watches the live stream now.
    pub(crate) fn watched(&self) -> bool {
        self.live.receiver_count() > 0
    }

    /// Ends every live stream (at shutdown).
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stats(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The console's routes: the pages (open to all: they hold no data) and the API (answering
/// whom `/admin/*` answers). With `server.console: false`, all of them answer 404.
pub(crate) fn router(app: &Arc<App>) -> Router<Arc<App>> {
    let api = Router::new()
        .route("/console/api/overview", get(overview::overview))
        .route("/console/api/events", get(events::recent))
        .route("/console/api/events/{id}", get(events::one))
        .route("/console/api/stream", get(stream::stream))
        .route("/console/api/dead", get(dead::list))
        .route("/console/api/dead/{id}", get(dead::show))
        .route("/console/api/dead/replay", post(dead::replay))
        .route("/console/api/dead/purge", post(dead::purge))
        .route("/console/api/mappings", get(playground::mappings))
        .route("/console/api/playground", post(playground::run))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(app),
            access::api,
        ));
    Router::new()
        .route("/console", get(assets::page))
        .route("/console/", get(assets::page))
        .route("/console/events/{id}", get(assets::page))
        .route("/console/dead", get(assets::page))
        .route("/console/playground", get(assets::page))
        .route("/console/assets/{file}", get(assets::asset))
        .merge(api)
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(app),
            access::enabled,
        ))
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
