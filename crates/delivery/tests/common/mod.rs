//! Test helpers: fast rules, a sample request, and a tiny HTTP/1.1 server for what wiremock
//! cannot do (hang, close without answering, count requests in flight, time arrivals).

#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_delivery::{Method, Outgoing, Rules};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Rules with millisecond backoffs so retries are quick.
pub fn fast_rules() -> Rules {
    Rules {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_total: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..Rules::default()
    }
}

pub const BODY: &str = r#"{"email":"ada@example.com","points":42}"#;

/// A POST as the engine would render it, with a key that must reach the server untouched.
pub fn track(url: &str) -> Outgoing {
    Outgoing::new(Method::POST, url)
        .with_header("Content-Type", "application/json")
        .with_header("Authorization", "Bearer test-key")
        .with_body(BODY)
}

/// What the raw server does with the n-th request it reads (counting from 0).
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Reads the request and never answers.
    Hang,
    /// Reads the request and closes the connection without a byte of answer.
    Close,
    /// Answers after `delay`.
    Respond {
        status: u16,
        delay: Duration,
        body: &'static str,
    },
}

pub fn ok() -> Behaviour {
    Behaviour::Respond {
        status: 200,
        delay: Duration::ZERO,
        body: r#"{"message":"success"}"#,
    }
}

#[derive(Debug, Default)]
pub struct Seen {
    pub requests: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// When each request's head was read.
    pub arrivals: Mutex<Vec<Instant>>,
    /// Each request in full: head and body.
    pub raw: Mutex<Vec<String>>,
}

impl Seen {
    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn arrivals(&self) -> Vec<Instant> {
        let mut arrivals = self.arrivals.lock().unwrap().clone();
        arrivals.sort();
        arrivals
    }

    pub fn raw(&self) -> Vec<String> {
        self.raw.lock().unwrap().clone()
    }
}

/// A loopback HTTP/1.1 server with keep-alive, stopped (with every connection) when dropped.
pub struct RawServer {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    tasks: JoinSet<()>,
}

impl RawServer {
    pub async fn start(plan: impl Fn(usize) -> Behaviour + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let plan = Arc::new(plan);
        let mut tasks = JoinSet::new();
        let accept_seen = Arc::clone(&seen);
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let seen = Arc::clone(&accept_seen);
                let plan = Arc::clone(&plan);
                connections.spawn(async move { serve(stream, &seen, &*plan).await });
            }
        });
        Self { addr, seen, tasks }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

async fn serve(
    mut stream: TcpStream,
    seen: &Seen,
    plan: &(dyn Fn(usize) -> Behaviour + Send + Sync),
) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let n = seen.requests.fetch_add(1, Ordering::SeqCst);
        seen.arrivals.lock().unwrap().push(Instant::now());
        seen.raw.lock().unwrap().push(request);
        match plan(n) {
            Behaviour::Hang => {
                tokio::time::sleep(Duration::from_hours(1)).await;
                return;
            }
            Behaviour::Close => return,
            Behaviour::Respond {
                status,
                delay,
                body,
            } => {
                let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                seen.in_flight.fetch_sub(1, Ordering::SeqCst);
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads one request (head and `content-length` body); `None` when the client closed.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let total = end + 4 + length;
            while buffer.len() < total {
                let read = stream.read(&mut chunk).await.ok()?;
                if read == 0 {
                    return None;
                }
                buffer.extend_from_slice(&chunk[..read]);
            }
            let request = String::from_utf8_lossy(&buffer[..total]).into_owned();
            buffer.drain(..total);
            return Some(request);
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
