//! Recording delivery outcomes and a connection's position.

use std::collections::BTreeSet;

use rusqlite::params;

use super::Writer;
use crate::state::{Origin, lock};
use crate::{EventId, QueueError, Remember, Settlement, now_ms};

impl Writer {
    /// Writes the outcomes and remembered values, then the connection's position (what is
    /// settled, including out of order), so that a restart repeats only what was unsettled.
    /// Answers the ids settled.
    pub(super) fn settle(
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
        let state = self.shared.states.get(connection);
        let mut origins = Vec::with_capacity(settled.len());
        if let Some((EventId(id), _)) = settled.first()
            && state.is_none()
        {
            return Err(not_claimed(*id));
        }
        if let Some(state) = &state {
            let state = lock(state);
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
        // Without a state there were no claims (only remembered values): the position stays.
        if let Some(state) = &state {
            let position = lock(state).position(&done);
            self.conn
                .prepare_cached(
                    "UPDATE connections SET cursor = ?1, through = ?2, holes = ?3 WHERE name = ?4",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        position.floor(),
                        position.through,
                        position.encode_holes(),
                        connection
                    ])
                })
                .map_err(fail("recording a connection's position"))?;
        }
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
}

fn letters_json(letters: &[serde_json::Value]) -> String {
    serde_json::Value::Array(letters.to_vec()).to_string()
}
