//! What a run did, for the end-of-run summary and progress lines.

use std::collections::BTreeMap;
use std::fmt;

/// Counts of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Events read.
    pub events: u64,
    /// Events no action selects (nothing to send, by the mapping's design).
    pub skipped: u64,
    /// Requests dropped because an earlier event of the run had the same action and dedupe key.
    pub duplicates: u64,
    /// HTTP requests that finished, each after all its attempts.
    pub requests: u64,
    /// Requests the destination accepted.
    pub delivered: u64,
    /// Planned requests (events' requests, several per merged batch) accepted.
    pub items_delivered: u64,
    /// Attempts made beyond the first of each request.
    pub retries: u64,
    /// Batches split because the destination answered 413, or 400/422 (to isolate the refused
    /// items from the rest).
    pub splits: u64,
    /// Dead letters written.
    pub dead_lettered: u64,
    /// Responses by status, over every attempt.
    pub statuses: BTreeMap<u16, u64>,
    /// Attempts that got no response (timeouts, refused or closed connections).
    pub transport_errors: u64,
    /// Errors a 2xx response listed without naming an item of the request.
    pub unattributed: Vec<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events: {} delivered in {} of {} requests, {} retried, {} dead-lettered",
            self.events,
            self.items_delivered,
            self.delivered,
            self.requests,
            self.retries,
            self.dead_lettered
        )?;
        if self.skipped > 0 {
            write!(f, ", {} skipped (no action matches)", self.skipped)?;
        }
        if self.duplicates > 0 {
            write!(f, ", {} duplicates dropped", self.duplicates)?;
        }
        if !self.unattributed.is_empty() {
            write!(
                f,
                ", {} response errors named no request",
                self.unattributed.len()
            )?;
        }
        if self.splits > 0 {
            write!(f, ", {} batches split after 413/400", self.splits)?;
        }
        if !self.statuses.is_empty() || self.transport_errors > 0 {
            f.write_str("; responses:")?;
            for (status, count) in &self.statuses {
                write!(f, " {status}x{count}")?;
            }
            if self.transport_errors > 0 {
                write!(f, " no-response x{}", self.transport_errors)?;
            }
        }
        Ok(())
    }
}
