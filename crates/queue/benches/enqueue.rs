//! Events per second `enqueue` commits: batches of 100 from 32 concurrent tasks, as an HTTP
//! server under load would call it, with `synchronous` FULL and NORMAL. Median of rounds.
//!
//! `cargo bench -p ferry-queue --bench enqueue`

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferry_queue::{NewEvent, Queue, SqliteOptions, SqliteQueue};

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

/// One round on a fresh file: answers events per second.
async fn round(synchronous_full: bool) -> f64 {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = SqliteOptions {
        synchronous_full,
        ..SqliteOptions::default()
    };
    let queue = Arc::new(SqliteQueue::open(&dir.path().join("bench.db"), options).expect("open"));
    // Bodies are built before the clock starts: only the store is measured.
    let work: Vec<Vec<Vec<NewEvent>>> = (0..TASKS)
        .map(|task| {
            (0..BATCHES_PER_TASK)
                .map(|batch| {
                    (0..BATCH)
                        .map(|i| NewEvent {
                            source: "segment".to_owned(),
                            dedupe: Some(format!("m-{task}-{batch}-{i}")),
                            received_at_ms: now_ms(),
                            body: body(task, batch, i),
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let commits = queue.commits();
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
    let commits = queue.commits() - commits;
    let events = TASKS * BATCHES_PER_TASK * BATCH;
    eprintln!(
        "  round: {events} events in {:>7.1} ms, {commits} commits",
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
        let mut rates: Vec<f64> = (0..ROUNDS).map(|_| runtime.block_on(round(full))).collect();
        rates.sort_by(f64::total_cmp);
        println!(
            "enqueue synchronous={name:<6} median {:>9.0} events/s (min {:.0}, max {:.0})",
            rates[ROUNDS / 2],
            rates[0],
            rates[ROUNDS - 1]
        );
    }
}
