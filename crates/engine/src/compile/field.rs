//! Fields: which source a field has, the keys every field may carry (`when`, `key`, `spread`,
//! missing-value rules, operations, `must_be`), and the dispatch to the modules that compile
//! each kind of source (`source.rs`, `bucket.rs` for objects, `list.rs` for lists and entries).

use ferry_spec::model;
use ferry_spec::{Target, did_you_mean};
use serde_json::Value;

use crate::compiled::{Field, Source};

use super::{Compiler, Place};

/// Where a field sits, which decides what it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// A member of a JSON object: anything.
    Member,
    /// A query parameter, form field or dedupe key: one value, no object or list.
    Flat,
    /// An entry of an `items` list: no name of its own, so no `key` or `spread`.
    ListEntry,
}

/// The keys that give a field its value.
const SOURCES: &[&str] = &[
    "from",
    "from_setting",
    "value",
    "template",
    "setting",
    "fields",
    "group",
    "rest_of",
    "items",
    "each",
    "entries",
    "recall",
];

impl Compiler<'_> {
    pub(super) fn fields(
        &mut self,
        parent: &Place,
        fields: &model::Ordered<model::Field>,
        separator: &str,
        slot: Slot,
    ) -> Vec<Field> {
        fields
            .iter()
            .filter_map(|(key, field)| {
                let place = parent.child(key, separator);
                self.field(&place, key, field, slot)
            })
            .collect()
    }

    /// Compiles one field.
    pub(super) fn field(
        &mut self,
        place: &Place,
        key: &str,
        field: &model::Field,
        slot: Slot,
    ) -> Option<Field> {
        let pointer = place.pointer.as_str();
        let given: Vec<&str> = SOURCES
            .iter()
            .copied()
            .filter(|name| is_given(field, name))
            .collect();
        if given.is_empty() {
            if let Some(response) = &field.response {
                self.problem(
                    &format!("{pointer}/response"),
                    Target::Value,
                    "`response` names the step whose response `from` reads, and this field has no `from`",
                )
                .help = Some(if response.starts_with('$') {
                    format!("write `{{ response: STEP, from: \"{response}\" }}`")
                } else {
                    format!("add the path: `{{ response: {response}, from: $.body... }}`")
                });
            } else {
                self.problem(
                    pointer,
                    Target::Key,
                    format!("field `{}` has no source", place.label),
                )
                .help = Some(format!(
                    "give one of {}",
                    SOURCES
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            return None;
        }
        // `each` and `entries` describe the container; the other keys describe each item.
        let per_item: Vec<&str> = given
            .iter()
            .copied()
            .filter(|g| !matches!(*g, "each" | "entries"))
            .collect();
        let object_keys = per_item
            .iter()
            .all(|g| matches!(*g, "fields" | "group" | "rest_of"));
        let combinable = (per_item.len() <= 1
            || matches!(per_item.as_slice(), ["from", "recall"])
            || object_keys)
            && !(given.contains(&"each") && given.contains(&"entries"));
        if !combinable {
            let list = given
                .iter()
                .map(|g| format!("`{g}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.problem(pointer, Target::Key, format!("field `{}` has several sources: {list}", place.label))
                .help = Some("a field takes one source; `from` may add `recall` as a fallback, and `fields`, `group` and `rest_of` may make one object together".into());
            return None;
        }
        self.check_companions(pointer, field, &given);
        let errors_before = self.problems.len();
        let when = field
            .when
            .as_ref()
            .map(|w| self.selector(&format!("{pointer}/when"), w));
        let computed_key = self.naming(place, field, slot, object_keys, &given);
        let source = self.source(place, key, field, &given, slot, object_keys)?;
        // With `each` and `entries`, the operations belong to the items and were compiled there.
        let ops = if matches!(source, Source::Each { .. } | Source::Entries { .. }) {
            Vec::new()
        } else {
            self.operations(pointer, field)
        };
        if self.problems.len() > errors_before {
            return None;
        }
        let mut compiled = Self::field_shell(place, key, field);
        compiled.source = source;
        compiled.ops = ops;
        compiled.when = when;
        compiled.computed_key = computed_key;
        if matches!(
            compiled.source,
            Source::Each { .. } | Source::Entries { .. }
        ) {
            compiled.must_be = None;
        }
        Some(compiled)
    }

    /// The compiled source of a field, by the source keys `given`.
    fn source(
        &mut self,
        place: &Place,
        key: &str,
        field: &model::Field,
        given: &[&str],
        slot: Slot,
        object_keys: bool,
    ) -> Option<Source> {
        let pointer = place.pointer.as_str();
        Some(if given.contains(&"each") {
            if slot == Slot::Flat {
                return self.not_single(place, "`each` makes a list");
            }
            self.each(place, key, field, given.len() == 1)?
        } else if given.contains(&"entries") {
            if slot == Slot::Flat {
                return self.not_single(place, "`entries` makes an object");
            }
            self.entries(place, key, field, given.len() == 1)?
        } else if given.contains(&"items") {
            if slot == Slot::Flat {
                return self.not_single(place, "`items` makes a list");
            }
            self.items(place, key, field)
        } else if object_keys {
            if slot == Slot::Flat {
                self.problem(
                    pointer,
                    Target::Key,
                    format!(
                        "`{}` must be a single value here, not an object",
                        place.label
                    ),
                );
                return None;
            }
            // A spread object's members are written into the parent: label them as its own.
            let inner = if field.spread {
                Place {
                    pointer: place.pointer.clone(),
                    label: place
                        .label
                        .strip_suffix(key)
                        .map_or(place.label.as_str(), |rest| {
                            rest.strip_suffix('.').unwrap_or(rest)
                        })
                        .to_owned(),
                }
            } else {
                place.clone()
            };
            Source::Object(self.object(&inner, field)?)
        } else {
            let source = self.scalar_source(place, field, given[0])?;
            if slot == Slot::Flat
                && let Source::Value(Value::Array(_) | Value::Object(_)) = &source
            {
                self.problem(
                    pointer,
                    Target::Key,
                    format!("`{}` must be a single value here", place.label),
                );
            }
            source
        })
    }

    /// The computed key of a field, after checking its `key` and `spread`.
    fn naming(
        &mut self,
        place: &Place,
        field: &model::Field,
        slot: Slot,
        object_keys: bool,
        given: &[&str],
    ) -> Option<Box<Field>> {
        let pointer = place.pointer.as_str();
        let computed_key = match &field.key {
            None => None,
            Some(_) if field.spread || slot != Slot::Member => {
                self.problem(
                    &format!("{pointer}/key"),
                    Target::Key,
                    if field.spread {
                        "a spread object has no name of its own to compute"
                    } else {
                        "only a member of an object has a name to compute"
                    },
                );
                None
            }
            // With `entries`, the key names each entry and is compiled with them.
            Some(_) if field.entries.is_some() => None,
            Some(key_field) => self.key_field(place, key_field),
        };
        if field.spread && (slot != Slot::Member || !(object_keys || given.contains(&"entries"))) {
            self.problem(
                &format!("{pointer}/spread"),
                Target::Key,
                if slot == Slot::Member {
                    "only an object (`fields`, `group`, `rest_of` or `entries`) can be spread into the enclosing object"
                } else {
                    "`spread` writes members into an enclosing object, and this field has none"
                },
            );
        }

        computed_key
    }

    fn not_single(&mut self, place: &Place, what: &str) -> Option<Source> {
        self.problem(
            &place.pointer,
            Target::Key,
            format!("`{}` must be a single value here; {what}", place.label),
        );
        None
    }

    /// Keys that only make sense beside certain sources.
    fn check_companions(&mut self, pointer: &str, field: &model::Field, given: &[&str]) {
        let has = |name: &str| given.contains(&name);
        if field.response.is_some() && !has("from") {
            self.problem(
                &format!("{pointer}/response"),
                Target::Key,
                "`response` names the step whose response `from` reads; add `from: $.body...`",
            );
        }
        if field.response.is_some() && field.recall.is_some() {
            self.problem(
                &format!("{pointer}/recall"),
                Target::Key,
                "`recall` looks up by the event, not by a response; use it without `response`",
            );
        }
        for (name, set) in [("member", field.member.is_some()), ("first", field.first)] {
            if set && !has("from") {
                self.problem(
                    &format!("{pointer}/{name}"),
                    Target::Key,
                    format!("`{name}` reads what `from` selects, and this field has no `from`"),
                );
            }
        }
        if !has("rest_of") {
            for (name, set) in [
                ("only", field.only.is_some()),
                ("except", !field.except.is_empty()),
                ("prefix", field.prefix.is_some()),
                ("flatten", field.flatten),
            ] {
                if set {
                    self.problem(
                        &format!("{pointer}/{name}"),
                        Target::Key,
                        format!("`{name}` shapes a `rest_of` bucket, and this field has none"),
                    )
                    .help = Some("add `rest_of: $...` beside it, or remove it".into());
                }
            }
        }
        if field.within.is_some() && !(has("fields") || has("group") || has("rest_of")) {
            self.problem(
                &format!("{pointer}/within"),
                Target::Key,
                "`within` says what `$` means inside an object, and this field is not one",
            )
            .help = Some("give the object's `fields`, `group` or `rest_of` beside it".into());
        }
        if field.filter.is_some() && !has("each") && !has("entries") {
            self.problem(
                &format!("{pointer}/where"),
                Target::Key,
                "`where` chooses the items of `each` or the entries of `entries`, and this field has neither",
            )
            .help = Some("use `when` to decide whether the whole field is written".into());
        }
    }

    /// A computed output name: a field that gives text.
    pub(super) fn key_field(&mut self, place: &Place, key: &model::Field) -> Option<Box<Field>> {
        let key_place = Place {
            pointer: format!("{}/key", place.pointer),
            label: format!("{} (key)", place.label),
        };
        // A name that is missing leaves the member out, as a missing value does.
        self.field(&key_place, "key", key, Slot::Flat).map(Box::new)
    }

    /// The parts of a compiled field that do not depend on its source.
    pub(super) fn field_shell(place: &Place, key: &str, field: &model::Field) -> Field {
        let mut key_json = serde_json::to_vec(key).expect("a string serializes");
        key_json.push(b':');
        Field {
            key_json: key_json.into_boxed_slice(),
            key: key.into(),
            label: place.label.as_str().into(),
            computed_key: None,
            when: None,
            spread: field.spread,
            source: Source::Value(Value::Null),
            default: field.default.clone(),
            required: field.required,
            keep_null: field.keep_null,
            omit_empty: field.omit_empty,
            ops: Vec::new(),
            on_invalid: field.on_invalid.unwrap_or_default(),
            must_be: field.must_be,
            time_unit: field.time_unit.unwrap_or_default(),
        }
    }

    /// The fields of the group `name`, compiled where it is used (`place`), or `None` when it is
    /// unknown or uses itself.
    pub(super) fn group_fields(
        &mut self,
        pointer: &str,
        place: &Place,
        name: &str,
    ) -> Option<Vec<Field>> {
        let document: &ferry_spec::Document = self.document;
        let Some(group) = document.mapping.groups.get(name) else {
            let near = did_you_mean(name, document.mapping.groups.keys().map(String::as_str));
            self.problem(
                pointer,
                Target::Value,
                format!("no group is named `{name}`"),
            )
            .help = Some(match near {
                Some(near) => format!("did you mean `{near}`?"),
                None => "declare it under `groups:`".into(),
            });
            return None;
        };
        if self.groups_in_use.iter().any(|g| g == name) {
            let chain = self.groups_in_use.join("` -> `");
            self.problem(
                pointer,
                Target::Value,
                format!("group `{name}` uses itself: `{chain}` -> `{name}`"),
            );
            return None;
        }
        self.groups_in_use.push(name.to_owned());
        let parent = Place {
            pointer: format!("/groups/{}", ferry_spec::escape_segment(name)),
            label: place.label.clone(),
        };
        let fields = self.fields(&parent, group, ".", Slot::Member);
        self.groups_in_use.pop();
        Some(fields)
    }
}

fn is_given(field: &model::Field, name: &str) -> bool {
    match name {
        "from" => field.from.is_some(),
        "from_setting" => field.from_setting.is_some(),
        "value" => field.value.is_some(),
        "template" => field.template.is_some(),
        "setting" => field.setting.is_some(),
        "fields" => field.fields.is_some(),
        "group" => field.group.is_some(),
        "rest_of" => field.rest_of.is_some(),
        "items" => field.items.is_some(),
        "each" => field.each.is_some(),
        "entries" => field.entries.is_some(),
        _ => field.recall.is_some(),
    }
}
