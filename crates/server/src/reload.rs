//! Hot reload. On a change to the configuration or a mapping file (watched with notify), on
//! SIGHUP, or on `POST /admin/reload`, the whole setup is loaded again. A valid setup is
//! swapped in atomically: workers switch to new pipelines, while events already in flight
//! finish with the mapping they started with. An invalid one is refused whole: every problem
//! is logged and shown by `/admin/status`, and the last good setup keeps serving.
//!
//! A file event reloads only when the files' contents changed since the last attempt (a
//! SHA-256 of the configuration and every mapping file): reading a file, touching it, or
//! saving it unchanged does nothing, and a broken file is tried, and logged, once per change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::Options;
use crate::app::{App, Problem, ReloadOutcome};
use crate::metrics::ResultLabel;
use crate::setup::{ConfigOrigin, Setup};
use crate::worker::Workers;

/// Owns the workers and applies every reload to them.
pub(crate) struct Reloader {
    options: Options,
    app: Arc<App>,
    workers: Workers,
    generation: u64,
    /// The fingerprint of the files the last load read, good or not.
    last_seen: Option<[u8; 32]>,
    /// Watching the files, from the start: an edit made as soon as the server answers must
    /// not be missed for want of a watcher.
    watching: Option<Watching>,
}

/// The file watcher and the channel its changes arrive on.
struct Watching {
    changed_tx: mpsc::Sender<()>,
    changed: mpsc::Receiver<()>,
    watcher: Option<Debouncer<RecommendedWatcher, RecommendedCache>>,
}

impl Reloader {
    /// A reloader for the setup `app` serves (generation 1), loaded from `options`.
    pub(crate) fn new(options: Options, app: Arc<App>, workers: Workers) -> Reloader {
        let last_seen = fingerprint(&options.origin, &app.setup.load().mappings_dir);
        let (changed_tx, changed) = mpsc::channel::<()>(1);
        let watcher = watch(&options.origin, &app.setup.load(), changed_tx.clone());
        Reloader {
            options,
            app,
            workers,
            generation: 1,
            last_seen,
            watching: Some(Watching {
                changed_tx,
                changed,
                watcher,
            }),
        }
    }

    /// Serves reload requests until `shutdown` says how long to let deliveries drain; then
    /// stops the workers.
    pub(crate) async fn run(
        mut self,
        mut requests: mpsc::Receiver<oneshot::Sender<ReloadOutcome>>,
        shutdown: oneshot::Receiver<Duration>,
    ) {
        let Watching {
            changed_tx,
            mut changed,
            watcher: mut _watcher,
        } = self.watching.take().expect("a reloader runs once");
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
                    let now = fingerprint(&self.options.origin, &self.app.setup.load().mappings_dir);
                    if now.is_some() && now == self.last_seen {
                        tracing::debug!("files touched but not changed: no reload");
                        continue;
                    }
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
    pub(crate) async fn reload(&mut self, trigger: &str) -> ReloadOutcome {
        self.last_seen = fingerprint(&self.options.origin, &self.app.setup.load().mappings_dir);
        let options = self.options.clone();
        let loaded = tokio::task::spawn_blocking(move || options.load())
            .await
            .expect("loading a setup does not panic");
        let at = ferry_delivery::timestamp(std::time::SystemTime::now());
        let outcome = match loaded {
            Ok(setup) => {
                let current = self.app.setup.load();
                if setup.listener.address != current.listener.address
                    || setup.data_dir != current.data_dir
                    || setup.config.store != current.config.store
                    || setup.listener.tls.is_some() != current.listener.tls.is_some()
                {
                    tracing::warn!(
                        "changes to `listen`, `data`, `store` and turning TLS on or off take \
                         effect at the next start"
                    );
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
                let problems = diagnostics.0.iter().map(Problem::from).collect();
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
            // Reads (`cat`, `ferry validate`) are events too, but change nothing.
            let edits = events.iter().filter(|e| {
                matches!(
                    e.kind,
                    EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
                )
            });
            if edits
                .into_iter()
                .any(|e| e.paths.iter().any(|p| relevant(p)))
            {
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

/// A SHA-256 of the configuration file and of every mapping file (names and contents) in
/// `mappings`: equal fingerprints mean nothing a reload reads has changed. `None` when the
/// files cannot be read (then a reload is tried, and reports why).
fn fingerprint(origin: &ConfigOrigin, mappings: &Path) -> Option<[u8; 32]> {
    let mut hash = Sha256::new();
    if let Some(config) = origin.file() {
        hash.update(std::fs::read(config).ok()?);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(mappings)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    for file in files {
        let name = file.file_name()?.to_string_lossy().into_owned();
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        let text = std::fs::read(&file).ok()?;
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text);
    }
    Some(hash.finalize().into())
}
