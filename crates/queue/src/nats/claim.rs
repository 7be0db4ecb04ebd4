//! Claiming: due retries first, then the connection's next events, fetched from the durable
//! consumers every node shares. What this node fetched stays in flight here until settled or
//! released; a node that dies leaves its events to JetStream, which hands them to another node
//! once `ack_wait` passes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::message::{AckKind, Acker};
use async_nats::jetstream::{self};
use bytes::Bytes;
use futures_util::StreamExt as _;

use super::Inner;
use super::names::header;
use crate::state::lock;
use crate::{Claimed, EventId, QueueError, now_ms};

/// Where a claimed event was fetched from; decides how its settlement is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The events stream: acknowledging it is the connection's last word on the event.
    Event,
    /// The connection's retries.
    Retry,
}

/// One event this node claimed and has not settled.
pub(crate) struct Flight {
    pub(crate) acker: Arc<Acker>,
    pub(crate) origin: Origin,
    pub(crate) source: String,
    pub(crate) received_at_ms: i64,
    pub(crate) attempt: u32,
    pub(crate) body: Bytes,
    /// When JetStream last heard this node is working on it.
    pub(crate) touched: Instant,
}

/// A connection declared on this node: its two consumers and what it has in flight.
pub(crate) struct Connection {
    pub(crate) name: String,
    pub(crate) source: String,
    pub(crate) events: PullConsumer,
    pub(crate) retries: PullConsumer,
    pub(crate) state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) active: bool,
    pub(crate) in_flight: HashMap<i64, Flight>,
    /// Events this node gave back and has not claimed again (pending, for `depth`).
    pub(crate) released: HashSet<i64>,
}

pub(crate) async fn claim(
    inner: &Inner,
    name: &str,
    max: usize,
) -> Result<Vec<Claimed>, QueueError> {
    let Some(connection) = inner.connection(name) else {
        return Ok(Vec::new());
    };
    if max == 0 || !lock(&connection.state).active {
        return Ok(Vec::new());
    }
    let mut claimed = due_retries(&connection, max).await?;
    let wanted = max - claimed.len().min(max);
    if wanted > 0 {
        claimed.extend(next_events(&connection, wanted).await?);
    }
    let mut state = lock(&connection.state);
    let mut answer = Vec::with_capacity(claimed.len());
    for (event, flight) in claimed {
        state.released.remove(&event.id.0);
        // A message JetStream handed out again (its acknowledgement was lost) while this node
        // still works on it: the first claim settles both.
        if state.in_flight.contains_key(&event.id.0) {
            continue;
        }
        state.in_flight.insert(event.id.0, flight);
        answer.push(event);
    }
    // What this node released and JetStream gave to another node is not pending here.
    if answer.len() < max {
        state.released.clear();
    }
    Ok(answer)
}

/// Retries due now, each with the flight to record; those not yet due are handed back to
/// JetStream until they are.
async fn due_retries(
    connection: &Connection,
    max: usize,
) -> Result<Vec<(Claimed, Flight)>, QueueError> {
    let mut claimed = Vec::new();
    let now = now_ms();
    for message in fetch(&connection.retries, max).await? {
        let (message, acker) = message.split();
        let headers = message.headers.as_ref();
        let number = |name: &str| {
            headers
                .and_then(|h| h.get(name))
                .and_then(|v| v.as_str().parse::<i64>().ok())
        };
        let (Some(id), Some(received_at_ms), Some(attempt), Some(due)) = (
            number(header::EVENT),
            number(header::RECEIVED),
            number(header::ATTEMPT),
            number(header::DUE),
        ) else {
            // Not ferry's: acknowledge it away rather than fail every claim on it.
            tracing::warn!(subject = %message.subject, "dropping a retry message ferry did not write");
            let _ = acker.ack().await;
            continue;
        };
        if due > now {
            let wait = Duration::from_millis(u64::try_from(due - now).unwrap_or(0));
            if let Err(error) = acker.ack_with(AckKind::Nak(Some(wait))).await {
                tracing::debug!("cannot put back a retry not yet due: {error}");
            }
            continue;
        }
        let source = headers
            .and_then(|h| h.get(header::SOURCE))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        claimed.push((
            Claimed {
                id: EventId(id),
                body: body_text(&message.payload),
                received_at_ms,
                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            },
            Flight {
                acker: Arc::new(acker),
                origin: Origin::Retry,
                source,
                received_at_ms,
                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                body: message.payload,
                touched: Instant::now(),
            },
        ));
    }
    Ok(claimed)
}

/// The connection's next events.
async fn next_events(
    connection: &Connection,
    wanted: usize,
) -> Result<Vec<(Claimed, Flight)>, QueueError> {
    let mut claimed = Vec::with_capacity(wanted);
    for message in fetch(&connection.events, wanted).await? {
        let sequence = message
            .info()
            .map(|info| info.stream_sequence)
            .map_err(|source| QueueError::nats("reading a message's sequence", source))?;
        let (message, acker) = message.split();
        let received_at_ms = message
            .headers
            .as_ref()
            .and_then(|h| h.get(header::RECEIVED))
            .and_then(|v| v.as_str().parse::<i64>().ok())
            .unwrap_or_else(now_ms);
        let id = i64::try_from(sequence).unwrap_or(i64::MAX);
        claimed.push((
            Claimed {
                id: EventId(id),
                body: body_text(&message.payload),
                received_at_ms,
                attempt: 0,
            },
            Flight {
                acker: Arc::new(acker),
                origin: Origin::Event,
                source: connection.source.clone(),
                received_at_ms,
                attempt: 0,
                body: message.payload,
                touched: Instant::now(),
            },
        ));
    }
    Ok(claimed)
}

/// Up to `max` messages available now (no waiting for more).
async fn fetch(consumer: &PullConsumer, max: usize) -> Result<Vec<jetstream::Message>, QueueError> {
    let mut batch = consumer
        .fetch()
        .max_messages(max)
        .messages()
        .await
        .map_err(|source| QueueError::nats("fetching events", source))?;
    let mut messages = Vec::new();
    while let Some(message) = batch.next().await {
        match message {
            Ok(message) => messages.push(message),
            Err(error) => {
                // The end of what is available (no messages, or the consumer's limit of
                // unacknowledged messages): keep what came.
                tracing::debug!("fetch ended: {error}");
                break;
            }
        }
    }
    Ok(messages)
}

/// The event as text (ferry stores only text; anything else is shown lossily and fails to
/// parse as JSON downstream, becoming a dead letter).
fn body_text(payload: &Bytes) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

/// Tells JetStream, for every event this node has held for a third of `ack_wait`, that it is
/// still working on it, so that only the events of a node that stopped go to another node.
pub(crate) async fn keep_claimed(inner: Weak<Inner>) {
    loop {
        let period = match inner.upgrade() {
            Some(inner) => (inner.options.ack_wait / 3).max(Duration::from_millis(100)),
            None => return,
        };
        tokio::time::sleep(period / 2).await;
        let Some(inner) = inner.upgrade() else { return };
        let connections: Vec<Arc<Connection>> =
            lock(&inner.connections).values().cloned().collect();
        for connection in connections {
            let due: Vec<Arc<Acker>> = {
                let mut state = lock(&connection.state);
                state
                    .in_flight
                    .values_mut()
                    .filter(|flight| flight.touched.elapsed() >= period)
                    .map(|flight| {
                        flight.touched = Instant::now();
                        Arc::clone(&flight.acker)
                    })
                    .collect()
            };
            for acker in due {
                if let Err(error) = acker.ack_with(AckKind::Progress).await {
                    tracing::debug!(connection = %connection.name, "cannot extend a claim: {error}");
                }
            }
        }
    }
}
