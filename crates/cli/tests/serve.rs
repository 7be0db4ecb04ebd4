//! `ferry serve` as a process: ingest, delivery to a destination on loopback, dead letters and
//! `ferry dlq`, hot reload under load, metrics, and graceful shutdown.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::ferry::Start;
use support::{Destination, Ferry, SINK_KEY, Workspace, http, post_batch, sink_mapping, track};

#[test]
fn events_are_acknowledged_stored_delivered_and_dead_lettered() {
    let destination = Destination::start();
    destination.refuse(true);
    let workspace = Workspace::new(&destination.url);
    let server = Ferry::start(&workspace);

    let (status, body) = post_batch(
        &server.url,
        &[
            track("m-1", "ann"),
            track("m-2", "refuse-me"),
            json!({"type": "track", "event": "No one", "messageId": "m-3"}),
            track("m-4", "bob"),
        ],
    );
    assert_eq!((status, body.as_str()), (200, r#"{"success":true}"#));
    // The same messageId again is dropped as a repeat.
    assert_eq!(post_batch(&server.url, &[track("m-1", "ann")]).0, 200);

    let received = destination.wait_for("3 deliveries", |r| r.len() >= 3);
    let mut bodies: Vec<Value> = received.iter().map(|r| r.body.clone()).collect();
    bodies.sort_by_key(|b| b["id"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        bodies,
        vec![
            json!({"id": "m-1", "user": "ann", "event": "Signed Up", "version": "v1"}),
            json!({"id": "m-2", "user": "refuse-me", "event": "Signed Up", "version": "v1"}),
            json!({"id": "m-4", "user": "bob", "event": "Signed Up", "version": "v1"}),
        ]
    );
    for request in &received {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/events");
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {SINK_KEY}").as_str())
        );
    }

    // The refused event and the event without ids are dead letters.
    let listed = wait_for_dead_letters(&workspace, 2);
    let reasons: Vec<&str> = listed.iter().filter_map(|l| l["reason"].as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("400")), "{reasons:?}");
    assert!(
        reasons.iter().any(
            |r| r.contains("refused at ingest") && r.contains("neither userId nor anonymousId")
        ),
        "{reasons:?}"
    );
    let refused = listed
        .iter()
        .find(|l| l["connection"] == "sink")
        .expect("the refused delivery");
    let id = refused["id"].to_string();
    let shown = workspace.ferry(&["dlq", "show", &id]);
    assert!(shown.status.success());
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("refuse-me"), "{shown}");
    assert!(
        !shown.contains(SINK_KEY),
        "a secret in a dead letter:\n{shown}"
    );

    // Fixed at the destination: replaying delivers it, and the server picks it up by itself.
    destination.refuse(false);
    let replayed = workspace.ferry(&["dlq", "replay", "--all"]);
    let said = String::from_utf8_lossy(&replayed.stderr);
    assert!(said.contains("1 events queued again"), "{said}");
    assert!(said.contains("not replayed"), "{said}");
    destination.wait_for("the replayed event", |r| {
        r.iter().filter(|r| r.body["id"] == "m-2").count() == 2
    });
    let left = wait_for_dead_letters(&workspace, 1);
    assert_eq!(left[0]["connection"], Value::Null);

    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains(SINK_KEY), "a secret in the log:\n{log}");
}

fn wait_for_dead_letters(workspace: &Workspace, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let letters = workspace.dead_letters();
        if letters.len() == count {
            return letters;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} dead letters, have {letters:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_changed_mapping_is_served_without_a_failed_request_and_a_broken_one_is_refused() {
    let destination = Destination::start();
    let workspace = Workspace::new(&destination.url);
    let server = Ferry::start(&workspace);

    // Load: batches of 10 events, as fast as they are acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let loader = {
        let (stop, sent, failures, url) = (
            Arc::clone(&stop),
            Arc::clone(&sent),
            Arc::clone(&failures),
            server.url.clone(),
        );
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let events: Vec<Value> = (n..n + 10)
                    .map(|i| track(&format!("load-{i}"), "ann"))
                    .collect();
                if post_batch(&url, &events).0 == 200 {
                    sent.fetch_add(10, Ordering::SeqCst);
                } else {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                n += 10;
            }
        })
    };
    destination.wait_for("deliveries under load", |r| r.len() >= 100);

    // A valid change, picked up by the file watcher.
    workspace.write_mapping(&sink_mapping("v2"));
    wait_for_generation(&server.url, 2);
    let after_swap = sent.load(Ordering::SeqCst);
    destination.wait_for("events mapped by the new mapping", |r| {
        r.iter().filter(|r| r.body["version"] == "v2").count() >= 100
    });

    // A broken change: refused whole, every problem shown, the last good mapping serves on.
    workspace.write_mapping(&sink_mapping("v3").replace("method: POST", "method: PUSH"));
    let (status, body) = http("POST", &format!("{}/admin/reload", server.url), &[], "");
    assert_eq!(status, 422, "{body}");
    let outcome: Value = serde_json::from_str(&body).unwrap();
    let problem = &outcome["problems"][0];
    assert!(
        problem["file"].as_str().unwrap().ends_with("sink.yaml"),
        "{outcome}"
    );
    assert!(problem["line"].as_u64().unwrap() > 0, "{outcome}");
    assert!(
        problem["message"].as_str().unwrap().contains("PUSH"),
        "{outcome}"
    );
    let (_, status_body) = http("GET", &format!("{}/admin/status", server.url), &[], "");
    let shown: Value = serde_json::from_str(&status_body).unwrap();
    assert_eq!(shown["generation"], 2, "{shown}");
    assert_eq!(shown["last_reload"]["ok"], false, "{shown}");
    let before = destination.received().len();
    destination.wait_for("deliveries after the refused reload", |r| {
        r.len() >= before + 100
    });

    stop.store(true, Ordering::SeqCst);
    loader.join().unwrap();
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "ingest requests failed during reloads"
    );
    let total = sent.load(Ordering::SeqCst);
    let received = destination.wait_for("every acknowledged event", |r| {
        let mut ids: Vec<&str> = r.iter().filter_map(|r| r.body["id"].as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len() >= total
    });
    // Nothing was mapped by the broken mapping, and events sent after the swap use the new one.
    for request in &received {
        let version = request.body["version"].as_str().unwrap();
        assert!(version == "v1" || version == "v2", "{:?}", request.body);
        let n: usize = request.body["id"].as_str().unwrap()["load-".len()..]
            .parse()
            .unwrap();
        if n >= after_swap {
            assert_eq!(version, "v2", "event {n} was sent after the swap");
        }
    }
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("reload refused"), "{log}");
}

fn wait_for_generation(url: &str, generation: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = http("GET", &format!("{url}/admin/status"), &[], "");
        let status: Value = serde_json::from_str(&body).unwrap_or_default();
        if status["generation"] == generation {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no reload to generation {generation}: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_reloads_and_metrics_and_health_answer() {
    let destination = Destination::start();
    let workspace = Workspace::new(&destination.url);
    let server = Ferry::start(&workspace);
    assert_eq!(
        http("GET", &format!("{}/healthz", server.url), &[], "").0,
        200
    );
    assert_eq!(
        http("GET", &format!("{}/readyz", server.url), &[], "").0,
        200
    );

    let events: Vec<Value> = (0..5).map(|i| track(&format!("h-{i}"), "ann")).collect();
    assert_eq!(post_batch(&server.url, &events).0, 200);
    destination.wait_for("5 deliveries", |r| r.len() == 5);
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (status, metrics) = http("GET", &format!("{}/metrics", server.url), &[], "");
        assert_eq!(status, 200);
        if metrics.contains("ferry_events_delivered_total{connection=\"sink\"} 5")
            || Instant::now() > deadline
        {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for expected in [
        "ferry_events_received_total{source=\"web\"} 5",
        "ferry_events_delivered_total{connection=\"sink\"} 5",
        "ferry_queue_depth{connection=\"sink\",state=\"pending\"} 0",
        "ferry_delivery_seconds_count{connection=\"sink\"} 5",
        "ferry_ack_seconds_count{source=\"web\"} 1",
    ] {
        assert!(metrics.contains(expected), "no `{expected}` in:\n{metrics}");
    }

    workspace.write_mapping(&sink_mapping("v2"));
    server.signal("HUP");
    wait_for_generation(&server.url, 2);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn sigterm_leaves_unfinished_deliveries_pending_for_the_next_start() {
    let destination = Destination::start();
    destination.delay(Duration::from_secs(5));
    let workspace = Workspace::new(&destination.url);
    let server = Ferry::start_with(Start::of(&workspace).arg("--drain").arg("1"));
    let events: Vec<Value> = (0..3).map(|i| track(&format!("t-{i}"), "ann")).collect();
    assert_eq!(post_batch(&server.url, &events).0, 200);
    destination.wait_for("the first attempts", |r| !r.is_empty());
    let stopping = Instant::now();
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(stopping.elapsed() < Duration::from_secs(4), "{log}");
    assert!(log.contains("stay pending"), "{log}");

    // Every event is delivered again after the restart (the interrupted attempts may or may
    // not have reached the destination: at least once).
    destination.delay(Duration::ZERO);
    let before = destination.received().len();
    let server = Ferry::start(&workspace);
    destination.wait_for("every event after the restart", |r| {
        let mut ids: Vec<&str> = r[before..]
            .iter()
            .filter_map(|r| r.body["id"].as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids == ["t-0", "t-1", "t-2"]
    });
    drop(server);
}

#[test]
fn a_bad_configuration_is_refused_at_start_with_every_problem() {
    let workspace = Workspace::new("http://127.0.0.1:9");
    workspace.write_config(
        "version: 1\nmappings: mappings\nsources:\n  web: { type: segmnt, keys: [k] }\nconnections:\n  sink: { source: web, mapping: snk }\n",
    );
    let out = workspace.ferry(&["serve", "--config", "ferry.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("ferry.yaml:4:"), "{said}");
    assert!(said.contains("did you mean `segment`?"), "{said}");
}

#[test]
fn the_demo_maps_every_sample_through_every_bundled_mapping() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(support::ferry::binary())
        .args(["serve", "--demo"])
        .current_dir(&root)
        .output()
        .expect("ferry runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    let requests: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let embedded: Value =
        serde_yaml::from_str(ferry_server::EMBEDDED_CONFIG).expect("the embedded configuration");
    let connections = embedded["connections"].as_object().expect("connections");
    for connection in connections.keys() {
        assert!(
            requests
                .iter()
                .any(|r| r["connection"] == connection.as_str()),
            "no request for `{connection}`: {said}"
        );
    }
    assert!(
        said.contains("dead letters: 1"),
        "only Promoter's identify without an email is expected to fail: {said}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for secret in [
        "demo-extole-key",
        "demo-promoter-key",
        "demo-braze-key",
        "demo-amplitude-key",
        "demo-ga4-secret",
        "demo-iterable-key",
        "pk_demo",
        "phc_demo",
        "demo-facebook-token",
        "demo-snapchat-key",
        "demo-tiktok-token",
    ] {
        assert!(!text.contains(secret), "`{secret}` in the dry-run output");
    }
    assert!(said.contains("200 OK"), "{said}");
}

#[test]
fn remembered_values_survive_a_restart() {
    let destination = Destination::start();
    let workspace = Workspace::new(&destination.url);
    // Identify remembers the email; a later track, which carries only the userId, recalls it.
    let mapping = sink_mapping("v1")
        .replace(
            "        version: { value: \"v1\" }\n",
            "        version: { value: \"v1\" }\n        email: { recall: { name: emails, key: $.userId } }\n",
        )
        + "  person:
    when: { type: identify }
    request:
      method: POST
      path: /people
      body:
        user: { from: $.userId }
    remember:
      emails: { key: $.userId, value: $.traits.email }
";
    workspace.write_mapping(&mapping);
    let server = Ferry::start(&workspace);
    let identify = json!({"type": "identify", "userId": "ann", "messageId": "i-1", "traits": {"email": "ann@example.com"}});
    assert_eq!(post_batch(&server.url, &[identify]).0, 200);
    destination.wait_for("the identify", |r| r.len() == 1);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");

    let server = Ferry::start(&workspace);
    assert_eq!(post_batch(&server.url, &[track("t-1", "ann")]).0, 200);
    let received = destination.wait_for("the track", |r| r.len() == 2);
    assert_eq!(
        received[1].body["email"], "ann@example.com",
        "{:?}",
        received[1].body
    );
    drop(server);
}
