//! Mapping cost as a ratio to the cost of parsing and re-serialising the same JSON.
//!
//! Each round times two passes over the same stream of events (Segment events for Extole and
//! Promoter, Extole events for Braze, Amplitude events for Amplitude -> Extole, and for
//! Segment -> Braze and Customer.io a mix of identify calls with a dozen traits, track calls
//! with a few properties, Order Completed with two or three products, and pages, and for every
//! other catalog destination its sample events over and over, each copy its own event), held as
//! raw JSON lines:
//!
//! - floor: parse each line into a `serde_json::Value` and serialise it back to bytes;
//! - ferry: parse each line, plan it with the connection, and take the body bytes of every
//!   planned request; for the mappings that batch (Braze, Segment -> Braze, and most of the
//!   catalog), requests also merge as the mapping declares, and the merged bodies are what is
//!   counted.
//!
//! The passes alternate in every round so that both see the same machine noise, and the medians
//! over the rounds are compared. The target for every bundled mapping is a ratio of at most 2.0.
//! The bench only reports; it never fails on the ratio.
//!
//! A third pass measures the least work any engine does to send the same requests, for scale:
//! parse each line, write the JSON of each request body ferry planned for it (built beforehand,
//! so only writing it is timed), form-encode form bodies, and compute one SHA-256 digest (in hex)
//! for each digest the body carries. A mapping whose least work is near or over 2.0 times the
//! floor (Facebook's form-encoded, hashed requests) cannot meet the target against the floor,
//! whatever the engine; ferry's ratio to the least work shows what its own interpretation costs.
//!
//! ```text
//! cargo bench -p ferry-engine --bench mapping
//! FERRY_BENCH_ROUNDS=41 FERRY_BENCH_EVENTS=40000 cargo bench -p ferry-engine --bench mapping
//! FERRY_BENCH_ONLY=extole cargo bench -p ferry-engine --bench mapping
//! ```
//!
//! Promoter's failures are expected: an audience-only identify carries no email, which its
//! `identify` action requires.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_engine::{
    Batcher, Body, Connection, MemoryState, MergedRequest, NoState, Outcome, Plan, Recall,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The allocator the `ferry` binary uses, so that both passes cost what they cost in `ferry map`
/// and `ferry serve`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_ROUNDS: usize = 21;
const DEFAULT_EVENTS: usize = 20_000;
const WARMUP_ROUNDS: usize = 3;
const TARGET_RATIO: f64 = 2.0;

fn main() {
    let rounds = env_number("FERRY_BENCH_ROUNDS", DEFAULT_ROUNDS).max(1);
    let events = env_number("FERRY_BENCH_EVENTS", DEFAULT_EVENTS).max(1);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let stream = event_stream(&root.join("examples/segment-events.ndjson"), events);
    let extole_stream = extole_event_stream(events);
    let amplitude_stream = amplitude_event_stream(events);
    let destination_stream = destination_event_stream(events);
    for (what, stream) in [
        ("Segment", &stream),
        ("Extole", &extole_stream),
        ("Amplitude", &amplitude_stream),
        (
            "Segment (identify, track, order, page)",
            &destination_stream,
        ),
    ] {
        let bytes: usize = stream.iter().map(Vec::len).sum();
        println!(
            "{what}: {} events ({} bytes, {} bytes/event on average)",
            stream.len(),
            bytes,
            bytes / stream.len()
        );
    }
    println!("{WARMUP_ROUNDS} warm-up + {rounds} rounds");

    // FERRY_BENCH_ONLY=extole runs one mapping, e.g. under a profiler.
    let only = std::env::var("FERRY_BENCH_ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let mut summaries = Vec::new();
    if wanted("extole") {
        let extole = connect(&root, "extole", &json!({"api_key": "bench-key"}));
        summaries.push(bench(
            "extole",
            &stream,
            rounds,
            || NoState,
            |_, _| {},
            &extole,
            false,
        ));
    }
    if wanted("promoter") {
        let promoter = connect(
            &root,
            "promoter",
            &json!({"api_key": "k", "campaign_id": 7}),
        );
        summaries.push(bench(
            "promoter",
            &stream,
            rounds,
            MemoryState::default,
            |state: &mut MemoryState, plan: &mut Plan| state.apply(plan.remember.drain(..)),
            &promoter,
            false,
        ));
    }
    if wanted("braze") {
        let braze = connect(
            &root,
            "braze",
            &json!({"instance_url": "https://rest.iad-01.braze.com", "rest_api_key": "bench-key"}),
        );
        summaries.push(bench(
            "braze",
            &extole_stream,
            rounds,
            || NoState,
            |_, _| {},
            &braze,
            std::env::var_os("FERRY_BENCH_NO_BATCH").is_none(),
        ));
    }
    if wanted("amplitude-extole") {
        let amplitude = connect(
            &root,
            "amplitude-extole",
            &json!({"api_key": "bench-key", "event_properties": ["plan", "amount", "coupon_code", "order_id"]}),
        );
        summaries.push(bench(
            "amplitude-extole",
            &amplitude_stream,
            rounds,
            || NoState,
            |_, _| {},
            &amplitude,
            false,
        ));
    }
    summaries.extend(destination_benches(
        &root,
        &destination_stream,
        rounds,
        &wanted,
    ));
    println!();
    for summary in summaries {
        println!("{summary}");
    }
}

/// Segment -> Braze and Segment -> Customer.io on the stream of identify, track, order and page
/// calls, and the rest of the catalog on streams of their own samples.
fn destination_benches(
    root: &Path,
    stream: &[Vec<u8>],
    rounds: usize,
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<Summary> {
    let mut summaries = Vec::new();
    if wanted("segment-braze") {
        let braze = connect(
            root,
            "segment-braze",
            &json!({"instance_url": "https://rest.iad-01.braze.com", "rest_api_key": "bench-key", "page_events": true}),
        );
        summaries.push(bench(
            "segment-braze",
            stream,
            rounds,
            || NoState,
            |_, _| {},
            &braze,
            std::env::var_os("FERRY_BENCH_NO_BATCH").is_none(),
        ));
    }
    if wanted("customerio") {
        let customerio = connect(
            root,
            "customerio",
            &json!({"site_id": "bench-site", "api_key": "bench-key"}),
        );
        summaries.push(bench(
            "customerio",
            stream,
            rounds,
            || NoState,
            |_, _| {},
            &customerio,
            false,
        ));
    }

    for (name, settings, batching) in catalog() {
        if !wanted(name) {
            continue;
        }
        let stream = &sample_stream(root, name, stream.len());
        let mut connection = connect(root, name, &settings);
        // The samples' events are of November 2026: destinations that refuse old events (GA4's
        // 72 hours, Facebook's 7 days) read the clock as the end of that month.
        connection.pin_clock(
            std::time::UNIX_EPOCH + Duration::from_hours(498_888), // 2026-11-30T00:00:00Z
        );
        let state = MemoryState::default;
        summaries.push(bench(
            name,
            stream,
            rounds,
            state,
            |state: &mut MemoryState, plan: &mut Plan| state.apply(plan.remember.drain(..)),
            &connection,
            batching && std::env::var_os("FERRY_BENCH_NO_BATCH").is_none(),
        ));
    }
    summaries
}

/// `count` events like the catalog destination `name` takes: its sample events
/// (`examples/NAME-events.ndjson`) over and over, each copy with its own messageId and user, so
/// that dedupe keys and batches see distinct events.
fn sample_stream(root: &Path, name: &str, count: usize) -> Vec<Vec<u8>> {
    let file = match name {
        "amplitude" => "segment-amplitude".to_owned(),
        other => other.to_owned(),
    };
    let text = std::fs::read_to_string(root.join(format!("examples/{file}-events.ndjson")))
        .unwrap_or_else(|e| panic!("the samples of {name}: {e}"));
    let samples: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a sample event"))
        .collect();
    (0..count)
        .map(|n| {
            let mut event = samples[n % samples.len()].clone();
            let copy = n / samples.len();
            event["messageId"] = json!(format!("bench-{n:08}"));
            for key in ["userId", "anonymousId"] {
                if let Some(Value::String(id)) = event.get(key) {
                    event[key] = json!(format!("{id}-{copy}"));
                }
            }
            serde_json::to_vec(&event).expect("a value serializes")
        })
        .collect()
}

/// The catalog's mappings, with settings a connection would have (as the demo configuration
/// gives them), and whether their requests merge into batches.
fn catalog() -> Vec<(&'static str, Value, bool)> {
    vec![
        ("amplitude", json!({"api_key": "bench-key"}), true),
        (
            "mixpanel",
            json!({"token": "bench-token", "prop_increments": [{"property": "orders"}], "group_keys": [{"groupKey": "company"}]}),
            true,
        ),
        (
            "ga4",
            json!({"api_secret": "bench-secret", "measurement_id": "G-BENCH"}),
            false,
        ),
        (
            "iterable",
            json!({"api_key": "bench-key", "device_api_key": "bench-device-key"}),
            false,
        ),
        ("klaviyo", json!({"private_api_key": "pk_bench"}), false),
        ("posthog", json!({"project_api_key": "phc_bench"}), false),
        (
            "facebook-conversions",
            json!({"access_token": "bench-token", "pixel_id": "1234567890", "advanced_mapping": true}),
            true,
        ),
        (
            "pinterest-conversions",
            json!({"advertiser_id": "549755885175"}),
            true,
        ),
        (
            "snapchat-conversions",
            json!({"api_key": "bench-key", "pixel_id": "bench-pixel", "snap_app_id": "bench-app", "app_id": "123",
                   "event_mapping": [{"from": "Tutorial Finished", "to": "COMPLETE_TUTORIAL"}]}),
            true,
        ),
        (
            "tiktok-ads",
            json!({"access_token": "bench-token", "pixel_code": "BENCH"}),
            true,
        ),
    ]
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

fn connect(root: &Path, name: &str, settings: &Value) -> Connection {
    let path: PathBuf = root.join(format!("mappings/{name}.yaml"));
    let mapping = ferry_engine::load(&path).unwrap_or_else(|d| panic!("{d}"));
    Connection::new(Arc::new(mapping), settings.as_object().expect("a map"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// What one pass over the stream did, so that both passes can be checked and kept alive.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    bytes: usize,
    requests: usize,
    skipped: usize,
    failed: usize,
}

fn floor_pass(stream: &[Vec<u8>]) -> Tally {
    let mut tally = Tally::default();
    for line in stream {
        let event: Value = serde_json::from_slice(black_box(line)).expect("valid JSON");
        let out = serde_json::to_vec(&event).expect("a value serializes");
        tally.bytes += black_box(out).len();
    }
    tally
}

/// The requests of one event, as the least work writes them: each body's JSON, or its form
/// fields (a field holding JSON as its value), and how many SHA-256 digests the bodies carry.
struct Least {
    bodies: Vec<LeastBody>,
    digests: usize,
}

enum LeastBody {
    Json(Value),
    Form(Vec<(String, Value)>),
}

/// The requests ferry plans for each line of `stream`, one event after another as in a pass.
fn least_work<S: Recall>(
    connection: &Connection,
    stream: &[Vec<u8>],
    state: &mut S,
    apply: &impl Fn(&mut S, &mut Plan),
) -> Vec<Least> {
    let json = |text: &str| serde_json::from_str(text).unwrap_or_else(|_| json!(text));
    stream
        .iter()
        .map(|line| {
            let event: Value = serde_json::from_slice(line).expect("valid JSON");
            let mut plan = connection.plan(&event, state);
            let mut least = Least {
                bodies: Vec::new(),
                digests: 0,
            };
            for outcome in &plan.outcomes {
                let Outcome::Request(request) = outcome else {
                    continue;
                };
                let body = match &request.body {
                    Some(Body::Json(text) | Body::JsonArray(text) | Body::Ndjson(text)) => {
                        least.digests += digests_in(text);
                        LeastBody::Json(json(text))
                    }
                    Some(Body::Form(fields)) => {
                        least.digests += fields.iter().map(|(_, v)| digests_in(v)).sum::<usize>();
                        LeastBody::Form(fields.iter().map(|(k, v)| (k.clone(), json(v))).collect())
                    }
                    None => continue,
                };
                least.bodies.push(body);
            }
            apply(state, &mut plan);
            least
        })
        .collect()
}

/// The number of SHA-256 digests in hex (64 lowercase hex digits in a row) in `text`.
fn digests_in(text: &str) -> usize {
    let mut found = 0;
    let mut run = 0;
    for byte in text.bytes().chain(std::iter::once(b' ')) {
        if byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte) {
            run += 1;
        } else {
            found += usize::from(run == 64);
            run = 0;
        }
    }
    found
}

/// What the least work hashes: identifiers of the lengths destinations hash (an email, a phone
/// number, a name, an id).
const IDENTIFIERS: [&[u8]; 4] = [
    b"ada@example.com",
    b"+15550109999",
    b"lovelace",
    b"user-004242",
];

fn least_pass(stream: &[Vec<u8>], requests: &[Least]) -> Tally {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut tally = Tally::default();
    for (line, least) in stream.iter().zip(requests) {
        let event: Value = serde_json::from_slice(black_box(line)).expect("valid JSON");
        black_box(&event);
        for n in 0..least.digests {
            let digest = Sha256::digest(black_box(IDENTIFIERS[n % IDENTIFIERS.len()]));
            let mut hex = String::with_capacity(64);
            for byte in digest {
                hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
                hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
            }
            tally.bytes += black_box(hex).len();
        }
        for body in &least.bodies {
            tally.requests += 1;
            tally.bytes += match body {
                LeastBody::Json(value) => {
                    black_box(serde_json::to_vec(value).expect("serializes")).len()
                }
                LeastBody::Form(fields) => {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    for (name, value) in fields {
                        match value {
                            Value::String(text) => form.append_pair(name, text),
                            other => form.append_pair(
                                name,
                                &serde_json::to_string(other).expect("serializes"),
                            ),
                        };
                    }
                    black_box(form.finish()).len()
                }
            };
        }
    }
    tally
}

fn ferry_pass<S: Recall>(
    connection: &Connection,
    stream: &[Vec<u8>],
    state: &mut S,
    apply: &impl Fn(&mut S, &mut Plan),
    batching: bool,
) -> Tally {
    let mut tally = Tally::default();
    let mut batcher: Batcher<u32> = Batcher::new();
    let merged = |tally: &mut Tally, requests: Vec<MergedRequest<u32>>| {
        for request in requests {
            tally.requests += 1;
            if let Some(Body::Json(text)) = &request.request.body {
                tally.bytes += black_box(text.as_bytes()).len();
            }
        }
    };
    for line in stream {
        let event: Value = serde_json::from_slice(black_box(line)).expect("valid JSON");
        let mut plan = connection.plan(&event, state);
        for outcome in std::mem::take(&mut plan.outcomes) {
            match outcome {
                Outcome::Request(request)
                    if batching && request.batch.is_some() && request.continuation.is_none() =>
                {
                    match batcher.push(0, request) {
                        Ok(closed) => merged(&mut tally, closed),
                        Err(_) => tally.failed += 1,
                    }
                }
                Outcome::Request(request) => {
                    tally.requests += 1;
                    tally.bytes += black_box(&request.url).len();
                    tally.bytes += match &request.body {
                        // The planned text is what is sent: no copy needed.
                        Some(Body::Json(text) | Body::JsonArray(text) | Body::Ndjson(text)) => {
                            black_box(text.as_bytes()).len()
                        }
                        Some(form @ Body::Form(_)) => black_box(form.to_bytes()).len(),
                        None => 0,
                    };
                }
                Outcome::Skipped(_) => tally.skipped += 1,
                Outcome::Failed(_) => tally.failed += 1,
            }
        }
        apply(state, &mut plan);
        black_box(plan);
    }
    merged(&mut tally, batcher.flush());
    tally
}

struct Summary {
    name: &'static str,
    ferry_ns: f64,
    floor_ns: f64,
    least_ns: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: ferry {:.2} µs/event vs floor {:.2} µs/event -> ratio {:.2} (target <= {TARGET_RATIO}); least work {:.2} x floor, ferry {:.2} x least work",
            self.name,
            self.ferry_ns / 1000.0,
            self.floor_ns / 1000.0,
            self.ferry_ns / self.floor_ns,
            self.least_ns / self.floor_ns,
            self.ferry_ns / self.least_ns
        )
    }
}

fn bench<S: Recall>(
    name: &'static str,
    stream: &[Vec<u8>],
    rounds: usize,
    fresh_state: impl Fn() -> S,
    apply: impl Fn(&mut S, &mut Plan),
    connection: &Connection,
    batching: bool,
) -> Summary {
    let mut floor_times = Vec::with_capacity(rounds);
    let mut ferry_times = Vec::with_capacity(rounds);
    let mut least_times = Vec::with_capacity(rounds);
    let requests = least_work(connection, stream, &mut fresh_state(), &apply);
    let mut tallies = None;
    for round in 0..WARMUP_ROUNDS + rounds {
        let mut state = fresh_state();
        let time_floor = || {
            let start = Instant::now();
            let tally = floor_pass(stream);
            (start.elapsed(), tally)
        };
        let mut time_ferry = || {
            let start = Instant::now();
            let tally = ferry_pass(connection, stream, &mut state, &apply, batching);
            (start.elapsed(), tally)
        };
        let time_least = || {
            let start = Instant::now();
            let tally = least_pass(stream, &requests);
            (start.elapsed(), tally)
        };
        // Alternate which pass goes first, so neither always runs on a cache the other warmed;
        // the least work, a yardstick, runs between or after them.
        let ((floor, floor_tally), (ferry, ferry_tally), (least, _)) = if round % 2 == 0 {
            let floor = time_floor();
            let least = time_least();
            (floor, time_ferry(), least)
        } else {
            let ferry = time_ferry();
            (time_floor(), ferry, time_least())
        };
        match tallies {
            None => tallies = Some((floor_tally, ferry_tally)),
            Some(seen) => assert!(
                seen == (floor_tally, ferry_tally),
                "every round must do the same work"
            ),
        }
        if round >= WARMUP_ROUNDS {
            floor_times.push(floor);
            ferry_times.push(ferry);
            least_times.push(least);
        }
    }
    let (_, ferry_tally) = tallies.expect("at least one round");
    let per_event = |times: &mut Vec<Duration>| {
        times.sort();
        let median = times[times.len() / 2];
        let min = times[0];
        #[allow(clippy::cast_precision_loss)]
        let ns = |d: Duration| d.as_nanos() as f64 / stream.len() as f64;
        (ns(median), ns(min))
    };
    let (floor_ns, floor_min) = per_event(&mut floor_times);
    let (ferry_ns, ferry_min) = per_event(&mut ferry_times);
    let (least_ns, least_min) = per_event(&mut least_times);
    println!();
    println!(
        "{name}: {} requests, {} skipped, {} failed per pass",
        ferry_tally.requests, ferry_tally.skipped, ferry_tally.failed
    );
    for (what, median, min) in [
        ("floor", floor_ns, floor_min),
        ("ferry", ferry_ns, ferry_min),
        ("least work", least_ns, least_min),
    ] {
        println!(
            "  {what}: median {median:8.0} ns/event ({:>9.0} events/s), best {min:8.0} ns/event",
            1e9 / median
        );
    }
    println!(
        "  ratio ferry/floor: median {:.2}, best {:.2}",
        ferry_ns / floor_ns,
        ferry_min / floor_min
    );
    println!(
        "  ratio least work/floor: median {:.2}; ferry/least work: median {:.2}",
        least_ns / floor_ns,
        ferry_ns / least_ns
    );
    Summary {
        name,
        ferry_ns,
        floor_ns,
        least_ns,
    }
}

/// The sample events, by what they are.
struct Samples {
    identify: Value,
    audience: Value,
    registration: Value,
    conversion: Value,
    order: Value,
    other_track: Value,
    page: Value,
    delete: Value,
}

impl Samples {
    fn read(path: &Path) -> Samples {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let lines: Vec<Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        let find = |kind: &str, event: Option<&str>, has: Option<&str>| {
            lines
                .iter()
                .find(|v| {
                    v["type"] == kind
                        && event.is_none_or(|e| v["event"] == e)
                        && has.is_none_or(|t| v["traits"].get(t).is_some())
                })
                .unwrap_or_else(|| panic!("no {kind} {event:?} sample"))
                .clone()
        };
        Samples {
            identify: find("identify", None, Some("email")),
            audience: find("identify", None, Some("order_completed_last_30days")),
            registration: find("track", Some("registration"), None),
            conversion: find("track", Some("conversion"), None),
            order: find("track", Some("Order Completed"), None),
            other_track: find("track", Some("Login Button Clicked"), None),
            page: find("page", None, None),
            delete: find("delete", None, None),
        }
    }
}

const FIRST_NAMES: [&str; 6] = ["John", "Ana", "Mei", "Oluwaseun", "Zoë", "Lars"];
const LAST_NAMES: [&str; 5] = ["Doe", "García", "Chen", "Okafor", "Østergaard"];

/// At least `count` events as JSON lines: per user, an identify, then a mix of tracks, pages,
/// audience updates and, now and then, a delete.
fn event_stream(samples: &Path, count: usize) -> Vec<Vec<u8>> {
    let samples = Samples::read(samples);
    let mut rng = fastrand::Rng::with_seed(0x00C0_FFEE_D15E_A5E5);
    let mut lines = Vec::with_capacity(count + 16);
    let mut message = 0_u64;
    let mut user = 0_u64;
    while lines.len() < count {
        user += 1;
        let user_id = format!("user-{user:06}");
        let first = FIRST_NAMES[rng.usize(..6)];
        let last = LAST_NAMES[rng.usize(..5)];
        let email = format!(
            "{}.{}.{user}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        );
        let mut emit = |mut event: Value, rng: &mut fastrand::Rng| {
            message += 1;
            event["messageId"] = json!(format!("msg-{message:08}"));
            if event.get("userId").is_some() {
                event["userId"] = json!(user_id);
            }
            if event.get("anonymousId").is_some() {
                event["anonymousId"] = json!(format!("anon-{:x}", rng.u64(..) >> 16));
            }
            event["timestamp"] = json!(format!(
                "2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                1 + rng.u64(..28),
                rng.u64(..24),
                rng.u64(..60),
                rng.u64(..60),
                rng.u64(..1000)
            ));
            lines.push(serde_json::to_vec(&event).expect("a value serializes"));
        };

        let mut identify = samples.identify.clone();
        let traits = identify["traits"].as_object_mut().expect("traits");
        traits.insert("email".into(), json!(email));
        traits.insert("firstName".into(), json!(first));
        traits.insert("lastName".into(), json!(last));
        traits.insert("age".into(), json!(18 + rng.u64(..60)));
        traits.insert("existingCustomer".into(), json!(rng.bool()));
        if rng.bool() {
            traits.insert(
                "plan".into(),
                json!(["free", "pro", "team"][usize::try_from(user % 3).unwrap()]),
            );
            traits.insert(
                "address".into(),
                json!({"city": "Lisbon", "postalCode": format!("{:04}", rng.u64(..10_000))}),
            );
        }
        emit(identify, &mut rng);

        for _ in 0..3 + rng.u64(..5) {
            let event = match rng.u64(..100) {
                0..20 => {
                    let mut e = samples.registration.clone();
                    set_person(
                        e["properties"].as_object_mut(),
                        &email,
                        first,
                        last,
                        &user_id,
                    );
                    e
                }
                20..35 => {
                    let mut e = samples.conversion.clone();
                    let props = e["properties"].as_object_mut().expect("properties");
                    set_person(Some(props), &email, first, last, &user_id);
                    props.insert(
                        "partner_conversion_id".into(),
                        json!(format!("purchase-{}", rng.u64(..) >> 40)),
                    );
                    let cents = 100 + rng.u64(..50_000);
                    let value = if rng.bool() {
                        json!(format!("{}.{:02}", cents / 100, cents % 100))
                    } else {
                        json!(cents_to_f64(cents))
                    };
                    props.insert("cart_value".into(), value);
                    e
                }
                35..55 => order(&samples.order, &email, &mut rng),
                55..70 => samples.other_track.clone(),
                70..90 => samples.page.clone(),
                _ => samples.audience.clone(),
            };
            emit(event, &mut rng);
        }
        if rng.u8(..100) < 5 {
            emit(samples.delete.clone(), &mut rng);
        }
    }
    lines
}

fn set_person(
    props: Option<&mut Map<String, Value>>,
    email: &str,
    first: &str,
    last: &str,
    user_id: &str,
) {
    let props = props.expect("properties");
    props.insert("email".into(), json!(email));
    props.insert("first_name".into(), json!(first));
    props.insert("last_name".into(), json!(last));
    if props.contains_key("partner_user_id") {
        props.insert("partner_user_id".into(), json!(user_id));
    }
}

fn order(sample: &Value, email: &str, rng: &mut fastrand::Rng) -> Value {
    let mut e = sample.clone();
    e["context"]["traits"]["email"] = json!(email);
    let props = e["properties"].as_object_mut().expect("properties");
    let template = props["products"][0].clone();
    let mut products = Vec::new();
    let mut total = 0.0;
    for n in 0..=rng.u64(..4) {
        let mut product = template.clone();
        let price = cents_to_f64(500 + rng.u64(..20_000));
        let quantity = 1 + rng.u64(..3);
        total += price * f64::from(u32::try_from(quantity).unwrap());
        product["product_id"] = json!(format!("p-{}", rng.u64(..1000)));
        product["sku"] = json!(format!("SKU-{n}-{}", rng.u64(..100_000)));
        product["price"] = json!(price);
        product["quantity"] = json!(quantity);
        products.push(product);
    }
    let total = (total * 100.0).round() / 100.0;
    props.insert("products".into(), Value::Array(products));
    props.insert(
        "order_id".into(),
        json!(format!("order-{}", rng.u64(..) >> 44)),
    );
    props.insert("total".into(), json!(total));
    props.insert("revenue".into(), json!(total * 0.9));
    e
}

fn cents_to_f64(cents: u64) -> f64 {
    f64::from(u32::try_from(cents).expect("small amounts")) / 100.0
}

const EXTOLE_EVENTS: [&str; 8] = [
    "Created Share Link",
    "Shared",
    "Referred Signed Up",
    "Referred Converted",
    "Subscribed",
    "Unsubscribed",
    "Earned Reward",
    "Reward Redeemed",
];

/// Extole webhook events for the Braze mapping: mostly known users (merged into batches), some
/// users known only by email (the alias flow's first step), deletes, and events not sent.
fn extole_event_stream(count: usize) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(0x0BAD_CAFE_F00D_0001);
    (0..count)
        .map(|i| {
            let first = FIRST_NAMES[rng.usize(..6)];
            let last = LAST_NAMES[rng.usize(..5)];
            let email = format!("{}.{i}@example.com", first.to_lowercase());
            let name = EXTOLE_EVENTS[rng.usize(..8)];
            let time = format!(
                "2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                1 + rng.u64(..28),
                rng.u64(..24),
                rng.u64(..60),
                rng.u64(..60),
                rng.u64(..1000)
            );
            let mut event = json!({
                "event_name": name,
                "event_time": time,
                "email": email,
                "first_name": first,
                "last_name": last,
                "funnel": if rng.bool() { "advocate" } else { "friend" },
                "share_link": format!("https://refer.example.com/{:x}", rng.u64(..) >> 24),
                "data": {
                    "program": "spring-referral",
                    "reward": format!("{} EUR", 5 + rng.u64(..20)),
                    "channel": (["email", "sms", "facebook", "link"][rng.usize(..4)]),
                }
            });
            match rng.u64(..100) {
                0..80 => event["external_id"] = json!(format!("user-{:06}", rng.u64(..50_000))),
                80..95 => {}
                _ => event = json!({"type": "delete", "external_id": format!("user-{i}")}),
            }
            if rng.u8(..100) < 40 {
                event["phone_number"] = json!(format!("+3519{:08}", rng.u64(..100_000_000)));
            }
            serde_json::to_vec(&event).expect("a value serializes")
        })
        .collect()
}

const AMPLITUDE_EVENTS: [&str; 6] = [
    "Order Completed",
    "Referral Completed",
    "Signed Up",
    "Page Viewed",
    "Shared",
    "Subscription Renewed",
];

/// Amplitude HTTP V2 events, with event, user and group properties.
fn amplitude_event_stream(count: usize) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(0x00A3_91E7_1DE0_0002);
    (0..count)
        .map(|i| {
            let first = FIRST_NAMES[rng.usize(..6)];
            let mut event = json!({
                "event_type": AMPLITUDE_EVENTS[rng.usize(..6)],
                "user_id": format!("{}.{i}@example.com", first.to_lowercase()),
                "device_id": format!("{:016X}", rng.u64(..)),
                "time": 1_763_632_800_000_u64 + rng.u64(..86_400_000),
                "insert_id": format!("{:x}-{:x}", rng.u64(..), rng.u64(..)),
                "platform": "Web",
                "os_name": "Chrome",
                "event_properties": {
                    "plan": (["free", "pro", "team"][rng.usize(..3)]),
                    "amount": cents_to_f64(100 + rng.u64(..50_000)),
                    "coupon_code": format!("FRIEND{}", rng.u64(..100)),
                    "screen": "checkout",
                },
                "user_properties": {
                    "unique_id": 10_000 + rng.u64(..90_000),
                    "city": "Lisbon",
                    "cohort": format!("2026-{:02}", 1 + rng.u64(..12)),
                },
                "groups": { "company": format!("company-{}", rng.u64(..500)) },
            });
            if rng.u8(..100) < 10 {
                event["user_id"] = Value::Null;
            }
            serde_json::to_vec(&event).expect("a value serializes")
        })
        .collect()
}

const PLANS: [&str; 3] = ["free", "pro", "enterprise"];
const CITIES: [(&str, &str); 4] = [
    ("Lisbon", "PT"),
    ("Osaka", "JP"),
    ("Lagos", "NG"),
    ("Zürich", "CH"),
];
const EVENTS: [&str; 4] = [
    "Signed Up",
    "Viewed Pricing",
    "Invited Teammate",
    "Exported Report",
];

/// Segment events as sent to Braze or Customer.io: per user, an identify with a dozen traits,
/// then track calls with a few properties, an Order Completed with two or three products, and
/// pages; one user in ten is anonymous.
fn destination_event_stream(count: usize) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(0x0BAD_5EED_1234_5678);
    let mut lines = Vec::with_capacity(count + 8);
    let mut message = 0_u64;
    let mut user = 0_u64;
    while lines.len() < count {
        user += 1;
        let anonymous = rng.u8(..100) < 10;
        let first = FIRST_NAMES[rng.usize(..6)];
        let last = LAST_NAMES[rng.usize(..5)];
        let (city, country) = CITIES[rng.usize(..4)];
        let mut emit = |kind: &str, mut event: Value, rng: &mut fastrand::Rng| {
            message += 1;
            event["type"] = json!(kind);
            event["messageId"] = json!(format!("msg-{message:08}"));
            event["anonymousId"] = json!(format!("anon-{user:x}"));
            if !anonymous {
                event["userId"] = json!(format!("user-{user:06}"));
            }
            event["timestamp"] = json!(format!(
                "2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                1 + rng.u64(..28),
                rng.u64(..24),
                rng.u64(..60),
                rng.u64(..60),
                rng.u64(..1000)
            ));
            event["context"] = json!({"ip": "203.0.113.7", "library": {"name": "analytics.js", "version": "2.11.1"}});
            lines.push(serde_json::to_vec(&event).expect("a value serializes"));
        };
        emit(
            "identify",
            json!({"traits": {
                "email": format!("{}.{}.{user}@example.com", first.to_lowercase(), last.to_lowercase()),
                "firstName": first,
                "lastName": last,
                "phone": format!("+3519{:08}", rng.u64(..100_000_000)),
                "gender": if rng.bool() { "female" } else { "Male" },
                "birthday": format!("19{:02}-{:02}-{:02}", 50 + rng.u64(..50), 1 + rng.u64(..12), 1 + rng.u64(..28)),
                "address": {"city": city, "country": country},
                "plan": PLANS[rng.usize(..3)],
                "logins": rng.u64(..500),
                "created_at": "2026-01-05T10:00:00Z",
                "company": "Acme",
                "newsletter": rng.bool()
            }}),
            &mut rng,
        );
        for _ in 0..3 {
            let name = EVENTS[rng.usize(..4)];
            emit(
                "track",
                json!({"event": name, "properties": {
                    "plan": PLANS[rng.usize(..3)],
                    "seats": rng.u64(..50),
                    "source": "web"
                }}),
                &mut rng,
            );
        }
        let products: Vec<Value> = (0..2 + rng.u64(..2))
            .map(|i| {
                json!({
                    "product_id": format!("p-{}", rng.u64(..1000)),
                    "sku": format!("SKU-{i}"),
                    "name": "Notebook",
                    "price": cents_to_f64(100 + rng.u64(..5000)),
                    "quantity": 1 + rng.u64(..3),
                    "category": "paper"
                })
            })
            .collect();
        emit(
            "track",
            json!({"event": "Order Completed", "properties": {
                "order_id": format!("o-{user}"),
                "total": cents_to_f64(1000 + rng.u64(..9000)),
                "currency": "EUR",
                "products": products
            }}),
            &mut rng,
        );
        emit(
            "page",
            json!({"name": "Pricing", "properties": {"url": "https://example.com/pricing", "title": "Pricing", "referrer": "https://example.com/"}}),
            &mut rng,
        );
    }
    lines.truncate(count);
    lines
}
