//! The narrow interface the server uses, so that another backend (NATS JetStream) can replace
//! SQLite without touching the workers.

use crate::{
    Claimed, DeadRecord, DeadSummary, Depth, Enqueued, EventId, NewEvent, OrderKey, QueueError,
    RejectedEvent, Remember, Replayed, Select, Settlement,
};

/// A boxed future, so that [`Queue`] stays object safe (`Arc<dyn Queue>`).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A durable event log with per-connection delivery state. See the crate docs for the state
/// model and the at-least-once guarantee.
pub trait Queue: Send + Sync + 'static {
    /// Stores events and rejected events. Durable when the future resolves: only then may the
    /// HTTP request be acknowledged.
    fn enqueue(
        &self,
        events: Vec<NewEvent>,
        rejected: Vec<RejectedEvent>,
    ) -> BoxFuture<'_, Result<Vec<Enqueued>, QueueError>>;

    /// Declares the active connections and their sources (called at start and on every config
    /// reload). A connection seen for the first time starts at the current end of the log
    /// (events enqueued before it was declared are not its business), except when the store has
    /// never had any connection declared for that source: then it starts at the beginning.
    /// Connections not in the list are inactive: they hold nothing back and claim nothing.
    fn declare(&self, connections: Vec<(String, String)>) -> BoxFuture<'_, Result<(), QueueError>>;

    /// Hands out events of `connection` with the same ordering key one after another, in the
    /// order they were accepted (`Some`), or in any order (`None`, as declared). While an event
    /// is claimed or waits for a retry, later events with its key are kept back; a settlement
    /// as delivered or dead lets the next one go. Other keys' events keep flowing. Call after
    /// `declare` (and again after each).
    fn order(
        &self,
        connection: &str,
        key: Option<OrderKey>,
    ) -> BoxFuture<'_, Result<(), QueueError>>;

    /// Up to `max` events for `connection`: due retries first, then the next events of its
    /// source in log order. Claimed events are in flight (in memory only; a restart makes them
    /// pending again) and are not handed out again until settled or released.
    fn claim(
        &self,
        connection: &str,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<Claimed>, QueueError>>;

    /// Records outcomes of claimed events and, in the same transaction, the values those events
    /// made the mapping remember.
    fn settle(
        &self,
        connection: &str,
        settled: Vec<(EventId, Settlement)>,
        remembered: Vec<Remember>,
    ) -> BoxFuture<'_, Result<(), QueueError>>;

    /// Puts claimed events back to pending without an outcome (shutdown, reload).
    fn release(&self, connection: &str, ids: Vec<EventId>)
    -> BoxFuture<'_, Result<(), QueueError>>;

    /// Every value remembered for `connection`, to seed a worker.
    fn remembered(&self, connection: &str) -> BoxFuture<'_, Result<Vec<Remember>, QueueError>>;

    /// Values other nodes sharing this queue remembered for `connection` since the last call,
    /// oldest first, for a worker to apply before it plans the events it claimed. Empty for a
    /// store that only one process delivers from.
    fn remembered_changes(&self, connection: &str) -> Vec<Remember> {
        let _ = connection;
        Vec::new()
    }

    /// Counts for metrics; cheap enough to call every few seconds.
    fn depth(&self, connection: &str) -> BoxFuture<'_, Result<Depth, QueueError>>;

    /// Resolves when `connection` may have work: new events were enqueued, a retry may be due,
    /// dead letters were replayed, or a settlement let an ordered key's next event go; at once
    /// if that happened since its last claim began. A worker with nothing to claim waits on
    /// this (with its own timeout).
    fn work_available(&self, connection: &str) -> BoxFuture<'_, ()>;

    /// The newest dead letters first, of one connection or all (rejected events included).
    fn dead_letters(
        &self,
        connection: Option<&str>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<DeadSummary>, QueueError>>;

    /// One dead letter in full.
    fn dead_letter(&self, id: i64) -> BoxFuture<'_, Result<Option<DeadRecord>, QueueError>>;

    /// Queues dead-lettered events again for their connection (a due retry with attempt 0) and
    /// removes them from the dead letters. Events rejected at ingest (no connection) are skipped.
    fn replay(&self, which: Select) -> BoxFuture<'_, Result<Replayed, QueueError>>;

    /// Deletes dead letters; answers how many.
    fn purge(&self, which: Select) -> BoxFuture<'_, Result<u64, QueueError>>;
}
