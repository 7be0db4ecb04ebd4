//! What the overview shows of each source and connection beyond the metrics: events per second
//! over the last minutes, refused requests by reason, delivery times and the last error.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use indexmap::IndexMap;
use serde::Serialize;

use super::sightings::{Fate, FateStatus};

/// How many seconds of history the charts show.
pub(crate) const SECONDS: usize = 300;
/// How many recent delivery times the percentiles are read from.
const TIMES_KEPT: usize = 1000;
/// Most distinct refusal reasons kept per source; later ones are counted as one.
const REASONS_KEPT: usize = 20;
/// Most characters of a reason kept.
const REASON_CHARS: usize = 300;

#[derive(Default)]
pub(crate) struct Stats {
    sources: HashMap<Arc<str>, SourceStats>,
    connections: HashMap<Arc<str>, ConnectionStats>,
}

#[derive(Default)]
struct SourceStats {
    received: Series,
    refused: Series,
    /// Whole requests refused, by reason.
    refusals: IndexMap<String, Refusals>,
}

#[derive(Default)]
struct ConnectionStats {
    delivered: Series,
    failed: Series,
    /// Receipt-to-delivery times of the latest deliveries, in milliseconds.
    times: VecDeque<i64>,
    last_error: Option<LastError>,
}

/// Requests refused for one reason.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Refusals {
    pub(crate) status: u16,
    pub(crate) count: u64,
    /// When the last one was refused (Unix milliseconds).
    pub(crate) last_ms: i64,
}

/// The last failure of a connection.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LastError {
    pub(crate) at_ms: i64,
    pub(crate) event: i64,
    pub(crate) status: &'static str,
    pub(crate) reason: String,
}

/// Counts per second over the last [`SECONDS`].
#[derive(Default)]
pub(crate) struct Series {
    /// The second of the last count (Unix seconds).
    second: i64,
    counts: VecDeque<u32>,
}

impl Series {
    /// Adds `n` to the count of the second holding `now_ms`.
    pub(crate) fn add(&mut self, now_ms: i64, n: u32) {
        self.advance(now_ms / 1000);
        if let Some(last) = self.counts.back_mut() {
            *last = last.saturating_add(n);
        }
    }

    fn advance(&mut self, second: i64) {
        if self.counts.is_empty() {
            self.counts.push_back(0);
            self.second = second;
            return;
        }
        let gap = usize::try_from(second - self.second)
            .unwrap_or(0)
            .min(SECONDS);
        for _ in 0..gap {
            self.counts.push_back(0);
        }
        while self.counts.len() > SECONDS {
            self.counts.pop_front();
        }
        self.second = self.second.max(second);
    }

    /// The counts of the last [`SECONDS`] seconds up to `now_ms`, oldest first (zeros for
    /// seconds before the first count).
    pub(crate) fn last(&self, now_ms: i64) -> Vec<u32> {
        let now = now_ms / 1000;
        let mut out = vec![0; SECONDS];
        let newest = self.counts.len();
        for (i, count) in self.counts.iter().enumerate() {
            // The second of this count, and how long before `now` it was.
            let second = self.second - i64::try_from(newest - 1 - i).unwrap_or(0);
            let ago = now - second;
            if let Ok(ago) = usize::try_from(ago)
                && ago < SECONDS
            {
                out[SECONDS - 1 - ago] = *count;
            }
        }
        out
    }
}

/// What the overview shows of a source.
#[derive(Debug, Serialize)]
pub(crate) struct SourceView {
    pub(crate) received_per_second: Vec<u32>,
    pub(crate) refused_per_second: Vec<u32>,
    pub(crate) refusals: Vec<RefusalView>,
}

#[derive(Debug, Serialize)]
pub(crate) struct RefusalView {
    pub(crate) reason: String,
    #[serde(flatten)]
    pub(crate) refusals: Refusals,
}

/// What the overview shows of a connection.
#[derive(Debug, Serialize)]
pub(crate) struct ConnectionView {
    pub(crate) delivered_per_second: Vec<u32>,
    pub(crate) failed_per_second: Vec<u32>,
    pub(crate) p50_ms: Option<i64>,
    pub(crate) p99_ms: Option<i64>,
    pub(crate) last_error: Option<LastError>,
}

impl Stats {
    pub(crate) fn received(
        &mut self,
        source: &Arc<str>,
        now_ms: i64,
        events: usize,
        rejected: &[String],
    ) {
        let stats = self.sources.entry(Arc::clone(source)).or_default();
        stats
            .received
            .add(now_ms, u32::try_from(events).unwrap_or(u32::MAX));
        for reason in rejected {
            count_reason(
                &mut stats.refusals,
                &format!("event refused: {reason}"),
                400,
                now_ms,
            );
        }
    }

    /// A request refused whole; one of an unknown source counts under its endpoint's name.
    pub(crate) fn refused(
        &mut self,
        endpoint: &str,
        source: Option<&str>,
        status: u16,
        reason: &str,
        now_ms: i64,
    ) {
        let name: Arc<str> = source.unwrap_or(endpoint).into();
        let of_source = self.sources.entry(name).or_default();
        of_source.refused.add(now_ms, 1);
        count_reason(&mut of_source.refusals, reason, status, now_ms);
    }

    pub(crate) fn settled(&mut self, connection: &Arc<str>, now_ms: i64, fates: &[Fate]) {
        let stats = self.connections.entry(Arc::clone(connection)).or_default();
        for fate in fates {
            match fate.status {
                FateStatus::Delivered | FateStatus::Skipped => {
                    stats.delivered.add(now_ms, 1);
                    if let Some(took) = fate.took_ms {
                        if stats.times.len() >= TIMES_KEPT {
                            stats.times.pop_front();
                        }
                        stats.times.push_back(took);
                    }
                }
                FateStatus::Retrying | FateStatus::Dead => {
                    stats.failed.add(now_ms, 1);
                    stats.last_error = Some(LastError {
                        at_ms: fate.at_ms,
                        event: fate.id,
                        status: fate.status.as_str(),
                        reason: cut(fate.reason.as_deref().unwrap_or_default()),
                    });
                }
                FateStatus::Pending => {}
            }
        }
    }

    /// The view of a source (all zeros for one not seen yet).
    pub(crate) fn source(&self, name: &str, now_ms: i64) -> SourceView {
        let empty = SourceStats::default();
        let stats = self.sources.get(name).unwrap_or(&empty);
        SourceView {
            received_per_second: stats.received.last(now_ms),
            refused_per_second: stats.refused.last(now_ms),
            refusals: stats
                .refusals
                .iter()
                .map(|(reason, refusals)| RefusalView {
                    reason: reason.clone(),
                    refusals: refusals.clone(),
                })
                .collect(),
        }
    }

    /// Requests refused at endpoints whose source is unknown (a wrong write key, say).
    pub(crate) fn unknown_sources<'a>(
        &'a self,
        known: &'a indexmap::IndexMap<String, crate::setup::SourceSetup>,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.sources
            .keys()
            .map(|name| &**name)
            .filter(|name| !known.contains_key(*name))
    }

    /// The view of a connection.
    pub(crate) fn connection(&self, name: &str, now_ms: i64) -> ConnectionView {
        let empty = ConnectionStats::default();
        let stats = self.connections.get(name).unwrap_or(&empty);
        let mut times: Vec<i64> = stats.times.iter().copied().collect();
        times.sort_unstable();
        ConnectionView {
            delivered_per_second: stats.delivered.last(now_ms),
            failed_per_second: stats.failed.last(now_ms),
            p50_ms: percentile(&times, 50),
            p99_ms: percentile(&times, 99),
            last_error: stats.last_error.clone(),
        }
    }
}

fn count_reason(reasons: &mut IndexMap<String, Refusals>, reason: &str, status: u16, now_ms: i64) {
    let mut reason = cut(reason);
    if !reasons.contains_key(&reason) && reasons.len() >= REASONS_KEPT {
        "(other reasons)".clone_into(&mut reason);
    }
    let entry = reasons.entry(reason).or_insert(Refusals {
        status,
        count: 0,
        last_ms: now_ms,
    });
    entry.count += 1;
    entry.status = status;
    entry.last_ms = now_ms;
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(REASON_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The `p`-th percentile of sorted values (nearest rank).
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_counts_per_second_and_shows_quiet_seconds_as_zero() {
        let mut series = Series::default();
        series.add(10_000, 2);
        series.add(10_500, 1);
        series.add(12_000, 5);
        let last = series.last(13_000);
        assert_eq!(last.len(), SECONDS);
        assert_eq!(&last[SECONDS - 4..], &[3, 0, 5, 0]);
        assert!(last[..SECONDS - 4].iter().all(|c| *c == 0));
        // Long quiet: all zeros, nothing older than the window.
        assert!(series.last(10_000_000).iter().all(|c| *c == 0));
    }

    #[test]
    fn a_series_keeps_only_the_window() {
        let mut series = Series::default();
        for second in 0..1000 {
            series.add(second * 1000, 1);
        }
        let last = series.last(999_000);
        assert_eq!(last.iter().sum::<u32>(), u32::try_from(SECONDS).unwrap());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), Some(50));
        assert_eq!(percentile(&values, 99), Some(99));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn refusal_reasons_are_bounded() {
        let mut stats = Stats::default();
        for n in 0..30 {
            stats.refused("segment", None, 401, &format!("reason {n}"), 1000);
        }
        let view = stats.source("segment", 1000);
        assert_eq!(view.refusals.len(), REASONS_KEPT + 1);
        assert_eq!(view.refusals.last().unwrap().reason, "(other reasons)");
        assert_eq!(view.refusals.last().unwrap().refusals.count, 10);
    }
}
