//! What one attempt's result means for the request: done, try again, or give up.

/// The meaning of one attempt's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 2xx: delivered.
    Success,
    /// 413: the body is too large for the destination. Sending it again cannot help; the
    /// caller may split the batch it came from.
    TooLarge,
    /// Worth another attempt: a status in the retry list, or no response at all (connection
    /// refused or closed, timeout).
    Retryable,
    /// Any other status: the destination refused the request and will refuse it again.
    Permanent,
}

/// Classifies a response status. Success and 413 take precedence over `retry_statuses`.
pub(crate) fn classify_status(status: u16, retry_statuses: &[u16]) -> Verdict {
    match status {
        200..=299 => Verdict::Success,
        413 => Verdict::TooLarge,
        status if retry_statuses.contains(&status) => Verdict::Retryable,
        _ => Verdict::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::DEFAULT_RETRY_STATUSES;

    #[test]
    fn statuses_are_classified_by_the_default_rules() {
        let retry = &DEFAULT_RETRY_STATUSES;
        for status in [200, 201, 202, 204, 299] {
            assert_eq!(classify_status(status, retry), Verdict::Success, "{status}");
        }
        assert_eq!(classify_status(413, retry), Verdict::TooLarge);
        for status in [408, 429, 500, 502, 503, 504] {
            assert_eq!(
                classify_status(status, retry),
                Verdict::Retryable,
                "{status}"
            );
        }
        for status in [301, 304, 400, 401, 403, 404, 409, 422, 501, 505] {
            assert_eq!(
                classify_status(status, retry),
                Verdict::Permanent,
                "{status}"
            );
        }
    }

    #[test]
    fn success_and_too_large_ignore_the_retry_list() {
        assert_eq!(classify_status(200, &[200, 413]), Verdict::Success);
        assert_eq!(classify_status(413, &[200, 413]), Verdict::TooLarge);
        assert_eq!(classify_status(409, &[409]), Verdict::Retryable);
    }
}
