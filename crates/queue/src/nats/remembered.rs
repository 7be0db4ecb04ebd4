//! Remembered values in the key-value bucket `ferry_remembered`, one key per
//! (connection, store, key): every node reads what any node wrote. Each value names the node
//! that wrote it, so that a node watching the bucket applies only the others' values (its own
//! are already in its memory, and may be newer than the write it would see).

use std::sync::{Arc, Mutex, Weak};

use async_nats::jetstream::consumer::{self, DeliverPolicy};
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::json;

use super::Inner;
use super::names::{REMEMBERED, remembered_key, remembered_prefix, token, untoken};
use crate::state::lock;
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
                Bytes::from(json!({ "by": inner.node, "value": value }).to_string()),
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
        let (_, value) = stored(&message.payload)?;
        values.push(Remember { store, key, value });
    }
    values.sort_by(|a, b| (&a.store, &a.key).cmp(&(&b.store, &b.key)));
    Ok(values)
}

/// A stored value: who wrote it, and the value.
fn stored(payload: &[u8]) -> Result<(String, serde_json::Value), QueueError> {
    #[derive(serde::Deserialize)]
    struct Stored {
        by: String,
        value: serde_json::Value,
    }
    let stored: Stored = serde_json::from_slice(payload).map_err(|error| QueueError::NatsData {
        stream: "KV_ferry_remembered",
        what: "remembered value",
        detail: error.to_string(),
    })?;
    Ok((stored.by, stored.value))
}

/// Starts watching the values remembered for `connection` from now on.
pub(crate) async fn watch(inner: &Inner, connection: &str) -> Result<kv::Watch, QueueError> {
    inner
        .nats
        .remembered
        .watch(format!("{}.>", token(connection)))
        .await
        .map_err(|source| QueueError::nats("watching remembered values", source))
}

/// Collects, into `changes`, what `entries` brings that other nodes remembered, until the
/// queue is dropped.
pub(crate) async fn follow(
    inner: Weak<Inner>,
    mut entries: kv::Watch,
    changes: Arc<Mutex<Vec<Remember>>>,
) {
    while let Some(entry) = entries.next().await {
        let Some(inner) = inner.upgrade() else { return };
        let Ok(entry) = entry else { continue };
        if entry.operation != kv::Operation::Put {
            continue;
        }
        let mut tokens = entry.key.split('.');
        let (_, Some(store), Some(key)) = (tokens.next(), tokens.next(), tokens.next()) else {
            continue;
        };
        let (Some(store), Some(key), Ok((by, value))) =
            (untoken(store), untoken(key), stored(&entry.value))
        else {
            continue;
        };
        if by != inner.node {
            lock(&changes).push(Remember { store, key, value });
        }
    }
}
