//! Writing objects and their members straight to the body buffer, in field order; lists and
//! entries are in `list.rs`, buckets in `bucket.rs`.

use std::borrow::Cow;

use serde_json::Value;

use crate::compiled::{Field, Object, Required, Source};
use crate::convert::kind;
use crate::path::Path;
use crate::plan::{FailureKind, SkipKind};

use super::value::text_of;
use super::{Run, Scope, Step, Stop, separate, write_str, write_value};

/// The names written so far in an object whose members are not all known when it compiles
/// (computed keys, spread objects, `entries`): none is written twice, the first one wins.
pub(super) type Written<'a> = Option<Vec<Cow<'a, str>>>;

impl<'a> Run<'a> {
    /// Writes `{...}`: the explicit fields, then the bucket.
    pub(super) fn object(
        &mut self,
        object: &'a Object,
        owner: Option<&'a Field>,
        scope: Scope<'a>,
        out: &mut Vec<u8>,
    ) -> Step<()> {
        out.push(b'{');
        let mut first = true;
        let mut written: Written<'a> = object.dynamic.then(Vec::new);
        self.members(object, owner, scope, out, &mut first, &mut written)?;
        out.push(b'}');
        Ok(())
    }

    /// The members of an object, without its braces: what a spread object adds to its parent.
    pub(super) fn members(
        &mut self,
        object: &'a Object,
        owner: Option<&'a Field>,
        scope: Scope<'a>,
        out: &mut Vec<u8>,
        first: &mut bool,
        written: &mut Written<'a>,
    ) -> Step<()> {
        for field in &object.fields {
            self.field(field, scope, out, first, written)?;
        }
        if let (Some(rest), Some(owner)) = (&object.rest, owner) {
            self.rest(rest, owner, scope, out, first, written)?;
        }
        Ok(())
    }

    /// Writes one member of an object (nothing when it is left out).
    pub(super) fn field(
        &mut self,
        field: &'a Field,
        scope: Scope<'a>,
        out: &mut Vec<u8>,
        first: &mut bool,
        written: &mut Written<'a>,
    ) -> Step<()> {
        if let Some(when) = &field.when
            && !self.field_holds(when, scope, &field.label)
        {
            return Ok(());
        }
        self.member(field, None, scope, out, first, written)
    }

    /// Writes `field` as a member named by its computed key, else `name`, else its own name.
    pub(super) fn member(
        &mut self,
        field: &'a Field,
        name: Option<&'a str>,
        scope: Scope<'a>,
        out: &mut Vec<u8>,
        first: &mut bool,
        written: &mut Written<'a>,
    ) -> Step<()> {
        if field.spread {
            let mark = out.len();
            match &field.source {
                Source::Object(object) => {
                    let Some(scope) = self.within(object, field, scope)? else {
                        let why = describe_within(object);
                        required_part(field, &why)?;
                        self.note(|| format!("{}: omitted ({why})", field.label));
                        return Ok(());
                    };
                    self.members(object, Some(field), scope, out, first, written)?;
                }
                Source::Entries { .. } => self.entries(field, scope, out, first, written)?,
                _ => {}
            }
            if out.len() == mark {
                required_part(field, "it writes no member")?;
            }
            return Ok(());
        }
        let name: Option<Cow<'a, str>> = if let Some(key) = &field.computed_key {
            // A name that is missing, or `null` (a remap's `send_null`), leaves the member out.
            let Some(value) = self.value(key, scope)?.filter(|v| !v.is_null()) else {
                self.note(|| format!("{}: omitted (its key is missing)", field.label));
                return Ok(());
            };
            Some(Cow::Owned(text_of(&value)))
        } else {
            name.map(Cow::Borrowed)
        };
        if let Some(names) = written.as_ref()
            && let Some(name) = name.as_deref().or(Some(&field.key))
            && names.iter().any(|n| **n == *name)
        {
            self.note(|| format!("{}: omitted (`{name}` is written already)", field.label));
            return Ok(());
        }
        let mark = (out.len(), *first);
        let key = |out: &mut Vec<u8>, first: &mut bool| {
            separate(out, first);
            match name.as_deref() {
                Some(name) => {
                    write_str(out, name);
                    out.push(b':');
                }
                None => out.extend_from_slice(&field.key_json),
            }
        };
        match &field.source {
            Source::Object(object) => {
                let Some(inner) = self.within(object, field, scope)? else {
                    if let Some(value) = self.missing(field, || describe_within(object))? {
                        key(out, first);
                        write_value(out, &value);
                    }
                    return Ok(());
                };
                key(out, first);
                let start = out.len();
                self.object(object, Some(field), inner, out)?;
                self.settle_empty(field, out, start, mark, first)?;
            }
            Source::Entries { .. } => {
                key(out, first);
                let start = out.len();
                out.push(b'{');
                let mut inner_first = true;
                let mut inner: Written<'a> = Some(Vec::new());
                self.entries(field, scope, out, &mut inner_first, &mut inner)?;
                out.push(b'}');
                self.settle_empty(field, out, start, mark, first)?;
            }
            Source::Each { .. } | Source::Items(_) => {
                if !self.list(field, scope, out, first, mark, &key)? {
                    return Ok(());
                }
            }
            _ => match self.value_of(field, scope)? {
                Some(value) => {
                    key(out, first);
                    write_value(out, &value);
                }
                None => return Ok(()),
            },
        }
        if out.len() > mark.0
            && let Some(names) = written.as_mut()
        {
            names.push(name.unwrap_or(Cow::Borrowed(&field.key)));
        }
        Ok(())
    }

    /// An object or list written from `start` that came out empty (`{}` or `[]`): an error (or
    /// a skip) when the field is required, taken back out with `omit_empty`, kept otherwise.
    pub(super) fn settle_empty(
        &mut self,
        field: &Field,
        out: &mut Vec<u8>,
        start: usize,
        mark: (usize, bool),
        first: &mut bool,
    ) -> Step<()> {
        if out.len() - start == 2 && (field.omit_empty || field.required != Required::No) {
            required_part(field, "came out empty")?;
            self.note(|| format!("{}: omitted (empty)", field.label));
            out.truncate(mark.0);
            *first = mark.1;
        }
        Ok(())
    }

    /// The scope inside `object`: the first object its `within` selects (`None` when none is
    /// present), or `scope` itself.
    pub(super) fn within(
        &mut self,
        object: &'a Object,
        field: &Field,
        scope: Scope<'a>,
    ) -> Step<Option<Scope<'a>>> {
        if object.within.is_empty() {
            return Ok(Some(scope));
        }
        let found = self.first_object(&object.within, &field.label, scope)?;
        Ok(found.map(|(value, _)| Scope::of(value)))
    }

    /// The first of `paths` that selects an object, and that path; `None` when none selects
    /// anything but `null`. Any other value fails the field labelled `label`.
    pub(super) fn first_object(
        &self,
        paths: &'a [Path],
        label: &str,
        scope: Scope<'a>,
    ) -> Step<Option<(&'a Value, &'a Path)>> {
        for path in paths {
            match self.read(path, scope) {
                Some(Cow::Borrowed(value @ Value::Object(_))) => return Ok(Some((value, path))),
                None | Some(Cow::Borrowed(Value::Null)) => {}
                Some(other) => {
                    return Err(Stop::Failed(
                        FailureKind::Invalid,
                        format!(
                            "`{label}`: `{path}` must be an object, not {}",
                            kind(&other)
                        ),
                    ));
                }
            }
        }
        Ok(None)
    }
}

/// A part (an object, a list, a spread object's members) that came out empty: an error or a
/// skip when the field is required.
pub(super) fn required_part(field: &Field, why: &str) -> Step<()> {
    match field.required {
        Required::No => Ok(()),
        Required::Fail => Err(Stop::Failed(
            FailureKind::Missing,
            format!("`{}` is required but {why}", field.label),
        )),
        Required::Skip => Err(Stop::Skip(
            SkipKind::Required,
            format!("`{}` {why}", field.label),
        )),
    }
}

/// Why an object with `within` is missing.
pub(super) fn describe_within(object: &Object) -> String {
    let list = object
        .within
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>();
    format!("none of {} is an object", list.join(", "))
}
