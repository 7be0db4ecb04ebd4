//! Which actions, steps, fields and items an event selects, and why the others did not.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::compiled::{Condition, Looseness, NameSource, Names, Selector, TimeWindow};
use crate::connection::Connection;
use crate::convert::{has_type, to_time, type_name};
use crate::path::{Path, ReadParents, Root};
use crate::state::Recall;
use ferry_spec::model::ValueType;
use serde_json::Value;

use super::{Computed, Item, is_empty, key_text};

/// What a selector is evaluated against.
pub(super) struct Subject<'e> {
    pub event: &'e Value,
    /// What `$` reads: the event, or the item inside `each` and `entries`.
    pub scope: &'e Value,
    /// The entry's key inside `entries`, read as `$key`.
    pub key: Option<&'e str>,
    /// The item of the action's `for_each`, read as `$item`, and its position, `$index`.
    pub item: Option<Item<'e>>,
    pub computed: &'e Computed<'e>,
    /// The parents of the event's paths, each walked once.
    pub parents: &'e dyn ReadParents,
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
    Type(&'s [Box<str>]),
    Event(&'s Names),
    NoResponse,
    Status(Option<u64>, &'s [u16]),
    Exists(&'s Path),
    Missing(&'s Path),
    Filled(&'s Path),
    Blank(&'s Path),
    Equals(&'s Path, &'s Value),
    Matches(&'s Path, &'s regex::Regex),
    Is(&'s Path, &'s [ValueType]),
    TimeInside(&'s Path, &'s TimeWindow),
    Same(&'s Path, &'s Path),
    In(&'s Path, &'s Path),
    Setting(&'s str, &'s Value),
    Recalled(&'s str),
    Not,
    Any(&'s [Selector]),
    All(&'s Selector),
}

impl Names {
    /// Whether `name` is allowed; a setting written alone that a connection leaves unset allows
    /// every name.
    pub(super) fn allows(&self, name: Option<&str>, connection: &Connection) -> bool {
        let name = name.unwrap_or_default();
        match self {
            Names::Any => true,
            Names::Listed {
                names,
                settings,
                loose,
            } => {
                names
                    .iter()
                    .any(|x| &**x == "*" || (!name.is_empty() && texts_equal(x, name, *loose)))
                    || settings.iter().any(|source| {
                        connection
                            .names_of(source)
                            .is_some_and(|list| list.allows(name, *loose))
                    })
            }
            Names::Setting { source, loose } => connection
                .names_of(source)
                .is_none_or(|list| list.allows(name, *loose)),
        }
    }

    /// The names listed, in order (those written, then each setting's), for `only` with
    /// `dotted`; `None` when every name is allowed (`"*"`, or a setting written alone that the
    /// connection leaves unset).
    pub(super) fn ordered<'c>(&'c self, connection: &'c Connection) -> Option<Vec<&'c str>> {
        let listed = |source: &NameSource| connection.names_of(source);
        match self {
            Names::Any => None,
            Names::Listed {
                names, settings, ..
            } => {
                let lists: Vec<_> = settings.iter().filter_map(listed).collect();
                if names.iter().any(|name| &**name == "*") || lists.iter().any(|list| list.all) {
                    return None;
                }
                let from_settings = lists.into_iter().flat_map(|list| list.ordered.iter());
                Some(
                    names
                        .iter()
                        .chain(from_settings)
                        .map(|name| &**name)
                        .collect(),
                )
            }
            Names::Setting { source, .. } => {
                let list = listed(source).filter(|list| !list.all)?;
                Some(list.ordered.iter().map(|name| &**name).collect())
            }
        }
    }

    /// The settings the names are read from.
    pub(super) fn sources(&self) -> impl Iterator<Item = &NameSource> {
        let (listed, one) = match self {
            Names::Any => (&[][..], None),
            Names::Listed { settings, .. } => (&settings[..], None),
            Names::Setting { source, .. } => (&[][..], Some(source)),
        };
        listed.iter().chain(one)
    }

    /// Whether `name` is listed: like [`Names::allows`], but a setting a connection leaves
    /// unset lists nothing (for `except`).
    pub(super) fn lists(&self, name: &str, connection: &Connection) -> bool {
        match self {
            Names::Any => false,
            Names::Setting { source, loose } => connection
                .names_of(source)
                .is_some_and(|list| list.allows(name, *loose)),
            Names::Listed { .. } => self.allows(Some(name), connection),
        }
    }

    fn describe(&self) -> String {
        let setting = |source: &NameSource| match &source.member {
            Some(member) => format!("setting `{}` (the items' `{member}`)", source.setting),
            None => format!("setting `{}`", source.setting),
        };
        match self {
            Names::Any => "anything".to_owned(),
            Names::Listed {
                names,
                settings,
                loose,
            } => {
                let list = names
                    .iter()
                    .map(|x| format!("`{x}`"))
                    .chain(settings.iter().map(|s| format!("a name in {}", setting(s))))
                    .collect::<Vec<_>>()
                    .join(" or ");
                match loose {
                    Looseness::Exact => list,
                    Looseness::Loose | Looseness::Case => format!("{list} (in any case)"),
                }
            }
            Names::Setting { source, .. } => format!("listed in {}", setting(source)),
        }
    }
}

impl Selector {
    /// Whether this selector reads the response of step `step` or a later one.
    pub(crate) fn reads_response_from(&self, step: usize) -> bool {
        self.response.is_some_and(|r| r >= step)
            || self.conditions.iter().any(|condition| match condition {
                Condition::Not(not) => not.reads_response_from(step),
                Condition::Any(list) | Condition::All(list) => {
                    list.iter().any(|s| s.reads_response_from(step))
                }
                _ => false,
            })
    }

    /// The response statuses this selector tests.
    pub(crate) fn statuses(&self) -> impl Iterator<Item = u16> + '_ {
        self.conditions
            .iter()
            .flat_map(|condition| match condition {
                Condition::Statuses(list) => list.as_slice(),
                _ => &[],
            })
            .copied()
    }

    pub(super) fn matches(&self, subject: &Subject<'_>) -> bool {
        self.miss(subject).is_none()
    }

    #[allow(clippy::too_many_lines)]
    fn miss(&self, subject: &Subject<'_>) -> Option<Miss<'_>> {
        let root: &Value = match self.response {
            Some(step) => match subject.responses.get(step).and_then(Option::as_deref) {
                Some(response) => response,
                None => return Some(Miss::NoResponse),
            },
            None => subject.scope,
        };
        let read = |path: &Path| subject.read(path, root);
        for condition in &self.conditions {
            let miss = match condition {
                Condition::Types(types) => (!subject
                    .message_type
                    .is_some_and(|t| types.iter().any(|x| &**x == t)))
                .then_some(Miss::Type(types)),
                Condition::Events(names) => (!names.allows(subject.event_name, subject.connection))
                    .then_some(Miss::Event(names)),
                Condition::Statuses(statuses) => {
                    let status = root.get("status").and_then(Value::as_u64);
                    (!status.is_some_and(|s| statuses.iter().any(|&x| u64::from(x) == s)))
                        .then_some(Miss::Status(status, statuses))
                }
                Condition::Exists(paths) => paths
                    .iter()
                    .find(|p| subject.absent(p, root))
                    .map(Miss::Exists),
                Condition::Missing(paths) => paths
                    .iter()
                    .find(|p| !subject.absent(p, root))
                    .map(Miss::Missing),
                Condition::Filled(paths) => paths
                    .iter()
                    .find(|p| subject.blank(p, root))
                    .map(Miss::Filled),
                Condition::Blank(paths) => paths
                    .iter()
                    .find(|p| !subject.blank(p, root))
                    .map(Miss::Blank),
                Condition::Equals(pairs, loose) => pairs
                    .iter()
                    .find(|(p, want)| read(p).is_none_or(|v| !values_equal(want, &v, *loose)))
                    .map(|(p, want)| Miss::Equals(p, want)),
                Condition::Matches(pairs) => pairs
                    .iter()
                    .find(|(p, regex)| {
                        read(p).is_none_or(|v| match &*v {
                            Value::String(text) => !regex.is_match(text),
                            Value::Number(n) => !regex.is_match(&n.to_string()),
                            _ => true,
                        })
                    })
                    .map(|(p, regex)| Miss::Matches(p, regex)),
                Condition::Is(pairs) => pairs
                    .iter()
                    .find(|(p, types)| {
                        read(p).is_none_or(|v| !types.iter().any(|&t| has_type(&v, t)))
                    })
                    .map(|(p, types)| Miss::Is(p, types)),
                Condition::TimeOutside(pairs) => {
                    let now = subject.connection.now_time();
                    pairs
                        .iter()
                        .find(|(p, window)| !read(p).is_some_and(|v| outside(&v, window, now)))
                        .map(|(p, window)| Miss::TimeInside(p, window))
                }
                Condition::Same(a, b, loose) => {
                    let same = match (read(a), read(b)) {
                        (Some(x), Some(y)) if !x.is_null() => values_equal(&x, &y, *loose),
                        _ => false,
                    };
                    (!same).then_some(Miss::Same(a, b))
                }
                Condition::In(a, b, loose) => {
                    let found = match (read(a), read(b)) {
                        (Some(x), Some(list)) if !x.is_null() => match &*list {
                            Value::Array(items) => {
                                items.iter().any(|item| values_equal(item, &x, *loose))
                            }
                            one => values_equal(one, &x, *loose),
                        },
                        _ => false,
                    };
                    (!found).then_some(Miss::In(a, b))
                }
                Condition::Settings(pairs) => pairs
                    .iter()
                    .find(|(name, want)| subject.connection.values.get(&**name) != Some(want))
                    .map(|(name, want)| Miss::Setting(name, want)),
                Condition::Recalled(rule) => {
                    let known = rule
                        .key
                        .get(subject.event)
                        .and_then(|k| key_text(&k))
                        .and_then(|key| subject.state.recall(&rule.store, &key));
                    known.is_none().then_some(Miss::Recalled(&rule.store))
                }
                Condition::Not(not) => not.matches(subject).then_some(Miss::Not),
                Condition::Any(list) => {
                    (!list.iter().any(|s| s.matches(subject))).then_some(Miss::Any(list))
                }
                Condition::All(list) => list.iter().find(|s| !s.matches(subject)).map(Miss::All),
            };
            if miss.is_some() {
                return miss;
            }
        }
        None
    }

    /// Why the subject is not selected (call only when [`Selector::matches`] is false).
    pub(super) fn explain(&self, subject: &Subject<'_>) -> String {
        match self.miss(subject) {
            Some(Miss::Type(types)) => format!(
                "type is {}, not {}",
                shown(subject.message_type),
                types
                    .iter()
                    .map(|x| format!("`{x}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            Some(Miss::Event(names)) => format!(
                "event is {}, not {}",
                shown(subject.event_name),
                names.describe()
            ),
            Some(Miss::NoResponse) => "the step whose response it reads did not run".to_owned(),
            Some(Miss::Status(status, statuses)) => format!(
                "the response status is {}, not {}",
                status.map_or_else(|| "missing".to_owned(), |s| s.to_string()),
                statuses
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
            Some(Miss::Matches(p, regex)) => format!("`{p}` does not match `{regex}`"),
            Some(Miss::Is(p, types)) => format!(
                "`{p}` is not {}",
                types
                    .iter()
                    .map(|&t| type_name(t))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            Some(Miss::TimeInside(p, window)) => {
                let bounds: Vec<String> = [(window.past, "before"), (window.future, "after")]
                    .into_iter()
                    .filter_map(|(span, side)| Some(format!("{} {side}", span_text(span?))))
                    .collect();
                format!("`{p}` is no time more than {} now", bounds.join(" or "))
            }
            Some(Miss::Same(a, b)) => format!("`{a}` and `{b}` differ"),
            Some(Miss::In(a, b)) => format!("`{a}` is not in `{b}`"),
            Some(Miss::Setting(name, want)) => format!("setting `{name}` is not `{want}`"),
            Some(Miss::Recalled(store)) => format!("no `{store}` is remembered for this event"),
            Some(Miss::Not) => "the `not` condition holds".to_owned(),
            Some(Miss::Any(list)) => format!(
                "no selector of `any` holds ({})",
                list.iter()
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
    /// The value at `path`: from `root` (the scope, or a response), or from the root the path
    /// names (`$event`, `$item`, `$settings`, `$computed`, `$key`).
    pub(super) fn read<'r>(&self, path: &Path, root: &'r Value) -> Option<Cow<'r, Value>>
    where
        'e: 'r,
    {
        match path.root() {
            Root::Index => self.item.map(|item| Cow::Owned(Value::from(item.index))),
            Root::Key => self.key.map(|k| Cow::Owned(Value::String(k.to_owned()))),
            Root::Computed => self.computed.read(path).map(Cow::Borrowed),
            _ => self.parents.get(path, self.document(path, root)?),
        }
    }

    /// Whether `path` finds nothing, or null. A query's list of matches is never null, so for
    /// a query this asks only whether it matches, without copying the matches.
    fn absent(&self, path: &Path, root: &Value) -> bool {
        match self.document(path, root) {
            Some(document) if path.is_query() => !path.matches(document),
            _ => self.read(path, root).is_none_or(|v| v.is_null()),
        }
    }

    /// Whether `path` finds nothing, null, `""`, `[]` or `{}` (for a query: no match).
    fn blank(&self, path: &Path, root: &Value) -> bool {
        match self.document(path, root) {
            Some(document) if path.is_query() => !path.matches(document),
            _ => is_blank(self.read(path, root).as_deref()),
        }
    }

    /// The document a path with members reads: `None` for `$key` and `$index`, and when there
    /// is no item.
    fn document<'r>(&self, path: &Path, root: &'r Value) -> Option<&'r Value>
    where
        'e: 'r,
    {
        match path.root() {
            Root::Scope => Some(root),
            Root::Event => Some(self.event),
            Root::Item => self.item.map(|item| item.value),
            Root::Settings => Some(&self.connection.settings_value),
            // Computed values are read by their position (`Computed::read`).
            Root::Index | Root::Key | Root::Computed => None,
        }
    }
}

/// Whether `value` is a time further from `now` than `window` allows.
fn outside(value: &Value, window: &TimeWindow, now: DateTime<Utc>) -> bool {
    let Some(time) = to_time(value, window.unit) else {
        return false;
    };
    let ahead_ms = time.timestamp_millis() - now.timestamp_millis();
    window.past.is_some_and(|span| -ahead_ms > span)
        || window.future.is_some_and(|span| ahead_ms > span)
}

/// A span of milliseconds as it was written: `7d`, `72h`, `15m`, `90s`.
fn span_text(millis: i64) -> String {
    match [(86_400_000, 'd'), (3_600_000, 'h'), (60_000, 'm')]
        .into_iter()
        .find(|(unit, _)| millis > 0 && millis % unit == 0)
    {
        Some((unit, letter)) => format!("{}{letter}", millis / unit),
        None => format!("{}s", millis / 1_000),
    }
}

/// Nothing, null, `""`, `[]` or `{}`.
fn is_blank(value: Option<&Value>) -> bool {
    value.is_none_or(|v| v.is_null() || is_empty(v))
}

/// Texts equal as `loose` compares them.
pub(super) fn texts_equal(a: &str, b: &str, loose: Looseness) -> bool {
    let (a, b) = match loose {
        Looseness::Exact => return a == b,
        Looseness::Loose => (a.trim(), b.trim()),
        Looseness::Case => (a, b),
    };
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}

fn values_equal(want: &Value, got: &Value, loose: Looseness) -> bool {
    match (want, got) {
        (Value::String(a), Value::String(b)) => texts_equal(a, b, loose),
        _ => want == got,
    }
}

pub(super) fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "missing".to_owned(), |v| format!("`{v}`"))
}
