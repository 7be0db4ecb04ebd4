//! Enqueueing: dedupe, rejected events and group commit.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Store, declare, event, keyed, now_ms};
use ferry_queue::{Enqueued, Queue, RejectedEvent, SqliteOptions, SqliteQueue};

fn stored(outcome: &[Enqueued]) -> Vec<bool> {
    outcome
        .iter()
        .map(|e| matches!(e, Enqueued::Stored(_)))
        .collect()
}

#[tokio::test]
async fn a_dedupe_key_is_stored_once_within_and_across_calls() {
    let store = Store::new();
    let queue = store.open();
    let first = queue
        .enqueue(
            vec![
                keyed("segment", "m1", "a"),
                keyed("segment", "m1", "a again"),
                keyed("segment", "m2", "b"),
                event("segment", "no key"),
                event("segment", "no key"),
            ],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(stored(&first), [true, false, true, true, true]);

    let second = queue
        .enqueue(
            vec![
                keyed("segment", "m1", "a"),
                keyed("amplitude", "m1", "other source"),
            ],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(stored(&second), [false, true]);
    assert_eq!(store.count("SELECT count(*) FROM events"), 5);
}

#[tokio::test]
async fn a_dedupe_key_is_remembered_across_a_restart() {
    let store = Store::new();
    let queue = store.open();
    queue
        .enqueue(vec![keyed("segment", "m1", "a")], Vec::new())
        .await
        .unwrap();
    drop(queue);

    let queue = store.open();
    let again = queue
        .enqueue(vec![keyed("segment", "m1", "a")], Vec::new())
        .await
        .unwrap();
    assert_eq!(again, [Enqueued::Duplicate]);
}

#[tokio::test]
async fn a_dedupe_key_is_forgotten_after_the_window() {
    let store = Store::new();
    let options = SqliteOptions {
        dedupe_window: Duration::from_mins(1),
        ..SqliteOptions::default()
    };
    let queue = SqliteQueue::open(&store.path(), options).unwrap();
    let mut old = keyed("segment", "m1", "a");
    old.received_at_ms = now_ms() - 120_000;
    queue.enqueue(vec![old], Vec::new()).await.unwrap();

    let later = queue
        .enqueue(vec![keyed("segment", "m1", "a")], Vec::new())
        .await
        .unwrap();
    assert_eq!(stored(&later), [true]);
}

#[tokio::test]
async fn concurrent_calls_with_the_same_key_store_it_once() {
    let store = Store::new();
    let queue = Arc::new(store.open());
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move {
                queue
                    .enqueue(vec![keyed("segment", "same", "x")], Vec::new())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut stored_count = 0;
    for call in calls {
        stored_count += stored(&call.await.unwrap()).iter().filter(|s| **s).count();
    }
    assert_eq!(stored_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_share_group_commits() {
    let store = Store::new();
    let queue = Arc::new(store.open());
    let before = queue.commits();
    let calls: Vec<_> = (0..100)
        .map(|task| {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move {
                let events = (0..10)
                    .map(|i| event("segment", &format!("{task}-{i}")))
                    .collect();
                queue.enqueue(events, Vec::new()).await.unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for call in calls {
        for outcome in call.await.unwrap() {
            let Enqueued::Stored(id) = outcome else {
                panic!("duplicate")
            };
            ids.push(id);
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000);
    assert_eq!(store.count("SELECT count(*) FROM events"), 1000);
    let commits = queue.commits() - before;
    eprintln!("100 concurrent calls took {commits} commits");
    assert!(commits < 50, "100 calls took {commits} commits");
}

#[tokio::test]
async fn rejected_events_are_kept_as_dead_letters_without_a_connection() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let rejected = RejectedEvent {
        source: "segment".to_owned(),
        received_at_ms: now_ms(),
        reason: "missing `type`".to_owned(),
        body: r#"{"event":"x"}"#.to_owned(),
    };
    let outcome = queue
        .enqueue(vec![event("segment", "good")], vec![rejected])
        .await
        .unwrap();
    assert_eq!(stored(&outcome), [true], "one answer per accepted event");

    let listed = queue.dead_letters(None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].connection.as_deref(),
            listed[0].event_id,
            listed[0].reason.as_str()
        ),
        (None, None, "missing `type`")
    );
    assert!(
        queue
            .dead_letters(Some("acme"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let record = queue.dead_letter(listed[0].id).await.unwrap().unwrap();
    assert_eq!(record.event, r#"{"event":"x"}"#);
    assert!(record.letters.is_empty());
}
