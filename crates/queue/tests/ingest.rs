//! Enqueueing on SQLite: group commit. Dedupe and rejected events are in the behaviour suite
//! (`tests/behaviour/`), run on every backend.

mod common;

use std::sync::Arc;

use common::{Store, event};
use ferry_queue::{Enqueued, Queue};

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
