//! Buckets: every key of a `rest_of` object that no other field reads, written after the
//! explicit fields of its object.

use std::borrow::Cow;

use serde_json::Value;

use crate::compiled::{Conditions, Field, Rest};
use crate::convert::kind;
use crate::plan::FailureKind;

use super::write::Written;
use super::{Run, Scope, Step, Stop, is_empty, separate, write_str, write_value};

impl<'a> Run<'a> {
    /// Writes every key of the bucket's object that nothing else reads.
    pub(super) fn rest(
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
                    return Err(Stop::Failed(
                        FailureKind::Invalid,
                        format!(
                            "`{}`: `{path}` must be an object, not {}",
                            owner.label,
                            kind(&other)
                        ),
                    ));
                }
            }
        }
        let Some((map, path)) = found else {
            return Ok(());
        };
        // Keys read, and names written, by fields that this event writes.
        let hidden = self.held(&rest.consumed_when, scope);
        let taken = self.held(&rest.siblings_when, scope);
        let named: Vec<Cow<'a, Value>> = rest
            .named
            .iter()
            .filter_map(|p| self.read(p, scope))
            .collect();
        let excepted: Vec<Cow<'a, Value>> = rest
            .except_paths
            .iter()
            .filter_map(|p| self.read(p, scope))
            .collect();
        let lists = |value: &Value, key: &str| match value {
            Value::Array(items) => items.iter().any(|item| item.as_str() == Some(key)),
            other => other.as_str() == Some(key),
        };
        let mut shown = Vec::new();
        for (key, value) in map {
            if rest.consumed.contains(key.as_str())
                || hidden.contains(&key.as_str())
                || !(rest.only.allows(Some(key), self.connection)
                    || rest
                        .only_patterns
                        .iter()
                        .any(|pattern| pattern.is_match(key)))
                || rest.except.lists(key, self.connection)
                || named.iter().any(|n| n.as_str() == Some(key))
                || excepted.iter().any(|names| lists(names, key))
                || rest
                    .except_patterns
                    .iter()
                    .any(|pattern| pattern.is_match(key))
            {
                continue;
            }
            let name: Cow<'a, str> = if rest.prefix.is_empty() {
                Cow::Borrowed(key)
            } else {
                Cow::Owned(format!("{}{key}", rest.prefix))
            };
            let entry = Entry { name, value };
            self.rest_entry(
                rest, owner, entry, &taken, out, first, written, &mut shown, scope,
            )?;
        }
        if !shown.is_empty() {
            self.note(|| format!("{} <- rest of {path}: {}", owner.label, shown.join(", ")));
        }
        Ok(())
    }

    /// The names of `list` whose conditions hold in `scope`.
    fn held(&self, list: &'a [(Conditions, Box<str>)], scope: Scope<'a>) -> Vec<&'a str> {
        if list.is_empty() {
            return Vec::new();
        }
        let subject = self.subject_at(scope);
        list.iter()
            .filter(|(conditions, _)| conditions.iter().all(|c| c.matches(&subject)))
            .map(|(_, name)| &**name)
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn rest_entry(
        &mut self,
        rest: &'a Rest,
        owner: &'a Field,
        entry: Entry<'a>,
        taken: &[&str],
        out: &mut Vec<u8>,
        first: &mut bool,
        written: &mut Written<'a>,
        shown: &mut Vec<String>,
        scope: Scope<'a>,
    ) -> Step<()> {
        let Entry { name, value } = entry;
        if let Some(flat) = &rest.flatten {
            // A nested object's members, and with `lists` a list's items, under keys of their
            // own; an empty one writes nothing.
            match value {
                Value::Object(inner) => {
                    for (key, value) in inner {
                        let name = Cow::Owned(format!("{name}{}{key}", flat.separator));
                        let entry = Entry { name, value };
                        self.rest_entry(
                            rest, owner, entry, taken, out, first, written, shown, scope,
                        )?;
                    }
                    return Ok(());
                }
                Value::Array(items) if let Some((before, after)) = &flat.lists => {
                    for (i, value) in items.iter().enumerate() {
                        let name = Cow::Owned(format!("{name}{before}{i}{after}"));
                        let entry = Entry { name, value };
                        self.rest_entry(
                            rest, owner, entry, taken, out, first, written, shown, scope,
                        )?;
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        if rest.siblings.contains(&*name)
            || taken.contains(&&*name)
            || (value.is_null() && owner.keep_null == crate::compiled::KeepNull::No)
            || (owner.omit_empty && is_empty(value))
            || written.as_ref().is_some_and(|names| names.contains(&name))
        {
            return Ok(());
        }
        let value = if value.is_null() {
            Cow::Borrowed(value)
        } else {
            match self.shape(owner, Cow::Borrowed(value), false, scope)? {
                Some(value) => value,
                None => return Ok(()),
            }
        };
        separate(out, first);
        write_str(out, &name);
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

/// One member a bucket may write: its output name and the value.
struct Entry<'a> {
    name: Cow<'a, str>,
    value: &'a Value,
}
