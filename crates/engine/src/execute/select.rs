//! Which actions an event selects, and why the others did not.

use crate::compiled::Selector;
use serde_json::Value;

impl Selector {
    pub(super) fn matches(
        &self,
        event: &Value,
        message_type: Option<&str>,
        event_name: Option<&str>,
    ) -> bool {
        let listed = |list: &[Box<str>], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|x| &**x == v))
        };
        listed(&self.types, message_type)
            && listed(&self.events, event_name)
            && self
                .exists
                .iter()
                .all(|p| p.get(event).is_some_and(|v| !v.is_null()))
            && self
                .equals
                .iter()
                .all(|(p, want)| p.get(event).is_some_and(|v| *v == *want))
            && self
                .not
                .as_ref()
                .is_none_or(|not| !not.matches(event, message_type, event_name))
    }

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
        if !self.types.is_empty()
            && !message_type.is_some_and(|t| self.types.iter().any(|x| &**x == t))
        {
            return format!("type is {}, not {}", shown(message_type), list(&self.types));
        }
        if !self.events.is_empty()
            && !event_name.is_some_and(|t| self.events.iter().any(|x| &**x == t))
        {
            return format!("event is {}, not {}", shown(event_name), list(&self.events));
        }
        if let Some(p) = self
            .exists
            .iter()
            .find(|p| p.get(event).is_none_or(|v| v.is_null()))
        {
            return format!("`{p}` is missing");
        }
        if let Some((p, want)) = self
            .equals
            .iter()
            .find(|(p, want)| p.get(event).is_none_or(|v| *v != *want))
        {
            return format!("`{p}` is not `{want}`");
        }
        "the `not` condition holds".to_owned()
    }
}

pub(super) fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "missing".to_owned(), |v| format!("`{v}`"))
}
