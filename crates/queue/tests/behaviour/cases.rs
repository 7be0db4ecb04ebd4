//! The cases of the suite, each an async function of a [`Backend`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ferry_queue::{
    Claimed, Depth, Enqueued, EventId, NewEvent, OrderKey, Queue, RejectedEvent, Remember,
    Replayed, Select, Settlement,
};
use serde_json::json;

use super::Backend;
use super::helpers::{bodies, declare, enqueue, event, ids, keyed, now_ms};

fn delivered(ids: &[EventId]) -> Vec<(EventId, Settlement)> {
    ids.iter().map(|id| (*id, Settlement::Delivered)).collect()
}

fn dead(reason: &str) -> Settlement {
    Settlement::Dead {
        mapping: "acme".to_owned(),
        reason: reason.to_owned(),
        letters: vec![json!({"request": {"url": "https://api.acme.example"}, "status": 400})],
    }
}

fn retry(at_ms: i64, reason: &str) -> Settlement {
    Settlement::Retry {
        at_ms,
        reason: reason.to_owned(),
    }
}

/// Claims until `count` events came (after a restart, JetStream hands out a stopped handle's
/// claims only after its ack wait), or ten seconds passed.
pub async fn claim_until(queue: &dyn Queue, connection: &str, count: usize) -> Vec<Claimed> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut claimed = Vec::new();
    while claimed.len() < count && tokio::time::Instant::now() < deadline {
        let more = queue.claim(connection, 100).await.unwrap();
        if more.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        claimed.extend(more);
    }
    claimed
}

/// Asserts nothing more is claimable now.
async fn nothing_more(queue: &dyn Queue, connection: &str, why: &str) {
    assert!(
        queue.claim(connection, 100).await.unwrap().is_empty(),
        "{why}"
    );
}

pub async fn enqueued_events_are_claimed_in_order_and_settled_once(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    enqueue(&*queue, "segment", &["a", "b", "c"]).await;

    let claimed = queue.claim("acme", 10).await.unwrap();
    assert_eq!(bodies(&claimed), ["a", "b", "c"]);
    assert!(claimed.iter().all(|c| c.attempt == 0));
    nothing_more(&*queue, "acme", "in flight is not handed out again").await;
    assert_eq!(queue.depth("acme").await.unwrap().in_flight, 3);

    queue
        .settle("acme", delivered(&ids(&claimed)), Vec::new())
        .await
        .unwrap();
    nothing_more(&*queue, "acme", "settled is not handed out again").await;
    assert_eq!(queue.depth("acme").await.unwrap(), Depth::default());
}

pub async fn claim_answers_at_most_max_events(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    enqueue(&*queue, "segment", &["a", "b", "c"]).await;

    assert_eq!(bodies(&queue.claim("acme", 2).await.unwrap()), ["a", "b"]);
    assert_eq!(bodies(&queue.claim("acme", 2).await.unwrap()), ["c"]);
}

pub async fn acknowledged_events_survive_a_restart_without_settlement(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    enqueue(&*queue, "segment", &["a", "b", "c"]).await;
    assert_eq!(queue.claim("acme", 2).await.unwrap().len(), 2);
    drop(queue); // a crash: nothing was settled or released

    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let mut claimed: Vec<String> = bodies(&claim_until(&*queue, "acme", 3).await)
        .into_iter()
        .map(str::to_owned)
        .collect();
    claimed.sort();
    assert_eq!(claimed, ["a", "b", "c"]);
}

pub async fn events_settled_out_of_order_are_not_lost_by_a_restart(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let id = enqueue(&*queue, "segment", &["a", "b", "c", "d", "e"]).await;
    queue.claim("acme", 10).await.unwrap();
    queue
        .settle("acme", delivered(&[id[0], id[1], id[3]]), Vec::new())
        .await
        .unwrap();
    drop(queue);

    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let claimed = claim_until(&*queue, "acme", 2).await;
    // Only what was unsettled comes back: not "d", settled after the unsettled "c".
    let again: BTreeSet<&str> = bodies(&claimed).into_iter().collect();
    assert_eq!(again, BTreeSet::from(["c", "e"]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    nothing_more(&*queue, "acme", "nothing settled is repeated").await;
}

pub async fn settling_an_event_not_claimed_is_an_error(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let id = enqueue(&*queue, "segment", &["a"]).await;

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

pub async fn released_events_are_claimed_again(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let id = enqueue(&*queue, "segment", &["a", "b", "c"]).await;
    queue.claim("acme", 10).await.unwrap();

    queue.release("acme", vec![id[0], id[2]]).await.unwrap();
    queue
        .settle("acme", delivered(&[id[1]]), Vec::new())
        .await
        .unwrap();
    let depth = queue.depth("acme").await.unwrap();
    assert_eq!((depth.pending, depth.in_flight), (2, 0));
    assert_eq!(bodies(&claim_until(&*queue, "acme", 2).await), ["a", "c"]);
}

pub async fn a_retry_is_claimed_only_once_due_and_counts_its_attempts(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let id = enqueue(&*queue, "segment", &["a"]).await;
    queue.claim("acme", 1).await.unwrap();

    queue
        .settle(
            "acme",
            vec![(id[0], retry(now_ms() + 600, "503"))],
            Vec::new(),
        )
        .await
        .unwrap();
    nothing_more(&*queue, "acme", "not before it is due").await;
    assert_eq!(queue.depth("acme").await.unwrap().retrying, 1);

    tokio::time::sleep(Duration::from_millis(700)).await;
    let claimed = claim_until(&*queue, "acme", 1).await;
    assert_eq!((bodies(&claimed), claimed[0].attempt), (vec!["a"], 1));
    assert_eq!(claimed[0].id, id[0], "a retry keeps the event's id");
    assert_eq!(
        queue.depth("acme").await.unwrap().retrying,
        0,
        "in flight, not retrying"
    );

    queue
        .settle("acme", vec![(id[0], retry(now_ms(), "503"))], Vec::new())
        .await
        .unwrap();
    let claimed = claim_until(&*queue, "acme", 1).await;
    assert_eq!(claimed[0].attempt, 2);

    queue
        .settle("acme", delivered(&id), Vec::new())
        .await
        .unwrap();
    nothing_more(&*queue, "acme", "delivered").await;
    assert_eq!(queue.depth("acme").await.unwrap(), Depth::default());
}

pub async fn due_retries_come_before_new_events(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let id = enqueue(&*queue, "segment", &["old"]).await;
    queue.claim("acme", 1).await.unwrap();
    queue
        .settle(
            "acme",
            vec![(id[0], retry(now_ms(), "timeout"))],
            Vec::new(),
        )
        .await
        .unwrap();
    enqueue(&*queue, "segment", &["new"]).await;

    assert_eq!(
        bodies(&claim_until(&*queue, "acme", 2).await),
        ["old", "new"]
    );
}

pub async fn a_retry_survives_a_restart_and_is_not_also_redelivered(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let id = enqueue(&*queue, "segment", &["a", "b"]).await;
    queue.claim("acme", 10).await.unwrap();
    queue
        .settle("acme", vec![(id[1], retry(now_ms(), "429"))], Vec::new())
        .await
        .unwrap();
    drop(queue);

    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let claimed = claim_until(&*queue, "acme", 2).await;
    let mut seen: Vec<_> = claimed
        .iter()
        .map(|c| (c.body.as_str(), c.attempt))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, [("a", 0), ("b", 1)]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    nothing_more(&*queue, "acme", "b once, as a retry").await;
}

pub async fn a_new_connection_on_a_known_source_starts_at_the_end(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    enqueue(&*queue, "segment", &["before"]).await;
    declare(&*queue, &[("acme", "segment"), ("globex", "segment")]).await;
    enqueue(&*queue, "segment", &["after"]).await;

    assert_eq!(bodies(&queue.claim("globex", 10).await.unwrap()), ["after"]);
    assert_eq!(
        bodies(&queue.claim("acme", 10).await.unwrap()),
        ["before", "after"]
    );
}

pub async fn an_inactive_connection_claims_nothing(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    enqueue(&*queue, "segment", &["a"]).await;
    declare(&*queue, &[("globex", "segment")]).await;

    nothing_more(&*queue, "acme", "acme is no longer declared").await;
    nothing_more(&*queue, "nobody", "never declared").await;
}

pub async fn depth_counts_pending_in_flight_retrying_and_dead(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let id = enqueue(&*queue, "segment", &["a", "b", "c", "d", "e"]).await;
    queue.claim("acme", 3).await.unwrap();
    queue
        .settle(
            "acme",
            vec![
                (id[0], retry(now_ms() + 60_000, "429")),
                (id[1], dead("400")),
            ],
            Vec::new(),
        )
        .await
        .unwrap();

    assert_eq!(
        queue.depth("acme").await.unwrap(),
        Depth {
            pending: 2,
            in_flight: 1,
            retrying: 1,
            dead: 1
        }
    );
    assert_eq!(queue.depth("nobody").await.unwrap(), Depth::default());
}

/// Enqueues `bodies` for connection `acme` and dead-letters all of them.
async fn dead_lettered(queue: &dyn Queue, bodies: &[&str]) -> Vec<EventId> {
    let id = enqueue(queue, "segment", bodies).await;
    let claimed = claim_until(queue, "acme", bodies.len()).await;
    let settled = ids(&claimed)
        .into_iter()
        .map(|id| (id, dead("400 bad request")))
        .collect();
    queue.settle("acme", settled, Vec::new()).await.unwrap();
    id
}

pub async fn dead_letters_are_listed_newest_first_and_shown_in_full(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let id = dead_lettered(&*queue, &["a", "b"]).await;

    let listed = queue.dead_letters(Some("acme"), 10).await.unwrap();
    let events: Vec<_> = listed.iter().map(|d| d.event_id).collect();
    assert_eq!(events, [Some(id[1]), Some(id[0])]);
    assert_eq!(listed[0].connection.as_deref(), Some("acme"));
    assert_eq!(listed[0].mapping.as_deref(), Some("acme"));
    assert_eq!(listed[0].source, "segment");
    assert_eq!(listed[0].reason, "400 bad request");
    assert!(listed[0].at_ms > now_ms() - 60_000);
    assert_eq!(queue.dead_letters(None, 1).await.unwrap().len(), 1, "limit");
    assert_eq!(queue.depth("acme").await.unwrap().dead, 2);

    let record = queue.dead_letter(listed[1].id).await.unwrap().unwrap();
    assert_eq!(record.event, "a");
    assert_eq!(record.summary, listed[1]);
    assert_eq!(record.letters[0]["status"], 400);
    assert!(queue.dead_letter(9999).await.unwrap().is_none());
}

pub async fn a_retry_given_up_becomes_a_dead_letter(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let id = enqueue(&*queue, "segment", &["a"]).await;
    queue.claim("acme", 1).await.unwrap();
    queue
        .settle("acme", vec![(id[0], retry(now_ms(), "503"))], Vec::new())
        .await
        .unwrap();
    claim_until(&*queue, "acme", 1).await;
    queue
        .settle("acme", vec![(id[0], dead("503 eight times"))], Vec::new())
        .await
        .unwrap();

    let depth = queue.depth("acme").await.unwrap();
    assert_eq!((depth.retrying, depth.dead), (0, 1));
    let record = queue.dead_letters(Some("acme"), 10).await.unwrap();
    assert_eq!(record[0].reason, "503 eight times");
    assert_eq!(record[0].event_id, Some(id[0]));
}

pub async fn replay_makes_dead_letters_claimable_again_as_a_first_attempt(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let id = dead_lettered(&*queue, &["a", "b"]).await;
    let listed = queue.dead_letters(Some("acme"), 10).await.unwrap();

    let replayed = queue.replay(Select::One(listed[0].id)).await.unwrap();
    assert_eq!(
        replayed,
        Replayed {
            queued: 1,
            skipped: Vec::new()
        }
    );
    let claimed = claim_until(&*queue, "acme", 1).await;
    assert_eq!((bodies(&claimed), claimed[0].attempt), (vec!["b"], 0));
    assert_eq!(claimed[0].id, id[1]);
    assert_eq!(queue.dead_letters(None, 10).await.unwrap().len(), 1);

    let missing = queue.replay(Select::One(9999)).await.unwrap();
    assert_eq!(missing.skipped, [(9999, "no such dead letter".to_owned())]);
}

pub async fn purge_deletes_the_selected_dead_letters(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    dead_lettered(&*queue, &["a", "b", "c"]).await;
    let listed = queue.dead_letters(None, 10).await.unwrap();

    assert_eq!(queue.purge(Select::One(listed[0].id)).await.unwrap(), 1);
    assert_eq!(queue.purge(Select::One(listed[0].id)).await.unwrap(), 0);
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

fn rejected(reason: &str, body: &str) -> RejectedEvent {
    RejectedEvent {
        source: "segment".to_owned(),
        received_at_ms: now_ms(),
        reason: reason.to_owned(),
        body: body.to_owned(),
    }
}

pub async fn events_rejected_at_ingest_are_not_replayed(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    queue
        .enqueue(Vec::new(), vec![rejected("not JSON", "{")])
        .await
        .unwrap();
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

pub async fn a_second_handle_lists_and_replays_while_the_server_runs(backend: &Backend) {
    let server = backend.open().await;
    declare(&*server, &[("acme", "segment")]).await;
    dead_lettered(&*server, &["a"]).await;

    let cli = backend.open().await;
    let listed = cli.dead_letters(Some("acme"), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        cli.dead_letter(listed[0].id).await.unwrap().unwrap().event,
        "a"
    );

    // The server's worker is idle, waiting for work; the CLI replays.
    let waiting = {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            server.work_available("acme").await;
            claim_until(&*server, "acme", 1).await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(cli.replay(Select::All).await.unwrap().queued, 1);
    let claimed = tokio::time::timeout(Duration::from_secs(3), waiting)
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

fn stored(outcome: &[Enqueued]) -> Vec<bool> {
    outcome
        .iter()
        .map(|e| matches!(e, Enqueued::Stored(_)))
        .collect()
}

pub async fn a_dedupe_key_is_stored_once_within_and_across_calls(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment"), ("amp", "amplitude")]).await;
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
    assert_eq!(
        bodies(&claim_until(&*queue, "acme", 4).await),
        ["a", "b", "no key", "no key"]
    );
    assert_eq!(
        bodies(&queue.claim("amp", 10).await.unwrap()),
        ["other source"]
    );
}

/// A large call, duplicates among its events: each stored event's answer is its own id, the
/// one it is claimed under.
pub async fn each_event_of_a_large_call_answers_its_own_id(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    // 200 events: every seventh repeats the key of the one before, every fifth has no key.
    let events: Vec<NewEvent> = (0..200)
        .map(|i| match i {
            i if i % 5 == 0 => event("segment", &format!("event {i}")),
            i if i % 7 == 0 => keyed("segment", &format!("k{}", i - 1), &format!("event {i}")),
            i => keyed("segment", &format!("k{i}"), &format!("event {i}")),
        })
        .collect();
    let outcome = queue.enqueue(events, Vec::new()).await.unwrap();
    let expected: Vec<(EventId, String)> = outcome
        .iter()
        .enumerate()
        .filter_map(|(i, answer)| match answer {
            Enqueued::Stored(id) => Some((*id, format!("event {i}"))),
            Enqueued::Duplicate => None,
        })
        .collect();
    let duplicates = (0..200).filter(|i| i % 5 != 0 && i % 7 == 0 && (i - 1) % 5 != 0);
    assert_eq!(expected.len(), 200 - duplicates.count());
    let claimed: Vec<(EventId, String)> = claim_until(&*queue, "acme", expected.len())
        .await
        .into_iter()
        .map(|c| (c.id, c.body))
        .collect();
    assert_eq!(claimed, expected);
}

pub async fn a_dedupe_key_is_remembered_across_a_restart(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    queue
        .enqueue(vec![keyed("segment", "m1", "a")], Vec::new())
        .await
        .unwrap();
    drop(queue);

    let queue = backend.open().await;
    let again = queue
        .enqueue(vec![keyed("segment", "m1", "a")], Vec::new())
        .await
        .unwrap();
    assert_eq!(again, [Enqueued::Duplicate]);
}

pub async fn a_dedupe_key_is_forgotten_after_the_window(backend: &Backend) {
    let window = Duration::from_secs(1);
    let queue = backend.open_with_window(Some(window)).await;
    declare(&*queue, &[("acme", "segment")]).await;
    let mut first = keyed("segment", "m1", "a");
    backend.backdate(window, &mut first);
    queue.enqueue(vec![first], Vec::new()).await.unwrap();

    backend.wait_out(window).await;
    let outcome = queue
        .enqueue(vec![keyed("segment", "m1", "a")], Vec::new())
        .await
        .unwrap();
    assert_eq!(stored(&outcome), [true]);
}

pub async fn concurrent_calls_with_the_same_key_store_it_once(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
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

pub async fn rejected_events_are_kept_as_dead_letters_without_a_connection(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let outcome = queue
        .enqueue(
            vec![event("segment", "good")],
            vec![rejected("missing `type`\non line 2", r#"{"event":"x"}"#)],
        )
        .await
        .unwrap();
    assert_eq!(stored(&outcome), [true], "one answer per accepted event");

    let listed = queue.dead_letters(None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].connection.as_deref(),
            listed[0].event_id,
            listed[0].reason.as_str(),
            listed[0].source.as_str(),
        ),
        (None, None, "missing `type`\non line 2", "segment")
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

fn remember(key: &str, value: serde_json::Value) -> Remember {
    Remember {
        store: "emails".to_owned(),
        key: key.to_owned(),
        value,
    }
}

pub async fn remembered_values_are_written_with_the_settlement_and_survive_a_restart(
    backend: &Backend,
) {
    let queue = backend.open().await;
    declare(&*queue, &[("promoter", "segment"), ("acme", "segment")]).await;
    let id = enqueue(&*queue, "segment", &["identify"]).await;
    queue.claim("promoter", 1).await.unwrap();
    queue
        .settle(
            "promoter",
            vec![(id[0], Settlement::Delivered)],
            vec![
                remember("u1", json!("old@example.com")),
                remember("u1", json!("a@example.com")),
                remember("user.with dots@x", json!({"nested": [1, 2]})),
            ],
        )
        .await
        .unwrap();
    drop(queue);

    let queue = backend.open().await;
    assert_eq!(
        queue.remembered("promoter").await.unwrap(),
        [
            remember("u1", json!("a@example.com")),
            remember("user.with dots@x", json!({"nested": [1, 2]})),
        ]
    );
    assert!(queue.remembered("acme").await.unwrap().is_empty());
}

pub async fn values_can_be_remembered_without_settling_an_event(backend: &Backend) {
    let queue = backend.open().await;
    let value = remember("u1", json!("a@example.com"));
    queue
        .settle("promoter", Vec::new(), vec![value.clone()])
        .await
        .unwrap();
    assert_eq!(queue.remembered("promoter").await.unwrap(), [value]);
}

pub async fn idle_workers_are_woken_by_new_events(backend: &Backend) {
    let queue = backend.open().await;
    declare(&*queue, &[("acme", "segment")]).await;
    let waiting = {
        let queue = Arc::clone(&queue);
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            queue.work_available("acme").await;
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    enqueue(&*queue, "segment", &["a"]).await;
    let waited = waiting.await.unwrap();
    assert!(
        waited < Duration::from_millis(900),
        "woken by the enqueue, not by the poll: {waited:?}"
    );
}

/// Ordering keys for the order cases: the part of the body before `:`, if any.
pub fn key_before_colon() -> OrderKey {
    Arc::new(|body: &str| body.split_once(':').map(|(key, _)| key.to_owned()))
}

async fn ordered(queue: &dyn Queue) {
    declare(queue, &[("acme", "segment")]).await;
    queue.order("acme", Some(key_before_colon())).await.unwrap();
}

async fn settle_all(queue: &dyn Queue, claimed: &[Claimed], how: impl Fn(&Claimed) -> Settlement) {
    let settled = claimed.iter().map(|c| (c.id, how(c))).collect();
    queue.settle("acme", settled, Vec::new()).await.unwrap();
}

pub async fn ordered_events_of_one_key_go_out_one_after_another(backend: &Backend) {
    let queue = backend.open().await;
    ordered(&*queue).await;
    enqueue(
        &*queue,
        "segment",
        &["u:1", "v:1", "u:2", "u:3", "v:2", "none"],
    )
    .await;

    let first = claim_until(&*queue, "acme", 3).await;
    assert_eq!(bodies(&first), ["u:1", "v:1", "none"]);
    nothing_more(&*queue, "acme", "u:2 and v:2 wait for u:1 and v:1").await;
    let depth = queue.depth("acme").await.unwrap();
    assert_eq!(
        (depth.in_flight, depth.pending),
        (3, 3),
        "kept back counts as pending"
    );

    settle_all(&*queue, &first[..1], |_| Settlement::Delivered).await;
    assert_eq!(bodies(&claim_until(&*queue, "acme", 1).await), ["u:2"]);
    settle_all(&*queue, &first[1..], |_| Settlement::Delivered).await;
    let next = claim_until(&*queue, "acme", 1).await;
    assert_eq!(bodies(&next), ["v:2"]);
}

pub async fn a_retry_holds_back_only_its_keys_later_events_and_a_dead_letter_frees_them(
    backend: &Backend,
) {
    let queue = backend.open().await;
    ordered(&*queue).await;
    enqueue(&*queue, "segment", &["u:1", "u:2", "v:1"]).await;
    let first = claim_until(&*queue, "acme", 2).await;
    assert_eq!(bodies(&first), ["u:1", "v:1"]);
    settle_all(&*queue, &first, |c| {
        if c.body == "u:1" {
            retry(now_ms() + 500, "503")
        } else {
            Settlement::Delivered
        }
    })
    .await;
    enqueue(&*queue, "segment", &["v:2", "u:3"]).await;
    assert_eq!(
        bodies(&claim_until(&*queue, "acme", 1).await),
        ["v:2"],
        "v flows while u waits for its retry"
    );
    nothing_more(&*queue, "acme", "u:2 and u:3 wait").await;

    tokio::time::sleep(Duration::from_millis(600)).await;
    let again = claim_until(&*queue, "acme", 1).await;
    assert_eq!((bodies(&again), again[0].attempt), (vec!["u:1"], 1));
    settle_all(&*queue, &again, |_| dead("gave up")).await;
    let freed = claim_until(&*queue, "acme", 1).await;
    assert_eq!(
        bodies(&freed),
        ["u:2"],
        "a dead letter lets the next event of its key go"
    );
    settle_all(&*queue, &freed, |_| Settlement::Delivered).await;
    assert_eq!(bodies(&claim_until(&*queue, "acme", 1).await), ["u:3"]);
}

pub async fn a_waiting_retry_still_holds_its_key_after_a_restart(backend: &Backend) {
    let queue = backend.open().await;
    ordered(&*queue).await;
    enqueue(&*queue, "segment", &["u:1"]).await;
    let first = claim_until(&*queue, "acme", 1).await;
    settle_all(&*queue, &first, |_| retry(now_ms() + 1_500, "429")).await;
    drop(queue);

    let queue = backend.open().await;
    ordered(&*queue).await;
    enqueue(&*queue, "segment", &["u:2", "v:1"]).await;
    assert_eq!(bodies(&claim_until(&*queue, "acme", 1).await), ["v:1"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    nothing_more(&*queue, "acme", "u:2 waits for the retry of u:1").await;
    let again = claim_until(&*queue, "acme", 1).await;
    assert_eq!(bodies(&again), ["u:1"]);
    settle_all(&*queue, &again, |_| Settlement::Delivered).await;
    assert_eq!(bodies(&claim_until(&*queue, "acme", 1).await), ["u:2"]);
}

/// 1,000 events of one user among 10,000 of others, settled at random as delivered (most),
/// retried soon, or dead: the user's events are each handed out only once the one before is
/// done, and finish in the order they were accepted.
pub async fn one_users_events_finish_in_acceptance_order_among_many(backend: &Backend) {
    let queue = backend.open().await;
    ordered(&*queue).await;
    let mut bodies = Vec::with_capacity(11_000);
    for i in 0..11_000 {
        bodies.push(if i % 11 == 5 {
            format!("user:{i:05}")
        } else {
            format!("other-{}:{i:05}", i % 997)
        });
    }
    for chunk in bodies.chunks(500) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        enqueue(&*queue, "segment", &chunk).await;
    }

    let mut outstanding: Option<String> = None;
    let mut done_in_order: Vec<String> = Vec::new();
    let mut finished = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_mins(2);
    while finished < 11_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {finished} of 11000 finished"
        );
        let claimed = queue.claim("acme", 512).await.unwrap();
        if claimed.is_empty() {
            queue.work_available("acme").await;
            continue;
        }
        let mut settled = Vec::with_capacity(claimed.len());
        for event in claimed {
            let user = event.body.starts_with("user:");
            if user {
                assert!(
                    outstanding.is_none() || outstanding.as_deref() == Some(&event.body),
                    "{} handed out while {:?} is not done",
                    event.body,
                    outstanding
                );
                outstanding = Some(event.body.clone());
            }
            let roll = fastrand::u32(0..100);
            let settlement = if roll < 8 {
                retry(now_ms(), "503")
            } else if roll < 9 {
                dead("400")
            } else {
                Settlement::Delivered
            };
            if !matches!(settlement, Settlement::Retry { .. }) {
                finished += 1;
                if user {
                    done_in_order.push(event.body.clone());
                    outstanding = None;
                }
            }
            settled.push((event.id, settlement));
        }
        queue.settle("acme", settled, Vec::new()).await.unwrap();
    }
    let expected: Vec<String> = bodies
        .into_iter()
        .filter(|b| b.starts_with("user:"))
        .collect();
    assert_eq!(done_in_order.len(), 1_000);
    assert_eq!(done_in_order, expected);
}
