//! Crash safety of `ferry serve`: an event acknowledged with 200 is delivered (or dead-lettered)
//! even when the server is killed with SIGKILL at random moments while it accepts and delivers;
//! and a crash delivers again only what was in flight at that moment. Duplicates of those are
//! allowed (at-least-once); losses are not.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::destination::Keep;
use support::ferry::Start;
use support::load::{self, Batches, Target};
use support::{Destination, Ferry, Workspace, WorkspaceOptions, post_batch, track};

const EVENTS_PER_BATCH: usize = 50;
const CONNECTIONS: usize = 4;
const KILLS: usize = 4;
/// Requests the destination refuses with 503, out of 1000, so that retries run too.
const REFUSED_PER_MILLE: u32 = 50;
const SETTLE_DEADLINE: Duration = Duration::from_mins(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkill() {
    let destination = Destination::keeping(Keep::Ids);
    destination.fail_per_mille(REFUSED_PER_MILLE);
    let workspace = Workspace::with(WorkspaceOptions {
        batch_items: Some(100),
        delivery: ", concurrency: 64".to_owned(),
        ..WorkspaceOptions::to(&destination.url)
    });
    let mut ferry = start(Start::of(&workspace)).await;
    let address = ferry.address;

    let batches = Arc::new(Batches::new("crash", EVENTS_PER_BATCH));
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let generator = {
        let (target, batches, next, stop) = (
            Target::new(address),
            Arc::clone(&batches),
            Arc::clone(&next),
            Arc::clone(&stop),
        );
        tokio::spawn(async move {
            load::closed_loop(&target, &batches, &next, CONNECTIONS, &stop).await
        })
    };

    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(300..=1500))).await;
        ferry = start(ferry.kill()).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let run = generator.await.expect("the generator finishes");

    let acked: HashSet<String> = run
        .acked
        .iter()
        .flat_map(|&batch| (0..EVENTS_PER_BATCH).map(move |i| (batch, i)))
        .map(|(batch, i)| batches.message_id(batch, i))
        .collect();
    assert!(
        run.acked.len() > 20,
        "too little load to test anything: {} batches acknowledged, {} failed",
        run.acked.len(),
        run.failed
    );

    let deadline = Instant::now() + SETTLE_DEADLINE;
    let mut dead = HashSet::new();
    let mut missing = missing(&acked, &destination.ids(), &dead);
    while !missing.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dead = dead_letters(&workspace);
        missing = self::missing(&acked, &destination.ids(), &dead);
    }

    let delivered = destination.ids();
    let duplicates: u64 = delivered.values().map(|&n| u64::from(n - 1)).sum();
    let delivered_acked = acked
        .iter()
        .filter(|id| delivered.contains_key(*id))
        .count();
    eprintln!(
        "acked {} events ({} batches; {} requests not acknowledged); delivered {} of them; \
         {} duplicate deliveries; {} events delivered that were never acknowledged; \
         {} dead letters; {} destination requests, {} refused with 503",
        acked.len(),
        run.acked.len(),
        run.failed,
        delivered_acked,
        duplicates,
        delivered.len() - delivered_acked,
        dead.len(),
        destination.requests(),
        destination.refused(),
    );
    let mut lost: Vec<_> = missing.into_iter().collect();
    lost.sort();
    assert!(
        lost.is_empty(),
        "{} acknowledged events were neither delivered nor dead-lettered within {SETTLE_DEADLINE:?}, \
         the first: {:?}\nserver log:\n{}",
        lost.len(),
        &lost[..lost.len().min(10)],
        ferry.log()
    );
    drop(ferry);
}

fn missing(
    acked: &HashSet<String>,
    delivered: &std::collections::HashMap<String, u32>,
    dead: &HashSet<String>,
) -> HashSet<String> {
    acked
        .iter()
        .filter(|id| !delivered.contains_key(*id) && !dead.contains(*id))
        .cloned()
        .collect()
}

/// Starts a server off the async threads (the start blocks until it is ready).
async fn start(how: Start) -> Ferry {
    tokio::task::spawn_blocking(move || Ferry::start_with(how))
        .await
        .expect("ferry serve starts")
}

/// The messageIds of the dead letters, through `ferry dlq` as an operator sees them.
fn dead_letters(workspace: &Workspace) -> HashSet<String> {
    // `list` names the stored event only by its queue id; `show` has the event itself.
    workspace
        .dead_letters()
        .iter()
        .filter_map(|letter| letter["id"].as_i64())
        .filter_map(|id| {
            let shown = workspace.ferry(&["dlq", "show", &id.to_string()]);
            let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).ok()?;
            shown["event"]["messageId"].as_str().map(str::to_owned)
        })
        .collect()
}

/// What used to repeat thousands of deliveries: a few events held in flight by a slow
/// destination while 2,000 later ones are delivered above them (3% refused with 503 and left
/// waiting for a durable retry). A kill -9 then may deliver again only what was in flight.
#[test]
fn a_crash_repeats_only_what_was_in_flight() {
    const SLOW: usize = 5;
    const EVENTS: usize = 2_000;
    let destination = Destination::keeping(Keep::Ids);
    destination.fail_per_mille(30);
    destination.hold(Some(("slow-user", Duration::from_mins(1))));
    let workspace = Workspace::with(WorkspaceOptions {
        // The held requests wait for their answer, and durable retries do not come due
        // during the test.
        delivery: ", timeout_ms: 120000".to_owned(),
        retry: (600, 600),
        ..WorkspaceOptions::to(&destination.url)
    });
    let ferry = Ferry::start(&workspace);
    let slow: Vec<_> = (0..SLOW)
        .map(|i| track(&format!("slow-{i}"), "slow-user"))
        .collect();
    assert_eq!(post_batch(&ferry.url, &slow).0, 200);
    for batch in 0..EVENTS / 100 {
        let events: Vec<_> = (0..100)
            .map(|i| track(&format!("e-{batch}-{i}"), "ann"))
            .collect();
        assert_eq!(post_batch(&ferry.url, &events).0, 200);
    }
    // Everything but the held events is settled: delivered, or waiting for a durable retry.
    let depth = |ferry: &Ferry, state: &str| {
        ferry
            .metric::<u64>(&format!(
                "ferry_queue_depth{{connection=\"sink\",state=\"{state}\"}}"
            ))
            .unwrap_or(u64::MAX)
    };
    wait_until("the held events alone in flight", || {
        depth(&ferry, "in_flight") == SLOW as u64 && depth(&ferry, "pending") == 0
    });
    let retrying = depth(&ferry, "retrying");
    let before = destination.ids();
    let in_flight = depth(&ferry, "in_flight");
    let first_log = ferry.log();
    let how = ferry.kill();

    // What the restart sends is all delivered at once.
    destination.hold(None);
    destination.fail_per_mille(0);
    let ferry = Ferry::start_with(how);
    wait_until("the held events delivered again", || {
        let ids = destination.ids();
        (0..SLOW).all(|i| {
            let id = format!("slow-{i}");
            ids.get(&id).copied().unwrap_or(0) > before.get(&id).copied().unwrap_or(0)
        }) && depth(&ferry, "in_flight") == 0
            && depth(&ferry, "pending") == 0
    });
    let after = destination.ids();
    // (A held event whose first answer was a 503 was not delivered before the kill.)
    let repeats: u64 = before.iter().map(|(id, n)| u64::from(after[id] - n)).sum();
    eprintln!(
        "{} events delivered before the kill, {retrying} waiting for a retry, {in_flight} in \
         flight; {repeats} delivered again after the restart",
        before.len()
    );
    assert!(
        before.len() > EVENTS * 9 / 10,
        "too few deliveries before the kill: {}",
        before.len()
    );
    assert!(
        repeats <= in_flight,
        "{repeats} deliveries repeated after a crash with {in_flight} events in flight; \
         dead letters: {:?}\nlog before the kill:\n{}\nafter:\n{}",
        workspace.dead_letters(),
        tail(&first_log),
        tail(&ferry.log())
    );
    drop(ferry);
}

/// The last lines of a log.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Polls `done` every 50 ms for at most a minute.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_mins(1);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
