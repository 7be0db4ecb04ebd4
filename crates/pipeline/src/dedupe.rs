//! Dropping repeats: the dedupe keys of the most recent requests, per action. A request whose
//! key its action sent within the window is dropped; a key whose request failed is forgotten,
//! so that the event can be sent again.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// How many recent dedupe keys are remembered: a repeat within this many requests is dropped.
const DEDUPE_WINDOW: usize = 100_000;

/// The dedupe keys of the most recent requests, per action.
#[derive(Default)]
pub(crate) struct Seen {
    keys: HashSet<(Arc<str>, String)>,
    order: VecDeque<(Arc<str>, String)>,
}

impl Seen {
    /// Records the key; false when it was seen within the window.
    pub(crate) fn first_time(&mut self, action: &Arc<str>, key: &str) -> bool {
        let entry = (Arc::clone(action), key.to_owned());
        if self.keys.contains(&entry) {
            return false;
        }
        if self.order.len() == DEDUPE_WINDOW
            && let Some(oldest) = self.order.pop_front()
        {
            self.keys.remove(&oldest);
        }
        self.keys.insert(entry.clone());
        self.order.push_back(entry);
        true
    }

    /// Forgets a key whose request failed, so that sending the event again is not a repeat.
    /// (Its place in the window's order stays, so a key sent again may leave the window early.)
    pub(crate) fn forget(&mut self, action: &Arc<str>, key: String) {
        self.keys.remove(&(Arc::clone(action), key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    #[test]
    fn a_repeat_within_the_window_is_dropped() {
        let mut seen = Seen::default();
        let track = action("track");
        assert!(seen.first_time(&track, "k1"));
        assert!(!seen.first_time(&track, "k1"));
        assert!(seen.first_time(&track, "k2"));
    }

    #[test]
    fn keys_are_per_action() {
        let mut seen = Seen::default();
        assert!(seen.first_time(&action("track"), "k1"));
        assert!(seen.first_time(&action("identify"), "k1"));
        assert!(!seen.first_time(&action("identify"), "k1"));
    }

    #[test]
    fn a_forgotten_key_can_be_sent_again() {
        let mut seen = Seen::default();
        let track = action("track");
        assert!(seen.first_time(&track, "k1"));
        seen.forget(&track, "k1".to_owned());
        assert!(seen.first_time(&track, "k1"));
        assert!(!seen.first_time(&track, "k1"));
    }

    #[test]
    fn the_window_forgets_the_oldest() {
        let mut seen = Seen::default();
        let track = action("track");
        for i in 0..DEDUPE_WINDOW {
            assert!(seen.first_time(&track, &i.to_string()));
        }
        // Full: every key is still a repeat.
        assert!(!seen.first_time(&track, "0"));
        assert!(!seen.first_time(&track, &(DEDUPE_WINDOW - 1).to_string()));
        // One more pushes out the oldest, and only it.
        assert!(seen.first_time(&track, "new"));
        assert_eq!(seen.order.len(), DEDUPE_WINDOW);
        assert!(!seen.first_time(&track, "1"));
        assert!(seen.first_time(&track, "0"));
    }
}
