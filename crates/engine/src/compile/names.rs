//! The names an object's members are written under: two members that always write the same
//! name are refused when the mapping loads; where a name is only known per event (a computed
//! key, `entries`, a spread bucket) or two members left out by their `when` may share one, the
//! object tracks the names it writes so that the first one written wins and no JSON key is ever
//! written twice.

use std::sync::Arc;

use ferry_spec::{DiagnosticKind, Pointer, Target};

use crate::compiled::{Conditions, Field, Object, Rest, Source};

use super::Compiler;

/// A name an object's member is written under, known when the mapping compiles.
struct StaticName<'f> {
    name: &'f str,
    pointer: &'f Pointer,
    /// The `when`s that must hold for it to be written (its own, and its spread parents').
    conditions: Conditions,
}

impl Compiler<'_> {
    /// An object of `fields` and a bucket. Every bucket of the object, its own or a spread
    /// child's, leaves out every name the object writes that is known when it compiles (those
    /// written only under conditions, when these hold).
    pub(super) fn object_of(&mut self, mut fields: Vec<Field>, mut rest: Option<Rest>) -> Object {
        let mut names = Vec::new();
        let mut unknown = false;
        static_names(&fields, &Vec::new(), &mut names, &mut unknown);
        let mut conditional_duplicate = false;
        for (at, later) in names.iter().enumerate() {
            let Some(earlier) = names[..at].iter().find(|n| n.name == later.name) else {
                continue;
            };
            if earlier.conditions.is_empty() && later.conditions.is_empty() {
                let line = self
                    .document
                    .diagnostic(
                        DiagnosticKind::DuplicateName,
                        earlier.pointer,
                        Target::Key,
                        "",
                    )
                    .line;
                self.problem(
                    DiagnosticKind::DuplicateName,
                    later.pointer,
                    Target::Key,
                    format!(
                        "the member `{}` is written here and by the field at line {line}: a JSON object cannot hold a name twice",
                        later.name
                    ),
                )
                .help = Some(
                    "rename one of them, or give them `when` conditions so that each event writes one"
                        .into(),
                );
            } else {
                conditional_duplicate = true;
            }
        }
        let always: Vec<Box<str>> = names
            .iter()
            .filter(|n| n.conditions.is_empty())
            .map(|n| n.name.into())
            .collect();
        let sometimes: Vec<(Conditions, Box<str>)> = names
            .iter()
            .filter(|n| !n.conditions.is_empty())
            .map(|n| (n.conditions.clone(), n.name.into()))
            .collect();
        let mut rests = usize::from(rest.is_some());
        for field in &mut fields {
            if field.spread {
                spread_buckets(field, &always, &sometimes, &mut rests);
            }
        }
        if let Some(rest) = &mut rest {
            add_siblings(rest, &always, &sometimes);
        }
        Object {
            within: Vec::new(),
            fields,
            rest: rest.map(Box::new),
            dynamic: unknown || rests > 1 || conditional_duplicate,
        }
    }
}

/// The names written by `fields` that are known when they compile, spread children's included;
/// `unknown` is set when some are only known per event.
fn static_names<'f>(
    fields: &'f [Field],
    above: &Conditions,
    out: &mut Vec<StaticName<'f>>,
    unknown: &mut bool,
) {
    for field in fields {
        let mut conditions = above.clone();
        conditions.extend(field.when.iter().map(Arc::clone));
        match &field.source {
            Source::Object(object) if field.spread => {
                static_names(&object.fields, &conditions, out, unknown);
            }
            _ if field.spread || field.computed_key.is_some() => *unknown = true,
            _ => out.push(StaticName {
                name: &field.key,
                pointer: &field.pointer,
                conditions,
            }),
        }
    }
}

/// Adds the object's names to the buckets of a spread child (and of its spread children),
/// counting them.
fn spread_buckets(
    field: &mut Field,
    always: &[Box<str>],
    sometimes: &[(Conditions, Box<str>)],
    rests: &mut usize,
) {
    if let Source::Object(object) = &mut field.source {
        if let Some(rest) = &mut object.rest {
            add_siblings(rest, always, sometimes);
            *rests += 1;
        }
        for child in &mut object.fields {
            if child.spread {
                spread_buckets(child, always, sometimes, rests);
            }
        }
    }
}

fn add_siblings(rest: &mut Rest, always: &[Box<str>], sometimes: &[(Conditions, Box<str>)]) {
    rest.siblings.extend(always.iter().cloned());
    for (conditions, name) in sometimes {
        rest.siblings_when.insert(conditions, name.clone());
    }
    rest.siblings_when.remove_all_of(&rest.siblings);
}
