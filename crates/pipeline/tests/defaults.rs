//! A mapping that leaves every optional section out is delivered with the same rules as one that
//! writes them empty: an absent `delivery:` must not mean zero timeouts.

use std::sync::Arc;
use std::time::Duration;

use ferry_delivery::DeadLetterWriter;
use ferry_engine::Connection;
use ferry_pipeline::{Input, Pipeline};
use serde_json::json;
use tokio::sync::mpsc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// `version`, `name`, `source`, `http.base_url` and one action: nothing optional is written.
const BARE: &str = r"version: 1
name: bare
source: segment
http:
  base_url: https://api.example.com
actions:
  track:
    when: { type: track }
    request:
      method: POST
      path: /events
      body:
        name: { from: $.event }
";

#[tokio::test]
async fn a_mapping_without_optional_sections_waits_for_a_slow_destination() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/events"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(50)))
        .mount(&server)
        .await;
    let mapping = ferry_engine::load_str("bare.yaml", BARE).unwrap_or_else(|d| panic!("{d}"));
    let mut connection =
        Connection::new(Arc::new(mapping), &serde_json::Map::new()).expect("no settings needed");
    connection
        .override_base_url(&server.uri())
        .expect("a loopback URL");
    let dir = tempfile::tempdir().expect("a temp dir");
    let writer =
        DeadLetterWriter::open(dir.path().join("dead.ndjson")).expect("dead-letter file opens");
    let pipeline = Pipeline::new(Arc::new(connection), writer).expect("valid rules");
    let (tx, rx) = mpsc::channel(4);
    for index in 1..=3 {
        let event = json!({"type": "track", "event": format!("e{index}")});
        tx.send(Input::Event { index, event })
            .await
            .expect("the run reads");
    }
    drop(tx);
    let summary = pipeline.run(rx, &mut |_| {}).await.expect("run completes");
    let requests = server.received_requests().await.expect("recording is on");
    assert_eq!(
        requests.len(),
        3,
        "each event is sent once, not retried for a timeout"
    );
    assert_eq!(summary.dead_lettered, 0, "{summary:?}");
    assert_eq!(summary.retries, 0, "{summary:?}");
    assert_eq!(summary.delivered, 3, "{summary:?}");
}
