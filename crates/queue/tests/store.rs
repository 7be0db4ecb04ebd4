//! The SQLite file itself: schema versions, WAL mode. Remembered values are in the behaviour
//! suite (`tests/behaviour/`), run on every backend.

mod common;

use common::Store;
use ferry_queue::{Queue, QueueError, SqliteOptions, SqliteQueue};

#[test]
fn a_file_from_a_newer_ferry_is_refused() {
    let store = Store::new();
    drop(store.open());
    rusqlite::Connection::open(store.path())
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();

    let err = SqliteQueue::open(&store.path(), SqliteOptions::default()).unwrap_err();
    assert!(
        matches!(err, QueueError::NewerSchema { found: 99, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&store.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_an_error_naming_it() {
    let store = Store::new();
    std::fs::write(
        store.path(),
        b"not a database, just some text that is long enough",
    )
    .unwrap();

    let err = SqliteQueue::open(&store.path(), SqliteOptions::default()).unwrap_err();
    assert!(err.to_string().contains("queue.db"), "{err}");
}

#[tokio::test]
async fn the_store_is_in_wal_mode() {
    let store = Store::new();
    let _queue = store.open();
    let mode: String = rusqlite::Connection::open(store.path())
        .unwrap()
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

fn page_size(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "page_size", |row| row.get(0))
        .unwrap()
}

/// A new file has large pages (fewer WAL writes per commit); a file made with SQLite's default
/// pages keeps them and its events.
#[tokio::test]
async fn a_new_store_has_16_kib_pages_and_an_older_file_keeps_its_own() {
    let store = Store::new();
    drop(store.open());
    assert_eq!(page_size(&store.path()), 16_384);

    let older = Store::new();
    rusqlite::Connection::open(older.path())
        .unwrap()
        .execute_batch(
            "PRAGMA page_size = 4096; CREATE TABLE made_before (x); DROP TABLE made_before;",
        )
        .unwrap();
    assert_eq!(page_size(&older.path()), 4096);
    let queue = older.open();
    common::declare(&queue, &[("acme", "segment")]).await;
    common::enqueue(&queue, "segment", &["a", "b"]).await;
    assert_eq!(
        common::bodies(&queue.claim("acme", 10).await.unwrap()),
        ["a", "b"]
    );
    drop(queue);
    assert_eq!(page_size(&older.path()), 4096);
}

#[tokio::test]
async fn a_version_1_file_keeps_its_dedupe_keys() {
    let store = Store::new();
    drop(store.open());
    {
        // Turn the file back into version 1, whose dedupe keys sat in an indexed table.
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        conn.execute_batch(
            "DROP TABLE dedupe_log;
             ALTER TABLE connections DROP COLUMN holes;
             ALTER TABLE connections DROP COLUMN through;
             CREATE TABLE dedupe (hash INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL);
             CREATE INDEX dedupe_by_age ON dedupe (at_ms);
             PRAGMA user_version = 1;",
        )
        .unwrap();
        // The hash of ("segment", "m1").
        conn.execute(
            "INSERT INTO dedupe (hash, at_ms) VALUES (?1, ?2)",
            rusqlite::params![0xc72d_730c_d96c_e471_u64.cast_signed(), common::now_ms()],
        )
        .unwrap();
    }
    let queue = store.open();
    let again = queue
        .enqueue(vec![common::keyed("segment", "m1", "a")], Vec::new())
        .await
        .unwrap();
    assert_eq!(again, [ferry_queue::Enqueued::Duplicate]);
}

#[tokio::test]
async fn a_version_2_file_resumes_at_its_cursor() {
    let store = Store::new();
    let queue = store.open();
    common::declare(&queue, &[("acme", "segment")]).await;
    let id = common::enqueue(&queue, "segment", &["a", "b", "c"]).await;
    drop(queue);
    {
        // Turn the file back into version 2, whose position was only a cursor.
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        conn.execute_batch(
            "ALTER TABLE connections DROP COLUMN holes;
             ALTER TABLE connections DROP COLUMN through;
             PRAGMA user_version = 2;",
        )
        .unwrap();
        conn.execute(
            "UPDATE connections SET cursor = ?1 WHERE name = 'acme'",
            [id[0].0],
        )
        .unwrap();
    }
    let queue = store.open();
    common::declare(&queue, &[("acme", "segment")]).await;
    assert_eq!(
        common::bodies(&queue.claim("acme", 10).await.unwrap()),
        ["b", "c"]
    );
}
