//! `ferry serve`: a durable event gateway that existing SDKs talk to.
//!
//! ```text
//! SDKs --HTTP--> http::ingest --(wire formats: ingest::*)--> Queue::enqueue (commit, then ack)
//!                                                              |
//!   worker per connection: Queue::claim -> Pipeline (map, batch, send) -> ticket -> Queue::settle
//!                                                              ^
//!   reload: notify / SIGHUP / POST /admin/reload -> Setup::load -> Workers::apply (keep last good)
//! ```
//!
//! - [`setup`]: the configuration and mappings, checked together.
//! - [`ingest`]: Segment, Amplitude and Extole wire formats, as pure functions.
//! - [`http`]: the axum routes.
//! - [`worker`]: per-connection delivery from the queue.
//! - [`settle`]: outcomes into queue settlements, and the retry schedule.
//! - [`reload`]: hot reload.
//! - [`metrics`]: Prometheus metrics.

pub mod dry_run;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod reload;
pub mod settle;
pub mod setup;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use ferry_queue::{Queue, SqliteOptions, SqliteQueue};
use ferry_spec::config::Synchronous;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::dry_run::DryRunLog;
use crate::http::App;
use crate::metrics::Metrics;
use crate::reload::{Reloader, Status};
use crate::setup::{ConfigOrigin, Setup};
use crate::worker::{Shared, Workers};

/// The store's file name inside the data folder.
pub const STORE_FILE: &str = "ferry.sqlite";

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration or a mapping has problems: every one of them.
    #[error("{0}")]
    Setup(ferry_spec::Diagnostics),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

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
    pub fn load(&self) -> Result<Setup, ferry_spec::Diagnostics> {
        let mut setup = Setup::load(&self.origin)?;
        if let Some(data) = &self.data {
            setup.data_dir.clone_from(data);
        }
        if let Some(listen) = &self.listen {
            setup.config.listen.clone_from(listen);
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
    pub app: Arc<App>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    stop_server: oneshot::Sender<()>,
    stop_workers: oneshot::Sender<Duration>,
    reloader: tokio::task::JoinHandle<()>,
    drain: Duration,
}

/// Opens the store in `data_dir` (creating the folder).
pub fn open_store(data_dir: &Path, setup: Option<&Setup>) -> anyhow::Result<SqliteQueue> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data folder `{}`", data_dir.display()))?;
    let mut options = SqliteOptions::default();
    if let Some(setup) = setup {
        options.synchronous_full = setup.config.store.synchronous == Synchronous::Full;
        options.dedupe_window =
            Duration::from_secs(u64::from(setup.config.store.dedupe_hours) * 3600);
    }
    Ok(SqliteQueue::open(&data_dir.join(STORE_FILE), options)?)
}

/// Loads the setup, opens the store, starts the workers and listens. Every problem of the
/// configuration and its mappings is in the error.
pub async fn start(options: Options) -> Result<Running, StartError> {
    let loading = options.clone();
    let setup = tokio::task::spawn_blocking(move || loading.load())
        .await
        .map_err(anyhow::Error::from)?
        .map_err(StartError::Setup)?;
    let queue: Arc<dyn Queue> = Arc::new(open_store(&setup.data_dir, Some(&setup))?);
    let metrics = Arc::new(Metrics::new());
    let dry_run = Arc::new(DryRunLog::new(&setup.data_dir.join("dry-run.ndjson")));
    let mut workers = Workers::new(Shared {
        queue: Arc::clone(&queue),
        metrics: Arc::clone(&metrics),
        dry_run,
    });
    workers.apply(&setup).await.map_err(anyhow::Error::from)?;
    metrics.generation.set(1);

    let listener = TcpListener::bind(&setup.config.listen)
        .await
        .with_context(|| format!("cannot listen on `{}`", setup.config.listen))?;
    let address = listener.local_addr().map_err(anyhow::Error::from)?;
    let (reloads, requests) = mpsc::channel(4);
    let app = Arc::new(App {
        status: Mutex::new(Status::started(&options.origin)),
        setup: ArcSwap::from_pointee(setup),
        queue,
        metrics,
        reloads,
        ready: AtomicBool::new(true),
    });
    let (stop_workers, workers_stop) = oneshot::channel();
    let drain = options.drain;
    let reloader = Reloader {
        options,
        app: Arc::clone(&app),
        workers,
        generation: 1,
    };
    let reloader = tokio::spawn(reloader.run(requests, workers_stop));
    let (stop_server, server_stop) = oneshot::channel::<()>();
    let router = http::router(Arc::clone(&app));
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = server_stop.await;
        })
        .await
    });
    tracing::info!("listening on http://{address}");
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
    /// Shuts down gracefully: stops accepting requests (those being answered finish), then
    /// lets deliveries in flight finish within the drain time; what is left stays pending in
    /// the store for the next start.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.app.ready.store(false, Ordering::Release);
        let _ = self.stop_server.send(());
        let served = self.server.await;
        let _ = self.stop_workers.send(self.drain);
        self.reloader.await?;
        served??;
        Ok(())
    }
}

/// Runs until `shutdown` completes (SIGTERM or Ctrl-C in the CLI), then stops gracefully.
pub async fn serve(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let running = start(options).await?;
    shutdown.await;
    tracing::info!("shutting down: no new requests; finishing deliveries in flight");
    running.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Makes every connection a dry run.
pub fn force_dry_run(setup: &mut Setup) {
    for connection in setup.connections.values_mut() {
        if !connection.dry_run {
            *connection = Arc::new(setup::ConnectionSetup {
                name: connection.name.clone(),
                source: connection.source.clone(),
                connection: Arc::clone(&connection.connection),
                dry_run: true,
            });
        }
    }
}
