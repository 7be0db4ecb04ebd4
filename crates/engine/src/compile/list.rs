//! Lists and entries: `each` (one entry per item of a list), `items` (one entry per field given,
//! where an entry with `each` adds every item), and `entries` (one member per entry of an
//! object, with a computed key).

use ferry_spec::model::{self, OneOrMany};
use ferry_spec::{DiagnosticKind, Target};

use crate::compiled::{Single, Source};
use crate::path::Path;

use super::field::Slot;
use super::{Compiler, Place, each_item};

impl Compiler<'_> {
    /// `each`: the other keys of the field shape each item; `alone` copies the items.
    pub(super) fn each(
        &mut self,
        place: &Place,
        key: &str,
        field: &model::Field,
        path: &str,
        alone: bool,
    ) -> Option<Source> {
        let pointer = &place.pointer;
        let path = self.path(&pointer.key("each"), path);
        if let Some(root) = path.as_ref().map(Path::root).filter(|r| r.is_scalar()) {
            self.problem(
                DiagnosticKind::Path,
                &pointer.key("each"),
                Target::Value,
                format!(
                    "`each` needs a path to a list; `{}` is one value",
                    root.as_str()
                ),
            );
            return None;
        }
        let filter = field
            .filter
            .as_deref()
            .map(|w| self.selector(&pointer.key("where"), w));
        let item_spec = item_of(field, alone);
        let item_place = Place {
            pointer: place.pointer.clone(),
            label: format!("{}[]", place.label),
        };
        let item = self.field(&item_place, key, &item_spec, Slot::ListEntry);
        Some(Source::Each {
            path: path?,
            item: Box::new(item?),
            filter,
            single: if field.single_as_list {
                Single::AsList
            } else if field.keep_single {
                Single::Alone
            } else {
                Single::Refused
            },
            sum: field.sum,
        })
    }

    /// `entries`: one member per entry of the first object the paths select, named by `key`
    /// (the entry's key by default) and shaped by the other keys of the field.
    pub(super) fn entries(
        &mut self,
        place: &Place,
        key: &str,
        field: &model::Field,
        given: &OneOrMany<String>,
        alone: bool,
    ) -> Option<Source> {
        let pointer = &place.pointer;
        let mut paths = Vec::new();
        for (at, text) in each_item(&pointer.key("entries"), given) {
            if let Some(path) = self.path(&at, text) {
                if path.is_query() || path.root().is_scalar() {
                    self.problem(
                        DiagnosticKind::Path,
                        &at,
                        Target::Value,
                        "`entries` needs a plain path to one object, without wildcards or filters",
                    );
                } else {
                    paths.push(path);
                }
            }
        }
        // `$key` reads the entry's key in `where` as well as in the fields.
        self.entries_depth += 1;
        let filter = field
            .filter
            .as_deref()
            .map(|w| self.selector(&pointer.key("where"), w));
        let mut item_spec = item_of(field, alone);
        item_spec.key.clone_from(&field.key);
        let item_place = Place {
            pointer: place.pointer.clone(),
            label: format!("{}.*", place.label),
        };
        let item = self.field(&item_place, key, &item_spec, Slot::Member);
        self.entries_depth -= 1;
        if paths.len() < given.as_slice().len() {
            return None;
        }
        Some(Source::Entries {
            paths,
            item: Box::new(item?),
            filter,
        })
    }

    /// `items`: one entry per field given.
    pub(super) fn items(&mut self, place: &Place, key: &str, items: &[model::Field]) -> Source {
        let mut compiled = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_place = Place {
                pointer: place.pointer.key("items").index(i),
                label: format!("{}[{i}]", place.label),
            };
            compiled.extend(self.field(&item_place, key, item, Slot::ListEntry));
        }
        Source::Items(compiled)
    }
}

/// What shapes each item of a list (or entry of an object): the field without the keys that
/// describe the container. Alone, the container's key copies the items.
fn item_of(field: &model::Field, alone: bool) -> model::Field {
    let item = model::Field {
        each: None,
        entries: None,
        when: None,
        filter: None,
        spread: false,
        key: None,
        default: None,
        required: model::Required::default(),
        omit_empty: false,
        single_as_list: false,
        keep_single: false,
        sum: false,
        keep_null: field.keep_null,
        ..field.clone()
    };
    if alone {
        model::Field {
            from: Some(OneOrMany::One("$".into())),
            ..item
        }
    } else {
        item
    }
}
