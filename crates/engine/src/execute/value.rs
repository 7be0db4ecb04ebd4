//! One field's value: its source, the missing-value rules, and the operations that shape it.

use crate::compiled::{Field, KeepNull, Op, Recall as RecallRule, Remap, Required, Source, Zone};
use crate::connection::Connection;
use crate::convert::{self, kind, short};
use crate::path::Path;
use crate::plan::{FailureKind, SkipKind};
use crate::template::RenderError;
use ferry_spec::model::{OnInvalid, Otherwise};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

use super::{Run, Scope, Step, Stop, is_empty, key_text};

/// What shaping a present value gave.
enum Shaped<'v> {
    Kept(Cow<'v, Value>),
    /// An operation leaves the field out (a remap's `omit`, `on_invalid: omit`).
    Omitted,
    /// An operation found nothing (`capture` without a match, an unknown user-agent part):
    /// the value is missing.
    Missing(String),
    /// An operation cannot handle the value, and `on_invalid` says to fail (or to read the
    /// next path).
    Invalid(String),
}

impl<'a> Run<'a> {
    /// The value of a field that is not an object or list, after its `when`, defaults and
    /// shaping; `None` when it is left out.
    pub(super) fn value(
        &mut self,
        field: &'a Field,
        scope: Scope<'a>,
    ) -> Step<Option<Cow<'a, Value>>> {
        if let Some(when) = &field.when
            && !self.field_holds(when, scope, &field.label)
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
        let sourced = self.raw(field, scope, 0)?;
        // Most fields copy a value as it is: no rule to apply, no operation to run.
        if field.ops.is_empty()
            && field.must_be.is_none()
            && let (Some(value), from, _) = &sourced
            && !value.is_null()
            && !(field.omit_empty && is_empty(value))
        {
            self.note(|| format!("{} <- {from}", field.label));
            return Ok(sourced.0);
        }
        self.settle(field, scope, sourced)
    }

    /// What a sourced value becomes: missing-value rules, then the operations; with
    /// `on_invalid: next`, a value they cannot handle gives way to the next path of `from`.
    #[inline(never)]
    fn settle(
        &mut self,
        field: &'a Field,
        scope: Scope<'a>,
        sourced: Sourced<'a>,
    ) -> Step<Option<Cow<'a, Value>>> {
        let mut sourced = sourced;
        loop {
            let (raw, from, next) = sourced;
            let value = match raw {
                // `null` is sent when kept, or written as the field's value (`value: null`).
                Some(v)
                    if v.is_null()
                        && (field.keep_null != KeepNull::No || matches!(from, Origin::Literal)) =>
                {
                    self.note(|| format!("{} <- {from}", field.label));
                    return Ok(Some(v));
                }
                Some(v) if v.is_null() || (field.omit_empty && is_empty(&v)) => None,
                other => other,
            };
            let Some(value) = value else {
                let (connection, event) = (self.connection, self.event);
                let why = self.undefined.take();
                return self.missing(field, || {
                    why.unwrap_or_else(|| field.source.describe_missing(scope, event, connection))
                });
            };
            match self.shape_ops(field, value, true, scope)? {
                Shaped::Kept(shaped) => {
                    self.note(|| format!("{} <- {from}", field.label));
                    return Ok(Some(shaped));
                }
                Shaped::Omitted => return Ok(None),
                Shaped::Missing(why) => return self.missing(field, || why),
                Shaped::Invalid(why) => {
                    if next > 0 && field.on_invalid == OnInvalid::Next {
                        self.note(|| format!("{}: `{from}` skipped ({why})", field.label));
                        sourced = self.raw(field, scope, next)?;
                    } else {
                        return Err(Stop::Failed(
                            FailureKind::Invalid,
                            format!("`{}`: {why}", field.label),
                        ));
                    }
                }
            }
        }
    }

    /// The value of the field's source, where it came from, and for `from` the index of the
    /// next path to try (0 for none). A template that reads a missing value says which in
    /// `undefined`.
    fn raw(&mut self, field: &'a Field, scope: Scope<'a>, start: usize) -> Step<Sourced<'a>> {
        Ok(match &field.source {
            Source::Paths {
                paths,
                recall,
                member,
                first,
                now,
                reads_computed,
            } => {
                if *reads_computed {
                    for path in paths {
                        self.check_computed(path)?;
                    }
                }
                let fallbacks = Fallbacks {
                    recall: recall.as_ref(),
                    now: *now,
                };
                self.read_from(
                    field,
                    scope,
                    paths,
                    start,
                    member.as_ref(),
                    *first,
                    fallbacks,
                )
            }
            Source::Recall(rule) => (
                self.recall(rule).map(Cow::Owned),
                Origin::Recalled(&rule.store),
                0,
            ),
            Source::Value(value) => (Some(Cow::Borrowed(value)), Origin::Literal, 0),
            Source::Now => (Some(Cow::Owned(self.connection.now())), Origin::Now, 0),
            Source::Template(template) => match self.render(template, scope.value) {
                Ok(text) => (Some(Cow::Owned(Value::String(text))), Origin::Template, 0),
                Err(RenderError::Undefined(name)) => {
                    self.undefined =
                        Some(match name.or_else(|| template.first_missing(scope.value)) {
                            Some(name) => format!("the template reads `{name}`, which is missing"),
                            None => "the template reads a value that is missing".to_owned(),
                        });
                    (None, Origin::Nothing, 0)
                }
                Err(RenderError::Failed(why)) => {
                    return Err(Stop::Failed(
                        FailureKind::Template,
                        format!("`{}`: {why}", field.label),
                    ));
                }
            },
            Source::SettingTemplate(name) => {
                let rendered =
                    self.connection
                        .render_setting_template(name, scope.value, self.item);
                match rendered {
                    Some(Ok(text)) => (Some(Cow::Owned(Value::String(text))), Origin::Template, 0),
                    Some(Err(RenderError::Failed(why))) => {
                        return Err(Stop::Failed(
                            FailureKind::Template,
                            format!("`{}`: the template of setting `{name}`: {why}", field.label),
                        ));
                    }
                    Some(Err(RenderError::Undefined(_))) | None => (None, Origin::Nothing, 0),
                }
            }
            Source::Setting(name) => (
                self.connection.values.get(&**name).map(Cow::Borrowed),
                Origin::Setting(name),
                0,
            ),
            Source::Response { step, paths } => {
                let response = self.responses.get(*step).and_then(Option::as_deref);
                let found = response.and_then(|r| {
                    paths
                        .iter()
                        .find_map(|p| p.get(r).filter(|v| !v.is_null()).map(|v| (v, p)))
                });
                match found {
                    Some((v, path)) => (Some(v), Origin::Path(path.as_str()), 0),
                    None => (None, Origin::Nothing, 0),
                }
            }
            Source::SettingPath(name) => match self.connection.setting_paths.get(&**name) {
                Some(path) => (self.read(path, scope), Origin::Path(path.as_str()), 0),
                None => (None, Origin::Nothing, 0),
            },
            Source::Object { .. }
            | Source::Each { .. }
            | Source::Entries { .. }
            | Source::Items(_) => {
                return Err(Stop::Failed(
                    FailureKind::Invalid,
                    format!("`{}` must be a single value", field.label),
                ));
            }
        })
    }

    /// `from` from the path at `start` on, then its fallbacks.
    #[allow(clippy::too_many_arguments)]
    fn read_from(
        &self,
        field: &'a Field,
        scope: Scope<'a>,
        paths: &'a [Path],
        start: usize,
        member: Option<&Path>,
        first: bool,
        fallbacks: Fallbacks<'a>,
    ) -> Sourced<'a> {
        match self.read_paths(field, scope, &paths[start..], member, first) {
            Read::Found(v, path, at) => (Some(v), Origin::Path(path), start + at + 1),
            read => self.fallback(field, &read, fallbacks),
        }
    }

    /// What `from` gives when no path selects a value: an explicit `null` kept first, a
    /// remembered value, the time, `null`, or nothing.
    #[inline(never)]
    fn fallback(&self, field: &Field, read: &Read<'a>, fallbacks: Fallbacks<'a>) -> Sourced<'a> {
        let null = matches!(read, Read::Null);
        if null && field.keep_null == KeepNull::First {
            return (Some(Cow::Owned(Value::Null)), Origin::Null, 0);
        }
        match fallbacks
            .recall
            .and_then(|rule| Some((self.recall(rule)?, &*rule.store)))
        {
            Some((v, store)) => (Some(Cow::Owned(v)), Origin::Recalled(store), 0),
            None if fallbacks.now => (Some(Cow::Owned(self.connection.now())), Origin::Now, 0),
            None if null => (Some(Cow::Owned(Value::Null)), Origin::Null, 0),
            None => (None, Origin::Nothing, 0),
        }
    }

    /// The first of `paths` that selects a value (with `member` and `first`); with
    /// `omit_empty`, an empty value does not win over a later path.
    fn read_paths(
        &self,
        field: &Field,
        scope: Scope<'a>,
        paths: &'a [Path],
        member: Option<&Path>,
        first: bool,
    ) -> Read<'a> {
        let mut saw_null = false;
        for (at, path) in paths.iter().enumerate() {
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
                Some(v) if v.is_null() => {
                    if field.keep_null == KeepNull::First {
                        return Read::Null;
                    }
                    saw_null = true;
                }
                Some(v) if field.omit_empty && is_empty(&v) => {}
                Some(v) => return Read::Found(v, path.as_str(), at),
                None => {}
            }
        }
        if saw_null { Read::Null } else { Read::Nothing }
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

    /// What a missing value becomes: the default, an error (or a skip) when required, or
    /// omission.
    pub(super) fn missing(
        &mut self,
        field: &'a Field,
        why: impl FnOnce() -> String,
    ) -> Step<Option<Cow<'a, Value>>> {
        if let Some(default) = &field.default {
            self.note(|| format!("{} <- default", field.label));
            return Ok(Some(Cow::Borrowed(default)));
        }
        match field.required {
            Required::Fail => Err(Stop::Failed(
                FailureKind::Missing,
                format!("`{}` is required but {}", field.label, why()),
            )),
            Required::Skip => Err(Stop::Skip(
                SkipKind::Required,
                format!("`{}` is missing: {}", field.label, why()),
            )),
            Required::No => {
                if self.trace.is_some() {
                    let why = why();
                    self.note(|| format!("{}: omitted ({why})", field.label));
                }
                Ok(None)
            }
        }
    }

    /// Applies the field's operations (without remaps for `remaps: false`, as for bucketed
    /// values) and its `must_be`; `None` when an operation leaves the field out.
    pub(super) fn shape<'v>(
        &mut self,
        field: &'a Field,
        value: Cow<'v, Value>,
        remaps: bool,
        scope: Scope<'a>,
    ) -> Step<Option<Cow<'v, Value>>>
    where
        'a: 'v,
    {
        match self.shape_ops(field, value, remaps, scope)? {
            Shaped::Kept(value) => Ok(Some(value)),
            Shaped::Omitted | Shaped::Missing(_) => Ok(None),
            Shaped::Invalid(why) => Err(Stop::Failed(
                FailureKind::Invalid,
                format!("`{}`: {why}", field.label),
            )),
        }
    }

    #[allow(clippy::too_many_lines)]
    fn shape_ops<'v>(
        &mut self,
        field: &'a Field,
        value: Cow<'v, Value>,
        remaps: bool,
        scope: Scope<'a>,
    ) -> Step<Shaped<'v>>
    where
        'a: 'v,
    {
        let mut value = value;
        for op in &field.ops {
            if let Op::Remap(remap) = op {
                if !remaps {
                    continue;
                }
                match self.remap(field, remap, value)? {
                    Some(v) if v.is_null() => return Ok(Shaped::Kept(v)),
                    Some(v) => {
                        value = v;
                        continue;
                    }
                    None => {
                        self.note(|| format!("{}: omitted (not in the remap table)", field.label));
                        return Ok(Shaped::Omitted);
                    }
                }
            }
            let result: Result<Cow<'v, Value>, String> = match op {
                Op::Remap(_) => continue,
                Op::Transform(transform) => convert::transform(&value, *transform).map(Cow::Owned),
                Op::Capture(regex) => match convert::capture(&value, regex) {
                    Ok(Some(found)) => Ok(Cow::Owned(found)),
                    Ok(None) => {
                        return Ok(Shaped::Missing(format!(
                            "`{}` does not match `{regex}`",
                            short(&value)
                        )));
                    }
                    Err(why) => Err(why),
                },
                Op::UserAgent(part) => match convert::user_agent(&value, *part) {
                    Ok(Some(found)) => Ok(Cow::Owned(found)),
                    Ok(None) => {
                        return Ok(Shaped::Missing(format!(
                            "the user agent `{}` tells no {}",
                            short(&value),
                            ua_part_name(*part)
                        )));
                    }
                    Err(why) => Err(why),
                },
                Op::Truncate(chars) => convert::truncate(&value, *chars).map(Cow::Owned),
                Op::Split(separator) => match &*value {
                    Value::Array(_) => continue,
                    _ => convert::split(&value, separator).map(Cow::Owned),
                },
                Op::Count => convert::count(&value).map(Cow::Owned),
                Op::Times(path) => {
                    let factor = self.read(path, scope);
                    convert::times(&value, factor.as_deref()).map(Cow::Owned)
                }
                Op::Round(places) => convert::round(&value, *places).map(Cow::Owned),
                Op::ToObject(filler) => convert::to_object(&value, filler).map(Cow::Owned),
                Op::Convert(to) => {
                    let kept = (field.on_invalid == OnInvalid::Keep).then(|| value.clone());
                    match convert::convert(value, *to, field.time_unit) {
                        Ok(v) => {
                            value = v;
                            continue;
                        }
                        Err(why) => {
                            value = kept.unwrap_or(Cow::Owned(Value::Null));
                            Err(why)
                        }
                    }
                }
                Op::FormatTime(pattern, zone) => {
                    let zone = match zone {
                        None => Ok(None),
                        Some(Zone::Fixed(zone)) => Ok(Some(*zone)),
                        Some(Zone::Read(path)) => match self.read(path, scope).as_deref() {
                            Some(Value::String(name)) => convert::time_zone(name).map(Some),
                            Some(other) => Err(format!(
                                "the time zone `{path}` must be text, not {}",
                                kind(other)
                            )),
                            None => Err(format!("the time zone `{path}` is missing")),
                        },
                    };
                    zone.and_then(|zone| {
                        convert::format_time(&value, pattern, zone, field.time_unit)
                    })
                    .map(Cow::Owned)
                }
                Op::MustBe(want) => {
                    if convert::has_type(&value, *want) {
                        continue;
                    }
                    Err(type_error(field, *want, &value))
                }
            };
            match result {
                Ok(v) => value = v,
                Err(why) => match field.on_invalid {
                    OnInvalid::Fail | OnInvalid::Next => return Ok(Shaped::Invalid(why)),
                    OnInvalid::Omit => {
                        self.note(|| format!("{}: omitted ({why})", field.label));
                        return Ok(Shaped::Omitted);
                    }
                    OnInvalid::Keep => {
                        self.note(|| format!("{}: kept as it was ({why})", field.label));
                    }
                },
            }
        }
        if let Some(want) = field.must_be
            && !convert::has_type(&value, want)
        {
            return Err(Stop::Failed(
                FailureKind::Invalid,
                format!("`{}` {}", field.label, type_error(field, want, &value)),
            ));
        }
        Ok(Shaped::Kept(value))
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
                return Err(Stop::Failed(
                    FailureKind::Invalid,
                    format!("`{}`: a remap needs text, not {}", field.label, kind(other)),
                ));
            }
        };
        // A value its `match` transforms cannot take (`e164` of a name) is in no table.
        let found = convert::matched(&text, &remap.matching)
            .ok()
            .and_then(|key| {
                remap
                    .setting
                    .and_then(|slot| self.connection.remap_table(slot)?.get(&*key))
                    .or_else(|| remap.table.get(&*key))
            });
        Ok(Some(match (found, remap.otherwise) {
            (Some(mapped), _) => Cow::Borrowed(mapped),
            (None, Otherwise::Keep) => value,
            (None, Otherwise::Omit) => return Ok(None),
            (None, Otherwise::Null) => Cow::Owned(Value::Null),
            (None, Otherwise::Default) => {
                Cow::Borrowed(remap.default.as_ref().expect("checked when compiled"))
            }
            (None, Otherwise::Drop) => {
                return Err(Stop::Skip(
                    SkipKind::Dropped,
                    format!(
                        "`{}`: `{}` is not in the remap table (`otherwise: drop`)",
                        field.label,
                        short(&value)
                    ),
                ));
            }
            (None, Otherwise::Error) => {
                return Err(Stop::Failed(
                    FailureKind::Invalid,
                    format!(
                        "`{}`: `{}` is not in the remap table",
                        field.label,
                        short(&value)
                    ),
                ));
            }
        }))
    }

    pub(super) fn recall(&self, rule: &RecallRule) -> Option<Value> {
        let key = rule.key.get(self.event).and_then(|k| key_text(&k))?;
        self.state.recall(&rule.store, &key)
    }
}

/// What `from` falls back on when no path selects a value.
#[derive(Clone, Copy)]
struct Fallbacks<'a> {
    recall: Option<&'a RecallRule>,
    now: bool,
}

/// What a field's source gave, where it came from, and with `from` the index of the path after
/// the one that gave it (0 for none).
type Sourced<'a> = (Option<Cow<'a, Value>>, Origin<'a>, usize);

/// What reading `from` found.
enum Read<'a> {
    /// A value, the path it came from and that path's index.
    Found(Cow<'a, Value>, &'a str, usize),
    /// Only `null`s.
    Null,
    Nothing,
}

/// "must be text, not a number (`123`)".
fn type_error(_field: &Field, want: ferry_spec::model::ValueType, value: &Value) -> String {
    format!(
        "must be {}, not {} (`{}`)",
        convert::type_name(want),
        kind(value),
        short(value)
    )
}

fn ua_part_name(part: ferry_spec::model::UserAgentPart) -> &'static str {
    use ferry_spec::model::UserAgentPart;
    match part {
        UserAgentPart::Browser => "browser",
        UserAgentPart::BrowserVersion => "browser version",
        UserAgentPart::Os => "operating system",
        UserAgentPart::OsVersion => "operating system version",
        UserAgentPart::Device => "device",
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
    Now,
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
            Origin::Now => f.write_str("the clock"),
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
                None => "the template reads a value that is missing".to_owned(),
            },
            Source::SettingTemplate(name) => {
                if connection.values.contains_key(&**name) {
                    format!("the template of setting `{name}` reads a value that is missing")
                } else {
                    format!("setting `{name}` is not set")
                }
            }
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
            Source::Value(_) | Source::Now | Source::Object { .. } | Source::Items(_) => {
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

/// Text of a value for query strings, form fields and keys.
pub(super) fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
