//! `ferry serve`: a durable event gateway that existing SDKs talk to.
//!
//! ```text
//! SDKs --HTTP--> http (limits, TLS) --(wire formats: wire::*)--> Queue::enqueue (commit, then ack)
//!                                                              |
//!   worker per connection: Queue::claim -> Pipeline (map, batch, send) -> ticket -> Queue::settle
//!                                                              ^
//!   reload: notify / SIGHUP / POST /admin/reload -> Setup::load -> Workers::apply (keep last good)
//! ```
//!
//! - `setup`: the configuration and mappings, checked together.
//! - `wire`: Segment, Amplitude and Extole wire formats, as pure functions (public only with the
//!   `fuzzing` feature, for the fuzz targets).
//! - `http`: the listener (connection limits, timeouts, TLS) and the axum routes.
//! - `worker`: per-connection delivery from the queue; `settle`: outcomes into settlements.
//! - `reload`: hot reload; `app`: what those parts share.
//! - `store`: the durable store's files; `metrics`: Prometheus metrics.
//! - `console`: the console at `/console`, and what the other parts report to it.

mod app;
mod console;
mod delivery_runtime;
mod dry_run;
mod error;
mod http;
mod metrics;
mod order_key;
mod reload;
mod settle;
mod setup;
mod store;
#[cfg(feature = "fuzzing")]
pub mod wire;
#[cfg(not(feature = "fuzzing"))]
mod wire;
mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::app::WorkerContext;
use crate::app::{App, Status};
use crate::console::Console;
use crate::delivery_runtime::DeliveryRuntime;
use crate::dry_run::DryRunLog;
pub use crate::error::{ServeError, StartError, StopError, StoreError};
use crate::metrics::Metrics;
use crate::reload::Reloader;
pub use crate::setup::{
    ConfigOrigin, ConnectionSetup, EMBEDDED_CONFIG, Reach, Setup, SourceSetup, StoreSetup,
    interpolate,
};
use crate::store::open_queue;
pub use crate::store::{STORE_FILE, open_queue_at};
use crate::worker::Workers;

/// How `ferry serve` runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub origin: ConfigOrigin,
    /// Overrides the configuration's `listen`.
    pub listen: Option<String>,
    /// Overrides the configuration's `data`.
    pub data: Option<std::path::PathBuf>,
    /// Send nothing, whatever the configuration says.
    pub dry_run: bool,
    /// How long deliveries in flight may take to finish at shutdown before they are left
    /// pending for the next start.
    pub drain: Duration,
}

impl Options {
    /// Loads the setup and applies the command line's overrides to it.
    pub(crate) fn load(&self) -> Result<Setup, ferry_spec::Diagnostics> {
        let mut setup = Setup::load(&self.origin)?;
        if let Some(data) = &self.data {
            setup.data_dir.clone_from(data);
        }
        if let Some(listen) = &self.listen {
            setup.listener.address.clone_from(listen);
        }
        if self.dry_run {
            force_dry_run(&mut setup);
        }
        Ok(setup)
    }
}

/// A server that is listening.
pub struct Running {
    /// The address it listens on (useful with port 0).
    pub address: SocketAddr,
    app: Arc<App>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    stop_server: oneshot::Sender<()>,
    stop_workers: oneshot::Sender<Duration>,
    reloader: tokio::task::JoinHandle<()>,
    drain: Duration,
}

/// Loads the setup, opens the store, starts the workers and listens. Every problem of the
/// configuration and its mappings is in the error.
pub async fn start(options: Options) -> Result<Running, StartError> {
    let loading = options.clone();
    let setup = tokio::task::spawn_blocking(move || loading.load())
        .await
        .map_err(StartError::Load)?
        .map_err(StartError::Setup)?;
    let queue = open_queue(&setup).await?;
    let metrics = Arc::new(Metrics::new());
    let (console, sightings) = Console::new();
    let console = Arc::new(console);
    tokio::spawn(Arc::clone(&console).run(sightings));
    let dry_run = Arc::new(DryRunLog::new(&setup.data_dir.join("dry-run.ndjson")));
    let mut workers = Workers::new(WorkerContext {
        queue: Arc::clone(&queue),
        metrics: Arc::clone(&metrics),
        dry_run,
        runtime: DeliveryRuntime::start().map_err(StartError::Runtime)?,
        console: Arc::clone(&console),
    });
    workers.apply(&setup).await.map_err(StartError::Declare)?;
    metrics.generation.set(1);

    let address = setup.listener.address.clone();
    let listener = TcpListener::bind(&address)
        .await
        .map_err(|source| StartError::Listen {
            address: address.clone(),
            source,
        })?;
    let address = listener
        .local_addr()
        .map_err(|source| StartError::Listen { address, source })?;
    let scheme = if setup.listener.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let (reloads, requests) = mpsc::channel(4);
    let app = Arc::new(App {
        status: Mutex::new(Status::started(&options.origin)),
        setup: ArcSwap::from_pointee(setup),
        queue,
        metrics,
        reloads,
        ready: AtomicBool::new(true),
        console,
    });
    let (stop_workers, workers_stop) = oneshot::channel();
    let drain = options.drain;
    let reloader = Reloader::new(options, Arc::clone(&app), workers);
    let reloader = tokio::spawn(reloader.run(requests, workers_stop));
    let (stop_server, server_stop) = oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(listener, Arc::clone(&app), async move {
        let _ = server_stop.await;
    }));
    tracing::info!("listening on {scheme}://{address}");
    Ok(Running {
        address,
        app,
        server,
        stop_server,
        stop_workers,
        reloader,
        drain,
    })
}

impl Running {
    /// The setup being served now; a reload replaces it.
    pub fn setup(&self) -> Arc<Setup> {
        self.app.setup.load_full()
    }

    /// The store: what is queued, in flight and dead.
    pub fn queue(&self) -> &dyn ferry_queue::Queue {
        self.app.queue.as_ref()
    }

    /// Every metric in the Prometheus text format, as `GET /metrics` shows them but without
    /// reading the queue depths from the store first.
    pub fn metrics_text(&self) -> String {
        self.app.metrics.render()
    }

    /// Shuts down gracefully: stops accepting requests (those being answered finish), then
    /// lets deliveries in flight finish within the drain time; what is left stays pending in
    /// the store for the next start.
    pub async fn stop(self) -> Result<(), StopError> {
        self.app.ready.store(false, Ordering::Release);
        // Live streams never end by themselves: end them so that the listener can stop.
        self.app.console.close();
        let _ = self.stop_server.send(());
        let served = self.server.await;
        let _ = self.stop_workers.send(self.drain);
        self.reloader.await.map_err(StopError::Task)?;
        served
            .map_err(StopError::Task)?
            .map_err(StopError::Listener)
    }
}

/// Runs until `shutdown` completes (SIGTERM or Ctrl-C in the CLI), then stops gracefully.
pub async fn serve(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let running = start(options).await?;
    shutdown.await;
    tracing::info!("shutting down: no new requests; finishing deliveries in flight");
    running.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Makes every connection a dry run.
pub(crate) fn force_dry_run(setup: &mut Setup) {
    for connection in setup.connections.values_mut() {
        if !connection.dry_run {
            *connection = Arc::new(ConnectionSetup {
                name: connection.name.clone(),
                source: connection.source.clone(),
                connection: Arc::clone(&connection.connection),
                dry_run: true,
                order: connection.order.clone(),
            });
        }
    }
}
