//! The SQLite backend: a WAL-mode file, one writer thread doing group commits, one read
//! connection for claims and listings.

use crate::checkpoint::Checkpointer;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::shared::Shared;
use crate::state::{States, lock};
use crate::wake::Wake;
use crate::writer::{Command, Reply, Writer, select_filter};
use crate::{
    BoxFuture, Claimed, DeadRecord, DeadSummary, Depth, Enqueued, EventId, NewEvent, OrderKey,
    Queue, QueueError, RejectedEvent, Remember, Replayed, Select, Settlement,
};
use crate::{claim, schema};

/// How often an idle worker looks again even without a wake-up: a retry fell due, or another
/// process (`ferry dlq replay`) queued dead letters again.
const POLL: Duration = Duration::from_secs(1);

/// How [`SqliteQueue::open`] sets up the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// `synchronous=FULL`: fsync every group commit, so an acknowledged event survives a power
    /// loss. `false` uses `NORMAL`: it survives a crash of ferry but a power loss may lose the
    /// last commits. Default `true`.
    pub synchronous_full: bool,
    /// How long an idempotency key is remembered per source. Default 24 hours.
    pub dedupe_window: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous_full: true,
            dedupe_window: Duration::from_hours(24),
        }
    }
}

/// The [`Queue`] in a SQLite file.
///
/// Several handles (processes) may open the same file: the server runs workers on one while
/// `ferry dlq` lists, replays and purges dead letters on another; writers wait for each other
/// through SQLite's busy timeout. Only the handle that declared connections claims and
/// collects events.
pub struct SqliteQueue {
    shared: Arc<Shared>,
    commands: Option<Sender<Command>>,
    writer: Option<JoinHandle<()>>,
    /// Stopped after the writer (fields drop after `Drop::drop`).
    _checkpointer: Checkpointer,
}

impl std::fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteQueue")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl SqliteQueue {
    /// Opens (or creates) the store at `path` and starts its writer thread.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Self, QueueError> {
        let write = schema::open_writer(path, options.synchronous_full)?;
        let read = schema::open_reader(path)?;
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            dedupe_window: options.dedupe_window,
            states: States::default(),
            wake: Wake::default(),
            commits: AtomicU64::new(0),
            reader: Mutex::new(read),
        });
        let (commands, receiver) = mpsc::channel();
        let writer = Writer::new(
            write,
            Arc::clone(&shared),
            receiver,
            options.synchronous_full,
        )?;
        let writer = thread::Builder::new()
            .name("ferry-queue-writer".to_owned())
            .spawn(move || writer.run())
            .map_err(|source| QueueError::Spawn {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            shared,
            commands: Some(commands),
            writer: Some(writer),
            _checkpointer: Checkpointer::start(path)?,
        })
    }

    /// How many group commits the writer has made since `open`: with many concurrent callers
    /// it grows much slower than the number of calls. For metrics and tests.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Deletes settled log events and expired dedupe keys now, in one bounded chunk, instead of
    /// waiting for the writer's periodic collection. Answers how many events were deleted.
    pub async fn collect_garbage(&self) -> Result<u64, QueueError> {
        self.call(|reply| Command::Collect { reply }).await
    }

    fn closed(&self) -> QueueError {
        QueueError::Closed {
            path: self.shared.path.clone(),
        }
    }

    /// Sends a command to the writer and waits for its commit.
    async fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, QueueError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .as_ref()
            .ok_or_else(|| self.closed())?
            .send(command(reply))
            .map_err(|_| self.closed())?;
        answer.await.map_err(|_| self.closed())?
    }

    /// Runs a read on the read connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Shared, &Connection) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let conn = lock(&shared.reader);
            read(&shared, &conn)
        })
        .await
        .map_err(|_| self.closed())?
    }
}

impl Drop for SqliteQueue {
    /// Lets the writer finish what it was given, so the file is closed when this returns.
    fn drop(&mut self) {
        drop(self.commands.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Queue for SqliteQueue {
    fn enqueue(
        &self,
        events: Vec<NewEvent>,
        rejected: Vec<RejectedEvent>,
    ) -> BoxFuture<'_, Result<Vec<Enqueued>, QueueError>> {
        Box::pin(self.call(|reply| Command::Enqueue {
            events,
            rejected,
            reply,
        }))
    }

    fn declare(&self, connections: Vec<(String, String)>) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(self.call(|reply| Command::Declare { connections, reply }))
    }

    fn order(
        &self,
        connection: &str,
        key: Option<OrderKey>,
    ) -> BoxFuture<'_, Result<(), QueueError>> {
        if let Some(state) = self.shared.states.get(connection) {
            lock(&state).set_order(key);
        }
        self.shared.wake.notify();
        Box::pin(async { Ok(()) })
    }

    fn claim(
        &self,
        connection: &str,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<Claimed>, QueueError>> {
        self.shared.wake.claiming(connection);
        let connection = connection.to_owned();
        Box::pin(self.read(move |shared, conn| claim::claim(shared, conn, &connection, max)))
    }

    fn settle(
        &self,
        connection: &str,
        settled: Vec<(EventId, Settlement)>,
        remembered: Vec<Remember>,
    ) -> BoxFuture<'_, Result<(), QueueError>> {
        let connection = connection.to_owned();
        let outcomes: Vec<(i64, bool)> = settled
            .iter()
            .map(|(id, s)| (id.0, !matches!(s, Settlement::Retry { .. })))
            .collect();
        Box::pin(async move {
            let state = self.shared.states.get(&connection);
            self.call(|reply| Command::Settle {
                connection,
                settled,
                remembered,
                reply,
            })
            .await?;
            // Settled in the store: later events of the keys these events held may go.
            if let Some(state) = state
                && let Some((sequencer, _)) = &mut lock(&state).order
            {
                for (id, done) in outcomes {
                    sequencer.settled(id, done);
                }
                self.shared.wake.notify();
            }
            Ok(())
        })
    }

    fn release(
        &self,
        connection: &str,
        ids: Vec<EventId>,
    ) -> BoxFuture<'_, Result<(), QueueError>> {
        if let Some(state) = self.shared.states.get(connection) {
            lock(&state).release(ids.into_iter().map(|id| id.0));
        }
        self.shared.wake.notify();
        Box::pin(async { Ok(()) })
    }

    fn remembered(&self, connection: &str) -> BoxFuture<'_, Result<Vec<Remember>, QueueError>> {
        let connection = connection.to_owned();
        Box::pin(self.read(move |shared, conn| {
            let fail =
                |source| QueueError::sqlite(&shared.path, "reading remembered values", source);
            let rows: Vec<(String, String, String)> = conn
                .prepare_cached(
                    "SELECT store, key, value FROM remembered WHERE connection = ?1 \
                     ORDER BY store, key",
                )
                .and_then(|mut s| {
                    s.query_map([&connection], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })?
                    .collect()
                })
                .map_err(fail)?;
            rows.into_iter()
                .map(|(store, key, value)| {
                    Ok(Remember {
                        store,
                        key,
                        value: parse(shared, "remembered value", &value)?,
                    })
                })
                .collect()
        }))
    }

    fn depth(&self, connection: &str) -> BoxFuture<'_, Result<Depth, QueueError>> {
        let connection = connection.to_owned();
        Box::pin(self.read(move |shared, conn| claim::depth(shared, conn, &connection)))
    }

    /// Also resolves after at most a second: a retry may have fallen due, another process may
    /// have replayed dead letters, or a wake-up came between a worker's empty claim and this call.
    fn work_available(&self, connection: &str) -> BoxFuture<'_, ()> {
        Box::pin(self.shared.wake.wait(connection, POLL))
    }

    fn dead_letters(
        &self,
        connection: Option<&str>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<DeadSummary>, QueueError>> {
        let which = connection.map_or(Select::All, |name| Select::Connection(name.to_owned()));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(self.read(move |shared, conn| {
            let (filter, mut args) = select_filter(&which);
            args.push(rusqlite::types::Value::Integer(limit));
            let sql = format!(
                "SELECT {SUMMARY} FROM dead_letters {filter} ORDER BY id DESC LIMIT ?{}",
                args.len()
            );
            conn.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(rusqlite::params_from_iter(&args), summary)?
                        .collect()
                })
                .map_err(|source| QueueError::sqlite(&shared.path, "listing dead letters", source))
        }))
    }

    fn dead_letter(&self, id: i64) -> BoxFuture<'_, Result<Option<DeadRecord>, QueueError>> {
        Box::pin(self.read(move |shared, conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {SUMMARY}, body, letters FROM dead_letters WHERE id = ?1"
                ))
                .and_then(|mut s| {
                    s.query_row([id], |row| {
                        Ok((summary(row)?, row.get(7)?, row.get::<_, String>(8)?))
                    })
                    .optional()
                })
                .map_err(|source| {
                    QueueError::sqlite(&shared.path, "reading a dead letter", source)
                })?;
            row.map(|(summary, event, letters)| {
                Ok(DeadRecord {
                    summary,
                    event,
                    letters: parse(shared, "dead-letter records", &letters)?,
                })
            })
            .transpose()
        }))
    }

    fn replay(&self, which: Select) -> BoxFuture<'_, Result<Replayed, QueueError>> {
        Box::pin(self.call(|reply| Command::Replay { which, reply }))
    }

    fn purge(&self, which: Select) -> BoxFuture<'_, Result<u64, QueueError>> {
        Box::pin(self.call(|reply| Command::Purge { which, reply }))
    }
}

const SUMMARY: &str = "id, at_ms, connection, source, event_id, mapping, reason";

fn summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeadSummary> {
    Ok(DeadSummary {
        id: row.get(0)?,
        at_ms: row.get(1)?,
        connection: row.get(2)?,
        source: row.get(3)?,
        event_id: row.get::<_, Option<i64>>(4)?.map(EventId),
        mapping: row.get(5)?,
        reason: row.get(6)?,
    })
}

fn parse<T: serde::de::DeserializeOwned>(
    shared: &Shared,
    what: &'static str,
    text: &str,
) -> Result<T, QueueError> {
    serde_json::from_str(text).map_err(|source| QueueError::Corrupt {
        path: shared.path.clone(),
        what,
        source,
    })
}
