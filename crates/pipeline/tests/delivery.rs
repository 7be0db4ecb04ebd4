//! Delivery of mapped events to real HTTP servers on loopback (wiremock): each test is named
//! after the rule it checks, and asserts what the server received and what was dead-lettered.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{body, connect, deliver, received};
use ferry_delivery::DeadLetterWriter;
use ferry_engine::Connection;
use ferry_pipeline::{Halt, Input, Pipeline};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const BRAZE_KEY: &str = "braze-SECRET-key-123";
const KEY: &str = "api-SECRET-key-456";

fn mapping_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../mappings")
        .join(format!("{name}.yaml"))
}

fn braze(server: &MockServer) -> Connection {
    let mapping = ferry_engine::load(&mapping_file("braze")).unwrap_or_else(|d| panic!("{d}"));
    let settings =
        json!({ "instance_url": "https://rest.iad-01.braze.com", "rest_api_key": BRAZE_KEY });
    connect(mapping, &settings, &server.uri())
}

/// A small mapping with fast retries: every event becomes `POST /events`.
fn simple(server: &MockServer, delivery: &str) -> Connection {
    let text = format!(
        r#"version: 1
name: simple
source: segment
settings:
  key: {{ type: string, required: true, secret: true, description: API key }}
http:
  base_url: https://api.example.com
  auth: {{ bearer: "{{{{ settings.key }}}}" }}
delivery:
{delivery}
actions:
  track:
    when: {{ type: track }}
    request:
      method: POST
      path: /events
      body:
        name: {{ from: $.event, required: true }}
        user: {{ from: $.userId }}
    dedupe_key: {{ from: $.messageId }}
"#
    );
    let mapping = ferry_engine::load_str("simple.yaml", &text).unwrap_or_else(|d| panic!("{d}"));
    connect(mapping, &json!({ "key": KEY }), &server.uri())
}

const FAST_RETRIES: &str = "  retry: { max_attempts: 3, initial_backoff_ms: 1, max_backoff_ms: 5 }";

fn track(i: usize) -> Value {
    json!({"type": "track", "event": "Signed Up", "userId": format!("u-{i}"), "messageId": format!("m-{i}")})
}

fn known_user(i: usize) -> Value {
    json!({"event_name": "Shared", "event_time": "2026-11-20T10:00:00Z", "external_id": format!("user-{i}")})
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"message": "success"}))
}

#[tokio::test]
async fn braze_76_events_arrive_as_a_request_of_75_and_one_of_1() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/users/track"))
        .respond_with(ok())
        .mount(&server)
        .await;
    let run = deliver(braze(&server), (0..76).map(known_user).collect()).await;
    let requests = received(&server).await;
    let sizes: Vec<usize> = requests
        .iter()
        .map(|r| body(r)["events"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, [75, 1]);
    assert_eq!(
        body(&requests[0])["attributes"][74]["external_id"],
        "user-74"
    );
    assert_eq!(
        requests[0].headers["authorization"],
        format!("Bearer {BRAZE_KEY}")
    );
    assert_eq!((run.summary.items_delivered, run.summary.requests), (76, 2));
    assert!(run.dead.is_empty());
}

#[tokio::test]
async fn braze_item_errors_dead_letter_only_the_events_they_name() {
    let server = MockServer::start().await;
    Mock::given(path("/users/track"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "message": "success",
            "errors": [
                {"type": "'time' is invalid", "input_array": "events", "index": 1},
                {"type": "'external_id' is invalid", "input_array": "attributes", "index": 3}
            ]
        })))
        .mount(&server)
        .await;
    let run = deliver(braze(&server), (0..5).map(known_user).collect()).await;
    assert_eq!(received(&server).await.len(), 1, "one batch, no retry");
    let failed: Vec<&Value> = run.dead.iter().map(|d| &d.event["external_id"]).collect();
    assert_eq!(failed, ["user-1", "user-3"]);
    assert!(run.dead[0].reason.contains("'time' is invalid"));
    let request = run.dead[0]
        .last_request
        .as_ref()
        .expect("the item's request");
    assert!(request.body.contains("user-1") && !request.body.contains("user-2"));
    assert_eq!(run.summary.items_delivered, 3);
    assert!(!run.file.contains(BRAZE_KEY));
}

/// 413 for a batch of more than `limit` events.
struct TooLargeAbove(usize);

impl Respond for TooLargeAbove {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let events = body(request)["events"].as_array().map_or(0, Vec::len);
        if events > self.0 {
            ResponseTemplate::new(413).set_body_string("Payload Too Large")
        } else {
            ok()
        }
    }
}

#[tokio::test]
async fn a_batch_refused_with_413_is_split_until_the_halves_fit() {
    let server = MockServer::start().await;
    Mock::given(path("/users/track"))
        .respond_with(TooLargeAbove(2))
        .mount(&server)
        .await;
    let run = deliver(braze(&server), (0..5).map(known_user).collect()).await;
    let mut sizes: Vec<usize> = received(&server)
        .await
        .iter()
        .map(|r| body(r)["events"].as_array().map_or(0, Vec::len))
        .collect();
    sizes.sort_unstable();
    // 5 (413) -> 2 + 3 (413) -> 1 + 2
    assert_eq!(sizes, [1, 2, 2, 3, 5]);
    assert_eq!(run.summary.splits, 2);
    assert_eq!(run.summary.items_delivered, 5);
    assert!(run.dead.is_empty());
}

#[tokio::test]
async fn a_single_event_refused_with_413_is_dead_lettered_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/users/track"))
        .respond_with(TooLargeAbove(0))
        .mount(&server)
        .await;
    let run = deliver(braze(&server), vec![known_user(1)]).await;
    assert_eq!(received(&server).await.len(), 1);
    assert_eq!(run.dead.len(), 1);
    assert!(run.dead[0].reason.contains("413"), "{}", run.dead[0].reason);
    assert_eq!(
        run.dead[0].last_response.as_ref().map(|r| r.status),
        Some(413)
    );
}

#[tokio::test]
async fn the_alias_flow_updates_the_user_braze_finds_by_email() {
    let server = MockServer::start().await;
    Mock::given(path("/users/export/ids"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "message": "success",
            "users": [{"braze_id": "b-77", "external_id": "crm-1"}]
        })))
        .mount(&server)
        .await;
    Mock::given(path("/users/track"))
        .respond_with(ok())
        .mount(&server)
        .await;
    let event = json!({"event_name": "Subscribed", "event_time": "2026-11-20T10:00:00Z", "email": "kim@example.com"});
    let run = deliver(braze(&server), vec![event]).await;
    let requests = received(&server).await;
    let paths: Vec<&str> = requests.iter().map(|r| r.url.path()).collect();
    assert_eq!(paths, ["/users/export/ids", "/users/track"]);
    assert_eq!(body(&requests[0])["email_address"], "kim@example.com");
    let track = body(&requests[1]);
    assert_eq!(track["attributes"][0]["braze_id"], "b-77");
    assert_eq!(track["attributes"][0]["email_subscribe"], "opted_in");
    assert_eq!(track["events"][0]["braze_id"], "b-77");
    assert_eq!(run.summary.items_delivered, 1);
    assert!(run.dead.is_empty());
}

#[tokio::test]
async fn the_alias_flow_creates_an_alias_user_for_an_email_braze_does_not_know() {
    let server = MockServer::start().await;
    Mock::given(path("/users/export/ids"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"message": "success", "users": []})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/users/track"))
        .respond_with(ok())
        .mount(&server)
        .await;
    let event = json!({"event_name": "Unsubscribed", "event_time": "2026-11-20T10:00:00Z", "email": "new@example.com"});
    let run = deliver(braze(&server), vec![event]).await;
    let requests = received(&server).await;
    assert_eq!(requests.len(), 2);
    let track = body(&requests[1]);
    assert_eq!(
        track["attributes"][0]["user_alias"],
        json!({"alias_name": "new@example.com", "alias_label": "email"})
    );
    assert_eq!(track["attributes"][0]["_update_existing_only"], false);
    assert_eq!(track["attributes"][0]["email_subscribe"], "unsubscribed");
    assert!(run.dead.is_empty());
}

#[tokio::test]
async fn a_klaviyo_profile_that_exists_is_updated_at_the_id_its_409_names() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/profiles"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({"errors": [{
            "status": 409, "code": "duplicate_profile", "title": "Conflict.",
            "meta": {"duplicate_profile_id": "01GW3PHVY0MTCDGS0A1612HARX"}
        }]})))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/api/profiles/01GW3PHVY0MTCDGS0A1612HARX"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {}})))
        .mount(&server)
        .await;
    let mapping = ferry_engine::load(&mapping_file("klaviyo")).unwrap_or_else(|d| panic!("{d}"));
    let settings = json!({"private_api_key": KEY, "revision": "2023-02-22"});
    let klaviyo = connect(mapping, &settings, &server.uri());
    let event = json!({"type": "identify", "userId": "user-1", "messageId": "m-1",
                       "traits": {"email": "ada@example.com", "plan": "pro"}});
    let run = deliver(klaviyo, vec![event]).await;
    let requests = received(&server).await;
    let sent: Vec<(String, &str)> = requests
        .iter()
        .map(|r| (r.method.to_string(), r.url.path()))
        .collect();
    assert_eq!(
        sent,
        [
            ("POST".to_owned(), "/api/profiles"),
            (
                "PATCH".to_owned(),
                "/api/profiles/01GW3PHVY0MTCDGS0A1612HARX"
            )
        ]
    );
    let update = body(&requests[1]);
    assert_eq!(update["data"]["id"], "01GW3PHVY0MTCDGS0A1612HARX");
    assert_eq!(update["data"]["attributes"]["email"], "ada@example.com");
    assert_eq!(update["data"]["attributes"]["properties"]["plan"], "pro");
    assert_eq!(run.summary.items_delivered, 1);
    assert!(run.dead.is_empty());
}

#[tokio::test]
async fn a_lookup_the_destination_refuses_is_dead_lettered_with_its_response() {
    let server = MockServer::start().await;
    Mock::given(path("/users/export/ids"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Invalid API key"})),
        )
        .mount(&server)
        .await;
    let event = json!({"event_name": "Subscribed", "event_time": "2026-11-20T10:00:00Z", "email": "kim@example.com"});
    let run = deliver(braze(&server), vec![event.clone()]).await;
    assert_eq!(received(&server).await.len(), 1, "401 is not retried");
    assert_eq!(run.dead.len(), 1);
    let dead = &run.dead[0];
    assert_eq!(dead.event, event);
    assert!(dead.reason.contains("step `lookup`"), "{}", dead.reason);
    assert_eq!(dead.last_response.as_ref().map(|r| r.status), Some(401));
    let request = dead.last_request.as_ref().expect("the lookup request");
    assert!(request.url.ends_with("/users/export/ids"));
    assert!(
        request
            .headers
            .contains(&("Authorization".into(), "Bearer [redacted]".into()))
    );
    assert!(!run.file.contains(BRAZE_KEY));
}

#[tokio::test]
async fn permanent_statuses_are_dead_lettered_after_one_request() {
    for status in [400, 401, 403, 404] {
        let server = MockServer::start().await;
        Mock::given(path("/events"))
            .respond_with(ResponseTemplate::new(status).set_body_string("no"))
            .mount(&server)
            .await;
        let run = deliver(simple(&server, FAST_RETRIES), vec![track(1)]).await;
        assert_eq!(received(&server).await.len(), 1, "{status} is not retried");
        assert_eq!(run.dead.len(), 1, "{status}");
        assert_eq!(run.dead[0].attempts, 1);
        assert_eq!(
            run.dead[0].last_response.as_ref().map(|r| r.status),
            Some(status)
        );
        assert!(!run.file.contains(KEY), "{status}: the key leaked");
    }
}

#[tokio::test]
async fn retryable_statuses_are_retried_until_attempts_run_out_then_dead_lettered() {
    for status in [500, 502, 503, 504, 429] {
        let server = MockServer::start().await;
        Mock::given(path("/events"))
            .respond_with(ResponseTemplate::new(status).set_body_string("busy"))
            .mount(&server)
            .await;
        let run = deliver(simple(&server, FAST_RETRIES), vec![track(1)]).await;
        assert_eq!(received(&server).await.len(), 3, "{status}: three attempts");
        assert_eq!(run.dead.len(), 1);
        assert_eq!(run.dead[0].attempts, 3);
        assert!(
            run.dead[0].reason.contains("after 3 attempts"),
            "{}",
            run.dead[0].reason
        );
        assert_eq!(run.summary.retries, 2);
        assert_eq!(
            run.dead[0].last_response.as_ref().map(|r| &*r.body),
            Some("busy")
        );
    }
}

#[tokio::test]
async fn a_retryable_status_that_clears_is_delivered() {
    let server = MockServer::start().await;
    Mock::given(path("/events"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/events"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let run = deliver(simple(&server, FAST_RETRIES), vec![track(1)]).await;
    assert_eq!(received(&server).await.len(), 2);
    assert!(run.dead.is_empty());
    assert_eq!((run.summary.delivered, run.summary.retries), (1, 1));
    assert_eq!(run.summary.statuses.get(&503), Some(&1));
}

#[tokio::test]
async fn events_that_cannot_be_mapped_are_dead_lettered_and_the_rest_delivered() {
    let server = MockServer::start().await;
    Mock::given(path("/events"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let nameless = json!({"type": "track", "userId": "u-x", "messageId": "m-x"});
    let run = deliver(
        simple(&server, FAST_RETRIES),
        vec![track(1), nameless.clone(), track(2)],
    )
    .await;
    assert_eq!(received(&server).await.len(), 2);
    assert_eq!(run.dead.len(), 1);
    assert_eq!(run.dead[0].event, nameless);
    assert!(
        run.dead[0].reason.contains("event 2") && run.dead[0].reason.contains("`name`"),
        "{}",
        run.dead[0].reason
    );
}

#[tokio::test]
async fn an_event_repeated_with_the_same_dedupe_key_is_sent_once() {
    let server = MockServer::start().await;
    Mock::given(path("/events"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let run = deliver(
        simple(&server, FAST_RETRIES),
        vec![track(1), track(1), track(2)],
    )
    .await;
    assert_eq!(received(&server).await.len(), 2);
    assert_eq!(run.summary.duplicates, 1);
}

#[tokio::test]
async fn the_rate_limit_holds_at_the_server() {
    let server = MockServer::start().await;
    Mock::given(path("/events"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let delivery = format!("{FAST_RETRIES}\n  rate_limit: {{ requests: 5, per_seconds: 1 }}");
    let started = Instant::now();
    let run = deliver(simple(&server, &delivery), (0..11).map(track).collect()).await;
    let took = started.elapsed();
    assert_eq!(received(&server).await.len(), 11);
    assert_eq!(run.summary.delivered, 11);
    // Evenly spaced at 5 per second: the 11th request starts 2 s after the first.
    assert!(took >= Duration::from_millis(1900), "took {took:?}");
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_then_delivered() {
    let server = MockServer::start().await;
    Mock::given(path("/events"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/events"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let started = Instant::now();
    let run = deliver(simple(&server, FAST_RETRIES), vec![track(1)]).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After was not honoured"
    );
    assert_eq!(received(&server).await.len(), 2);
    assert!(run.dead.is_empty());
    assert_eq!(run.summary.statuses.get(&429), Some(&1));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_and_the_event_is_dead_lettered() {
    let server = MockServer::start().await;
    Mock::given(path("/events"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let delivery =
        "  timeout_ms: 150\n  retry: { max_attempts: 2, initial_backoff_ms: 1, max_backoff_ms: 5 }";
    let started = Instant::now();
    let run = deliver(simple(&server, delivery), vec![track(1)]).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        received(&server).await.len(),
        2,
        "the timeout is retried once"
    );
    assert_eq!(run.dead.len(), 1);
    assert!(
        run.dead[0].reason.contains("timeout"),
        "{}",
        run.dead[0].reason
    );
    assert!(run.dead[0].last_response.is_none());
    assert_eq!(run.summary.transport_errors, 2);
}

#[tokio::test]
async fn a_drain_stops_reading_and_still_delivers_what_was_read() {
    let server = MockServer::start().await;
    Mock::given(path("/events"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let writer = DeadLetterWriter::open(dir.path().join("dead.ndjson")).expect("opens");
    let pipeline = Pipeline::new(Arc::new(simple(&server, FAST_RETRIES)), writer).expect("rules");
    let (tx, rx) = mpsc::channel(16);
    let (halt_tx, halt) = tokio::sync::watch::channel(Halt::No);
    let reader = tokio::spawn(async move {
        for i in 0..3 {
            let input = Input::Event {
                index: i + 1,
                event: track(i),
            };
            tx.send(input).await.expect("the pipeline reads");
        }
        // An input that never ends, like a terminal: only a halt stops the run.
        tokio::time::sleep(Duration::from_millis(200)).await;
        halt_tx.send(Halt::Drain).expect("the run listens");
        tx.closed().await;
        tx.send(Input::Event {
            index: 4,
            event: track(4),
        })
        .await
        .is_err()
    });
    let summary = tokio::time::timeout(
        Duration::from_secs(5),
        pipeline.run_until(rx, halt, &mut |_| {}),
    )
    .await
    .expect("a drain ends the run")
    .expect("no dead-letter error");
    assert!(
        reader.await.expect("reader"),
        "input after the drain is refused"
    );
    assert_eq!((summary.events, summary.delivered), (3, 3));
    assert_eq!(received(&server).await.len(), 3);
}

#[tokio::test]
async fn an_abort_dead_letters_the_requests_in_flight() {
    let server = MockServer::start().await;
    Mock::given(path("/events"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("dead.ndjson");
    let writer = DeadLetterWriter::open(&file).expect("opens");
    let pipeline = Pipeline::new(Arc::new(simple(&server, FAST_RETRIES)), writer).expect("rules");
    let (tx, rx) = mpsc::channel(16);
    let (halt_tx, halt) = tokio::sync::watch::channel(Halt::No);
    tokio::spawn(async move {
        for i in 0..3 {
            let input = Input::Event {
                index: i + 1,
                event: track(i),
            };
            tx.send(input).await.expect("the pipeline reads");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        halt_tx.send(Halt::Abort).expect("the run listens");
        tx.closed().await;
    });
    let summary = tokio::time::timeout(
        Duration::from_secs(5),
        pipeline.run_until(rx, halt, &mut |_| {}),
    )
    .await
    .expect("an abort ends the run at once")
    .expect("no dead-letter error");
    assert_eq!(
        (summary.events, summary.delivered, summary.dead_lettered),
        (3, 0, 3)
    );
    let text = std::fs::read_to_string(&file).expect("dead letters");
    assert_eq!(text.lines().count(), 3);
    assert!(text.contains("interrupted before delivery finished"));
    assert!(!text.contains(KEY));
}

/// 400 for any batch carrying `user-bad`, 201 otherwise.
struct RefuseBatchesWith(&'static str);

impl Respond for RefuseBatchesWith {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if String::from_utf8_lossy(&request.body).contains(self.0) {
            ResponseTemplate::new(400).set_body_json(json!({"message": "Invalid input"}))
        } else {
            ok()
        }
    }
}

#[tokio::test]
async fn a_batch_refused_with_400_is_halved_until_only_the_bad_event_is_dead_lettered() {
    let server = MockServer::start().await;
    Mock::given(path("/users/track"))
        .respond_with(RefuseBatchesWith("user-bad"))
        .mount(&server)
        .await;
    let mut events: Vec<Value> = (0..6).map(known_user).collect();
    events[4]["external_id"] = json!("user-bad");
    let run = deliver(braze(&server), events).await;
    assert_eq!(run.dead.len(), 1);
    assert_eq!(run.dead[0].event["external_id"], "user-bad");
    assert_eq!(
        run.dead[0].last_response.as_ref().map(|r| r.status),
        Some(400)
    );
    assert_eq!(run.summary.items_delivered, 5);
    // 6 -> 3 + 3 (400) -> 1 + 2 (400) -> 1 (400) + 1
    assert_eq!(received(&server).await.len(), 7);
    assert!(
        !run.dead[0].reason.contains("a batch of"),
        "{}",
        run.dead[0].reason
    );
}
