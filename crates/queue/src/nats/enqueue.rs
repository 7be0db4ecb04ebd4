//! Enqueueing: every event is one message on its source's subject, its dedupe key (hashed)
//! the `Nats-Msg-Id`, so JetStream drops a repeat that any node receives within the duplicate
//! window. The publishes of one call are pipelined; the call answers once JetStream has
//! acknowledged each, that is stored it on a majority of the stream's replicas (a publish no
//! server answered is sent again, see `publish.rs`).

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishAckFuture;
use bytes::Bytes;

use super::Inner;
use super::names::{self, header};
use super::publish::Message;
use crate::dedupe::dedupe_key;
use crate::{Enqueued, EventId, NewEvent, QueueError, RejectedEvent, now_ms};

pub(crate) async fn enqueue(
    inner: &Inner,
    events: Vec<NewEvent>,
    rejected: Vec<RejectedEvent>,
) -> Result<Vec<Enqueued>, QueueError> {
    let accepted = events.len();
    let mut messages: Vec<Message> = Vec::with_capacity(accepted + rejected.len());
    for event in events {
        let mut headers = HeaderMap::new();
        if let Some(key) = &event.dedupe {
            let hash = dedupe_key(&event.source, key).cast_unsigned();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                format!("{hash:016x}").as_str(),
            );
        }
        headers.insert(header::RECEIVED, event.received_at_ms.to_string().as_str());
        messages.push(Message {
            subject: names::event_subject(&event.source),
            headers,
            payload: Bytes::from(event.body),
        });
    }
    let now = now_ms();
    for event in &rejected {
        let mut headers = HeaderMap::new();
        headers.insert(header::SOURCE, event.source.as_str());
        headers.insert(header::RECEIVED, event.received_at_ms.to_string().as_str());
        headers.insert(header::AT, now.to_string().as_str());
        headers.insert(header::REASON, json_text(&event.reason).as_str());
        messages.push(Message {
            subject: names::rejected_subject(&event.source),
            headers,
            payload: Bytes::from(dead_body(&event.body, &[])),
        });
    }
    let mut pending: Vec<PublishAckFuture> = Vec::with_capacity(messages.len());
    for (index, message) in messages.iter().enumerate() {
        let what = publishing(index < accepted);
        let sent = message
            .send(inner)
            .await
            .map_err(|source| QueueError::nats(what, source))?;
        pending.push(sent);
    }
    let mut outcome = Vec::with_capacity(accepted);
    for (index, (message, sent)) in messages.iter().zip(pending).enumerate() {
        let ack = message
            .stored(inner, sent, publishing(index < accepted))
            .await?;
        if index < accepted {
            outcome.push(if ack.duplicate {
                Enqueued::Duplicate
            } else {
                Enqueued::Stored(EventId(i64::try_from(ack.sequence).unwrap_or(i64::MAX)))
            });
        }
    }
    if outcome.iter().any(|o| matches!(o, Enqueued::Stored(_))) {
        inner.announce_work().await;
    }
    Ok(outcome)
}

/// What a publish of `enqueue` does, for its errors.
fn publishing(accepted: bool) -> &'static str {
    if accepted {
        "storing an event"
    } else {
        "storing an event refused at ingest"
    }
}

/// A text as a JSON string: a header value without line breaks, read back by [`from_json_text`].
pub(crate) fn json_text(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// The text a [`json_text`] header holds (the raw value if it is not JSON).
pub(crate) fn from_json_text(value: &str) -> String {
    serde_json::from_str::<String>(value).unwrap_or_else(|_| value.to_owned())
}

/// The body of a dead-letter message: the event as received and the worker's records.
pub(crate) fn dead_body(event: &str, letters: &[serde_json::Value]) -> Vec<u8> {
    serde_json::json!({ "event": event, "letters": letters })
        .to_string()
        .into_bytes()
}
