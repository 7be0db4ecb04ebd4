//! What a watched event went through in a run: what its plan said of each action, and every
//! exchange its requests had with the destination (attempts with their times, the last
//! response). Kept only for the events of a [`Ticket::watched`](crate::Ticket::watched), so
//! that nobody pays for it when nobody looks (the server's console watches events while a
//! viewer is open).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferry_delivery::{AttemptRecord, Delivery, Outcome as Sent, RecordedRequest, RecordedResponse};
use ferry_engine::{Connection, Outcome, PlannedRequest};

use crate::outgoing::{recorded, recorded_response};

/// Most bytes of a request's or response's body a journal keeps.
const BODY_KEPT: usize = 64 * 1024;

/// The story of one event in one run.
#[derive(Debug, Default, Clone)]
pub struct Journal {
    /// One note per outcome of the event's plan, in the plan's order.
    pub planned: Vec<Note>,
    /// One per request that finished (each step of a flow, each batch the event was part of);
    /// shared by the events of a batch.
    pub exchanges: Vec<Arc<Exchange>>,
}

/// What the plan said of one action.
#[derive(Debug, Clone)]
pub enum Note {
    /// A request to send: its action (`action.step` for a flow's step), method and URL
    /// (secrets redacted).
    Request {
        label: String,
        method: String,
        url: String,
    },
    /// Nothing to send, by the mapping's design.
    Skipped {
        action: Option<Arc<str>>,
        reason: String,
    },
    /// The action cannot map the event.
    Failed {
        action: Option<Arc<str>>,
        reason: String,
    },
}

/// One request's exchange with the destination, secrets redacted.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub action: Arc<str>,
    pub step: Option<Arc<str>>,
    /// How many events the request carried (more than one for a batch).
    pub events: usize,
    /// The request as sent.
    pub request: RecordedRequest,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// The last response received, if any.
    pub response: Option<RecordedResponse>,
    /// Why the request failed, when it did.
    pub failure: Option<String>,
}

/// One attempt of a request.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// When it was sent.
    pub at: SystemTime,
    /// How long it took.
    pub took: Duration,
    /// The status received, or `None` when there was no response.
    pub status: Option<u16>,
    /// Why there was no response.
    pub error: Option<String>,
}

impl From<&AttemptRecord> for Attempt {
    fn from(record: &AttemptRecord) -> Attempt {
        Attempt {
            at: record.at,
            took: record.took,
            status: record.status,
            error: record.error.as_ref().map(ToString::to_string),
        }
    }
}

impl Note {
    /// The note for one outcome of a plan.
    pub(crate) fn of(outcome: &Outcome, connection: &Connection) -> Note {
        match outcome {
            Outcome::Request(request) => Note::Request {
                label: request.label(),
                method: request.method.as_str().to_owned(),
                url: connection.redact(&request.url).into_owned(),
            },
            Outcome::Skipped(skip) => Note::Skipped {
                action: skip.action.clone(),
                reason: connection.redact(&skip.reason).into_owned(),
            },
            Outcome::Failed(failure) => Note::Failed {
                action: failure.action.clone(),
                reason: connection.redact(&failure.message).into_owned(),
            },
        }
    }
}

impl Exchange {
    /// The exchange of `request` (carrying `events` events) that ended in `delivery`, secrets
    /// redacted and bodies cut at [`BODY_KEPT`] bytes.
    pub(crate) fn of(
        request: &PlannedRequest,
        events: usize,
        delivery: &Delivery,
        connection: &Connection,
    ) -> Exchange {
        let mut sent = recorded(request, connection);
        cut(&mut sent.body);
        let (response, failure) = match &delivery.outcome {
            Sent::Delivered(response) => (Some(response), None),
            Sent::TooLarge(response) => (
                Some(response),
                Some(format!(
                    "{}: the request is too large",
                    response.status_line()
                )),
            ),
            Sent::Failed(failure) => (failure.last_response.as_ref(), Some(failure.reason.clone())),
        };
        let response = response.map(|r| {
            let mut kept = recorded_response(r, connection);
            cut(&mut kept.body);
            kept
        });
        Exchange {
            action: Arc::clone(&request.action),
            step: request.step.clone(),
            events,
            request: sent,
            attempts: delivery.history.iter().map(Attempt::from).collect(),
            response,
            failure,
        }
    }
}

/// Cuts `text` to at most [`BODY_KEPT`] bytes, on a character boundary, saying so.
fn cut(text: &mut String) {
    if text.len() > BODY_KEPT {
        let mut end = BODY_KEPT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let dropped = text.len() - end;
        text.truncate(end);
        let _ = write!(text, "... ({dropped} more bytes)");
    }
}
