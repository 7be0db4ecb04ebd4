//! Events per second `enqueue` commits: batches of 100 from 32 concurrent tasks, as an HTTP
//! server under load would call it, with SQLite `synchronous` FULL and NORMAL, and with NATS
//! JetStream on one local `nats-server` (1 replica) and a three-node loopback cluster (3
//! replicas) when `nats-server` is installed. Median of rounds.
//!
//! `cargo bench -p ferry-queue --bench enqueue`

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferry_queue::{NatsOptions, NatsQueue, NewEvent, Queue, SqliteOptions, SqliteQueue};
use ferry_testkit::{Cluster, NatsServer};

const TASKS: usize = 32;
const BATCH: usize = 100;
const BATCHES_PER_TASK: usize = 25;
const ROUNDS: usize = 5;

/// A Segment track call of typical size (~400 bytes).
fn body(task: usize, batch: usize, i: usize) -> String {
    format!(
        r#"{{"type":"track","event":"Order Completed","userId":"user-{task}-{i}","messageId":"m-{task}-{batch}-{i}","timestamp":"2026-01-01T00:00:00Z","properties":{{"order_id":"o-{batch}-{i}","total":42.5,"currency":"EUR","products":[{{"sku":"sku-1","quantity":2}}]}},"context":{{"ip":"203.0.113.7","library":{{"name":"analytics.js","version":"4.1.0"}}}}}}"#
    )
}

fn now_ms() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// One round on a fresh SQLite file: answers events per second.
async fn round(synchronous_full: bool) -> f64 {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = SqliteOptions {
        synchronous_full,
        ..SqliteOptions::default()
    };
    let queue = Arc::new(SqliteQueue::open(&dir.path().join("bench.db"), options).expect("open"));
    let commits = queue.commits();
    let rate = measure(Arc::clone(&queue) as Arc<dyn Queue>, "segment").await;
    eprintln!("    {} commits", queue.commits() - commits);
    rate
}

/// One round on JetStream, on a source of its own.
async fn round_nats(servers: Vec<String>, replicas: usize, round: usize) -> f64 {
    let mut options = NatsOptions::new(servers);
    options.replicas = replicas;
    let queue = NatsQueue::connect(options).await.expect("connect");
    let source = format!("bench-{round}");
    queue
        .declare(vec![("bench".to_owned(), source.clone())])
        .await
        .expect("declare");
    measure(Arc::new(queue), &source).await
}

/// Enqueues `TASKS x BATCHES_PER_TASK` batches concurrently; answers events per second.
async fn measure(queue: Arc<dyn Queue>, source: &str) -> f64 {
    // Bodies are built before the clock starts: only the store is measured.
    let work: Vec<Vec<Vec<NewEvent>>> = (0..TASKS)
        .map(|task| {
            (0..BATCHES_PER_TASK)
                .map(|batch| {
                    (0..BATCH)
                        .map(|i| NewEvent {
                            source: source.to_owned(),
                            dedupe: Some(format!("m-{task}-{batch}-{i}")),
                            received_at_ms: now_ms(),
                            body: body(task, batch, i),
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let start = Instant::now();
    let tasks: Vec<_> = work
        .into_iter()
        .map(|batches| {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move {
                for events in batches {
                    queue.enqueue(events, Vec::new()).await.expect("enqueue");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let elapsed = start.elapsed();
    let events = TASKS * BATCHES_PER_TASK * BATCH;
    eprintln!(
        "  round: {events} events in {:>7.1} ms",
        elapsed.as_secs_f64() * 1000.0
    );
    #[allow(clippy::cast_precision_loss)]
    let rate = events as f64 / elapsed.max(Duration::from_micros(1)).as_secs_f64();
    rate
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    for (name, full) in [("FULL", true), ("NORMAL", false)] {
        eprintln!("synchronous={name}: {TASKS} tasks x {BATCHES_PER_TASK} batches of {BATCH}");
        let rates: Vec<f64> = (0..ROUNDS).map(|_| runtime.block_on(round(full))).collect();
        report(&format!("sqlite synchronous={name}"), rates);
    }
    let Some(binary) = ferry_testkit::nats_server() else {
        return;
    };
    let single = NatsServer::start(&binary);
    let rates = (0..ROUNDS)
        .map(|n| runtime.block_on(round_nats(vec![single.url()], 1, n)))
        .collect();
    report("nats 1 server, 1 replica", rates);
    drop(single);
    let cluster = Cluster::start(&binary);
    let rates = (0..ROUNDS)
        .map(|n| runtime.block_on(round_nats(cluster.urls(), 3, n)))
        .collect();
    report("nats 3 servers, 3 replicas", rates);
}

fn report(name: &str, mut rates: Vec<f64>) {
    rates.sort_by(f64::total_cmp);
    println!(
        "enqueue {name:<28} median {:>9.0} events/s (min {:.0}, max {:.0})",
        rates[ROUNDS / 2],
        rates[0],
        rates[ROUNDS - 1]
    );
}
