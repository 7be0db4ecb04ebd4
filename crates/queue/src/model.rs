//! The values that cross the [`Queue`](crate::Queue) boundary.

/// Position of an event in the log: increasing in the order events were committed, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(pub i64);

/// One event accepted by an ingest endpoint, to be stored before the request is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The source it arrived on (e.g. `segment`); every connection fed by this source delivers it.
    pub source: String,
    /// The sender's idempotency key (Segment `messageId`, Amplitude `insert_id`); a second event
    /// with the same key on the same source within the dedupe window is dropped.
    pub dedupe: Option<String>,
    /// When ferry received it (Unix milliseconds); also the clock of the dedupe window.
    pub received_at_ms: i64,
    /// The event as received (JSON text).
    pub body: String,
}

/// What became of one [`NewEvent`]; `enqueue` answers one per event, in the same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored in the log under this id.
    Stored(EventId),
    /// Seen before within the dedupe window; nothing was stored.
    Duplicate,
}

/// An event refused at ingest inside an otherwise good batch. It is kept as a dead letter with
/// no connection so that nothing is dropped silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedEvent {
    pub source: String,
    pub received_at_ms: i64,
    /// Why ingest refused it, for the operator.
    pub reason: String,
    /// The event as received.
    pub body: String,
}

/// An event handed to a connection's worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: EventId,
    pub body: String,
    pub received_at_ms: i64,
    /// 0 for the first delivery (or a replayed dead letter), n for the n-th durable retry.
    pub attempt: u32,
}

/// The outcome of delivering a claimed event.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// Done; never delivered again to this connection.
    Delivered,
    /// Deliver again at or after `at_ms` (Unix milliseconds), with `attempt` one higher.
    Retry { at_ms: i64, reason: String },
    /// Give up: keep the event and these dead-letter records for `ferry dlq`.
    Dead {
        mapping: String,
        reason: String,
        letters: Vec<serde_json::Value>,
    },
}

/// A value a mapping remembers across events (e.g. Promoter's userId -> email), written in the
/// same transaction as the settlement of the event that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Remember {
    pub store: String,
    pub key: String,
    pub value: serde_json::Value,
}

/// How much work a connection has, for metrics and health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Events of its source not yet claimed (including released ones).
    pub pending: u64,
    /// Claimed by a worker and not yet settled.
    pub in_flight: u64,
    /// Waiting in the retry table (due or not), not in flight.
    pub retrying: u64,
    /// Dead letters of this connection.
    pub dead: u64,
}

/// One line of `ferry dlq list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadSummary {
    pub id: i64,
    /// When it was dead-lettered (Unix milliseconds).
    pub at_ms: i64,
    /// `None` for an event rejected at ingest.
    pub connection: Option<String>,
    pub source: String,
    /// `None` for an event rejected at ingest (it never entered the log).
    pub event_id: Option<EventId>,
    pub mapping: Option<String>,
    pub reason: String,
}

/// A dead letter in full, for `ferry dlq show`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadRecord {
    pub summary: DeadSummary,
    /// The event body as received.
    pub event: String,
    /// The dead-letter records the worker kept (planned requests, responses).
    pub letters: Vec<serde_json::Value>,
}

/// Which dead letters `replay` or `purge` acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// The dead letter with this id.
    One(i64),
    /// Every dead letter.
    All,
    /// The dead letters of one connection.
    Connection(String),
}

/// What `replay` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Dead letters queued again (and removed from the dead letters).
    pub queued: u64,
    /// Dead letters left alone: id and why.
    pub skipped: Vec<(i64, String)>,
}
