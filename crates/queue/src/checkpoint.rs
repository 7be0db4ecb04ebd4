//! WAL checkpoints off the write path. SQLite would otherwise copy the WAL into the database
//! (and fsync it) inside whichever commit crossed the threshold, and every acknowledgement
//! waiting on that commit would wait for the copy too. A thread of its own checkpoints
//! passively (never waiting for the writer) five times a second; the writer keeps SQLite's own
//! checkpoint only as a safety valve for a WAL that grows past 64 MB.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::QueueError;
use crate::schema;

/// How often the WAL is checkpointed. SQLite starts the WAL over from its beginning only at a
/// write that follows a complete checkpoint, so the WAL grows by what is written between two
/// checkpoints: at 100 MB/s of accepted events, once a second let it reach the writer's safety
/// valve within the second, and every commit past it checkpointed inside the commit.
const INTERVAL: Duration = Duration::from_millis(200);

/// The checkpointing thread; stopped when dropped.
pub(crate) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(path: &Path) -> Result<Checkpointer, QueueError> {
        let conn = schema::open_reader(path)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let shown = path.display().to_string();
        let thread = thread::Builder::new()
            .name("ferry-queue-checkpoint".to_owned())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    let done: rusqlite::Result<(i64, i64, i64)> =
                        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                        });
                    if let Err(error) = done {
                        tracing::warn!(store = %shown, "checkpointing the WAL failed: {error}");
                    }
                }
            })
            .map_err(|source| QueueError::Spawn {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
