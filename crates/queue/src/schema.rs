//! The file layout and how a connection to it is opened.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::QueueError;

/// The schema this code writes; `PRAGMA user_version` holds the version of a file.
pub(crate) const VERSION: i64 = 3;

/// The WAL size past which a commit checkpoints inside itself.
const WAL_VALVE_BYTES: i64 = 64 * 1024 * 1024;

/// How long a statement waits for another process (`ferry dlq`) holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// `events` is the log: one row per accepted event, deleted once every active connection of its
/// source is past it. `AUTOINCREMENT` so an id is never reused after the tail was deleted, which
/// would put a new event behind a cursor. Retries and dead letters carry their own copy of the
/// body so the log can be collected under them.
const SCHEMA: &str = "
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX events_by_source ON events (source);

-- A connection's position: every event of its source at or below `through` is settled except
-- the `holes` (varint runs, see `state.rs`); `cursor` is the highest id with everything at or
-- below it settled, what collection may delete.
CREATE TABLE connections (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    cursor INTEGER NOT NULL,
    through INTEGER NOT NULL,
    holes BLOB NOT NULL DEFAULT x''
) WITHOUT ROWID;
CREATE INDEX connections_by_source ON connections (source);

-- Sources that have ever had a connection: a connection declared on one of these starts at the
-- end of the log, on any other source at the beginning.
CREATE TABLE sources (
    name TEXT PRIMARY KEY
) WITHOUT ROWID;

CREATE TABLE retries (
    connection TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    source TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (connection, event_id)
) WITHOUT ROWID;
CREATE INDEX retries_due ON retries (connection, due_at);

CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    connection TEXT,
    source TEXT NOT NULL,
    event_id INTEGER,
    mapping TEXT,
    reason TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    letters TEXT NOT NULL
);
CREATE INDEX dead_letters_by_connection ON dead_letters (connection, id);

CREATE TABLE remembered (
    connection TEXT NOT NULL,
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (connection, store, key)
) WITHOUT ROWID;

-- Dedupe keys in arrival order: read back into memory at start (see `dedupe.rs`).
CREATE TABLE dedupe_log (
    id INTEGER PRIMARY KEY,
    hash INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
";

/// Opens the connection that writes: WAL, the requested `synchronous`, and the schema created or
/// checked.
pub(crate) fn open_writer(path: &Path, synchronous_full: bool) -> Result<Connection, QueueError> {
    let conn = open(path)?;
    let fail = |what| {
        move |source| QueueError::Open {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    // Only a new file takes it: events are appended, and every page of a commit is written to
    // the WAL with a call of its own.
    conn.pragma_update(None, "page_size", 16_384)
        .map_err(fail("setting the page size"))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(fail("switching to WAL"))?;
    let sync = if synchronous_full { "FULL" } else { "NORMAL" };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(fail("setting `synchronous`"))?;
    // Checkpoints run on their own thread (see `checkpoint.rs`); SQLite's own stays as a
    // safety valve for a WAL that outgrows 64 MB. The threshold counts pages, whose size depends
    // on when the file was made.
    let page_size: i64 = conn
        .pragma_query_value(None, "page_size", |row| row.get(0))
        .map_err(fail("reading the page size"))?;
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        WAL_VALVE_BYTES / page_size.max(512),
    )
    .map_err(fail("setting `wal_autocheckpoint`"))?;
    // Each command of a group commit runs in a savepoint, which copies the pages it changes
    // first into a statement journal: in memory, not in a temporary file written per page.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(fail("setting `temp_store`"))?;
    migrate(path, &conn)?;
    Ok(conn)
}

/// Opens a connection for reads off the hot path of writing (claims, listings).
pub(crate) fn open_reader(path: &Path) -> Result<Connection, QueueError> {
    let conn = open(path)?;
    check_version(path, &conn)?;
    Ok(conn)
}

fn open(path: &Path) -> Result<Connection, QueueError> {
    let fail = |what| {
        move |source| QueueError::Open {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    let conn = Connection::open(path).map_err(fail("opening the file"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(fail("setting the busy timeout"))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn check_version(path: &Path, conn: &Connection) -> Result<i64, QueueError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|source| QueueError::Open {
            path: path.to_path_buf(),
            what: "reading the schema version",
            source,
        })?;
    if found > VERSION {
        return Err(QueueError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: VERSION,
        });
    }
    Ok(found)
}

fn migrate(path: &Path, conn: &Connection) -> Result<(), QueueError> {
    let fail = |what| {
        move |source| QueueError::Open {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(fail("locking the file to check its schema"))?;
    let result = (|| {
        let found = check_version(path, conn)?;
        if found == VERSION {
            return Ok(());
        }
        if found == 0 {
            conn.execute_batch(SCHEMA)
                .map_err(fail("creating the schema"))?;
        }
        if found == 1 {
            conn.execute_batch(
                "CREATE TABLE dedupe_log (
                     id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, at_ms INTEGER NOT NULL);
                 INSERT INTO dedupe_log (hash, at_ms) SELECT hash, at_ms FROM dedupe ORDER BY at_ms;
                 DROP TABLE dedupe;",
            )
            .map_err(fail("moving dedupe keys to the log of version 2"))?;
        }
        if (1..=2).contains(&found) {
            conn.execute_batch(
                "ALTER TABLE connections ADD COLUMN through INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE connections ADD COLUMN holes BLOB NOT NULL DEFAULT x'';
                 UPDATE connections SET through = cursor;",
            )
            .map_err(fail("adding settled positions for version 3"))?;
        }
        conn.pragma_update(None, "user_version", VERSION)
            .map_err(fail("setting the schema version"))?;
        Ok(())
    })();
    match result {
        Ok(()) => conn
            .execute_batch("COMMIT")
            .map_err(fail("committing the schema")),
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}
