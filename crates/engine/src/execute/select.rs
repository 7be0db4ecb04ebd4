//! Which actions an event selects, and why the others did not.

use crate::compiled::Selector;
use crate::path::Path;
use serde_json::Value;

/// The first condition of a selector that an event fails. Cheap to build: text is only made
/// for the trace.
enum Miss<'s> {
    Type,
    Event,
    Exists(&'s Path),
    Equals(&'s Path, &'s Value),
    Not,
}

impl Selector {
    pub(super) fn matches(
        &self,
        event: &Value,
        message_type: Option<&str>,
        event_name: Option<&str>,
    ) -> bool {
        self.miss(event, message_type, event_name).is_none()
    }

    fn miss(
        &self,
        event: &Value,
        message_type: Option<&str>,
        event_name: Option<&str>,
    ) -> Option<Miss<'_>> {
        let listed = |list: &[Box<str>], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|x| &**x == v))
        };
        if !listed(&self.types, message_type) {
            return Some(Miss::Type);
        }
        if !listed(&self.events, event_name) {
            return Some(Miss::Event);
        }
        if let Some(p) = self
            .exists
            .iter()
            .find(|p| p.get(event).is_none_or(|v| v.is_null()))
        {
            return Some(Miss::Exists(p));
        }
        if let Some((p, want)) = self
            .equals
            .iter()
            .find(|(p, want)| p.get(event).is_none_or(|v| *v != *want))
        {
            return Some(Miss::Equals(p, want));
        }
        if self
            .not
            .as_ref()
            .is_some_and(|not| not.matches(event, message_type, event_name))
        {
            return Some(Miss::Not);
        }
        None
    }

    /// Why `event` is not selected (call only when [`Selector::matches`] is false).
    pub(super) fn explain(
        &self,
        event: &Value,
        message_type: Option<&str>,
        event_name: Option<&str>,
    ) -> String {
        let list = |l: &[Box<str>]| {
            l.iter()
                .map(|x| format!("`{x}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        match self.miss(event, message_type, event_name) {
            Some(Miss::Type) => {
                format!("type is {}, not {}", shown(message_type), list(&self.types))
            }
            Some(Miss::Event) => {
                format!("event is {}, not {}", shown(event_name), list(&self.events))
            }
            Some(Miss::Exists(p)) => format!("`{p}` is missing"),
            Some(Miss::Equals(p, want)) => format!("`{p}` is not `{want}`"),
            Some(Miss::Not) => "the `not` condition holds".to_owned(),
            None => "every condition holds".to_owned(),
        }
    }
}

pub(super) fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "missing".to_owned(), |v| format!("`{v}`"))
}
