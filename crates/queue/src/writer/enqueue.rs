//! Storing accepted events, their dedupe keys and rejected events; declaring connections.

use std::collections::HashSet;
use std::sync::LazyLock;

use rusqlite::{OptionalExtension, ToSql, params};

use super::Writer;
use crate::dedupe::{Keys, dedupe_key};
use crate::state::Position;
use crate::{Enqueued, EventId, NewEvent, QueueError, RejectedEvent, now_ms};

/// A dedupe key stored, with the time it was seen.
pub(super) type Key = (i64, i64);

/// Most rows one insert statement holds. A statement per event would cost more than the row:
/// each runs its own setup, and `AUTOINCREMENT` reads and rewrites the sequence per statement.
const MAX_ROWS: usize = 64;

/// Multi-row inserts into one table of `N` columns, one statement text per power of two up to
/// [`MAX_ROWS`] rows.
struct MultiRow<const N: usize> {
    sql: Vec<String>,
}

impl<const N: usize> MultiRow<N> {
    fn new(head: &str) -> MultiRow<N> {
        let row = format!("({})", ["?"; N].join(","));
        let sql = (0..=MAX_ROWS.ilog2())
            .map(|power| format!("{head} VALUES {}", vec![row.as_str(); 1 << power].join(",")))
            .collect();
        MultiRow { sql }
    }

    /// The statement for `size` rows, a power of two.
    fn sql(&self, size: usize) -> &str {
        &self.sql[size.ilog2() as usize]
    }
}

static EVENT_INSERT: LazyLock<MultiRow<3>> =
    LazyLock::new(|| MultiRow::new("INSERT INTO events (source, received_at, body)"));
static DEDUPE_INSERT: LazyLock<MultiRow<2>> =
    LazyLock::new(|| MultiRow::new("INSERT INTO dedupe_log (hash, at_ms)"));

impl Writer {
    /// Stores each event unless its dedupe key was seen within the window; answers one outcome
    /// per event, and the keys stored (to remember once the transaction commits). Keys stored
    /// earlier in the same transaction (`batch`) count, so duplicates within a call and across
    /// calls of one group commit are caught too.
    pub(super) fn enqueue(
        &self,
        events: &[NewEvent],
        rejected: &[RejectedEvent],
        batch: &Keys,
    ) -> Result<(Vec<Enqueued>, Vec<Key>), QueueError> {
        let mut keys: Vec<Key> = Vec::new();
        let mut this_call = Keys::default();
        let mut stored: Vec<&NewEvent> = Vec::with_capacity(events.len());
        let mut duplicate = Vec::with_capacity(events.len());
        for event in events {
            if let Some(key) = &event.dedupe {
                let hash = dedupe_key(&event.source, key);
                if self.recent.contains(hash) || batch.contains(&hash) || !this_call.insert(hash) {
                    duplicate.push(true);
                    continue;
                }
                keys.push((hash, event.received_at_ms));
            }
            duplicate.push(false);
            stored.push(event);
        }
        self.insert_rows(&DEDUPE_INSERT, &keys, |(hash, at_ms)| [hash, at_ms])
            .map_err(|source| self.error("storing dedupe keys", source))?;
        self.insert_rows(&EVENT_INSERT, &stored, |event| {
            [&event.source, &event.received_at_ms, &event.body]
        })
        .map_err(|source| self.error("storing events", source))?;
        // The rows of these statements took consecutive ids: the writer holds the write lock
        // for the whole transaction, and `AUTOINCREMENT` gives each row one more than the last.
        let last = self.conn.last_insert_rowid();
        let mut ids =
            (last - i64::try_from(stored.len()).unwrap_or(i64::MAX) + 1..=last).map(EventId);
        let outcome = duplicate
            .into_iter()
            .map(|duplicate| {
                if duplicate {
                    Enqueued::Duplicate
                } else {
                    Enqueued::Stored(ids.next().expect("an id per stored event"))
                }
            })
            .collect();
        if !rejected.is_empty() {
            let fail = |what| move |source| self.error(what, source);
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
        Ok((outcome, keys))
    }

    /// Inserts `rows` with as few statements as possible: one per power of two in their count,
    /// of at most [`MAX_ROWS`] rows each, binding every row's parameters (`params` gives a row's).
    fn insert_rows<T, const N: usize>(
        &self,
        statements: &MultiRow<N>,
        rows: &[T],
        params: impl Fn(&T) -> [&dyn ToSql; N],
    ) -> rusqlite::Result<()> {
        let mut rest = rows;
        while !rest.is_empty() {
            let size = (1 << rest.len().ilog2()).min(MAX_ROWS);
            let (now, later) = rest.split_at(size);
            let mut statement = self.conn.prepare_cached(statements.sql(size))?;
            let mut index = 1;
            for row in now {
                for value in params(row) {
                    statement.raw_bind_parameter(index, value)?;
                    index += 1;
                }
            }
            statement.raw_execute()?;
            rest = later;
        }
        Ok(())
    }

    /// Records new connections with their starting position; answers every declared connection
    /// with its position, for the in-memory state applied after the commit.
    pub(super) fn declare(
        &self,
        connections: &[(String, String)],
    ) -> Result<Vec<(String, String, Position)>, QueueError> {
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
            let known: Option<(String, i64, Vec<u8>)> = self
                .conn
                .query_row(
                    "SELECT source, through, holes FROM connections WHERE name = ?1",
                    [name],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()
                .map_err(fail("reading a connection"))?;
            let position = match known {
                Some((known_source, through, holes)) if known_source == *source => {
                    Position::decode_holes(through, &holes).ok_or_else(|| QueueError::Damaged {
                        path: self.shared.path.clone(),
                        what: "position of a connection",
                    })?
                }
                _ => {
                    let position = Position::at(if known_sources.contains(source.as_str()) {
                        end
                    } else {
                        0
                    });
                    self.conn
                        .execute("INSERT OR IGNORE INTO sources (name) VALUES (?1)", [source])
                        .map_err(fail("recording a source"))?;
                    self.conn
                        .execute(
                            "INSERT OR REPLACE INTO connections (name, source, cursor, through) \
                             VALUES (?1, ?2, ?3, ?3)",
                            params![name, source, position.through],
                        )
                        .map_err(fail("recording a connection"))?;
                    position
                }
            };
            declared.push((name.clone(), source.clone(), position));
        }
        Ok(declared)
    }
}
