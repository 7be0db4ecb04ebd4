//! Buckets: every key of a `rest_of` object that no other field reads, written after the
//! explicit fields of its object.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::compiled::{Field, KeySet, KeysWhen, Rest};
use crate::connection::Connection;

use super::write::Written;
use super::{Run, Scope, Step, is_empty, separate, write_str, write_value};

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
        let found = self.first_object(&rest.paths, &owner.label, scope)?;
        let Some((map, path)) = found.and_then(|(object, path)| Some((object.as_object()?, path)))
        else {
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
        // With `dotted`, a name with a dot is a path: it never names a key holding a dot.
        let nameable = |key: &str| !(rest.dotted && key.contains('.'));
        let left_out = |key: &str| {
            rest.consumed.contains(key)
                || hidden.iter().any(|keys| keys.contains(key))
                || (nameable(key) && rest.except.lists(key, self.connection))
                || named.iter().any(|n| n.as_str() == Some(key))
                || (nameable(key) && excepted.iter().any(|names| listed_in(names, key)))
                || rest
                    .except_patterns
                    .iter()
                    .any(|pattern| pattern.is_match(key))
        };
        let nested = if rest.dotted {
            nested_except(rest, self.connection, &excepted)
        } else {
            Vec::new()
        };
        let mut sink = Sink {
            taken: &taken,
            out,
            first,
            written,
            shown: Vec::new(),
        };
        let dotted_only = if rest.dotted {
            rest.only.ordered(self.connection)
        } else {
            None
        };
        if let Some(listed) = dotted_only {
            // Each path `only` lists, in its order, named as written; a path listed twice
            // is written once.
            for (i, path) in listed.iter().enumerate() {
                let key = path.split('.').next().unwrap_or_default();
                let Some(value) = lookup(map, path) else {
                    continue;
                };
                if left_out(key) || listed[..i].contains(path) {
                    continue;
                }
                let name = bucket_name(rest, path);
                let entry = Entry { name, value };
                self.pruned_entry(rest, owner, path, entry, &nested, &mut sink, scope)?;
            }
            // Then the keys a pattern of `only` matches.
            if !rest.only_patterns.is_empty() {
                for (key, value) in map {
                    if listed.contains(&key.as_str())
                        || left_out(key)
                        || !rest.only_patterns.iter().any(|p| p.is_match(key))
                    {
                        continue;
                    }
                    let entry = Entry {
                        name: bucket_name(rest, key),
                        value,
                    };
                    self.pruned_entry(rest, owner, key, entry, &nested, &mut sink, scope)?;
                }
            }
        } else {
            for (key, value) in map {
                if left_out(key)
                    || !(rest.only.allows(Some(key), self.connection)
                        || rest
                            .only_patterns
                            .iter()
                            .any(|pattern| pattern.is_match(key)))
                {
                    continue;
                }
                let entry = Entry {
                    name: bucket_name(rest, key),
                    value,
                };
                self.pruned_entry(rest, owner, key, entry, &nested, &mut sink, scope)?;
            }
        }
        let shown = sink.shown;
        if !shown.is_empty() {
            self.note(|| format!("{} <- rest of {path}: {}", owner.label, shown.join(", ")));
        }
        Ok(())
    }

    /// The groups of keys of `list` whose conditions hold in `scope`.
    fn held(&mut self, list: &'a KeysWhen, scope: Scope<'a>) -> Vec<&'a KeySet> {
        list.0
            .iter()
            .filter(|(conditions, _)| conditions.iter().all(|c| self.tested(c, scope)))
            .map(|(_, keys)| keys)
            .collect()
    }

    /// Writes a bucketed member, without the members `except` names below it (`dotted`).
    #[allow(clippy::too_many_arguments)]
    fn pruned_entry(
        &mut self,
        rest: &'a Rest,
        owner: &'a Field,
        path: &str,
        entry: Entry<'a, 'a>,
        nested: &[&str],
        sink: &mut Sink<'_, 'a>,
        scope: Scope<'a>,
    ) -> Step<()> {
        let below: Vec<&str> = nested
            .iter()
            .filter_map(|name| name.strip_prefix(path)?.strip_prefix('.'))
            .collect();
        if below.is_empty() || !entry.value.is_object() {
            return self.rest_entry(rest, owner, entry, sink, scope);
        }
        let mut kept = entry.value.clone();
        for path in below {
            remove_path(&mut kept, path);
        }
        let entry = Entry {
            name: entry.name,
            value: &kept,
        };
        self.rest_entry(rest, owner, entry, sink, scope)
    }

    fn rest_entry<'v>(
        &mut self,
        rest: &'a Rest,
        owner: &'a Field,
        entry: Entry<'a, 'v>,
        sink: &mut Sink<'_, 'a>,
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
                        self.rest_entry(rest, owner, entry, sink, scope)?;
                    }
                    return Ok(());
                }
                Value::Array(items) if let Some((before, after)) = &flat.lists => {
                    for (i, value) in items.iter().enumerate() {
                        let name = Cow::Owned(format!("{name}{before}{i}{after}"));
                        let entry = Entry { name, value };
                        self.rest_entry(rest, owner, entry, sink, scope)?;
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        if rest.siblings.contains(&*name)
            || sink.taken.iter().any(|keys| keys.contains(&*name))
            || (value.is_null() && owner.keep_null == crate::compiled::KeepNull::No)
            || (owner.omit_empty && is_empty(value))
            || sink
                .written
                .as_ref()
                .is_some_and(|names| names.contains(&name))
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
        separate(sink.out, sink.first);
        write_str(sink.out, &name);
        sink.out.push(b':');
        write_value(sink.out, &value);
        if self.trace.is_some() {
            sink.shown.push(name.to_string());
        }
        if let Some(names) = sink.written.as_mut() {
            names.push(name);
        }
        Ok(())
    }
}

/// Where a bucket writes its members, and what it has written.
struct Sink<'s, 'a> {
    /// Names written beside the bucket for this event.
    taken: &'s [&'a KeySet],
    out: &'s mut Vec<u8>,
    first: &'s mut bool,
    written: &'s mut Written<'a>,
    /// The names written, for `--trace`.
    shown: Vec<String>,
}

/// One member a bucket may write: its output name and the value.
struct Entry<'a, 'v> {
    name: Cow<'a, str>,
    value: &'v Value,
}

/// A bucketed key's output name: the key, after the bucket's `prefix`.
fn bucket_name<'a>(rest: &Rest, key: &'a str) -> Cow<'a, str> {
    if rest.prefix.is_empty() {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(format!("{}{key}", rest.prefix))
    }
}

/// Whether a value `except: { path: ... }` selects names `key`: a text, a list of texts, or an
/// object's keys.
fn listed_in(names: &Value, key: &str) -> bool {
    match names {
        Value::Array(items) => items.iter().any(|item| item.as_str() == Some(key)),
        Value::Object(map) => map.contains_key(key),
        other => other.as_str() == Some(key),
    }
}

/// With `dotted`: every name `except` gives that reaches into a member (`address.city`).
fn nested_except<'n>(
    rest: &'n Rest,
    connection: &'n Connection,
    excepted: &'n [Cow<'_, Value>],
) -> Vec<&'n str> {
    let mut nested: Vec<&str> = rest.except_nested.iter().map(|name| &**name).collect();
    nested.extend(
        rest.except
            .sources()
            .filter_map(|source| connection.names_of(source))
            .flat_map(|list| list.ordered.iter().map(|name| &**name)),
    );
    for names in excepted {
        match &**names {
            Value::Array(items) => nested.extend(items.iter().filter_map(Value::as_str)),
            Value::Object(map) => nested.extend(map.keys().map(String::as_str)),
            Value::String(name) => nested.push(name),
            _ => {}
        }
    }
    nested.retain(|name| name.contains('.'));
    nested
}

/// The value at a dotted path in an object.
fn lookup<'v>(map: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut segments = path.split('.');
    let mut value = map.get(segments.next()?)?;
    for segment in segments {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// Removes the member at a dotted path below `value`, if there is one.
fn remove_path(value: &mut Value, path: &str) {
    let (parent, last) = match path.rsplit_once('.') {
        Some((parent, last)) => (Some(parent), last),
        None => (None, path),
    };
    let mut at = value;
    for segment in parent.into_iter().flat_map(|p| p.split('.')) {
        match at.get_mut(segment) {
            Some(inner) => at = inner,
            None => return,
        }
    }
    if let Value::Object(map) = at {
        map.remove(last);
    }
}
