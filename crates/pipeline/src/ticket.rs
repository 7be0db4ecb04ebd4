//! Tickets: how a queued event learns its outcome.
//!
//! An event taken from a durable queue travels with a [`Ticket`]. Every request the event leads
//! to (several actions, a flow's steps, a batch it joins, the halves of a split batch) holds it
//! through the event's shared handle, so the ticket is dropped exactly when the last of them has
//! finished. Dropping it hands the outcome to its [`Settle`]: delivered when no dead letter was
//! recorded, otherwise the dead letters, each marked retryable or not. This needs no counting
//! at the many places where a request can end, and cannot settle an event twice.

use std::sync::{Arc, Mutex, PoisonError};

use ferry_delivery::DeadLetter;
use ferry_engine::Remembered;

use crate::journal::Journal;

/// What became of a queued event for one connection.
#[derive(Debug)]
pub struct Settled {
    /// The queue's id of the event.
    pub id: i64,
    /// One per request that was not delivered; empty when everything was.
    pub letters: Vec<Letter>,
    /// Values the event's actions remembered, to be stored with its outcome.
    pub remembered: Vec<Remembered>,
    /// The run was aborted before the event's requests finished: the outcome is unknown, and the
    /// event should stay pending.
    pub interrupted: bool,
    /// What the event went through, for a watched ticket.
    pub journal: Option<Journal>,
    /// How many requests the event's plan made (0: nothing to send, by the mapping's design,
    /// or every action failed).
    pub requests: usize,
}

impl Settled {
    /// True when every request was delivered (or none was needed).
    pub fn delivered(&self) -> bool {
        !self.interrupted && self.letters.is_empty()
    }

    /// True when every failure may clear if the event is sent again later (timeouts, 5xx and
    /// 429 after the mapping's attempts ran out), and none was refused for good.
    pub fn retryable(&self) -> bool {
        !self.letters.is_empty() && self.letters.iter().all(|l| l.retryable)
    }
}

/// A request of the event that was not delivered.
#[derive(Debug)]
pub struct Letter {
    pub letter: DeadLetter,
    /// Whether sending it again later may succeed.
    pub retryable: bool,
    /// Not before this time: the destination asked to wait (`Retry-After`).
    pub not_before: Option<std::time::SystemTime>,
}

/// Receives the outcome of each ticket.
pub trait Settle: Send + Sync {
    fn settle(&self, settled: Settled);
}

/// The outcome of a queued event, settled when the ticket is dropped.
pub struct Ticket {
    id: i64,
    watched: bool,
    outcome: Mutex<Settled>,
    settle: Arc<dyn Settle>,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").finish_non_exhaustive()
    }
}

impl Ticket {
    /// A ticket for the queued event `id`, reporting to `settle`.
    pub fn new(id: i64, settle: Arc<dyn Settle>) -> Ticket {
        Ticket::build(id, settle, None)
    }

    /// A ticket that also keeps the event's [`Journal`]: what its plan said and every exchange
    /// its requests had, handed over in [`Settled::journal`].
    pub fn watched(id: i64, settle: Arc<dyn Settle>) -> Ticket {
        Ticket::build(id, settle, Some(Journal::default()))
    }

    fn build(id: i64, settle: Arc<dyn Settle>, journal: Option<Journal>) -> Ticket {
        Ticket {
            id,
            watched: journal.is_some(),
            outcome: Mutex::new(Settled {
                id,
                letters: Vec::new(),
                remembered: Vec::new(),
                // Until a run takes the event, nothing is known of it.
                interrupted: true,
                journal,
                requests: 0,
            }),
            settle,
        }
    }

    /// The queue's id of the event.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// A run has taken the event and planned `requests` requests for it.
    pub(crate) fn start(&self, requests: usize) {
        let mut outcome = self.lock();
        outcome.interrupted = false;
        outcome.requests = requests;
    }

    /// Settles the event as undeliverable without running it (its stored text cannot be
    /// read, say).
    pub fn reject(self, letter: DeadLetter) {
        self.start(0);
        self.fail(letter, false, None);
    }

    pub(crate) fn fail(
        &self,
        letter: DeadLetter,
        retryable: bool,
        not_before: Option<std::time::SystemTime>,
    ) {
        self.lock().letters.push(Letter {
            letter,
            retryable,
            not_before,
        });
    }

    /// Whether the ticket keeps a journal.
    pub(crate) fn is_watched(&self) -> bool {
        self.watched
    }

    /// Writes in the journal of a watched ticket; does nothing otherwise.
    pub(crate) fn journal(&self, write: impl FnOnce(&mut Journal)) {
        if self.watched
            && let Some(journal) = &mut self.lock().journal
        {
            write(journal);
        }
    }

    pub(crate) fn interrupt(&self) {
        self.lock().interrupted = true;
    }

    pub(crate) fn remember(&self, remembered: &[Remembered]) {
        self.lock().remembered.extend_from_slice(remembered);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Settled> {
        self.outcome.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let outcome = std::mem::replace(
            self.outcome
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
            Settled {
                id: 0,
                letters: Vec::new(),
                remembered: Vec::new(),
                interrupted: true,
                journal: None,
                requests: 0,
            },
        );
        self.settle.settle(outcome);
    }
}
