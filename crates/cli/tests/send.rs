//! `ferry send` and `ferry replay`, run as a user runs them, against a small HTTP server on
//! loopback.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::ferry;

const KEY: &str = "extole-SECRET-token-789";

/// A server that answers 400 to bodies containing `refuse-me` while `refusing` is set, and
/// 200 to everything else; it records every body.
struct Server {
    url: String,
    refusing: Arc<AtomicBool>,
    bodies: Arc<Mutex<Vec<String>>>,
}

fn serve() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    let refusing = Arc::new(AtomicBool::new(true));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let (flag, seen) = (Arc::clone(&refusing), Arc::clone(&bodies));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (flag, seen) = (Arc::clone(&flag), Arc::clone(&seen));
            std::thread::spawn(move || answer(stream, &flag, &seen));
        }
    });
    Server {
        url,
        refusing,
        bodies,
    }
}

fn answer(stream: TcpStream, refusing: &AtomicBool, bodies: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("a stream"));
    let mut out = stream;
    loop {
        let mut length = 0;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            reader.read_line(&mut line).expect("headers");
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("a length");
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("the body");
        let body = String::from_utf8(body).expect("UTF-8");
        let refuse = refusing.load(Ordering::SeqCst) && body.contains("refuse-me");
        bodies.lock().expect("not poisoned").push(body);
        let (status, text) = if refuse {
            (
                "400 Bad Request",
                r#"{"code":"invalid_json","message":"no"}"#,
            )
        } else {
            ("200 OK", r#"{"event_id":"e-1","person_id":"p-1"}"#)
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if out.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn track(user: &str, message: &str) -> String {
    format!(
        r#"{{"type":"track","event":"registration","userId":"{user}","messageId":"{message}","timestamp":"2026-11-02T09:16:10Z","properties":{{"email":"{user}@example.com"}}}}"#
    )
}

#[test]
fn send_dead_letters_what_is_refused_and_replay_delivers_it_once_fixed() {
    let server = serve();
    let dir = tempfile::tempdir().expect("a temp dir");
    let dead = dir.path().join("dead.ndjson");
    let dead_arg = dead.display().to_string();
    let key = format!("api_key={KEY}");
    let common = ["--set", &key, "--base-url", &server.url, "--quiet"];
    let input = [
        track("ann", "m-1"),
        track("refuse-me", "m-2"),
        "{not json".to_owned(),
        track("bob", "m-3"),
    ]
    .join("\n");

    let mut args = vec!["send", "--mapping", "extole", "--dead-letter", &dead_arg];
    args.extend_from_slice(&common);
    let out = ferry(&args, Some(&input));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("4 events: 2 delivered"), "{stderr}");
    assert!(stderr.contains("2 dead-lettered"), "{stderr}");
    assert_eq!(server.bodies.lock().expect("not poisoned").len(), 3);

    let text = std::fs::read_to_string(&dead).expect("dead letters written");
    assert!(!text.contains(KEY), "the key leaked into the dead letters");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON records"))
        .collect();
    assert_eq!(records.len(), 2);
    let refused = records
        .iter()
        .find(|r| r["event"]["userId"] == "refuse-me")
        .expect("the refused event");
    assert_eq!(refused["last_response"]["status"], 400);
    assert_eq!(refused["mapping"], "extole");
    assert!(
        refused["reason"]
            .as_str()
            .is_some_and(|r| r.contains("400"))
    );
    let unreadable = records
        .iter()
        .find(|r| r["event"] == "{not json")
        .expect("the unreadable line, kept as text");
    assert!(
        unreadable["reason"]
            .as_str()
            .is_some_and(|r| r.contains("event 3"))
    );

    // Lines that are not dead letters, one not even UTF-8, are kept as they are.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&dead)
        .expect("the dead letters open");
    std::io::Write::write_all(&mut file, b"not a record\r\n\n\xff{\n").expect("lines appended");
    drop(file);

    // The destination is fixed: replay sends the refused event; the unreadable line stays.
    server.refusing.store(false, Ordering::SeqCst);
    let mut args = vec!["replay", &dead_arg];
    args.extend_from_slice(&common);
    let out = ferry(&args, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the unreadable line still fails: {stderr}"
    );
    assert!(stderr.contains("replayed 2 dead letters"), "{stderr}");
    assert!(
        stderr.contains(":3: not a dead letter") && stderr.contains(":5: not a dead letter"),
        "{stderr}"
    );
    assert!(stderr.contains("3 records remain"), "{stderr}");
    assert_eq!(server.bodies.lock().expect("not poisoned").len(), 4);
    let left = std::fs::read(&dead).expect("the file is rewritten");
    let lines: Vec<&[u8]> = left.split(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 4, "{}", String::from_utf8_lossy(&left));
    assert!(String::from_utf8_lossy(lines[0]).contains("{not json"));
    assert_eq!(&lines[1..], [&b"not a record"[..], b"\xff{", b""]);
}
