//! Load generators: Segment `/v1/batch` bodies with unique messageIds, a closed loop (as fast
//! as acknowledged) and an open loop (requests at fixed times, each timed from when it was
//! due), and the cost floor of an ingest request on this machine.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use bytes::Bytes;

use super::workspace::WRITE_KEY;

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
    /// Where each event's 5-digit user number sits, and how many users there are (0: each
    /// index keeps its own user, the same in every batch).
    user_slots: Vec<usize>,
    users: u64,
    run: String,
    pub size: usize,
}

const SLOT: &str = "000000000000";

impl Batches {
    pub fn new(run: &str, size: usize) -> Batches {
        Batches::with_users(run, size, 0)
    }

    /// [`Batches::new`] whose events go round `users` users (`user-00000` ...), event `n` of
    /// the run (batch x size + index) being about user `n % users`.
    pub fn with_users(run: &str, size: usize, users: u64) -> Batches {
        let mut template = String::from(r#"{"batch":["#);
        let mut slots = Vec::with_capacity(size);
        let mut user_slots = Vec::with_capacity(size);
        for index in 0..size {
            if index > 0 {
                template.push(',');
            }
            template.push_str(r#"{"type":"track","event":"Order Completed","userId":"user-"#);
            user_slots.push(template.len());
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
            user_slots,
            users,
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
        if self.users > 0 {
            for (index, &slot) in self.user_slots.iter().enumerate() {
                let user = (batch * self.size as u64 + index as u64) % self.users;
                body[slot..slot + 5].copy_from_slice(format!("{user:05}").as_bytes());
            }
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
        Target {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            url: format!("http://{address}/v1/batch"),
            authorization: super::client::basic(WRITE_KEY),
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
        .map(|_| poster(target, batches, next, stop, Duration::ZERO))
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

/// One task posting the next batch to `target` until `stop` is set, waiting `pace` after each
/// answer (nothing, for a closed loop), and at least 20 ms after a failure: the server may be
/// down, and must not be spun on while it restarts.
pub fn poster(
    target: &Target,
    batches: &Arc<Batches>,
    next: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
    pace: Duration,
) -> tokio::task::JoinHandle<Run> {
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
            let wait = if target.post(batches.body(batch)).await {
                run.acked.push(batch);
                pace
            } else {
                run.failed += 1;
                pace.max(Duration::from_millis(20))
            };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        run
    })
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
