//! Delivering events for real. A [`Pipeline`] maps each event with a connection, merges the
//! planned requests as the mapping's batch rules declare, sends them with `ferry-delivery`,
//! feeds each response of a multi-step flow to its next step, and writes a dead letter for
//! whatever cannot be delivered, so that every event ends delivered or recorded.
//!
//! ```text
//! events -> Connection::plan -> Batcher -> Destination::send -> (resume | item errors | split)
//!                                                            \-> DeadLetterWriter
//! ```

mod batches;
mod dead_letters;
mod dedupe;
mod journal;
mod outgoing;
mod rules;
mod run;
mod sender;
mod summary;
mod ticket;
mod tracked;

pub use journal::{Attempt, Exchange, Journal, Note};
pub use rules::rules_for;
pub use run::{Halt, Pipeline, SharedState};
pub use summary::Summary;
pub use ticket::{Letter, Settle, Settled, Ticket};
pub use tracked::Input;
