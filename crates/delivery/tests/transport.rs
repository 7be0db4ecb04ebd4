//! Attempts that get no response (a hanging server, a closed connection, nobody listening)
//! are retried; responses are read in full and decoded.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Behaviour, RawServer, fast_rules, ok, track};
use ferry_delivery::{
    Destination, FailureKind, MAX_RESPONSE_BYTES, Method, Outcome, Outgoing, Rules, TransportError,
};
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn a_hanging_server_times_out_each_attempt_then_fails() {
    let server = RawServer::start(|_| Behaviour::Hang).await;
    let destination = Destination::new(Rules {
        timeout: Duration::from_millis(300),
        ..fast_rules()
    })
    .unwrap();
    let started = Instant::now();

    let delivery = destination.send(&track(&server.url("/users/track"))).await;

    let elapsed = started.elapsed();
    assert_eq!(server.seen.count(), 3);
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let Outcome::Failed(failure) = &delivery.outcome else {
        panic!("{:?}", delivery.outcome);
    };
    assert_eq!(failure.kind, FailureKind::AttemptsExhausted);
    assert_eq!(
        failure.reason,
        "timeout (no response within 300ms) after 3 attempts"
    );
    assert_eq!(failure.last_response, None);
    assert_eq!(delivery.statuses(), [None, None, None]);
    for attempt in &delivery.history {
        assert_eq!(
            attempt.error,
            Some(TransportError::Timeout(Duration::from_millis(300)))
        );
    }
}

#[tokio::test]
async fn the_attempt_timeout_is_cut_to_what_is_left_of_the_total_budget() {
    let server = RawServer::start(|_| Behaviour::Hang).await;
    let destination = Destination::new(Rules {
        timeout: Duration::from_secs(30),
        max_total: Duration::from_millis(500),
        ..fast_rules()
    })
    .unwrap();
    let started = Instant::now();

    let delivery = destination.send(&track(&server.url("/users/track"))).await;

    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    let Outcome::Failed(failure) = &delivery.outcome else {
        panic!("{:?}", delivery.outcome);
    };
    assert_eq!(
        failure.kind,
        FailureKind::BudgetExhausted,
        "{}",
        failure.reason
    );
    assert!(
        failure.reason.contains("500ms total budget"),
        "{}",
        failure.reason
    );
}

#[tokio::test]
async fn a_connection_closed_without_an_answer_is_retried() {
    let server = RawServer::start(|n| if n < 2 { Behaviour::Close } else { ok() }).await;
    let destination = Destination::new(fast_rules()).unwrap();

    let delivery = destination.send(&track(&server.url("/users/track"))).await;

    assert_eq!(server.seen.count(), 3);
    for request in server.seen.raw() {
        assert!(
            request.starts_with("POST /users/track HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.ends_with(common::BODY), "{request}");
    }
    assert!(delivery.is_delivered(), "{:?}", delivery.outcome);
    assert_eq!(delivery.statuses(), [None, None, Some(200)]);
    assert!(
        matches!(
            delivery.history[0].error,
            Some(TransportError::Connection(_))
        ),
        "{:?}",
        delivery.history[0].error
    );
}

#[tokio::test]
async fn a_connection_always_closed_fails_after_max_attempts() {
    let server = RawServer::start(|_| Behaviour::Close).await;
    let destination = Destination::new(fast_rules()).unwrap();

    let delivery = destination.send(&track(&server.url("/users/track"))).await;

    assert_eq!(server.seen.count(), 3);
    let Outcome::Failed(failure) = &delivery.outcome else {
        panic!("{:?}", delivery.outcome);
    };
    assert_eq!(failure.kind, FailureKind::AttemptsExhausted);
    assert!(
        failure.reason.starts_with("connection error ("),
        "{}",
        failure.reason
    );
    assert!(
        failure.reason.ends_with(") after 3 attempts"),
        "{}",
        failure.reason
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_fails() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let destination = Destination::new(fast_rules()).unwrap();

    let delivery = destination
        .send(&track(&format!("http://127.0.0.1:{port}/users/track")))
        .await;

    assert_eq!(delivery.attempts, 3);
    let Outcome::Failed(failure) = &delivery.outcome else {
        panic!("{:?}", delivery.outcome);
    };
    assert_eq!(failure.kind, FailureKind::AttemptsExhausted);
    assert!(
        failure.reason.starts_with("connection failed ("),
        "{}",
        failure.reason
    );
}

#[tokio::test]
async fn an_invalid_request_is_not_sent() {
    let destination = Destination::new(fast_rules()).unwrap();

    let delivery = destination
        .send(&Outgoing::new(Method::POST, "api.example.com/no-scheme"))
        .await;

    assert_eq!(delivery.attempts, 0);
    let Outcome::Failed(failure) = &delivery.outcome else {
        panic!("{:?}", delivery.outcome);
    };
    assert_eq!(failure.kind, FailureKind::InvalidRequest);
    assert!(
        failure.reason.starts_with("invalid URL"),
        "{}",
        failure.reason
    );
}

#[tokio::test]
async fn gzip_encoded_response_bodies_are_decoded() {
    let json = r#"{"message":"success","attributes_processed":1}"#;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(json.as_bytes()).unwrap();
    let gzipped = encoder.finish().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("accept-encoding", "gzip"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Content-Encoding", "gzip")
                .insert_header("Content-Type", "application/json")
                .set_body_bytes(gzipped),
        )
        .mount(&server)
        .await;
    let destination = Destination::new(fast_rules()).unwrap();

    let delivery = destination.send(&track(&server.uri())).await;

    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let Outcome::Delivered(response) = &delivery.outcome else {
        panic!("{:?}", delivery.outcome);
    };
    assert_eq!(response.body_text(), json);
    assert_eq!(response.header("content-encoding"), None);
}

#[tokio::test]
async fn an_endless_response_body_is_cut_at_the_cap() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(vec![b'x'; MAX_RESPONSE_BYTES + 4096]),
        )
        .mount(&server)
        .await;
    let destination = Destination::new(fast_rules()).unwrap();

    let delivery = destination.send(&track(&server.uri())).await;

    let Outcome::Delivered(response) = &delivery.outcome else {
        panic!("{:?}", delivery.outcome);
    };
    assert_eq!(response.body.len(), MAX_RESPONSE_BYTES);
}
