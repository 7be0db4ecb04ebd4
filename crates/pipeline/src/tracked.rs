//! What a run takes in. An [`Input`] is an event, a queued event with its ticket, or text that
//! is not an event. Once planned, an event travels as a shared `Tracked` handle, held by every
//! request it leads to: it carries the event's ticket and the dedupe keys its requests took, and
//! interrupts the ticket when the run is dropped before the last of them has finished.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::ticket::Ticket;

/// One input of a run.
#[derive(Debug)]
pub enum Input {
    /// An event, with its 1-based position in the input.
    Event {
        /// Position in the input.
        index: usize,
        /// The event.
        event: Value,
    },
    /// An event taken from a durable queue: its dead letters go to its ticket, which is settled
    /// once every request the event led to has finished.
    Queued {
        /// The event's claim on its outcome.
        ticket: Ticket,
        /// The event.
        event: Value,
    },
    /// Input that is not an event (bad JSON); it is dead-lettered as text.
    Unreadable {
        /// Position in the input.
        index: usize,
        /// The text as read.
        text: String,
        /// Why it is not an event.
        reason: String,
    },
}

/// An event on its way: shared by every request it leads to.
#[derive(Debug)]
pub(crate) struct Tracked {
    /// Position in the input, or the queue's id of the event.
    pub(crate) index: usize,
    pub(crate) event: Value,
    pub(crate) ticket: Option<Ticket>,
    /// Set when the run is dropped before finishing: what is still held was interrupted.
    pub(crate) cancelled: Arc<AtomicBool>,
    /// The dedupe keys this event's requests took: given back if any request fails, so that
    /// the event can be sent again (a retry, a replay) without being dropped as a repeat.
    pub(crate) deduped: std::sync::Mutex<Vec<(Arc<str>, String)>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(ticket) = &self.ticket
            && self.cancelled.load(Ordering::Acquire)
        {
            ticket.interrupt();
        }
    }
}

pub(crate) type Item = Arc<Tracked>;
