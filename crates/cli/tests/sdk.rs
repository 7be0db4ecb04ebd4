//! The unmodified Segment and Amplitude Node SDKs (`tests/sdk/`) send to `ferry serve`, which
//! delivers to a small HTTP server on loopback playing Extole and Promoter; each test asserts
//! the exact requests that server received.
//!
//! The SDKs come from npm: `npm ci --prefix tests/sdk`. Without them these tests print a note
//! and pass, so that `cargo test --workspace` needs only Rust, unless
//! `FERRY_REQUIRE_SDK_TESTS=1` says they must run (CI sets it).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const WRITE_KEY: &str = "test-write-key";
const API_KEY: &str = "test-api-key";
const EXTOLE_TOKEN: &str = "secret-extole-key";
const PROMOTER_KEY: &str = "secret-promoter-key";

/// Deadlines are generous: a loaded two-core machine may be slow to start node or ferry, and
/// Extole's mapping paces its requests at one every 0.6 s.
const STARTUP: Duration = Duration::from_mins(1);
const SDK_RUN: Duration = Duration::from_mins(2);
const DELIVERY: Duration = Duration::from_secs(90);
const SHUTDOWN: Duration = Duration::from_mins(1);

/// Headers a destination depends on; the others (user agent, length) are left out of the
/// comparison.
const HEADERS: [&str; 3] = ["authorization", "content-type", "extole-app-type"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sdk_dir() -> PathBuf {
    workspace().join("tests/sdk")
}

/// Whether the SDKs are installed; panics when they must be and are not.
fn sdks_installed() -> bool {
    let modules = sdk_dir().join("node_modules");
    let installed = ["@segment/analytics-node", "@amplitude/analytics-node"]
        .iter()
        .all(|package| modules.join(package).join("package.json").is_file());
    if installed {
        return true;
    }
    assert!(
        std::env::var("FERRY_REQUIRE_SDK_TESTS").as_deref() != Ok("1"),
        "FERRY_REQUIRE_SDK_TESTS=1 but the SDKs are not installed in `{}`: run `npm ci --prefix tests/sdk`",
        modules.display()
    );
    eprintln!(
        "skipped: the SDK tests need Node.js and the SDKs; run `npm ci --prefix tests/sdk` to run them"
    );
    false
}

/// One request the destination server received.
struct Received {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Value,
}

impl Received {
    /// The request as JSON, with only the headers in `HEADERS`, for comparison.
    fn to_json(&self) -> Value {
        let headers: serde_json::Map<String, Value> = HEADERS
            .iter()
            .filter_map(|name| {
                let value = self.headers.get(*name)?;
                Some(((*name).to_owned(), Value::String(value.clone())))
            })
            .collect();
        json!({ "method": self.method, "path": self.path, "headers": headers, "body": self.body })
    }
}

/// A server on loopback that answers 200 to every request and records it.
struct Destination {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Destination {
    fn start() -> Destination {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || answer(stream, &seen));
            }
        });
        Destination { url, received }
    }

    fn count(&self) -> usize {
        self.received.lock().expect("not poisoned").len()
    }

    /// Waits until at least `count` requests arrived, or fails after `DELIVERY` with the log.
    fn wait_for(&self, count: usize, ferry: &Ferry) {
        let deadline = Instant::now() + DELIVERY;
        while self.count() < count {
            assert!(
                Instant::now() < deadline,
                "the destination got {} of {count} requests within {DELIVERY:?}; ferry's log:\n{}",
                self.count(),
                ferry.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().expect("not poisoned"))
    }
}

/// Reads HTTP/1.1 requests with a `content-length` body from one connection and answers each.
fn answer(stream: TcpStream, received: &Mutex<Vec<Received>>) {
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
        let mut headers = BTreeMap::new();
        loop {
            line.clear();
            reader.read_line(&mut line).expect("headers");
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length = headers
            .get("content-length")
            .map_or(0, |value| value.parse().expect("a length"));
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("the body");
        let body = serde_json::from_slice(&body).unwrap_or_else(|error| {
            Value::String(format!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&body)
            ))
        });
        received.lock().expect("not poisoned").push(Received {
            method,
            path,
            headers,
            body,
        });
        let text = r#"{"id":"ok"}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if out.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// `ferry serve` as a child process; killed when dropped if still running.
struct Ferry {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Ferry {
    /// Starts `ferry serve --config CONFIG` on a free port and waits until it listens.
    fn start(config: &Path) -> Ferry {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .current_dir(workspace())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ferry starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (listening, address) = mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Some((_, rest)) = line.split_once("listening on http://") {
                    let address: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                        .collect();
                    let _ = listening.send(address);
                }
                let mut log = lines.lock().expect("not poisoned");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut ferry = Ferry {
            child,
            url: String::new(),
            log,
        };
        // Disconnected: ferry exited (its stderr closed) before listening.
        let Ok(address) = address.recv_timeout(STARTUP) else {
            panic!(
                "ferry serve did not listen within {STARTUP:?}; its log:\n{}",
                ferry.log()
            )
        };
        ferry.url = format!("http://{address}");
        ferry
    }

    fn log(&self) -> String {
        self.log.lock().expect("not poisoned").clone()
    }

    /// Stops the server with SIGTERM, as a service manager does, and asserts it exits 0.
    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + SHUTDOWN;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("ferry's status") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "ferry serve did not exit within {SHUTDOWN:?} of SIGTERM; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "ferry serve exited with {status} after SIGTERM; its log:\n{}",
            self.log()
        );
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What one run of an SDK script printed, and whether it succeeded.
struct SdkRun {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `node tests/sdk/SCRIPT URL KEY`, killing it after `SDK_RUN`.
fn run_sdk(script: &str, url: &str, key: &str, dir: &Path) -> SdkRun {
    let stdout_path = dir.join(format!("{script}.stdout"));
    let stderr_path = dir.join(format!("{script}.stderr"));
    let mut child = Command::new("node")
        .arg(sdk_dir().join(script))
        .args([url, key])
        .current_dir(sdk_dir())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("a stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("a stderr file"))
        .spawn()
        .expect("node runs (the SDK tests need Node.js on PATH)");
    let deadline = Instant::now() + SDK_RUN;
    let status = loop {
        if let Some(status) = child.try_wait().expect("node's status") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "node {script} did not finish within {SDK_RUN:?}; its output:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    SdkRun {
        success: status.success(),
        stdout: std::fs::read_to_string(&stdout_path).expect("node's stdout"),
        stderr: std::fs::read_to_string(&stderr_path).expect("node's stderr"),
    }
}

/// A `ferry.yaml` whose Segment source feeds Extole and Promoter and whose Amplitude source
/// feeds Extole, all three sent to `destination`.
fn write_config(dir: &Path, destination: &str) -> PathBuf {
    let quote = |path: &Path| serde_json::to_string(&path.display().to_string()).expect("text");
    let config = format!(
        "version: 1
listen: 127.0.0.1:0
mappings: {mappings}
data: {data}
sources:
  web: {{ type: segment, keys: [{WRITE_KEY}] }}
  app: {{ type: amplitude, keys: [{API_KEY}] }}
connections:
  extole: {{ source: web, mapping: extole, settings: {{ api_key: {EXTOLE_TOKEN} }}, base_url: \"{destination}\" }}
  promoter: {{ source: web, mapping: promoter, settings: {{ api_key: {PROMOTER_KEY}, campaign_id: 7 }}, base_url: \"{destination}\" }}
  amp: {{ source: app, mapping: amplitude-extole, settings: {{ api_key: {EXTOLE_TOKEN} }}, base_url: \"{destination}\" }}
",
        mappings = quote(&workspace().join("mappings")),
        data = quote(&dir.join("data")),
    );
    let path = dir.join("ferry.yaml");
    std::fs::write(&path, config).expect("the config is written");
    path
}

fn extole(body: &Value) -> Value {
    json!({
        "method": "POST",
        "path": "/v6/events",
        "headers": {
            "authorization": format!("Bearer {EXTOLE_TOKEN}"),
            "content-type": "application/json",
            "extole-app-type": "ferry",
        },
        "body": body,
    })
}

fn promoter(path: &str, body: &Value) -> Value {
    json!({
        "method": "POST",
        "path": path,
        "headers": {
            "authorization": format!("Token {PROMOTER_KEY}"),
            "content-type": "application/json",
        },
        "body": body,
    })
}

/// Replaces the `event_time` of the request whose body's `event_name` is `name` with
/// `"(set by the SDK)"`, after checking it is an ISO-8601 UTC time within the test's run.
fn check_sdk_time(requests: &mut [Value], name: &str, started: SystemTime) {
    let request = requests
        .iter_mut()
        .find(|request| request["body"]["event_name"] == name)
        .unwrap_or_else(|| panic!("no request for {name}"));
    let time = &mut request["body"]["event_time"];
    let text = time
        .as_str()
        .unwrap_or_else(|| panic!("event_time of {name} is not text: {time}"));
    let millis = iso8601_millis(text)
        .unwrap_or_else(|| panic!("event_time of {name} is not ISO-8601 UTC: {text}"));
    let since = |at: SystemTime| {
        i64::try_from(
            at.duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_millis(),
        )
        .expect("a time in range")
    };
    let (earliest, latest) = (since(started) - 5_000, since(SystemTime::now()) + 5_000);
    assert!(
        (earliest..=latest).contains(&millis),
        "event_time of {name} ({text}) is not during the test"
    );
    *time = json!("(set by the SDK)");
}

/// Milliseconds since 1970 of `YYYY-MM-DDTHH:MM:SS.sssZ`.
fn iso8601_millis(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    if bytes.len() != shape.len()
        || !shape.bytes().zip(bytes).all(|(want, &got)| {
            if want == b'd' {
                got.is_ascii_digit()
            } else {
                want == got
            }
        })
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| text[range].parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second, milli) = (
        number(11..13)?,
        number(14..16)?,
        number(17..19)?,
        number(20..23)?,
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some((((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + milli)
}

/// Asserts that `actual` and `expected` hold the same requests, in any order: each connection
/// delivers in order, but the connections run side by side.
fn assert_same_requests(actual: &[Value], expected: &[Value]) {
    let mut left: Vec<&Value> = actual.iter().collect();
    let mut missing = Vec::new();
    for want in expected {
        match left.iter().position(|got| *got == want) {
            Some(found) => {
                left.remove(found);
            }
            None => missing.push(want),
        }
    }
    let pretty = |values: &[&Value]| {
        values
            .iter()
            .map(|value| serde_json::to_string_pretty(value).expect("JSON"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        missing.is_empty() && left.is_empty(),
        "expected but not received:\n{}\n\nreceived but not expected:\n{}",
        pretty(&missing),
        pretty(&left)
    );
}

#[test]
fn segment_sdk_events_reach_extole_and_promoter_as_their_mappings_say() {
    if !sdks_installed() {
        return;
    }
    let started = SystemTime::now();
    let dir = tempfile::tempdir().expect("a temp dir");
    let destination = Destination::start();
    let mut ferry = Ferry::start(&write_config(dir.path(), &destination.url));

    let run = run_sdk("segment.mjs", &ferry.url, WRITE_KEY, dir.path());
    assert!(
        run.success,
        "the Segment SDK reported a failure:\n{}{}\nferry's log:\n{}",
        run.stdout,
        run.stderr,
        ferry.log()
    );
    let expected = segment_expected();
    destination.wait_for(expected.len(), &ferry);
    ferry.stop();

    let mut actual: Vec<Value> = destination.take().iter().map(Received::to_json).collect();
    check_sdk_time(&mut actual, "Referral Shared", started);
    assert_same_requests(&actual, &expected);
}

/// What the calls in `tests/sdk/segment.mjs` become; see `mappings/extole.yaml` and
/// `mappings/promoter.yaml`. The page call becomes nothing.
fn segment_expected() -> Vec<Value> {
    let contact = json!({ "email": "ada@example.com", "campaign": 7 });
    let survey = |event: &str| {
        let mut body = contact.clone();
        body["attributes"] = json!({ "user_id": "u-1001", "event": event });
        promoter("/api/contacts/survey/", &body)
    };
    vec![
        extole(&json!({
            "event_name": "identify",
            "event_time": "2026-11-02T09:15:00.000Z",
            "data": {
                "partner_user_id": "u-1001",
                "email": "ada@example.com",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "partner_anonymous_id": "anon-77",
                "plan": "pro",
                "address": { "city": "London" },
            },
        })),
        extole(&json!({
            "event_name": "registration",
            "event_time": "2026-11-02T09:16:00.000Z",
            "data": { "partner_user_id": "u-1001", "method": "email" },
        })),
        extole(&json!({
            "event_name": "conversion",
            "event_time": "2026-11-02T09:17:30.250Z",
            "data": {
                "partner_user_id": "u-1001",
                "partner_conversion_id": "ord-5001",
                "cart_value": 42.5,
                "currency": "USD",
                "coupon": "WELCOME",
            },
        })),
        extole(&json!({
            "event_name": "Referral Shared",
            "event_time": "(set by the SDK)",
            "data": { "partner_user_id": "u-1001", "channel": "email" },
        })),
        promoter(
            "/api/contacts/",
            &json!({
                "email": "ada@example.com",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "attributes": { "user_id": "u-1001", "plan": "pro", "address_city": "London" },
            }),
        ),
        survey("Signed Up"),
        survey("Order Completed"),
        promoter(
            "/api/contacts/",
            &json!({
                "email": "ada@example.com",
                "attributes": {
                    "user_id": "u-1001",
                    "order_completed_at": "2026-11-02T09:17:30.250Z",
                    "order_completed_order_id": "ord-5001",
                    "order_completed_revenue": "42.5",
                    "order_completed_currency": "USD",
                    "order_completed_coupon": "WELCOME",
                },
            }),
        ),
        survey("Referral Shared"),
    ]
}

#[test]
fn amplitude_sdk_events_reach_extole_as_the_mapping_says() {
    if !sdks_installed() {
        return;
    }
    let started = SystemTime::now();
    let dir = tempfile::tempdir().expect("a temp dir");
    let destination = Destination::start();
    let mut ferry = Ferry::start(&write_config(dir.path(), &destination.url));

    let run = run_sdk("amplitude.mjs", &ferry.url, API_KEY, dir.path());
    assert!(
        run.success,
        "the Amplitude SDK reported a failure:\n{}{}\nferry's log:\n{}",
        run.stdout,
        run.stderr,
        ferry.log()
    );
    let expected = amplitude_expected();
    destination.wait_for(expected.len(), &ferry);
    ferry.stop();

    let mut actual: Vec<Value> = destination.take().iter().map(Received::to_json).collect();
    check_sdk_time(&mut actual, "Signup", started);
    assert_same_requests(&actual, &expected);
}

/// What the events in `tests/sdk/amplitude.mjs` become; see `mappings/amplitude-extole.yaml`.
fn amplitude_expected() -> Vec<Value> {
    vec![
        extole(&json!({
            "event_name": "Referral Completed",
            "event_time": "2025-11-20T10:00:00.123Z",
            "data": {
                "email": "ann@example.com",
                "partner_user_id": "88123",
                "user_properties": { "unique_id": 88123, "city": "Lisbon" },
                "groups": { "company": "Acme" },
                "plan": "premium",
                "amount": 49.9,
                "coupon_code": "FRIEND10",
            },
        })),
        extole(&json!({
            "event_name": "Purchase",
            "event_time": "2025-11-20T11:00:00.000Z",
            "data": {
                "email": "bob@example.com",
                "price": 12.5,
                "quantity": 2,
                "tags": ["gift", "sale"],
            },
        })),
        extole(&json!({
            "event_name": "Signup",
            "event_time": "(set by the SDK)",
            "data": { "email": "cy@example.com", "source": "ad" },
        })),
    ]
}

#[test]
fn segment_sdk_with_a_wrong_write_key_is_refused_and_nothing_is_delivered() {
    if !sdks_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let destination = Destination::start();
    let mut ferry = Ferry::start(&write_config(dir.path(), &destination.url));

    let run = run_sdk("segment.mjs", &ferry.url, "not-the-write-key", dir.path());
    assert!(
        !run.success,
        "the Segment SDK reported success with a wrong write key:\n{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("[401]"),
        "the Segment SDK did not report a 401:\n{}",
        run.stderr
    );
    ferry.stop();
    assert_eq!(
        destination.count(),
        0,
        "refused calls were delivered; ferry's log:\n{}",
        ferry.log()
    );
}

#[test]
fn amplitude_sdk_with_a_wrong_api_key_is_refused_and_nothing_is_delivered() {
    if !sdks_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let destination = Destination::start();
    let mut ferry = Ferry::start(&write_config(dir.path(), &destination.url));

    let run = run_sdk("amplitude.mjs", &ferry.url, "not-the-api-key", dir.path());
    assert!(
        !run.success,
        "the Amplitude SDK reported success with a wrong API key:\n{}",
        run.stdout
    );
    // Amplitude answers `{"code": 400, "error": "Invalid API key..."}`; the SDK reports the
    // code and the error for each event of the upload.
    assert_eq!(
        run.stderr.matches(": 400 Invalid API key").count(),
        3,
        "the Amplitude SDK did not report each event refused for its API key:\n{}",
        run.stderr
    );
    ferry.stop();
    assert_eq!(
        destination.count(),
        0,
        "refused events were delivered; ferry's log:\n{}",
        ferry.log()
    );
}
