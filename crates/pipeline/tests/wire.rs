//! Every byte on the wire is what the mapping says, checked at a real HTTP server on loopback
//! (wiremock): one header of each name, the bodies of each format and their batches, and
//! responses that say no although their status is 2xx, or that name the items they refused.

mod common;

use common::{connect, deliver, received};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "api-SECRET-key-789";

/// A mapping of one `track` action whose request is `request` (YAML, indented by 6), with
/// `extra` keys on the action (indented by 4).
fn connection(server: &MockServer, request: &str, extra: &str) -> ferry_engine::Connection {
    let text = format!(
        "version: 1\nname: wire\nsource: segment\nsettings:\n  key: {{ type: string, required: true, secret: true, description: API key }}\nhttp:\n  base_url: https://api.example.com\n  auth: {{ bearer: \"{{{{ settings.key }}}}\" }}\n  headers: {{ Accept: application/json }}\ndelivery:\n  retry: {{ max_attempts: 2, initial_backoff_ms: 1, max_backoff_ms: 2 }}\nactions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n{request}{extra}"
    );
    let mapping = ferry_engine::load_str("wire.yaml", &text).unwrap_or_else(|d| panic!("{d}"));
    connect(mapping, &json!({ "key": KEY }), &server.uri())
}

fn track(i: usize) -> Value {
    json!({"type": "track", "event": format!("e{i}"), "userId": format!("u{i}")})
}

async fn answering(status: u16, body: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/events"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    server
}

fn header_values(request: &wiremock::Request, name: &str) -> Vec<String> {
    request
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("text").to_owned())
        .collect()
}

#[tokio::test]
async fn each_header_is_sent_once_the_requests_own_replacing_the_mappings_and_the_auths() {
    let server = answering(200, json!({})).await;
    let request = "      headers:\n        content-type: application/vnd.api+json\n        authorization: \"Token {{ settings.key }}\"\n        ACCEPT: text/plain\n      body:\n        name: { from: $.event }\n";
    let run = deliver(connection(&server, request, ""), vec![track(1)]).await;
    assert_eq!(run.summary.items_delivered, 1, "{}", run.file);
    let got = received(&server).await;
    let sent = &got[0];
    assert_eq!(
        header_values(sent, "content-type"),
        ["application/vnd.api+json"]
    );
    assert_eq!(
        header_values(sent, "authorization"),
        [format!("Token {KEY}")]
    );
    assert_eq!(header_values(sent, "accept"), ["text/plain"]);
    assert_eq!(sent.body, br#"{"name":"e1"}"#);
}

#[tokio::test]
async fn a_json_array_batch_arrives_as_one_array_of_the_events_objects() {
    let server = answering(200, json!({})).await;
    let request = "      format: json_array\n      body:\n        event: { from: $.event }\n";
    let events = (1..=3).map(track).collect();
    let run = deliver(
        connection(&server, request, "    batch: { max_items: 10 }\n"),
        events,
    )
    .await;
    assert_eq!(run.summary.items_delivered, 3, "{}", run.file);
    let got = received(&server).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].body,
        br#"[{"event":"e1"},{"event":"e2"},{"event":"e3"}]"#
    );
    assert_eq!(header_values(&got[0], "content-type"), ["application/json"]);
}

#[tokio::test]
async fn an_ndjson_batch_arrives_as_one_line_per_event() {
    let server = answering(200, json!({})).await;
    let request = "      format: ndjson\n      body:\n        event: { from: $.event }\n";
    let run = deliver(
        connection(&server, request, "    batch: { max_items: 10 }\n"),
        (1..=2).map(track).collect(),
    )
    .await;
    assert_eq!(run.summary.items_delivered, 2, "{}", run.file);
    let got = received(&server).await;
    assert_eq!(got[0].body, b"{\"event\":\"e1\"}\n{\"event\":\"e2\"}\n");
    assert_eq!(
        header_values(&got[0], "content-type"),
        ["application/x-ndjson"]
    );
}

#[tokio::test]
async fn a_form_batch_concatenates_the_list_its_field_holds() {
    let server = answering(200, json!({})).await;
    let request = "      format: form\n      body:\n        api_key: { value: public }\n        data: { items: [ { fields: { event: { from: $.event } } } ] }\n";
    let run = deliver(
        connection(
            &server,
            request,
            "    batch: { concat: [data], max_items: 10 }\n",
        ),
        (1..=2).map(track).collect(),
    )
    .await;
    assert_eq!(run.summary.items_delivered, 2, "{}", run.file);
    let got = received(&server).await;
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&got[0].body)
        .into_owned()
        .collect();
    assert_eq!(
        fields,
        [
            ("api_key".to_owned(), "public".to_owned()),
            (
                "data".to_owned(),
                r#"[{"event":"e1"},{"event":"e2"}]"#.to_owned()
            )
        ]
    );
}

#[tokio::test]
async fn a_2xx_answer_that_says_the_request_failed_dead_letters_it() {
    let failure = "    failure: { when: { equals: { $.body.status: 0 } }, reason: $.body.error }\n";
    let request = "      body:\n        name: { from: $.event }\n";
    let refused = answering(
        200,
        json!({"status": 0, "error": "$distinct_id is required"}),
    )
    .await;
    let run = deliver(connection(&refused, request, failure), vec![track(1)]).await;
    assert_eq!(run.summary.items_delivered, 0);
    assert_eq!(run.dead.len(), 1, "{}", run.file);
    assert!(
        run.dead[0].reason.ends_with(
            "200 OK, but the response says the request failed: $distinct_id is required"
        ),
        "{}",
        run.dead[0].reason
    );
    let taken = answering(200, json!({"status": 1, "error": null})).await;
    let run = deliver(connection(&taken, request, failure), vec![track(1)]).await;
    assert_eq!(run.summary.items_delivered, 1, "{}", run.file);
}

#[tokio::test]
async fn a_batch_whose_2xx_answer_says_it_failed_dead_letters_every_item() {
    let server = answering(200, json!({"status": 0, "error": "bad token"})).await;
    let request = "      format: json_array\n      body:\n        event: { from: $.event }\n";
    let extra = "    batch: { max_items: 10 }\n    failure: { when: { equals: { $.body.status: 0 } }, reason: $.body.error, retry: true }\n";
    let run = deliver(
        connection(&server, request, extra),
        (1..=3).map(track).collect(),
    )
    .await;
    assert_eq!(run.summary.items_delivered, 0);
    assert_eq!(run.dead.len(), 3, "{}", run.file);
    assert!(run.dead.iter().all(|d| d.reason.contains("bad token")));
}

#[tokio::test]
async fn an_error_answer_that_names_failed_items_fails_only_those() {
    let server = answering(
        400,
        json!({"code": 400, "error": "some data points in the request failed validation", "failed_records": [{"index": 1, "field": "properties.time", "message": "'properties.time' is invalid"}], "num_records_imported": 2}),
    )
    .await;
    let request = "      format: json_array\n      body:\n        event: { from: $.event }\n";
    let extra = "    batch:\n      max_items: 10\n      item_errors: { status: 400, list: $.failed_records, index: $.index, reason: $.message }\n";
    let run = deliver(
        connection(&server, request, extra),
        (1..=3).map(track).collect(),
    )
    .await;
    assert_eq!(received(&server).await.len(), 1, "not halved, not retried");
    assert_eq!(run.summary.items_delivered, 2, "{}", run.file);
    assert_eq!(run.dead.len(), 1, "{}", run.file);
    assert_eq!(run.dead[0].event["event"], json!("e2"));
    assert!(
        run.dead[0]
            .reason
            .ends_with("refused by the destination: 'properties.time' is invalid"),
        "{}",
        run.dead[0].reason
    );
}
