//! What the parts of a running server share: the state the HTTP handlers read ([`App`]), what
//! `/admin/status` shows of reloads ([`Status`]), and what delivery workers share
//! ([`WorkerContext`]). Kept apart from the parts themselves so that none imports another.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use ferry_queue::Queue;
use serde::Serialize;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::console::Console;
use crate::delivery_runtime::DeliveryRuntime;
use crate::dry_run::DryRunLog;
use crate::metrics::Metrics;
use crate::setup::{ConfigOrigin, Setup};

/// What handlers share.
pub(crate) struct App {
    /// The setup being served; swapped whole by a reload.
    pub(crate) setup: ArcSwap<Setup>,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) metrics: Arc<Metrics>,
    /// The outcome of the last reload.
    pub(crate) status: Mutex<Status>,
    /// Asks the reloader to reload, and waits for the outcome.
    pub(crate) reloads: mpsc::Sender<oneshot::Sender<ReloadOutcome>>,
    /// False until the workers run, and again once shutdown begins.
    pub(crate) ready: AtomicBool,
    /// What the console shows.
    pub(crate) console: Arc<Console>,
}

/// What `/admin/status` shows of the setup and its reloads.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Status {
    /// 1 for the setup loaded at start, one more for each successful reload.
    pub(crate) generation: u64,
    /// When the setup being served was loaded.
    pub(crate) loaded_at: String,
    /// The configuration file, or that the embedded default is used.
    pub(crate) origin: String,
    pub(crate) last_reload: Option<ReloadOutcome>,
}

impl Status {
    pub(crate) fn started(origin: &ConfigOrigin) -> Status {
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
pub(crate) struct ReloadOutcome {
    pub(crate) at: String,
    /// What asked for it: `file change`, `SIGHUP` or `admin`.
    pub(crate) trigger: String,
    pub(crate) ok: bool,
    /// The generation served after it.
    pub(crate) generation: u64,
    /// Every problem found, when it failed.
    pub(crate) problems: Vec<Problem>,
}

/// One problem of a refused setup.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Problem {
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
    /// The problem as the CLI prints it, with its snippet.
    pub(crate) rendered: String,
}

impl From<&ferry_spec::Diagnostic> for Problem {
    fn from(diagnostic: &ferry_spec::Diagnostic) -> Problem {
        Problem {
            file: diagnostic.file.clone(),
            line: diagnostic.line,
            column: diagnostic.column,
            message: diagnostic.message.clone(),
            help: diagnostic.help.clone(),
            rendered: diagnostic.to_string(),
        }
    }
}

/// What every connection's delivery worker shares.
#[derive(Clone)]
pub(crate) struct WorkerContext {
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) dry_run: Arc<DryRunLog>,
    /// Where workers run: threads of their own, below ingest's priority.
    pub(crate) runtime: DeliveryRuntime,
    /// Where workers report what became of events.
    pub(crate) console: Arc<Console>,
}
