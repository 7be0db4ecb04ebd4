//! How each response status ends a request: delivered, rejected at once, too large, or
//! retried until the attempts run out. One real server per case, counting what it received.

mod common;

use common::{BODY, fast_rules, track};
use ferry_delivery::{Destination, FailureKind, Outcome};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

async fn server_answering(status: u16, body: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/users/track"))
        .respond_with(ResponseTemplate::new(status).set_body_string(body))
        .mount(&server)
        .await;
    server
}

async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

fn assert_sent_as_rendered(request: &Request) {
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/users/track");
    assert_eq!(request.headers["authorization"], "Bearer test-key");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.body, BODY.as_bytes());
}

#[tokio::test]
async fn success_2xx_is_delivered_in_one_request() {
    for status in [200, 201] {
        let server = server_answering(status, r#"{"message":"success"}"#).await;
        let destination = Destination::new(fast_rules()).unwrap();

        let delivery = destination
            .send(&track(&format!("{}/users/track", server.uri())))
            .await;

        let requests = received(&server).await;
        assert_eq!(requests.len(), 1, "{status}");
        assert_sent_as_rendered(&requests[0]);
        let Outcome::Delivered(response) = &delivery.outcome else {
            panic!("{status}: {:?}", delivery.outcome);
        };
        assert_eq!(response.status, status);
        assert_eq!(response.body_text(), r#"{"message":"success"}"#);
        assert_eq!(response.header("Content-Type"), Some("text/plain"));
        assert_eq!(delivery.attempts, 1);
        assert_eq!(delivery.statuses(), [Some(status)]);
    }
}

#[tokio::test]
async fn client_errors_are_permanent_and_sent_once() {
    let cases = [
        (400, "400 Bad Request"),
        (401, "401 Unauthorized"),
        (403, "403 Forbidden"),
        (404, "404 Not Found"),
    ];
    for (status, reason) in cases {
        let server = server_answering(status, "no such thing").await;
        let destination = Destination::new(fast_rules()).unwrap();

        let delivery = destination
            .send(&track(&format!("{}/users/track", server.uri())))
            .await;

        let requests = received(&server).await;
        assert_eq!(requests.len(), 1, "{status}");
        assert_sent_as_rendered(&requests[0]);
        let Outcome::Failed(failure) = &delivery.outcome else {
            panic!("{status}: {:?}", delivery.outcome);
        };
        assert_eq!(failure.kind, FailureKind::Rejected);
        assert!(!failure.retryable());
        assert_eq!(failure.reason, reason);
        let last = failure.last_response.as_ref().unwrap();
        assert_eq!(last.status, status);
        assert_eq!(last.body_text(), "no such thing");
    }
}

#[tokio::test]
async fn payload_too_large_413_is_reported_for_splitting_not_retried() {
    let server = server_answering(413, "batch too big").await;
    let destination = Destination::new(fast_rules()).unwrap();

    let delivery = destination
        .send(&track(&format!("{}/users/track", server.uri())))
        .await;

    assert_eq!(received(&server).await.len(), 1);
    let Outcome::TooLarge(response) = &delivery.outcome else {
        panic!("{:?}", delivery.outcome);
    };
    assert_eq!(response.status, 413);
    assert_eq!(response.body_text(), "batch too big");
    assert_eq!(delivery.attempts, 1);
}

#[tokio::test]
async fn not_implemented_501_is_permanent() {
    let server = server_answering(501, "no").await;
    let destination = Destination::new(fast_rules()).unwrap();

    let delivery = destination
        .send(&track(&format!("{}/users/track", server.uri())))
        .await;

    assert_eq!(received(&server).await.len(), 1);
    let Outcome::Failed(failure) = &delivery.outcome else {
        panic!("{:?}", delivery.outcome);
    };
    assert_eq!(failure.kind, FailureKind::Rejected);
    assert_eq!(failure.reason, "501 Not Implemented");
}

#[tokio::test]
async fn server_errors_are_retried_until_max_attempts_then_fail_with_the_last_response() {
    let cases = [
        (500, "500 Internal Server Error"),
        (502, "502 Bad Gateway"),
        (503, "503 Service Unavailable"),
        (504, "504 Gateway Timeout"),
    ];
    for (status, line) in cases {
        let server = server_answering(status, "upstream down").await;
        let destination = Destination::new(fast_rules()).unwrap();

        let delivery = destination
            .send(&track(&format!("{}/users/track", server.uri())))
            .await;

        let requests = received(&server).await;
        assert_eq!(requests.len(), 3, "{status}");
        for request in &requests {
            assert_sent_as_rendered(request);
        }
        let Outcome::Failed(failure) = &delivery.outcome else {
            panic!("{status}: {:?}", delivery.outcome);
        };
        assert_eq!(failure.kind, FailureKind::AttemptsExhausted);
        assert!(failure.retryable());
        assert_eq!(failure.reason, format!("{line} after 3 attempts"));
        let last = failure.last_response.as_ref().unwrap();
        assert_eq!(last.status, status);
        assert_eq!(last.body_text(), "upstream down");
        assert_eq!(delivery.statuses(), [Some(status); 3]);
    }
}

#[tokio::test]
async fn a_retried_status_that_clears_is_delivered() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    let destination = Destination::new(fast_rules()).unwrap();

    let delivery = destination
        .send(&track(&format!("{}/users/track", server.uri())))
        .await;

    assert_eq!(received(&server).await.len(), 3);
    assert!(delivery.is_delivered(), "{:?}", delivery.outcome);
    assert_eq!(delivery.statuses(), [Some(503), Some(503), Some(201)]);
}
