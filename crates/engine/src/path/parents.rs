//! The parents of a mapping's event paths (`$.context.traits` of `$.context.traits.email`),
//! each walked at most once per event. Mappings read many members of a few objects, often as
//! fallbacks (`[$.traits.email, $.context.traits.email]`); walking the event from its root for
//! each of them would repeat the same key searches.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;

use serde_json::Value;

use super::{Kind, Path, Root, Segment, walk};

/// Which parent a path reads under, among those of its mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParentId(usize);

/// Gives the paths of one mapping their parents' ids as it compiles.
#[derive(Default)]
pub(crate) struct ParentIds {
    ids: HashMap<Box<[Segment]>, usize>,
}

impl ParentIds {
    /// Notes the parent of `path` when it is a plain path of two steps or more from the event,
    /// or from the scope (the event, but inside `each`, `entries` and `within`).
    pub(crate) fn assign(&mut self, path: &mut Path) {
        if !matches!(path.root, Root::Scope | Root::Event) {
            return;
        }
        let Kind::Plain(segments) = &path.kind else {
            return;
        };
        let Some((_, parent)) = segments.split_last() else {
            return;
        };
        if parent.is_empty() {
            return;
        }
        let next = self.ids.len();
        let id = *self.ids.entry(parent.into()).or_insert(next);
        path.parent = Some(ParentId(id));
    }

    /// How many parents the mapping's paths have.
    pub(crate) fn count(&self) -> usize {
        self.ids.len()
    }
}

/// One event's parents, each walked when a path first reads under it.
pub(crate) struct Parents<'e> {
    event: &'e Value,
    walked: Box<[Cell<Walked<'e>>]>,
}

#[derive(Clone, Copy)]
enum Walked<'e> {
    Not,
    Missing,
    At(&'e Value),
}

/// Reading through an event's parents, behind a trait object so that a holder of one can be
/// lent for a shorter time (a `Cell` of borrowed values could not).
pub(crate) trait ReadParents {
    /// The value at `path` in `root`: read under the path's parent, walked once per event, when
    /// `root` is the event and the path has a parent; walked by the path itself otherwise.
    fn get<'r>(&'r self, path: &Path, root: &'r Value) -> Option<Cow<'r, Value>>;
}

impl ReadParents for Parents<'_> {
    fn get<'r>(&'r self, path: &Path, root: &'r Value) -> Option<Cow<'r, Value>> {
        match self.under_parent(path, root) {
            Under::Found(value) => Some(Cow::Borrowed(value)),
            Under::Missing => None,
            Under::NotKept => path.get(root),
        }
    }
}

/// What reading a path under its parent gives.
enum Under<'e> {
    Found(&'e Value),
    Missing,
    /// The path has no parent, or reads another document than the event.
    NotKept,
}

impl<'e> Parents<'e> {
    /// The parents of `event`, for a mapping whose paths have `count` of them.
    pub(crate) fn new(event: &'e Value, count: usize) -> Parents<'e> {
        Parents {
            event,
            walked: (0..count).map(|_| Cell::new(Walked::Not)).collect(),
        }
    }

    fn under_parent(&self, path: &Path, root: &Value) -> Under<'e> {
        let (Some(ParentId(id)), Kind::Plain(segments)) = (path.parent, &path.kind) else {
            return Under::NotKept;
        };
        let (Some(cell), Some((last, parent))) = (self.walked.get(id), segments.split_last())
        else {
            return Under::NotKept;
        };
        if !std::ptr::eq(root, self.event) {
            return Under::NotKept;
        }
        let found = match cell.get() {
            Walked::At(value) => Some(value),
            Walked::Missing => None,
            Walked::Not => {
                let found = walk(self.event, parent);
                cell.set(found.map_or(Walked::Missing, Walked::At));
                found
            }
        };
        match found.and_then(|node| walk(node, std::slice::from_ref(last))) {
            Some(value) => Under::Found(value),
            None => Under::Missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn compiled(ids: &mut ParentIds, text: &str) -> Path {
        let mut path = Path::parse(text).unwrap();
        ids.assign(&mut path);
        path
    }

    #[test]
    fn paths_under_one_parent_read_what_their_own_walk_reads() {
        let mut ids = ParentIds::default();
        let texts = [
            "$.context.traits.email",
            "$.context.traits.phone",
            "$event.context.traits.email",
            "$.context.page",
            "$.traits.email",
            "$.traits.address.city",
            "$.missing.email",
            "$.userId",
            "$.products[1].sku",
            "$.products[*].sku",
            "$item.context.traits.email",
        ];
        let paths: Vec<Path> = texts.iter().map(|t| compiled(&mut ids, t)).collect();
        assert_eq!(
            ids.count(),
            6,
            "context.traits, context, traits, traits.address, missing, products[1]"
        );
        let event = json!({
            "userId": "u1",
            "traits": { "email": "t@x.com", "address": { "city": "Oslo" } },
            "context": { "traits": { "email": "c@x.com" }, "page": { "url": "/" } },
            "products": [{ "sku": "a" }, { "sku": "b" }]
        });
        let other = json!({ "context": { "traits": { "email": "other@x.com" } } });
        for _ in 0..2 {
            let parents = Parents::new(&event, ids.count());
            for path in &paths {
                let kept = !matches!(parents.under_parent(path, &event), Under::NotKept);
                assert_eq!(kept, path.parent.is_some(), "{path}");
                assert_eq!(parents.get(path, &event), path.get(&event), "{path}");
                // Another document than the event is never read through the event's parents.
                assert!(
                    matches!(parents.under_parent(path, &other), Under::NotKept),
                    "{path}"
                );
                assert_eq!(parents.get(path, &other), path.get(&other), "{path}");
            }
        }
        assert!(paths[9].parent.is_none(), "a query walks itself");
        assert!(paths[10].parent.is_none(), "`$item` is not the event");
    }
}
