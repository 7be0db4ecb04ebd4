//! What a connection has claimed: kept in memory only, so a restart makes it pending again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::order::{OrderKey, Sequencer};

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
    /// For a connection with per-key order: what it keeps back (claimed, in `in_flight`, not
    /// handed out), and whether the keys of its stored retries were read since it started.
    pub(crate) order: Option<(Sequencer, bool)>,
}

/// A connection's persisted delivery position: every log event of its source at or below
/// `through` is settled, except the `holes` (ascending), which are pending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) through: i64,
    pub(crate) holes: Vec<i64>,
}

impl Position {
    /// A position with nothing unsettled at or below `through`.
    pub(crate) fn at(through: i64) -> Self {
        Self {
            through,
            holes: Vec::new(),
        }
    }

    /// Everything at or below this id is settled: what collection may delete.
    pub(crate) fn floor(&self) -> i64 {
        self.holes.first().map_or(self.through, |lowest| lowest - 1)
    }

    /// The holes as stored: runs of consecutive ids, each as two varints (the gap from the end
    /// of the previous run, and the run's length), so a claim of a few thousand events costs a
    /// few bytes.
    pub(crate) fn encode_holes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut previous = 0_i64;
        let mut runs = self.holes.iter().peekable();
        while let Some(&start) = runs.next() {
            let mut end = start;
            while runs.peek() == Some(&&(end + 1)) {
                end += 1;
                runs.next();
            }
            put_varint(&mut out, start.saturating_sub(previous).cast_unsigned());
            put_varint(&mut out, (end - start).cast_unsigned());
            previous = end;
        }
        out
    }

    /// Reads holes written by [`Position::encode_holes`]; `None` when the bytes are damaged.
    pub(crate) fn decode_holes(through: i64, bytes: &[u8]) -> Option<Self> {
        let mut holes = Vec::new();
        let mut previous = 0_i64;
        let mut rest = bytes;
        while !rest.is_empty() {
            let gap = take_varint(&mut rest)?;
            let len = take_varint(&mut rest)?;
            let start = previous.checked_add(i64::try_from(gap).ok()?)?;
            let end = start.checked_add(i64::try_from(len).ok()?)?;
            if end > through || len > (1 << 24) {
                return None;
            }
            holes.extend(start..=end);
            previous = end;
        }
        Some(Self { through, holes })
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(u8::try_from(value & 0x7f).unwrap_or(0) | 0x80);
        value >>= 7;
    }
    out.push(u8::try_from(value).unwrap_or(0));
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0_u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

impl ConnState {
    /// A connection resuming at `position`: its holes are pending again.
    pub(crate) fn new(source: String, position: Position) -> Self {
        Self {
            source,
            active: true,
            claimed_through: position.through,
            in_flight: BTreeMap::new(),
            released: position.holes.into_iter().collect(),
            order: None,
        }
    }

    /// What to persist so that a restart repeats only what is unsettled, counting `settling`
    /// (settled in the transaction being built) as done: every log event of the source at or
    /// below the claimed-through id is settled except the holes (claimed and not settled, or
    /// released). Events settled out of order above an unsettled one are thus never delivered
    /// again after a crash.
    pub(crate) fn position(&self, settling: &BTreeSet<i64>) -> Position {
        let mut holes: Vec<i64> = self
            .in_flight
            .iter()
            .filter(|(id, origin)| **origin == Origin::Log && !settling.contains(id))
            .map(|(id, _)| *id)
            .collect();
        holes.extend(self.released.iter().copied());
        holes.sort_unstable();
        holes.dedup();
        Position {
            through: self.claimed_through,
            holes,
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

    /// Makes the connection hand out events of one key one after another (`Some`), or in any
    /// order (`None`): events it kept back are then pending again.
    pub(crate) fn set_order(&mut self, key: Option<OrderKey>) {
        match (key, self.order.take()) {
            (Some(key), Some((mut sequencer, primed))) => {
                sequencer.set_key(key);
                self.order = Some((sequencer, primed));
            }
            (Some(key), None) => self.order = Some((Sequencer::new(key), false)),
            (None, Some((sequencer, _))) => {
                let kept: Vec<i64> = sequencer.into_kept().iter().map(|e| e.id.0).collect();
                self.release(kept);
            }
            (None, None) => {}
        }
    }

    /// Events claimed in the store and kept back for order: pending, not in flight.
    pub(crate) fn kept(&self) -> usize {
        self.order
            .as_ref()
            .map_or(0, |(sequencer, _)| sequencer.kept())
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
    pub(crate) fn declare(&self, declared: Vec<(String, String, Position)>) {
        let mut map = lock(&self.map);
        for state in map.values() {
            lock(state).active = false;
        }
        for (name, source, position) in declared {
            if let Some(state) = map.get(&name) {
                let mut state = lock(state);
                if state.source == source {
                    state.active = true;
                    continue;
                }
            }
            map.insert(name, Arc::new(Mutex::new(ConnState::new(source, position))));
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
        let mut state = ConnState::new("s".into(), Position::at(0));
        state.claimed_through = through;
        for id in ids {
            state.in_flight.insert(*id, Origin::Log);
        }
        state
    }

    #[test]
    fn the_position_keeps_what_is_settled_above_an_unsettled_claim() {
        let state = claimed(&[3, 4, 5], 5);
        let position = state.position(&BTreeSet::from([4, 5]));
        assert_eq!((position.through, position.holes.clone()), (5, vec![3]));
        assert_eq!(position.floor(), 2);
        assert_eq!(state.position(&BTreeSet::from([3])).holes, [4, 5]);
        let all = state.position(&BTreeSet::from([3, 4, 5]));
        assert_eq!((all.holes.len(), all.floor()), (0, 5));
    }

    #[test]
    fn the_position_ignores_retries_in_flight() {
        let mut state = claimed(&[], 7);
        state.in_flight.insert(2, Origin::Retry);
        assert_eq!(state.position(&BTreeSet::new()), Position::at(7));
    }

    #[test]
    fn released_events_are_holes() {
        let mut state = claimed(&[3, 4], 4);
        state.release([3]);
        assert_eq!(state.position(&BTreeSet::from([4])).holes, [3]);
        assert!(!state.in_flight.contains_key(&3));
    }

    #[test]
    fn holes_round_trip_through_their_encoding() {
        let cases: [&[i64]; 5] = [
            &[],
            &[1],
            &[5, 6, 7, 8, 20, 22, 23, 1_000_000],
            &[i64::from(u32::MAX), i64::from(u32::MAX) + 1],
            &[2, 4, 6, 8, 10],
        ];
        for holes in cases {
            let through = holes.last().copied().unwrap_or(0) + 3;
            let position = Position {
                through,
                holes: holes.to_vec(),
            };
            let bytes = position.encode_holes();
            assert_eq!(Position::decode_holes(through, &bytes), Some(position));
        }
        let run = Position {
            through: 10_000,
            holes: (1000..9000).collect(),
        };
        assert!(run.encode_holes().len() <= 6, "a run is a few bytes");
    }

    #[test]
    fn damaged_holes_are_refused() {
        assert_eq!(Position::decode_holes(10, &[0x80]), None);
        assert_eq!(Position::decode_holes(3, &[5, 0]), None, "beyond `through`");
        assert_eq!(Position::decode_holes(i64::MAX, &[0xff; 12]), None);
    }
}
