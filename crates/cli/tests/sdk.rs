//! The unmodified Segment and Amplitude Node SDKs (`tests/sdk/`) send to `ferry serve`, which
//! delivers to a small HTTP server on loopback playing Extole and Promoter; each test asserts
//! the exact requests that server received.
//!
//! The SDKs come from npm: `npm ci --prefix tests/sdk`. Without them these tests print a note
//! and pass, so that `cargo test --workspace` needs only Rust, unless
//! `FERRY_REQUIRE_SDK_TESTS=1` says they must run (CI sets it).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::ferry::{Start, free_address};
use support::node::{self, NodeRun};
use support::{Destination, Ferry, Received};

const WRITE_KEY: &str = "test-write-key";
const API_KEY: &str = "test-api-key";
const EXTOLE_TOKEN: &str = "secret-extole-key";
const PROMOTER_KEY: &str = "secret-promoter-key";

/// Deadlines are generous: a loaded two-core machine may be slow to start node or ferry, and
/// Extole's mapping paces its requests at one every 0.6 s.
const SDK_RUN: Duration = Duration::from_mins(2);
const DELIVERY: Duration = Duration::from_secs(90);

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

/// A request as JSON, with only the headers in `HEADERS`, for comparison.
fn comparable(request: &Received) -> Value {
    let headers: serde_json::Map<String, Value> = HEADERS
        .iter()
        .filter_map(|name| {
            let value = request.header(name)?;
            Some(((*name).to_owned(), Value::String(value.to_owned())))
        })
        .collect();
    json!({ "method": request.method, "path": request.path, "headers": headers, "body": request.body })
}

/// Starts `ferry serve` with `config` (in a folder of its own, which also gets the log) and
/// waits until it is ready.
fn start_ferry(config: &Path) -> Ferry {
    start_node(config, "ferry.log")
}

/// [`start_ferry`] logging to `log`, beside the configuration: one of several nodes.
fn start_node(config: &Path, log: &str) -> Ferry {
    Ferry::start_with(Start {
        binary: support::ferry::binary().to_path_buf(),
        dir: workspace(),
        config: config.to_path_buf(),
        log: config.with_file_name(log),
        address: free_address(),
        args: Vec::new(),
        env: Vec::new(),
        log_level: "info".to_owned(),
        https: false,
    })
}

/// Stops the server with SIGTERM, as a service manager does, asserts it exits 0, and returns
/// its log.
fn stop(ferry: Ferry) -> String {
    let (status, log) = ferry.terminate();
    assert!(
        status.success(),
        "ferry serve exited with {status} after SIGTERM; its log:\n{log}"
    );
    log
}

/// Waits until the destination got `count` requests.
fn wait_for(destination: &Destination, count: usize, ferry: &Ferry) {
    let deadline = Instant::now() + DELIVERY;
    while destination.received().len() < count {
        assert!(
            Instant::now() < deadline,
            "the destination got {} of {count} requests within {DELIVERY:?}; ferry's log:\n{}",
            destination.received().len(),
            ferry.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `node tests/sdk/SCRIPT URL KEY`, killing it after `SDK_RUN`.
fn run_sdk(script: &str, url: &str, key: &str, dir: &Path) -> NodeRun {
    let path = sdk_dir().join(script);
    let path = path.to_str().expect("a UTF-8 path");
    node::run(script, &[path, url, key], &[], &sdk_dir(), dir, SDK_RUN)
}

/// A `ferry.yaml` whose Segment source feeds Extole and Promoter and whose Amplitude source
/// feeds Extole, all three sent to `destination`.
fn write_config(dir: &Path, destination: &str) -> PathBuf {
    write_config_on(dir, destination, None)
}

/// [`write_config`] with `store` as the `store:` of the file (NATS JetStream, say); each
/// connection is then `ordered: true`, so that a user's events are mapped one after another,
/// whichever node receives them (Promoter's mapping reads what the user's identify remembered).
fn write_config_on(dir: &Path, destination: &str, store: Option<&str>) -> PathBuf {
    let (store, ordered) = match store {
        Some(store) => (format!("store: {store}\n"), ", ordered: true"),
        None => (String::new(), ""),
    };
    let quote = |path: &Path| serde_json::to_string(&path.display().to_string()).expect("text");
    let config = format!(
        "version: 1
listen: 127.0.0.1:0
mappings: {mappings}
data: {data}
{store}sources:
  web: {{ type: segment, keys: [{WRITE_KEY}] }}
  app: {{ type: amplitude, keys: [{API_KEY}] }}
connections:
  extole: {{ source: web, mapping: extole, settings: {{ api_key: {EXTOLE_TOKEN} }}, base_url: \"{destination}\"{ordered} }}
  promoter: {{ source: web, mapping: promoter, settings: {{ api_key: {PROMOTER_KEY}, campaign_id: 7 }}, base_url: \"{destination}\"{ordered} }}
  amp: {{ source: app, mapping: amplitude-extole, settings: {{ api_key: {EXTOLE_TOKEN} }}, base_url: \"{destination}\"{ordered} }}
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

/// Runs the SDK script `script` with `key` against a fresh `ferry serve`, and asserts the
/// destination received exactly `expected`; `timed` names the event whose time the SDK sets.
fn delivers(script: &str, key: &str, expected: &[Value], timed: &str) {
    if !sdks_installed() {
        return;
    }
    let started = SystemTime::now();
    let dir = tempfile::tempdir().expect("a temp dir");
    let destination = Destination::start();
    let ferry = start_ferry(&write_config(dir.path(), &destination.url));

    let run = run_sdk(script, &ferry.url, key, dir.path());
    assert!(
        run.status.success(),
        "`{script}` reported a failure:\n{}{}\nferry's log:\n{}",
        run.stdout,
        run.stderr,
        ferry.log()
    );
    wait_for(&destination, expected.len(), &ferry);
    stop(ferry);

    let mut actual: Vec<Value> = destination.received().iter().map(comparable).collect();
    check_sdk_time(&mut actual, timed, started);
    assert_same_requests(&actual, expected);
}

/// [`delivers`] against two `ferry serve` nodes sharing a three-node JetStream cluster whose
/// streams have three replicas; the SDK sends to the first node.
fn delivers_on_jetstream(script: &str, key: &str, expected: &[Value], timed: &str) {
    if !sdks_installed() {
        return;
    }
    let Some(cluster) = support::nats::cluster() else {
        return;
    };
    let started = SystemTime::now();
    let dir = tempfile::tempdir().expect("a temp dir");
    let destination = Destination::start();
    let store = support::nats::store(&cluster.urls(), 3);
    let config = write_config_on(dir.path(), &destination.url, Some(&store));
    let (a, b) = (
        start_node(&config, "ferry-a.log"),
        start_node(&config, "ferry-b.log"),
    );

    let run = run_sdk(script, &a.url, key, dir.path());
    assert!(
        run.status.success(),
        "`{script}` reported a failure:\n{}{}\nferry's log:\n{}",
        run.stdout,
        run.stderr,
        a.log()
    );
    wait_for(&destination, expected.len(), &a);
    let logs = format!("node a:\n{}\nnode b:\n{}", stop(a), stop(b));

    let mut actual: Vec<Value> = destination.received().iter().map(comparable).collect();
    check_sdk_time(&mut actual, timed, started);
    assert!(
        actual.len() == expected.len(),
        "{} requests for {} expected; logs:\n{logs}",
        actual.len(),
        expected.len()
    );
    assert_same_requests(&actual, expected);
}

/// Runs the SDK script `script` with a key ferry does not know, checks what the SDK reported
/// with `reported`, and asserts nothing was delivered.
fn refused(script: &str, key: &str, reported: impl Fn(&NodeRun)) {
    if !sdks_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let destination = Destination::start();
    let ferry = start_ferry(&write_config(dir.path(), &destination.url));
    let run = run_sdk(script, &ferry.url, key, dir.path());
    assert!(
        !run.status.success(),
        "`{script}` reported success with a wrong key:\n{}",
        run.stdout
    );
    reported(&run);
    let log = stop(ferry);
    assert_eq!(
        destination.received().len(),
        0,
        "refused events were delivered; ferry's log:\n{log}"
    );
}

#[test]
fn segment_sdk_events_reach_extole_and_promoter_as_their_mappings_say() {
    delivers(
        "segment.mjs",
        WRITE_KEY,
        &segment_expected(),
        "Referral Shared",
    );
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
fn segment_sdk_events_reach_extole_and_promoter_through_two_nodes_on_jetstream() {
    delivers_on_jetstream(
        "segment.mjs",
        WRITE_KEY,
        &segment_expected(),
        "Referral Shared",
    );
}

#[test]
fn amplitude_sdk_events_reach_extole_through_two_nodes_on_jetstream() {
    delivers_on_jetstream("amplitude.mjs", API_KEY, &amplitude_expected(), "Signup");
}

#[test]
fn amplitude_sdk_events_reach_extole_as_the_mapping_says() {
    delivers("amplitude.mjs", API_KEY, &amplitude_expected(), "Signup");
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
    refused("segment.mjs", "not-the-write-key", |run| {
        assert!(
            run.stderr.contains("[401]"),
            "the Segment SDK did not report a 401:\n{}",
            run.stderr
        );
    });
}

#[test]
fn amplitude_sdk_with_a_wrong_api_key_is_refused_and_nothing_is_delivered() {
    refused("amplitude.mjs", "not-the-api-key", |run| {
        // Amplitude answers `{"code": 400, "error": "Invalid API key..."}`; the SDK reports the
        // code and the error for each event of the upload.
        assert_eq!(
            run.stderr.matches(": 400 Invalid API key").count(),
            3,
            "the Amplitude SDK did not report each event refused for its API key:\n{}",
            run.stderr
        );
    });
}
