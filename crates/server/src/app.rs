//! What the parts of a running server share: the state the HTTP handlers read ([`App`]), what
//! `/admin/status` shows of reloads ([`Status`]), and what delivery workers share
//! ([`WorkerContext`]). Kept apart from the parts themselves so that none imports another.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use ferry_queue::Queue;
use serde::Serialize;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::delivery_runtime::DeliveryRuntime;
use crate::dry_run::DryRunLog;
use crate::metrics::Metrics;
use crate::setup::{ConfigOrigin, Setup};

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

/// What `/admin/status` shows of the setup and its reloads.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// 1 for the setup loaded at start, one more for each successful reload.
    pub generation: u64,
    /// When the setup being served was loaded.
    pub loaded_at: String,
    /// The configuration file, or that the embedded default is used.
    pub origin: String,
    pub last_reload: Option<ReloadOutcome>,
}

impl Status {
    pub fn started(origin: &ConfigOrigin) -> Status {
        Status {
            generation: 1,
            loaded_at: ferry_delivery::timestamp(std::time::SystemTime::now()),
            origin: match origin {
                ConfigOrigin::File(path) => path.display().to_string(),
                ConfigOrigin::Embedded => "(embedded default configuration)".to_owned(),
            },
            last_reload: None,
        }
    }
}

/// The outcome of one reload.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadOutcome {
    pub at: String,
    /// What asked for it: `file change`, `SIGHUP` or `admin`.
    pub trigger: String,
    pub ok: bool,
    /// The generation served after it.
    pub generation: u64,
    /// Every problem found, when it failed.
    pub problems: Vec<Problem>,
}

/// One problem of a refused setup.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub help: Option<String>,
    /// The problem as the CLI prints it, with its snippet.
    pub rendered: String,
}

/// What every connection's delivery worker shares.
#[derive(Clone)]
pub struct WorkerContext {
    pub queue: Arc<dyn Queue>,
    pub metrics: Arc<Metrics>,
    pub dry_run: Arc<DryRunLog>,
    /// Where workers run: threads of their own, below ingest's priority.
    pub runtime: DeliveryRuntime,
}
