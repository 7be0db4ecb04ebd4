//! Load against a real `ferry serve` process: a store and configuration in a temporary folder,
//! the server as a child process that can be killed with SIGKILL and started again, a
//! destination in this process that records what it receives, and a generator of Segment
//! `/v1/batch` requests. Shared by the crash test (`tests/crash.rs`) and the ingest benchmark
//! (`benches/ingest.rs`); each uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine as _;
use bytes::Bytes;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The Segment write key the generated configuration accepts.
pub const WRITE_KEY: &str = "load-key";

/// What the generated configuration declares besides the destination.
#[derive(Debug, Clone, Copy)]
pub struct SetupOptions {
    /// Map and record requests instead of sending them.
    pub dry_run: bool,
    /// Most events the mapping merges into one destination request (`batch.max_items`).
    pub batch_items: usize,
    /// `store.synchronous`: `full` or `normal`.
    pub synchronous: &'static str,
}

/// A configuration, a mapping and a store in a temporary folder, removed on drop.
pub struct Setup {
    dir: TempDir,
    pub config: PathBuf,
    pub data: PathBuf,
}

impl Setup {
    /// Writes a mapping `sink` that posts `{"events": [{id, user}, ...]}` to `/events`, and a
    /// configuration with one Segment source and one connection to `destination`.
    pub fn write(destination: &str, options: SetupOptions) -> Setup {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mappings = dir.path().join("mappings");
        fs::create_dir_all(&mappings).expect("the mappings folder");
        let max_items = options.batch_items;
        fs::write(
            mappings.join("sink.yaml"),
            format!(
                "\
version: 1
name: sink
source: segment
http:
  base_url: https://example.invalid
delivery:
  retry: {{ max_attempts: 3, initial_backoff_ms: 10, max_backoff_ms: 100 }}
  concurrency: 64
actions:
  track:
    when: {{ type: track }}
    request:
      method: POST
      path: /events
      body:
        id: {{ from: $.messageId, required: true }}
        user: {{ from: $.userId }}
    batch:
      wrap: events
      max_items: {max_items}
      linger_ms: 20
"
            ),
        )
        .expect("the mapping is written");
        let config = dir.path().join("ferry.yaml");
        let (dry_run, synchronous) = (options.dry_run, options.synchronous);
        fs::write(
            &config,
            format!(
                "\
version: 1
listen: 127.0.0.1:0
mappings: mappings
data: data
dry_run: {dry_run}
store: {{ synchronous: {synchronous} }}
# Events whose delivery failed come back quickly, so a test can wait for them.
retry: {{ first_after_seconds: 1, at_most_every_seconds: 2 }}
sources:
  web: {{ type: segment, keys: [{WRITE_KEY}] }}
connections:
  sink: {{ source: web, mapping: sink, base_url: \"{destination}\" }}
"
            ),
        )
        .expect("the configuration is written");
        Setup {
            config,
            data: dir.path().join("data"),
            dir,
        }
    }

    /// Where the servers started on this setup write their log.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("ferry.log")
    }
}

/// A port nobody listens on now, so that a server can be started again on the same address.
pub fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// A running `ferry serve`, killed with SIGKILL on drop.
pub struct Ferry {
    child: Child,
    pub address: SocketAddr,
}

impl Ferry {
    /// Starts `binary serve` on `setup` at `address` and waits until it is ready.
    pub async fn start(binary: &Path, setup: &Setup, address: SocketAddr) -> Ferry {
        let log = File::options()
            .create(true)
            .append(true)
            .open(setup.log())
            .expect("the log file opens");
        let child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&setup.config)
            .arg("--listen")
            .arg(address.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ferry serve starts");
        let mut ferry = Ferry { child, address };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready(address).await {
            if let Some(status) = ferry.child.try_wait().expect("the child can be polled") {
                let log = fs::read_to_string(setup.log()).unwrap_or_default();
                panic!("ferry serve exited with {status} before it was ready:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "ferry serve was not ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ferry
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no drain, no final commit.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The peak resident set size (`VmHWM`) in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// `GET /readyz` answers 200: the workers run and events are accepted.
async fn ready(address: SocketAddr) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        return false;
    };
    let request = "GET /readyz HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.1 200")
}

/// What the destination received.
#[derive(Default)]
pub struct Received {
    /// How many times each id arrived, when ids are kept.
    ids: Mutex<HashMap<String, u32>>,
    keep_ids: bool,
    /// Requests answered 503 on purpose, out of 1000.
    fail_per_mille: u32,
    pub requests: AtomicU64,
    pub refused: AtomicU64,
    pub events: AtomicU64,
}

impl Received {
    /// Every id received at least once, with how many times.
    pub fn ids(&self) -> HashMap<String, u32> {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
}

/// The destination: `POST /events` with one event or `{"events": [...]}`; answers 200, or 503
/// for a share of requests chosen at random.
pub async fn sink(keep_ids: bool, fail_per_mille: u32) -> (SocketAddr, Arc<Received>) {
    let received = Arc::new(Received {
        keep_ids,
        fail_per_mille,
        ..Received::default()
    });
    let router = Router::new()
        .route("/events", post(deliver))
        .with_state(Arc::clone(&received));
    (serve(router).await, received)
}

async fn deliver(State(received): State<Arc<Received>>, body: Bytes) -> StatusCode {
    received.requests.fetch_add(1, Ordering::Relaxed);
    if fastrand::u32(0..1000) < received.fail_per_mille {
        received.refused.fetch_add(1, Ordering::Relaxed);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let events = match body.get("events").and_then(|e| e.as_array()) {
        Some(events) => events.iter().collect(),
        None => vec![&body],
    };
    received
        .events
        .fetch_add(events.len() as u64, Ordering::Relaxed);
    if received.keep_ids {
        let mut ids = received.ids.lock().unwrap_or_else(PoisonError::into_inner);
        for event in events {
            if let Some(id) = event.get("id").and_then(|id| id.as_str()) {
                *ids.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
    StatusCode::OK
}

/// The cost floor of an ingest request: an endpoint that reads the body and answers as ferry
/// does, storing nothing.
pub async fn floor() -> SocketAddr {
    let router = Router::new().route(
        "/v1/batch",
        post(|body: Bytes| async move {
            std::hint::black_box(body.len());
            (
                [("content-type", "application/json")],
                r#"{"success":true}"#,
            )
        }),
    );
    serve(router).await
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// `/v1/batch` bodies of `size` track events (about 380 bytes each) with unique messageIds
/// `{run}-{batch:012}-{index:03}`. The body is built once; each batch only rewrites the digits
/// of its number, so the generator costs little next to the server.
pub struct Batches {
    template: Vec<u8>,
    slots: Vec<usize>,
    run: String,
    pub size: usize,
}

const SLOT: &str = "000000000000";

impl Batches {
    pub fn new(run: &str, size: usize) -> Batches {
        let mut template = String::from(r#"{"batch":["#);
        let mut slots = Vec::with_capacity(size);
        for index in 0..size {
            if index > 0 {
                template.push(',');
            }
            template.push_str(r#"{"type":"track","event":"Order Completed","userId":"user-"#);
            let _ = write!(template, "{:05}", index * 7919 % 100_000);
            template.push_str(r#"","messageId":""#);
            template.push_str(run);
            template.push('-');
            slots.push(template.len());
            template.push_str(SLOT);
            let _ = write!(template, "-{index:03}");
            template.push_str(concat!(
                r#"","timestamp":"2026-11-23T16:00:00.000Z","properties":{"order_id":"order-1","#,
                r#""revenue":42.5,"currency":"USD","coupon":"AUTUMN","products":[{"sku":"sku-1","#,
                r#""quantity":2,"price":21.25}]},"context":{"ip":"203.0.113.7","library":"#,
                r#"{"name":"analytics.js","version":"4.1.0"},"userAgent":"Mozilla/5.0 (X11; Linux x86_64)"}}"#,
            ));
        }
        template.push_str(r#"],"sentAt":"2026-11-23T16:00:00.000Z"}"#);
        Batches {
            template: template.into_bytes(),
            slots,
            run: run.to_owned(),
            size,
        }
    }

    /// The body of batch number `batch`.
    pub fn body(&self, batch: u64) -> Bytes {
        let mut body = self.template.clone();
        let digits = format!("{batch:012}");
        for &slot in &self.slots {
            body[slot..slot + SLOT.len()].copy_from_slice(digits.as_bytes());
        }
        Bytes::from(body)
    }

    /// The messageId of event `index` of batch `batch`.
    pub fn message_id(&self, batch: u64, index: usize) -> String {
        format!("{}-{batch:012}-{index:03}", self.run)
    }

    pub fn bytes_per_event(&self) -> usize {
        self.template.len() / self.size
    }
}

/// Posts batches to one address over a pool of keep-alive connections.
#[derive(Clone)]
pub struct Target {
    client: reqwest::Client,
    url: String,
    authorization: String,
}

impl Target {
    pub fn new(address: SocketAddr) -> Target {
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:"));
        Target {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            url: format!("http://{address}/v1/batch"),
            authorization: format!("Basic {credentials}"),
        }
    }

    /// Posts one body; `true` only when the events were acknowledged (200 `{"success":true}`).
    pub async fn post(&self, body: Bytes) -> bool {
        let sent = self
            .client
            .post(&self.url)
            .header("authorization", &self.authorization)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let Ok(response) = sent else { return false };
        if response.status() != reqwest::StatusCode::OK {
            return false;
        }
        response
            .bytes()
            .await
            .is_ok_and(|b| b.windows(14).any(|w| w == br#""success":true"#))
    }
}

/// What a closed-loop run achieved.
#[derive(Debug, Default)]
pub struct Run {
    /// The numbers of the batches acknowledged.
    pub acked: Vec<u64>,
    pub failed: u64,
    pub elapsed: Duration,
}

/// `connections` tasks each post the next batch as soon as the previous one is answered, until
/// `stop` is set. Batch numbers come from `next`, so runs on one `Batches` never repeat an id.
pub async fn closed_loop(
    target: &Target,
    batches: &Arc<Batches>,
    next: &Arc<AtomicU64>,
    connections: usize,
    stop: &Arc<AtomicBool>,
) -> Run {
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (target, batches, next, stop) = (
                target.clone(),
                Arc::clone(batches),
                Arc::clone(next),
                Arc::clone(stop),
            );
            tokio::spawn(async move {
                let mut run = Run::default();
                while !stop.load(Ordering::Relaxed) {
                    let batch = next.fetch_add(1, Ordering::Relaxed);
                    if target.post(batches.body(batch)).await {
                        run.acked.push(batch);
                    } else {
                        run.failed += 1;
                        // The server may be down: do not spin while it restarts.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                run
            })
        })
        .collect();
    let mut total = Run::default();
    for task in tasks {
        let run = task.await.expect("a generator task finishes");
        total.acked.extend(run.acked);
        total.failed += run.failed;
    }
    total.elapsed = started.elapsed();
    total
}

/// Runs [`closed_loop`] for `duration`.
pub async fn closed_loop_for(
    target: &Target,
    batches: &Arc<Batches>,
    next: &Arc<AtomicU64>,
    connections: usize,
    duration: Duration,
) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let run = closed_loop(target, batches, next, connections, &stop).await;
    stopper.await.expect("the timer finishes");
    run
}

/// What an open-loop run measured.
#[derive(Debug, Default)]
pub struct Paced {
    /// Acknowledgement latency of each acknowledged request, from the moment it was due (so a
    /// slow answer delays nobody's measurement: no coordinated omission).
    pub latencies: Vec<Duration>,
    pub failed: u64,
}

/// Posts one batch every `1 / per_second` seconds for `duration`, whatever the answers.
pub async fn open_loop(
    target: &Target,
    batches: &Arc<Batches>,
    next: &Arc<AtomicU64>,
    per_second: u32,
    duration: Duration,
) -> Paced {
    let interval = Duration::from_secs(1) / per_second;
    let count = u32::try_from(duration.as_nanos() / interval.as_nanos()).unwrap_or(u32::MAX);
    // Bodies are built before the clock starts.
    let bodies: Vec<Bytes> = (0..count)
        .map(|_| batches.body(next.fetch_add(1, Ordering::Relaxed)))
        .collect();
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let tasks: Vec<_> = bodies
        .into_iter()
        .enumerate()
        .map(|(n, body)| {
            let due = start + interval * u32::try_from(n).unwrap_or(u32::MAX);
            let target = target.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(due).await;
                let acked = target.post(body).await;
                acked.then(|| due.elapsed())
            })
        })
        .collect();
    let mut paced = Paced::default();
    for task in tasks {
        match task.await.expect("a paced request finishes") {
            Some(latency) => paced.latencies.push(latency),
            None => paced.failed += 1,
        }
    }
    paced
}

/// The value below which `share` of the sorted `values` fall.
pub fn percentile(sorted: &[Duration], share: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() as f64 * share).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// The median of `values`.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => f64::midpoint(values[n / 2 - 1], values[n / 2]),
    }
}
