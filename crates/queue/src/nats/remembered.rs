//! Remembered values in the key-value bucket `ferry_remembered`, one key per
//! (connection, store, key): every node reads what any node wrote.

use async_nats::jetstream::consumer::{self, DeliverPolicy};
use bytes::Bytes;
use futures_util::StreamExt as _;

use super::Inner;
use super::names::{REMEMBERED, remembered_key, remembered_prefix, untoken};
use crate::{QueueError, Remember};

/// Writes `values` (the last of a key wins), each stored on the bucket's replicas.
pub(crate) async fn store(
    inner: &Inner,
    connection: &str,
    values: &[Remember],
) -> Result<(), QueueError> {
    for Remember { store, key, value } in values {
        inner
            .nats
            .remembered
            .put(
                remembered_key(connection, store, key),
                Bytes::from(value.to_string()),
            )
            .await
            .map_err(|source| QueueError::nats("storing a remembered value", source))?;
    }
    Ok(())
}

/// Every value remembered for `connection`, by store and key.
pub(crate) async fn list(inner: &Inner, connection: &str) -> Result<Vec<Remember>, QueueError> {
    let fail = |source| QueueError::nats("reading remembered values", source);
    let stream = inner
        .nats
        .js
        .get_stream(format!("KV_{REMEMBERED}"))
        .await
        .map_err(|source| QueueError::nats("opening the remembered-values bucket", source))?;
    let reader = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: remembered_prefix(connection),
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .map_err(|source| QueueError::nats("reading remembered values", source))?;
    let count = reader.cached_info().num_pending;
    let mut values = Vec::new();
    if count == 0 {
        return Ok(values);
    }
    let mut messages = reader
        .messages()
        .await
        .map_err(|source| QueueError::nats("reading remembered values", source))?;
    let prefix = format!("$KV.{REMEMBERED}.");
    for _ in 0..count {
        let Some(message) = messages.next().await else {
            break;
        };
        let message = message
            .map_err(|source| fail(Box::new(source) as Box<dyn std::error::Error + Send + Sync>))?;
        let deleted = message
            .headers
            .as_ref()
            .and_then(|h| h.get("KV-Operation"))
            .is_some_and(|op| op.as_str() != "PUT");
        if deleted {
            continue;
        }
        let subject = message.subject.as_str();
        let mut tokens = subject.strip_prefix(&prefix).unwrap_or(subject).split('.');
        let (_, Some(store), Some(key)) = (tokens.next(), tokens.next(), tokens.next()) else {
            continue;
        };
        let (Some(store), Some(key)) = (untoken(store), untoken(key)) else {
            continue;
        };
        let value =
            serde_json::from_slice(&message.payload).map_err(|error| QueueError::NatsData {
                stream: "KV_ferry_remembered",
                what: "remembered value",
                detail: error.to_string(),
            })?;
        values.push(Remember { store, key, value });
    }
    values.sort_by(|a, b| (&a.store, &a.key).cmp(&(&b.store, &b.key)));
    Ok(values)
}
