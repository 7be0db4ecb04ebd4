//! Replaying and purging dead letters.

use rusqlite::{params, params_from_iter};

use super::Writer;
use crate::{QueueError, Replayed, Select, now_ms};

impl Writer {
    /// Turns dead letters into due retries (attempt 0) of their connection and deletes them.
    pub(super) fn replay(&self, which: &Select) -> Result<Replayed, QueueError> {
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

    /// Deletes the selected dead letters; answers how many.
    pub(super) fn purge(&self, which: &Select) -> Result<u64, QueueError> {
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
