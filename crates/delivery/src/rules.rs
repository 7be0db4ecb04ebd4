//! The rules one destination is sent to with: what to retry, how long to wait, how fast to go.

use std::time::Duration;

/// Statuses retried unless a destination says otherwise: request timeout, too many requests,
/// and the server errors that mean "try again" (every 5xx in common use except 501).
pub(crate) const DEFAULT_RETRY_STATUSES: [u16; 6] = [408, 429, 500, 502, 503, 504];

/// How requests to one destination are retried, paced and bounded.
///
/// The caller builds these from a destination's mapping; this crate only applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Response statuses worth another attempt. A 2xx status is always a success and 413 is
    /// always [`TooLarge`](crate::Outcome::TooLarge), whatever this list says.
    pub retry_statuses: Vec<u16>,
    /// Wait as long as the server asks before retrying: `Retry-After` (delta seconds or an
    /// HTTP date) on any retried response, `X-RateLimit-Reset` (UTC epoch seconds) on a 429.
    /// When false, or when the response names no wait, the exponential backoff applies.
    pub respect_retry_after: bool,
    /// Attempts per request, the first one included. At least 1.
    pub max_attempts: u32,
    /// Ceiling of the first backoff; each later retry doubles it, up to `max_backoff`.
    /// The actual wait is drawn uniformly between zero and the ceiling ("full jitter").
    pub initial_backoff: Duration,
    /// Largest backoff ceiling.
    pub max_backoff: Duration,
    /// Bound on the time one request may take, from the moment its first attempt is admitted
    /// by the rate and concurrency limits to its outcome: attempts, waits between them and
    /// later admissions all count. Time queued before the first attempt does not, so a long
    /// backlog does not eat into every request's budget. A wait that would overrun the budget
    /// is not started: the request fails at once and says why.
    pub max_total: Duration,
    /// Bound on one attempt, from sending to the last byte of the response body; cut to what
    /// is left of `max_total` when that is less.
    pub timeout: Duration,
    /// Bound on establishing a connection (TCP and TLS), within `timeout`.
    pub connect_timeout: Duration,
    /// At most this many attempts start per window; `None` for no limit.
    pub rate_limit: Option<RateLimit>,
    /// At most this many attempts in flight at once; `None` for no limit.
    pub concurrency: Option<u32>,
}

/// A request rate: at most `requests` attempts in any window of length `per`.
///
/// Attempts are spaced evenly (one every `per / requests`), so a server counting requests in
/// fixed or sliding windows of `per` never sees more than `requests` in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

impl RateLimit {
    pub fn per_second(requests: u32) -> Self {
        Self {
            requests,
            per: Duration::from_secs(1),
        }
    }

    pub fn per_minute(requests: u32) -> Self {
        Self {
            requests,
            per: Duration::from_mins(1),
        }
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            retry_statuses: DEFAULT_RETRY_STATUSES.to_vec(),
            respect_retry_after: true,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_total: Duration::from_mins(2),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            rate_limit: None,
            concurrency: None,
        }
    }
}

/// Why a [`Destination`](crate::Destination) could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("invalid delivery rules: {0}")]
    Rules(&'static str),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl Rules {
    /// Checks the rules make sense; [`Destination::new`](crate::Destination::new) calls this.
    pub(crate) fn validate(&self) -> Result<(), SetupError> {
        let fail = |why| Err(SetupError::Rules(why));
        if self.max_attempts == 0 {
            return fail("max_attempts must be at least 1");
        }
        if self.timeout.is_zero() {
            return fail("timeout must be longer than zero");
        }
        if self.connect_timeout.is_zero() {
            return fail("connect_timeout must be longer than zero");
        }
        if self.max_total.is_zero() {
            return fail("max_total must be longer than zero");
        }
        if let Some(rate) = self.rate_limit {
            if rate.requests == 0 {
                return fail("rate_limit must allow at least 1 request");
            }
            if (rate.per / rate.requests).is_zero() {
                return fail("rate_limit window is too short for its number of requests");
            }
        }
        if self.concurrency == Some(0) {
            return fail("concurrency must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_retry_5xx_but_501() {
        let rules = Rules::default();
        rules.validate().unwrap();
        assert!(rules.retry_statuses.contains(&503));
        assert!(!rules.retry_statuses.contains(&501));
    }

    #[test]
    fn nonsense_is_rejected() {
        let bad = [
            Rules {
                max_attempts: 0,
                ..Rules::default()
            },
            Rules {
                concurrency: Some(0),
                ..Rules::default()
            },
            Rules {
                rate_limit: Some(RateLimit::per_second(0)),
                ..Rules::default()
            },
            Rules {
                rate_limit: Some(RateLimit {
                    requests: 10,
                    per: Duration::from_nanos(5),
                }),
                ..Rules::default()
            },
            Rules {
                timeout: Duration::ZERO,
                ..Rules::default()
            },
        ];
        for rules in bad {
            assert!(rules.validate().is_err(), "{rules:?}");
        }
    }
}
