//! Objects and their buckets: `fields` (a group's first), `rest_of` with its fallback paths, and
//! which keys of a bucket's object the other fields of the request read, so that the bucket
//! leaves them out. A read by a field written only when its `when` holds hides its key only
//! for the events that `when` holds for.

use std::sync::Arc;

use ferry_spec::model::{self, OneOrMany};
use ferry_spec::{DiagnosticKind, Pointer, Target};

use crate::compiled::{
    CompiledAction, CompiledRequest, Conditions, Field, Flattening, KeySet, KeysWhen, Looseness,
    Names, Object, Rest, Selector, Source,
};
use crate::path::{Path, Root, Segment};

use super::field::Slot;
use super::{Compiler, Place, each_item};

impl Compiler<'_> {
    /// An object: the group's fields, then its own (which replace the group's of the same
    /// name), then the bucket.
    pub(super) fn object(&mut self, place: &Place, field: &model::Field) -> Option<Object> {
        let pointer = &place.pointer;
        let mut fields = match &field.group {
            Some(name) => self.group_fields(&pointer.key("group"), place, name)?,
            None => Vec::new(),
        };
        if let Some(own) = &field.fields {
            let parent = Place {
                pointer: pointer.key("fields"),
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
            Some(paths) => Some(self.rest(place, field, paths)?),
            None => None,
        };
        let mut object = self.object_of(fields, rest);
        if let Some(within) = &field.within {
            for (at, text) in each_item(&pointer.key("within"), within) {
                let path = self.path(&at, text)?;
                if path.is_query() || path.root().is_scalar() {
                    self.problem(
                        DiagnosticKind::Path,
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
        place: &Place,
        field: &model::Field,
        paths: &OneOrMany<String>,
    ) -> Option<Rest> {
        let pointer = &place.pointer;
        let mut compiled = Vec::new();
        for (at, text) in each_item(&pointer.key("rest_of"), paths) {
            let path = self.path(&at, text)?;
            if path.is_query() || path.root().is_scalar() {
                self.problem(
                    DiagnosticKind::Path,
                    &at,
                    Target::Value,
                    "`rest_of` needs a plain path to one object, without wildcards or filters",
                );
                return None;
            }
            compiled.push(path);
        }
        // Patterns in `only` allow the keys they match, beside the names listed.
        let mut only_patterns = Vec::new();
        let only = match &field.only {
            Some(model::Names::Many(items)) => {
                let at = pointer.key("only");
                let mut listed = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        model::NameItem::Pattern(names) => {
                            let at = at.index(i).key("matches");
                            only_patterns.extend(self.regex(&at, &names.matches));
                        }
                        other => listed.push(other.clone()),
                    }
                }
                self.names(&at, &model::Names::Many(listed), Looseness::default())
            }
            Some(names) => self.names(&pointer.key("only"), names, Looseness::default()),
            None => Names::Any,
        };
        // Keys written in the mapping are left out once, when it compiles; those the settings
        // listed beside them hold, per connection; those event values list, per event; those a
        // pattern matches, by the pattern compiled here.
        let mut except_paths = Vec::new();
        let mut except_patterns = Vec::new();
        let mut except_nested = Vec::new();
        let (consumed, except) = match &field.except {
            Some(model::Names::One(one)) if field.dotted && one.contains('.') => {
                except_nested.push(one.as_str().into());
                (Vec::new(), Names::Any)
            }
            Some(model::Names::One(one)) => (vec![one.as_str().into()], Names::Any),
            Some(model::Names::Many(items)) => {
                let at = pointer.key("except");
                let mut written = Vec::new();
                let mut settings = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        model::NameItem::Name(name) if field.dotted && name.contains('.') => {
                            except_nested.push(name.as_str().into());
                        }
                        model::NameItem::Name(name) => written.push(name.as_str().into()),
                        model::NameItem::Setting(reference) => {
                            settings.extend(self.name_source(&at.index(i), reference));
                        }
                        model::NameItem::Path(names) => {
                            except_paths.extend(self.path(&at.index(i).key("path"), &names.path));
                        }
                        model::NameItem::Pattern(names) => {
                            let at = at.index(i).key("matches");
                            except_patterns.extend(self.regex(&at, &names.matches));
                        }
                    }
                }
                let except = if settings.is_empty() {
                    Names::Any
                } else {
                    Names::Listed {
                        names: Vec::new(),
                        settings,
                        loose: Looseness::default(),
                    }
                };
                (written, except)
            }
            Some(names @ model::Names::Setting(_)) => (
                Vec::new(),
                self.names(&pointer.key("except"), names, Looseness::default()),
            ),
            None => (Vec::new(), Names::Any),
        };
        let flatten = self.flattening(&pointer.key("flatten"), &field.flatten);
        Some(Rest {
            paths: compiled,
            consumed: consumed.into_iter().collect(),
            consumed_when: KeysWhen::default(),
            named: Vec::new(),
            siblings: KeySet::default(),
            siblings_when: KeysWhen::default(),
            prefix: field.prefix.as_deref().unwrap_or("").into(),
            flatten,
            only,
            except,
            except_paths,
            except_patterns,
            only_patterns,
            dotted: field.dotted,
            except_nested,
        })
    }
}

impl Compiler<'_> {
    /// A bucket's `flatten`: its separator, and how list items are keyed when they are
    /// flattened.
    fn flattening(&mut self, pointer: &Pointer, flatten: &model::Flatten) -> Option<Flattening> {
        let rule = match flatten {
            model::Flatten::Flag(false) => return None,
            model::Flatten::Flag(true) => {
                return Some(Flattening {
                    separator: "_".into(),
                    lists: None,
                });
            }
            model::Flatten::Rule(rule) => rule,
        };
        let separator = rule.separator.as_deref().unwrap_or("_");
        if separator.is_empty() {
            self.problem(
                DiagnosticKind::Field,
                &pointer.key("separator"),
                Target::Value,
                "an empty `separator` would run a parent's key and its child's together",
            )
            .help = Some("write the text that joins them, e.g. `separator: \".\"`, or leave `separator` out for `_`".into());
        }
        let lists = rule.lists.as_deref().and_then(|pattern| {
            let why = match pattern.split_once("{i}") {
                None => "it has no `{i}` to write the index with",
                Some((_, after)) if after.contains("{i}") => "it writes the index twice",
                Some(("", "")) => "an index alone would run into the list's key (`items0`)",
                Some((before, after)) => return Some((before.into(), after.into())),
            };
            self.problem(
                DiagnosticKind::Field,
                &pointer.key("lists"),
                Target::Value,
                format!("`lists: {pattern:?}` cannot key a list's items: {why}"),
            )
            .help = Some(
                "write where the index goes, e.g. `lists: \"[{i}]\"` for `items[0]` or `lists: \"_{i}\"` for `tags_0`"
                    .into(),
            );
            None
        });
        Some(Flattening {
            separator: separator.into(),
            lists,
        })
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
            .flat_map(Selector::statuses)
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
    /// The `when`s (in the scope of the reads' list) that must hold for the read to happen.
    conditions: Conditions,
}

/// How reads are collected below a field.
#[derive(Clone, Default)]
struct Context {
    /// The `when`s above, in the scope reads are collected for.
    conditions: Conditions,
    /// Below a change of scope (`within`, `each`, `entries`): `when`s there are evaluated in
    /// another scope, so they no longer make reads conditional.
    bounded: bool,
}

impl Context {
    fn under(&self, field: &Field) -> Context {
        let mut inner = self.clone();
        if let (Some(when), false) = (&field.when, self.bounded) {
            inner.conditions.push(Arc::clone(when));
        }
        inner
    }

    fn bounded(&self) -> Context {
        Context {
            conditions: self.conditions.clone(),
            bounded: true,
        }
    }
}

fn settle_buckets(request: &mut CompiledRequest, dedupe_key: Option<&Field>) {
    let mut read: Vec<Read> = Vec::new();
    let top = Context::default();
    for field in request
        .query
        .iter()
        .chain(request.body.iter().flat_map(|b| &b.fields))
        .chain(dedupe_key)
    {
        collect_reads(field, &top, &mut read);
    }
    let templates = request
        .headers
        .iter()
        .map(|h| &h.value)
        .chain(std::iter::once(&request.path));
    for template in templates {
        read.extend(template.event_paths().map(|keys| Read {
            root: Root::Scope,
            keys: keys.to_vec(),
            named: None,
            conditions: Vec::new(),
        }));
    }
    // At the top of a request the scope is the event.
    for r in &mut read {
        if r.root == Root::Scope {
            r.root = Root::Event;
        }
    }
    let event = read.clone();
    for field in request.body.iter_mut().flat_map(|b| &mut b.fields) {
        mark_rests(field, &read, &event);
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

/// Whether a read from `root` can hide keys of the event's buckets.
fn reads_event(root: Root) -> bool {
    matches!(root, Root::Scope | Root::Event)
}

/// The values `field` reads: in its scope, and from the whole event (`$event`). Inside `each`
/// and `entries`, only the reads of the whole event are kept: the others read the item.
fn collect_reads(field: &Field, context: &Context, out: &mut Vec<Read>) {
    let context = context.under(field);
    let push = |path: &Path, named: Option<&Path>, out: &mut Vec<Read>| {
        if reads_event(path.root())
            && let Some(keys) = keys(path)
        {
            out.push(Read {
                root: path.root(),
                keys,
                named: named.cloned(),
                conditions: context.conditions.clone(),
            });
        }
    };
    if let Some(key) = &field.computed_key {
        collect_reads(key, &context, out);
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
            conditions: context.conditions.clone(),
        })),
        Source::Object(object) if object.within.is_empty() => {
            for f in &object.fields {
                collect_reads(f, &context, out);
            }
        }
        // Inside `within`, `$` is the object there: what its fields read, read under it.
        Source::Object(object) => {
            let mut inner = Vec::new();
            for f in &object.fields {
                collect_reads(f, &context.bounded(), &mut inner);
            }
            for path in &object.within {
                push(path, None, out);
                let Some(prefix) = keys(path) else { continue };
                for read in &inner {
                    out.push(match read.root {
                        Root::Scope => Read {
                            root: path.root(),
                            keys: prefix.iter().chain(&read.keys).cloned().collect(),
                            ..read.clone()
                        },
                        _ => read.clone(),
                    });
                }
            }
        }
        Source::Items(fields) => {
            for f in fields {
                collect_reads(f, &context, out);
            }
        }
        // Paths inside `each` and `entries` are relative to the item; the list itself, and what
        // the items read of the whole event, count as read.
        Source::Each { path, item, .. } => {
            push(path, None, out);
            collect_event_reads(item, &context, out);
        }
        Source::Entries { paths, item, .. } => {
            for path in paths {
                push(path, None, out);
            }
            collect_event_reads(item, &context, out);
        }
        // Responses, settings, the clock and setting-chosen paths are not known to read the
        // event's bucketed keys.
        Source::Recall(_)
        | Source::Value(_)
        | Source::Setting(_)
        | Source::SettingTemplate(_)
        | Source::Now
        | Source::Response { .. }
        | Source::SettingPath(_) => {}
    }
}

fn collect_event_reads(item: &Field, context: &Context, out: &mut Vec<Read>) {
    let mut inner = Vec::new();
    collect_reads(item, &context.bounded(), &mut inner);
    out.extend(inner.into_iter().filter(|r| r.root == Root::Event));
}

/// The reads of the whole event as seen from another scope: their conditions were written for
/// the event's scope, so there they hide their keys whatever the conditions.
fn unconditional(reads: &[Read]) -> Vec<Read> {
    reads
        .iter()
        .map(|r| Read {
            conditions: Vec::new(),
            ..r.clone()
        })
        .collect()
}

/// Leaves out of every bucket under `field` the keys read in its scope (`scope`) or of the whole
/// event (`event`).
fn mark_rests(field: &mut Field, scope: &[Read], event: &[Read]) {
    match &mut field.source {
        Source::Each { item, .. } | Source::Entries { item, .. } => {
            // Inside, `$` is the item: its bucket leaves out what the item's own fields read.
            let mut item_reads = Vec::new();
            collect_reads(item, &Context::default(), &mut item_reads);
            item_reads.retain(|r| r.root == Root::Scope);
            mark_rests(item, &item_reads, &unconditional(event));
        }
        Source::Object(object) if !object.within.is_empty() => {
            // Inside, `$` is the object `within` selects: its bucket leaves out what the
            // object's own fields read.
            let mut inner = Vec::new();
            for f in &object.fields {
                collect_reads(f, &Context::default(), &mut inner);
            }
            inner.retain(|r| r.root == Root::Scope);
            let event = unconditional(event);
            if let Some(rest) = &mut object.rest {
                consume(rest, &inner, &event);
            }
            for f in &mut object.fields {
                mark_rests(f, &inner, &event);
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
                    let key = read.keys[prefix.len()].clone();
                    if read.conditions.is_empty() {
                        rest.consumed.insert(key);
                    } else {
                        rest.consumed_when.insert(&read.conditions, key);
                    }
                }
                _ => {}
            }
        }
    }
    // A key hidden whatever happens needs no condition.
    rest.consumed_when.remove_all_of(&rest.consumed);
}
