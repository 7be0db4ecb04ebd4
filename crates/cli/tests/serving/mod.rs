//! Running `ferry serve` as a process, and a destination for it on loopback.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// A destination on loopback that records every request and answers with `status` (200 by
/// default), or 400 to bodies containing `refuse-me` while `refusing` is set.
pub struct Destination {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    refusing: Arc<std::sync::atomic::AtomicBool>,
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl Destination {
    pub fn start() -> Destination {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let destination = Destination {
            url,
            received: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            refusing: Arc::default(),
            delay_ms: Arc::default(),
        };
        let (received, status, refusing, delay) = (
            Arc::clone(&destination.received),
            Arc::clone(&destination.status),
            Arc::clone(&destination.refusing),
            Arc::clone(&destination.delay_ms),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (received, status, refusing, delay) = (
                    Arc::clone(&received),
                    Arc::clone(&status),
                    Arc::clone(&refusing),
                    Arc::clone(&delay),
                );
                std::thread::spawn(move || {
                    answer(stream, &received, &status, &refusing, &delay);
                });
            }
        });
        destination
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn refuse(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }

    pub fn delay(&self, delay: Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Waits until `done` holds for the requests received so far.
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

fn answer(
    stream: TcpStream,
    received: &Mutex<Vec<Received>>,
    status: &AtomicU16,
    refusing: &std::sync::atomic::AtomicBool,
    delay: &std::sync::atomic::AtomicU64,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("a stream"));
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        let code = if refusing.load(Ordering::SeqCst) && text.contains("refuse-me") {
            400
        } else {
            status.load(Ordering::SeqCst)
        };
        received.lock().unwrap().push(Received {
            method,
            path,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        });
        let wait = delay.load(Ordering::SeqCst);
        if wait > 0 {
            std::thread::sleep(Duration::from_millis(wait));
        }
        let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\n\r\n{{}}");
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A `ferry serve` process, killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `ferry serve --config CONFIG --listen 127.0.0.1:0` in `dir` and waits until it
    /// listens.
    pub fn start(dir: &Path, config: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(dir, config, extra, &[])
    }

    /// [`Server::start`] with environment variables set for the process.
    pub fn start_with_env(
        dir: &Path,
        config: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .envs(env.iter().copied())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ferry serve starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://")
                    && let Some(tx) = tx.take()
                {
                    let url = line[at + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(url);
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "ferry serve did not start listening:\n{}",
                    log.lock().unwrap()
                )
            });
        Server { child, url, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `HUP`, `KILL`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("the status") {
                // Let the log reader take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "ferry serve did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test mapping: every track becomes `POST /events` with a bearer key (a secret setting),
/// the event's id, user and a `version` constant that tests change to see reloads; the
/// messageId is its dedupe key, as in the bundled mappings.
pub fn sink_mapping(version: &str) -> String {
    format!(
        r#"version: 1
name: sink
source: segment
settings:
  key: {{ type: string, required: true, secret: true, description: API key }}
http:
  base_url: https://example.invalid
  auth: {{ bearer: "{{{{ settings.key }}}}" }}
delivery:
  retry: {{ max_attempts: 2, initial_backoff_ms: 5, max_backoff_ms: 20 }}
actions:
  track:
    when: {{ type: track }}
    request:
      method: POST
      path: /events
      body:
        id: {{ from: $.messageId, required: true }}
        user: {{ from: $.userId }}
        event: {{ from: $.event }}
        version: {{ value: "{version}" }}
    dedupe_key: {{ from: $.messageId }}
"#
    )
}

pub const SINK_KEY: &str = "sink-SECRET-key-0042";
pub const WRITE_KEY: &str = "write-key-1";

/// A folder with `mappings/sink.yaml` and a `ferry.yaml` sending the `web` source's events to
/// `destination`.
pub fn workspace(destination: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::create_dir(dir.path().join("mappings")).unwrap();
    std::fs::write(dir.path().join("mappings/sink.yaml"), sink_mapping("v1")).unwrap();
    let config = dir.path().join("ferry.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1
mappings: mappings
data: data
retry: {{ first_after_seconds: 1, at_most_every_seconds: 2 }}
sources:
  web: {{ type: segment, keys: [{WRITE_KEY}] }}
connections:
  sink:
    source: web
    mapping: sink
    settings: {{ key: '${{SINK_KEY}}' }}
    base_url: {destination}
"
        ),
    )
    .unwrap();
    (dir, config)
}

/// A Segment track event.
pub fn track(id: &str, user: &str) -> Value {
    serde_json::json!({"type": "track", "event": "Signed Up", "userId": user, "messageId": id})
}

/// Posts a Segment batch with the write key as Basic auth; the status and body.
pub fn post_batch(server: &str, events: &[Value]) -> (u16, String) {
    let body = serde_json::json!({ "batch": events }).to_string();
    let auth = base64_basic(WRITE_KEY);
    http(
        "POST",
        &format!("{server}/v1/batch"),
        &[("Authorization", &auth)],
        &body,
    )
}

fn base64_basic(key: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    format!("Basic {encoded}")
}

/// One HTTP/1.1 request over a new connection; the status and body.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host).expect("the server accepts connections");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, decode_chunked(&body))
}

/// The body of a chunked response, or the body as it is.
fn decode_chunked(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, tail)) = rest.split_once("\r\n") else {
            return body.to_owned();
        };
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_owned();
        };
        if size == 0 {
            return out;
        }
        if tail.len() < size {
            return body.to_owned();
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
}
