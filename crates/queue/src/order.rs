//! Per-key order: events with the same ordering key (a user) are handed out one after another,
//! in the order they were accepted, while other keys' events flow. Both backends run their
//! claims through a [`Sequencer`]:
//!
//! ```text
//! claimed from the store --admit--> key free: hand out, the event now holds its key
//!                                   key held: keep it here (claimed, not handed out)
//! settled delivered or dead ---------> the key passes to its next kept event (handed out next)
//! settled retry ---------------------> the key stays held until the retry is settled
//! ```
//!
//! Events kept here stay claimed in the store (in flight), so a crash hands them out again,
//! in order, after the events before them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::Claimed;

/// The ordering key of an event (its JSON text), or `None` for an event without one, which is
/// handed out at once.
pub type OrderKey = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The hold-back state of one ordered connection.
pub(crate) struct Sequencer {
    key: OrderKey,
    /// Per key, the event holding it: handed out, or waiting for its retry.
    holder: HashMap<String, i64>,
    /// The key of each holder, to free it when the holder is settled.
    holding: HashMap<i64, String>,
    /// Events claimed and kept back, by id, with their key.
    kept: BTreeMap<i64, (String, Claimed)>,
    /// Per key, the ids kept back, oldest first.
    kept_by_key: HashMap<String, BTreeSet<i64>>,
    /// Keys freed since the last claim, whose next kept event goes out next.
    freed: VecDeque<String>,
}

impl std::fmt::Debug for Sequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequencer")
            .field("held_keys", &self.holder.len())
            .field("kept", &self.kept.len())
            .finish_non_exhaustive()
    }
}

impl Sequencer {
    pub(crate) fn new(key: OrderKey) -> Sequencer {
        Sequencer {
            key,
            holder: HashMap::new(),
            holding: HashMap::new(),
            kept: BTreeMap::new(),
            kept_by_key: HashMap::new(),
            freed: VecDeque::new(),
        }
    }

    /// Takes a new way of reading keys (a reloaded configuration); keys already held stay held.
    pub(crate) fn set_key(&mut self, key: OrderKey) {
        self.key = key;
    }

    /// Retries waiting in the store (after a start, or when a node takes a connection over):
    /// each holds its key, so later events of the same key wait for it.
    pub(crate) fn hold_for_retries<'a>(
        &mut self,
        retries: impl IntoIterator<Item = (i64, &'a str)>,
    ) {
        for (id, body) in retries {
            if let Some(key) = (self.key)(body)
                && !self.holder.contains_key(&key)
            {
                self.holding.insert(id, key.clone());
                self.holder.insert(key, id);
            }
        }
    }

    /// Takes events claimed from the store, in the order they were accepted (retries first);
    /// answers those to hand out now and keeps the others.
    pub(crate) fn admit(&mut self, claimed: Vec<Claimed>) -> Vec<Claimed> {
        let mut out = Vec::with_capacity(claimed.len());
        for event in claimed {
            let Some(key) = (self.key)(&event.body) else {
                out.push(event);
                continue;
            };
            match self.holder.get(&key) {
                // Its own retry, or itself released and claimed again.
                Some(&holder) if holder == event.id.0 => out.push(event),
                Some(_) => self.keep(key, event),
                None if self.kept_by_key.contains_key(&key) => self.keep(key, event),
                None => {
                    self.holder.insert(key.clone(), event.id.0);
                    self.holding.insert(event.id.0, key);
                    out.push(event);
                }
            }
        }
        out
    }

    fn keep(&mut self, key: String, event: Claimed) {
        self.kept_by_key
            .entry(key.clone())
            .or_default()
            .insert(event.id.0);
        self.kept.insert(event.id.0, (key, event));
    }

    /// The outcome of a handed-out event: `done` (delivered or dead) frees its key for the
    /// next kept event of the same key; a retry keeps the key held.
    pub(crate) fn settled(&mut self, id: i64, done: bool) {
        if !done {
            return;
        }
        if let Some(key) = self.holding.remove(&id)
            && self.holder.get(&key) == Some(&id)
        {
            self.holder.remove(&key);
            if self.kept_by_key.contains_key(&key) {
                self.freed.push_back(key);
            }
        }
    }

    /// Kept events whose key was freed, up to `max`, each now holding its key.
    pub(crate) fn ready(&mut self, max: usize) -> Vec<Claimed> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(key) = self.freed.pop_front() else {
                break;
            };
            let Some(ids) = self.kept_by_key.get_mut(&key) else {
                continue;
            };
            let Some(id) = ids.pop_first() else {
                continue;
            };
            if ids.is_empty() {
                self.kept_by_key.remove(&key);
            }
            if let Some((_, event)) = self.kept.remove(&id) {
                self.holder.insert(key.clone(), id);
                self.holding.insert(id, key);
                out.push(event);
            }
        }
        out
    }

    /// About how many kept events [`Sequencer::ready`] hands out next.
    pub(crate) fn ready_soon(&self) -> usize {
        self.freed.len()
    }

    /// How many events are kept back.
    pub(crate) fn kept(&self) -> usize {
        self.kept.len()
    }

    /// Forgets every key and answers the kept events (a node that lost an ordered connection
    /// to another gives them back).
    pub(crate) fn reset(&mut self) -> Vec<Claimed> {
        self.holder.clear();
        self.holding.clear();
        self.kept_by_key.clear();
        self.freed.clear();
        std::mem::take(&mut self.kept)
            .into_values()
            .map(|(_, event)| event)
            .collect()
    }

    /// Every kept event, for a connection no longer ordered: they go out as they are.
    pub(crate) fn into_kept(self) -> Vec<Claimed> {
        self.kept.into_values().map(|(_, event)| event).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventId;

    fn event(id: i64, user: &str) -> Claimed {
        Claimed {
            id: EventId(id),
            body: user.to_owned(),
            received_at_ms: 0,
            attempt: 0,
        }
    }

    fn sequencer() -> Sequencer {
        Sequencer::new(Arc::new(|body: &str| {
            (!body.is_empty()).then(|| body.to_owned())
        }))
    }

    fn ids(events: &[Claimed]) -> Vec<i64> {
        events.iter().map(|e| e.id.0).collect()
    }

    #[test]
    fn one_event_per_key_goes_out_and_the_next_follows_its_settlement() {
        let mut s = sequencer();
        let out = s.admit(vec![
            event(1, "u"),
            event(2, "v"),
            event(3, "u"),
            event(4, "u"),
        ]);
        assert_eq!(ids(&out), [1, 2]);
        assert_eq!(s.kept(), 2);
        assert!(s.ready(10).is_empty(), "u is still held by 1");
        s.settled(1, true);
        assert_eq!(ids(&s.ready(10)), [3]);
        s.settled(3, true);
        assert_eq!(ids(&s.ready(10)), [4]);
    }

    #[test]
    fn a_retry_holds_only_its_key_and_a_dead_letter_frees_it() {
        let mut s = sequencer();
        assert_eq!(
            ids(&s.admit(vec![event(1, "u"), event(2, "u"), event(3, "v")])),
            [1, 3]
        );
        s.settled(1, false);
        s.settled(3, true);
        assert_eq!(ids(&s.admit(vec![event(4, "v"), event(5, "u")])), [4]);
        assert!(s.ready(10).is_empty(), "u waits for the retry of 1");
        // The retry of 1 comes back: it holds u itself.
        assert_eq!(ids(&s.admit(vec![event(1, "u")])), [1]);
        s.settled(1, true); // dead, say
        assert_eq!(ids(&s.ready(10)), [2]);
        s.settled(2, true);
        assert_eq!(ids(&s.ready(10)), [5]);
    }

    #[test]
    fn retries_in_the_store_hold_their_keys_after_a_start() {
        let mut s = sequencer();
        s.hold_for_retries([(7, "u")]);
        assert_eq!(
            ids(&s.admit(vec![event(8, "u"), event(9, "w"), event(10, "")])),
            [9, 10]
        );
        assert_eq!(ids(&s.admit(vec![event(7, "u")])), [7]);
        s.settled(7, true);
        assert_eq!(ids(&s.ready(10)), [8]);
    }

    #[test]
    fn a_new_event_of_a_key_with_kept_events_waits_behind_them() {
        let mut s = sequencer();
        s.admit(vec![event(1, "u"), event(2, "u")]);
        s.settled(1, true);
        // 3 arrives before the claim that hands 2 out: it must not overtake 2.
        assert!(s.admit(vec![event(3, "u")]).is_empty());
        assert_eq!(ids(&s.ready(10)), [2]);
        s.settled(2, true);
        assert_eq!(ids(&s.ready(10)), [3]);
    }
}
