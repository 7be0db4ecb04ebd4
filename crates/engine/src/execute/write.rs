//! Writing objects, lists and buckets straight to the body buffer, in field order.

use crate::compiled::{Field, Rest, Source};
use crate::convert::kind;
use crate::path::walk;
use serde_json::Value;
use std::borrow::Cow;

use super::value::retype;
use super::{Run, Step, Stop, is_empty, separate, write_value};

impl<'a> Run<'a> {
    /// Writes `{...}`: the explicit fields, then the bucket.
    pub(super) fn object(
        &mut self,
        fields: &'a [Field],
        rest: Option<&'a Rest>,
        owner: Option<&'a Field>,
        root: &'a Value,
        out: &mut Vec<u8>,
    ) -> Step<()> {
        out.push(b'{');
        let mut first = true;
        for field in fields {
            self.field(field, root, out, &mut first)?;
        }
        if let (Some(rest), Some(owner)) = (rest, owner) {
            self.rest(rest, owner, root, out, &mut first)?;
        }
        out.push(b'}');
        Ok(())
    }

    pub(super) fn field(
        &mut self,
        field: &'a Field,
        root: &'a Value,
        out: &mut Vec<u8>,
        first: &mut bool,
    ) -> Step<()> {
        let mark = (out.len(), *first);
        match &field.source {
            Source::Object { fields, rest } => {
                separate(out, first);
                out.extend_from_slice(&field.key_json);
                let start = out.len();
                self.object(fields, rest.as_ref(), Some(field), root, out)?;
                self.settle_empty(field, out, start, mark, first)?;
            }
            Source::Each { path, item } => {
                let found = path.get(root).filter(|v| !v.is_null());
                match found {
                    Some(Cow::Borrowed(Value::Array(items)))
                        if !(items.is_empty() && field.omit_empty) =>
                    {
                        separate(out, first);
                        out.extend_from_slice(&field.key_json);
                        out.push(b'[');
                        let mut first_item = true;
                        for value in items {
                            self.item(item, value, out, &mut first_item)?;
                        }
                        out.push(b']');
                        self.note(|| {
                            format!("{} <- each of {path} ({} items)", field.label, items.len())
                        });
                    }
                    Some(Cow::Owned(Value::Array(items)))
                        if !(items.is_empty() && field.omit_empty) =>
                    {
                        separate(out, first);
                        out.extend_from_slice(&field.key_json);
                        self.each_owned(item, &items, out)?;
                        self.note(|| {
                            format!("{} <- each of {path} ({} items)", field.label, items.len())
                        });
                    }
                    None | Some(Cow::Borrowed(Value::Array(_)) | Cow::Owned(Value::Array(_))) => {
                        if let Some(value) =
                            self.missing(field, || format!("`{path}` is missing"))?
                        {
                            separate(out, first);
                            out.extend_from_slice(&field.key_json);
                            write_value(out, &value);
                        }
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
            Source::Items(items) => {
                separate(out, first);
                out.extend_from_slice(&field.key_json);
                let start = out.len();
                out.push(b'[');
                let mut first_item = true;
                for item in items {
                    self.item(item, root, out, &mut first_item)?;
                }
                out.push(b']');
                self.settle_empty(field, out, start, mark, first)?;
            }
            _ => {
                if let Some(value) = self.value(field, root)? {
                    separate(out, first);
                    out.extend_from_slice(&field.key_json);
                    write_value(out, &value);
                }
            }
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

    /// Maps the items of a query result, which this call owns, through a run scoped to them.
    pub(super) fn each_owned(
        &mut self,
        item: &Field,
        items: &[Value],
        out: &mut Vec<u8>,
    ) -> Step<()> {
        let mut scoped = Run {
            connection: self.connection,
            state: self.state,
            action: self.action,
            responses: self.responses,
            trace: None,
        };
        out.push(b'[');
        let mut first_item = true;
        for value in items {
            scoped.item(item, value, out, &mut first_item)?;
        }
        out.push(b']');
        Ok(())
    }

    pub(super) fn item(
        &mut self,
        item: &'a Field,
        value: &'a Value,
        out: &mut Vec<u8>,
        first: &mut bool,
    ) -> Step<()> {
        if let Source::Object { fields, rest } = &item.source {
            separate(out, first);
            return self.object(fields, rest.as_ref(), Some(item), value, out);
        }
        if let Some(v) = self.value(item, value)? {
            separate(out, first);
            write_value(out, &v);
        }
        Ok(())
    }

    /// Writes every key of the bucket's object that nothing else reads.
    pub(super) fn rest(
        &mut self,
        rest: &'a Rest,
        owner: &'a Field,
        root: &'a Value,
        out: &mut Vec<u8>,
        first: &mut bool,
    ) -> Step<()> {
        let segments = rest.path.segments().expect("rest_of paths are plain");
        let map = match walk(root, segments) {
            Some(Value::Object(map)) => map,
            None | Some(Value::Null) => return Ok(()),
            Some(other) => {
                return Err(Stop::Failed(format!(
                    "`{}`: `{}` must be an object, not {}",
                    owner.label,
                    rest.path,
                    kind(other)
                )));
            }
        };
        let mut written = Vec::new();
        for (key, value) in map {
            if rest.consumed.contains(key.as_str()) || !rest.only.allows(Some(key), self.connection)
            {
                continue;
            }
            let name: Cow<'_, str> = if rest.prefix.is_empty() {
                Cow::Borrowed(key)
            } else {
                Cow::Owned(format!("{}{key}", rest.prefix))
            };
            self.rest_entry(rest, owner, &name, value, out, first, &mut written)?;
        }
        if !written.is_empty() {
            self.note(|| {
                format!(
                    "{} <- rest of {}: {}",
                    owner.label,
                    rest.path,
                    written.join(", ")
                )
            });
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn rest_entry(
        &mut self,
        rest: &'a Rest,
        owner: &'a Field,
        name: &str,
        value: &'a Value,
        out: &mut Vec<u8>,
        first: &mut bool,
        written: &mut Vec<String>,
    ) -> Step<()> {
        if rest.flatten
            && let Value::Object(inner) = value
        {
            for (key, value) in inner {
                self.rest_entry(
                    rest,
                    owner,
                    &format!("{name}_{key}"),
                    value,
                    out,
                    first,
                    written,
                )?;
            }
            return Ok(());
        }
        if rest.siblings.contains(name)
            || (value.is_null() && !owner.keep_null)
            || (owner.omit_empty && is_empty(value))
        {
            return Ok(());
        }
        let value = if value.is_null() {
            Cow::Borrowed(value)
        } else {
            retype(owner, Cow::Borrowed(value))?
        };
        separate(out, first);
        serde_json::to_writer(&mut *out, name).expect("writing to memory cannot fail");
        out.push(b':');
        write_value(out, &value);
        if self.trace.is_some() {
            written.push(name.to_owned());
        }
        Ok(())
    }
}
