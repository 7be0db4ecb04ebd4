//! Claiming and settling on SQLite: its persisted position, collection of the log, and where a
//! first connection starts. What every backend does is in the behaviour suite
//! (`tests/behaviour/`).

mod common;

use common::{Store, bodies, declare, enqueue, ids};
use ferry_queue::{EventId, Queue, Settlement};
use std::time::Duration;

fn delivered(ids: &[EventId]) -> Vec<(EventId, Settlement)> {
    ids.iter().map(|id| (*id, Settlement::Delivered)).collect()
}

#[tokio::test]
async fn cursor_moves_to_just_below_the_lowest_unsettled_claim() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let id = enqueue(&queue, "segment", &["a", "b", "c", "d"]).await;
    queue.claim("acme", 10).await.unwrap();

    queue
        .settle("acme", delivered(&[id[2], id[3]]), Vec::new())
        .await
        .unwrap();
    assert_eq!(store.cursor("acme"), 0);
    queue
        .settle("acme", delivered(&[id[0]]), Vec::new())
        .await
        .unwrap();
    assert_eq!(store.cursor("acme"), id[0].0);
    queue
        .settle("acme", delivered(&[id[1]]), Vec::new())
        .await
        .unwrap();
    assert_eq!(store.cursor("acme"), id[3].0);
}

#[tokio::test]
async fn the_first_connection_of_a_source_starts_at_the_beginning() {
    let store = Store::new();
    let queue = store.open();
    enqueue(&queue, "segment", &["before"]).await;
    declare(&queue, &[("acme", "segment"), ("globex", "segment")]).await;

    assert_eq!(bodies(&queue.claim("acme", 10).await.unwrap()), ["before"]);
    assert_eq!(
        bodies(&queue.claim("globex", 10).await.unwrap()),
        ["before"]
    );
}

#[tokio::test]
async fn collection_deletes_events_every_active_connection_settled() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment"), ("globex", "segment")]).await;
    let bodies: Vec<String> = (0..10).map(|i| format!("e{i}")).collect();
    let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
    enqueue(&queue, "segment", &bodies).await;
    enqueue(&queue, "amplitude", &["unconnected"]).await;
    let claimed = queue.claim("acme", 100).await.unwrap();
    queue
        .settle("acme", delivered(&ids(&claimed)), Vec::new())
        .await
        .unwrap();

    assert_eq!(
        queue.collect_garbage().await.unwrap(),
        0,
        "globex has not delivered them"
    );
    assert_eq!(store.count("SELECT count(*) FROM events"), 11);

    // globex is removed from the config: it no longer holds the log back. Commits also delete
    // a few rows alongside their own work, so some may be gone before the explicit collection.
    declare(&queue, &[("acme", "segment")]).await;
    queue.collect_garbage().await.unwrap();
    assert_eq!(
        store.count("SELECT count(*) FROM events"),
        1,
        "an event of a source without an active connection is kept"
    );
    enqueue(&queue, "segment", &["next"]).await;
    assert_eq!(
        common::bodies(&queue.claim("acme", 10).await.unwrap()),
        ["next"]
    );
}

#[tokio::test]
async fn ids_are_not_reused_after_the_whole_log_was_collected() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let first = enqueue(&queue, "segment", &["a", "b"]).await;
    let claimed = queue.claim("acme", 10).await.unwrap();
    queue
        .settle("acme", delivered(&ids(&claimed)), Vec::new())
        .await
        .unwrap();
    // Possibly already collected alongside the settlement's commit.
    queue.collect_garbage().await.unwrap();
    assert_eq!(store.count("SELECT count(*) FROM events"), 0);
    drop(queue);

    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let next = enqueue(&queue, "segment", &["c"]).await;
    assert!(
        next[0] > first[1],
        "a reused id would sit behind the cursor"
    );
    assert_eq!(bodies(&queue.claim("acme", 10).await.unwrap()), ["c"]);
}

#[tokio::test]
async fn the_writer_collects_settled_events_on_its_own() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    enqueue(&queue, "segment", &["a", "b"]).await;
    let claimed = queue.claim("acme", 10).await.unwrap();
    queue
        .settle("acme", delivered(&ids(&claimed)), Vec::new())
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.count("SELECT count(*) FROM events") > 0 {
        assert!(tokio::time::Instant::now() < deadline, "never collected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
