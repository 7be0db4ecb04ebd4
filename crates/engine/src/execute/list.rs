//! Lists and entries: the items of `each` and `items` (an entry that is an `each` adds all of
//! its items; an object entry whose fields are all left out is dropped), and the members that
//! `entries` makes of an object. While a batched body's merged array is written, the range of
//! each of its items is recorded.

use std::borrow::Cow;

use serde_json::Value;

use crate::compiled::{Field, Selector, Single, Source};
use crate::convert::{self, kind};
use crate::plan::FailureKind;

use super::write::{Written, describe_within};
use super::{Run, Scope, Step, Stop, separate, write_value};

impl<'a> Run<'a> {
    /// Writes a list member (`each` or `items`); `false` when it is left out.
    pub(super) fn list(
        &mut self,
        field: &'a Field,
        scope: Scope<'a>,
        out: &mut Vec<u8>,
        first: &mut bool,
        mark: (usize, bool),
        key: &dyn Fn(&mut Vec<u8>, &mut bool),
    ) -> Step<bool> {
        if let Source::Each {
            path, sum: true, ..
        } = &field.source
        {
            self.check_computed(path)?;
            let Some(total) = self.sum(field, scope)? else {
                return match self.missing(field, || format!("`{path}` is missing"))? {
                    Some(value) => {
                        key(out, first);
                        write_value(out, &value);
                        Ok(true)
                    }
                    None => Ok(false),
                };
            };
            key(out, first);
            write_value(out, &total);
            return Ok(true);
        }
        if let Source::Each {
            path,
            item,
            filter,
            single,
            ..
        } = &field.source
        {
            self.check_computed(path)?;
            match self.read(path, scope).filter(|v| !v.is_null()) {
                Some(found) if found.is_array() => {
                    if found.as_array().is_some_and(Vec::is_empty) && field.omit_empty {
                        self.note(|| format!("{}: omitted (empty)", field.label));
                        return Ok(false);
                    }
                }
                Some(_) if *single == Single::AsList => {}
                Some(found) if *single == Single::Alone => {
                    // Shaped like an item, and written as the member's value.
                    key(out, first);
                    let start = out.len();
                    let mut alone = true;
                    self.single_item(item, filter.as_ref(), found, out, &mut alone, false)?;
                    let empty = matches!(&out[start..], b"\"\"" | b"[]" | b"{}");
                    if out.len() > start && !(empty && field.omit_empty) {
                        self.note(|| format!("{} <- the one value of {path}", field.label));
                        return Ok(true);
                    }
                    out.truncate(mark.0);
                    *first = mark.1;
                    let why = || format!("the one value of `{path}` is left out");
                    return match self.missing(field, why)? {
                        Some(value) => {
                            key(out, first);
                            write_value(out, &value);
                            Ok(true)
                        }
                        None => Ok(false),
                    };
                }
                None => {
                    return match self.missing(field, || format!("`{path}` is missing"))? {
                        Some(value) => {
                            key(out, first);
                            write_value(out, &value);
                            Ok(true)
                        }
                        None => Ok(false),
                    };
                }
                Some(other) => {
                    return Err(Stop::Failed(
                        FailureKind::Invalid,
                        format!(
                            "`{}`: `{path}` must be a list, not {}",
                            field.label,
                            kind(&other)
                        ),
                    ));
                }
            }
        }
        key(out, first);
        let start = out.len();
        out.push(b'[');
        let mut first_item = true;
        self.enter_list();
        let written = self.list_items(field, scope, out, &mut first_item);
        self.leave_list();
        written?;
        out.push(b']');
        self.settle_empty(field, out, start, mark, first)?;
        Ok(true)
    }

    pub(super) fn enter_list(&mut self) {
        if let Some(capture) = &mut self.capture {
            capture.depth += 1;
            capture.entered |= capture.depth == 1;
        }
    }

    pub(super) fn leave_list(&mut self) {
        if let Some(capture) = &mut self.capture {
            capture.depth -= 1;
        }
    }

    /// Records the range of an item just written into the captured list.
    pub(super) fn captured(&mut self, range: std::ops::Range<usize>) {
        if let Some(capture) = &mut self.capture
            && capture.depth == 1
            && !range.is_empty()
        {
            capture.items.push(range);
        }
    }

    /// The items a list field adds: every mapped item of an `each`, or each entry of `items`
    /// (an entry that is an `each` adds all of its items, a spread entry the members of its list).
    pub(super) fn list_items(
        &mut self,
        field: &'a Field,
        scope: Scope<'a>,
        out: &mut Vec<u8>,
        first_item: &mut bool,
    ) -> Step<()> {
        match &field.source {
            Source::Each {
                path,
                item,
                filter,
                single,
                ..
            } => {
                let Some(found) = self.read(path, scope) else {
                    return Ok(());
                };
                let count = match found {
                    Cow::Borrowed(Value::Array(items)) => {
                        for value in items {
                            let item_scope = Scope::of(value);
                            if let Some(filter) = filter
                                && !self.holds(filter, item_scope, &item.label, "where")
                            {
                                continue;
                            }
                            self.item(item, item_scope, out, first_item)?;
                        }
                        items.len()
                    }
                    Cow::Owned(Value::Array(items)) => {
                        // Items copied out by a query are written by a shorter-lived run that
                        // records no ranges.
                        if let Some(capture) = &mut self.capture
                            && capture.depth == 1
                        {
                            capture.valid = false;
                        }
                        let mut scoped = self.scoped();
                        for value in &items {
                            let item_scope = Scope::of(value);
                            if let Some(filter) = filter
                                && !scoped.holds(filter, item_scope, &item.label, "where")
                            {
                                continue;
                            }
                            scoped.item(item, item_scope, out, first_item)?;
                        }
                        items.len()
                    }
                    Cow::Borrowed(Value::Null) | Cow::Owned(Value::Null) => 0,
                    one if *single != Single::Refused => {
                        self.single_item(item, filter.as_ref(), one, out, first_item, true)?;
                        1
                    }
                    other => {
                        return Err(Stop::Failed(
                            FailureKind::Invalid,
                            format!(
                                "`{}`: `{path}` must be a list, not {}",
                                field.label,
                                kind(&other)
                            ),
                        ));
                    }
                };
                self.note(|| format!("{} <- each of {path} ({count} items)", field.label));
            }
            Source::Items(entries) => {
                for entry in entries {
                    if let Some(when) = &entry.when
                        && !self.field_holds(when, scope, &entry.label)
                    {
                        continue;
                    }
                    if matches!(entry.source, Source::Each { .. }) {
                        self.list_items(entry, scope, out, first_item)?;
                    } else if entry.spread {
                        self.spread_items(entry, scope, out, first_item)?;
                    } else {
                        self.item(entry, scope, out, first_item)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A spread entry of `items`: each member of the list it gives (of the entries, for
    /// `items`), or the one value it gives.
    fn spread_items(
        &mut self,
        entry: &'a Field,
        scope: Scope<'a>,
        out: &mut Vec<u8>,
        first_item: &mut bool,
    ) -> Step<()> {
        if matches!(entry.source, Source::Items(_)) {
            return self.list_items(entry, scope, out, first_item);
        }
        let Some(value) = self.value_of(entry, scope)? else {
            return Ok(());
        };
        let members = match &*value {
            Value::Array(members) => &members[..],
            one => std::slice::from_ref(one),
        };
        for member in members {
            separate(out, first_item);
            let start = out.len();
            write_value(out, member);
            self.captured(start..out.len());
        }
        Ok(())
    }

    /// The one value `each` found where it expects a list, shaped like an item (when `where`
    /// keeps it); `record` notes its range as an item of the list being captured.
    fn single_item(
        &mut self,
        item: &'a Field,
        filter: Option<&'a Selector>,
        found: Cow<'a, Value>,
        out: &mut Vec<u8>,
        first: &mut bool,
        record: bool,
    ) -> Step<()> {
        match found {
            Cow::Borrowed(one) => {
                let scope = Scope::of(one);
                if filter.is_none_or(|f| self.holds(f, scope, &item.label, "where")) {
                    if record {
                        self.item(item, scope, out, first)?;
                    } else {
                        self.item_unrecorded(item, scope, out, first)?;
                    }
                }
            }
            Cow::Owned(one) => {
                // A value made for this read (not the event's) is written by a shorter-lived
                // run, which records no ranges.
                if record
                    && let Some(capture) = &mut self.capture
                    && capture.depth == 1
                {
                    capture.valid = false;
                }
                let mut scoped = self.scoped();
                let scope = Scope::of(&one);
                if filter.is_none_or(|f| scoped.holds(f, scope, &item.label, "where")) {
                    scoped.item_unrecorded(item, scope, out, first)?;
                }
            }
        }
        Ok(())
    }

    /// One entry of a list. An object entry whose fields are all left out is dropped.
    pub(super) fn item(
        &mut self,
        item: &'a Field,
        scope: Scope<'a>,
        out: &mut Vec<u8>,
        first: &mut bool,
    ) -> Step<()> {
        let mark = (out.len(), *first);
        self.item_unrecorded(item, scope, out, first)?;
        if out.len() > mark.0 {
            let start = mark.0 + usize::from(!mark.1);
            self.captured(start..out.len());
        }
        Ok(())
    }

    pub(super) fn item_unrecorded(
        &mut self,
        item: &'a Field,
        scope: Scope<'a>,
        out: &mut Vec<u8>,
        first: &mut bool,
    ) -> Step<()> {
        let mark = (out.len(), *first);
        match &item.source {
            Source::Object(object) => {
                let Some(scope) = self.within(object, item, scope)? else {
                    self.note(|| format!("{}: dropped ({})", item.label, describe_within(object)));
                    return Ok(());
                };
                separate(out, first);
                let start = out.len();
                self.object(object, Some(item), scope, out)?;
                if out.len() - start == 2 {
                    self.note(|| format!("{}: dropped (every field is left out)", item.label));
                    out.truncate(mark.0);
                    *first = mark.1;
                }
            }
            Source::Each { .. } | Source::Items(_) => {
                separate(out, first);
                out.push(b'[');
                let mut first_item = true;
                self.enter_list();
                let written = self.list_items(item, scope, out, &mut first_item);
                self.leave_list();
                written?;
                out.push(b']');
            }
            Source::Entries { .. } => {
                separate(out, first);
                out.push(b'{');
                let mut inner_first = true;
                let mut inner: Written<'a> = Some(Vec::new());
                self.entries(item, scope, out, &mut inner_first, &mut inner)?;
                out.push(b'}');
            }
            _ => {
                if let Some(v) = self.value_of(item, scope)? {
                    separate(out, first);
                    write_value(out, &v);
                }
            }
        }
        Ok(())
    }

    /// The sum of the values an `each` with `sum: true` gives its items; `None` when the list is
    /// missing.
    fn sum(&mut self, field: &'a Field, scope: Scope<'a>) -> Step<Option<Value>> {
        let Source::Each {
            path,
            item,
            filter,
            single,
            ..
        } = &field.source
        else {
            return Ok(None);
        };
        let Some(found) = self.read(path, scope).filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let items: Vec<&Value> = match &*found {
            Value::Array(items) => items.iter().collect(),
            one if *single != Single::Refused => vec![one],
            other => {
                return Err(Stop::Failed(
                    FailureKind::Invalid,
                    format!(
                        "`{}`: `{path}` must be a list, not {}",
                        field.label,
                        kind(other)
                    ),
                ));
            }
        };
        let mut run = self.scoped();
        let mut total = 0.0_f64;
        let mut whole = true;
        for value in items {
            let item_scope = Scope::of(value);
            if let Some(filter) = filter
                && !run.holds(filter, item_scope, &item.label, "where")
            {
                continue;
            }
            let Some(value) = run.value_of(item, item_scope)? else {
                continue;
            };
            let number = match &*value {
                Value::Number(n) => n.as_f64(),
                Value::String(text) => text.trim().parse::<f64>().ok(),
                _ => None,
            };
            let Some(number) = number.filter(|n| n.is_finite()) else {
                return Err(Stop::Failed(
                    FailureKind::Invalid,
                    format!(
                        "`{}`: cannot add {} `{}`",
                        field.label,
                        kind(&value),
                        convert::short(&value)
                    ),
                ));
            };
            whole &= number.fract() == 0.0 && number.abs() < 9.0e15;
            total += number;
        }
        self.note(|| format!("{} <- sum of each of {path}", field.label));
        #[allow(clippy::cast_possible_truncation)]
        Ok(Some(if whole {
            Value::from(total as i64)
        } else {
            serde_json::Number::from_f64(total).map_or(Value::Null, Value::Number)
        }))
    }

    /// One member per entry of the first object the field's paths select.
    pub(super) fn entries(
        &mut self,
        field: &'a Field,
        scope: Scope<'a>,
        out: &mut Vec<u8>,
        first: &mut bool,
        written: &mut Written<'a>,
    ) -> Step<()> {
        let Source::Entries {
            paths,
            item,
            filter,
        } = &field.source
        else {
            return Ok(());
        };
        let found = paths.iter().find_map(|path| match self.read(path, scope) {
            Some(Cow::Borrowed(Value::Object(map))) => Some(map),
            _ => None,
        });
        let Some(map) = found else {
            return Ok(());
        };
        for (key, value) in map {
            let entry_scope = Scope {
                value,
                key: Some(key),
            };
            if let Some(filter) = filter
                && !self.holds(filter, entry_scope, &item.label, "where")
            {
                continue;
            }
            self.member(item, Some(key), entry_scope, out, first, written)?;
        }
        Ok(())
    }
}
