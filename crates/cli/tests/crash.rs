//! Crash safety of `ferry serve`: an event acknowledged with 200 is delivered (or dead-lettered)
//! even when the server is killed with SIGKILL at random moments while it accepts and delivers.
//! Duplicates are allowed (at-least-once); losses are not.

mod load;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use load::{Batches, Ferry, Setup, SetupOptions, Target};

const EVENTS_PER_BATCH: usize = 50;
const CONNECTIONS: usize = 4;
const KILLS: usize = 4;
/// Requests the destination refuses with 503, out of 1000, so that retries run too.
const REFUSED_PER_MILLE: u32 = 50;
const SETTLE_DEADLINE: Duration = Duration::from_mins(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkill() {
    let binary = Path::new(env!("CARGO_BIN_EXE_ferry"));
    let (sink, received) = load::sink(true, REFUSED_PER_MILLE).await;
    let setup = Setup::write(
        &format!("http://{sink}"),
        SetupOptions {
            dry_run: false,
            batch_items: 100,
            synchronous: "full",
        },
    );
    let address = load::free_address();
    let mut ferry = Ferry::start(binary, &setup, address).await;

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
        ferry.kill();
        ferry = Ferry::start(binary, &setup, address).await;
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
    let mut missing = missing(&acked, &received.ids(), &dead);
    while !missing.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dead = dead_letters(binary, &setup.data);
        missing = self::missing(&acked, &received.ids(), &dead);
    }

    let delivered = received.ids();
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
        received.requests.load(Ordering::Relaxed),
        received.refused.load(Ordering::Relaxed),
    );
    let mut lost: Vec<_> = missing.into_iter().collect();
    lost.sort();
    assert!(
        lost.is_empty(),
        "{} acknowledged events were neither delivered nor dead-lettered within {SETTLE_DEADLINE:?}, \
         the first: {:?}\nserver log:\n{}",
        lost.len(),
        &lost[..lost.len().min(10)],
        std::fs::read_to_string(setup.log()).unwrap_or_default()
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

/// The messageIds of the dead letters in `data`, through `ferry dlq` as an operator sees them.
fn dead_letters(binary: &Path, data: &Path) -> HashSet<String> {
    let listed = Command::new(binary)
        .args(["dlq", "--data"])
        .arg(data)
        .args(["list", "--json"])
        .output()
        .expect("ferry dlq list runs");
    assert!(
        listed.status.success(),
        "ferry dlq list failed: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    // `list` names the stored event only by its queue id; `show` has the event itself.
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|letter| letter["id"].as_i64())
        .filter_map(|id| {
            let shown = Command::new(binary)
                .args(["dlq", "--data"])
                .arg(data)
                .args(["show", &id.to_string()])
                .output()
                .expect("ferry dlq show runs");
            let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).ok()?;
            shown["event"]["messageId"].as_str().map(str::to_owned)
        })
        .collect()
}
