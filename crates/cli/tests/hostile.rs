//! A running `ferry serve` under well over a hundred hostile or malformed requests, sent by a
//! client that holds a (public) write key: bodies that used to panic a handler, numbers and
//! strings the borrowed parser skips over, shared contexts meant to multiply what is stored,
//! bombs, lies about lengths and encodings, slow clients, abused headers and paths. The server
//! must answer every request it reads, stay up, store the good events of a batch that also
//! holds bad ones, and deliver or dead-letter every event it acknowledged.

// The requests are tables, and the test one story: each reads best whole.
#![allow(clippy::too_many_lines)]

mod support;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::client::{basic, raw};
use support::destination::Keep;
use support::{Destination, Ferry, WRITE_KEY, Workspace, WorkspaceOptions, http};

/// One request and what the test knows of it.
struct Hostile {
    name: String,
    bytes: Vec<u8>,
    /// Event ids inside it that must be delivered if it is acknowledged.
    good: Vec<String>,
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn segment(name: &str, call: &str, body: &str, good: &[&str]) -> Hostile {
    let auth = basic(WRITE_KEY);
    Hostile {
        name: name.to_owned(),
        bytes: request(
            "POST",
            &format!("/v1/{call}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        ),
        good: good.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn other(name: &str, bytes: Vec<u8>) -> Hostile {
    Hostile {
        name: name.to_owned(),
        bytes,
        good: Vec::new(),
    }
}

fn good_event(id: &str) -> String {
    json!({"type": "track", "event": "Good", "userId": "ann", "messageId": id}).to_string()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Requests that used to panic a handler: the path's call differs from the body's type, or
/// `receivedAt` is null, so the event is rebuilt, and its text holds what the borrowed probe
/// skipped over.
fn rebuilt_events(deep: &str, all: &mut Vec<Hostile>) {
    for call in ["track", "identify", "page", "screen", "group", "alias"] {
        for (what, props) in [
            ("huge-number", r#"{"x":1e400}"#.to_owned()),
            ("deep-nesting", format!(r#"{{"d":{deep}}}"#)),
            ("lone-surrogate", r#"{"s":"\ud800"}"#.to_owned()),
        ] {
            let body = format!(
                r#"{{"type":"delete","event":"e","userId":"u","receivedAt":null,"messageId":"p-{call}-{what}","properties":{props}}}"#
            );
            all.push(segment(&format!("{call}: {what}"), call, &body, &[]));
        }
    }
}

/// Good calls, single and batched, that carry their write key, huge numbers and odd but valid
/// text; and batches that mix good events with bad ones, with and without a shared context.
fn good_and_mixed(deep: &str, all: &mut Vec<Hostile>) {
    for n in 0..12 {
        let id = format!("single-{n}");
        let body = format!(
            r#"{{"writeKey":"{WRITE_KEY}","type":"track","event":"Good","userId":"ann","messageId":"{id}","properties":{{"v":123456789012345678901234567890,"t":"\u2028\ud83d\ude00"}}}}"#
        );
        let (call, body) = if n % 2 == 0 {
            ("track", body)
        } else {
            ("batch", format!(r#"{{"batch":[{body}]}}"#))
        };
        all.push(segment(
            &format!("good call {n} with a write key"),
            call,
            &body,
            &[&id],
        ));
    }
    for n in 0..12 {
        let ids = [
            format!("mix-{n}-a"),
            format!("mix-{n}-b"),
            format!("mix-{n}-c"),
        ];
        // Each carries the write key, as some SDKs put it in every event.
        let bad = match n % 4 {
            0 => format!(
                r#"{{"type":"track","event":"e","userId":"u","receivedAt":null,"writeKey":"{WRITE_KEY}","properties":{deep}}}"#
            ),
            1 => format!(
                r#"{{"writeKey":"{WRITE_KEY}","type":"track","event":"e","userId":"u","context":{{"own":"\udfff"}}}}"#
            ),
            2 => format!(
                r#"{{"type":"track","event":"e","userId":{{"not":"an id"}},"writeKey":"{WRITE_KEY}"}}"#
            ),
            _ => format!(r#"{{"writeKey":"{WRITE_KEY}","type":"launch","userId":"u"}}"#),
        };
        let context = if n % 2 == 0 {
            r#""context":{"n":1e400,"ip":"1.2.3.4"},"#
        } else {
            ""
        };
        let body = format!(
            r#"{{{context}"writeKey":"{WRITE_KEY}","batch":[{},{bad},{},{{"type":"track","event":"own ctx","userId":"u","messageId":"{}","context":{{"own":1}}}}]}}"#,
            good_event(&ids[0]),
            good_event(&ids[1]),
            ids[2],
        );
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        all.push(segment(&format!("mixed batch {n}"), "batch", &body, &ids));
    }
}

/// Shared contexts meant to multiply what one request stores, and bodies that are not what
/// they claim to be.
fn bad_bodies(deep: &str, all: &mut Vec<Hostile>) {
    for (pad, events) in [
        (40_000, 2_400),
        (10_000, 2_400),
        (400_000, 50),
        (1_000, 400),
        (100, 2_000),
    ] {
        let page = json!({"type": "page", "userId": "u"});
        let body = json!({"context": {"pad": "x".repeat(pad)}, "batch": vec![page; events]});
        all.push(segment(
            &format!("context of {pad} bytes x {events}"),
            "batch",
            &body.to_string(),
            &[],
        ));
    }
    for (name, call, body) in [
        ("empty", "track", String::new()),
        ("not json", "track", "hello".to_owned()),
        (
            "truncated",
            "batch",
            r#"{"batch":[{"type":"track""#.to_owned(),
        ),
        ("an array", "batch", "[1,2,3]".to_owned()),
        ("a string", "track", r#""batch""#.to_owned()),
        (
            "batch not a list",
            "batch",
            r#"{"batch":{"a":1}}"#.to_owned(),
        ),
        (
            "context not an object",
            "batch",
            r#"{"context":[1],"batch":[]}"#.to_owned(),
        ),
        (
            "duplicate keys",
            "track",
            r#"{"type":"track","type":"identify","userId":"u","event":"e"}"#.to_owned(),
        ),
        (
            "trailing garbage",
            "track",
            r#"{"userId":"u","event":"e"} trailing"#.to_owned(),
        ),
        (
            "a nul byte",
            "track",
            "{\"userId\":\"u\u{0}\",\"event\":\"e\"}".to_owned(),
        ),
        (
            "a byte order mark",
            "track",
            "\u{feff}{\"userId\":\"u\",\"event\":\"e\"}".to_owned(),
        ),
        (
            "a deep envelope",
            "batch",
            format!(r#"{{"batch":[],"x":{deep}}}"#),
        ),
        (
            "a long messageId",
            "track",
            json!({"userId": "u", "event": "e", "messageId": "m".repeat(500)}).to_string(),
        ),
        (
            "a numeric messageId",
            "track",
            r#"{"userId":"u","event":"e","messageId":12}"#.to_owned(),
        ),
        (
            "a numeric type",
            "batch",
            r#"{"batch":[{"type":7,"userId":"u"}]}"#.to_owned(),
        ),
        (
            "no type in a batch",
            "batch",
            r#"{"batch":[{"userId":"u","event":"e"}]}"#.to_owned(),
        ),
    ] {
        all.push(segment(name, call, &body, &[]));
    }
    let auth = basic(WRITE_KEY);
    let key: &[(&str, &str)] = &[("Authorization", &auth)];
    let gzipped: &[(&str, &str)] = &[("Authorization", &auth), ("Content-Encoding", "gzip")];
    all.push(other(
        "invalid UTF-8",
        request(
            "POST",
            "/v1/track",
            key,
            b"{\"userId\":\"\xff\xfe\",\"event\":\"e\"}",
        ),
    ));
    let single = json!({"userId": "u", "event": "e", "p": "x".repeat(40_000)}).to_string();
    all.push(other(
        "a single call over 32 KB",
        request("POST", "/v1/track", key, single.as_bytes()),
    ));
    let batch = json!({"batch": [], "p": "x".repeat(600_000)}).to_string();
    all.push(other(
        "a batch over 500 KB",
        request("POST", "/v1/batch", key, batch.as_bytes()),
    ));
    all.push(other(
        "a body over the raw limit",
        request("POST", "/v1/batch", key, &vec![b' '; 2 * 1024 * 1024]),
    ));
    all.push(other(
        "a gzip bomb",
        request(
            "POST",
            "/v1/batch",
            gzipped,
            &gzip(&vec![b' '; 64 * 1024 * 1024]),
        ),
    ));
    all.push(other(
        "gzip that is not gzip",
        request("POST", "/v1/batch", gzipped, b"plain text"),
    ));
    let unknown: &[(&str, &str)] = &[
        ("Authorization", &auth),
        ("Content-Encoding", "br;q=1, zstd"),
    ];
    all.push(other(
        "an unknown encoding",
        request("POST", "/v1/batch", unknown, b"{}"),
    ));
}

/// Keys, paths, the other wire formats, and abuse of HTTP's own framing.
fn bad_requests(deep: &str, all: &mut Vec<Hostile>) {
    for (name, header) in [
        ("no key", String::new()),
        ("a wrong key", basic("not-a-key")),
        ("a key that is not base64", "Basic %%%%".to_owned()),
        ("another scheme", format!("Bearer {WRITE_KEY}")),
        ("a huge key", basic(&"k".repeat(60_000))),
        ("an empty Basic", "Basic ".to_owned()),
    ] {
        let mut headers = vec![("Content-Type", "application/json")];
        if !header.is_empty() {
            headers.push(("Authorization", &header));
        }
        all.push(other(
            name,
            request(
                "POST",
                "/v1/batch",
                &headers,
                good_event("never").as_bytes(),
            ),
        ));
    }
    let auth = basic(WRITE_KEY);
    for (method, path) in [
        ("POST", "/v1/../admin/reload"),
        ("POST", "/v1/destroy"),
        ("GET", "/v1/batch"),
        ("DELETE", "/admin/status"),
        ("POST", "/webhooks/extole/../../etc/passwd"),
        ("POST", "/2/httpapi/extra"),
        ("OPTIONS", "*"),
        ("POST", "/%00"),
    ] {
        all.push(other(
            &format!("{method} {path}"),
            request(method, path, &[("Authorization", &auth)], b"{}"),
        ));
    }
    for (name, events) in [
        (
            "deep",
            format!(
                r#"[{{"event_type":"e","user_id":"user-1","event_properties":{{"d":{deep}}}}}]"#
            ),
        ),
        (
            "surrogate",
            r#"[{"event_type":"e","user_id":"user-1","event_properties":{"s":"\ud800"}}]"#
                .to_owned(),
        ),
        ("no ids", r#"[{"event_type":"e"}]"#.to_owned()),
        (
            "placeholder id",
            r#"[{"event_type":"e","user_id":"undefined"}]"#.to_owned(),
        ),
        ("not objects", "[1,2]".to_owned()),
        (
            "too many",
            format!(
                "[{}]",
                vec![r#"{"event_type":"e","device_id":"device-1"}"#; 2_001].join(",")
            ),
        ),
    ] {
        let body = format!(r#"{{"api_key":"amp-key","events":{events}}}"#);
        all.push(other(
            &format!("amplitude: {name}"),
            request("POST", "/2/httpapi", &[], body.as_bytes()),
        ));
    }
    let body = br#"{"api_key":"nope","events":[{"event_type":"e","user_id":"user-1"}]}"#;
    all.push(other(
        "amplitude: a wrong key",
        request("POST", "/2/httpapi", &[], body),
    ));
    for (name, headers) in [
        ("no secret", vec![]),
        ("a wrong bearer", vec![("Authorization", "Bearer wrong")]),
        ("a bad signature", vec![("X-Extole-Signature", "sha256=00")]),
        ("a signature not in hex", vec![("X-Extole-Signature", "zz")]),
    ] {
        all.push(other(
            &format!("extole: {name}"),
            request(
                "POST",
                "/webhooks/extole/referrals",
                &headers,
                br#"{"event_name":"x"}"#,
            ),
        ));
    }
    let items = format!(r#"[{{"event_name":"a","d":{deep}}},{{"event_name":"b","s":"\ud800"}}]"#);
    let secret: &[(&str, &str)] = &[("Authorization", "Bearer hook-secret")];
    all.push(other(
        "extole: unreadable items",
        request(
            "POST",
            "/webhooks/extole/referrals",
            secret,
            items.as_bytes(),
        ),
    ));
    let big = "b".repeat(100_000);
    all.push(other(
        "a 100 KB header",
        request(
            "POST",
            "/v1/batch",
            &[("Authorization", &auth), ("X-Big", &big)],
            b"{}",
        ),
    ));
    let many: Vec<(String, String)> = (0..500)
        .map(|i| (format!("X-H{i}"), "v".to_owned()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    all.push(other(
        "500 headers",
        request("POST", "/v1/batch", &many, b"{}"),
    ));
    for (name, bytes) in [
        ("two content lengths", &b"POST /v1/batch HTTP/1.1\r\nHost: f\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}"[..]),
        ("a length and chunked", b"POST /v1/batch HTTP/1.1\r\nHost: f\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin/status HTTP/1.1\r\nHost: f\r\n\r\n"),
        ("a bad chunk", b"POST /v1/batch HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
        ("a length longer than the body", b"POST /v1/batch HTTP/1.1\r\nHost: f\r\nConnection: close\r\nContent-Length: 10\r\n\r\n{}"),
        ("a header with a bare newline", b"POST /v1/batch HTTP/1.1\r\nHost: f\r\nX-A: a\nInjected: b\r\n\r\n"),
        ("HTTP/0.9", b"GET /\r\n"),
        ("a TLS hello on plain HTTP", &[0x16, 0x03, 0x01, 0x00, 0xff, 0xff]),
    ] {
        all.push(other(name, bytes.to_vec()));
    }
}

fn hostile_requests() -> Vec<Hostile> {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let mut all = Vec::new();
    rebuilt_events(&deep, &mut all);
    good_and_mixed(&deep, &mut all);
    bad_bodies(&deep, &mut all);
    bad_requests(&deep, &mut all);
    all
}

/// Requests whose framing HTTP itself refuses: the connection may close without an answer.
const FRAMING: [&str; 7] = [
    "a TLS hello on plain HTTP",
    "HTTP/0.9",
    "a header with a bare newline",
    "a 100 KB header",
    "500 headers",
    "two content lengths",
    "a bad chunk",
];

#[test]
fn a_storm_of_hostile_requests_leaves_the_server_up_and_loses_no_acknowledged_event() {
    let destination = Destination::keeping(Keep::Ids);
    let workspace = Workspace::with(WorkspaceOptions {
        extra: "server: { body_timeout_seconds: 2, header_timeout_seconds: 2 }\n".to_owned(),
        ..WorkspaceOptions::to(&destination.url)
    });
    workspace.write_config(&workspace.config_text().replace(
        "sources:\n",
        "sources:\n  app: { type: amplitude, keys: [amp-key] }\n  referrals: { type: extole, keys: [hook-secret] }\n",
    ));
    let mut ferry = Ferry::start(&workspace);
    let requests = hostile_requests();
    assert!(requests.len() >= 100, "only {} requests", requests.len());

    // Slow clients hold connections while the storm runs.
    let slow: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut stream = TcpStream::connect(ferry.address).unwrap();
            let _ = stream
                .write_all(b"POST /v1/batch HTTP/1.1\r\nHost: f\r\nContent-Length: 100\r\n\r\n{");
            stream
        })
        .collect();

    let mut unanswered = Vec::new();
    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut mixed_acknowledged = 0;
    std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .chunks(requests.len().div_ceil(4))
            .map(|part| {
                let url = ferry.url.clone();
                scope.spawn(move || {
                    part.iter()
                        .map(|h| (h, raw(&url, &h.bytes)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            for (hostile, (status, body)) in handle.join().unwrap() {
                if status == 0 && !FRAMING.contains(&hostile.name.as_str()) {
                    unanswered.push(hostile.name.clone());
                }
                assert!(status < 500, "{}: {status} {body}", hostile.name);
                if status == 200 {
                    acknowledged.extend(hostile.good.iter().cloned());
                    mixed_acknowledged += usize::from(hostile.name.starts_with("mixed"));
                }
            }
        }
    });
    drop(slow);
    assert!(
        unanswered.is_empty(),
        "no answer (a handler panicked?) to: {unanswered:?}"
    );
    assert!(ferry.is_running(), "the server died:\n{}", ferry.log());
    assert_eq!(
        http("GET", &format!("{}/healthz", ferry.url), &[], "").0,
        200
    );
    assert!(!ferry.log().contains("panicked"), "{}", ferry.log());
    assert_eq!(
        mixed_acknowledged, 12,
        "a batch holding a bad event was refused whole"
    );

    // Every acknowledged event is delivered or dead-lettered: wait until nothing is pending.
    let depth = |state: &str| {
        ferry
            .metric::<u64>(&format!(
                "ferry_queue_depth{{connection=\"sink\",state=\"{state}\"}}"
            ))
            .unwrap_or(u64::MAX)
    };
    let deadline = Instant::now() + Duration::from_mins(1);
    while depth("pending") + depth("in_flight") + depth("retrying") != 0 {
        assert!(
            Instant::now() < deadline,
            "events still pending:\n{}",
            ferry.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let delivered = destination.ids();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !delivered.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged and never delivered: {missing:?}"
    );
    let letters = workspace.dead_letters();
    let received = ferry
        .metric::<u64>("ferry_events_received_total{source=\"web\"}")
        .unwrap_or(0);
    let rejected = ferry
        .metric::<u64>("ferry_events_rejected_total{source=\"web\"}")
        .unwrap_or(0);
    let dead = letters.iter().filter(|l| l["connection"] == "sink").count() as u64;
    let refused = letters
        .iter()
        .filter(|l| l["connection"] == Value::Null)
        .count() as u64;
    // Settled as delivered: sent, or selected by no action of the mapping (the pages).
    let settled = ferry
        .metric::<u64>("ferry_events_delivered_total{connection=\"sink\"}")
        .unwrap_or(0);
    assert_eq!(
        received,
        settled + dead,
        "every stored event is delivered or dead-lettered ({settled} delivered, {dead} dead)"
    );
    assert!(
        refused >= rejected,
        "{refused} ingest dead letters for {rejected} refusals"
    );
    // Neither a stored event nor one refused at ingest keeps its write key.
    let refused_in_batches = letters.iter().filter(|l| {
        l["reason"]
            .as_str()
            .is_some_and(|r| r.contains("of the batch"))
    });
    for letter in letters.iter().take(30).chain(refused_in_batches) {
        let shown = workspace.ferry(&["dlq", "show", &letter["id"].to_string()]);
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert!(
            !shown.contains("writeKey") && !shown.contains(WRITE_KEY),
            "a stored write key: {shown}"
        );
    }
    // What the storm stored stays small: the amplifying contexts were refused.
    let stored: u64 = std::fs::read_dir(&workspace.data)
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(
        stored < 64 * 1024 * 1024,
        "the store grew to {stored} bytes"
    );
    eprintln!(
        "{} hostile requests: {received} events stored ({settled} settled as delivered, {} of \
         them sent; {dead} dead after mapping), {refused} refused at ingest; the store is \
         {stored} bytes",
        requests.len(),
        delivered.len()
    );
    let _ = ferry.terminate();
}
