//! `GET /console/api/overview`: what the page the console opens on shows above the live events:
//! each source (events per second, refused requests and why), each connection (delivered,
//! retrying, dead, delivery times, last error), the store, and the setup served (generation,
//! and every problem of the last reload, located as `ferry validate` prints it).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::app::App;
use crate::metrics;
use crate::setup::StoreSetup;

pub(crate) async fn overview(State(app): State<Arc<App>>) -> Json<Value> {
    let setup = app.setup.load_full();
    let status = app.status.lock().await.clone();
    let now = super::now_ms();
    let mut depths = Vec::with_capacity(setup.connections.len());
    for name in setup.connections.keys() {
        depths.push(app.queue.depth(name).await.ok());
    }
    let kept = app.console.stats();
    let sources: Vec<Value> = setup
        .sources
        .iter()
        .map(|(name, source)| {
            let received = app
                .metrics
                .received
                .get_or_create(&metrics::source(name))
                .get();
            let rejected = app
                .metrics
                .rejected
                .get_or_create(&metrics::source(name))
                .get();
            json!({
                "name": name,
                "kind": source.kind.as_str(),
                "received": received,
                "rejected": rejected,
                "connections": setup.connections_of(name).map(|c| &c.name).collect::<Vec<_>>(),
                "stats": kept.source(name, now),
            })
        })
        .chain(kept.unknown_sources(&setup.sources).map(|endpoint| {
            json!({
                "name": endpoint,
                "kind": endpoint,
                "unknown": true,
                "stats": kept.source(endpoint, now),
            })
        }))
        .collect();
    let connections: Vec<Value> = setup
        .connections
        .values()
        .zip(depths)
        .map(|(connection, depth)| {
            let label = metrics::connection(&connection.name);
            json!({
                "name": connection.name,
                "source": connection.source,
                "mapping": &*connection.connection.mapping().name,
                "dry_run": connection.dry_run,
                "ordered": connection.order.is_some(),
                "delivered": app.metrics.delivered.get_or_create(&label).get(),
                "retried": app.metrics.retried.get_or_create(&label).get(),
                "dead_lettered": app.metrics.dead.get_or_create(&label).get(),
                "depth": depth.map(|d| json!({
                    "pending": d.pending,
                    "in_flight": d.in_flight,
                    "retrying": d.retrying,
                    "dead": d.dead,
                })),
                "stats": kept.connection(&connection.name, now),
            })
        })
        .collect();
    drop(kept);
    let store = match &setup.store {
        StoreSetup::Sqlite => json!({
            "kind": "sqlite",
            "where": setup.data_dir.join(crate::STORE_FILE).display().to_string(),
        }),
        StoreSetup::Nats(options) => json!({
            "kind": "jetstream",
            "where": options.servers_shown(),
        }),
    };
    Json(json!({
        "now_ms": now,
        "ready": app.ready.load(Ordering::Acquire),
        "generation": status.generation,
        "loaded_at": status.loaded_at,
        "config": status.origin,
        "last_reload": status.last_reload,
        "store": store,
        "sources": sources,
        "connections": connections,
        "console": {
            "watched": app.console.watched(),
            "live_per_second": super::LIVE_PER_SECOND,
        },
    }))
}
