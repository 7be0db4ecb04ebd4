//! A mapping's `delivery` section as the delivery layer's rules.

use std::time::Duration;

use ferry_delivery::{RateLimit, Rules};
use ferry_spec::model::Delivery;

/// The rules requests of a mapping are sent with.
pub fn rules_for(delivery: &Delivery) -> Rules {
    let timeout = Duration::from_millis(delivery.timeout_ms.max(1));
    Rules {
        retry_statuses: delivery.retry.on_status.clone(),
        respect_retry_after: delivery.retry.respect_retry_after,
        max_attempts: delivery.retry.max_attempts.max(1),
        initial_backoff: Duration::from_millis(delivery.retry.initial_backoff_ms),
        max_backoff: Duration::from_millis(delivery.retry.max_backoff_ms),
        max_total: Duration::from_millis(delivery.max_total_ms.max(1)),
        timeout,
        connect_timeout: timeout.min(Duration::from_secs(10)),
        rate_limit: delivery.rate_limit.as_ref().map(|limit| RateLimit {
            requests: limit.requests,
            per: Duration::from_secs(u64::from(limit.per_seconds)),
        }),
        concurrency: delivery.concurrency,
    }
}
