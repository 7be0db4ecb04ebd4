//! Deleting what no active connection needs any more: settled log events, expired dedupe keys.

use std::collections::HashMap;
use std::time::Instant;

use rusqlite::{OptionalExtension, params};

use super::{GC_BACKLOG_PAUSE, GC_CHUNK, GC_INTERVAL, Writer};
use crate::{QueueError, now_ms};

impl Writer {
    /// Deletes log events every active connection of their source has settled, and expired
    /// dedupe keys, in bounded chunks. Answers the events deleted and whether more are left.
    pub(super) fn collect(&self, chunk: i64) -> Result<(u64, bool), QueueError> {
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
                .and_then(|mut s| s.execute(params![source, lowest, chunk]))
                .map_err(fail("deleting delivered events"))?;
            more |= i64::try_from(n).unwrap_or(i64::MAX) >= chunk;
            deleted += n as u64;
        }
        let window = i64::try_from(self.shared.dedupe_window.as_millis()).unwrap_or(i64::MAX);
        // Keys are logged in arrival order: the oldest rows are the expired ones.
        let expired = self
            .conn
            .prepare_cached(
                "DELETE FROM dedupe_log WHERE id IN \
                 (SELECT id FROM dedupe_log ORDER BY id LIMIT ?2) AND at_ms < ?1",
            )
            .and_then(|mut s| s.execute(params![now_ms().saturating_sub(window), chunk]))
            .map_err(fail("deleting expired dedupe keys"))?;
        more |= i64::try_from(expired).unwrap_or(i64::MAX) >= chunk;
        Ok((deleted, more))
    }

    pub(super) fn collect_periodically(&mut self) {
        self.recent.expire(now_ms());
        self.sync_next_commit(false);
        let result = self
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|source| self.error("starting a collection", source))
            .and_then(|()| self.collect(GC_CHUNK))
            .and_then(|outcome| {
                self.conn
                    .execute_batch("COMMIT")
                    .map_err(|source| self.error("committing a collection", source))?;
                Ok(outcome)
            });
        self.last_gc = Instant::now();
        self.next_gc = self.last_gc
            + match result {
                // Come back soon while a backlog is being collected.
                Ok((_, true)) => GC_BACKLOG_PAUSE,
                Ok((_, false)) => GC_INTERVAL,
                Err(err) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    tracing::warn!(error = %err, "queue garbage collection failed");
                    GC_INTERVAL
                }
            };
    }
}

impl Writer {
    /// Deletes a few settled rows inside the group commit being built, in a savepoint so that a
    /// failure here never costs the commit its own work.
    pub(super) fn collect_along(&mut self, chunk: i64) {
        self.last_gc = Instant::now();
        // The idle collection waits for a pause in the commits.
        self.next_gc = self.next_gc.max(self.last_gc + GC_BACKLOG_PAUSE);
        if self.run_cached("SAVEPOINT collect").is_err() {
            return;
        }
        match self.collect(chunk) {
            Ok(_) => {
                let _ = self.run_cached("RELEASE collect");
            }
            Err(err) => {
                let _ = self
                    .conn
                    .execute_batch("ROLLBACK TO collect; RELEASE collect");
                tracing::warn!(error = %err, "queue garbage collection failed");
            }
        }
    }
}
