//! What the pipeline's tests share: a connection aimed at a loopback server, a run of events
//! through a pipeline with its dead letters read back, and what the server received.

#![allow(dead_code)] // each test file uses some of these

use std::sync::Arc;

use ferry_delivery::{DeadLetter, DeadLetterWriter};
use ferry_engine::Connection;
use ferry_pipeline::{Input, Pipeline, Summary};
use serde_json::Value;
use tokio::sync::mpsc;
use wiremock::{MockServer, Request};

/// A connection of `mapping` with `settings`, sending to `server` instead of its base URL.
pub fn connect(
    mapping: ferry_engine::CompiledMapping,
    settings: &Value,
    server: &str,
) -> Connection {
    let mut connection = Connection::new(
        Arc::new(mapping),
        settings.as_object().expect("settings are a map"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    connection
        .override_base_url(server)
        .unwrap_or_else(|e| panic!("{e}"));
    connection
}

/// What a run did, and what it dead-lettered.
pub struct Delivered {
    pub summary: Summary,
    pub dead: Vec<DeadLetter>,
    pub file: String,
}

/// Runs `events` through a pipeline of `connection` writing dead letters to a file of its own.
pub async fn deliver(connection: Connection, events: Vec<Value>) -> Delivered {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("dead-letters.ndjson");
    let writer = DeadLetterWriter::open(&file).expect("dead-letter file opens");
    let pipeline = Pipeline::new(Arc::new(connection), writer).expect("valid rules");
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        for (i, event) in events.into_iter().enumerate() {
            let input = Input::Event {
                index: i + 1,
                event,
            };
            if tx.send(input).await.is_err() {
                return;
            }
        }
    });
    let summary = pipeline.run(rx, &mut |_| {}).await.expect("run completes");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let dead = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("dead letters are JSON"))
        .collect();
    Delivered {
        summary,
        dead,
        file: text,
    }
}

/// The requests `server` received, in order.
pub async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

/// A JSON request body, parsed.
pub fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).expect("JSON body")
}
