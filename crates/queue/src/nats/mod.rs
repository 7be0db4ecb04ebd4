//! The NATS JetStream backend: several `ferry serve` nodes share one queue.
//!
//! - `connect.rs`: the connection, and the streams and bucket it needs;
//! - `names.rs`: streams, subjects, consumers and headers;
//! - `enqueue.rs`: events published with their dedupe key as `Nats-Msg-Id`;
//! - `publish.rs`: publishing until JetStream stored the message;
//! - `consumers.rs`: one durable consumer per connection on the events, one on its retries;
//! - `claim.rs`: fetching, what this node has in flight, and keeping it claimed;
//! - `settle.rs`: acknowledgements, retries, dead letters, releases;
//! - `dead_letters.rs`: listing, showing, replaying and purging dead letters;
//! - `remembered.rs`: remembered values in a key-value bucket;
//! - `depth.rs`: queue depths from consumer and stream state;
//! - `lease.rs`: which node delivers an ordered connection.
//!
//! How the queue's promises map onto JetStream:
//!
//! - **Acknowledged means replicated**: `enqueue` answers once JetStream acknowledged every
//!   publish, which it does after storing the message on a majority of the stream's replicas.
//! - **Dedupe across nodes**: the hash of (source, dedupe key) is the `Nats-Msg-Id`; the
//!   stream drops a repeat within its duplicate window, whichever node received it.
//! - **Shared delivery, acknowledged per event**: all nodes pull from the same durable
//!   consumer of a connection, so each event goes to one of them; each is acknowledged on
//!   its own once settled. What a node had claimed and not settled when it died comes back
//!   to the others after `ack_wait`; a node working longer on an event extends it.
//! - **Retries at a time**: a copy goes to the connection's retry subject with its due time
//!   and attempt, and the event is acknowledged; a retry fetched before it is due is handed
//!   back with a delay (`nak` with the time left).
//! - **Dead letters** are messages in a stream kept until replayed or purged; their stream
//!   sequence is their id, the same on every node.
//! - **Remembered values** live in a key-value bucket, written before the events that
//!   remembered them are acknowledged.
//! - **Per-key order**: an ordered connection is claimed by one node at a time (a lease), which
//!   keeps back later events of a key until the one before is settled (`crate::order`).

mod claim;
mod connect;
mod consumers;
mod dead_letters;
mod depth;
mod enqueue;
mod lease;
mod names;
mod options;
mod publish;
mod remembered;
mod settle;

pub use options::{NatsCredentials, NatsOptions};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::wake::Wake;
use futures_util::StreamExt as _;

use crate::state::lock;
use crate::{
    BoxFuture, Claimed, DeadRecord, DeadSummary, Depth, Enqueued, EventId, NewEvent, OrderKey,
    Queue, QueueError, RejectedEvent, Remember, Replayed, Select, Settlement,
};
use claim::Connection;
use connect::Connected;

/// Handles made by this process, to tell them apart in leases.
static NODES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How often an idle worker looks again without a wake-up (a retry fell due).
const POLL: Duration = Duration::from_secs(1);

/// The [`Queue`] in NATS JetStream, shared by every node connected to the same servers.
pub struct NatsQueue {
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub(crate) struct Inner {
    pub(crate) nats: Connected,
    pub(crate) options: NatsOptions,
    /// The connections declared on this node, by name.
    pub(crate) connections: Mutex<HashMap<String, Arc<Connection>>>,
    /// Signalled when any node enqueued, scheduled a retry or replayed.
    pub(crate) wake: Wake,
    /// This node's name in leases and remembered values: unique per handle.
    pub(crate) node: String,
    /// Itself, for tasks that must not keep it alive.
    me: Weak<Inner>,
}

impl std::fmt::Debug for NatsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsQueue")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl NatsQueue {
    /// Connects, creates the streams, consumers' streams and the bucket if they are missing,
    /// and starts listening for wake-ups from other nodes. Must run inside a Tokio runtime.
    pub async fn connect(options: NatsOptions) -> Result<NatsQueue, QueueError> {
        let nats = connect::connect(&options).await?;
        let wakes = nats
            .client
            .subscribe(names::WAKE)
            .await
            .map_err(|source| QueueError::nats("subscribing to wake-ups", source))?;
        let inner = Arc::new_cyclic(|me| Inner {
            me: me.clone(),
            nats,
            options,
            connections: Mutex::new(HashMap::new()),
            wake: Wake::default(),
            node: format!(
                "{}-{}-{}",
                std::process::id(),
                crate::now_ms(),
                NODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
        });
        let tasks = vec![
            tokio::spawn(listen_for_wakes(Arc::downgrade(&inner), wakes)),
            tokio::spawn(claim::keep_claimed(Arc::downgrade(&inner))),
        ];
        Ok(NatsQueue { inner, tasks })
    }
}

impl Drop for NatsQueue {
    /// Stops the background tasks. Events this handle claimed and did not settle are not given
    /// back: like a crash, JetStream hands them out again after `ack_wait`. Call
    /// [`Queue::release`] first for a graceful hand-over.
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn listen_for_wakes(inner: Weak<Inner>, mut wakes: async_nats::Subscriber) {
    while wakes.next().await.is_some() {
        let Some(inner) = inner.upgrade() else { return };
        inner.wake.notify();
    }
}

/// Whether a direct read of a stream found no message there.
pub(crate) fn no_message(error: &async_nats::jetstream::stream::RawMessageError) -> bool {
    matches!(
        error.kind(),
        async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound
    )
}

impl Inner {
    /// Tells every node (this one included) that there is work to claim.
    pub(crate) async fn announce_work(&self) {
        if let Err(error) = self
            .nats
            .client
            .publish(names::WAKE, bytes::Bytes::new())
            .await
        {
            tracing::debug!("cannot announce new work: {error}");
        }
        self.wake.notify();
    }

    pub(crate) fn weak(&self) -> Weak<Inner> {
        self.me.clone()
    }

    pub(crate) fn connection(&self, name: &str) -> Option<Arc<Connection>> {
        lock(&self.connections).get(name).cloned()
    }
}

impl Queue for NatsQueue {
    fn enqueue(
        &self,
        events: Vec<NewEvent>,
        rejected: Vec<RejectedEvent>,
    ) -> BoxFuture<'_, Result<Vec<Enqueued>, QueueError>> {
        Box::pin(enqueue::enqueue(&self.inner, events, rejected))
    }

    fn declare(&self, connections: Vec<(String, String)>) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(consumers::declare(&self.inner, connections))
    }

    fn order(
        &self,
        connection: &str,
        key: Option<OrderKey>,
    ) -> BoxFuture<'_, Result<(), QueueError>> {
        let connection = connection.to_owned();
        Box::pin(async move { claim::set_order(&self.inner, &connection, key).await })
    }

    fn claim(
        &self,
        connection: &str,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<Claimed>, QueueError>> {
        self.inner.wake.claiming(connection);
        let connection = connection.to_owned();
        Box::pin(async move { claim::claim(&self.inner, &connection, max).await })
    }

    fn settle(
        &self,
        connection: &str,
        settled: Vec<(EventId, Settlement)>,
        remembered: Vec<Remember>,
    ) -> BoxFuture<'_, Result<(), QueueError>> {
        let connection = connection.to_owned();
        Box::pin(async move { settle::settle(&self.inner, &connection, settled, remembered).await })
    }

    fn release(
        &self,
        connection: &str,
        ids: Vec<EventId>,
    ) -> BoxFuture<'_, Result<(), QueueError>> {
        let connection = connection.to_owned();
        Box::pin(async move { settle::release(&self.inner, &connection, ids).await })
    }

    fn remembered(&self, connection: &str) -> BoxFuture<'_, Result<Vec<Remember>, QueueError>> {
        let connection = connection.to_owned();
        Box::pin(async move { remembered::list(&self.inner, &connection).await })
    }

    fn remembered_changes(&self, connection: &str) -> Vec<Remember> {
        self.inner
            .connection(connection)
            .map(|c| std::mem::take(&mut *lock(&c.changes)))
            .unwrap_or_default()
    }

    fn depth(&self, connection: &str) -> BoxFuture<'_, Result<Depth, QueueError>> {
        let connection = connection.to_owned();
        Box::pin(async move { depth::depth(&self.inner, &connection).await })
    }

    /// Also resolves after at most a second: a retry may have fallen due.
    fn work_available(&self, connection: &str) -> BoxFuture<'_, ()> {
        Box::pin(self.inner.wake.wait(connection, POLL))
    }

    fn dead_letters(
        &self,
        connection: Option<&str>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<DeadSummary>, QueueError>> {
        let connection = connection.map(str::to_owned);
        Box::pin(async move { dead_letters::list(&self.inner, connection.as_deref(), limit).await })
    }

    fn dead_letter(&self, id: i64) -> BoxFuture<'_, Result<Option<DeadRecord>, QueueError>> {
        Box::pin(dead_letters::show(&self.inner, id))
    }

    fn replay(&self, which: Select) -> BoxFuture<'_, Result<Replayed, QueueError>> {
        Box::pin(async move { dead_letters::replay(&self.inner, &which).await })
    }

    fn purge(&self, which: Select) -> BoxFuture<'_, Result<u64, QueueError>> {
        Box::pin(async move { dead_letters::purge(&self.inner, &which).await })
    }
}
