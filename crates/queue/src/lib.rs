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
//! [`SqliteQueue`] is the SQLite implementation; the server only sees [`Queue`].

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
