//! Dead letters: kept with the event, listed, replayed and purged, also from a second process.

mod common;

use std::time::Duration;

use common::{Store, bodies, declare, enqueue, ids, now_ms};
use ferry_queue::{EventId, Queue, RejectedEvent, Replayed, Select, Settlement, SqliteQueue};
use serde_json::json;

fn dead(reason: &str) -> Settlement {
    Settlement::Dead {
        mapping: "acme".to_owned(),
        reason: reason.to_owned(),
        letters: vec![json!({"request": {"url": "https://api.acme.example"}, "status": 400})],
    }
}

/// Enqueues `bodies` for connection `acme` and dead-letters all of them.
async fn dead_lettered(queue: &SqliteQueue, bodies: &[&str]) -> Vec<EventId> {
    let id = enqueue(queue, "segment", bodies).await;
    let claimed = queue.claim("acme", 100).await.unwrap();
    let settled = ids(&claimed)
        .into_iter()
        .map(|id| (id, dead("400 bad request")))
        .collect();
    queue.settle("acme", settled, Vec::new()).await.unwrap();
    id
}

#[tokio::test]
async fn dead_letters_are_listed_newest_first_and_shown_in_full() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let id = dead_lettered(&queue, &["a", "b"]).await;

    let listed = queue.dead_letters(Some("acme"), 10).await.unwrap();
    let events: Vec<_> = listed.iter().map(|d| d.event_id).collect();
    assert_eq!(events, [Some(id[1]), Some(id[0])]);
    assert_eq!(listed[0].connection.as_deref(), Some("acme"));
    assert_eq!(listed[0].mapping.as_deref(), Some("acme"));
    assert_eq!(listed[0].reason, "400 bad request");
    assert_eq!(queue.dead_letters(None, 1).await.unwrap().len(), 1, "limit");
    assert_eq!(queue.depth("acme").await.unwrap().dead, 2);

    let record = queue.dead_letter(listed[1].id).await.unwrap().unwrap();
    assert_eq!(record.event, "a");
    assert_eq!(record.letters[0]["status"], 400);
    assert!(queue.dead_letter(9999).await.unwrap().is_none());
}

#[tokio::test]
async fn a_retry_given_up_becomes_a_dead_letter() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let id = enqueue(&queue, "segment", &["a"]).await;
    queue.claim("acme", 1).await.unwrap();
    let retry = Settlement::Retry {
        at_ms: now_ms(),
        reason: "503".to_owned(),
    };
    queue
        .settle("acme", vec![(id[0], retry)], Vec::new())
        .await
        .unwrap();
    queue.claim("acme", 1).await.unwrap();
    queue
        .settle("acme", vec![(id[0], dead("503 eight times"))], Vec::new())
        .await
        .unwrap();

    assert_eq!(store.count("SELECT count(*) FROM retries"), 0);
    let record = queue.dead_letters(Some("acme"), 10).await.unwrap();
    assert_eq!(record[0].reason, "503 eight times");
}

#[tokio::test]
async fn replay_makes_dead_letters_claimable_again_as_a_first_attempt() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    dead_lettered(&queue, &["a", "b"]).await;
    let listed = queue.dead_letters(Some("acme"), 10).await.unwrap();

    let replayed = queue.replay(Select::One(listed[0].id)).await.unwrap();
    assert_eq!(
        replayed,
        Replayed {
            queued: 1,
            skipped: Vec::new()
        }
    );
    let claimed = queue.claim("acme", 10).await.unwrap();
    assert_eq!((bodies(&claimed), claimed[0].attempt), (vec!["b"], 0));
    assert_eq!(queue.dead_letters(None, 10).await.unwrap().len(), 1);

    let missing = queue.replay(Select::One(9999)).await.unwrap();
    assert_eq!(missing.skipped, [(9999, "no such dead letter".to_owned())]);
}

#[tokio::test]
async fn purge_deletes_the_selected_dead_letters() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    dead_lettered(&queue, &["a", "b", "c"]).await;
    let listed = queue.dead_letters(None, 10).await.unwrap();

    assert_eq!(queue.purge(Select::One(listed[0].id)).await.unwrap(), 1);
    assert_eq!(
        queue
            .purge(Select::Connection("globex".to_owned()))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        queue
            .purge(Select::Connection("acme".to_owned()))
            .await
            .unwrap(),
        2
    );
    assert!(queue.dead_letters(None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn events_rejected_at_ingest_are_not_replayed() {
    let store = Store::new();
    let queue = store.open();
    declare(&queue, &[("acme", "segment")]).await;
    let rejected = RejectedEvent {
        source: "segment".to_owned(),
        received_at_ms: now_ms(),
        reason: "not JSON".to_owned(),
        body: "{".to_owned(),
    };
    queue.enqueue(Vec::new(), vec![rejected]).await.unwrap();
    let id = queue.dead_letters(None, 1).await.unwrap()[0].id;

    let replayed = queue.replay(Select::All).await.unwrap();
    assert_eq!(replayed.queued, 0);
    assert_eq!(replayed.skipped.len(), 1);
    assert_eq!(replayed.skipped[0].0, id);
    assert!(
        replayed.skipped[0].1.contains("rejected at ingest"),
        "{replayed:?}"
    );
    assert_eq!(
        queue.dead_letters(None, 10).await.unwrap().len(),
        1,
        "still kept"
    );
    assert_eq!(queue.purge(Select::All).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_handle_lists_and_replays_while_the_server_runs() {
    let store = Store::new();
    let server = store.open();
    declare(&server, &[("acme", "segment")]).await;
    dead_lettered(&server, &["a"]).await;

    let cli = store.open();
    let listed = cli.dead_letters(Some("acme"), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        cli.dead_letter(listed[0].id).await.unwrap().unwrap().event,
        "a"
    );

    // The server's worker is idle, waiting for work; the CLI replays.
    let waiting = tokio::spawn(async move {
        server.work_available().await;
        let claimed = server.claim("acme", 10).await.unwrap();
        (server, claimed)
    });
    assert_eq!(cli.replay(Select::All).await.unwrap().queued, 1);
    let (server, claimed) = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("the server notices within its poll interval")
        .unwrap();
    assert_eq!(bodies(&claimed), ["a"]);
    server
        .settle(
            "acme",
            vec![(claimed[0].id, Settlement::Delivered)],
            Vec::new(),
        )
        .await
        .unwrap();
    assert!(cli.dead_letters(None, 10).await.unwrap().is_empty());
}
