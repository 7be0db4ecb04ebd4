//! Events, enqueueing and declaring, for the behaviour suite and the backend-specific tests
//! alike (`tests/common/` includes this file).

#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use ferry_queue::{Claimed, Enqueued, EventId, NewEvent, Queue};

pub fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

pub fn event(source: &str, body: &str) -> NewEvent {
    NewEvent {
        source: source.to_owned(),
        dedupe: None,
        received_at_ms: now_ms(),
        body: body.to_owned(),
    }
}

pub fn keyed(source: &str, key: &str, body: &str) -> NewEvent {
    NewEvent {
        dedupe: Some(key.to_owned()),
        ..event(source, body)
    }
}

/// Enqueues one event per body on `source`; answers their ids.
pub async fn enqueue(queue: &dyn Queue, source: &str, bodies: &[&str]) -> Vec<EventId> {
    let events = bodies.iter().map(|body| event(source, body)).collect();
    queue
        .enqueue(events, Vec::new())
        .await
        .unwrap()
        .into_iter()
        .map(|outcome| match outcome {
            Enqueued::Stored(id) => id,
            Enqueued::Duplicate => panic!("unexpected duplicate"),
        })
        .collect()
}

pub async fn declare(queue: &dyn Queue, connections: &[(&str, &str)]) {
    queue
        .declare(
            connections
                .iter()
                .map(|(name, source)| ((*name).to_owned(), (*source).to_owned()))
                .collect(),
        )
        .await
        .unwrap();
}

pub fn bodies(claimed: &[Claimed]) -> Vec<&str> {
    claimed.iter().map(|c| c.body.as_str()).collect()
}

pub fn ids(claimed: &[Claimed]) -> Vec<EventId> {
    claimed.iter().map(|c| c.id).collect()
}
