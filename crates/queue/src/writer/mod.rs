//! The one thread that writes: it takes every command queued (up to a bound), runs them all in
//! one transaction, commits once, then answers every caller. A hundred concurrent HTTP requests
//! therefore cost one fsync.

mod collect;
mod dead_letters;
mod enqueue;
mod settle;

pub(crate) use dead_letters::select_filter;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use crate::dedupe::{Keys, RECENT_CAP, Recent};
use crate::now_ms;
use crate::shared::Shared;
use crate::state::{Position, lock};
use crate::{
    Enqueued, EventId, NewEvent, QueueError, RejectedEvent, Remember, Replayed, Select, Settlement,
};

/// Most commands in one transaction, so one commit never holds callers for long.
const MAX_BATCH: usize = 512;
/// Delivered events and expired dedupe keys are deleted in small chunks, so that no
/// transaction an acknowledgement waits on grows long:
/// - while commits flow, each one also deletes a few rows (no extra fsync);
/// - when the writer is idle, a chunk of its own, again soon while a backlog remains.
///
/// How often the idle writer looks for rows to delete.
const GC_INTERVAL: Duration = Duration::from_secs(1);
/// How soon the idle writer deletes the next chunk while a backlog remains.
const GC_BACKLOG_PAUSE: Duration = Duration::from_millis(20);
/// Most rows per source an idle collection (or `collect_garbage`) deletes.
const GC_CHUNK: i64 = 500;
/// How often a commit deletes rows alongside its own work.
const GC_ALONG_EVERY: Duration = Duration::from_millis(4);
/// Most rows per source a commit deletes alongside its own work: fewer when acknowledgements
/// wait on it.
const GC_ALONG_CHUNK: i64 = 500;
const GC_ALONG_CHUNK_ACKING: i64 = 50;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, QueueError>>;

/// A request to the writer thread.
pub(crate) enum Command {
    Enqueue {
        events: Vec<NewEvent>,
        rejected: Vec<RejectedEvent>,
        reply: Reply<Vec<Enqueued>>,
    },
    Declare {
        connections: Vec<(String, String)>,
        reply: Reply<()>,
    },
    Settle {
        connection: String,
        settled: Vec<(EventId, Settlement)>,
        remembered: Vec<Remember>,
        reply: Reply<()>,
    },
    Replay {
        which: Select,
        reply: Reply<Replayed>,
    },
    Purge {
        which: Select,
        reply: Reply<u64>,
    },
    Collect {
        reply: Reply<u64>,
    },
}

/// A command that ran inside the open transaction; answered once the commit is known.
enum Done {
    /// With the dedupe keys stored, to remember once committed.
    Enqueue(Reply<Vec<Enqueued>>, Vec<Enqueued>, Vec<enqueue::Key>),
    Declare(Reply<()>, Vec<(String, String, Position)>),
    Settle(Reply<()>, String, Vec<i64>),
    Replay(Reply<Replayed>, Replayed),
    Count(Reply<u64>, u64),
}

impl Done {
    fn fail(self, err: QueueError) {
        match self {
            Self::Enqueue(reply, ..) => drop(reply.send(Err(err))),
            Self::Declare(reply, _) | Self::Settle(reply, ..) => drop(reply.send(Err(err))),
            Self::Replay(reply, _) => drop(reply.send(Err(err))),
            Self::Count(reply, _) => drop(reply.send(Err(err))),
        }
    }
}

impl Command {
    fn fail(self, err: QueueError) {
        match self {
            Self::Enqueue { reply, .. } => drop(reply.send(Err(err))),
            Self::Declare { reply, .. } | Self::Settle { reply, .. } => drop(reply.send(Err(err))),
            Self::Replay { reply, .. } => drop(reply.send(Err(err))),
            Self::Purge { reply, .. } | Self::Collect { reply } => drop(reply.send(Err(err))),
        }
    }
}

pub(crate) struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    rx: Receiver<Command>,
    last_gc: Instant,
    /// When the idle writer collects next.
    next_gc: Instant,
    /// `synchronous=FULL` was asked for: commits that acknowledge something are fsynced.
    full: bool,
    /// Whether the connection's `synchronous` is FULL now.
    syncing: bool,
    /// The dedupe keys of the window.
    recent: Recent,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        shared: Arc<Shared>,
        rx: Receiver<Command>,
        full: bool,
    ) -> Result<Self, QueueError> {
        let window = i64::try_from(shared.dedupe_window.as_millis()).unwrap_or(i64::MAX);
        let mut recent = Recent::new(window, RECENT_CAP);
        let since = now_ms().saturating_sub(window);
        let stored: Vec<(i64, i64)> = conn
            .prepare(
                "SELECT hash, at_ms FROM (SELECT id, hash, at_ms FROM dedupe_log \
                 WHERE at_ms >= ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
            )
            .and_then(|mut s| {
                s.query_map(
                    params![since, i64::try_from(RECENT_CAP).unwrap_or(i64::MAX)],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?
                .collect()
            })
            .map_err(|source| {
                QueueError::sqlite(&shared.path, "reading the dedupe keys", source)
            })?;
        for (hash, at_ms) in stored {
            recent.insert(hash, at_ms);
        }
        Ok(Self {
            recent,
            conn,
            shared,
            rx,
            last_gc: Instant::now(),
            next_gc: Instant::now() + GC_INTERVAL,
            full,
            syncing: full,
        })
    }

    /// Fsyncs the next commit or not. Only commits that answer a promise need it (events
    /// acknowledged, connections declared, dead letters replayed or purged); settlements and
    /// collections may be lost in a power cut at the price of a repeated delivery, and the
    /// next fsynced commit makes them durable too, since the WAL is written in order.
    fn sync_next_commit(&mut self, sync: bool) {
        let sync = sync && self.full;
        if sync == self.syncing {
            return;
        }
        let mode = if sync { "FULL" } else { "NORMAL" };
        match self.conn.pragma_update(None, "synchronous", mode) {
            Ok(()) => self.syncing = sync,
            Err(error) => tracing::warn!("cannot set `synchronous` to {mode}: {error}"),
        }
    }

    /// Runs until every sender is dropped.
    pub(crate) fn run(mut self) {
        loop {
            let wait = self.next_gc.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(first) => {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match self.rx.try_recv() {
                            Ok(command) => batch.push(command),
                            Err(_) => break,
                        }
                    }
                    self.run_batch(batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= self.next_gc {
                self.collect_periodically();
            }
        }
    }

    /// Runs a statement of the writer's own, such as `COMMIT`, prepared once: several run per
    /// group commit.
    fn run_cached(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([]).map(drop)
    }

    fn error(&self, what: &'static str, source: rusqlite::Error) -> QueueError {
        QueueError::sqlite(&self.shared.path, what, source)
    }

    fn run_batch(&mut self, batch: Vec<Command>) {
        let promises = batch
            .iter()
            .any(|c| !matches!(c, Command::Settle { .. } | Command::Collect { .. }));
        self.sync_next_commit(promises);
        self.recent.expire(now_ms());
        if let Err(source) = self.run_cached("BEGIN IMMEDIATE") {
            let source = Arc::new(source);
            for command in batch {
                command.fail(self.shared_error("starting a transaction", &source));
            }
            return;
        }
        let mut done = Vec::with_capacity(batch.len());
        let mut settling: HashMap<String, BTreeSet<i64>> = HashMap::new();
        // Dedupe keys stored by the commands of this transaction so far.
        let mut keys = Keys::default();
        let mut broken = None;
        for command in batch {
            if let Some(source) = &broken {
                command
                    .fail(self.shared_error("an earlier command of the same transaction", source));
                continue;
            }
            if let Err(source) = self.run_cached("SAVEPOINT command") {
                command.fail(self.error("starting a savepoint", source));
                continue;
            }
            match self.execute(command, &mut settling, &keys) {
                Ok(finished) => {
                    if let Err(source) = self.run_cached("RELEASE command") {
                        let source = Arc::new(source);
                        finished.fail(self.shared_error("releasing a savepoint", &source));
                        broken = Some(source);
                        continue;
                    }
                    if let Done::Enqueue(_, _, stored) = &finished {
                        keys.extend(stored.iter().map(|(hash, _)| *hash));
                    }
                    done.push(finished);
                }
                Err(failed) => {
                    let (command, err) = *failed;
                    if let Err(source) = self
                        .conn
                        .execute_batch("ROLLBACK TO command; RELEASE command")
                    {
                        broken = Some(Arc::new(source));
                    }
                    command.fail(err);
                }
            }
        }
        if broken.is_none() && self.last_gc.elapsed() >= GC_ALONG_EVERY {
            self.collect_along(if promises {
                GC_ALONG_CHUNK_ACKING
            } else {
                GC_ALONG_CHUNK
            });
        }
        let committed = match broken {
            Some(source) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(source)
            }
            None => self.run_cached("COMMIT").map_err(|source| {
                let _ = self.conn.execute_batch("ROLLBACK");
                Arc::new(source)
            }),
        };
        match committed {
            Ok(()) => {
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                self.answer(done);
            }
            Err(source) => {
                for finished in done {
                    finished.fail(self.shared_error("commit", &source));
                }
            }
        }
    }

    fn shared_error(&self, what: &'static str, source: &Arc<rusqlite::Error>) -> QueueError {
        QueueError::Sqlite {
            path: self.shared.path.clone(),
            what,
            source: Arc::clone(source),
        }
    }

    /// After a commit: applies the in-memory effects, wakes idle workers, answers callers.
    fn answer(&mut self, done: Vec<Done>) {
        let mut wake = false;
        for finished in done {
            match finished {
                Done::Enqueue(reply, outcome, stored) => {
                    for (hash, at_ms) in stored {
                        self.recent.insert(hash, at_ms);
                    }
                    wake |= outcome.iter().any(|e| matches!(e, Enqueued::Stored(_)));
                    let _ = reply.send(Ok(outcome));
                }
                Done::Declare(reply, declared) => {
                    self.shared.states.declare(declared);
                    wake = true;
                    let _ = reply.send(Ok(()));
                }
                Done::Settle(reply, connection, ids) => {
                    if let Some(state) = self.shared.states.get(&connection) {
                        let mut state = lock(&state);
                        for id in ids {
                            state.in_flight.remove(&id);
                        }
                    }
                    let _ = reply.send(Ok(()));
                }
                Done::Replay(reply, replayed) => {
                    wake |= replayed.queued > 0;
                    let _ = reply.send(Ok(replayed));
                }
                Done::Count(reply, count) => {
                    let _ = reply.send(Ok(count));
                }
            }
        }
        if wake {
            self.shared.wake.notify();
        }
    }

    /// Runs one command inside the open transaction; on failure hands the command back so its
    /// caller can be answered.
    fn execute(
        &self,
        command: Command,
        settling: &mut HashMap<String, BTreeSet<i64>>,
        keys: &Keys,
    ) -> Result<Done, Box<(Command, QueueError)>> {
        match command {
            Command::Enqueue {
                events,
                rejected,
                reply,
            } => match self.enqueue(&events, &rejected, keys) {
                Ok((outcome, stored)) => Ok(Done::Enqueue(reply, outcome, stored)),
                Err(err) => Err(Box::new((
                    Command::Enqueue {
                        events,
                        rejected,
                        reply,
                    },
                    err,
                ))),
            },
            Command::Declare { connections, reply } => match self.declare(&connections) {
                Ok(declared) => Ok(Done::Declare(reply, declared)),
                Err(err) => Err(Box::new((Command::Declare { connections, reply }, err))),
            },
            Command::Settle {
                connection,
                settled,
                remembered,
                reply,
            } => {
                let already = settling.entry(connection.clone()).or_default();
                match self.settle(&connection, &settled, &remembered, already) {
                    Ok(ids) => {
                        already.extend(ids.iter().copied());
                        Ok(Done::Settle(reply, connection, ids))
                    }
                    Err(err) => Err(Box::new((
                        Command::Settle {
                            connection,
                            settled,
                            remembered,
                            reply,
                        },
                        err,
                    ))),
                }
            }
            Command::Replay { which, reply } => match self.replay(&which) {
                Ok(replayed) => Ok(Done::Replay(reply, replayed)),
                Err(err) => Err(Box::new((Command::Replay { which, reply }, err))),
            },
            Command::Purge { which, reply } => match self.purge(&which) {
                Ok(count) => Ok(Done::Count(reply, count)),
                Err(err) => Err(Box::new((Command::Purge { which, reply }, err))),
            },
            Command::Collect { reply } => match self.collect(GC_CHUNK) {
                Ok((count, _)) => Ok(Done::Count(reply, count)),
                Err(err) => Err(Box::new((Command::Collect { reply }, err))),
            },
        }
    }
}
