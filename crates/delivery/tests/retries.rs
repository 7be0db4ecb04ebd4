//! Waiting between attempts: backoff when the server says nothing, the server's wait when it
//! names one, and giving up early when that wait would overrun the total budget.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{fast_rules, track};
use ferry_delivery::{Destination, FailureKind, Outcome, Rules};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A server answering `first` to the first `times` requests and 200 after that.
async fn server_failing(first: ResponseTemplate, times: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(first)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

async fn count(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .len()
}

#[tokio::test]
async fn too_many_requests_429_without_headers_is_retried_with_backoff() {
    let server = server_failing(ResponseTemplate::new(429).set_body_string("slow down"), 10).await;
    let destination = Destination::new(fast_rules()).unwrap();
    let started = Instant::now();

    let delivery = destination.send(&track(&server.uri())).await;

    assert_eq!(count(&server).await, 3);
    let Outcome::Failed(failure) = &delivery.outcome else {
        panic!("{:?}", delivery.outcome);
    };
    assert_eq!(failure.kind, FailureKind::AttemptsExhausted);
    assert_eq!(failure.reason, "429 Too Many Requests after 3 attempts");
    assert_eq!(
        failure.last_response.as_ref().unwrap().body_text(),
        "slow down"
    );
    // Two backoffs of at most 10 ms and 20 ms: no long waits without a header.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn too_many_requests_429_then_success_is_delivered() {
    let server = server_failing(ResponseTemplate::new(429), 2).await;
    let destination = Destination::new(fast_rules()).unwrap();

    let delivery = destination.send(&track(&server.uri())).await;

    assert_eq!(count(&server).await, 3);
    assert!(delivery.is_delivered(), "{:?}", delivery.outcome);
    assert_eq!(delivery.statuses(), [Some(429), Some(429), Some(200)]);
}

#[tokio::test]
async fn retry_after_seconds_is_waited_instead_of_the_backoff() {
    let server = server_failing(
        ResponseTemplate::new(429).insert_header("Retry-After", "1"),
        1,
    )
    .await;
    let destination = Destination::new(fast_rules()).unwrap();
    let started = Instant::now();

    let delivery = destination.send(&track(&server.uri())).await;

    let elapsed = started.elapsed();
    assert_eq!(count(&server).await, 2);
    assert!(delivery.is_delivered(), "{:?}", delivery.outcome);
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn retry_after_http_date_is_waited() {
    let in_two_seconds = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    let server = server_failing(
        ResponseTemplate::new(503).insert_header("Retry-After", in_two_seconds.as_str()),
        1,
    )
    .await;
    let destination = Destination::new(fast_rules()).unwrap();
    let started = Instant::now();

    let delivery = destination.send(&track(&server.uri())).await;

    // The date has whole seconds: the wait is between one and two seconds.
    let elapsed = started.elapsed();
    assert_eq!(count(&server).await, 2);
    assert!(delivery.is_delivered(), "{:?}", delivery.outcome);
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
}

#[tokio::test]
async fn rate_limit_reset_epoch_seconds_on_429_is_waited() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let reset = (now + 2).to_string();
    let server = server_failing(
        ResponseTemplate::new(429)
            .insert_header("X-RateLimit-Limit", "250000")
            .insert_header("X-RateLimit-Remaining", "0")
            .insert_header("X-RateLimit-Reset", reset.as_str()),
        1,
    )
    .await;
    let destination = Destination::new(fast_rules()).unwrap();
    let started = Instant::now();

    let delivery = destination.send(&track(&server.uri())).await;

    // The reset is 1 to 2 seconds away, depending on where in the current second we are.
    let elapsed = started.elapsed();
    assert_eq!(count(&server).await, 2);
    assert!(delivery.is_delivered(), "{:?}", delivery.outcome);
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn retry_after_beyond_the_total_budget_stops_at_once_and_says_why() {
    let server = server_failing(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "30")
            .set_body_string("quota exceeded"),
        10,
    )
    .await;
    let destination = Destination::new(Rules {
        max_total: Duration::from_secs(2),
        ..fast_rules()
    })
    .unwrap();
    let started = Instant::now();

    let delivery = destination.send(&track(&server.uri())).await;

    assert_eq!(count(&server).await, 1);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let Outcome::Failed(failure) = &delivery.outcome else {
        panic!("{:?}", delivery.outcome);
    };
    assert_eq!(failure.kind, FailureKind::BudgetExhausted);
    assert!(failure.retryable());
    assert!(
        failure.reason.starts_with(
            "429 Too Many Requests; the server asked to wait 30s (Retry-After), more than the"
        ),
        "{}",
        failure.reason
    );
    assert!(
        failure
            .reason
            .ends_with("of the 2s total budget; gave up after 1 attempt"),
        "{}",
        failure.reason
    );
    assert_eq!(
        failure.last_response.as_ref().unwrap().body_text(),
        "quota exceeded"
    );
    // A durable retry later must wait at least as long as the server asked.
    assert_eq!(failure.retry_after, Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn a_failure_without_a_server_wait_asks_for_none() {
    let server = server_failing(ResponseTemplate::new(503), 10).await;
    let destination = Destination::new(fast_rules()).unwrap();

    let delivery = destination.send(&track(&server.uri())).await;

    let Outcome::Failed(failure) = &delivery.outcome else {
        panic!("{:?}", delivery.outcome);
    };
    assert_eq!(failure.kind, FailureKind::AttemptsExhausted);
    assert_eq!(failure.retry_after, None);
}

#[tokio::test]
async fn retry_after_is_ignored_when_the_rules_say_so() {
    let server = server_failing(
        ResponseTemplate::new(429).insert_header("Retry-After", "30"),
        10,
    )
    .await;
    let destination = Destination::new(Rules {
        respect_retry_after: false,
        max_total: Duration::from_secs(5),
        ..fast_rules()
    })
    .unwrap();
    let started = Instant::now();

    let delivery = destination.send(&track(&server.uri())).await;

    assert_eq!(count(&server).await, 3);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let Outcome::Failed(failure) = &delivery.outcome else {
        panic!("{:?}", delivery.outcome);
    };
    assert_eq!(failure.kind, FailureKind::AttemptsExhausted);
}

#[tokio::test]
async fn statuses_outside_the_retry_list_are_not_retried() {
    let server = server_failing(ResponseTemplate::new(503), 10).await;
    let destination = Destination::new(Rules {
        retry_statuses: vec![429],
        ..fast_rules()
    })
    .unwrap();

    let delivery = destination.send(&track(&server.uri())).await;

    assert_eq!(count(&server).await, 1);
    let Outcome::Failed(failure) = &delivery.outcome else {
        panic!("{:?}", delivery.outcome);
    };
    assert_eq!(failure.kind, FailureKind::Rejected);
}
