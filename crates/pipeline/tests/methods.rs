//! Every HTTP method a mapping can name is delivered like POST: Customer.io's identify is a PUT
//! and its delete a DELETE, through the bundled mapping to a loopback server.

use std::sync::Arc;

use ferry_delivery::DeadLetterWriter;
use ferry_engine::Connection;
use ferry_pipeline::{Input, Pipeline};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn put_and_delete_are_delivered_like_post() {
    let server = MockServer::start().await;
    for (verb, route) in [
        ("PUT", "/api/v1/customers/user-1"),
        ("POST", "/api/v1/customers/user-1/events"),
        ("DELETE", "/api/v1/customers/user-1"),
    ] {
        Mock::given(method(verb))
            .and(path(route))
            .and(header_exists("authorization"))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;
    }
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings/customerio.yaml");
    let mapping = ferry_engine::load(&file).unwrap_or_else(|d| panic!("{d}"));
    let settings = json!({"site_id": "site-1", "api_key": "cio-SECRET-key"});
    let mut connection = Connection::new(Arc::new(mapping), settings.as_object().unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    connection.override_base_url(&server.uri()).unwrap();
    let dir = tempfile::tempdir().expect("a temp dir");
    let writer = DeadLetterWriter::open(dir.path().join("dead.ndjson")).expect("opens");
    let pipeline = Pipeline::new(Arc::new(connection), writer).expect("valid rules");
    let (tx, rx) = mpsc::channel(4);
    let events: [Value; 3] = [
        json!({"type": "identify", "userId": "user-1", "traits": {"email": "a@example.com", "plan": "pro"}}),
        json!({"type": "track", "userId": "user-1", "event": "Signed Up"}),
        json!({"type": "delete", "userId": "user-1"}),
    ];
    for (i, event) in events.into_iter().enumerate() {
        tx.send(Input::Event {
            index: i + 1,
            event,
        })
        .await
        .unwrap();
    }
    drop(tx);
    let summary = pipeline.run(rx, &mut |_| {}).await.expect("run completes");
    assert_eq!(summary.delivered, 3, "{summary:?}");
    assert_eq!(summary.dead_lettered, 0, "{summary:?}");
    let received = server.received_requests().await.unwrap();
    let put = received
        .iter()
        .find(|r| r.method.as_str() == "PUT")
        .expect("the identify was sent");
    let body: Value = serde_json::from_slice(&put.body).unwrap();
    assert_eq!(body, json!({"email": "a@example.com", "plan": "pro"}));
}
