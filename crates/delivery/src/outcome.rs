//! What became of a request: its outcome and the history of its attempts.

use std::time::{Duration, SystemTime};

use crate::client::TransportError;
use crate::request::Response;

/// The result of [`Destination::send`](crate::Destination::send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub outcome: Outcome,
    /// Attempts made (0 when the request was invalid and never sent).
    pub attempts: u32,
    /// One record per attempt, in order.
    pub history: Vec<AttemptRecord>,
    /// Time from the call to the outcome, time queued for the limits included.
    pub elapsed: Duration,
}

impl Delivery {
    /// The status of each attempt; `None` for an attempt that got no response.
    pub fn statuses(&self) -> Vec<Option<u16>> {
        self.history.iter().map(|attempt| attempt.status).collect()
    }

    pub fn is_delivered(&self) -> bool {
        matches!(self.outcome, Outcome::Delivered(_))
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx response.
    Delivered(Response),
    /// A 413 response: the body is too large. Not retried; the caller may split the batch.
    TooLarge(Response),
    /// Not delivered.
    Failed(Failure),
}

/// Why a request was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// For people: e.g. `503 Service Unavailable after 5 attempts`. Quotes no header value
    /// and no body.
    pub reason: String,
    /// The response of the last attempt that got one, if any did.
    pub last_response: Option<Response>,
    /// How long the destination asked to wait (`Retry-After`, or `X-RateLimit-Reset` on a 429)
    /// before the request is sent again, when its last answer asked. A caller that sends it
    /// again later (a durable retry) waits at least this long.
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// True when the request failed only for now: retries ran out on a retryable error, and
    /// sending it again later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            FailureKind::AttemptsExhausted | FailureKind::BudgetExhausted
        )
    }
}

/// The kind of a [`Failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The destination answered with a status that is not retried (4xx, 501, ...).
    Rejected,
    /// Every attempt allowed by `max_attempts` failed with a retryable error.
    AttemptsExhausted,
    /// The next wait would have overrun `max_total`.
    BudgetExhausted,
    /// The request could not be sent at all (bad URL or header); nothing went out.
    InvalidRequest,
}

/// One attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The response status, or `None` when there was no response.
    pub status: Option<u16>,
    /// Why there was no response.
    pub error: Option<TransportError>,
    /// When it was sent.
    pub at: SystemTime,
    /// Time from sending to the end of the response (or the error).
    pub took: Duration,
}
