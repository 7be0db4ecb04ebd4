//! A destination on loopback, in its own thread and runtime so that blocking tests and async
//! ones can use it alike: it records what it receives and answers as a test tells it to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde_json::Value;

/// A request the destination received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the destination keeps of each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Every request in full (method, path, headers, body).
    Requests,
    /// How many times each event id arrived (`id` of the body, or of each of its `events`).
    Ids,
    /// Counts only: the cheapest, for benchmarks.
    Counts,
}

#[derive(Debug)]
struct Behaviour {
    keep: Keep,
    requests: Mutex<Vec<Received>>,
    ids: Mutex<HashMap<String, u32>>,
    /// Every answer has this status unless a rule below applies.
    status: AtomicU16,
    /// Bodies containing `refuse-me` get a 400.
    refusing: AtomicBool,
    /// Requests answered 503 at random, out of 1000.
    fail_per_mille: AtomicU32,
    /// Requests answered 429 at random, out of 1000.
    limit_per_mille: AtomicU32,
    /// The ids of delivered events in the order their requests arrived ([`Keep::Ids`] and
    /// [`Keep::Requests`]).
    delivered: Mutex<Vec<String>>,
    /// Every answer waits this long.
    delay_ms: AtomicU64,
    /// Bodies containing this text wait `hold_ms` before their answer.
    hold: Mutex<Option<(String, Duration)>>,
    count_requests: AtomicU64,
    count_refused: AtomicU64,
    count_events: AtomicU64,
}

/// The destination; it stops when dropped.
pub struct Destination {
    pub url: String,
    pub address: SocketAddr,
    behaviour: Arc<Behaviour>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Destination {
    /// A destination that keeps every request.
    pub fn start() -> Destination {
        Destination::keeping(Keep::Requests)
    }

    pub fn keeping(keep: Keep) -> Destination {
        let behaviour = Arc::new(Behaviour {
            keep,
            requests: Mutex::default(),
            ids: Mutex::default(),
            status: AtomicU16::new(200),
            refusing: AtomicBool::new(false),
            fail_per_mille: AtomicU32::new(0),
            limit_per_mille: AtomicU32::new(0),
            delivered: Mutex::default(),
            delay_ms: AtomicU64::new(0),
            hold: Mutex::new(None),
            count_requests: AtomicU64::new(0),
            count_refused: AtomicU64::new(0),
            count_events: AtomicU64::new(0),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking socket");
        let address = listener.local_addr().expect("a bound address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&behaviour));
        std::thread::Builder::new()
            .name("test-destination".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    let _ = axum::serve(listener, router)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .expect("the destination thread starts");
        Destination {
            url: format!("http://{address}"),
            address,
            behaviour,
            stop: Some(stop),
        }
    }

    /// Every request kept so far ([`Keep::Requests`]).
    pub fn received(&self) -> Vec<Received> {
        lock(&self.behaviour.requests).clone()
    }

    /// How many times each id arrived ([`Keep::Ids`] or [`Keep::Requests`]).
    pub fn ids(&self) -> HashMap<String, u32> {
        lock(&self.behaviour.ids).clone()
    }

    /// The ids of delivered events, in the order their requests arrived (repeats included).
    pub fn delivered_in_order(&self) -> Vec<String> {
        lock(&self.behaviour.delivered).clone()
    }

    /// Requests received, refused on purpose, and events received.
    pub fn requests(&self) -> u64 {
        self.behaviour.count_requests.load(Ordering::Relaxed)
    }

    pub fn refused(&self) -> u64 {
        self.behaviour.count_refused.load(Ordering::Relaxed)
    }

    pub fn events(&self) -> u64 {
        self.behaviour.count_events.load(Ordering::Relaxed)
    }

    /// Answers 400 to bodies containing `refuse-me` while set.
    pub fn refuse(&self, refusing: bool) {
        self.behaviour.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Answers every request with `status` (200 at first).
    pub fn answer_with(&self, status: u16) {
        self.behaviour.status.store(status, Ordering::SeqCst);
    }

    /// Answers this share of requests, out of 1000 and at random, with 503.
    pub fn fail_per_mille(&self, share: u32) {
        self.behaviour.fail_per_mille.store(share, Ordering::SeqCst);
    }

    /// Answers this share of requests, out of 1000 and at random, with 429 (after the 503s).
    pub fn limit_per_mille(&self, share: u32) {
        self.behaviour
            .limit_per_mille
            .store(share, Ordering::SeqCst);
    }

    /// Waits this long before every answer.
    pub fn delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.behaviour.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Holds the answer to bodies containing `text` for `wait` (none once `None`).
    pub fn hold(&self, rule: Option<(&str, Duration)>) {
        *lock(&self.behaviour.hold) = rule.map(|(text, wait)| (text.to_owned(), wait));
    }

    /// Waits (at most a minute) until `done` holds for the requests kept so far.
    pub fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received {} requests: {:?}",
                received.len(),
                received.iter().map(|r| &r.body).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Destination {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn answer(State(behaviour): State<Arc<Behaviour>>, request: Request) -> StatusCode {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST;
    };
    behaviour.count_requests.fetch_add(1, Ordering::Relaxed);
    let status = choose(&behaviour, &body);
    record(&behaviour, &parts, &body, status.is_success());
    let delay = behaviour.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let held = lock(&behaviour.hold)
        .as_ref()
        .filter(|(text, _)| contains(&body, text.as_bytes()))
        .map(|(_, wait)| *wait);
    if let Some(wait) = held {
        tokio::time::sleep(wait).await;
    }
    status
}

fn choose(behaviour: &Behaviour, body: &Bytes) -> StatusCode {
    if behaviour.refusing.load(Ordering::SeqCst) && contains(body, b"refuse-me") {
        behaviour.count_refused.fetch_add(1, Ordering::Relaxed);
        return StatusCode::BAD_REQUEST;
    }
    let share = behaviour.fail_per_mille.load(Ordering::SeqCst);
    if share > 0 && fastrand::u32(0..1000) < share {
        behaviour.count_refused.fetch_add(1, Ordering::Relaxed);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let share = behaviour.limit_per_mille.load(Ordering::SeqCst);
    if share > 0 && fastrand::u32(0..1000) < share {
        behaviour.count_refused.fetch_add(1, Ordering::Relaxed);
        return StatusCode::TOO_MANY_REQUESTS;
    }
    StatusCode::from_u16(behaviour.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK)
}

/// Keeps what `keep` asks of a request: every request in full (refused ones too: tests look at
/// every attempt), and ids and counts of the delivered ones.
fn record(behaviour: &Behaviour, parts: &axum::http::request::Parts, body: &Bytes, ok: bool) {
    if behaviour.keep == Keep::Counts {
        if !ok {
            return;
        }
        // Only the number of events: a batch body `{"events": [...]}` or one event.
        let events = count_events(body);
        behaviour.count_events.fetch_add(events, Ordering::Relaxed);
        return;
    }
    let value: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    let events: Vec<&Value> = match value.get("events").and_then(Value::as_array) {
        Some(events) => events.iter().collect(),
        None => vec![&value],
    };
    if ok {
        behaviour
            .count_events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        let mut ids = lock(&behaviour.ids);
        let mut delivered = lock(&behaviour.delivered);
        for event in &events {
            if let Some(id) = event.get("id").and_then(Value::as_str) {
                *ids.entry(id.to_owned()).or_default() += 1;
                delivered.push(id.to_owned());
            }
        }
    }
    if behaviour.keep == Keep::Requests {
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        lock(&behaviour.requests).push(Received {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string),
            headers,
            body: value,
        });
    }
}

/// Events in a body without parsing it whole: the ids the test mapping writes.
fn count_events(body: &[u8]) -> u64 {
    let ids = body.windows(5).filter(|w| w == b"\"id\":").count() as u64;
    ids.max(1)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
