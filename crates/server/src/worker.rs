//! Delivery workers: one per connection. A worker claims the connection's events from the
//! queue, feeds them to a [`Pipeline`] (map, batch, send, retry), and settles each event in the
//! queue once its ticket reports the outcome: delivered, retry at a time, or dead.
//!
//! On a reload the worker starts a pipeline with the new connection for the events it claims
//! next, while the old pipeline finishes the events it already has with the mapping they
//! started with.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ferry_delivery::DeadLetter;
use ferry_engine::MemoryState;
use ferry_pipeline::{Halt, Input, Pipeline, Settle, Settled, SharedState, Summary, Ticket};
use ferry_queue::{Claimed, EventId, Queue, Remember, Settlement};
use ferry_spec::config::Retry;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::dry_run::DryRunLog;
use crate::metrics::{self, Metrics};
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

/// What workers share.
#[derive(Clone)]
pub struct Shared {
    pub queue: Arc<dyn Queue>,
    pub metrics: Arc<Metrics>,
    pub dry_run: Arc<DryRunLog>,
}

/// The running workers, by connection name.
pub struct Workers {
    shared: Shared,
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
    pub fn new(shared: Shared) -> Workers {
        Workers {
            shared,
            running: HashMap::new(),
            states: HashMap::new(),
        }
    }

    /// Runs a worker for every connection of `setup`: new connections start, changed ones
    /// switch to their new pipeline, removed ones finish what they hold and stop.
    pub async fn apply(&mut self, setup: &Setup) -> Result<(), ferry_queue::QueueError> {
        let declared = setup
            .connections
            .values()
            .map(|c| (c.name.clone(), c.source.clone()))
            .collect();
        self.shared.queue.declare(declared).await?;
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
                let mut memory = MemoryState::default();
                let stored = self.shared.queue.remembered(name).await?;
                memory.apply(stored.into_iter().map(|r| ferry_engine::Remembered {
                    store: r.store.into(),
                    key: r.key,
                    value: r.value,
                }));
                let state: SharedState = Arc::new(std::sync::RwLock::new(memory));
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
            let task = tokio::spawn(run.run());
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
    pub async fn shutdown(self, drain: Duration) {
        for worker in self.running.values() {
            worker.halt.send_replace(Halt::Drain);
        }
        let (halts, tasks): (Vec<_>, Vec<_>) =
            self.running.into_values().map(|w| (w.halt, w.task)).unzip();
        let all = futures_join(tasks);
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

async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        if let Err(error) = task.await {
            tracing::error!("a delivery worker failed: {error}");
        }
    }
}

/// One connection's worker.
struct WorkerRun {
    name: String,
    shared: Shared,
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
                    () = self.shared.queue.work_available() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    _ = self.halt.changed() => {}
                    _ = self.setups.changed() => {
                        // Seen at the top of the loop.
                        self.setups.mark_changed();
                    }
                }
                continue;
            }
            self.shared
                .metrics
                .mapped
                .get_or_create(&metrics::connection(&self.name))
                .inc_by(claimed.len() as u64);
            for event in claimed {
                settler.feed(&current.events, event).await;
            }
        }
        drop(current.events);
        retired.push((current.halt, current.task));
        let (pipelines, tasks): (Vec<_>, Vec<_>) = retired.into_iter().unzip();
        let halt = *self.halt.borrow();
        for p in &pipelines {
            p.send_replace(halt);
        }
        // An abort that comes while draining reaches the pipelines too.
        let wait = futures_join(tasks);
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

    fn start_pipeline(&self) -> Running {
        let setup = Arc::clone(&self.setups.borrow());
        let (events, rx) = mpsc::channel(CLAIM_AT_ONCE * 2);
        let (halt, halt_rx) = watch::channel(Halt::No);
        let name = self.name.clone();
        let metrics = Arc::clone(&self.shared.metrics);
        let pipeline = Pipeline::queued(Arc::clone(&setup.connection)).map(|p| {
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

/// What the settler needs to know of a claimed event.
#[derive(Clone, Copy)]
struct Meta {
    received_at_ms: i64,
    attempt: u32,
}

/// Turns tickets' outcomes into queue settlements, in batches.
struct Settler {
    connection: String,
    outcomes: mpsc::UnboundedSender<Settled>,
    meta: Mutex<HashMap<i64, Meta>>,
    outstanding: AtomicUsize,
    /// Signalled when settlements made room for more claims.
    room: Notify,
}

/// The settler and its task.
struct SettlerHandle {
    settler: Arc<Settler>,
    task: JoinHandle<()>,
}

impl std::ops::Deref for SettlerHandle {
    type Target = Settler;
    fn deref(&self) -> &Settler {
        &self.settler
    }
}

impl Settle for Settler {
    fn settle(&self, settled: Settled) {
        // The receiver lives as long as any ticket; a send fails only after shutdown, when the
        // event stays pending, as it should.
        let _ = self.outcomes.send(settled);
    }
}

impl Settler {
    fn start(connection: &str, shared: &Shared, retry: watch::Receiver<Retry>) -> SettlerHandle {
        let (outcomes, rx) = mpsc::unbounded_channel();
        let settler = Arc::new(Settler {
            connection: connection.to_owned(),
            outcomes,
            meta: Mutex::new(HashMap::new()),
            outstanding: AtomicUsize::new(0),
            room: Notify::new(),
        });
        let task = tokio::spawn(settle_loop(
            Arc::downgrade(&settler),
            rx,
            shared.clone(),
            retry,
        ));
        SettlerHandle { settler, task }
    }

    fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }
}

impl SettlerHandle {
    /// Hands a claimed event to the pipeline behind `events`.
    async fn feed(&self, events: &mpsc::Sender<Input>, claimed: Claimed) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        self.meta
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                claimed.id.0,
                Meta {
                    received_at_ms: claimed.received_at_ms,
                    attempt: claimed.attempt,
                },
            );
        let ticket = Ticket::new(claimed.id.0, Arc::clone(&self.settler) as Arc<dyn Settle>);
        match serde_json::from_str(&claimed.body) {
            Ok(event) => {
                // A closed pipeline returns the input; dropping it settles the event as
                // interrupted, so it stays pending.
                let _ = events.send(Input::Queued { ticket, event }).await;
            }
            Err(error) => ticket.reject(DeadLetter {
                at: ferry_delivery::timestamp(std::time::SystemTime::now()),
                mapping: String::new(),
                connection: Some(self.connection.clone()),
                event: serde_json::Value::String(claimed.body),
                // Events are checked at ingest: this means the store was changed by hand.
                reason: format!("the stored event is not JSON: {error}"),
                last_request: None,
                last_response: None,
                attempts: 0,
            }),
        }
    }

    /// Waits until every outcome is settled in the queue.
    async fn close(self) {
        let SettlerHandle { settler, task } = self;
        drop(settler);
        if let Err(error) = task.await {
            tracing::error!("settling failed: {error}");
        }
    }
}

async fn settle_loop(
    settler: std::sync::Weak<Settler>,
    mut outcomes: mpsc::UnboundedReceiver<Settled>,
    shared: Shared,
    retry: watch::Receiver<Retry>,
) {
    let mut batch = Vec::with_capacity(1024);
    let Some(connection) = settler.upgrade().map(|s| s.connection.clone()) else {
        return;
    };
    let label = metrics::connection(&connection);
    while outcomes.recv_many(&mut batch, 1024).await > 0 {
        let now = now_ms();
        let policy = retry.borrow().clone();
        let metas: Vec<Option<Meta>> = match settler.upgrade() {
            Some(s) => {
                let mut meta = s.meta.lock().unwrap_or_else(PoisonError::into_inner);
                batch.iter().map(|o| meta.remove(&o.id)).collect()
            }
            None => batch.iter().map(|_| None).collect(),
        };
        let mut settlements = Vec::with_capacity(batch.len());
        let mut released = Vec::new();
        let mut remembered = Vec::new();
        for (settled, meta) in batch.drain(..).zip(metas) {
            let meta = meta.unwrap_or(Meta {
                received_at_ms: now,
                attempt: 0,
            });
            let id = EventId(settled.id);
            if settled.interrupted {
                released.push(id);
                continue;
            }
            remembered.extend(settled.remembered.iter().map(|r| Remember {
                store: r.store.to_string(),
                key: r.key.clone(),
                value: r.value.clone(),
            }));
            let settlement = decide(&settled, meta, now, &policy);
            match &settlement {
                Settlement::Delivered => {
                    shared.metrics.delivered.get_or_create(&label).inc();
                    #[allow(clippy::cast_precision_loss)]
                    let seconds = (now - meta.received_at_ms).max(0) as f64 / 1000.0;
                    shared
                        .metrics
                        .delivery_seconds
                        .get_or_create(&label)
                        .observe(seconds);
                }
                Settlement::Retry { reason, .. } => {
                    shared.metrics.retried.get_or_create(&label).inc();
                    tracing::warn!(connection = %connection, event = id.0, "will retry: {reason}");
                }
                Settlement::Dead { reason, .. } => {
                    shared.metrics.dead.get_or_create(&label).inc();
                    tracing::warn!(connection = %connection, event = id.0, "dead-lettered: {reason}");
                }
            }
            settlements.push((id, settlement));
        }
        let count = settlements.len() + released.len();
        if !settlements.is_empty()
            && let Err(error) = shared
                .queue
                .settle(&connection, settlements, remembered)
                .await
        {
            // The events stay claimed until the next start, which delivers them again.
            tracing::error!(connection = %connection, "cannot record deliveries: {error}");
        }
        if !released.is_empty()
            && let Err(error) = shared.queue.release(&connection, released).await
        {
            tracing::error!(connection = %connection, "cannot release events: {error}");
        }
        if let Some(s) = settler.upgrade() {
            s.outstanding.fetch_sub(count, Ordering::AcqRel);
            s.room.notify_one();
        }
    }
}

fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// The settlement of an event that the pipeline finished: delivered; a retry when every
/// failure may clear later and the event is young enough; dead otherwise.
fn decide(settled: &Settled, meta: Meta, now_ms: i64, policy: &Retry) -> Settlement {
    if settled.delivered() {
        return Settlement::Delivered;
    }
    let first = &settled.letters[0].letter;
    let more = match settled.letters.len() {
        1 => String::new(),
        n => format!(" (and {} more requests failed)", n - 1),
    };
    let age_ms = now_ms - meta.received_at_ms;
    let give_up_ms =
        i64::try_from(policy.give_up_after_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
    if settled.retryable() && age_ms < give_up_ms {
        let doubled = policy
            .first_after_seconds
            .saturating_mul(1u64 << meta.attempt.min(30));
        let seconds = doubled.min(policy.at_most_every_seconds);
        // Up to a fifth less, so that events failed together do not come back together.
        let wait_ms = seconds * 1000 - fastrand::u64(0..=seconds * 200);
        return Settlement::Retry {
            at_ms: now_ms + i64::try_from(wait_ms).unwrap_or(i64::MAX / 2),
            reason: format!("{}{more}", first.reason),
        };
    }
    let reason = if settled.retryable() {
        format!(
            "gave up {} hours after the event was received: {}{more}",
            policy.give_up_after_hours, first.reason
        )
    } else {
        format!("{}{more}", first.reason)
    };
    Settlement::Dead {
        mapping: first.mapping.clone(),
        reason,
        letters: settled
            .letters
            .iter()
            .map(|l| serde_json::to_value(&l.letter).unwrap_or_default())
            .collect(),
    }
}
