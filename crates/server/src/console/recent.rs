//! The most recent events this process saw, with what became of each for every connection:
//! the list the console opens on, and the event page's stored event.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::sightings::Fate;

/// How many recent events are kept.
pub(crate) const KEPT: usize = 500;
/// Most characters of a summary field (type, name, user) shown in lists.
const SUMMARY_CHARS: usize = 120;

/// The recent events, oldest first.
#[derive(Default)]
pub(crate) struct Recent {
    order: VecDeque<i64>,
    entries: HashMap<i64, Entry>,
}

/// One event and its fates.
pub(crate) struct Entry {
    pub(crate) id: i64,
    pub(crate) source: Arc<str>,
    /// When it was received (Unix milliseconds).
    pub(crate) at_ms: i64,
    /// The event as stored.
    pub(crate) body: Arc<str>,
    /// Whether the live stream showed it (and its fates).
    pub(crate) shown: bool,
    /// What became of it, per connection, latest first reported last.
    pub(crate) fates: Vec<(Arc<str>, Fate)>,
    summary: OnceLock<Summary>,
}

/// What a list shows of an event: its type, name and user, read from the stored text.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Summary {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) user: Option<String>,
}

impl Entry {
    pub(crate) fn new(id: i64, source: Arc<str>, at_ms: i64, body: Arc<str>, shown: bool) -> Entry {
        Entry {
            id,
            source,
            at_ms,
            body,
            shown,
            fates: Vec::new(),
            summary: OnceLock::new(),
        }
    }

    /// The event's type, name and user, read once.
    pub(crate) fn summary(&self) -> &Summary {
        self.summary.get_or_init(|| summarize(&self.body))
    }
}

impl Recent {
    pub(crate) fn get(&self, id: i64) -> Option<&Entry> {
        self.entries.get(&id)
    }

    /// Keeps `entry`, forgetting the oldest beyond [`KEPT`].
    pub(crate) fn insert(&mut self, entry: Entry) -> &Entry {
        let id = entry.id;
        if self.entries.contains_key(&id) {
            return &self.entries[&id];
        }
        if self.order.len() >= KEPT
            && let Some(oldest) = self.order.pop_front()
        {
            self.entries.remove(&oldest);
        }
        self.order.push_back(id);
        self.entries.entry(id).or_insert(entry)
    }

    /// Records what became of event `fate.id` for `connection`; answers the event when the
    /// live stream shows it.
    pub(crate) fn fate(&mut self, connection: &Arc<str>, fate: Fate) -> Option<&Entry> {
        let entry = self.entries.get_mut(&fate.id)?;
        match entry.fates.iter_mut().find(|(c, _)| c == connection) {
            Some((_, earlier)) => {
                // A retry's journal is worth keeping when the next attempt was not watched.
                let journal = fate.journal.clone().or_else(|| earlier.journal.take());
                *earlier = Fate { journal, ..fate };
            }
            None => entry.fates.push((Arc::clone(connection), fate)),
        }
        let entry = &*entry;
        entry.shown.then_some(entry)
    }

    /// The newest events first, at most `limit`, of one source or all.
    pub(crate) fn newest<'a>(
        &'a self,
        limit: usize,
        source: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.entries.get(id))
            .filter(move |e| source.is_none_or(|s| &*e.source == s))
            .take(limit)
    }
}

/// Reads the type, name and user of an event of any source (Segment, Amplitude, Extole).
fn summarize(body: &str) -> Summary {
    let Ok(Value::Object(event)) = serde_json::from_str::<Value>(body) else {
        return Summary::default();
    };
    let text = |keys: &[&str]| {
        keys.iter().find_map(|key| match event.get(*key) {
            Some(Value::String(s)) if !s.is_empty() => Some(short(s)),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    };
    Summary {
        kind: text(&["type", "event_type"]),
        name: text(&["event", "name"]),
        user: text(&[
            "userId",
            "user_id",
            "anonymousId",
            "device_id",
            "person_id",
            "email",
        ]),
    }
}

fn short(text: &str) -> String {
    match text.char_indices().nth(SUMMARY_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sightings::FateStatus;

    fn fate(id: i64, status: FateStatus) -> Fate {
        Fate {
            id,
            status,
            reason: None,
            at_ms: 0,
            attempt: 0,
            took_ms: None,
            journal: None,
        }
    }

    #[test]
    fn the_oldest_events_are_forgotten_beyond_the_limit() {
        let mut recent = Recent::default();
        for id in 0..i64::try_from(KEPT).unwrap() + 10 {
            recent.insert(Entry::new(id, "web".into(), id, "{}".into(), false));
        }
        assert!(recent.get(9).is_none());
        assert!(recent.get(10).is_some());
        let newest: Vec<i64> = recent.newest(3, None).map(|e| e.id).collect();
        assert_eq!(newest, [509, 508, 507]);
    }

    #[test]
    fn a_later_fate_replaces_the_earlier_one_of_the_same_connection() {
        let mut recent = Recent::default();
        recent.insert(Entry::new(1, "web".into(), 0, "{}".into(), true));
        let braze: Arc<str> = "braze".into();
        recent.fate(&braze, fate(1, FateStatus::Retrying));
        let shown = recent.fate(&braze, fate(1, FateStatus::Delivered)).unwrap();
        assert_eq!(shown.fates.len(), 1);
        assert_eq!(shown.fates[0].1.status, FateStatus::Delivered);
    }

    #[test]
    fn summaries_read_segment_and_amplitude_events_and_cut_long_values() {
        let segment = summarize(r#"{"type":"track","event":"Order Completed","userId":"u1"}"#);
        assert_eq!(segment.kind.as_deref(), Some("track"));
        assert_eq!(segment.name.as_deref(), Some("Order Completed"));
        assert_eq!(segment.user.as_deref(), Some("u1"));
        let amplitude = summarize(r#"{"event_type":"Played","device_id":"d-1"}"#);
        assert_eq!(amplitude.kind.as_deref(), Some("Played"));
        assert_eq!(amplitude.user.as_deref(), Some("d-1"));
        let long = summarize(&format!(r#"{{"userId":"{}"}}"#, "x".repeat(500)));
        assert_eq!(long.user.unwrap().chars().count(), SUMMARY_CHARS + 1);
        assert!(summarize("not json").kind.is_none());
    }
}
