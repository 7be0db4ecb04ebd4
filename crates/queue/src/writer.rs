//! The one thread that writes: it takes every command queued (up to a bound), runs them all in
//! one transaction, commits once, then answers every caller. A hundred concurrent HTTP requests
//! therefore cost one fsync.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use tokio::sync::oneshot;

use crate::dedupe::dedupe_key;
use crate::sqlite::Shared;
use crate::state::{Origin, lock};
use crate::{
    Enqueued, EventId, NewEvent, QueueError, RejectedEvent, Remember, Replayed, Select, Settlement,
    now_ms,
};

/// Most commands in one transaction, so one commit never holds callers for long.
const MAX_BATCH: usize = 512;
/// How often delivered events and expired dedupe keys are deleted.
const GC_INTERVAL: Duration = Duration::from_secs(3);
/// Most rows one collection deletes per source, so a large backlog never stalls ingest.
const GC_CHUNK: i64 = 20_000;

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
    Enqueue(Reply<Vec<Enqueued>>, Vec<Enqueued>),
    Declare(Reply<()>, Vec<(String, String, i64)>),
    Settle(Reply<()>, String, Vec<i64>),
    Replay(Reply<Replayed>, Replayed),
    Count(Reply<u64>, u64),
}

impl Done {
    fn fail(self, err: QueueError) {
        match self {
            Self::Enqueue(reply, _) => drop(reply.send(Err(err))),
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
}

impl Writer {
    pub(crate) fn new(conn: Connection, shared: Arc<Shared>, rx: Receiver<Command>) -> Self {
        Self {
            conn,
            shared,
            rx,
            last_gc: Instant::now(),
        }
    }

    /// Runs until every sender is dropped.
    pub(crate) fn run(mut self) {
        loop {
            let wait = GC_INTERVAL.saturating_sub(self.last_gc.elapsed());
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
            if self.last_gc.elapsed() >= GC_INTERVAL {
                self.collect_periodically();
            }
        }
    }

    fn error(&self, what: &'static str, source: rusqlite::Error) -> QueueError {
        QueueError::sqlite(&self.shared.path, what, source)
    }

    fn run_batch(&mut self, batch: Vec<Command>) {
        if let Err(source) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            let source = Arc::new(source);
            for command in batch {
                command.fail(self.shared_error("starting a transaction", &source));
            }
            return;
        }
        let mut done = Vec::with_capacity(batch.len());
        let mut settling: HashMap<String, BTreeSet<i64>> = HashMap::new();
        let mut broken = None;
        for command in batch {
            if let Some(source) = &broken {
                command
                    .fail(self.shared_error("an earlier command of the same transaction", source));
                continue;
            }
            if let Err(source) = self.conn.execute_batch("SAVEPOINT command") {
                command.fail(self.error("starting a savepoint", source));
                continue;
            }
            match self.execute(command, &mut settling) {
                Ok(finished) => {
                    if let Err(source) = self.conn.execute_batch("RELEASE command") {
                        let source = Arc::new(source);
                        finished.fail(self.shared_error("releasing a savepoint", &source));
                        broken = Some(source);
                        continue;
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
        let committed = match broken {
            Some(source) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(source)
            }
            None => self.conn.execute_batch("COMMIT").map_err(|source| {
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
    fn answer(&self, done: Vec<Done>) {
        let mut wake = false;
        for finished in done {
            match finished {
                Done::Enqueue(reply, outcome) => {
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
            self.shared.notify.notify_waiters();
        }
    }

    /// Runs one command inside the open transaction; on failure hands the command back so its
    /// caller can be answered.
    fn execute(
        &self,
        command: Command,
        settling: &mut HashMap<String, BTreeSet<i64>>,
    ) -> Result<Done, Box<(Command, QueueError)>> {
        match command {
            Command::Enqueue {
                events,
                rejected,
                reply,
            } => match self.enqueue(&events, &rejected) {
                Ok(outcome) => Ok(Done::Enqueue(reply, outcome)),
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
            Command::Collect { reply } => match self.collect() {
                Ok((count, _)) => Ok(Done::Count(reply, count)),
                Err(err) => Err(Box::new((Command::Collect { reply }, err))),
            },
        }
    }

    fn enqueue(
        &self,
        events: &[NewEvent],
        rejected: &[RejectedEvent],
    ) -> Result<Vec<Enqueued>, QueueError> {
        let fail = |what| move |source| self.error(what, source);
        let window = i64::try_from(self.shared.dedupe_window.as_millis()).unwrap_or(i64::MAX);
        // One statement per key: stores it, or refreshes one older than the window; changes
        // nothing (a duplicate) when the key was stored within the window.
        let mut remember = self
            .conn
            .prepare_cached(
                "INSERT INTO dedupe (hash, at_ms) VALUES (?1, ?2) \
                 ON CONFLICT (hash) DO UPDATE SET at_ms = excluded.at_ms \
                 WHERE dedupe.at_ms <= excluded.at_ms - ?3",
            )
            .map_err(fail("preparing the dedupe insert"))?;
        let mut insert = self
            .conn
            .prepare_cached("INSERT INTO events (source, received_at, body) VALUES (?1, ?2, ?3)")
            .map_err(fail("preparing the event insert"))?;
        let mut outcome = Vec::with_capacity(events.len());
        for event in events {
            if let Some(key) = &event.dedupe {
                let hash = dedupe_key(&event.source, key);
                let stored = remember
                    .execute(params![hash, event.received_at_ms, window])
                    .map_err(fail("storing a dedupe key"))?;
                if stored == 0 {
                    outcome.push(Enqueued::Duplicate);
                    continue;
                }
            }
            insert
                .execute(params![event.source, event.received_at_ms, event.body])
                .map_err(fail("storing an event"))?;
            outcome.push(Enqueued::Stored(EventId(self.conn.last_insert_rowid())));
        }
        if !rejected.is_empty() {
            let mut dead = self
                .conn
                .prepare_cached(
                    "INSERT INTO dead_letters \
                     (at_ms, connection, source, event_id, mapping, reason, received_at, body, letters) \
                     VALUES (?1, NULL, ?2, NULL, NULL, ?3, ?4, ?5, '[]')",
                )
                .map_err(fail("preparing the rejected-event insert"))?;
            let now = now_ms();
            for event in rejected {
                dead.execute(params![
                    now,
                    event.source,
                    event.reason,
                    event.received_at_ms,
                    event.body
                ])
                .map_err(fail("storing a rejected event"))?;
            }
        }
        Ok(outcome)
    }

    fn declare(
        &self,
        connections: &[(String, String)],
    ) -> Result<Vec<(String, String, i64)>, QueueError> {
        let fail = |what| move |source| self.error(what, source);
        let end: i64 = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(fail("reading the end of the log"))?
            .unwrap_or(0);
        // Known before this call: connections declared together on a new source all start at
        // the beginning.
        let mut known_sources = HashSet::new();
        for (_, source) in connections {
            let known = self
                .conn
                .prepare_cached("SELECT 1 FROM sources WHERE name = ?1")
                .and_then(|mut s| s.exists([source]))
                .map_err(fail("reading the known sources"))?;
            if known {
                known_sources.insert(source.as_str());
            }
        }
        let mut declared = Vec::with_capacity(connections.len());
        for (name, source) in connections {
            let known: Option<(String, i64)> = self
                .conn
                .query_row(
                    "SELECT source, cursor FROM connections WHERE name = ?1",
                    [name],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(fail("reading a connection"))?;
            let cursor = match known {
                Some((known_source, cursor)) if known_source == *source => cursor,
                _ => {
                    let cursor = if known_sources.contains(source.as_str()) {
                        end
                    } else {
                        0
                    };
                    self.conn
                        .execute("INSERT OR IGNORE INTO sources (name) VALUES (?1)", [source])
                        .map_err(fail("recording a source"))?;
                    self.conn
                        .execute(
                            "INSERT OR REPLACE INTO connections (name, source, cursor) \
                             VALUES (?1, ?2, ?3)",
                            params![name, source, cursor],
                        )
                        .map_err(fail("recording a connection"))?;
                    cursor
                }
            };
            declared.push((name.clone(), source.clone(), cursor));
        }
        Ok(declared)
    }

    /// Writes the outcomes and remembered values, then moves the connection's cursor to just
    /// below its lowest event still unsettled. Answers the ids settled.
    fn settle(
        &self,
        connection: &str,
        settled: &[(EventId, Settlement)],
        remembered: &[Remember],
        already: &BTreeSet<i64>,
    ) -> Result<Vec<i64>, QueueError> {
        let fail = |what| move |source| self.error(what, source);
        let not_claimed = |id: i64| QueueError::NotClaimed {
            connection: connection.to_owned(),
            id,
        };
        let Some(state) = self.shared.states.get(connection) else {
            return match settled.first() {
                Some((id, _)) => Err(not_claimed(id.0)),
                None => Ok(Vec::new()),
            };
        };
        let mut origins = Vec::with_capacity(settled.len());
        {
            let state = lock(&state);
            let mut this_call = BTreeSet::new();
            for (EventId(id), _) in settled {
                match state.in_flight.get(id) {
                    Some(origin) if !already.contains(id) && this_call.insert(*id) => {
                        origins.push(*origin);
                    }
                    _ => return Err(not_claimed(*id)),
                }
            }
        }
        let now = now_ms();
        for ((EventId(id), settlement), origin) in settled.iter().zip(origins) {
            if self.apply(connection, *id, origin, settlement, now)? == 0 {
                return Err(QueueError::MissingEvent {
                    path: self.shared.path.clone(),
                    id: *id,
                });
            }
        }
        for Remember { store, key, value } in remembered {
            self.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO remembered (connection, store, key, value) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| s.execute(params![connection, store, key, value.to_string()]))
                .map_err(fail("storing a remembered value"))?;
        }
        let ids: Vec<i64> = settled.iter().map(|(id, _)| id.0).collect();
        let mut done = already.clone();
        done.extend(ids.iter().copied());
        let cursor = lock(&state).cursor(&done);
        self.conn
            .prepare_cached("UPDATE connections SET cursor = max(cursor, ?1) WHERE name = ?2")
            .and_then(|mut s| s.execute(params![cursor, connection]))
            .map_err(fail("moving a connection's cursor"))?;
        Ok(ids)
    }

    /// Writes one outcome; answers the rows changed (0 when the event's row is missing).
    fn apply(
        &self,
        connection: &str,
        id: i64,
        origin: Origin,
        settlement: &Settlement,
        now: i64,
    ) -> Result<usize, QueueError> {
        let fail = |what| move |source| self.error(what, source);
        let changed = match (origin, settlement) {
            (Origin::Log, Settlement::Delivered) => 1,
            (Origin::Log, Settlement::Retry { at_ms, reason }) => self
                .conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO retries \
                     (connection, event_id, source, received_at, body, attempt, due_at, reason) \
                     SELECT ?1, id, source, received_at, body, 1, ?2, ?3 FROM events WHERE id = ?4",
                )
                .and_then(|mut s| s.execute(params![connection, at_ms, reason, id]))
                .map_err(fail("scheduling a retry"))?,
            (Origin::Log, Settlement::Dead { mapping, reason, letters }) => self
                .conn
                .prepare_cached(
                    "INSERT INTO dead_letters \
                     (at_ms, connection, source, event_id, mapping, reason, received_at, body, letters) \
                     SELECT ?1, ?2, source, id, ?3, ?4, received_at, body, ?5 FROM events WHERE id = ?6",
                )
                .and_then(|mut s| {
                    s.execute(params![now, connection, mapping, reason, letters_json(letters), id])
                })
                .map_err(fail("storing a dead letter"))?,
            (Origin::Retry, Settlement::Delivered) => self
                .conn
                .prepare_cached("DELETE FROM retries WHERE connection = ?1 AND event_id = ?2")
                .and_then(|mut s| s.execute(params![connection, id]))
                .map_err(fail("deleting a delivered retry"))?,
            (Origin::Retry, Settlement::Retry { at_ms, reason }) => self
                .conn
                .prepare_cached(
                    "UPDATE retries SET attempt = attempt + 1, due_at = ?1, reason = ?2 \
                     WHERE connection = ?3 AND event_id = ?4",
                )
                .and_then(|mut s| s.execute(params![at_ms, reason, connection, id]))
                .map_err(fail("rescheduling a retry"))?,
            (Origin::Retry, Settlement::Dead { mapping, reason, letters }) => {
                let changed = self
                    .conn
                    .prepare_cached(
                        "INSERT INTO dead_letters \
                         (at_ms, connection, source, event_id, mapping, reason, received_at, body, letters) \
                         SELECT ?1, ?2, source, event_id, ?3, ?4, received_at, body, ?5 \
                         FROM retries WHERE connection = ?2 AND event_id = ?6",
                    )
                    .and_then(|mut s| {
                        s.execute(params![now, connection, mapping, reason, letters_json(letters), id])
                    })
                    .map_err(fail("storing a dead letter"))?;
                self.conn
                    .prepare_cached("DELETE FROM retries WHERE connection = ?1 AND event_id = ?2")
                    .and_then(|mut s| s.execute(params![connection, id]))
                    .map_err(fail("deleting a dead retry"))?;
                changed
            }
        };
        Ok(changed)
    }

    fn replay(&self, which: &Select) -> Result<Replayed, QueueError> {
        let fail = |what| move |source| self.error(what, source);
        let (filter, arg) = select_filter(which);
        let rows: Vec<(i64, Option<String>, Option<i64>)> = self
            .conn
            .prepare(&format!(
                "SELECT id, connection, event_id FROM dead_letters {filter} ORDER BY id"
            ))
            .and_then(|mut s| {
                s.query_map(params_from_iter(&arg), |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect()
            })
            .map_err(fail("reading dead letters to replay"))?;
        let mut replayed = Replayed::default();
        if let (Select::One(id), true) = (which, rows.is_empty()) {
            replayed
                .skipped
                .push((*id, "no such dead letter".to_owned()));
        }
        let now = now_ms();
        for (id, connection, event_id) in rows {
            if connection.is_none() || event_id.is_none() {
                replayed.skipped.push((
                    id,
                    "rejected at ingest: no connection to replay to".to_owned(),
                ));
                continue;
            }
            self.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO retries \
                     (connection, event_id, source, received_at, body, attempt, due_at, reason) \
                     SELECT connection, event_id, source, received_at, body, 0, ?1, \
                     'replayed dead letter ' || id FROM dead_letters WHERE id = ?2",
                )
                .and_then(|mut s| s.execute(params![now, id]))
                .map_err(fail("queueing a dead letter again"))?;
            self.conn
                .prepare_cached("DELETE FROM dead_letters WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map_err(fail("deleting a replayed dead letter"))?;
            replayed.queued += 1;
        }
        Ok(replayed)
    }

    fn purge(&self, which: &Select) -> Result<u64, QueueError> {
        let (filter, arg) = select_filter(which);
        let deleted = self
            .conn
            .execute(
                &format!("DELETE FROM dead_letters {filter}"),
                params_from_iter(&arg),
            )
            .map_err(|source| self.error("purging dead letters", source))?;
        Ok(deleted as u64)
    }

    /// Deletes log events every active connection of their source has settled, and expired
    /// dedupe keys, in bounded chunks. Answers the events deleted and whether more are left.
    fn collect(&self) -> Result<(u64, bool), QueueError> {
        let fail = |what| move |source| self.error(what, source);
        let mut by_source: HashMap<String, Vec<String>> = HashMap::new();
        for (name, source) in self.shared.states.active() {
            by_source.entry(source).or_default().push(name);
        }
        let mut deleted = 0;
        let mut more = false;
        for (source, names) in by_source {
            let mut lowest = i64::MAX;
            for name in names {
                let cursor: Option<i64> = self
                    .conn
                    .prepare_cached("SELECT cursor FROM connections WHERE name = ?1")
                    .and_then(|mut s| s.query_row([&name], |row| row.get(0)).optional())
                    .map_err(fail("reading a cursor"))?;
                lowest = lowest.min(cursor.unwrap_or(0));
            }
            let n = self
                .conn
                .prepare_cached(
                    "DELETE FROM events WHERE id IN \
                     (SELECT id FROM events WHERE source = ?1 AND id <= ?2 ORDER BY id LIMIT ?3)",
                )
                .and_then(|mut s| s.execute(params![source, lowest, GC_CHUNK]))
                .map_err(fail("deleting delivered events"))?;
            more |= i64::try_from(n).unwrap_or(i64::MAX) >= GC_CHUNK;
            deleted += n as u64;
        }
        let window = i64::try_from(self.shared.dedupe_window.as_millis()).unwrap_or(i64::MAX);
        let expired = self
            .conn
            .prepare_cached(
                "DELETE FROM dedupe WHERE hash IN \
                 (SELECT hash FROM dedupe WHERE at_ms < ?1 LIMIT ?2)",
            )
            .and_then(|mut s| s.execute(params![now_ms().saturating_sub(window), GC_CHUNK]))
            .map_err(fail("deleting expired dedupe keys"))?;
        more |= i64::try_from(expired).unwrap_or(i64::MAX) >= GC_CHUNK;
        Ok((deleted, more))
    }

    fn collect_periodically(&mut self) {
        let result = self
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|source| self.error("starting a collection", source))
            .and_then(|()| self.collect())
            .and_then(|outcome| {
                self.conn
                    .execute_batch("COMMIT")
                    .map_err(|source| self.error("committing a collection", source))?;
                Ok(outcome)
            });
        self.last_gc = Instant::now();
        match result {
            // Come back soon while a backlog is being collected.
            Ok((_, true)) => {
                let soon = GC_INTERVAL.saturating_sub(Duration::from_millis(100));
                self.last_gc = self.last_gc.checked_sub(soon).unwrap_or(self.last_gc);
            }
            Ok((_, false)) => {}
            Err(err) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                tracing::warn!(error = %err, "queue garbage collection failed");
            }
        }
    }
}

fn letters_json(letters: &[serde_json::Value]) -> String {
    serde_json::Value::Array(letters.to_vec()).to_string()
}

/// The `WHERE` clause and its one parameter for a selection of dead letters.
pub(crate) fn select_filter(which: &Select) -> (&'static str, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    match which {
        Select::One(id) => ("WHERE id = ?1", vec![Value::Integer(*id)]),
        Select::All => ("", Vec::new()),
        Select::Connection(name) => ("WHERE connection = ?1", vec![Value::Text(name.clone())]),
    }
}
