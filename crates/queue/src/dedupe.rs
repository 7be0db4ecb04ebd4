//! Dedupe keys: the hash an idempotency key is remembered under, and the keys of the window.
//!
//! The keys of the window are looked up in memory and only appended to the store (`dedupe_log`,
//! in arrival order), from which they are read back at start. An index of random 64-bit keys in
//! the store would make every acknowledged event write to a random page of a table holding
//! millions of keys, which halved throughput and stretched commits after a burst.

use std::collections::VecDeque;

/// A set of dedupe keys. The keys are hashes already, so the table's own hash only needs to be
/// quick (and seeded, so that chosen keys cannot crowd one bucket).
pub(crate) type Keys = foldhash::HashSet<i64>;

/// A 64-bit FNV-1a hash of (source, key): stable across processes and ferry versions (unlike
/// `std`'s hasher), so a restart still recognizes keys stored before it. At 64 bits a collision
/// (one event wrongly dropped as a duplicate) needs billions of keys within one window.
pub(crate) fn dedupe_key(source: &str, key: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    // The length prefix keeps ("ab", "c") and ("a", "bc") apart.
    let len = source.len() as u64;
    for byte in len
        .to_le_bytes()
        .iter()
        .chain(source.as_bytes())
        .chain(key.as_bytes())
    {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash.cast_signed()
}

/// The dedupe keys seen within the window, newest last, at most `cap` of them: when more keys
/// arrive within the window than that, the oldest are forgotten early (a repeat of one of them
/// would then be stored again, which at-least-once delivery allows).
pub(crate) struct Recent {
    keys: Keys,
    order: VecDeque<(i64, i64)>,
    window_ms: i64,
    cap: usize,
}

/// Most keys held in memory (about 25 MB): the last 50 s at 10,000 events/s, far longer than
/// SDKs take to retry a request whose answer they did not get.
pub(crate) const RECENT_CAP: usize = 500_000;

impl Recent {
    pub(crate) fn new(window_ms: i64, cap: usize) -> Recent {
        Recent {
            keys: Keys::default(),
            order: VecDeque::new(),
            window_ms,
            cap,
        }
    }

    /// Whether `hash` was seen within the window.
    pub(crate) fn contains(&self, hash: i64) -> bool {
        self.keys.contains(&hash)
    }

    /// Remembers `hash`, seen at `at_ms` (keys arrive in time order).
    pub(crate) fn insert(&mut self, hash: i64, at_ms: i64) {
        if self.keys.insert(hash) {
            self.order.push_back((at_ms, hash));
            while self.order.len() > self.cap {
                self.forget_oldest();
            }
        }
    }

    /// Forgets the keys older than the window at `now_ms`.
    pub(crate) fn expire(&mut self, now_ms: i64) {
        let oldest = now_ms.saturating_sub(self.window_ms);
        while self.order.front().is_some_and(|(at, _)| *at < oldest) {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, hash)) = self.order.pop_front() {
            self.keys.remove(&hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Recent, dedupe_key};

    #[test]
    fn keys_are_forgotten_after_the_window_or_beyond_the_cap() {
        let mut recent = Recent::new(1_000, 3);
        recent.insert(1, 0);
        recent.insert(2, 500);
        assert!(recent.contains(1) && recent.contains(2));
        recent.expire(1_200);
        assert!(!recent.contains(1) && recent.contains(2));
        recent.insert(3, 1_300);
        recent.insert(4, 1_400);
        recent.insert(5, 1_450);
        assert!(!recent.contains(2), "beyond the cap, the oldest goes first");
        assert!(recent.contains(3) && recent.contains(5));
        recent.insert(1, 1_500);
        assert!(recent.contains(1));
    }

    #[test]
    fn source_and_key_are_kept_apart() {
        assert_ne!(dedupe_key("ab", "c"), dedupe_key("a", "bc"));
        assert_ne!(dedupe_key("segment", "m1"), dedupe_key("amplitude", "m1"));
        assert_eq!(dedupe_key("segment", "m1"), dedupe_key("segment", "m1"));
    }

    #[test]
    fn hash_is_stable_across_builds() {
        // A changed value would make a restarted server forget every stored key.
        assert_eq!(
            dedupe_key("segment", "m1"),
            0xc72d_730c_d96c_e471_u64.cast_signed()
        );
    }
}
