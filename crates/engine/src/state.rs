//! Values remembered across events (e.g. Promoter's userId -> email), keyed by store and key.

use std::collections::HashMap;

use serde_json::Value;

/// Read access to remembered values.
pub trait Recall {
    /// The value remembered in `store` under `key`, if any.
    fn recall(&self, store: &str, key: &str) -> Option<Value>;
}

/// One value to remember once an event's action has been planned.
#[derive(Debug, Clone, PartialEq)]
pub struct Remembered {
    /// Store name, as in the mapping's `remember`.
    pub store: Box<str>,
    /// Key, e.g. a user id.
    pub key: String,
    /// The value.
    pub value: Value,
}

/// An in-memory store, for the CLI over a stream of events.
#[derive(Debug, Default)]
pub struct MemoryState {
    values: HashMap<(Box<str>, String), Value>,
}

impl MemoryState {
    /// Stores every remembered value; a later value for the same key replaces the earlier one.
    pub fn apply(&mut self, remembered: impl IntoIterator<Item = Remembered>) {
        for item in remembered {
            self.values.insert((item.store, item.key), item.value);
        }
    }
}

impl Recall for MemoryState {
    fn recall(&self, store: &str, key: &str) -> Option<Value> {
        self.values
            .get(&(Box::from(store), key.to_owned()))
            .cloned()
    }
}

/// A store that remembers nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoState;

impl Recall for NoState {
    fn recall(&self, _store: &str, _key: &str) -> Option<Value> {
        None
    }
}
