//! Claiming and settling: the path every event takes from the log to a destination.

mod common;

use common::{Store, bodies, declare, enqueue, ids, now_ms};
use ferry_queue::{Depth, EventId, Queue, Settlement};
use std::time::Duration;

fn delivered(ids: &[EventId]) -> Vec<(EventId, Settlement)> {
    ids.iter().map(|id| (*id, Settlement::Delivered)).collect()
}

#[tokio::test]
async fn enqueued_events_are_claimed_in_order_and_settled_once() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    enqueue(&queue, "segment", &["a", "b", "c"]).await;

    let claimed = queue.claim("acme", 10).await.unwrap();
    assert_eq!(bodies(&claimed), ["a", "b", "c"]);
    assert!(claimed.iter().all(|c| c.attempt == 0));
    assert!(
        queue.claim("acme", 10).await.unwrap().is_empty(),
        "in flight is not handed out again"
    );
    assert_eq!(queue.depth("acme").await.unwrap().in_flight, 3);

    queue
        .settle("acme", delivered(&ids(&claimed)), Vec::new())
        .await
        .unwrap();
    assert!(queue.claim("acme", 10).await.unwrap().is_empty());
    assert_eq!(queue.depth("acme").await.unwrap(), Depth::default());
}

#[tokio::test]
async fn claim_answers_at_most_max_events() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    enqueue(&queue, "segment", &["a", "b", "c"]).await;

    assert_eq!(bodies(&queue.claim("acme", 2).await.unwrap()), ["a", "b"]);
    assert_eq!(bodies(&queue.claim("acme", 2).await.unwrap()), ["c"]);
}

#[tokio::test]
async fn acknowledged_events_survive_a_restart_without_settlement() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    enqueue(&queue, "segment", &["a", "b", "c"]).await;
    assert_eq!(queue.claim("acme", 2).await.unwrap().len(), 2);
    drop(queue); // a crash: claims were in memory only

    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    assert_eq!(
        bodies(&queue.claim("acme", 10).await.unwrap()),
        ["a", "b", "c"]
    );
}

#[tokio::test]
async fn events_settled_out_of_order_are_not_lost_by_a_restart() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let id = enqueue(&queue, "segment", &["a", "b", "c", "d", "e"]).await;
    queue.claim("acme", 10).await.unwrap();
    queue
        .settle("acme", delivered(&[id[0], id[1], id[3]]), Vec::new())
        .await
        .unwrap();
    drop(queue);

    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    // Only what was unsettled comes back: "d", settled above the unsettled "c", is not
    // delivered again.
    assert_eq!(bodies(&queue.claim("acme", 10).await.unwrap()), ["c", "e"]);
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
async fn settling_an_event_not_claimed_is_an_error() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let id = enqueue(&queue, "segment", &["a"]).await;

    let err = queue
        .settle("acme", delivered(&id), Vec::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("event `{}` is not claimed by connection `acme`", id[0].0)
    );
    queue.claim("acme", 1).await.unwrap();
    queue
        .settle("acme", delivered(&id), Vec::new())
        .await
        .unwrap();
    assert!(
        queue
            .settle("acme", delivered(&id), Vec::new())
            .await
            .is_err(),
        "settled twice"
    );
}

#[tokio::test]
async fn released_events_are_claimed_again() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let id = enqueue(&queue, "segment", &["a", "b", "c"]).await;
    queue.claim("acme", 10).await.unwrap();

    queue.release("acme", vec![id[0], id[2]]).await.unwrap();
    queue
        .settle("acme", delivered(&[id[1]]), Vec::new())
        .await
        .unwrap();
    assert_eq!(
        store.cursor("acme"),
        0,
        "a released event holds the cursor back"
    );
    let depth = queue.depth("acme").await.unwrap();
    assert_eq!((depth.pending, depth.in_flight), (2, 0));
    assert_eq!(bodies(&queue.claim("acme", 10).await.unwrap()), ["a", "c"]);
}

#[tokio::test]
async fn a_retry_is_claimed_only_once_due_and_counts_its_attempts() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let id = enqueue(&queue, "segment", &["a"]).await;
    queue.claim("acme", 1).await.unwrap();

    let retry = |at_ms| Settlement::Retry {
        at_ms,
        reason: "503".to_owned(),
    };
    queue
        .settle("acme", vec![(id[0], retry(now_ms() + 400))], Vec::new())
        .await
        .unwrap();
    assert!(
        queue.claim("acme", 10).await.unwrap().is_empty(),
        "not before it is due"
    );
    assert_eq!(queue.depth("acme").await.unwrap().retrying, 1);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let claimed = queue.claim("acme", 10).await.unwrap();
    assert_eq!((bodies(&claimed), claimed[0].attempt), (vec!["a"], 1));
    assert_eq!(
        queue.depth("acme").await.unwrap().retrying,
        0,
        "in flight, not retrying"
    );

    queue
        .settle("acme", vec![(id[0], retry(now_ms()))], Vec::new())
        .await
        .unwrap();
    let claimed = queue.claim("acme", 10).await.unwrap();
    assert_eq!(claimed[0].attempt, 2);

    queue
        .settle("acme", delivered(&id), Vec::new())
        .await
        .unwrap();
    assert!(queue.claim("acme", 10).await.unwrap().is_empty());
    assert_eq!(store.count("SELECT count(*) FROM retries"), 0);
}

#[tokio::test]
async fn due_retries_come_before_new_events() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let id = enqueue(&queue, "segment", &["old"]).await;
    queue.claim("acme", 1).await.unwrap();
    let retry = Settlement::Retry {
        at_ms: now_ms(),
        reason: "timeout".to_owned(),
    };
    queue
        .settle("acme", vec![(id[0], retry)], Vec::new())
        .await
        .unwrap();
    enqueue(&queue, "segment", &["new"]).await;

    assert_eq!(
        bodies(&queue.claim("acme", 10).await.unwrap()),
        ["old", "new"]
    );
}

#[tokio::test]
async fn a_retry_survives_a_restart_and_is_not_also_redelivered_from_the_log() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let id = enqueue(&queue, "segment", &["a", "b"]).await;
    queue.claim("acme", 10).await.unwrap();
    let retry = Settlement::Retry {
        at_ms: now_ms(),
        reason: "429".to_owned(),
    };
    queue
        .settle("acme", vec![(id[1], retry)], Vec::new())
        .await
        .unwrap();
    drop(queue);

    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let claimed = queue.claim("acme", 10).await.unwrap();
    let seen: Vec<_> = claimed
        .iter()
        .map(|c| (c.body.as_str(), c.attempt))
        .collect();
    assert_eq!(seen, [("b", 1), ("a", 0)]);
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
async fn a_new_connection_on_a_known_source_starts_at_the_end_of_the_log() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    enqueue(&queue, "segment", &["before"]).await;
    declare(&queue, &[("acme", "segment"), ("globex", "segment")]).await;
    enqueue(&queue, "segment", &["after"]).await;

    assert_eq!(bodies(&queue.claim("globex", 10).await.unwrap()), ["after"]);
    assert_eq!(
        bodies(&queue.claim("acme", 10).await.unwrap()),
        ["before", "after"]
    );
}

#[tokio::test]
async fn an_inactive_connection_claims_nothing() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    enqueue(&queue, "segment", &["a"]).await;
    declare(&queue, &[("globex", "segment")]).await;

    assert!(queue.claim("acme", 10).await.unwrap().is_empty());
    assert!(queue.claim("nobody", 10).await.unwrap().is_empty());
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
async fn depth_counts_pending_in_flight_retrying_and_dead() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let id = enqueue(&queue, "segment", &["a", "b", "c", "d", "e"]).await;
    queue.claim("acme", 3).await.unwrap();
    let later = Settlement::Retry {
        at_ms: now_ms() + 60_000,
        reason: "429".to_owned(),
    };
    let dead = Settlement::Dead {
        mapping: "acme".to_owned(),
        reason: "400".to_owned(),
        letters: Vec::new(),
    };
    queue
        .settle("acme", vec![(id[0], later), (id[1], dead)], Vec::new())
        .await
        .unwrap();

    let depth = queue.depth("acme").await.unwrap();
    assert_eq!(
        depth,
        Depth {
            pending: 2,
            in_flight: 1,
            retrying: 1,
            dead: 1
        }
    );
    assert_eq!(queue.depth("nobody").await.unwrap(), Depth::default());
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
