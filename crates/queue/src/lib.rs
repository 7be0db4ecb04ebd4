//! ferry's durable event queue: the store behind `ferry serve`.
//!
//! An ingest endpoint acknowledges an event only after [`Queue::enqueue`] has committed it; workers
//! then deliver each event once per *connection* (a destination account fed by one *source*; a
//! source may feed several connections). After a crash or `kill -9`, a restart resumes every
//! acknowledged event not yet delivered.
//!
//! # State model
//!
//! ```text
//!            enqueue                claim                  settle
//! request ──────────> pending ───────────> in flight ──┬──> delivered
//!                        ^      (memory only)          ├──> retry at a time ──(due)──> claimable again
//!                        └──── release / restart ──────┘──> dead ──(replay)──> retry, attempt 0
//! ```
//!
//! - The log holds each accepted event once, whatever the number of connections. Per connection
//!   a persisted *position* says "every event of my source at or below this id is settled,
//!   except these holes".
//! - *In flight* lives in memory: what a connection claimed and has not settled. Settling
//!   records the position, holes included, in the same transaction as the outcome and any
//!   remembered values, so events settled out of order stay settled.
//! - *Retry* and *dead* are their own tables holding a copy of the event, so the log is
//!   collected (deleted) once every active connection of a source has settled everything up to
//!   an event.
//! - Events refused at ingest are dead letters with no connection: kept, listed, never replayed.
//!
//! # At least once
//!
//! Nothing acknowledged is lost, but an event may be delivered twice: a crash repeats what
//! was in flight (claimed and not yet settled) at that moment, and nothing else. Destinations
//! should be fed idempotent requests where they allow it.
//!
//! # Backends
//!
//! The server only sees [`Queue`]; two stores implement it, with the same promises.
//!
//! - [`SqliteQueue`] keeps the queue in one file for one `ferry serve` process: a WAL-mode
//!   database with one writer thread doing group commits. The log, the positions and the
//!   retry and dead tables above are its own.
//! - [`NatsQueue`] keeps it in NATS JetStream, shared by several `ferry serve` nodes. The log
//!   is a stream that drops an event once every connection's consumer has acknowledged it. An
//!   event is acknowledged to its sender once JetStream stored it on a majority of the stream's
//!   replicas, and a repeat is dropped within the stream's duplicate window whichever node
//!   received it. Every node pulls a connection's events from one durable consumer shared by
//!   all, so each goes to one node, and what a node claimed and never settled goes to another
//!   after [`NatsOptions::ack_wait`]. Retries and dead letters are streams of their own,
//!   remembered values a key-value bucket, and an ordered connection is delivered by one node
//!   at a time.

mod checkpoint;
mod claim;
mod dedupe;
mod error;
mod model;
mod nats;
mod order;
mod queue;
mod schema;
mod shared;
mod sqlite;
mod state;
mod wake;
mod writer;

pub use error::QueueError;
pub use model::{
    Claimed, DeadRecord, DeadSummary, Depth, Enqueued, EventId, NewEvent, RejectedEvent, Remember,
    Replayed, Select, Settlement,
};
pub use nats::{NatsCredentials, NatsOptions, NatsQueue};
pub use order::OrderKey;
pub use queue::{BoxFuture, Queue};
pub use sqlite::{SqliteOptions, SqliteQueue};

/// The wall clock in Unix milliseconds, the unit of every time in the store.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
