//! What a connection has claimed: kept in memory only, so a restart makes it pending again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Where a claimed event came from; decides which rows its settlement touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Read from the log after the connection's cursor.
    Log,
    /// Read from the retry table.
    Retry,
}

/// One connection's delivery position.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub(crate) source: String,
    pub(crate) active: bool,
    /// Every log event at or below this id has been claimed (or settled).
    pub(crate) claimed_through: i64,
    /// Claimed and not yet settled or released.
    pub(crate) in_flight: BTreeMap<i64, Origin>,
    /// Log events given back by `release`: pending again although at or below `claimed_through`.
    pub(crate) released: BTreeSet<i64>,
}

impl ConnState {
    pub(crate) fn new(source: String, cursor: i64) -> Self {
        Self {
            source,
            active: true,
            claimed_through: cursor,
            in_flight: BTreeMap::new(),
            released: BTreeSet::new(),
        }
    }

    /// The cursor to persist: everything at or below it is settled, counting `settling` (settled
    /// in the transaction being built) as done. Just below the lowest log event still unsettled,
    /// or the claimed-through id when nothing is.
    pub(crate) fn cursor(&self, settling: &BTreeSet<i64>) -> i64 {
        let lowest_claimed = self
            .in_flight
            .iter()
            .filter(|(id, origin)| **origin == Origin::Log && !settling.contains(id))
            .map(|(id, _)| *id)
            .next();
        let lowest_released = self.released.first().copied();
        match (lowest_claimed, lowest_released) {
            (None, None) => self.claimed_through,
            (Some(a), None) | (None, Some(a)) => a - 1,
            (Some(a), Some(b)) => a.min(b) - 1,
        }
    }

    /// Gives claimed events back without an outcome.
    pub(crate) fn release(&mut self, ids: impl IntoIterator<Item = i64>) {
        for id in ids {
            if self.in_flight.remove(&id) == Some(Origin::Log) {
                self.released.insert(id);
            }
        }
    }

    pub(crate) fn retries_in_flight(&self) -> usize {
        self.in_flight
            .values()
            .filter(|origin| **origin == Origin::Retry)
            .count()
    }
}

/// Every connection this process knows, each behind its own lock so that one connection's claim
/// does not wait for another's.
#[derive(Debug, Default)]
pub(crate) struct States {
    map: Mutex<HashMap<String, Arc<Mutex<ConnState>>>>,
}

impl States {
    pub(crate) fn get(&self, connection: &str) -> Option<Arc<Mutex<ConnState>>> {
        lock(&self.map).get(connection).cloned()
    }

    /// Applies a committed `declare`: keeps the state of a connection declared again on the same
    /// source, starts the others at `cursor`, and marks every connection not listed inactive.
    pub(crate) fn declare(&self, declared: Vec<(String, String, i64)>) {
        let mut map = lock(&self.map);
        for state in map.values() {
            lock(state).active = false;
        }
        for (name, source, cursor) in declared {
            if let Some(state) = map.get(&name) {
                let mut state = lock(state);
                if state.source == source {
                    state.active = true;
                    continue;
                }
            }
            map.insert(name, Arc::new(Mutex::new(ConnState::new(source, cursor))));
        }
    }

    /// Active connections and their sources.
    pub(crate) fn active(&self) -> Vec<(String, String)> {
        lock(&self.map)
            .iter()
            .filter_map(|(name, state)| {
                let state = lock(state);
                state.active.then(|| (name.clone(), state.source.clone()))
            })
            .collect()
    }
}

/// Locks, ignoring poisoning: the state is updated in single steps that leave it consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(ids: &[i64], through: i64) -> ConnState {
        let mut state = ConnState::new("s".into(), 0);
        state.claimed_through = through;
        for id in ids {
            state.in_flight.insert(*id, Origin::Log);
        }
        state
    }

    #[test]
    fn cursor_stops_below_the_lowest_unsettled_claim() {
        let state = claimed(&[3, 4, 5], 5);
        assert_eq!(state.cursor(&BTreeSet::from([4, 5])), 2);
        assert_eq!(state.cursor(&BTreeSet::from([3])), 3);
        assert_eq!(state.cursor(&BTreeSet::from([3, 4, 5])), 5);
    }

    #[test]
    fn cursor_ignores_retries_in_flight() {
        let mut state = claimed(&[], 7);
        state.in_flight.insert(2, Origin::Retry);
        assert_eq!(state.cursor(&BTreeSet::new()), 7);
    }

    #[test]
    fn released_events_hold_the_cursor_back() {
        let mut state = claimed(&[3, 4], 4);
        state.release([3]);
        assert_eq!(state.cursor(&BTreeSet::from([4])), 2);
        assert!(!state.in_flight.contains_key(&3));
    }
}
