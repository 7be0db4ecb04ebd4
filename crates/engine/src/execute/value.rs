//! One field's value: its source, the missing-value rules, remap, transforms and `as`.

use crate::compiled::{Field, Op, Recall as RecallRule, Remap, Source};
use crate::connection::Connection;
use crate::convert::{self, kind, short};
use crate::path::Path;
use crate::template::RenderError;
use ferry_spec::model::{OnInvalid, Otherwise};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

use super::{Run, Scope, Step, Stop, is_empty, key_text};

impl<'a> Run<'a> {
    /// The value of a field that is not an object or list, after its `when`, defaults and
    /// shaping; `None` when it is left out.
    pub(super) fn value(
        &mut self,
        field: &'a Field,
        scope: Scope<'a>,
    ) -> Step<Option<Cow<'a, Value>>> {
        if let Some(when) = &field.when
            && !self.holds(when, scope, &field.label, "when")
        {
            return Ok(None);
        }
        self.value_of(field, scope)
    }

    /// [`Run::value`] once the field's `when` holds.
    pub(super) fn value_of(
        &mut self,
        field: &'a Field,
        scope: Scope<'a>,
    ) -> Step<Option<Cow<'a, Value>>> {
        let (raw, from) = match &field.source {
            Source::Paths {
                paths,
                recall,
                member,
                first,
            } => self.read_paths(
                field,
                scope,
                paths,
                recall.as_ref(),
                member.as_ref(),
                *first,
            ),
            Source::Recall(rule) => (
                self.recall(rule).map(Cow::Owned),
                Origin::Recalled(&rule.store),
            ),
            Source::Value(value) => (Some(Cow::Borrowed(value)), Origin::Literal),
            Source::Template(template) => {
                match self.connection.render(template, Some(scope.value)) {
                    Ok(text) => (Some(Cow::Owned(Value::String(text))), Origin::Template),
                    Err(RenderError::Undefined(_)) => (None, Origin::Nothing),
                    Err(RenderError::Failed(why)) => {
                        return Err(Stop::Failed(format!("`{}`: {why}", field.label)));
                    }
                }
            }
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
                Some(path) => (self.read(path, scope), Origin::Path(path.as_str())),
                None => (None, Origin::Nothing),
            },
            Source::Object { .. }
            | Source::Each { .. }
            | Source::Entries { .. }
            | Source::Items(_) => {
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
            let (connection, event) = (self.connection, self.event);
            return self.missing(field, || {
                field.source.describe_missing(scope, event, connection)
            });
        };
        let Some(shaped) = self.shape(field, value, true)? else {
            return Ok(None);
        };
        self.note(|| format!("{} <- {from}", field.label));
        Ok(Some(shaped))
    }

    /// The value of `from` (with `member`, `first` and `recall`), and where it came from.
    fn read_paths(
        &self,
        field: &Field,
        scope: Scope<'a>,
        paths: &'a [Path],
        recall: Option<&'a RecallRule>,
        member: Option<&Path>,
        first: bool,
    ) -> (Option<Cow<'a, Value>>, Origin<'a>) {
        let mut saw_null = false;
        let mut found = None;
        for path in paths {
            let got = if first {
                self.read_first(path, scope)
            } else {
                self.read(path, scope)
            };
            let got = match (got, member) {
                (Some(object), Some(member)) => self.member_of(object, member, scope),
                (got, _) => got,
            };
            match got {
                Some(v) if v.is_null() => saw_null = true,
                // With `omit_empty`, an empty value does not win over a later path.
                Some(v) if field.omit_empty && is_empty(&v) => {}
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
                Some(rule) => match self.recall(rule) {
                    Some(v) => (Some(Cow::Owned(v)), Origin::Recalled(&rule.store)),
                    None if saw_null => (Some(Cow::Owned(Value::Null)), Origin::Null),
                    None => (None, Origin::Nothing),
                },
                None if saw_null => (Some(Cow::Owned(Value::Null)), Origin::Null),
                None => (None, Origin::Nothing),
            },
        }
    }

    /// The member of `object` named by the text at `name`.
    fn member_of(
        &self,
        object: Cow<'a, Value>,
        name: &Path,
        scope: Scope<'a>,
    ) -> Option<Cow<'a, Value>> {
        let name = self.read(name, scope)?;
        let name = match &*name {
            Value::String(s) => Cow::Borrowed(s.as_str()),
            Value::Number(n) => Cow::Owned(n.to_string()),
            _ => return None,
        };
        match object {
            Cow::Borrowed(object) => object.get(&*name).map(Cow::Borrowed),
            Cow::Owned(object) => object.get(&*name).cloned().map(Cow::Owned),
        }
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

    /// Applies the field's operations (without remaps for `remaps: false`, as for bucketed
    /// values) and its `must_be`; `None` when an operation leaves the field out.
    pub(super) fn shape<'v>(
        &mut self,
        field: &'a Field,
        value: Cow<'v, Value>,
        remaps: bool,
    ) -> Step<Option<Cow<'v, Value>>>
    where
        'a: 'v,
    {
        let mut value = value;
        for op in &field.ops {
            let result = match op {
                Op::Remap(remap) if remaps => match self.remap(field, remap, value)? {
                    Some(v) if v.is_null() => return Ok(Some(v)),
                    Some(v) => {
                        value = v;
                        continue;
                    }
                    None => {
                        self.note(|| format!("{}: omitted (not in the remap table)", field.label));
                        return Ok(None);
                    }
                },
                Op::Remap(_) => continue,
                Op::Transform(transform) => match convert::transform(&value, *transform) {
                    Ok(v) => {
                        value = Cow::Owned(v);
                        continue;
                    }
                    Err(why) => (why, value),
                },
                Op::Convert(to) => {
                    let kept = (field.on_invalid == OnInvalid::Keep).then(|| value.clone());
                    match convert::convert(value, *to, field.time_unit) {
                        Ok(v) => {
                            value = v;
                            continue;
                        }
                        Err(why) => (why, kept.unwrap_or(Cow::Owned(Value::Null))),
                    }
                }
            };
            let (why, before) = result;
            match field.on_invalid {
                OnInvalid::Fail => {
                    return Err(Stop::Failed(format!("`{}`: {why}", field.label)));
                }
                OnInvalid::Omit => {
                    self.note(|| format!("{}: omitted ({why})", field.label));
                    return Ok(None);
                }
                OnInvalid::Keep => {
                    self.note(|| format!("{}: kept as it was ({why})", field.label));
                    value = before;
                }
            }
        }
        if let Some(want) = field.must_be
            && !convert::has_type(&value, want)
        {
            return Err(Stop::Failed(format!(
                "`{}` must be {}, not {} (`{}`)",
                field.label,
                convert::type_name(want),
                kind(&value),
                short(&value)
            )));
        }
        Ok(Some(value))
    }

    /// The value through `remap`: `None` when the remap omits it.
    fn remap<'v>(
        &self,
        field: &Field,
        remap: &'a Remap,
        value: Cow<'v, Value>,
    ) -> Step<Option<Cow<'v, Value>>>
    where
        'a: 'v,
    {
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
        Ok(Some(match (found, remap.otherwise) {
            (Some(mapped), _) => Cow::Borrowed(mapped),
            (None, Otherwise::Keep) => value,
            (None, Otherwise::Omit) => return Ok(None),
            (None, Otherwise::Null) => Cow::Owned(Value::Null),
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
        }))
    }

    pub(super) fn recall(&self, rule: &RecallRule) -> Option<Value> {
        let key = rule.key.get(self.event).and_then(|k| key_text(&k))?;
        self.state.recall(&rule.store, &key)
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
    pub(super) fn describe_missing(
        &self,
        scope: Scope<'_>,
        event: &Value,
        connection: &Connection,
    ) -> String {
        match self {
            Source::Paths { paths, recall, .. } => {
                let list = paths.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>();
                let mut text = match list.len() {
                    0 => String::from("nothing is read"),
                    1 => format!("{} is missing", list[0]),
                    _ => format!("none of {} is present", list.join(", ")),
                };
                if let Some(rule) = recall {
                    text.push_str(", and ");
                    text.push_str(&rule.describe_unknown(event));
                }
                text
            }
            Source::Recall(rule) => rule.describe_unknown(event),
            Source::Template(template) => match template.first_missing(scope.value) {
                Some(path) => format!("the template reads `{path}`, which is missing"),
                None => "the template reads a value the event lacks".to_owned(),
            },
            Source::Setting(name) => format!("setting `{name}` is not set"),
            Source::SettingPath(name) => match connection.setting_paths.get(&**name) {
                Some(path) => format!("`{path}` (setting `{name}`) is missing"),
                None => format!("setting `{name}` is not set"),
            },
            Source::Response { paths, .. } => {
                let list = paths.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>();
                format!("the response has no {}", list.join(" or "))
            }
            Source::Each { path, .. } => format!("`{path}` is missing"),
            Source::Entries { paths, .. } => {
                let list = paths.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>();
                format!("none of {} is an object", list.join(", "))
            }
            Source::Value(_) | Source::Object { .. } | Source::Items(_) => "it is empty".to_owned(),
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
