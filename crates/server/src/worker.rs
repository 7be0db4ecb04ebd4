//! Delivery workers: one per connection. A worker claims the connection's events from the
//! queue and feeds them to a [`Pipeline`] (map, batch, send, retry); each event is settled in
//! the queue once its ticket reports the outcome (see [`crate::settle`]).
//!
//! On a reload the worker starts a pipeline with the new connection for the events it claims
//! next, while the old pipeline finishes the events it already has with the mapping they
//! started with.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_engine::MemoryState;
use ferry_pipeline::{Halt, Input, Pipeline, SharedState, Summary};
use ferry_spec::config::Retry;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::app::WorkerContext;
use crate::metrics;
use crate::settle::{Settler, SettlerHandle};
use crate::setup::{ConnectionSetup, Setup};

/// Most events a worker claims at once.
const CLAIM_AT_ONCE: usize = 512;
/// Most events of one connection between claim and settlement.
const MAX_OUTSTANDING: usize = 8192;
/// How long a worker with nothing to do waits before looking again (retries come due, another
/// process may replay dead letters).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How long a reload waits for the workers to switch to the new setup.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The running workers, by connection name.
pub(crate) struct Workers {
    shared: WorkerContext,
    running: HashMap<String, Worker>,
    /// Remembered values per connection, kept across reloads.
    states: HashMap<String, SharedState>,
}

struct Worker {
    setups: watch::Sender<Arc<ConnectionSetup>>,
    /// How many setups the worker has switched to.
    switched: watch::Receiver<u64>,
    halt: watch::Sender<Halt>,
    retry: watch::Sender<Retry>,
    task: JoinHandle<()>,
}

impl Workers {
    pub(crate) fn new(shared: WorkerContext) -> Workers {
        Workers {
            shared,
            running: HashMap::new(),
            states: HashMap::new(),
        }
    }

    /// Runs a worker for every connection of `setup`: new connections start, changed ones
    /// switch to their new pipeline, removed ones finish what they hold and stop.
    pub(crate) async fn apply(&mut self, setup: &Setup) -> Result<(), ferry_queue::QueueError> {
        let declared = setup
            .connections
            .values()
            .map(|c| (c.name.clone(), c.source.clone()))
            .collect();
        self.shared.queue.declare(declared).await?;
        for connection in setup.connections.values() {
            self.shared
                .queue
                .order(&connection.name, connection.order.clone())
                .await?;
        }
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|name| !setup.connections.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(worker) = self.running.remove(&name) {
                tracing::info!(connection = %name, "connection removed: finishing its events");
                worker.halt.send_replace(Halt::Drain);
                tokio::spawn(worker.task);
            }
        }
        let mut switching = Vec::new();
        for (name, connection) in &setup.connections {
            if let Some(worker) = self.running.get(name) {
                worker.retry.send_replace(setup.config.retry.clone());
                worker.setups.send_replace(Arc::clone(connection));
                let mut switched = worker.switched.clone();
                let wanted = *switched.borrow() + 1;
                switching.push(async move {
                    let _ = switched.wait_for(|n| *n >= wanted).await;
                });
                continue;
            }
            let state = if let Some(state) = self.states.get(name) {
                Arc::clone(state)
            } else {
                let stored = self.shared.queue.remembered(name).await?;
                let state: SharedState = Arc::new(std::sync::RwLock::new(MemoryState::default()));
                remember(&state, stored);
                self.states.insert(name.clone(), Arc::clone(&state));
                state
            };
            let (setups, setups_rx) = watch::channel(Arc::clone(connection));
            let (switched_tx, switched) = watch::channel(0);
            let (halt, halt_rx) = watch::channel(Halt::No);
            let (retry, retry_rx) = watch::channel(setup.config.retry.clone());
            let run = WorkerRun {
                name: name.clone(),
                shared: self.shared.clone(),
                state,
                setups: setups_rx,
                switched: switched_tx,
                halt: halt_rx,
                retry: retry_rx,
            };
            let task = self.shared.runtime.spawn(run.run());
            self.running.insert(
                name.clone(),
                Worker {
                    setups,
                    switched,
                    halt,
                    retry,
                    task,
                },
            );
        }
        // Once every worker has switched, any event received from now on is mapped by the new
        // setup.
        for switch in switching {
            if tokio::time::timeout(SWITCH_TIMEOUT, switch).await.is_err() {
                tracing::warn!("a worker is slow to switch to the new mappings");
            }
        }
        Ok(())
    }

    /// Stops every worker: no more claims; what was claimed is delivered within `drain`, and
    /// whatever is still unfinished then is put back to pending for the next start.
    pub(crate) async fn shutdown(self, drain: Duration) {
        for worker in self.running.values() {
            worker.halt.send_replace(Halt::Drain);
        }
        let (halts, tasks): (Vec<_>, Vec<_>) =
            self.running.into_values().map(|w| (w.halt, w.task)).unzip();
        let all = join_all(tasks);
        tokio::pin!(all);
        if tokio::time::timeout(drain, &mut all).await.is_err() {
            tracing::warn!(
                "deliveries still in flight after {drain:?}: they stay pending for the next start"
            );
            for halt in &halts {
                halt.send_replace(Halt::Abort);
            }
            all.await;
        }
    }
}

/// Waits for every task, logging any that failed.
async fn join_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        if let Err(error) = task.await {
            tracing::error!("a delivery worker failed: {error}");
        }
    }
}

/// One connection's worker.
struct WorkerRun {
    name: String,
    shared: WorkerContext,
    state: SharedState,
    setups: watch::Receiver<Arc<ConnectionSetup>>,
    switched: watch::Sender<u64>,
    halt: watch::Receiver<Halt>,
    retry: watch::Receiver<Retry>,
}

/// A pipeline and the way to feed and stop it.
struct Running {
    events: mpsc::Sender<Input>,
    halt: watch::Sender<Halt>,
    task: JoinHandle<()>,
}

impl WorkerRun {
    async fn run(mut self) {
        let settler = Settler::start(&self.name, &self.shared, self.retry.clone());
        let mut current = self.start_pipeline();
        // Pipelines of earlier mappings, finishing the events they hold.
        let mut retired: Vec<(watch::Sender<Halt>, JoinHandle<()>)> = Vec::new();
        loop {
            if *self.halt.borrow() != Halt::No {
                break;
            }
            if self.setups.has_changed().unwrap_or(false) {
                self.setups.mark_unchanged();
                let next = self.start_pipeline();
                let old = std::mem::replace(&mut current, next);
                tracing::info!(connection = %self.name, "mapping reloaded: new events use it");
                // Closing its input lets the old pipeline finish what it holds, then end.
                drop(old.events);
                retired.push((old.halt, old.task));
                self.switched.send_modify(|n| *n += 1);
            }
            retired.retain(|(_, task)| !task.is_finished());
            if current.task.is_finished() {
                // The pipeline could not start (logged): claim nothing until the setup changes.
                tokio::select! {
                    _ = self.halt.changed() => {}
                    _ = self.setups.changed() => self.setups.mark_changed(),
                }
                continue;
            }
            if settler.outstanding() >= MAX_OUTSTANDING {
                tokio::select! {
                    () = settler.room.notified() => {}
                    _ = self.halt.changed() => {}
                    _ = self.setups.changed() => self.setups.mark_changed(),
                }
                continue;
            }
            let room = MAX_OUTSTANDING - settler.outstanding();
            let claimed = match self
                .shared
                .queue
                .claim(&self.name, room.min(CLAIM_AT_ONCE))
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(connection = %self.name, "cannot claim events: {error}");
                    tokio::select! {
                        () = tokio::time::sleep(IDLE_POLL) => {}
                        _ = self.halt.changed() => {}
                    }
                    continue;
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    () = self.shared.queue.work_available(&self.name) => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    _ = self.halt.changed() => {}
                    _ = self.setups.changed() => {
                        // Seen at the top of the loop.
                        self.setups.mark_changed();
                    }
                }
                continue;
            }
            self.hand_over(&settler, &current.events, claimed).await;
        }
        drop(current.events);
        retired.push((current.halt, current.task));
        let (pipelines, tasks): (Vec<_>, Vec<_>) = retired.into_iter().unzip();
        let halt = *self.halt.borrow();
        for p in &pipelines {
            p.send_replace(halt);
        }
        // An abort that comes while draining reaches the pipelines too.
        let wait = join_all(tasks);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                changed = self.halt.changed() => {
                    if changed.is_err() {
                        (&mut wait).await;
                        break;
                    }
                    let halt = *self.halt.borrow();
                    for p in &pipelines {
                        p.send_replace(halt);
                    }
                }
            }
        }
        settler.close().await;
    }

    /// Hands claimed events to the pipeline behind `events`, after what other nodes sharing the
    /// queue remembered; the console says which to watch.
    async fn hand_over(
        &self,
        settler: &SettlerHandle,
        events: &mpsc::Sender<Input>,
        claimed: Vec<ferry_queue::Claimed>,
    ) {
        let learned = self.shared.queue.remembered_changes(&self.name);
        if !learned.is_empty() {
            remember(&self.state, learned);
        }
        self.shared
            .metrics
            .mapped
            .get_or_create(&metrics::connection(&self.name))
            .inc_by(claimed.len() as u64);
        let source: Arc<str> = self.setups.borrow().source.as_str().into();
        let watched = self.shared.console.claimed(&source, &claimed);
        for (event, watched) in claimed.into_iter().zip(watched) {
            settler.feed(events, event, watched).await;
        }
    }

    fn start_pipeline(&self) -> Running {
        let setup = Arc::clone(&self.setups.borrow());
        let (events, rx) = mpsc::channel(CLAIM_AT_ONCE * 2);
        let (halt, halt_rx) = watch::channel(Halt::No);
        let name = self.name.clone();
        let metrics = Arc::clone(&self.shared.metrics);
        let inline = Duration::from_secs(self.retry.borrow().inline_seconds);
        let pipeline = Pipeline::queued(Arc::clone(&setup.connection), inline).map(|p| {
            let p = p.named(&name).with_state(Arc::clone(&self.state));
            if setup.dry_run {
                let log = Arc::clone(&self.shared.dry_run);
                let connection = name.clone();
                p.dry_run(Arc::new(move |request| log.record(&connection, &request)))
            } else {
                p
            }
        });
        let task = tokio::spawn(async move {
            let pipeline = match pipeline {
                Ok(pipeline) => pipeline,
                Err(error) => {
                    // Dropping the receiver interrupts every event sent to it: they stay
                    // pending until a reload fixes the connection.
                    tracing::error!(connection = %name, "cannot start delivery: {error}");
                    return;
                }
            };
            let label = metrics::connection(&name);
            let mut last = Summary::default();
            let mut progress = |summary: &Summary| {
                if summary.requests != last.requests {
                    metrics
                        .requests
                        .get_or_create(&label)
                        .inc_by(summary.requests - last.requests);
                    metrics
                        .http_retries
                        .get_or_create(&label)
                        .inc_by(summary.retries - last.retries);
                    last.requests = summary.requests;
                    last.retries = summary.retries;
                }
            };
            if let Err(error) = pipeline.run_until(rx, halt_rx, &mut progress).await {
                tracing::error!(connection = %name, "delivery stopped: {error}");
            }
        });
        Running { events, halt, task }
    }
}

/// Applies remembered values to a worker's memory.
fn remember(state: &SharedState, values: Vec<ferry_queue::Remember>) {
    state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .apply(values.into_iter().map(|r| ferry_engine::Remembered {
            store: r.store.into(),
            key: r.key,
            value: r.value,
        }));
}
