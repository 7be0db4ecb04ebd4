//! Hot reload. On a change to the configuration or a mapping file (watched with notify), on
//! SIGHUP, or on `POST /admin/reload`, the whole setup is loaded again. A valid setup is
//! swapped in atomically: workers switch to new pipelines, while events already in flight
//! finish with the mapping they started with. An invalid one is refused whole: every problem
//! is logged and shown by `/admin/status`, and the last good setup keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::Options;
use crate::http::App;
use crate::metrics::ResultLabel;
use crate::setup::{ConfigOrigin, Setup};
use crate::worker::Workers;

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

/// Owns the workers and applies every reload to them.
pub struct Reloader {
    pub options: Options,
    pub app: Arc<App>,
    pub workers: Workers,
    pub generation: u64,
}

impl Reloader {
    /// Serves reload requests until `shutdown` says how long to let deliveries drain; then
    /// stops the workers.
    pub async fn run(
        mut self,
        mut requests: mpsc::Receiver<oneshot::Sender<ReloadOutcome>>,
        shutdown: oneshot::Receiver<Duration>,
    ) {
        let (changed_tx, mut changed) = mpsc::channel::<()>(1);
        let mut _watcher = watch(
            &self.options.origin,
            &self.app.setup.load(),
            changed_tx.clone(),
        );
        let mut hangup = hangups();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                drain = &mut shutdown => {
                    self.workers.shutdown(drain.unwrap_or_default()).await;
                    return;
                }
                Some(reply) = requests.recv() => {
                    let outcome = self.reload("admin").await;
                    let _ = reply.send(outcome);
                }
                Some(()) = changed.recv() => {
                    // Let a burst of saves settle into one reload.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while changed.try_recv().is_ok() {}
                    let outcome = self.reload("file change").await;
                    if outcome.ok {
                        // The mappings folder may have moved.
                        _watcher = watch(
                            &self.options.origin,
                            &self.app.setup.load(),
                            changed_tx.clone(),
                        );
                    }
                }
                Some(()) = hangup.recv() => {
                    self.reload("SIGHUP").await;
                }
            }
        }
    }

    /// Loads the setup again and serves it if it is valid.
    pub async fn reload(&mut self, trigger: &str) -> ReloadOutcome {
        let options = self.options.clone();
        let loaded = tokio::task::spawn_blocking(move || options.load())
            .await
            .expect("loading a setup does not panic");
        let at = ferry_delivery::timestamp(std::time::SystemTime::now());
        let outcome = match loaded {
            Ok(setup) => {
                let current = self.app.setup.load();
                if setup.config.listen != current.config.listen
                    || setup.data_dir != current.data_dir
                {
                    tracing::warn!("`listen` and `data` changes take effect at the next start");
                }
                match self.workers.apply(&setup).await {
                    Ok(()) => {
                        self.generation += 1;
                        self.app.setup.store(Arc::new(setup));
                        tracing::info!(trigger, generation = self.generation, "setup reloaded");
                        ReloadOutcome {
                            at: at.clone(),
                            trigger: trigger.to_owned(),
                            ok: true,
                            generation: self.generation,
                            problems: Vec::new(),
                        }
                    }
                    Err(error) => {
                        tracing::error!(trigger, "reload failed: {error}");
                        self.failed(
                            &at,
                            trigger,
                            vec![Problem {
                                file: String::new(),
                                line: 0,
                                column: 0,
                                message: error.to_string(),
                                help: None,
                                rendered: error.to_string(),
                            }],
                        )
                    }
                }
            }
            Err(diagnostics) => {
                tracing::error!(
                    trigger,
                    "reload refused, the last good setup keeps serving:\n{diagnostics}"
                );
                let problems = diagnostics
                    .0
                    .iter()
                    .map(|d| Problem {
                        file: d.file.clone(),
                        line: d.line,
                        column: d.column,
                        message: d.message.clone(),
                        help: d.help.clone(),
                        rendered: d.to_string(),
                    })
                    .collect();
                self.failed(&at, trigger, problems)
            }
        };
        let label = ResultLabel {
            result: if outcome.ok { "ok" } else { "failed" },
        };
        self.app.metrics.reloads.get_or_create(&label).inc();
        self.app
            .metrics
            .generation
            .set(i64::try_from(self.generation).unwrap_or(i64::MAX));
        let mut status = self.app.status.lock().await;
        if outcome.ok {
            status.generation = self.generation;
            status.loaded_at.clone_from(&at);
        }
        status.last_reload = Some(outcome.clone());
        outcome
    }

    fn failed(&self, at: &str, trigger: &str, problems: Vec<Problem>) -> ReloadOutcome {
        ReloadOutcome {
            at: at.to_owned(),
            trigger: trigger.to_owned(),
            ok: false,
            generation: self.generation,
            problems,
        }
    }
}

/// A stream of SIGHUPs (none where there are no Unix signals).
fn hangups() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        if tx.send(()).await.is_err() {
                            break;
                        }
                    }
                });
            }
            Err(error) => tracing::warn!("cannot listen for SIGHUP: {error}"),
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// Watches the configuration file and the mappings folder; each relevant change sends on
/// `changed`. Watching stops when the returned value is dropped.
fn watch(
    origin: &ConfigOrigin,
    setup: &Setup,
    changed: mpsc::Sender<()>,
) -> Option<Debouncer<RecommendedWatcher, RecommendedCache>> {
    let config = origin.file().map(absolute);
    let mappings = absolute(&setup.mappings_dir);
    let relevant = {
        let config = config.clone();
        let mappings = mappings.clone();
        move |path: &Path| {
            config.as_deref() == Some(path)
                || (path.parent() == Some(&mappings)
                    && path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        }
    };
    let handler = move |result: DebounceEventResult| match result {
        Ok(events) => {
            if events.iter().any(|e| e.paths.iter().any(|p| relevant(p))) {
                // A full channel already holds a pending reload.
                let _ = changed.try_send(());
            }
        }
        Err(errors) => {
            for error in errors {
                tracing::warn!("watching files: {error}");
            }
        }
    };
    let mut debouncer = match new_debouncer(Duration::from_millis(200), None, handler) {
        Ok(debouncer) => debouncer,
        Err(error) => {
            tracing::warn!("cannot watch for changes (reload with SIGHUP instead): {error}");
            return None;
        }
    };
    let mut folders = vec![mappings];
    if let Some(parent) = config.as_deref().and_then(Path::parent) {
        folders.push(parent.to_path_buf());
    }
    folders.dedup();
    for folder in folders {
        if let Err(error) = debouncer.watch(&folder, RecursiveMode::NonRecursive) {
            tracing::warn!("cannot watch `{}`: {error}", folder.display());
        }
    }
    Some(debouncer)
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}
