//! Delivery throughput and CPU cost: the pipeline sending to a fast HTTP server on loopback.
//!
//! A minimal HTTP/1.1 server (hyper, keep-alive, one thread of its own) answers Braze's
//! `/users/track` and Extole's `/v6/events` at once, and counts the requests and items it
//! receives. Each round runs one whole delivery as `ferry send` does: a reader thread parses
//! NDJSON lines into `Input`s, and `Pipeline::run` plans, batches and sends them on a
//! multi-thread runtime. Then the same work without sending is timed apart on one thread:
//! parsing the lines, `Connection::plan` and `Batcher` over the events, freeing them. Each round
//! reports:
//!
//! - wall time, events/s and requests/s of the delivery;
//! - CPU seconds per 10,000 events: the process's CPU time less the server thread's, which
//!   stands in for the destination;
//! - the CPU of planning and batching as a share of the delivery's ("mapping is X% of delivery
//!   CPU"), and that of parsing and freeing the events; the rest is the pipeline, the channel,
//!   the runtime and the HTTP client.
//!
//! Medians over the rounds after a warm-up round. Braze's target is at least 20,000 events/s;
//! the bench reports it and never fails on it (the machine is noisy). It does fail when the
//! server did not receive exactly the expected requests and items, so that it cannot measure
//! nothing.
//!
//! The mappings' rate limits (Braze 50,000 requests a minute, Extole 100) would make the
//! limiter the measure: the bench loads in-memory copies of the mappings with the limit raised
//! to 1,000,000 requests a second, and says so in its output. Everything else is the bundled
//! mapping as it is.
//!
//! ```text
//! cargo bench -p ferry-pipeline --bench deliver
//! FERRY_BENCH_EVENTS=20000 FERRY_BENCH_ROUNDS=9 cargo bench -p ferry-pipeline --bench deliver
//! FERRY_BENCH_ONLY=braze cargo bench -p ferry-pipeline --bench deliver
//! ```
//!
//! `FERRY_BENCH_EVENTS` (default 100,000) events go to each mapping; `FERRY_BENCH_ROUNDS`
//! (default 5) rounds are measured.

use std::convert::Infallible;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_delivery::DeadLetterWriter;
use ferry_engine::{Batcher, Body, CompiledMapping, Connection, MemoryState, Outcome};
use ferry_pipeline::{Input, Pipeline, Summary};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const DEFAULT_EVENTS: usize = 100_000;
const DEFAULT_ROUNDS: usize = 5;
const WARMUP_ROUNDS: usize = 1;
const TARGET_BRAZE_EVENTS_PER_SECOND: f64 = 20_000.0;
/// The raised limit of the in-memory mapping copies.
const RAISED_RATE_LIMIT: &str = "rate_limit: { requests: 1000000, per_seconds: 1 }";
/// As `ferry send` sizes its input channel.
const INPUT_CHANNEL: usize = 4096;

const BRAZE_KEY: &str = "bench-braze-key";
const EXTOLE_KEY: &str = "bench-extole-key";
const BRAZE_MAX_ITEMS: u64 = 75;

fn main() {
    let events = env_number("FERRY_BENCH_EVENTS", DEFAULT_EVENTS).max(1);
    let rounds = env_number("FERRY_BENCH_ROUNDS", DEFAULT_ROUNDS).max(1);
    // FERRY_BENCH_ONLY=braze runs one mapping, e.g. under a profiler.
    let only = std::env::var("FERRY_BENCH_ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");

    let server = Server::start();
    let clock = Clock::new(server.thread);
    let scratch = tempfile::tempdir().expect("a temporary directory");
    println!(
        "delivering to {} (hyper HTTP/1.1, keep-alive, one thread); {WARMUP_ROUNDS} warm-up + \
         {rounds} rounds; {} cores; CPU is the process's less the server's thread",
        server.base_url,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
    );

    let mut results = Vec::new();
    if wanted("braze") {
        let case = braze_case(&root, &server.base_url, events);
        results.push(run_case(&case, rounds, &clock, &server, scratch.path()));
    }
    if wanted("extole") {
        let case = extole_case(&root, &server.base_url, events);
        results.push(run_case(&case, rounds, &clock, &server, scratch.path()));
    }
    assert!(
        !results.is_empty(),
        "FERRY_BENCH_ONLY must be braze or extole, not {only:?}"
    );

    println!();
    println!("summary (medians of {rounds} rounds):");
    for result in &results {
        println!("{result}");
    }
}

fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not `{text}`")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------------------------
// The cases

/// One mapping's delivery: the connection, the events, and what the server must receive.
struct Case {
    name: &'static str,
    connection: Arc<Connection>,
    /// The events as NDJSON lines, as `ferry send` reads them.
    lines: Arc<Vec<Vec<u8>>>,
    requests: u64,
    items: u64,
    max_items: u64,
    /// What the bench changed in the mapping.
    note: String,
    target: Option<f64>,
}

fn braze_case(root: &Path, base_url: &str, count: usize) -> Case {
    let (mapping, note) = raised(
        root,
        "braze",
        "rate_limit: { requests: 50000, per_seconds: 60 }",
    );
    let settings =
        json!({"instance_url": "https://rest.iad-01.braze.com", "rest_api_key": BRAZE_KEY});
    let lines = braze_events(count);
    Case {
        name: "braze",
        connection: connect(mapping, &settings, base_url),
        requests: (lines.len() as u64).div_ceil(BRAZE_MAX_ITEMS),
        items: lines.len() as u64,
        lines: Arc::new(lines),
        max_items: BRAZE_MAX_ITEMS,
        note,
        target: Some(TARGET_BRAZE_EVENTS_PER_SECOND),
    }
}

fn extole_case(root: &Path, base_url: &str, count: usize) -> Case {
    let (mapping, note) = raised(
        root,
        "extole",
        "rate_limit: { requests: 100, per_seconds: 60 }",
    );
    let settings = json!({"api_key": EXTOLE_KEY});
    let lines = extole_events(&root.join("examples/segment-events.ndjson"), count);
    Case {
        name: "extole",
        connection: connect(mapping, &settings, base_url),
        requests: lines.len() as u64,
        items: lines.len() as u64,
        lines: Arc::new(lines),
        max_items: 1,
        note,
        target: None,
    }
}

/// The bundled mapping `name`, its rate limit `original` replaced by [`RAISED_RATE_LIMIT`].
fn raised(root: &Path, name: &str, original: &str) -> (CompiledMapping, String) {
    let path: PathBuf = root.join(format!("mappings/{name}.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        text.contains(original),
        "mappings/{name}.yaml no longer declares `{original}`: update the bench"
    );
    let text = text.replacen(original, RAISED_RATE_LIMIT, 1);
    let mapping = ferry_engine::load_str(&format!("{name}.yaml (bench copy)"), &text)
        .unwrap_or_else(|d| panic!("{d}"));
    let delivery = mapping.delivery();
    let limit = delivery.rate_limit.as_ref().expect("a rate limit");
    let note = format!(
        "mappings/{name}.yaml with `{original}` raised to {} requests per {} s in memory; \
         concurrency {}",
        limit.requests,
        limit.per_seconds,
        delivery
            .concurrency
            .map_or_else(|| "unlimited".to_owned(), |c| c.to_string())
    );
    (mapping, note)
}

fn connect(mapping: CompiledMapping, settings: &Value, base_url: &str) -> Arc<Connection> {
    let mut connection = Connection::new(Arc::new(mapping), settings.as_object().expect("a map"))
        .unwrap_or_else(|e| panic!("{e}"));
    connection
        .override_base_url(base_url)
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(connection)
}

// ---------------------------------------------------------------------------------------------
// Rounds

/// One delivery round, measured.
struct Delivered {
    wall: Duration,
    cpu: Duration,
    server_cpu: Duration,
}

/// The parts of a delivery measured apart, nothing sent.
struct Apart {
    /// Parsing the lines into events, and freeing them.
    input: Duration,
    /// `Connection::plan` and `Batcher`.
    plan: Duration,
}

fn run_case(case: &Case, rounds: usize, clock: &Clock, server: &Server, scratch: &Path) -> Report {
    let bytes: usize = case.lines.iter().map(Vec::len).sum();
    println!();
    println!(
        "{}: {} events ({} bytes/event on average) -> {} requests of at most {} items",
        case.name,
        grouped(float(case.lines.len())),
        bytes / case.lines.len(),
        grouped(float(case.requests)),
        case.max_items
    );
    println!("  {}", case.note);
    let events = float(case.lines.len());
    let mut rows = Vec::with_capacity(rounds);
    let all = WARMUP_ROUNDS + rounds;
    for round in 0..all {
        let dead_letters = scratch.join(format!("{}-{round}.ndjson", case.name));
        let delivered = deliver(case, clock, server, &dead_letters);
        let apart = apart(case, clock);
        let delivery_cpu = delivered.cpu.as_secs_f64();
        let row = Row {
            wall: delivered.wall.as_secs_f64(),
            events_per_second: events / delivered.wall.as_secs_f64(),
            requests_per_second: float(case.requests) / delivered.wall.as_secs_f64(),
            cpu_per_10k: delivered.cpu.as_secs_f64() * 10_000.0 / events,
            server_cpu_per_10k: delivered.server_cpu.as_secs_f64() * 10_000.0 / events,
            plan_cpu_per_10k: apart.plan.as_secs_f64() * 10_000.0 / events,
            mapping_share: apart.plan.as_secs_f64() / delivery_cpu,
            input_share: apart.input.as_secs_f64() / delivery_cpu,
        };
        let label = if round < WARMUP_ROUNDS {
            "warm-up".to_owned()
        } else {
            format!("round {}", round - WARMUP_ROUNDS + 1)
        };
        println!("  {label:>8}: {row}");
        if round >= WARMUP_ROUNDS {
            rows.push(row);
        }
    }
    let median = |field: fn(&Row) -> f64| median(rows.iter().map(field).collect());
    Report {
        name: case.name,
        events: case.lines.len() as u64,
        requests: case.requests,
        median: Row {
            wall: median(|r| r.wall),
            events_per_second: median(|r| r.events_per_second),
            requests_per_second: median(|r| r.requests_per_second),
            cpu_per_10k: median(|r| r.cpu_per_10k),
            server_cpu_per_10k: median(|r| r.server_cpu_per_10k),
            plan_cpu_per_10k: median(|r| r.plan_cpu_per_10k),
            mapping_share: median(|r| r.mapping_share),
            input_share: median(|r| r.input_share),
        },
        target: case.target,
        note: case.note.clone(),
    }
}

/// Delivers every event of `case` as `ferry send` does, and checks what the server received.
fn deliver(case: &Case, clock: &Clock, server: &Server, dead_letters: &Path) -> Delivered {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let writer = DeadLetterWriter::open(dead_letters).expect("a dead-letter file");
    let pipeline = Pipeline::new(Arc::clone(&case.connection), writer)
        .expect("valid rules")
        .named("bench");
    let lines = Arc::clone(&case.lines);
    let (tx, rx) = mpsc::channel(INPUT_CHANNEL);
    server.counts.take();

    let cpu = clock.now();
    let start = Instant::now();
    let reader = std::thread::spawn(move || {
        for (i, line) in lines.iter().enumerate() {
            let input = match serde_json::from_slice(line) {
                Ok(event) => Input::Event {
                    index: i + 1,
                    event,
                },
                Err(e) => Input::Unreadable {
                    index: i + 1,
                    text: String::from_utf8_lossy(line).into_owned(),
                    reason: e.to_string(),
                },
            };
            if tx.blocking_send(input).is_err() {
                return;
            }
        }
    });
    let summary = runtime
        .block_on(pipeline.run(rx, &mut |_| {}))
        .expect("dead letters can be written");
    reader.join().expect("the reader does not panic");
    let wall = start.elapsed();
    let (cpu, server_cpu) = clock.since(cpu);
    drop(runtime);

    let received = server.counts.take();
    check(case, &summary, &received, dead_letters);
    Delivered {
        wall,
        cpu,
        server_cpu,
    }
}

/// Panics unless the run delivered exactly what the case expects.
fn check(case: &Case, summary: &Summary, received: &Received, dead_letters: &Path) {
    let name = case.name;
    if summary.dead_lettered > 0 {
        let text = std::fs::read_to_string(dead_letters).unwrap_or_default();
        panic!(
            "{name}: {summary}; first dead letter: {}",
            text.lines().next().unwrap_or("(none written)")
        );
    }
    assert!(
        received.wrong == 0,
        "{name}: the server refused {} requests, the first because {}",
        received.wrong,
        received.problem.as_deref().unwrap_or("?")
    );
    assert_eq!(
        summary.events,
        case.lines.len() as u64,
        "{name}: events read"
    );
    assert_eq!(
        received.requests, case.requests,
        "{name}: requests received"
    );
    assert_eq!(received.items, case.items, "{name}: items received");
    assert!(
        received.largest <= case.max_items,
        "{name}: a request carried {} items, over {}",
        received.largest,
        case.max_items
    );
    assert_eq!(summary.requests, case.requests, "{name}: requests sent");
    assert_eq!(
        summary.items_delivered, case.items,
        "{name}: items delivered"
    );
}

/// The delivery's work without sending, on this thread and timed apart: parsing the lines into
/// events, planning and batching them (`Connection::plan`, `Batcher`), and freeing the events.
/// Checks that the batcher closes as many requests as the delivery sent.
fn apart(case: &Case, clock: &Clock) -> Apart {
    let start = clock.now();
    let events: Vec<Value> = case
        .lines
        .iter()
        .map(|line| serde_json::from_slice(line).expect("valid JSON"))
        .collect();
    let (parse, _) = clock.since(start);

    let start = clock.now();
    let mut state = MemoryState::default();
    let mut batcher: Batcher<usize> = Batcher::new();
    let mut requests = 0_u64;
    let mut bytes = 0_usize;
    for (i, event) in events.iter().enumerate() {
        let plan = case.connection.plan(event, &state);
        for outcome in plan.outcomes {
            match outcome {
                Outcome::Request(request) if request.batch.is_some() => {
                    for merged in batcher.push(i, request).expect("the batcher takes it") {
                        requests += 1;
                        bytes += body_len(merged.request.body.as_ref());
                    }
                }
                Outcome::Request(request) => {
                    requests += 1;
                    bytes += body_len(request.body.as_ref());
                }
                Outcome::Skipped(skip) => panic!("{}: event {i} skipped: {skip:?}", case.name),
                Outcome::Failed(failure) => {
                    panic!("{}: event {i} failed: {failure:?}", case.name)
                }
            }
        }
        state.apply(plan.remember);
    }
    for merged in batcher.flush() {
        requests += 1;
        bytes += body_len(merged.request.body.as_ref());
    }
    let (plan, _) = clock.since(start);

    let start = clock.now();
    drop(events);
    let (free, _) = clock.since(start);
    assert_eq!(requests, case.requests, "{}: planned requests", case.name);
    std::hint::black_box(bytes);
    Apart {
        input: parse + free,
        plan,
    }
}

fn body_len(body: Option<&Body>) -> usize {
    match body {
        Some(Body::Json(text) | Body::JsonArray(text) | Body::Ndjson(text)) => text.len(),
        Some(form @ Body::Form(_)) => form.to_bytes().len(),
        None => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting

#[derive(Clone, Copy)]
struct Row {
    wall: f64,
    events_per_second: f64,
    requests_per_second: f64,
    /// The process less the server's thread.
    cpu_per_10k: f64,
    server_cpu_per_10k: f64,
    plan_cpu_per_10k: f64,
    /// Planning and batching CPU over delivery CPU.
    mapping_share: f64,
    /// Parsing and freeing the events over delivery CPU.
    input_share: f64,
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:5.2} s, {:>7} events/s, {:>7} requests/s, {:.3} CPU s/10k events \
             (server {:.3}); plan + batch {:.3} CPU s/10k = {:4.1}% of delivery, \
             parse + free events {:4.1}%",
            self.wall,
            grouped(self.events_per_second),
            grouped(self.requests_per_second),
            self.cpu_per_10k,
            self.server_cpu_per_10k,
            self.plan_cpu_per_10k,
            self.mapping_share * 100.0,
            self.input_share * 100.0
        )
    }
}

struct Report {
    name: &'static str,
    events: u64,
    requests: u64,
    median: Row,
    target: Option<f64>,
    note: String,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.median;
        writeln!(
            f,
            "{}: {} events in {} requests: {} events/s, {} requests/s, {:.3} CPU s per 10k \
             events; mapping (plan + batch) is {:.0}% of delivery CPU, parsing and freeing the \
             events {:.0}%",
            self.name,
            grouped(float(self.events)),
            grouped(float(self.requests)),
            grouped(m.events_per_second),
            grouped(m.requests_per_second),
            m.cpu_per_10k,
            m.mapping_share * 100.0,
            m.input_share * 100.0
        )?;
        write!(f, "  ({})", self.note)?;
        if let Some(target) = self.target {
            let verdict = if m.events_per_second >= target {
                "met"
            } else {
                "NOT met"
            };
            write!(f, "\n  target >= {} events/s: {verdict}", grouped(target))?;
        }
        Ok(())
    }
}

/// A count as a float, for rates (the bench's counts stay far below `u32::MAX`).
fn float(n: impl TryInto<u32>) -> f64 {
    f64::from(n.try_into().unwrap_or(u32::MAX))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        f64::midpoint(values[mid - 1], values[mid])
    }
}

/// `123456.4` as `123,456`.
fn grouped(n: f64) -> String {
    let digits = format!("{n:.0}");
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// CPU time

/// CPU time of the process (every thread, ended ones included) and of the server's thread,
/// so that the server's share can be taken out; both in nanoseconds, as the scheduler counts.
struct Clock {
    /// The server thread's `schedstat`, whose first field is its time on a CPU.
    server: String,
}

#[derive(Clone, Copy)]
struct Cpu {
    process: Duration,
    server: Duration,
}

impl Clock {
    fn new(server_thread: u32) -> Clock {
        Clock {
            server: format!("/proc/self/task/{server_thread}/schedstat"),
        }
    }

    fn now(&self) -> Cpu {
        let process = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        let process = Duration::new(
            u64::try_from(process.tv_sec).expect("a positive time"),
            u32::try_from(process.tv_nsec).expect("under a second"),
        );
        let text = std::fs::read_to_string(&self.server)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.server));
        let server = text
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse().ok())
            .map(Duration::from_nanos)
            .expect("schedstat starts with nanoseconds on a CPU");
        Cpu { process, server }
    }

    /// CPU since `start`: the process less the server, and the server.
    fn since(&self, start: Cpu) -> (Duration, Duration) {
        let end = self.now();
        let server = end.server.saturating_sub(start.server);
        let process = end.process.saturating_sub(start.process);
        (process.saturating_sub(server), server)
    }
}

// ---------------------------------------------------------------------------------------------
// The loopback server

/// What the server received since the last [`Counts::take`].
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    items: AtomicU64,
    largest: AtomicU64,
    wrong: AtomicU64,
    problem: Mutex<Option<String>>,
}

struct Received {
    requests: u64,
    items: u64,
    largest: u64,
    wrong: u64,
    problem: Option<String>,
}

impl Counts {
    fn take(&self) -> Received {
        Received {
            requests: self.requests.swap(0, Ordering::Relaxed),
            items: self.items.swap(0, Ordering::Relaxed),
            largest: self.largest.swap(0, Ordering::Relaxed),
            wrong: self.wrong.swap(0, Ordering::Relaxed),
            problem: self.problem.lock().expect("not poisoned").take(),
        }
    }

    fn accepted(&self, items: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items as u64, Ordering::Relaxed);
        self.largest.fetch_max(items as u64, Ordering::Relaxed);
    }

    fn refused(&self, why: String) -> (StatusCode, &'static [u8]) {
        self.wrong.fetch_add(1, Ordering::Relaxed);
        self.problem
            .lock()
            .expect("not poisoned")
            .get_or_insert(why);
        (
            StatusCode::BAD_REQUEST,
            br#"{"message":"refused by the bench"}"#,
        )
    }

    /// Checks and counts one request; the status and body to answer.
    fn answer(&self, path: &str, authorization: &[u8], body: &[u8]) -> (StatusCode, &'static [u8]) {
        match path {
            "/users/track" => {
                if authorization != format!("Bearer {BRAZE_KEY}").as_bytes() {
                    return self.refused("a Braze request without its API key".to_owned());
                }
                match serde_json::from_slice::<TrackBody>(body) {
                    Ok(track)
                        if track.attributes.len() == track.events.len()
                            && !track.events.is_empty() =>
                    {
                        self.accepted(track.events.len());
                        (StatusCode::CREATED, br#"{"message":"success"}"#)
                    }
                    Ok(track) => self.refused(format!(
                        "{} attributes for {} events",
                        track.attributes.len(),
                        track.events.len()
                    )),
                    Err(e) => self.refused(format!("a /users/track body that is not one: {e}")),
                }
            }
            "/v6/events" => {
                if authorization != format!("Bearer {EXTOLE_KEY}").as_bytes() {
                    return self.refused("an Extole request without its API key".to_owned());
                }
                match serde_json::from_slice::<ExtoleEvent>(body) {
                    Ok(event)
                        if !event.event_name.is_empty()
                            && !event.data.partner_user_id.is_empty() =>
                    {
                        self.accepted(1);
                        (StatusCode::OK, br#"{"event_id":"e","person_id":"p"}"#)
                    }
                    Ok(_) => self.refused("an Extole event without name or user".to_owned()),
                    Err(e) => self.refused(format!("a /v6/events body that is not one: {e}")),
                }
            }
            other => self.refused(format!("a request to {other}")),
        }
    }
}

/// A `/users/track` body: only the arrays are counted.
#[derive(Deserialize)]
struct TrackBody {
    attributes: Vec<IgnoredAny>,
    events: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
struct ExtoleEvent {
    event_name: String,
    data: ExtoleData,
}

#[derive(Deserialize)]
struct ExtoleData {
    partner_user_id: String,
}

struct Server {
    base_url: String,
    counts: Arc<Counts>,
    /// The server thread's id, for its CPU time.
    thread: u32,
}

impl Server {
    /// Starts the server on a thread of its own, with a single-threaded runtime.
    fn start() -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking socket");
        let base_url = format!("http://{}", listener.local_addr().expect("an address"));
        let counts = Arc::new(Counts::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::clone(&counts);
        std::thread::Builder::new()
            .name("bench-server".to_owned())
            .spawn(move || {
                tx.send(thread_id()).expect("the bench waits for it");
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime")
                    .block_on(serve(listener, shared));
            })
            .expect("a server thread");
        let thread = rx.recv().expect("the server thread starts");
        Server {
            base_url,
            counts,
            thread,
        }
    }
}

/// The kernel's id of the calling thread.
fn thread_id() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.parse().ok())
        .expect("/proc/thread-self names the thread")
}

async fn serve(listener: std::net::TcpListener, counts: Arc<Counts>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let counts = Arc::clone(&counts);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let counts = Arc::clone(&counts);
                async move { Ok::<_, Infallible>(handle(request, &counts).await) }
            });
            // A connection ends when the pipeline's pool drops it: nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(request: Request<Incoming>, counts: &Counts) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let (status, answer) = match body.collect().await {
        Ok(body) => {
            let authorization = parts
                .headers
                .get(AUTHORIZATION)
                .map_or(&b""[..], |v| v.as_bytes());
            counts.answer(parts.uri.path(), authorization, &body.to_bytes())
        }
        Err(e) => counts.refused(format!("a body that did not arrive: {e}")),
    };
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(answer)))
        .expect("a valid response")
}

// ---------------------------------------------------------------------------------------------
// Events

/// Deterministic choices, so every run sends the same events.
struct Rng(fastrand::Rng);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.u64(..)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0.usize(..n)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }

    /// A time in November 2026, to the second.
    fn time(&mut self) -> String {
        format!(
            "2026-11-{:02}T{:02}:{:02}:{:02}Z",
            1 + self.below(28),
            self.below(24),
            self.below(60),
            self.below(60)
        )
    }
}

const FIRST_NAMES: [&str; 6] = ["John", "Ana", "Mei", "Oluwaseun", "Zoë", "Lars"];
const LAST_NAMES: [&str; 5] = ["Doe", "García", "Chen", "Okafor", "Østergaard"];
/// Every event braze.yaml sends by default.
const EXTOLE_EVENT_NAMES: [&str; 7] = [
    "Created Share Link",
    "Shared",
    "Referred Signed Up",
    "Referred Converted",
    "Subscribed",
    "Unsubscribed",
    "Earned Reward",
];

/// Extole events of known users (an `external_id` each), every one sent by braze.yaml's
/// `track` action: a mix of event names, optional person fields and `data` of a few shapes.
fn braze_events(count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(fastrand::Rng::with_seed(0x00B5_A2E0_BE4C_0001));
    let users = count / 4 + 1;
    (0..count)
        .map(|_| {
            let user = rng.below(users);
            let name = rng.pick(&EXTOLE_EVENT_NAMES);
            let first = rng.pick(&FIRST_NAMES);
            let last = rng.pick(&LAST_NAMES);
            let mut event = json!({
                "event_name": name,
                "event_time": rng.time(),
                // Extole sends numeric ids now and then; the mapping turns them into strings.
                "external_id": if rng.chance(10) { json!(user) } else { json!(format!("user-{user}")) },
                "email": format!("{}.{}.{user}@example.com", first.to_lowercase(), last.to_lowercase()),
                "first_name": first,
                "last_name": last,
            });
            if rng.chance(40) {
                event["phone_number"] = json!(format!("+1555{:07}", rng.below(10_000_000)));
            }
            if name != "Unsubscribed" && rng.chance(70) {
                event["share_link"] =
                    json!(format!("https://refer.example.com/s/{:x}", rng.next() >> 24));
            }
            if rng.chance(80) {
                event["funnel"] = json!(rng.pick(&["advocate", "friend"]));
            }
            let mut data = json!({
                "program": rng.pick(&["spring-referral", "vip", "default"]),
                "campaign_id": rng.below(500),
            });
            match name {
                "Earned Reward" => {
                    data["reward"] = json!({
                        "type": rng.pick(&["coupon", "credit", "gift_card"]),
                        "amount": 5 + rng.below(46),
                        "currency": "USD",
                    });
                }
                "Referred Converted" => {
                    data["order_id"] = json!(format!("order-{}", rng.next() >> 40));
                    data["cart_value"] = json!(format!("{}.{:02}", 10 + rng.below(400), rng.below(100)));
                }
                _ => {}
            }
            if rng.chance(25) {
                data["tags"] = json!(["referral", rng.pick(&["email", "sms", "social"])]);
            }
            event["data"] = data;
            serde_json::to_vec(&event).expect("a value serializes")
        })
        .collect()
}

/// Segment identify and track calls made from the sample events: each has its own
/// `messageId` (extole.yaml drops duplicates), a user, a time, and varied traits and
/// properties.
fn extole_events(samples: &Path, count: usize) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(samples)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", samples.display()));
    let samples: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .filter(|v: &Value| v["type"] == "identify" || v["type"] == "track")
        .collect();
    assert!(!samples.is_empty(), "no identify or track sample");
    let mut rng = Rng(fastrand::Rng::with_seed(0x00E7_01E0_BE4C_0002));
    let users = count / 5 + 1;
    (0..count)
        .map(|n| {
            let mut event = samples[rng.below(samples.len())].clone();
            let user = rng.below(users);
            let first = rng.pick(&FIRST_NAMES);
            let last = rng.pick(&LAST_NAMES);
            let email = format!(
                "{}.{}.{user}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            );
            event["messageId"] = json!(format!("msg-{n:08}"));
            event["userId"] = json!(format!("user-{user:06}"));
            event["timestamp"] = json!(rng.time());
            if let Some(traits) = event.get_mut("traits").and_then(Value::as_object_mut) {
                if traits.contains_key("email") {
                    traits.insert("email".into(), json!(email));
                    traits.insert("firstName".into(), json!(first));
                    traits.insert("lastName".into(), json!(last));
                    traits.insert("age".into(), json!(18 + rng.below(60)));
                }
                if rng.chance(30) {
                    traits.insert("plan".into(), json!(rng.pick(&["free", "pro", "team"])));
                }
            }
            if let Some(props) = event.get_mut("properties").and_then(Value::as_object_mut) {
                if props.contains_key("email") {
                    props.insert("email".into(), json!(email));
                    props.insert("first_name".into(), json!(first));
                    props.insert("last_name".into(), json!(last));
                }
                if props.contains_key("partner_user_id") {
                    props.insert("partner_user_id".into(), json!(format!("user-{user:06}")));
                }
                if props.contains_key("order_id") {
                    props.insert("order_id".into(), json!(format!("order-{n}")));
                    props.insert("total".into(), json!(10 + rng.below(500)));
                }
                if props.contains_key("partner_conversion_id") {
                    props.insert(
                        "partner_conversion_id".into(),
                        json!(format!("purchase-{n}")),
                    );
                }
            }
            serde_json::to_vec(&event).expect("a value serializes")
        })
        .collect()
}
