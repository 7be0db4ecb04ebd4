//! Admission of attempts: a concurrency slot, then a turn under the rate limit.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::rules::{RateLimit, SetupError};

/// The rate limiter and concurrency slots of one destination.
#[derive(Debug)]
pub(crate) struct Limits {
    rate: Option<DefaultDirectRateLimiter>,
    slots: Option<Semaphore>,
}

/// Held while an attempt is in flight: its concurrency slot, if there is a limit.
pub(crate) struct Admission<'a> {
    _slot: Option<SemaphorePermit<'a>>,
}

impl Limits {
    pub(crate) fn new(
        rate: Option<RateLimit>,
        concurrency: Option<u32>,
    ) -> Result<Self, SetupError> {
        let rate = rate.map(rate_limiter).transpose()?;
        let slots = concurrency
            .map(|n| usize::try_from(n).map(Semaphore::new))
            .transpose()
            .map_err(|_| SetupError::Rules("concurrency is too large"))?;
        Ok(Self { rate, slots })
    }

    /// Waits for a concurrency slot, then for the rate limiter.
    ///
    /// The slot comes first: taking a turn under the rate limit and then queueing for a slot
    /// would let attempts pile up behind the slots and leave in a burst when they free.
    pub(crate) async fn admit(&self) -> Admission<'_> {
        let slot = match &self.slots {
            Some(slots) => Some(
                slots
                    .acquire()
                    .await
                    .expect("the semaphore is never closed"),
            ),
            None => None,
        };
        if let Some(rate) = &self.rate {
            rate.until_ready().await;
        }
        Admission { _slot: slot }
    }
}

/// Evenly spaced cells: one every `per / requests`, with no burst, so no window of `per`
/// ever holds more than `requests` attempts.
fn rate_limiter(rate: RateLimit) -> Result<DefaultDirectRateLimiter, SetupError> {
    let requests = NonZeroU32::new(rate.requests).ok_or(SetupError::Rules(
        "rate_limit must allow at least 1 request",
    ))?;
    let quota = Quota::with_period(rate.per / requests.get()).ok_or(SetupError::Rules(
        "rate_limit window is too short for its number of requests",
    ))?;
    Ok(RateLimiter::direct(quota))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test]
    async fn attempts_are_spaced_evenly() {
        let limits = Limits::new(
            Some(RateLimit {
                requests: 10,
                per: Duration::from_millis(500),
            }),
            None,
        )
        .unwrap();
        let start = Instant::now();
        for _ in 0..4 {
            drop(limits.admit().await);
        }
        // The first goes at once, the next three 50 ms apart.
        assert!(
            start.elapsed() >= Duration::from_millis(145),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn slots_are_held_until_the_admission_is_dropped() {
        let limits = Limits::new(None, Some(1)).unwrap();
        let held = limits.admit().await;
        let second = tokio::time::timeout(Duration::from_millis(50), limits.admit()).await;
        assert!(
            second.is_err(),
            "a second attempt got in while the only slot was taken"
        );
        drop(held);
        tokio::time::timeout(Duration::from_millis(50), limits.admit())
            .await
            .expect("the slot is free again");
    }
}
