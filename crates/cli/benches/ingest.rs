//! Ingest load on `ferry serve`: `cargo bench -p ferry --bench ingest`.
//!
//! Starts the release binary on a fresh store with the default durability (`synchronous:
//! full`) and one connection that delivers, batched 500 events a request, to a destination in
//! this process. Then measures:
//!
//! - throughput: `CONNECTIONS` keep-alive connections each post a batch of 100 track events as
//!   soon as the previous one is acknowledged; accepted events/s, median of `ROUNDS` rounds;
//! - the same generator against an endpoint in this process that only reads the body (the
//!   cost floor of HTTP and the generator on this machine), so ferry's rate reads as a share of
//!   what the machine can do at all;
//! - delivery: how long the sink takes to receive the backlog the throughput phase left;
//! - latency first, on the fresh store: an open loop of 100 batches/s of 100 events (10,000
//!   events/s), each request timed from the moment it was due; and the same again after the
//!   throughput phase, once its backlog is delivered (while the store still removes it);
//! - the server's peak resident memory (`VmHWM`).
//!
//! `FERRY_BENCH_SECONDS` (default 10) sets the length of each phase, `FERRY_BENCH_ROUNDS`
//! (default 3) the rounds of the throughput phase.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use support::destination::Keep;
use support::ferry::Start;
use support::load::{self, Batches, Target};
use support::{Destination, Ferry, Workspace, WorkspaceOptions};

const EVENTS_PER_BATCH: usize = 100;
const CONNECTIONS: usize = 32;
const PACED_BATCHES_PER_SECOND: u32 = 100;

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter no phase matches.
    if std::env::args().skip(1).any(|a| !a.starts_with("--")) {
        return;
    }
    let seconds = env_number("FERRY_BENCH_SECONDS", 10);
    let rounds = env_number("FERRY_BENCH_ROUNDS", 3).max(1);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(bench(Duration::from_secs(seconds), rounds));
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[allow(clippy::cast_precision_loss)]
async fn bench(phase: Duration, rounds: u64) {
    let synchronous = match std::env::var("FERRY_BENCH_SYNCHRONOUS").as_deref() {
        Ok("normal") => "normal",
        _ => "full",
    };
    let received = Destination::keeping(Keep::Counts);
    let workspace = Workspace::with(WorkspaceOptions {
        synchronous,
        batch_items: Some(500),
        delivery: ", concurrency: 64".to_owned(),
        ..WorkspaceOptions::to(&received.url)
    });
    let mut how = Start::of(&workspace);
    "warn".clone_into(&mut how.log_level);
    let ferry = tokio::task::spawn_blocking(move || Ferry::start_with(how))
        .await
        .expect("ferry serve starts");
    let floor = load::floor().await;
    let batches = Arc::new(Batches::new("bench", EVENTS_PER_BATCH));
    let next = Arc::new(AtomicU64::new(0));
    let to_ferry = Target::new(ferry.address);
    let to_floor = Target::new(floor);
    eprintln!(
        "ferry pid {} on {}; {} connections, batches of {} events of ~{} bytes; {phase:?} per phase",
        ferry.pid(),
        ferry.address,
        CONNECTIONS,
        EVENTS_PER_BATCH,
        batches.bytes_per_event()
    );

    // Latency at a steady 10,000 events/s on a fresh store, the floor measured right after.
    let paced = load::open_loop(&to_ferry, &batches, &next, PACED_BATCHES_PER_SECOND, phase).await;
    let paced_floor =
        load::open_loop(&to_floor, &batches, &next, PACED_BATCHES_PER_SECOND, phase).await;

    let warm_up = Duration::from_secs(2);
    let mut accepted = paced.latencies.len() as u64;
    accepted += u64::try_from(
        load::closed_loop_for(&to_ferry, &batches, &next, CONNECTIONS, warm_up)
            .await
            .acked
            .len(),
    )
    .unwrap_or(0);
    load::closed_loop_for(&to_floor, &batches, &next, CONNECTIONS, warm_up).await;

    let rate =
        |run: &load::Run| (run.acked.len() * EVENTS_PER_BATCH) as f64 / run.elapsed.as_secs_f64();
    let (mut ferry_rates, mut floor_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let served = load::closed_loop_for(&to_ferry, &batches, &next, CONNECTIONS, phase).await;
        let floored = load::closed_loop_for(&to_floor, &batches, &next, CONNECTIONS, phase).await;
        accepted += served.acked.len() as u64;
        let (f, b) = (rate(&served), rate(&floored));
        eprintln!(
            "round {round}: ferry {f:>9.0} events/s ({} failed), floor {b:>9.0} events/s, ratio {:.2}",
            served.failed,
            f / b
        );
        ferry_rates.push(f);
        floor_rates.push(b);
        ratios.push(f / b);
    }

    // Latency again once the burst is delivered, while the store still removes its millions
    // of delivered events alongside the new commits.
    let backlog = received.events();
    let drained_in = delivered(&received, accepted * EVENTS_PER_BATCH as u64).await;
    let drain = (accepted * EVENTS_PER_BATCH as u64 - backlog, drained_in);
    let after_burst =
        load::open_loop(&to_ferry, &batches, &next, PACED_BATCHES_PER_SECOND, phase).await;
    accepted += after_burst.latencies.len() as u64;
    let peak = ferry.peak_rss();

    let accepted_events = accepted * EVENTS_PER_BATCH as u64;
    delivered(&received, accepted_events).await;
    report(Measured {
        rounds,
        phase,
        ferry_rates,
        floor_rates,
        ratios,
        paced,
        paced_floor,
        after_burst,
        synchronous,
        peak,
        drain,
        delivered: received.events(),
        accepted_events,
    });
    drop(ferry);
}

/// Waits (at most two minutes) until the sink received `events`; answers how long it took.
async fn delivered(received: &Destination, events: u64) -> Duration {
    let started = Instant::now();
    while received.events() < events && started.elapsed() < Duration::from_mins(2) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// Everything the table shows.
struct Measured {
    rounds: u64,
    phase: Duration,
    ferry_rates: Vec<f64>,
    floor_rates: Vec<f64>,
    ratios: Vec<f64>,
    paced: load::Paced,
    paced_floor: load::Paced,
    /// The same pacing after the throughput phase.
    after_burst: load::Paced,
    synchronous: &'static str,
    peak: Option<u64>,
    /// Events still to deliver after the throughput phase, and how long they took.
    drain: (u64, Duration),
    delivered: u64,
    accepted_events: u64,
}

#[allow(clippy::cast_precision_loss)]
fn report(mut m: Measured) {
    let (rounds, phase, synchronous) = (m.rounds, m.phase, m.synchronous);
    m.paced.latencies.sort();
    m.paced_floor.latencies.sort();
    m.after_burst.latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!();
    println!(
        "ferry serve ingest, synchronous {synchronous}, delivering to a loopback sink (batches of 500)"
    );
    println!("| measure | ferry | floor | target |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| accepted events/s, median of {rounds} x {phase:?}, {CONNECTIONS} conns x {EVENTS_PER_BATCH} events | {:.0} | {:.0} | >= 50000 |",
        load::median(&mut m.ferry_rates),
        load::median(&mut m.floor_rates)
    );
    println!(
        "| ferry / floor, median of same-round ratios | {:.2} | 1 | |",
        load::median(&mut m.ratios)
    );
    for (name, share) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
        println!(
            "| ack latency {name} at a steady 10000 events/s (100 req/s x 100 events) | {:.2} ms | {:.2} ms | {} |",
            ms(load::percentile(&m.paced.latencies, share)),
            ms(load::percentile(&m.paced_floor.latencies, share)),
            if name == "p99" { "< 10 ms" } else { "" }
        );
    }
    for (name, share) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
        println!(
            "| ack latency {name} at 10000 events/s after the throughput phase | {:.2} ms | | |",
            ms(load::percentile(&m.after_burst.latencies, share)),
        );
    }
    println!(
        "| paced requests not acknowledged | {} | {} | 0 |",
        m.paced.failed + m.after_burst.failed,
        m.paced_floor.failed
    );
    println!(
        "| server peak RSS (VmHWM) | {} | | < 100 MB |",
        m.peak.map_or("unknown".to_owned(), |b| format!(
            "{:.1} MB",
            b as f64 / 1e6
        ))
    );
    let (backlog, took) = m.drain;
    println!(
        "| delivery of the backlog left by the throughput phase | {backlog} events in {:.1} s ({:.0} events/s) | | |",
        took.as_secs_f64(),
        backlog as f64 / took.as_secs_f64()
    );
    println!(
        "| events delivered to the sink / accepted | {} / {} | | all |",
        m.delivered, m.accepted_events
    );
}
