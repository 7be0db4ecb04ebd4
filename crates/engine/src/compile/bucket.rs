//! Objects and their buckets: `fields` (a group's first), `rest_of` with its fallback paths, and
//! which keys of a bucket's object the other fields of the request read, so that the bucket
//! leaves them out.

use ferry_spec::Target;
use ferry_spec::model::{self, OneOrMany};

use crate::compiled::{CompiledAction, CompiledRequest, Field, Names, Object, Rest, Source};
use crate::path::{Path, Root, Segment};

use super::field::Slot;
use super::{Compiler, Place, list_pointer};

impl Compiler<'_> {
    /// An object: the group's fields, then its own (which replace the group's of the same
    /// name), then the bucket.
    pub(super) fn object(&mut self, place: &Place, field: &model::Field) -> Option<Object> {
        let pointer = place.pointer.as_str();
        let mut fields = match &field.group {
            Some(name) => self.group_fields(&format!("{pointer}/group"), place, name)?,
            None => Vec::new(),
        };
        if let Some(own) = &field.fields {
            let parent = Place {
                pointer: format!("{pointer}/fields"),
                label: place.label.clone(),
            };
            for compiled in self.fields(&parent, own, ".", Slot::Member) {
                match fields.iter().position(|f| f.key == compiled.key) {
                    Some(at) => fields[at] = compiled,
                    None => fields.push(compiled),
                }
            }
        }
        let rest = match &field.rest_of {
            Some(paths) => Some(self.rest(pointer, field, paths, &fields)?),
            None => None,
        };
        let mut object = object_of(fields, rest);
        if let Some(within) = &field.within {
            for (i, text) in within.as_slice().iter().enumerate() {
                let at = list_pointer(&format!("{pointer}/within"), within, i);
                let path = self.path(&at, text)?;
                if path.is_query() || path.root() == Root::Key {
                    self.problem(
                        &at,
                        Target::Value,
                        "`within` needs a plain path to one object, without wildcards or filters",
                    );
                    return None;
                }
                object.within.push(path);
            }
        }
        Some(object)
    }

    fn rest(
        &mut self,
        pointer: &str,
        field: &model::Field,
        paths: &OneOrMany<String>,
        fields: &[Field],
    ) -> Option<Rest> {
        let mut compiled = Vec::new();
        for (i, text) in paths.as_slice().iter().enumerate() {
            let at = list_pointer(&format!("{pointer}/rest_of"), paths, i);
            let path = self.path(&at, text)?;
            if path.is_query() || path.root() == Root::Key {
                self.problem(
                    &at,
                    Target::Value,
                    "`rest_of` needs a plain path to one object, without wildcards or filters",
                );
                return None;
            }
            compiled.push(path);
        }
        let only = match &field.only {
            Some(names) => self.names(&format!("{pointer}/only"), names, false),
            None => Names::Any,
        };
        Some(Rest {
            paths: compiled,
            consumed: field.except.iter().map(|k| k.as_str().into()).collect(),
            named: Vec::new(),
            siblings: fields.iter().map(|f| f.key.clone()).collect(),
            prefix: field.prefix.as_deref().unwrap_or("").into(),
            flatten: field.flatten,
            only,
        })
    }
}

/// An object of `fields` and a bucket. Every bucket of the object, its own or a spread child's,
/// leaves out every name the object writes that is known when it compiles; names are tracked
/// per event only when some are not known (computed keys, spread `entries`) or when two buckets
/// could write the same one.
pub(super) fn object_of(mut fields: Vec<Field>, mut rest: Option<Rest>) -> Object {
    let mut names = Vec::new();
    static_names(&fields, &mut names);
    let mut rests = usize::from(rest.is_some());
    let mut unknown = false;
    for field in &mut fields {
        if field.computed_key.is_some() {
            unknown = true;
        }
        if field.spread {
            spread_buckets(field, &names, &mut rests, &mut unknown);
        }
    }
    if let Some(rest) = &mut rest {
        rest.siblings.extend(names.iter().cloned());
    }
    Object {
        within: Vec::new(),
        fields,
        rest,
        dynamic: unknown || rests > 1,
    }
}

/// The names written by `fields` that are known when they compile, spread children's included.
fn static_names(fields: &[Field], out: &mut Vec<Box<str>>) {
    for field in fields {
        match &field.source {
            Source::Object(object) if field.spread => static_names(&object.fields, out),
            _ if field.spread || field.computed_key.is_some() => {}
            _ => out.push(field.key.clone()),
        }
    }
}

/// Counts the buckets of a spread child (and its spread children), adding `names` to each, and
/// notes names only known per event.
fn spread_buckets(field: &mut Field, names: &[Box<str>], rests: &mut usize, unknown: &mut bool) {
    match &mut field.source {
        Source::Object(object) => {
            if let Some(rest) = &mut object.rest {
                rest.siblings.extend(names.iter().cloned());
                *rests += 1;
            }
            for child in &mut object.fields {
                if child.computed_key.is_some() {
                    *unknown = true;
                }
                if child.spread {
                    spread_buckets(child, names, rests, unknown);
                }
            }
        }
        _ => *unknown = true,
    }
}

/// Marks the keys of each `rest_of` object that other fields of the same request read, and
/// notes which non-2xx statuses of each step a later step handles.
pub(super) fn settle_steps(action: &mut CompiledAction) {
    for step in &mut action.steps {
        settle_buckets(&mut step.request, action.dedupe_key.as_ref());
    }
    for i in 0..action.steps.len() {
        let mut handled: Vec<u16> = action.steps[i + 1..]
            .iter()
            .filter_map(|later| later.when.as_ref())
            .filter(|when| when.response == Some(i))
            .flat_map(|when| when.statuses.iter().copied())
            .filter(|status| !(200..300).contains(status))
            .collect();
        handled.sort_unstable();
        handled.dedup();
        action.steps[i].handled = handled;
    }
}

/// A value some field reads: the keys of a plain path, from the scope or the whole event.
#[derive(Debug, Clone)]
struct Read {
    root: Root,
    keys: Vec<Box<str>>,
    /// With `member`: the path whose text names the member read under `keys`.
    named: Option<Path>,
}

fn settle_buckets(request: &mut CompiledRequest, dedupe_key: Option<&Field>) {
    let mut read: Vec<Read> = Vec::new();
    let mut collect = |field: &Field| collect_reads(field, &mut read);
    request.query.iter().for_each(&mut collect);
    request
        .body
        .iter()
        .flat_map(|b| &b.fields)
        .for_each(&mut collect);
    if let Some(f) = dedupe_key {
        collect(f);
    }
    let templates = request
        .headers
        .iter()
        .map(|(_, t)| t)
        .chain(std::iter::once(&request.path));
    for template in templates {
        read.extend(template.event_paths().map(|keys| Read {
            root: Root::Scope,
            keys: keys.to_vec(),
            named: None,
        }));
    }
    // At the top of a request the scope is the event.
    for r in &mut read {
        r.root = Root::Event;
    }
    for field in request.body.iter_mut().flat_map(|b| &mut b.fields) {
        mark_rests(field, &read, &read);
    }
}

fn keys(path: &Path) -> Option<Vec<Box<str>>> {
    path.segments().map(|segments| {
        segments
            .iter()
            .map_while(|s| match s {
                Segment::Key(k) => Some(k.clone()),
                Segment::Index(_) => None,
            })
            .collect()
    })
}

/// The values `field` reads: in its scope, and from the whole event (`$event`). Inside `each`
/// and `entries`, only the reads of the whole event are kept: the others read the item.
fn collect_reads(field: &Field, out: &mut Vec<Read>) {
    let push = |path: &Path, named: Option<&Path>, out: &mut Vec<Read>| {
        if path.root() != Root::Key
            && let Some(keys) = keys(path)
        {
            out.push(Read {
                root: path.root(),
                keys,
                named: named.cloned(),
            });
        }
    };
    if let Some(key) = &field.computed_key {
        collect_reads(key, out);
    }
    match &field.source {
        Source::Paths { paths, member, .. } => {
            for path in paths {
                push(path, None, out);
                if let Some(member) = member {
                    push(path, Some(member), out);
                }
            }
            if let Some(member) = member {
                push(member, None, out);
            }
        }
        Source::Template(template) => out.extend(template.event_paths().map(|keys| Read {
            root: Root::Scope,
            keys: keys.to_vec(),
            named: None,
        })),
        Source::Object(object) if object.within.is_empty() => {
            for f in &object.fields {
                collect_reads(f, out);
            }
        }
        // Inside `within`, `$` is the object there: what its fields read, read under it.
        Source::Object(object) => {
            let mut inner = Vec::new();
            for f in &object.fields {
                collect_reads(f, &mut inner);
            }
            for path in &object.within {
                push(path, None, out);
                let Some(prefix) = keys(path) else { continue };
                for read in &inner {
                    out.push(match read.root {
                        Root::Scope => Read {
                            root: path.root(),
                            keys: prefix.iter().chain(&read.keys).cloned().collect(),
                            named: read.named.clone(),
                        },
                        _ => read.clone(),
                    });
                }
            }
        }
        Source::Items(fields) => {
            for f in fields {
                collect_reads(f, out);
            }
        }
        // Paths inside `each` and `entries` are relative to the item; the list itself, and what
        // the items read of the whole event, count as read.
        Source::Each { path, item, .. } => {
            push(path, None, out);
            collect_event_reads(item, out);
        }
        Source::Entries { paths, item, .. } => {
            for path in paths {
                push(path, None, out);
            }
            collect_event_reads(item, out);
        }
        // Responses and setting-chosen paths are not known to read the event's bucketed keys.
        Source::Recall(_)
        | Source::Value(_)
        | Source::Setting(_)
        | Source::Response { .. }
        | Source::SettingPath(_) => {}
    }
}

fn collect_event_reads(item: &Field, out: &mut Vec<Read>) {
    let mut inner = Vec::new();
    collect_reads(item, &mut inner);
    out.extend(inner.into_iter().filter(|r| r.root == Root::Event));
}

/// Leaves out of every bucket under `field` the keys read in its scope (`scope`) or of the whole
/// event (`event`).
fn mark_rests(field: &mut Field, scope: &[Read], event: &[Read]) {
    match &mut field.source {
        Source::Each { item, .. } | Source::Entries { item, .. } => {
            // Inside, `$` is the item: its bucket leaves out what the item's own fields read.
            let mut item_reads = Vec::new();
            collect_reads(item, &mut item_reads);
            item_reads.retain(|r| r.root == Root::Scope);
            mark_rests(item, &item_reads, event);
        }
        Source::Object(object) if !object.within.is_empty() => {
            // Inside, `$` is the object `within` selects: its bucket leaves out what the
            // object's own fields read.
            let mut inner = Vec::new();
            for f in &object.fields {
                collect_reads(f, &mut inner);
            }
            inner.retain(|r| r.root == Root::Scope);
            if let Some(rest) = &mut object.rest {
                consume(rest, &inner, event);
            }
            for f in &mut object.fields {
                mark_rests(f, &inner, event);
            }
        }
        Source::Object(object) => {
            if let Some(rest) = &mut object.rest {
                consume(rest, scope, event);
            }
            for f in &mut object.fields {
                mark_rests(f, scope, event);
            }
        }
        Source::Items(fields) => {
            for f in fields {
                mark_rests(f, scope, event);
            }
        }
        _ => {}
    }
}

fn consume(rest: &mut Rest, scope: &[Read], event: &[Read]) {
    for path in &rest.paths {
        let reads = if path.root() == Root::Event {
            event
        } else {
            scope
        };
        let Some(prefix) = keys(path) else { continue };
        if prefix.len() != path.segments().map_or(0, <[Segment]>::len) {
            continue;
        }
        for read in reads {
            if read.keys.len() < prefix.len() || read.keys[..prefix.len()] != prefix[..] {
                continue;
            }
            match &read.named {
                Some(named) if read.keys.len() == prefix.len() => rest.named.push(named.clone()),
                None if read.keys.len() > prefix.len() => {
                    rest.consumed.insert(read.keys[prefix.len()].clone());
                }
                _ => {}
            }
        }
    }
}
