//! The listener of `ferry serve` against clients that are slow, numerous or need TLS: each
//! test starts the real server with a small limit and plays the client by hand.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::client::basic;
use support::ferry::Start;
use support::{Destination, Ferry, WRITE_KEY, Workspace, WorkspaceOptions, post_batch, track};

/// A workspace whose listener has these `server:` settings.
fn workspace_with(destination: &Destination, server: &str) -> Workspace {
    Workspace::with(WorkspaceOptions {
        extra: format!("server: {server}\n"),
        ..WorkspaceOptions::to(&destination.url)
    })
}

/// Reads until the server closes the connection (or 20 s pass); what it sent, and when.
fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn headers_that_never_finish_are_cut_off() {
    let destination = Destination::start();
    let workspace = workspace_with(&destination, "{ header_timeout_seconds: 1 }");
    let ferry = Ferry::start(&workspace);

    // Headers that stop half-way.
    let mut stalled = TcpStream::connect(ferry.address).unwrap();
    stalled
        .write_all(b"POST /v1/batch HTTP/1.1\r\nHost: ferry\r\n")
        .unwrap();
    // Headers sent one byte every 300 ms.
    let mut trickle = TcpStream::connect(ferry.address).unwrap();
    let trickling = std::thread::spawn(move || {
        for byte in b"POST /v1/batch HTTP/1.1\r\nHost: ferry\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa" {
            if trickle.write_all(&[*byte]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        false
    });
    // An idle keep-alive connection.
    let mut idle = TcpStream::connect(ferry.address).unwrap();

    for (name, stream) in [("stalled", &mut stalled), ("idle", &mut idle)] {
        let (_, took) = read_until_closed(stream);
        assert!(took < Duration::from_secs(5), "{name} stayed open {took:?}");
    }
    assert!(
        trickling.join().unwrap(),
        "a client sending headers a byte at a time was never cut off"
    );
    // The server still answers.
    assert_eq!(post_batch(&ferry.url, &[track("h-1", "ann")]).0, 200);
}

#[test]
fn a_body_sent_slowly_gets_a_408_and_nothing_is_stored() {
    let destination = Destination::start();
    let workspace = workspace_with(&destination, "{ body_timeout_seconds: 1 }");
    let ferry = Ferry::start(&workspace);
    let body = serde_json::json!({ "batch": [track("slow-1", "ann")] }).to_string();
    let mut stream = TcpStream::connect(ferry.address).unwrap();
    write!(
        stream,
        "POST /v1/batch HTTP/1.1\r\nHost: ferry\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        basic(WRITE_KEY),
        body.len()
    )
    .unwrap();
    let sender = std::thread::spawn({
        let mut stream = stream.try_clone().unwrap();
        move || {
            for byte in body.bytes() {
                if stream.write_all(&[byte]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    let (answer, took) = read_until_closed(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    drop(stream);
    let _ = sender.join();
    assert_eq!(
        ferry.metric::<u64>("ferry_request_bodies_timed_out_total"),
        Some(1)
    );
    assert_eq!(
        ferry.metric::<u64>("ferry_events_received_total{source=\"web\"}"),
        None,
        "an event of a request that timed out was stored"
    );
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once() {
    let destination = Destination::start();
    let workspace = workspace_with(
        &destination,
        "{ max_connections: 3, header_timeout_seconds: 30 }",
    );
    let ferry = Ferry::start(&workspace);
    let held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let stream = TcpStream::connect(ferry.address).unwrap();
            // Make sure the server has accepted it before the next one.
            std::thread::sleep(Duration::from_millis(100));
            stream
        })
        .collect();
    let mut extra = TcpStream::connect(ferry.address).unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: ferry\r\n\r\n");
    let (answer, took) = read_until_closed(&mut extra);
    assert!(answer.is_empty(), "answered beyond the cap: {answer}");
    assert!(took < Duration::from_secs(2), "held for {took:?}");
    drop(held);
    // Room again once they close.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(post_batch(&ferry.url, &[track("c-1", "ann")]).0, 200);
    assert!(ferry.metric::<u64>("ferry_connections_refused_total") >= Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_with_the_configured_certificate() {
    let destination = Destination::start();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let workspace = workspace_with(
        &destination,
        "{ tls: { certificate: tls/cert.pem, key: tls/key.pem } }",
    );
    let tls = workspace.path().join("tls");
    std::fs::create_dir(&tls).unwrap();
    std::fs::write(tls.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(tls.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    let mut how = Start::of(&workspace);
    how.https = true;
    let ferry = tokio::task::spawn_blocking(move || Ferry::start_with(how))
        .await
        .unwrap();

    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap(),
        )
        .resolve("localhost", ferry.address)
        .build()
        .unwrap();
    let body = serde_json::json!({ "batch": [track("tls-1", "ann")] }).to_string();
    let response = client
        .post(format!(
            "https://localhost:{}/v1/batch",
            ferry.address.port()
        ))
        .header("authorization", basic(WRITE_KEY))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = tokio::task::spawn_blocking(move || {
        destination.wait_for("the event sent over HTTPS", |r| !r.is_empty())
    })
    .await
    .unwrap();
    assert_eq!(received[0].body["id"], "tls-1");
    // Plain HTTP on the HTTPS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", ferry.address))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[test]
fn an_unreadable_certificate_is_refused_at_start_with_its_location() {
    let workspace = workspace_with(
        &Destination::start(),
        "{ tls: { certificate: missing.pem, key: missing-key.pem } }",
    );
    let out = workspace.ferry(&["serve", "--config", "ferry.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("cannot read the certificate"), "{said}");
    assert!(said.contains("ferry.yaml:"), "{said}");
}
