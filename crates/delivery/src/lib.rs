//! Delivery of rendered HTTP requests to marketing destinations, one request at a time,
//! reliably: retries with exponential backoff and full jitter, `Retry-After` and
//! `X-RateLimit-Reset` honoured, a total time budget, a rate limit and a concurrency limit per
//! destination, and a dead-letter file for what could not be delivered.
//!
//! This crate knows nothing of mappings: a caller renders an [`Outgoing`] request, derives
//! the [`Rules`] of its destination, and gets back a [`Delivery`].
//!
//! ```no_run
//! # async fn example() -> Result<(), ferry_delivery::SetupError> {
//! use ferry_delivery::{Destination, Method, Outcome, Outgoing, RateLimit, Rules};
//!
//! let braze = Destination::new(Rules {
//!     rate_limit: Some(RateLimit::per_minute(250_000)),
//!     concurrency: Some(8),
//!     ..Rules::default()
//! })?;
//! let request = Outgoing::new(Method::POST, "https://rest.iad-01.braze.com/users/track")
//!     .with_header("Authorization", "Bearer ...")
//!     .with_header("Content-Type", "application/json")
//!     .with_body(r#"{"attributes":[]}"#);
//! match braze.send(&request).await.outcome {
//!     Outcome::Delivered(response) => println!("{}", response.status),
//!     Outcome::TooLarge(_) => println!("split the batch"),
//!     Outcome::Failed(failure) => println!("{}", failure.reason),
//! }
//! # Ok(()) }
//! ```
//!
//! Logging (`tracing`) shows the method, host and path, attempt numbers and statuses; never
//! a query string, a header value or a body, which may carry secrets.

mod backoff;
mod classify;
mod client;
mod dead_letter;
mod destination;
mod limit;
mod outcome;
mod request;
mod rules;

use std::time::Duration;

pub use client::{MAX_RESPONSE_BYTES, TransportError};
pub use dead_letter::{
    DeadLetter, DeadLetterReader, DeadLetterWriter, Entry, ReadError, RecordedRequest,
    RecordedResponse, timestamp,
};
pub use destination::Destination;
pub use outcome::{AttemptRecord, Delivery, Failure, FailureKind, Outcome};
pub use request::{Method, Outgoing, Response};
pub use rules::{RateLimit, Rules, SetupError};

/// A duration for people: `250ms`, `1.5s`, `30s`.
pub(crate) fn human(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_secs(30)), "30s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_micros(1_999_999)), "2.0s");
    }
}
