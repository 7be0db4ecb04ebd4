//! Storing accepted events, their dedupe keys and rejected events; declaring connections.

use std::collections::HashSet;

use rusqlite::{OptionalExtension, params};

use super::Writer;
use crate::dedupe::dedupe_key;
use crate::state::Position;
use crate::{Enqueued, EventId, NewEvent, QueueError, RejectedEvent, now_ms};

/// A dedupe key stored, with the time it was seen.
pub(super) type Key = (i64, i64);

impl Writer {
    /// Stores each event unless its dedupe key was seen within the window; answers one outcome
    /// per event, and the keys stored (to remember once the transaction commits). Keys stored
    /// earlier in the same transaction (`batch`) count, so duplicates within a call and across
    /// calls of one group commit are caught too.
    pub(super) fn enqueue(
        &self,
        events: &[NewEvent],
        rejected: &[RejectedEvent],
        batch: &HashSet<i64>,
    ) -> Result<(Vec<Enqueued>, Vec<Key>), QueueError> {
        let fail = |what| move |source| self.error(what, source);
        let mut remember = self
            .conn
            .prepare_cached("INSERT INTO dedupe_log (hash, at_ms) VALUES (?1, ?2)")
            .map_err(fail("preparing the dedupe insert"))?;
        let mut keys: Vec<Key> = Vec::new();
        let mut this_call = HashSet::new();
        let mut insert = self
            .conn
            .prepare_cached("INSERT INTO events (source, received_at, body) VALUES (?1, ?2, ?3)")
            .map_err(fail("preparing the event insert"))?;
        let mut outcome = Vec::with_capacity(events.len());
        for event in events {
            if let Some(key) = &event.dedupe {
                let hash = dedupe_key(&event.source, key);
                if self.recent.contains(hash) || batch.contains(&hash) || !this_call.insert(hash) {
                    outcome.push(Enqueued::Duplicate);
                    continue;
                }
                remember
                    .execute(params![hash, event.received_at_ms])
                    .map_err(fail("storing a dedupe key"))?;
                keys.push((hash, event.received_at_ms));
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
        Ok((outcome, keys))
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
