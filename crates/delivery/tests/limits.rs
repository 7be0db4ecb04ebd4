//! A destination's rate and concurrency limits, measured where they matter: at the server.

mod common;

use std::time::Duration;

use common::{Behaviour, RawServer, fast_rules, ok, track};
use ferry_delivery::{Delivery, Destination, RateLimit, Rules};
use tokio::task::JoinSet;

/// Sends `n` requests at once from as many tasks, sharing `destination`.
async fn send_concurrently(destination: &Destination, url: &str, n: usize) -> Vec<Delivery> {
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let destination = destination.clone();
        let request = track(url);
        tasks.spawn(async move { destination.send(&request).await });
    }
    tasks.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_holds_at_the_server_for_concurrent_sends() {
    let server = RawServer::start(|_| ok()).await;
    let destination = Destination::new(Rules {
        rate_limit: Some(RateLimit::per_second(5)),
        ..fast_rules()
    })
    .unwrap();

    let deliveries = send_concurrently(&destination, &server.url("/users/track"), 15).await;

    assert!(deliveries.iter().all(Delivery::is_delivered));
    assert_eq!(server.seen.count(), 15);
    let arrivals = server.seen.arrivals();
    let span = arrivals[14] - arrivals[0];
    // Evenly spaced, 200 ms apart: 14 gaps.
    assert!(
        span >= Duration::from_millis(2500),
        "15 requests in {span:?}"
    );
    // No six requests within one second (allowing for scheduling noise).
    for window in arrivals.windows(6) {
        let spread = window[5] - window[0];
        assert!(
            spread >= Duration::from_millis(700),
            "6 requests within {spread:?}"
        );
    }
}

#[tokio::test]
async fn rate_limit_paces_retries_too() {
    let server = RawServer::start(|_| Behaviour::Respond {
        status: 503,
        delay: Duration::ZERO,
        body: "",
    })
    .await;
    let destination = Destination::new(Rules {
        rate_limit: Some(RateLimit::per_second(5)),
        max_attempts: 4,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
        ..fast_rules()
    })
    .unwrap();

    let delivery = destination.send(&track(&server.url("/users/track"))).await;

    assert_eq!(delivery.attempts, 4);
    assert_eq!(server.seen.count(), 4);
    let arrivals = server.seen.arrivals();
    let span = arrivals[3] - arrivals[0];
    assert!(span >= Duration::from_millis(550), "4 attempts in {span:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_caps_requests_in_flight_at_the_server() {
    let server = RawServer::start(|_| Behaviour::Respond {
        status: 200,
        delay: Duration::from_millis(200),
        body: "{}",
    })
    .await;
    let destination = Destination::new(Rules {
        concurrency: Some(3),
        ..fast_rules()
    })
    .unwrap();

    let deliveries = send_concurrently(&destination, &server.url("/users/track"), 9).await;

    assert!(deliveries.iter().all(Delivery::is_delivered));
    assert_eq!(server.seen.count(), 9);
    assert_eq!(server.seen.max_in_flight(), 3);
    let arrivals = server.seen.arrivals();
    // Three waves of three, each held 200 ms by the server.
    assert!(
        arrivals[8] - arrivals[0] >= Duration::from_millis(350),
        "{:?}",
        arrivals[8] - arrivals[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_concurrency_limit_requests_overlap() {
    let server = RawServer::start(|_| Behaviour::Respond {
        status: 200,
        delay: Duration::from_millis(300),
        body: "{}",
    })
    .await;
    let destination = Destination::new(fast_rules()).unwrap();

    let deliveries = send_concurrently(&destination, &server.url("/users/track"), 6).await;

    assert!(deliveries.iter().all(Delivery::is_delivered));
    assert!(
        server.seen.max_in_flight() > 3,
        "{}",
        server.seen.max_in_flight()
    );
}
