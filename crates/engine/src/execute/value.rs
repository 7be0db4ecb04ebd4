//! One field's value: its source, the missing-value rules, remap, transforms and `as`.

use crate::compiled::{Field, Recall as RecallRule, Source};
use crate::connection::Connection;
use crate::convert::{self, kind, short};
use crate::template::RenderError;
use ferry_spec::model::Otherwise;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

use super::{Run, Step, Stop, is_empty, key_text};

impl<'a> Run<'a> {
    /// The value of a field that is not an object or list, after defaults and shaping; `None`
    /// when it is omitted.
    pub(super) fn value(
        &mut self,
        field: &'a Field,
        root: &'a Value,
    ) -> Step<Option<Cow<'a, Value>>> {
        let (raw, from) = match &field.source {
            Source::Paths { paths, recall } => {
                let mut saw_null = false;
                let mut found = None;
                for path in paths {
                    match path.get(root) {
                        Some(v) if v.is_null() => saw_null = true,
                        Some(v) => {
                            found = Some((v, path.as_str()));
                            break;
                        }
                        None => {}
                    }
                }
                match found {
                    Some((v, path)) => (Some(v), Origin::Path(path)),
                    None => match recall {
                        Some(rule) => match self.recall(rule, root) {
                            Some(v) => (Some(Cow::Owned(v)), Origin::Recalled(&rule.store)),
                            None if saw_null => (Some(Cow::Owned(Value::Null)), Origin::Null),
                            None => (None, Origin::Nothing),
                        },
                        None if saw_null => (Some(Cow::Owned(Value::Null)), Origin::Null),
                        None => (None, Origin::Nothing),
                    },
                }
            }
            Source::Recall(rule) => (
                self.recall(rule, root).map(Cow::Owned),
                Origin::Recalled(&rule.store),
            ),
            Source::Value(value) => (Some(Cow::Borrowed(value)), Origin::Literal),
            Source::Template(template) => match self.connection.render(template, Some(root)) {
                Ok(text) => (Some(Cow::Owned(Value::String(text))), Origin::Template),
                Err(RenderError::Undefined(_)) => (None, Origin::Nothing),
                Err(RenderError::Failed(why)) => {
                    return Err(Stop::Failed(format!("`{}`: {why}", field.label)));
                }
            },
            Source::Setting(name) => (
                self.connection.values.get(&**name).map(Cow::Borrowed),
                Origin::Setting(name),
            ),
            Source::Response { step, paths } => {
                let response = self.responses.get(*step).and_then(Option::as_deref);
                let found = response.and_then(|r| {
                    paths
                        .iter()
                        .find_map(|p| p.get(r).filter(|v| !v.is_null()).map(|v| (v, p)))
                });
                match found {
                    Some((v, path)) => (Some(v), Origin::Path(path.as_str())),
                    None => (None, Origin::Nothing),
                }
            }
            Source::SettingPath(name) => match self.connection.setting_paths.get(&**name) {
                Some(path) => (path.get(root), Origin::Path(path.as_str())),
                None => (None, Origin::Nothing),
            },
            Source::Object { .. } | Source::Each { .. } | Source::Items(_) => {
                return Err(Stop::Failed(format!(
                    "`{}` must be a single value",
                    field.label
                )));
            }
        };
        let value = match raw {
            Some(v) if v.is_null() && field.keep_null => return Ok(Some(v)),
            Some(v) if v.is_null() || (field.omit_empty && is_empty(&v)) => None,
            other => other,
        };
        let Some(value) = value else {
            let connection = self.connection;
            return self.missing(field, || field.source.describe_missing(root, connection));
        };
        let Some(shaped) = self.shape(field, value)? else {
            self.note(|| format!("{}: omitted (not in the remap table)", field.label));
            return Ok(None);
        };
        self.note(|| format!("{} <- {from}", field.label));
        Ok(Some(shaped))
    }

    /// What a missing value becomes: the default, an error when required, or omission.
    pub(super) fn missing(
        &mut self,
        field: &'a Field,
        why: impl FnOnce() -> String,
    ) -> Step<Option<Cow<'a, Value>>> {
        if let Some(default) = &field.default {
            self.note(|| format!("{} <- default", field.label));
            return Ok(Some(Cow::Borrowed(default)));
        }
        if field.required {
            return Err(Stop::Failed(format!(
                "`{}` is required but {}",
                field.label,
                why()
            )));
        }
        if self.trace.is_some() {
            let why = why();
            self.note(|| format!("{}: omitted ({why})", field.label));
        }
        Ok(None)
    }

    /// Applies remap, transforms and `as`; `None` when a remap omits the value.
    pub(super) fn shape(
        &self,
        field: &'a Field,
        value: Cow<'a, Value>,
    ) -> Step<Option<Cow<'a, Value>>> {
        let mut value = value;
        if let Some(remap) = &field.remap {
            let text: Cow<'_, str> = match &*value {
                Value::String(s) => Cow::Borrowed(s.as_str()),
                Value::Number(n) => Cow::Owned(n.to_string()),
                Value::Bool(b) => Cow::Owned(b.to_string()),
                other => {
                    return Err(Stop::Failed(format!(
                        "`{}`: a remap needs text, not {}",
                        field.label,
                        kind(other)
                    )));
                }
            };
            let from_setting = remap
                .setting
                .as_deref()
                .and_then(|s| self.connection.values.get(s))
                .and_then(|table| table.get(&*text));
            let found = from_setting.or_else(|| remap.table.get(&*text));
            value = match (found, remap.otherwise) {
                (Some(mapped), _) => Cow::Borrowed(mapped),
                (None, Otherwise::Keep) => value,
                (None, Otherwise::Omit) => return Ok(None),
                (None, Otherwise::Default) => {
                    Cow::Borrowed(remap.default.as_ref().expect("checked when compiled"))
                }
                (None, Otherwise::Drop) => {
                    return Err(Stop::Drop(format!(
                        "`{}`: `{}` is not in the remap table (`otherwise: drop`)",
                        field.label,
                        short(&value)
                    )));
                }
                (None, Otherwise::Error) => {
                    return Err(Stop::Failed(format!(
                        "`{}`: `{}` is not in the remap table",
                        field.label,
                        short(&value)
                    )));
                }
            };
        }
        retype(field, value).map(Some)
    }

    pub(super) fn recall(&self, rule: &RecallRule, root: &Value) -> Option<Value> {
        let key = rule.key.get(root).and_then(|k| key_text(&k))?;
        self.state.recall(&rule.store, &key)
    }
}

/// Applies a field's `transform`s, then its `as` conversion.
pub(super) fn retype<'v>(field: &Field, value: Cow<'v, Value>) -> Step<Cow<'v, Value>> {
    let fail = |why: String| Stop::Failed(format!("`{}`: {why}", field.label));
    let mut value = value;
    for transform in &field.transforms {
        value = Cow::Owned(convert::transform(&value, *transform).map_err(fail)?);
    }
    match field.convert {
        Some(to) => convert::convert(value, to, field.time_unit).map_err(fail),
        None => Ok(value),
    }
}

/// Where a field's value came from, for the trace: only written out when tracing.
#[derive(Clone, Copy)]
enum Origin<'a> {
    Path(&'a str),
    Recalled(&'a str),
    Setting(&'a str),
    Literal,
    Template,
    Null,
    /// Nothing was found; never shown, since a missing value is traced as missing.
    Nothing,
}

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Path(path) => write!(f, "`{path}`"),
            Origin::Recalled(store) => write!(f, "recalled `{store}`"),
            Origin::Setting(name) => write!(f, "setting `{name}`"),
            Origin::Literal => f.write_str("literal"),
            Origin::Template => f.write_str("template"),
            Origin::Null => f.write_str("null"),
            Origin::Nothing => Ok(()),
        }
    }
}

impl Source {
    pub(super) fn describe_missing(&self, root: &Value, connection: &Connection) -> String {
        match self {
            Source::Paths { paths, recall } => {
                let list = paths.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>();
                let mut text = match list.len() {
                    0 => String::from("nothing is read"),
                    1 => format!("{} is missing", list[0]),
                    _ => format!("none of {} is present", list.join(", ")),
                };
                if let Some(rule) = recall {
                    text.push_str(", and ");
                    text.push_str(&rule.describe_unknown(root));
                }
                text
            }
            Source::Recall(rule) => rule.describe_unknown(root),
            Source::Template(_) => "the template reads a value the event lacks".to_owned(),
            Source::Setting(name) => format!("setting `{name}` is not set"),
            Source::SettingPath(name) => match connection.setting_paths.get(&**name) {
                Some(path) => format!("`{path}` (setting `{name}`) is missing"),
                None => format!("setting `{name}` is not set"),
            },
            Source::Response { paths, .. } => {
                let list = paths.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>();
                format!("the response has no {}", list.join(" or "))
            }
            Source::Value(_) | Source::Object { .. } | Source::Each { .. } | Source::Items(_) => {
                "it is empty".to_owned()
            }
        }
    }
}

impl RecallRule {
    /// "no `email` is remembered for `$.userId` (`u-1`)".
    pub(super) fn describe_unknown(&self, root: &Value) -> String {
        match self.key.get(root).and_then(|k| key_text(&k)) {
            Some(key) => format!(
                "no `{}` is remembered for `{}` (`{key}`)",
                self.store, self.key
            ),
            None => format!(
                "`{}`, the key to recall `{}` by, is missing",
                self.key, self.store
            ),
        }
    }
}
