//! Writing objects, lists, entries and buckets straight to the body buffer, in field order.

use std::borrow::Cow;

use serde_json::Value;

use crate::compiled::{Field, Object, Rest, Source};
use crate::convert::kind;

use super::{Run, Scope, Step, Stop, is_empty, separate, text_of, write_value};

/// The names written so far in an object whose members are not all known when it compiles
/// (computed keys, spread objects, `entries`): none is written twice, the first one wins.
type Written<'a> = Option<Vec<Cow<'a, str>>>;

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
    fn members(
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
            && !self.holds(when, scope, &field.label, "when")
        {
            return Ok(());
        }
        self.member(field, None, scope, out, first, written)
    }

    /// Writes `field` as a member named by its computed key, else `name`, else its own name.
    fn member(
        &mut self,
        field: &'a Field,
        name: Option<&'a str>,
        scope: Scope<'a>,
        out: &mut Vec<u8>,
        first: &mut bool,
        written: &mut Written<'a>,
    ) -> Step<()> {
        if field.spread {
            return match &field.source {
                Source::Object(object) => {
                    let Some(scope) = self.within(object, field, scope)? else {
                        self.note(|| {
                            format!("{}: omitted ({})", field.label, describe_within(object))
                        });
                        return Ok(());
                    };
                    self.members(object, Some(field), scope, out, first, written)
                }
                Source::Entries { .. } => self.entries(field, scope, out, first, written),
                _ => Ok(()),
            };
        }
        let name: Option<Cow<'a, str>> = if let Some(key) = &field.computed_key {
            let Some(value) = self.value(key, scope)? else {
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
                    serde_json::to_writer(&mut *out, name).expect("writing to memory cannot fail");
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

    /// Writes a list member (`each` or `items`); `false` when it is left out.
    fn list(
        &mut self,
        field: &'a Field,
        scope: Scope<'a>,
        out: &mut Vec<u8>,
        first: &mut bool,
        mark: (usize, bool),
        key: &dyn Fn(&mut Vec<u8>, &mut bool),
    ) -> Step<bool> {
        if let Source::Each { path, .. } = &field.source {
            match self.read(path, scope).filter(|v| !v.is_null()) {
                Some(found) if found.is_array() => {
                    if found.as_array().is_some_and(Vec::is_empty) && field.omit_empty {
                        self.note(|| format!("{}: omitted (empty)", field.label));
                        return Ok(false);
                    }
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
                    return Err(Stop::Failed(format!(
                        "`{}`: `{path}` must be a list, not {}",
                        field.label,
                        kind(&other)
                    )));
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

    fn enter_list(&mut self) {
        if let Some(capture) = &mut self.capture {
            capture.depth += 1;
            capture.entered |= capture.depth == 1;
        }
    }

    fn leave_list(&mut self) {
        if let Some(capture) = &mut self.capture {
            capture.depth -= 1;
        }
    }

    /// Records the range of an item just written into the captured list.
    fn captured(&mut self, range: std::ops::Range<usize>) {
        if let Some(capture) = &mut self.capture
            && capture.depth == 1
            && !range.is_empty()
        {
            capture.items.push(range);
        }
    }

    /// The items a list field adds: every mapped item of an `each`, or each entry of `items`
    /// (an entry that is an `each` adds all of its items).
    fn list_items(
        &mut self,
        field: &'a Field,
        scope: Scope<'a>,
        out: &mut Vec<u8>,
        first_item: &mut bool,
    ) -> Step<()> {
        match &field.source {
            Source::Each { path, item, filter } => {
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
                    other => {
                        return Err(Stop::Failed(format!(
                            "`{}`: `{path}` must be a list, not {}",
                            field.label,
                            kind(&other)
                        )));
                    }
                };
                self.note(|| format!("{} <- each of {path} ({count} items)", field.label));
            }
            Source::Items(entries) => {
                for entry in entries {
                    if let Some(when) = &entry.when
                        && !self.holds(when, scope, &entry.label, "when")
                    {
                        continue;
                    }
                    if matches!(entry.source, Source::Each { .. }) {
                        self.list_items(entry, scope, out, first_item)?;
                    } else {
                        self.item(entry, scope, out, first_item)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// An object or list written from `start` that came out empty (`{}` or `[]`): an error when
    /// the field is required, taken back out with `omit_empty`, kept otherwise.
    fn settle_empty(
        &mut self,
        field: &Field,
        out: &mut Vec<u8>,
        start: usize,
        mark: (usize, bool),
        first: &mut bool,
    ) -> Step<()> {
        if out.len() - start == 2 && (field.omit_empty || field.required) {
            if field.required {
                return Err(Stop::Failed(format!(
                    "`{}` is required but came out empty",
                    field.label
                )));
            }
            self.note(|| format!("{}: omitted (empty)", field.label));
            out.truncate(mark.0);
            *first = mark.1;
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

    fn item_unrecorded(
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

    /// The scope inside `object`: the first object its `within` selects (`None` when none is
    /// present), or `scope` itself.
    fn within(
        &mut self,
        object: &'a Object,
        field: &Field,
        scope: Scope<'a>,
    ) -> Step<Option<Scope<'a>>> {
        if object.within.is_empty() {
            return Ok(Some(scope));
        }
        for path in &object.within {
            match self.read(path, scope) {
                Some(Cow::Borrowed(value @ Value::Object(_))) => {
                    return Ok(Some(Scope::of(value)));
                }
                None | Some(Cow::Borrowed(Value::Null)) => {}
                Some(other) => {
                    return Err(Stop::Failed(format!(
                        "`{}`: `{path}` must be an object, not {}",
                        field.label,
                        kind(&other)
                    )));
                }
            }
        }
        Ok(None)
    }

    /// One member per entry of the first object the field's paths select.
    fn entries(
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

    /// Writes every key of the bucket's object that nothing else reads.
    fn rest(
        &mut self,
        rest: &'a Rest,
        owner: &'a Field,
        scope: Scope<'a>,
        out: &mut Vec<u8>,
        first: &mut bool,
        written: &mut Written<'a>,
    ) -> Step<()> {
        let mut found = None;
        for path in &rest.paths {
            match self.read(path, scope) {
                Some(Cow::Borrowed(Value::Object(map))) => {
                    found = Some((map, path));
                    break;
                }
                None | Some(Cow::Borrowed(Value::Null)) => {}
                Some(other) => {
                    return Err(Stop::Failed(format!(
                        "`{}`: `{path}` must be an object, not {}",
                        owner.label,
                        kind(&other)
                    )));
                }
            }
        }
        let Some((map, path)) = found else {
            return Ok(());
        };
        let named: Vec<Cow<'a, Value>> = rest
            .named
            .iter()
            .filter_map(|p| self.read(p, scope))
            .collect();
        let mut shown = Vec::new();
        for (key, value) in map {
            if rest.consumed.contains(key.as_str())
                || !rest.only.allows(Some(key), self.connection)
                || named.iter().any(|n| n.as_str() == Some(key))
            {
                continue;
            }
            let name: Cow<'a, str> = if rest.prefix.is_empty() {
                Cow::Borrowed(key)
            } else {
                Cow::Owned(format!("{}{key}", rest.prefix))
            };
            self.rest_entry(rest, owner, name, value, out, first, written, &mut shown)?;
        }
        if !shown.is_empty() {
            self.note(|| format!("{} <- rest of {path}: {}", owner.label, shown.join(", ")));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn rest_entry(
        &mut self,
        rest: &'a Rest,
        owner: &'a Field,
        name: Cow<'a, str>,
        value: &'a Value,
        out: &mut Vec<u8>,
        first: &mut bool,
        written: &mut Written<'a>,
        shown: &mut Vec<String>,
    ) -> Step<()> {
        if rest.flatten
            && let Value::Object(inner) = value
        {
            for (key, value) in inner {
                let name = Cow::Owned(format!("{name}_{key}"));
                self.rest_entry(rest, owner, name, value, out, first, written, shown)?;
            }
            return Ok(());
        }
        if rest.siblings.contains(&*name)
            || (value.is_null() && !owner.keep_null)
            || (owner.omit_empty && is_empty(value))
            || written.as_ref().is_some_and(|names| names.contains(&name))
        {
            return Ok(());
        }
        let value = if value.is_null() {
            Cow::Borrowed(value)
        } else {
            match self.shape(owner, Cow::Borrowed(value), false)? {
                Some(value) => value,
                None => return Ok(()),
            }
        };
        separate(out, first);
        serde_json::to_writer(&mut *out, &*name).expect("writing to memory cannot fail");
        out.push(b':');
        write_value(out, &value);
        if self.trace.is_some() {
            shown.push(name.to_string());
        }
        if let Some(names) = written.as_mut() {
            names.push(name);
        }
        Ok(())
    }
}

/// Why an object with `within` is missing.
fn describe_within(object: &Object) -> String {
    let list = object
        .within
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>();
    format!("none of {} is an object", list.join(", "))
}
