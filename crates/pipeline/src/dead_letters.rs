//! Dead letters. `Last` is what is known of a request that was not delivered (the request and
//! response as recorded, secrets redacted); a dead letter holds it with the event and the
//! reason, and goes on the event's ticket when the event came from a queue, to the dead-letter
//! file otherwise. Failing an event also gives back the dedupe keys its requests took, so that
//! it can be sent again; an item of a merged batch is dead-lettered with its own part of the
//! request.

use std::io;
use std::sync::PoisonError;
use std::time::Duration;

use ferry_delivery::{DeadLetter, RecordedRequest, RecordedResponse, timestamp};
use ferry_engine::MergedRequest;
use serde_json::Value;

use crate::outgoing::recorded;
use crate::run::{Pipeline, Run};
use crate::tracked::{Item, Tracked};

/// What is known of a request that was not delivered.
#[derive(Default)]
pub(crate) struct Last {
    pub(crate) request: Option<RecordedRequest>,
    pub(crate) response: Option<RecordedResponse>,
    pub(crate) attempts: u32,
    /// Whether sending it again later may succeed.
    pub(crate) retryable: bool,
    /// How long the destination asked to wait before it is sent again.
    pub(crate) retry_after: Option<Duration>,
}

impl Last {
    pub(crate) fn request(request: RecordedRequest) -> Last {
        Last {
            request: Some(request),
            ..Last::default()
        }
    }
}

impl Pipeline {
    /// Records that `item` (or part of it) was not delivered: on its ticket when it came from a
    /// queue, in the dead-letter file otherwise.
    fn dead_letter(&self, item: &Tracked, reason: &str, last: Last) -> io::Result<()> {
        let letter = self.letter(
            item.event.clone(),
            reason,
            last.request,
            last.response,
            last.attempts,
        );
        match &item.ticket {
            Some(ticket) => {
                let not_before = last
                    .retry_after
                    .map(|wait| std::time::SystemTime::now() + wait);
                ticket.fail(letter, last.retryable, not_before);
                Ok(())
            }
            None => self.write_dead_letter(&letter),
        }
    }

    pub(crate) fn write_dead_letter(&self, letter: &DeadLetter) -> io::Result<()> {
        match &self.dead_letters {
            Some(file) => file.append(letter),
            None => Err(io::Error::other(
                "this pipeline takes queued events only: it has no dead-letter file",
            )),
        }
    }

    pub(crate) fn letter(
        &self,
        event: Value,
        reason: &str,
        last_request: Option<RecordedRequest>,
        last_response: Option<RecordedResponse>,
        attempts: u32,
    ) -> DeadLetter {
        DeadLetter {
            at: timestamp(std::time::SystemTime::now()),
            mapping: self.connection.mapping().name.to_string(),
            connection: self.connection_name.clone(),
            event,
            reason: self.connection.redact(reason).into_owned(),
            last_request,
            last_response,
            attempts,
        }
    }
}

impl Run<'_> {
    /// Records that `item` (or part of it) was not delivered, and gives back the dedupe keys
    /// its requests took.
    pub(crate) fn fail(&mut self, item: &Tracked, reason: &str, last: Last) -> io::Result<()> {
        for (action, key) in item
            .deduped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            self.seen.forget(&action, key);
        }
        self.pipeline.dead_letter(item, reason, last)
    }

    pub(crate) fn dead_letter_item(
        &mut self,
        merged: &MergedRequest<Item>,
        index: usize,
        reason: &str,
        mut last: Last,
    ) -> io::Result<()> {
        self.summary.dead_lettered += 1;
        let request = merged.item_request(index);
        last.request = request.as_ref().map(|r| recorded(r, self.connection()));
        let action = &merged.request.action;
        self.fail(
            &merged.items[index],
            &format!("action `{action}`: {reason}"),
            last,
        )
    }
}
