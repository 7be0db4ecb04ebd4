//! Which actions, steps, fields and items an event selects, and why the others did not.

use std::borrow::Cow;
use std::sync::Arc;

use crate::compiled::{Names, Selector};
use crate::connection::Connection;
use crate::path::{Path, Root};
use crate::state::Recall;
use serde_json::Value;

use super::{is_empty, key_text};

/// What a selector is evaluated against.
pub(super) struct Subject<'e> {
    pub event: &'e Value,
    /// What `$` reads: the event, or the item inside `each` and `entries`.
    pub scope: &'e Value,
    /// The entry's key inside `entries`, read as `$key`.
    pub key: Option<&'e str>,
    pub message_type: Option<&'e str>,
    pub event_name: Option<&'e str>,
    /// Responses of the action's earlier steps, by step index.
    pub responses: &'e [Option<Arc<Value>>],
    pub connection: &'e Connection,
    pub state: &'e dyn Recall,
}

/// The first condition of a selector that a subject fails. Cheap to build: text is only made
/// for the trace.
enum Miss<'s> {
    Type,
    Event,
    NoResponse,
    Status(Option<u64>),
    Exists(&'s Path),
    Missing(&'s Path),
    Filled(&'s Path),
    Blank(&'s Path),
    Equals(&'s Path, &'s Value),
    Setting(&'s str, &'s Value),
    Recalled(&'s str),
    Not,
    Any,
    All(&'s Selector),
}

impl Names {
    /// Whether `name` is allowed; a name setting that is not set allows every name.
    pub(super) fn allows(&self, name: Option<&str>, connection: &Connection) -> bool {
        let name = name.unwrap_or_default();
        let hit = |x: &str, loose: bool| {
            x == "*" || (!name.is_empty() && if loose { loose_eq(x, name) } else { x == name })
        };
        match self {
            Names::Any => true,
            Names::Listed { names, loose } => names.iter().any(|x| hit(x, *loose)),
            Names::Setting {
                name: setting,
                loose,
            } => match connection.name_lists.get(&**setting) {
                Some(list) => {
                    list.all
                        || (!name.is_empty()
                            && if *loose {
                                list.loose.contains(name.trim().to_lowercase().as_str())
                            } else {
                                list.exact.contains(name)
                            })
                }
                // A connection that leaves the setting unset allows every name.
                None => true,
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            Names::Any => "anything".to_owned(),
            Names::Listed { names, loose } => {
                let list = names
                    .iter()
                    .map(|x| format!("`{x}`"))
                    .collect::<Vec<_>>()
                    .join(" or ");
                if *loose {
                    format!("{list} (in any case)")
                } else {
                    list
                }
            }
            Names::Setting { name, .. } => format!("listed in setting `{name}`"),
        }
    }
}

impl Selector {
    /// Whether this selector reads the response of step `step` or a later one.
    pub(super) fn reads_response_from(&self, step: usize) -> bool {
        self.response.is_some_and(|r| r >= step)
            || self
                .not
                .as_ref()
                .is_some_and(|not| not.reads_response_from(step))
            || self
                .any
                .iter()
                .chain(&self.all)
                .any(|s| s.reads_response_from(step))
    }

    pub(super) fn matches(&self, subject: &Subject<'_>) -> bool {
        self.miss(subject).is_none()
    }

    fn miss(&self, subject: &Subject<'_>) -> Option<Miss<'_>> {
        if !self.types.is_empty()
            && !subject
                .message_type
                .is_some_and(|t| self.types.iter().any(|x| &**x == t))
        {
            return Some(Miss::Type);
        }
        if !self.events.allows(subject.event_name, subject.connection) {
            return Some(Miss::Event);
        }
        let root: &Value = match self.response {
            Some(step) => match subject.responses.get(step).and_then(Option::as_deref) {
                Some(response) => response,
                None => return Some(Miss::NoResponse),
            },
            None => subject.scope,
        };
        let read = |path: &Path| subject.read(path, root);
        if !self.statuses.is_empty() {
            let status = root.get("status").and_then(Value::as_u64);
            if !status.is_some_and(|s| self.statuses.iter().any(|&x| u64::from(x) == s)) {
                return Some(Miss::Status(status));
            }
        }
        if let Some(p) = self
            .exists
            .iter()
            .find(|p| read(p).is_none_or(|v| v.is_null()))
        {
            return Some(Miss::Exists(p));
        }
        if let Some(p) = self
            .missing
            .iter()
            .find(|p| read(p).is_some_and(|v| !v.is_null()))
        {
            return Some(Miss::Missing(p));
        }
        if let Some(p) = self.filled.iter().find(|p| is_blank(read(p).as_deref())) {
            return Some(Miss::Filled(p));
        }
        if let Some(p) = self.blank.iter().find(|p| !is_blank(read(p).as_deref())) {
            return Some(Miss::Blank(p));
        }
        if let Some((p, want)) = self.equals.iter().find(|(p, want)| {
            read(p).is_none_or(|v| {
                !if self.loose {
                    loose_value_eq(want, &v)
                } else {
                    *v == *want
                }
            })
        }) {
            return Some(Miss::Equals(p, want));
        }
        if let Some((name, want)) = self
            .settings
            .iter()
            .find(|(name, want)| subject.connection.values.get(&**name) != Some(want))
        {
            return Some(Miss::Setting(name, want));
        }
        if let Some(rule) = &self.recalled {
            let known = rule
                .key
                .get(subject.event)
                .and_then(|k| key_text(&k))
                .and_then(|key| subject.state.recall(&rule.store, &key));
            if known.is_none() {
                return Some(Miss::Recalled(&rule.store));
            }
        }
        if self.not.as_ref().is_some_and(|not| not.matches(subject)) {
            return Some(Miss::Not);
        }
        if !self.any.is_empty() && !self.any.iter().any(|s| s.matches(subject)) {
            return Some(Miss::Any);
        }
        if let Some(failed) = self.all.iter().find(|s| !s.matches(subject)) {
            return Some(Miss::All(failed));
        }
        None
    }

    /// Why the subject is not selected (call only when [`Selector::matches`] is false).
    pub(super) fn explain(&self, subject: &Subject<'_>) -> String {
        let types = || {
            self.types
                .iter()
                .map(|x| format!("`{x}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        match self.miss(subject) {
            Some(Miss::Type) => {
                format!("type is {}, not {}", shown(subject.message_type), types())
            }
            Some(Miss::Event) => format!(
                "event is {}, not {}",
                shown(subject.event_name),
                self.events.describe()
            ),
            Some(Miss::NoResponse) => "the step whose response it reads did not run".to_owned(),
            Some(Miss::Status(status)) => format!(
                "the response status is {}, not {}",
                status.map_or_else(|| "missing".to_owned(), |s| s.to_string()),
                self.statuses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            Some(Miss::Exists(p)) => format!("`{p}` is missing"),
            Some(Miss::Missing(p)) => format!("`{p}` is present"),
            Some(Miss::Filled(p)) => format!("`{p}` is missing or empty"),
            Some(Miss::Blank(p)) => format!("`{p}` is not empty"),
            Some(Miss::Equals(p, want)) => format!("`{p}` is not `{want}`"),
            Some(Miss::Setting(name, want)) => format!("setting `{name}` is not `{want}`"),
            Some(Miss::Recalled(store)) => format!("no `{store}` is remembered for this event"),
            Some(Miss::Not) => "the `not` condition holds".to_owned(),
            Some(Miss::Any) => format!(
                "no selector of `any` holds ({})",
                self.any
                    .iter()
                    .map(|s| s.explain(subject))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Some(Miss::All(failed)) => failed.explain(subject),
            None => "every condition holds".to_owned(),
        }
    }
}

impl<'e> Subject<'e> {
    /// The value at `path`: from `root` (the scope, or a response), the whole event (`$event`),
    /// or the entry's key (`$key`).
    pub(super) fn read<'r>(&self, path: &Path, root: &'r Value) -> Option<Cow<'r, Value>>
    where
        'e: 'r,
    {
        match path.root() {
            Root::Scope => path.get(root),
            Root::Event => path.get(self.event),
            Root::Key => self.key.map(|k| Cow::Owned(Value::String(k.to_owned()))),
        }
    }
}

/// Nothing, null, `""`, `[]` or `{}`.
fn is_blank(value: Option<&Value>) -> bool {
    value.is_none_or(|v| v.is_null() || is_empty(v))
}

/// Texts equal without regard to case and surrounding white space.
pub(super) fn loose_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}

fn loose_value_eq(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::String(a), Value::String(b)) => loose_eq(a, b),
        _ => want == got,
    }
}

pub(super) fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "missing".to_owned(), |v| format!("`{v}`"))
}
