//! The ingest endpoints over real HTTP, with the server started in-process on a fresh store:
//! authentication, the answers each wire format gives, compressed bodies and their bounds.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use ferry_server::{ConfigOrigin, Options, Running, start};
use serde_json::{Value, json};

const CONFIG: &str = "version: 1
mappings: MAPPINGS
dry_run: true
sources:
  web: { type: segment, keys: [seg-key] }
  app: { type: amplitude, keys: [amp-key] }
  referrals: { type: extole, keys: [hook-secret] }
connections:
  extole: { source: web, mapping: extole, settings: { api_key: x } }
  amplitude-extole: { source: app, mapping: amplitude-extole, settings: { api_key: x } }
  braze: { source: referrals, mapping: braze, settings: { instance_url: 'https://rest.iad-01.braze.com', rest_api_key: y } }
";

async fn server(dir: &Path) -> Running {
    let mappings = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings");
    let config = dir.join("ferry.yaml");
    std::fs::write(
        &config,
        CONFIG.replace("MAPPINGS", &mappings.display().to_string()),
    )
    .unwrap();
    start(Options {
        origin: ConfigOrigin::File(config),
        listen: Some("127.0.0.1:0".to_owned()),
        data: Some(dir.join("data")),
        dry_run: false,
        drain: Duration::from_secs(1),
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"))
}

async fn post(
    running: &Running,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("http://{}{path}", running.address))
        .header("Content-Type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn basic(key: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn identify(id: &str) -> Value {
    json!({"type": "identify", "userId": "u1", "messageId": id, "traits": {"email": "a@example.com"}})
}

#[tokio::test]
async fn segment_calls_are_authenticated_and_answered_as_segment_does() {
    let dir = tempfile::tempdir().unwrap();
    let running = server(dir.path()).await;
    let auth = basic("seg-key");

    let (status, body) = post(
        &running,
        "/v1/identify",
        &[("Authorization", &auth)],
        identify("m-1").to_string().into_bytes(),
    )
    .await;
    assert_eq!((status, body), (200, json!({"success": true})));

    // The write key in the body works too; an unknown one does not.
    let mut with_key = identify("m-2");
    with_key["writeKey"] = json!("seg-key");
    assert_eq!(
        post(
            &running,
            "/v1/identify",
            &[],
            with_key.to_string().into_bytes()
        )
        .await
        .0,
        200
    );
    let (status, body) = post(
        &running,
        "/v1/identify",
        &[("Authorization", &basic("wrong"))],
        identify("m-3").to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["success"], false);

    // Invalid JSON: 400.
    let (status, body) = post(
        &running,
        "/v1/batch",
        &[("Authorization", &auth)],
        b"{".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // A gzip-compressed batch is read.
    let batch = json!({"batch": [identify("m-4"), identify("m-5")]}).to_string();
    let (status, _) = post(
        &running,
        "/v1/batch",
        &[("Authorization", &auth), ("Content-Encoding", "gzip")],
        gzip(batch.as_bytes()),
    )
    .await;
    assert_eq!(status, 200);

    // A small body that inflates past the limit is refused, not read whole.
    let bomb = gzip(&vec![b' '; 64 * 1024 * 1024]);
    assert!(bomb.len() < 200 * 1024);
    let (status, _) = post(
        &running,
        "/v1/batch",
        &[("Authorization", &auth), ("Content-Encoding", "gzip")],
        bomb,
    )
    .await;
    assert_eq!(status, 413);

    let received = running.metrics_text();
    assert!(
        received.contains("ferry_events_received_total{source=\"web\"} 4"),
        "{received}"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn amplitude_requests_get_amplitude_answers() {
    let dir = tempfile::tempdir().unwrap();
    let running = server(dir.path()).await;
    let event = json!({"event_type": "Signed Up", "user_id": "ann@example.com", "insert_id": "i-1", "time": 1_763_632_800_000_i64});
    let (status, body) = post(
        &running,
        "/2/httpapi",
        &[],
        json!({"api_key": "amp-key", "events": [event]})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], 200);
    assert_eq!(body["events_ingested"], 1);

    let (status, body) = post(
        &running,
        "/2/httpapi",
        &[],
        json!({"api_key": "nope", "events": [event]})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid API key"),
        "{body}"
    );

    let (status, body) = post(
        &running,
        "/2/httpapi",
        &[],
        json!({"api_key": "amp-key", "events": [event, {"user_id": "ann@example.com"}]})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["events_with_missing_fields"]["event_type"], json!([1]));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn extole_webhooks_need_the_shared_secret() {
    let dir = tempfile::tempdir().unwrap();
    let running = server(dir.path()).await;
    let events = json!([
        {"event_name": "Shared", "external_id": "a-1", "event_time": "2026-11-20T10:00:00Z"},
        {"no_name": true}
    ])
    .to_string();
    let (status, _) = post(
        &running,
        "/webhooks/extole/referrals",
        &[("Authorization", "Bearer wrong")],
        events.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post(
        &running,
        "/webhooks/extole/nowhere",
        &[("Authorization", "Bearer hook-secret")],
        events.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = post(
        &running,
        "/webhooks/extole/referrals",
        &[("Authorization", "Bearer hook-secret")],
        events.into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["rejected"][0]["position"], 2);
    let dead = running.queue().dead_letters(None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("refused at ingest"),
        "{:?}",
        dead[0]
    );
    running.stop().await.unwrap();
}

/// A write key is the source's credential: an event refused at ingest is kept as a dead letter
/// without it, as a stored event is, whether it came alone or in a batch, and whatever made ferry
/// refuse it.
#[tokio::test]
async fn a_refused_segment_event_keeps_no_write_key() {
    let dir = tempfile::tempdir().unwrap();
    let running = server(dir.path()).await;
    let auth = basic("seg-key");
    let big = "x".repeat(40 * 1024);
    let batch = format!(
        r#"{{"writeKey":"seg-key","batch":[{},{{"writeKey":"seg-key","type":"launch","userId":"u"}},{{"writeKey":"seg-key","type":"track","event":"e","userId":"u","pad":"{big}"}},{{"writeKey":"seg-key","type":"identify","userId":"u","writeKey":"seg-key"}}]}}"#,
        identify("m-1")
    );
    let (status, body) = post(&running, "/v1/batch", &[], batch.into_bytes()).await;
    assert_eq!(status, 200, "{body}");
    for single in [
        // A track without `event`.
        r#"{"writeKey":"seg-key","userId":"u"}"#,
        // An event a worker could not read; its key, escaped, still authenticates.
        r#"{"userId":"u","event":"e","properties":{"s":"\ud800"},"write\u004bey":"seg-key"}"#,
    ] {
        let (status, body) = post(&running, "/v1/track", &[], single.as_bytes().to_vec()).await;
        assert_eq!(status, 200, "{single}: {body}");
    }
    let (status, _) = post(
        &running,
        "/v1/identify",
        &[("Authorization", &auth)],
        br#"{"writeKey":"seg-key","anonymousId":7.5e0,"userId":[]}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 200);

    let dead = running.queue().dead_letters(None, 10).await.unwrap();
    assert_eq!(dead.len(), 6, "{dead:?}");
    for summary in &dead {
        assert!(summary.reason.contains("refused at ingest"), "{summary:?}");
        let letter = running
            .queue()
            .dead_letter(summary.id)
            .await
            .unwrap()
            .unwrap();
        let shown = format!("{letter:?}");
        assert!(
            !shown.contains("seg-key"),
            "a refused event kept its write key: {shown}"
        );
        assert!(
            !letter.event.contains("writeKey") && !letter.event.contains("u004bey"),
            "{shown}"
        );
        assert!(letter.event.contains(r#""userId""#), "{shown}");
    }
    running.stop().await.unwrap();
}
