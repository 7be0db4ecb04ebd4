//! Delivering events for real. A [`Pipeline`] maps each event with a connection, merges the
//! planned requests as the mapping's batch rules declare, sends them with `ferry-delivery`,
//! feeds each response of a multi-step flow to its next step, and writes a dead letter for
//! whatever cannot be delivered, so that every event ends delivered or recorded.
//!
//! ```text
//! events -> Connection::plan -> Batcher -> Destination::send -> (resume | item errors | split)
//!                                                            \-> DeadLetterWriter
//! ```

mod outgoing;
mod rules;
mod run;
mod summary;
mod ticket;

pub use rules::rules_for;
pub use run::{Halt, Input, Pipeline, SharedState};
pub use summary::Summary;
pub use ticket::{Letter, Settle, Settled, Ticket};
