//! Which node delivers an ordered connection. Events of one key must go out one after
//! another, and JetStream hands a shared consumer's messages to whichever node pulls, so an
//! ordered connection is claimed by one node at a time: the holder of its lease, a key in the
//! bucket `ferry_leases` that the holder rewrites every third of `ack_wait`. A lease not
//! rewritten for `ack_wait` (by JetStream's clock) may be taken by another node, which first
//! waits one more `ack_wait`, so that what the previous holder claimed has come back to the
//! consumer and is handed out again, in order, before anything newer.

use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use bytes::Bytes;

use super::Inner;
use super::names::token;
use crate::{QueueError, now_ms};

/// This node's hold on an ordered connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lease {
    /// The revision of the lease key this node last wrote.
    pub(crate) revision: u64,
    /// Claim nothing before this: what the previous holder claimed is not back yet.
    pub(crate) claim_from: Instant,
}

pub(crate) fn key(connection: &str) -> String {
    format!("order.{}", token(connection))
}

/// Takes the lease of `connection` if nobody holds it, or its holder stopped rewriting it.
/// `None` when another node holds it.
pub(crate) async fn acquire(inner: &Inner, connection: &str) -> Result<Option<Lease>, QueueError> {
    let leases = &inner.nats.leases;
    let key = key(connection);
    let me = Bytes::from(inner.node.clone());
    let written = match leases
        .entry(key.clone())
        .await
        .map_err(|source| QueueError::nats("reading a lease", source))?
    {
        None => leases.create(&key, me).await.ok(),
        Some(entry) if entry.operation != kv::Operation::Put => {
            leases.update(&key, me, entry.revision).await.ok()
        }
        Some(entry) => {
            let written_ms =
                i64::try_from(entry.created.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
            let lapsed = now_ms() - written_ms
                > i64::try_from(inner.options.ack_wait.as_millis()).unwrap_or(i64::MAX);
            if entry.value == inner.node.as_bytes() || lapsed {
                leases.update(&key, me, entry.revision).await.ok()
            } else {
                None
            }
        }
    };
    Ok(written.map(|revision| Lease {
        revision,
        // Whatever the previous holder had claimed comes back within one ack wait.
        claim_from: Instant::now() + inner.options.ack_wait + Duration::from_millis(250),
    }))
}

/// Rewrites the lease; `false` when another node took it meanwhile.
pub(crate) async fn renew(inner: &Inner, connection: &str, lease: &mut Lease) -> bool {
    match inner
        .nats
        .leases
        .update(
            key(connection),
            Bytes::from(inner.node.clone()),
            lease.revision,
        )
        .await
    {
        Ok(revision) => {
            lease.revision = revision;
            true
        }
        Err(error) => {
            tracing::warn!(
                connection,
                "lost the lease of an ordered connection: {error}"
            );
            false
        }
    }
}
