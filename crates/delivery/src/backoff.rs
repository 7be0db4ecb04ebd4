//! How long to wait before the next attempt: exponential backoff with full jitter, unless the
//! server said how long (`Retry-After`, `X-RateLimit-Reset`).
//!
//! Everything here is a pure function of its inputs (time and randomness are passed in), so
//! it is tested without sleeping.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::request::header;

/// Exponential backoff ceilings: `initial`, doubled on each retry, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// The longest wait before retry number `retry` (1 for the wait after the first attempt).
    pub(crate) fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1);
        2u32.checked_pow(doublings)
            .and_then(|factor| self.initial.checked_mul(factor))
            .map_or(self.max, |ceiling| ceiling.min(self.max))
    }

    /// The wait before retry number `retry`, drawn uniformly from zero to the ceiling by
    /// `unit`, a number in `[0, 1]` (clamped).
    pub(crate) fn delay_with(&self, retry: u32, unit: f64) -> Duration {
        self.ceiling(retry).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The wait before retry number `retry`, with fresh randomness ("full jitter").
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        self.delay_with(retry, fastrand::f64())
    }
}

/// Which response header named a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HintSource {
    RetryAfter,
    RateLimitReset,
}

impl fmt::Display for HintSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HintSource::RetryAfter => "Retry-After",
            HintSource::RateLimitReset => "X-RateLimit-Reset",
        })
    }
}

/// A wait named by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerHint {
    pub(crate) wait: Duration,
    pub(crate) source: HintSource,
}

/// Parses a `Retry-After` value: delta seconds (whole, or leniently with a fraction) or an
/// HTTP date. A date in the past means no wait. Anything else is `None`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Some(seconds) = parse_seconds(value) {
        return Some(seconds);
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Below this, an `X-RateLimit-Reset` value is taken as seconds from now rather than an epoch
/// time: as an epoch time it would be before September 2001, and some APIs send the
/// remaining seconds under this name.
const EPOCH_THRESHOLD: f64 = 1_000_000_000.0;

/// Parses an `X-RateLimit-Reset` value: the UTC epoch second at which the rate-limit window
/// resets (Braze). A reset in the past means no wait. A value too small to be an epoch time
/// (before 2001) is read as seconds from now. Anything else is `None`.
pub(crate) fn parse_rate_limit_reset(value: &str, now: SystemTime) -> Option<Duration> {
    let number = parse_number(value.trim())?;
    if number < EPOCH_THRESHOLD {
        return Duration::try_from_secs_f64(number).ok();
    }
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    Some(Duration::try_from_secs_f64(number - now).unwrap_or(Duration::ZERO))
}

/// The wait a retryable response asks for, if any: `Retry-After` on any status, else
/// `X-RateLimit-Reset` on a 429 only (Braze sends it on every response, where it describes
/// the window rather than asking for a wait).
pub(crate) fn server_hint(
    status: u16,
    headers: &[(String, String)],
    now: SystemTime,
) -> Option<ServerHint> {
    if let Some(wait) = header(headers, "retry-after").and_then(|v| parse_retry_after(v, now)) {
        return Some(ServerHint {
            wait,
            source: HintSource::RetryAfter,
        });
    }
    if status == 429 {
        let reset = header(headers, "x-ratelimit-reset");
        if let Some(wait) = reset.and_then(|v| parse_rate_limit_reset(v, now)) {
            return Some(ServerHint {
                wait,
                source: HintSource::RateLimitReset,
            });
        }
    }
    None
}

/// Where the wait before the next attempt came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitSource {
    Backoff,
    Server(HintSource),
}

/// The wait before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wait {
    pub(crate) duration: Duration,
    pub(crate) source: WaitSource,
}

/// Chooses the wait before the next attempt: the server's, when it named one longer than
/// zero and the rules respect it; otherwise the backoff. A zero wait from the server (a reset
/// time already past, often clock skew) falls back to the backoff so retries stay spread out.
pub(crate) fn choose_wait(
    hint: Option<ServerHint>,
    respect_server: bool,
    backoff: Duration,
) -> Wait {
    match hint {
        Some(hint) if respect_server && !hint.wait.is_zero() => Wait {
            duration: hint.wait,
            source: WaitSource::Server(hint.source),
        },
        _ => Wait {
            duration: backoff,
            source: WaitSource::Backoff,
        },
    }
}

fn parse_seconds(value: &str) -> Option<Duration> {
    Duration::try_from_secs_f64(parse_number(value)?).ok()
}

/// A non-negative decimal number, digits only (no sign, exponent, `inf` or `NaN`).
fn parse_number(value: &str) -> Option<f64> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let valid = match value.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(value),
    };
    if !valid {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch_seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(epoch_seconds)
    }

    const NOW: u64 = 1_700_000_000; // Tue, 14 Nov 2023 22:13:20 GMT

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_ceiling_doubles_up_to_the_max() {
        let backoff = Backoff {
            initial: ms(100),
            max: ms(1000),
        };
        let ceilings: Vec<Duration> = (1..=6).map(|retry| backoff.ceiling(retry)).collect();
        assert_eq!(
            ceilings,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(backoff.ceiling(0), ms(100));
        assert_eq!(
            backoff.ceiling(200),
            ms(1000),
            "no overflow on many retries"
        );
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let backoff = Backoff {
            initial: ms(100),
            max: ms(1000),
        };
        assert_eq!(backoff.delay_with(3, 0.0), Duration::ZERO);
        assert_eq!(backoff.delay_with(3, 0.5), ms(200));
        assert_eq!(backoff.delay_with(3, 1.0), ms(400));
        assert_eq!(backoff.delay_with(3, 7.0), ms(400), "clamped");
        for _ in 0..100 {
            assert!(backoff.delay(2) <= ms(200));
        }
    }

    #[test]
    fn retry_after_in_seconds() {
        let now = at(NOW);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_mins(2))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.5", now), Some(ms(1500)));
    }

    #[test]
    fn retry_after_as_an_http_date() {
        let now = at(NOW);
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after(&httpdate::fmt_http_date(at(NOW + 90)), now),
            Some(Duration::from_secs(90))
        );
    }

    #[test]
    fn retry_after_in_the_past_means_no_wait() {
        let now = at(NOW);
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_garbage_is_ignored() {
        let now = at(NOW);
        for garbage in [
            "",
            " ",
            "soon",
            "-1",
            "+5",
            "1e3",
            "NaN",
            "inf",
            "1.",
            ".5",
            "1,5",
            "5s",
            "Tue, 14 Nov 2023",
            "99999999999999999999999999999999",
        ] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
    }

    #[test]
    fn rate_limit_reset_in_epoch_seconds() {
        let now = at(NOW);
        assert_eq!(
            parse_rate_limit_reset("1700000042", now),
            Some(Duration::from_secs(42))
        );
        assert_eq!(parse_rate_limit_reset("1700000000.5", now), Some(ms(500)));
        assert_eq!(
            parse_rate_limit_reset("1699999000", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn rate_limit_reset_too_small_for_an_epoch_is_seconds_from_now() {
        assert_eq!(
            parse_rate_limit_reset("30", at(NOW)),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn rate_limit_reset_garbage_is_ignored() {
        for garbage in [
            "",
            "tomorrow",
            "-5",
            "Tue, 14 Nov 2023 22:13:50 GMT",
            "1e10",
        ] {
            assert_eq!(
                parse_rate_limit_reset(garbage, at(NOW)),
                None,
                "{garbage:?}"
            );
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn retry_after_wins_over_rate_limit_reset() {
        let found = server_hint(
            429,
            &headers(&[("X-RateLimit-Reset", "1700000050"), ("Retry-After", "3")]),
            at(NOW),
        );
        assert_eq!(
            found,
            Some(ServerHint {
                wait: Duration::from_secs(3),
                source: HintSource::RetryAfter
            })
        );
    }

    #[test]
    fn rate_limit_reset_counts_on_429_only() {
        let braze = headers(&[("x-ratelimit-reset", "1700000050")]);
        assert_eq!(
            server_hint(429, &braze, at(NOW)),
            Some(ServerHint {
                wait: Duration::from_secs(50),
                source: HintSource::RateLimitReset
            })
        );
        assert_eq!(server_hint(503, &braze, at(NOW)), None);
    }

    #[test]
    fn garbage_retry_after_falls_through_to_the_reset() {
        let found = server_hint(
            429,
            &headers(&[
                ("Retry-After", "later"),
                ("X-RateLimit-Reset", "1700000010"),
            ]),
            at(NOW),
        );
        assert_eq!(found.map(|h| h.source), Some(HintSource::RateLimitReset));
    }

    #[test]
    fn the_server_wait_overrides_the_backoff_when_respected() {
        let hint = Some(ServerHint {
            wait: Duration::from_secs(5),
            source: HintSource::RetryAfter,
        });
        let chosen = choose_wait(hint, true, ms(10));
        assert_eq!(chosen.duration, Duration::from_secs(5));
        assert_eq!(chosen.source, WaitSource::Server(HintSource::RetryAfter));
        assert_eq!(choose_wait(hint, false, ms(10)).duration, ms(10));
        assert_eq!(choose_wait(None, true, ms(10)).source, WaitSource::Backoff);
    }

    #[test]
    fn a_zero_server_wait_falls_back_to_the_backoff() {
        let hint = Some(ServerHint {
            wait: Duration::ZERO,
            source: HintSource::RateLimitReset,
        });
        let chosen = choose_wait(hint, true, ms(10));
        assert_eq!(chosen.duration, ms(10));
        assert_eq!(chosen.source, WaitSource::Backoff);
    }
}
