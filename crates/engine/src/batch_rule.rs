//! A step's batching rule, as compiled from the mapping: what planned requests carry and the
//! batcher applies. A leaf module, so that plans and the batcher share it without importing
//! each other.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use crate::path::Path;
use crate::template::Template;

/// A step's batching rule, compiled.
#[derive(Debug)]
pub struct BatchRule {
    pub(crate) merge: Merge,
    pub(crate) max_items: usize,
    pub(crate) max_bytes: usize,
    pub(crate) linger: Option<Duration>,
    pub(crate) key: Option<Template>,
    pub(crate) item_errors: Option<ItemErrorRule>,
    /// The name of a shared rule (`batches:`): requests of every action that names it merge
    /// together. Without it, only requests of the same action and step do.
    pub(crate) group: Option<Arc<str>>,
}

#[derive(Debug)]
pub(crate) enum Merge {
    /// Top-level body arrays (or form fields holding lists) whose items are concatenated.
    Concat(Vec<Box<str>>),
    /// Each body becomes an item of the array under this key.
    Wrap(Box<str>),
    /// The bodies are the items: a `json_array` body's elements, an `ndjson` body's lines.
    Items,
}

#[derive(Debug)]
pub(crate) struct ItemErrorRule {
    /// Besides 2xx, the statuses whose response names the failed items.
    pub statuses: Vec<u16>,
    pub list: Path,
    pub index: Path,
    pub array: Option<Path>,
    pub reason: Option<Path>,
}

impl BatchRule {
    /// Most items per array.
    pub fn max_items(&self) -> usize {
        self.max_items
    }

    /// Largest merged body, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// How long an item may wait for its batch to fill.
    pub fn linger(&self) -> Option<Duration> {
        self.linger
    }

    /// The name of the shared rule (`batches:`) whose requests merge across actions, if it is
    /// one.
    pub fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// Whether a 2xx response can report failed items.
    pub fn reports_item_errors(&self) -> bool {
        self.item_errors.is_some()
    }

    /// Whether a response with this non-2xx status names the items that failed, the others
    /// having been delivered.
    pub fn reports_item_errors_with(&self, status: u16) -> bool {
        self.item_errors
            .as_ref()
            .is_some_and(|rule| rule.statuses.contains(&status))
    }

    /// The names of the merged arrays: those of `concat`, the `wrap` key, or none for a body
    /// whose items merge as they are (counted as one array).
    pub(crate) fn arrays(&self) -> &[Box<str>] {
        match &self.merge {
            Merge::Concat(names) => names,
            Merge::Wrap(name) => std::slice::from_ref(name),
            Merge::Items => &[],
        }
    }

    /// How many arrays a merged body has.
    pub(crate) fn array_count(&self) -> usize {
        match &self.merge {
            Merge::Concat(names) => names.len(),
            Merge::Wrap(_) | Merge::Items => 1,
        }
    }
}

/// Where a planned JSON body's top-level members and the items of its merged arrays are,
/// recorded while the body is written, so that the batcher need not parse it again.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyLayout {
    /// The length of the body the ranges index into.
    pub len: usize,
    /// Members that are not merged: name and value range.
    pub envelope: Vec<(Box<str>, Range<usize>)>,
    /// Per merged array of the rule: the ranges of its items.
    pub arrays: Vec<Vec<Range<usize>>>,
    /// Per merged array of the rule: the range of the whole array (empty when not written).
    pub array_values: Vec<Range<usize>>,
    /// The members in the order written.
    pub slots: Vec<Slot>,
}

impl BodyLayout {
    /// The layout of a body that is one item at `item` (a `json_array` body's element, an
    /// `ndjson` body's line).
    pub(crate) fn items(item: Range<usize>, len: usize) -> BodyLayout {
        BodyLayout {
            len,
            envelope: Vec::new(),
            arrays: vec![vec![item]],
            array_values: Vec::new(),
            slots: vec![Slot::Array(0)],
        }
    }
}

/// A top-level member of a body: not merged (by index among those), or a merged array (by
/// index in the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Envelope(usize),
    Array(usize),
}
