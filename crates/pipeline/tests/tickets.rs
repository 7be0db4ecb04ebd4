//! Queued events: each ticket is settled once, when every request of its event has finished,
//! with the outcome a durable queue needs (delivered, retry later, dead, or unknown).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_delivery::RecordedRequest;
use ferry_engine::Connection;
use ferry_pipeline::{Halt, Input, Pipeline, Settle, Settled, Ticket};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "api-SECRET-key-456";
/// How long queued pipelines retry in memory in these tests.
const INLINE_RETRY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Collected(Mutex<Vec<Settled>>);

impl Settle for Collected {
    fn settle(&self, settled: Settled) {
        self.0.lock().unwrap().push(settled);
    }
}

impl Collected {
    fn by_id(&self, id: i64) -> Settled {
        let mut all = self.0.lock().unwrap();
        let at = all
            .iter()
            .position(|s| s.id == id)
            .unwrap_or_else(|| panic!("event {id} was not settled"));
        all.remove(at)
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

fn connection(base_url: &str) -> Connection {
    connection_with(
        base_url,
        "{ retry: { max_attempts: 2, initial_backoff_ms: 1, max_backoff_ms: 2 } }",
    )
}

fn connection_with(base_url: &str, delivery: &str) -> Connection {
    let text = r#"version: 1
name: simple
source: segment
settings:
  key: { type: string, required: true, secret: true, description: API key }
http:
  base_url: https://api.example.com
  auth: { bearer: "{{ settings.key }}" }
delivery: DELIVERY
actions:
  person:
    when: { type: identify }
    request:
      method: POST
      path: /people
      body:
        user: { from: $.userId }
    remember:
      emails: { key: $.userId, value: $.traits.email }
  track:
    when: { type: track }
    request:
      method: POST
      path: /events
      body:
        name: { from: $.event, required: true }
        user: { from: $.userId }
        email: { recall: { name: emails, key: $.userId } }
    dedupe_key: { from: $.messageId }
"#;
    let text = text.replace("DELIVERY", delivery);
    let mapping = ferry_engine::load_str("simple.yaml", &text).unwrap_or_else(|d| panic!("{d}"));
    let mut connection = Connection::new(
        Arc::new(mapping),
        json!({ "key": KEY }).as_object().unwrap(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    connection
        .override_base_url(base_url)
        .unwrap_or_else(|e| panic!("{e}"));
    connection
}

fn track(user: &str, event: &str) -> Value {
    json!({"type": "track", "event": event, "userId": user})
}

async fn run(pipeline: &Pipeline, inputs: Vec<Input>) {
    let (tx, rx) = mpsc::channel(16);
    let feed = tokio::spawn(async move {
        for input in inputs {
            tx.send(input).await.unwrap();
        }
    });
    pipeline.run(rx, &mut |_| {}).await.unwrap();
    feed.await.unwrap();
}

fn queued(id: i64, event: Value, settle: &Arc<Collected>) -> Input {
    Input::Queued {
        ticket: Ticket::new(id, Arc::clone(settle) as Arc<dyn Settle>),
        event,
    }
}

#[tokio::test]
async fn each_ticket_is_settled_once_with_its_outcome() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/events"))
        .and(body_partial_json(json!({"name": "Fine"})))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"name": "Flaky"})))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"name": "Refused"})))
        .respond_with(ResponseTemplate::new(400))
        .mount(&server)
        .await;
    let settle = Arc::new(Collected::default());
    let pipeline = Pipeline::queued(Arc::new(connection(&server.uri())), INLINE_RETRY).unwrap();
    run(
        &pipeline,
        vec![
            queued(1, track("u1", "Fine"), &settle),
            queued(2, track("u1", "Flaky"), &settle),
            queued(3, track("u1", "Refused"), &settle),
            queued(4, json!({"type": "page", "userId": "u1"}), &settle),
            queued(5, json!({"type": "track", "userId": "u1"}), &settle),
        ],
    )
    .await;

    assert_eq!(settle.count(), 5);
    assert!(settle.by_id(1).delivered());
    let flaky = settle.by_id(2);
    assert!(!flaky.delivered() && flaky.retryable(), "{flaky:?}");
    assert_eq!(flaky.letters[0].letter.attempts, 2);
    let refused = settle.by_id(3);
    assert!(!refused.delivered() && !refused.retryable(), "{refused:?}");
    assert!(refused.letters[0].letter.reason.contains("400"));
    // No action selects a page: nothing to send is a delivery.
    assert!(settle.by_id(4).delivered());
    // A track without an event name cannot be mapped: dead, not retried.
    let unmappable = settle.by_id(5);
    assert!(!unmappable.retryable());
    assert!(unmappable.letters[0].letter.reason.contains("cannot map"));
    // Secrets never reach a letter.
    let text = format!("{refused:?}{flaky:?}");
    assert!(!text.contains(KEY));
}

#[tokio::test]
async fn remembered_values_travel_with_the_event_that_remembered_them() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let settle = Arc::new(Collected::default());
    let state = ferry_pipeline::SharedState::default();
    let pipeline = Pipeline::queued(Arc::new(connection(&server.uri())), INLINE_RETRY)
        .unwrap()
        .with_state(Arc::clone(&state));
    run(
        &pipeline,
        vec![
            queued(
                1,
                json!({"type": "identify", "userId": "u1", "traits": {"email": "ann@example.com"}}),
                &settle,
            ),
            queued(2, track("u1", "Fine"), &settle),
        ],
    )
    .await;
    let identify = settle.by_id(1);
    assert!(identify.delivered());
    assert_eq!(identify.remembered.len(), 1);
    assert_eq!(identify.remembered[0].key, "u1");
    assert!(settle.by_id(2).remembered.is_empty());
    let sent: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        sent,
        vec![
            json!({"user": "u1"}),
            json!({"name": "Fine", "user": "u1", "email": "ann@example.com"})
        ]
    );
}

#[tokio::test]
async fn events_a_run_never_finished_are_settled_as_interrupted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let settle = Arc::new(Collected::default());
    let pipeline = Pipeline::queued(Arc::new(connection(&server.uri())), INLINE_RETRY).unwrap();

    // Never taken by a run: the channel is dropped with the event in it.
    let (tx, rx) = mpsc::channel(4);
    tx.send(queued(1, track("u1", "Fine"), &settle))
        .await
        .unwrap();
    drop(rx);
    drop(tx);
    assert!(settle.by_id(1).interrupted);

    // Taken, sent, and the run aborted while the destination had not answered.
    let (tx, rx) = mpsc::channel(4);
    let (halt_tx, halt) = watch::channel(Halt::No);
    tx.send(queued(2, track("u1", "Fine"), &settle))
        .await
        .unwrap();
    let aborter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        halt_tx.send(Halt::Abort).unwrap();
        halt_tx
    });
    pipeline.run_until(rx, halt, &mut |_| {}).await.unwrap();
    drop(aborter.await.unwrap());
    drop(tx);
    assert!(settle.by_id(2).interrupted);

    // Taken, and the run itself dropped mid-flight (as at a process exit).
    let (tx, rx) = mpsc::channel(4);
    tx.send(queued(3, track("u1", "Fine"), &settle))
        .await
        .unwrap();
    let cut = tokio::time::timeout(Duration::from_millis(200), pipeline.run(rx, &mut |_| {})).await;
    assert!(
        cut.is_err(),
        "the run should still be waiting for the destination"
    );
    drop(tx);
    // The aborted send task lets go of the event when the runtime next polls it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while settle.count() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let settled = settle.by_id(3);
    assert!(settled.interrupted && !settled.delivered());
}

#[tokio::test]
async fn a_dry_run_records_redacted_requests_and_sends_nothing() {
    let server = MockServer::start().await;
    let recorded: Arc<Mutex<Vec<RecordedRequest>>> = Arc::default();
    let sink = Arc::clone(&recorded);
    let settle = Arc::new(Collected::default());
    let pipeline = Pipeline::queued(Arc::new(connection(&server.uri())), INLINE_RETRY)
        .unwrap()
        .dry_run(Arc::new(move |request| sink.lock().unwrap().push(request)));
    run(&pipeline, vec![queued(1, track("u1", "Fine"), &settle)]).await;
    assert!(settle.by_id(1).delivered());
    assert!(server.received_requests().await.unwrap().is_empty());
    let recorded = recorded.lock().unwrap();
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].url.ends_with("/events"));
    let text = serde_json::to_string(&*recorded).unwrap();
    assert!(!text.contains(KEY), "{text}");
    assert!(text.contains("Fine"));
}

#[tokio::test]
async fn a_dry_run_does_not_read_its_own_answer_as_the_destination_refusing() {
    // A destination that answers 200 with `code: 0` on success: a dry run answers `200 {}`, which
    // the mapping's `failure` rules would read as a refusal, alone or in a batch.
    let text = r"version: 1
name: coded
source: segment
http:
  base_url: https://api.example.com
actions:
  track:
    when: { type: track }
    request: { method: POST, path: /events, body: { name: { from: $.event } } }
    failure: [{ when: { not: { equals: { $.body.code: 0 } } }, reason: $.body.message }]
  page:
    when: { type: page }
    request: { method: POST, path: /pages, body: { names: { items: [{ from: $.name }] } } }
    failure: [{ when: { not: { equals: { $.body.code: 0 } } }, reason: $.body.message }]
    batch: { concat: [names], max_items: 10, linger_ms: 5 }
";
    let mapping = ferry_engine::load_str("coded.yaml", text).unwrap_or_else(|d| panic!("{d}"));
    let connection = Connection::new(Arc::new(mapping), &serde_json::Map::new()).unwrap();
    let settle = Arc::new(Collected::default());
    let pipeline = Pipeline::queued(Arc::new(connection), INLINE_RETRY)
        .unwrap()
        .dry_run(Arc::new(|_| {}));
    run(
        &pipeline,
        vec![
            queued(1, track("u1", "Fine"), &settle),
            queued(2, json!({"type": "page", "name": "Home"}), &settle),
        ],
    )
    .await;
    for id in [1, 2] {
        let settled = settle.by_id(id);
        assert!(settled.delivered(), "event {id}: {:?}", settled.letters);
    }
}

#[tokio::test]
async fn a_failed_event_sent_again_is_not_dropped_as_a_repeat() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let settle = Arc::new(Collected::default());
    let pipeline = Pipeline::queued(Arc::new(connection(&server.uri())), INLINE_RETRY).unwrap();
    let event = json!({"type": "track", "event": "Fine", "userId": "u1", "messageId": "m-1"});
    let (tx, rx) = mpsc::channel(4);
    let feed = {
        let settle = Arc::clone(&settle);
        let event = event.clone();
        tokio::spawn(async move {
            tx.send(queued(1, event.clone(), &settle)).await.unwrap();
            while settle.count() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // The durable retry of the failed event, in the same run.
            tx.send(queued(1, event.clone(), &settle)).await.unwrap();
            while settle.count() == 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // A true repeat of the delivered event.
            tx.send(queued(2, event, &settle)).await.unwrap();
        })
    };
    let summary = pipeline.run(rx, &mut |_| {}).await.unwrap();
    feed.await.unwrap();
    let all = std::mem::take(&mut *settle.0.lock().unwrap());
    assert!(all[0].retryable(), "{:?}", all[0]);
    assert!(all[1].delivered(), "the retry was sent: {:?}", all[1]);
    assert!(all[2].delivered());
    assert_eq!(summary.duplicates, 1, "{summary:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_destination_down_for_long_hands_events_back_to_the_queue_soon() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    // On its own the mapping would keep retrying for two minutes.
    let delivery = "{ timeout_ms: 500, max_total_ms: 120000, \
                    retry: { max_attempts: 100, initial_backoff_ms: 50, max_backoff_ms: 200 } }";
    let connection = Arc::new(connection_with(&server.uri(), delivery));
    let pipeline = Pipeline::queued(connection, INLINE_RETRY).unwrap();
    let settle = Arc::new(Collected::default());
    let started = std::time::Instant::now();

    run(&pipeline, vec![queued(1, track("u1", "Flaky"), &settle)]).await;

    let held = started.elapsed();
    assert!(
        held < Duration::from_secs(10),
        "held in memory for {held:?}"
    );
    let settled = settle.by_id(1);
    assert!(settled.retryable(), "{settled:?}");
    let attempts = server.received_requests().await.unwrap().len();
    assert!(
        attempts > 1,
        "retried in memory first ({attempts} attempts)"
    );
}

#[tokio::test]
async fn a_wait_the_destination_asks_for_is_kept_for_the_queue() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "90"))
        .mount(&server)
        .await;
    let pipeline = Pipeline::queued(Arc::new(connection(&server.uri())), INLINE_RETRY).unwrap();
    let settle = Arc::new(Collected::default());
    let before = std::time::SystemTime::now();

    run(&pipeline, vec![queued(1, track("u1", "Busy"), &settle)]).await;

    let settled = settle.by_id(1);
    assert!(settled.retryable(), "{settled:?}");
    let not_before = settled.letters[0].not_before.expect("the server's wait");
    let wait = not_before.duration_since(before).unwrap();
    assert!(
        (Duration::from_secs(89)..Duration::from_secs(95)).contains(&wait),
        "{wait:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_watched_ticket_keeps_the_plan_and_every_attempt_with_secrets_redacted() {
    let server = MockServer::start().await;
    // The first attempt fails, the second is answered.
    Mock::given(method("POST"))
        .and(path("/events"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/events"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"echo": KEY})))
        .mount(&server)
        .await;
    let pipeline = Pipeline::queued(Arc::new(connection(&server.uri())), INLINE_RETRY).unwrap();
    let settled = Arc::new(Collected::default());
    let watched = |id, event| Input::Queued {
        ticket: Ticket::watched(id, Arc::clone(&settled) as Arc<dyn Settle>),
        event,
    };
    run(
        &pipeline,
        vec![
            watched(1, track("user-1", "Signed Up")),
            watched(2, json!({"type": "page", "userId": "user-1"})),
            queued(3, track("user-2", "Signed Up"), &settled),
        ],
    )
    .await;

    let sent = settled.by_id(1);
    assert_eq!(sent.requests, 1);
    let journal = sent.journal.expect("a watched ticket keeps a journal");
    assert!(
        matches!(&journal.planned[..], [ferry_pipeline::Note::Request { label, method, url }]
            if label == "track" && method == "POST" && url.ends_with("/events")),
        "{:?}",
        journal.planned
    );
    let [exchange] = &journal.exchanges[..] else {
        panic!("one exchange: {:?}", journal.exchanges);
    };
    let statuses: Vec<Option<u16>> = exchange.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(503), Some(202)]);
    assert!(exchange.attempts[0].at <= exchange.attempts[1].at);
    assert_eq!(exchange.response.as_ref().unwrap().status, 202);
    assert!(exchange.failure.is_none());
    let shown = format!("{exchange:?}");
    assert!(!shown.contains(KEY), "the key shows: {shown}");
    assert!(shown.contains("[redacted]"), "{shown}");

    // A page has no action: nothing is sent, and the journal says why.
    let skipped = settled.by_id(2);
    assert_eq!(skipped.requests, 0);
    let journal = skipped.journal.unwrap();
    assert!(journal.exchanges.is_empty());
    assert!(
        matches!(&journal.planned[..], [ferry_pipeline::Note::Skipped { reason, .. }] if !reason.is_empty()),
        "{:?}",
        journal.planned
    );

    // Nobody watched the third: no journal is kept for it.
    let unwatched = settled.by_id(3);
    assert!(unwatched.delivered());
    assert!(unwatched.journal.is_none());
}
