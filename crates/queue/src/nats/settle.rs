//! Settling and releasing what this node claimed.
//!
//! - delivered: the message is acknowledged;
//! - retry at a time: a copy goes to the connection's retry subject (with its due time and
//!   attempt), then the message is acknowledged;
//! - dead: a dead letter is written, then the message is acknowledged.
//!
//! Values the events made the mapping remember are written before any acknowledgement, so a
//! node that dies in between repeats an event whose values are already stored, never the
//! other way round. A settlement that fails leaves its event unacknowledged: JetStream hands
//! it out again after `ack_wait`.

use std::collections::HashSet;

use async_nats::HeaderMap;
use async_nats::jetstream::message::AckKind;
use bytes::Bytes;

use super::Inner;
use super::claim::{Flight, Origin};
use super::enqueue::{dead_body, json_text};
use super::names::{self, header, token};
use super::publish::publish;
use super::remembered;
use crate::state::lock;
use crate::{EventId, QueueError, Remember, Settlement, now_ms};

pub(crate) async fn settle(
    inner: &Inner,
    name: &str,
    settled: Vec<(EventId, Settlement)>,
    remembered_values: Vec<Remember>,
) -> Result<(), QueueError> {
    let not_claimed = |id: EventId| QueueError::NotClaimed {
        connection: name.to_owned(),
        id: id.0,
    };
    let connection = match (inner.connection(name), settled.first()) {
        (Some(connection), _) => Some(connection),
        (None, Some((id, _))) => return Err(not_claimed(*id)),
        (None, None) => None,
    };
    let flights: Vec<Flight> = match &connection {
        None => Vec::new(),
        Some(connection) => {
            let mut state = lock(&connection.state);
            let mut seen = HashSet::new();
            for (id, _) in &settled {
                if !state.in_flight.contains_key(&id.0) || !seen.insert(id.0) {
                    return Err(not_claimed(*id));
                }
            }
            settled
                .iter()
                .filter_map(|(id, _)| state.in_flight.remove(&id.0))
                .collect()
        }
    };
    // On failure nothing is acknowledged: the events come back after `ack_wait`, and their
    // values are remembered then.
    remembered::store(inner, name, &remembered_values).await?;
    let mut first_error = None;
    let mut scheduled = false;
    let mut settled_ids: Vec<(i64, bool)> = Vec::with_capacity(flights.len());
    for ((id, settlement), flight) in settled.into_iter().zip(flights) {
        let done = !matches!(settlement, Settlement::Retry { .. });
        let written = match settlement {
            Settlement::Delivered => flight
                .acker
                .ack()
                .await
                .map_err(|source| QueueError::nats("acknowledging a delivered event", source)),
            Settlement::Retry { at_ms, reason } => {
                scheduled = true;
                retry(inner, name, id, &flight, at_ms, &reason).await
            }
            Settlement::Dead {
                mapping,
                reason,
                letters,
            } => dead(inner, name, id, &flight, &mapping, &reason, &letters).await,
        };
        match written {
            Ok(()) => settled_ids.push((id.0, done)),
            Err(error) => {
                tracing::warn!(
                    connection = name,
                    event = id.0,
                    "cannot settle an event: {error}"
                );
                first_error.get_or_insert(error);
            }
        }
    }
    // Later events of the keys these events held may go (an ordered connection).
    if let Some(connection) = &connection
        && let Some(ordered) = &mut lock(&connection.state).order
    {
        for (id, done) in settled_ids {
            ordered.sequencer.settled(id, done);
        }
        inner.wake.notify();
    }
    if let Err(error) = inner.nats.client.flush().await {
        tracing::debug!("cannot flush acknowledgements: {error}");
    }
    if scheduled {
        inner.announce_work().await;
    }
    first_error.map_or(Ok(()), Err)
}

/// Schedules the next attempt, then acknowledges the claimed message.
async fn retry(
    inner: &Inner,
    connection: &str,
    id: EventId,
    flight: &Flight,
    at_ms: i64,
    reason: &str,
) -> Result<(), QueueError> {
    let attempt = flight.attempt + 1;
    let mut headers = HeaderMap::new();
    // The same retry published twice (a timeout, then a repeat) is stored once.
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("retry.{}.{}.{attempt}", token(connection), id.0).as_str(),
    );
    headers.insert(header::EVENT, id.0.to_string().as_str());
    headers.insert(header::SOURCE, flight.source.as_str());
    headers.insert(header::RECEIVED, flight.received_at_ms.to_string().as_str());
    headers.insert(header::ATTEMPT, attempt.to_string().as_str());
    headers.insert(header::DUE, at_ms.to_string().as_str());
    headers.insert(header::REASON, json_text(reason).as_str());
    publish(
        inner,
        names::retry_subject(connection),
        headers,
        flight.body.clone(),
        "scheduling a retry",
    )
    .await?;
    confirm_ack(flight, "acknowledging an event scheduled for a retry").await
}

/// Writes the dead letter, then acknowledges the claimed message.
async fn dead(
    inner: &Inner,
    connection: &str,
    id: EventId,
    flight: &Flight,
    mapping: &str,
    reason: &str,
    letters: &[serde_json::Value],
) -> Result<(), QueueError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("dead.{}.{}.{}", token(connection), id.0, flight.attempt).as_str(),
    );
    headers.insert(header::CONNECTION, json_text(connection).as_str());
    headers.insert(header::SOURCE, flight.source.as_str());
    headers.insert(header::EVENT, id.0.to_string().as_str());
    headers.insert(header::MAPPING, json_text(mapping).as_str());
    headers.insert(header::REASON, json_text(reason).as_str());
    headers.insert(header::RECEIVED, flight.received_at_ms.to_string().as_str());
    headers.insert(header::AT, now_ms().to_string().as_str());
    let body = dead_body(&String::from_utf8_lossy(&flight.body), letters);
    publish(
        inner,
        names::dead_subject(connection),
        headers,
        Bytes::from(body),
        "storing a dead letter",
    )
    .await?;
    confirm_ack(flight, "acknowledging a dead-lettered event").await
}

/// Acknowledges and waits for JetStream to confirm it, so the event is not handed out again.
async fn confirm_ack(flight: &Flight, what: &'static str) -> Result<(), QueueError> {
    flight
        .acker
        .double_ack()
        .await
        .map_err(|source| QueueError::nats(what, source))
}

/// Gives claimed events back at once (shutdown, reload): JetStream hands them out again to
/// any node.
pub(crate) async fn release(
    inner: &Inner,
    name: &str,
    ids: Vec<EventId>,
) -> Result<(), QueueError> {
    let Some(connection) = inner.connection(name) else {
        return Ok(());
    };
    let flights: Vec<(i64, Flight)> = {
        let mut state = lock(&connection.state);
        let flights: Vec<(i64, Flight)> = ids
            .iter()
            .filter_map(|id| state.in_flight.remove(&id.0).map(|f| (id.0, f)))
            .collect();
        for (id, flight) in &flights {
            if flight.origin == Origin::Event {
                state.released.insert(*id);
            }
        }
        flights
    };
    for (_, flight) in flights {
        if let Err(error) = flight.acker.ack_with(AckKind::Nak(None)).await {
            tracing::debug!(connection = name, "cannot give back an event: {error}");
        }
    }
    if let Err(error) = inner.nats.client.flush().await {
        tracing::debug!("cannot flush releases: {error}");
    }
    inner.wake.notify();
    Ok(())
}
