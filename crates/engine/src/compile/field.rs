//! Fields: which source a field has, the keys every field may carry (`when`, `key`, `spread`,
//! missing-value rules, operations, `must_be`), and the dispatch to the modules that compile
//! each kind of source (`source.rs`, `bucket.rs` for objects, `list.rs` for lists and entries).

use std::sync::Arc;

use ferry_spec::model::{self, OneOrMany, Ordered, TemplateSource};
use ferry_spec::{DiagnosticKind, Pointer, Target, did_you_mean};
use serde_json::Value;

use crate::compiled::{Field, KeepNull, Required, Selector, Source};

use super::{Compiler, Place};

/// Where a field sits, which decides what it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// A member of a JSON object: anything.
    Member,
    /// A query parameter or dedupe key: one value, no object or list.
    Flat,
    /// An entry of an `items` list: no name of its own, so no `key`; `spread` adds the members
    /// of a list it gives.
    ListEntry,
}

/// A key that gives a field its value, with what it holds.
#[derive(Debug, Clone, Copy)]
pub(super) enum Given<'f> {
    From(&'f OneOrMany<String>),
    FromSetting(&'f str),
    Value(&'f Value),
    Template(&'f TemplateSource),
    Setting(&'f str),
    Now,
    Fields,
    Group,
    RestOf,
    Items(&'f [model::Field]),
    Each(&'f str),
    Entries(&'f OneOrMany<String>),
    Recall(&'f model::Recall),
}

impl Given<'_> {
    /// Every source key, in the order messages list them.
    const NAMES: [&'static str; 13] = [
        "from",
        "from_setting",
        "value",
        "template",
        "setting",
        "now",
        "fields",
        "group",
        "rest_of",
        "items",
        "each",
        "entries",
        "recall",
    ];

    fn name(self) -> &'static str {
        match self {
            Given::From(_) => "from",
            Given::FromSetting(_) => "from_setting",
            Given::Value(_) => "value",
            Given::Template(_) => "template",
            Given::Setting(_) => "setting",
            Given::Now => "now",
            Given::Fields => "fields",
            Given::Group => "group",
            Given::RestOf => "rest_of",
            Given::Items(_) => "items",
            Given::Each(_) => "each",
            Given::Entries(_) => "entries",
            Given::Recall(_) => "recall",
        }
    }

    /// Whether this key makes (part of) an object.
    fn makes_object(self) -> bool {
        matches!(self, Given::Fields | Given::Group | Given::RestOf)
    }

    /// Whether this key says how the container of the items is made (`each`, `entries`), the
    /// others then shaping each item.
    fn is_container(self) -> bool {
        matches!(self, Given::Each(_) | Given::Entries(_))
    }
}

/// The source keys a field gives. Every key of a field is named here, so that a new key is
/// classified when it is added.
pub(super) fn given(field: &model::Field) -> Vec<Given<'_>> {
    let model::Field {
        from,
        from_setting,
        value,
        template,
        setting,
        now,
        fields,
        group,
        rest_of,
        items,
        each,
        entries,
        recall,
        // The keys below shape or place a value; they do not give one.
        when: _,
        member: _,
        first: _,
        response: _,
        within: _,
        spread: _,
        filter: _,
        key: _,
        only: _,
        except: _,
        prefix: _,
        flatten: _,
        dotted: _,
        single_as_list: _,
        keep_single: _,
        sum: _,
        default: _,
        required: _,
        keep_null: _,
        omit_empty: _,
        remap: _,
        transform: _,
        capture: _,
        user_agent: _,
        truncate: _,
        split: _,
        count: _,
        to_object: _,
        convert: _,
        times: _,
        round: _,
        format_time: _,
        apply: _,
        on_invalid: _,
        must_be: _,
        time_unit: _,
    } = field;
    let mut out = Vec::new();
    out.extend(from.as_ref().map(Given::From));
    out.extend(from_setting.as_deref().map(Given::FromSetting));
    out.extend(value.as_ref().map(Given::Value));
    out.extend(template.as_ref().map(Given::Template));
    out.extend(setting.as_deref().map(Given::Setting));
    out.extend(now.then_some(Given::Now));
    out.extend(fields.is_some().then_some(Given::Fields));
    out.extend(group.is_some().then_some(Given::Group));
    out.extend(rest_of.is_some().then_some(Given::RestOf));
    out.extend(items.as_deref().map(Given::Items));
    out.extend(each.as_deref().map(Given::Each));
    out.extend(entries.as_ref().map(Given::Entries));
    out.extend(recall.as_ref().map(Given::Recall));
    out
}

/// What a field makes, from the source keys it gives.
#[derive(Debug, Clone, Copy)]
enum Shape<'f> {
    /// One value.
    Single(Given<'f>),
    /// `from` with the fallbacks `recall` and `now`.
    Fallbacks {
        from: &'f OneOrMany<String>,
        recall: Option<&'f model::Recall>,
        now: bool,
    },
    /// `fields`, `group` and `rest_of`.
    Object,
    Items(&'f [model::Field]),
    Each(&'f str),
    Entries(&'f OneOrMany<String>),
}

/// The shape `given` makes, or `None` when those keys cannot go together.
fn shape<'f>(given: &[Given<'f>]) -> Option<Shape<'f>> {
    let container: Vec<Given<'f>> = given.iter().copied().filter(|g| g.is_container()).collect();
    let per_item: Vec<Given<'f>> = given
        .iter()
        .copied()
        .filter(|g| !g.is_container())
        .collect();
    let item_ok = per_item.len() <= 1
        || per_item.iter().all(|g| g.makes_object())
        || fallbacks(&per_item).is_some();
    match container.as_slice() {
        [Given::Each(path)] if item_ok => Some(Shape::Each(path)),
        [Given::Entries(paths)] if item_ok => Some(Shape::Entries(paths)),
        [] if per_item.iter().all(|g| g.makes_object()) => Some(Shape::Object),
        [] => match per_item.as_slice() {
            [Given::Items(items)] => Some(Shape::Items(items)),
            [one] => Some(Shape::Single(*one)),
            more => fallbacks(more),
        },
        _ => None,
    }
}

/// `from` with `recall` and `now` as fallbacks, in any order written.
fn fallbacks<'f>(given: &[Given<'f>]) -> Option<Shape<'f>> {
    let mut from = None;
    let mut recall = None;
    let mut now = false;
    for g in given {
        match g {
            Given::From(paths) => from = Some(*paths),
            Given::Recall(rule) => recall = Some(*rule),
            Given::Now => now = true,
            _ => return None,
        }
    }
    Some(Shape::Fallbacks {
        from: from?,
        recall,
        now,
    })
}

impl Compiler<'_> {
    pub(super) fn fields(
        &mut self,
        parent: &Place,
        fields: &Ordered<model::Field>,
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
        let pointer = &place.pointer;
        let given = given(field);
        if given.is_empty() {
            self.no_source(place, field);
            return None;
        }
        let Some(shape) = shape(&given) else {
            let list = given
                .iter()
                .map(|g| format!("`{}`", g.name()))
                .collect::<Vec<_>>()
                .join(", ");
            self.problem(
                DiagnosticKind::Field,
                pointer,
                Target::Key,
                format!("field `{}` has several sources: {list}", place.label),
            )
            .help = Some("a field takes one source; `from` may add `recall` and `now` as fallbacks, and `fields`, `group` and `rest_of` may make one object together".into());
            return None;
        };
        self.check_companions(pointer, field, &given);
        let errors_before = self.problems.len();
        let when = field
            .when
            .as_ref()
            .map(|w| self.field_when(&pointer.key("when"), w));
        let object = matches!(shape, Shape::Object);
        let computed_key = self.naming(place, field, slot, object, &given);
        let source = self.source(place, key, field, shape, slot)?;
        // With `each` and `entries`, the operations belong to the items and were compiled there.
        let per_item = matches!(source, Source::Each { .. } | Source::Entries { .. });
        let ops = if per_item {
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
        if per_item {
            compiled.must_be = None;
        }
        Some(compiled)
    }

    fn no_source(&mut self, place: &Place, field: &model::Field) {
        if let Some(response) = &field.response {
            self.problem(
                DiagnosticKind::Field,
                &place.pointer.key("response"),
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
                DiagnosticKind::Field,
                &place.pointer,
                Target::Key,
                format!("field `{}` has no source", place.label),
            )
            .help = Some(format!(
                "give one of {}",
                Given::NAMES
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }

    /// The compiled source of a field of `shape`.
    fn source(
        &mut self,
        place: &Place,
        key: &str,
        field: &model::Field,
        shape: Shape<'_>,
        slot: Slot,
    ) -> Option<Source> {
        let pointer = &place.pointer;
        Some(match shape {
            Shape::Each(path) => {
                if slot == Slot::Flat {
                    return self.not_single(place, "`each` makes a list");
                }
                let alone = given(field).len() == 1;
                self.each(place, key, field, path, alone)?
            }
            Shape::Entries(paths) => {
                if slot == Slot::Flat {
                    return self.not_single(place, "`entries` makes an object");
                }
                let alone = given(field).len() == 1;
                self.entries(place, key, field, paths, alone)?
            }
            Shape::Items(items) => {
                if slot == Slot::Flat {
                    return self.not_single(place, "`items` makes a list");
                }
                self.items(place, key, items)
            }
            Shape::Object => {
                if slot == Slot::Flat {
                    return self
                        .not_single(place, "`fields`, `group` and `rest_of` make an object");
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
            }
            Shape::Fallbacks { from, recall, now } => {
                self.paths_source(place, field, from, recall, now)?
            }
            Shape::Single(given) => {
                let source = self.single_source(place, field, given)?;
                if slot == Slot::Flat
                    && let Source::Value(Value::Array(_) | Value::Object(_)) = &source
                {
                    self.problem(
                        DiagnosticKind::Field,
                        pointer,
                        Target::Key,
                        format!("`{}` must be a single value here", place.label),
                    );
                }
                source
            }
        })
    }

    /// A field's `when`: the selector compiled before for the same text, unless it reads a
    /// response (a step's own).
    fn field_when(&mut self, pointer: &Pointer, when: &model::Selector) -> Arc<Selector> {
        let compiled = self.selector(pointer, when);
        if compiled.reads_response_from(0) || compiled.statuses().next().is_some() {
            return Arc::new(compiled);
        }
        let written = serde_json::to_string(when).expect("a selector serializes");
        Arc::clone(
            self.whens
                .entry(written)
                .or_insert_with(|| Arc::new(compiled)),
        )
    }

    /// The computed key of a field, after checking its `key` and `spread`.
    fn naming(
        &mut self,
        place: &Place,
        field: &model::Field,
        slot: Slot,
        object: bool,
        given: &[Given<'_>],
    ) -> Option<Box<Field>> {
        let pointer = &place.pointer;
        let entries = given.iter().any(|g| matches!(g, Given::Entries(_)));
        let computed_key = match &field.key {
            None => None,
            Some(_) if field.spread || slot != Slot::Member => {
                self.problem(
                    DiagnosticKind::Field,
                    &pointer.key("key"),
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
            Some(_) if entries => None,
            Some(key_field) => self.key_field(place, key_field),
        };
        let each = given.iter().any(|g| matches!(g, Given::Each(_)));
        let why = match slot {
            _ if !field.spread => None,
            Slot::Member if !(object || entries) => Some(
                "only an object (`fields`, `group`, `rest_of` or `entries`) can be spread into the enclosing object",
            ),
            Slot::ListEntry if object || entries => {
                Some("an object has no items to spread into the enclosing list")
            }
            Slot::ListEntry if each => {
                Some("an entry with `each` adds every item already: `spread` says nothing more")
            }
            Slot::Flat => Some(
                "`spread` writes members into an enclosing object or list, and this field has none",
            ),
            Slot::Member | Slot::ListEntry => None,
        };
        if let Some(why) = why {
            self.problem(
                DiagnosticKind::Field,
                &pointer.key("spread"),
                Target::Key,
                why,
            );
        }
        computed_key
    }

    fn not_single(&mut self, place: &Place, what: &str) -> Option<Source> {
        self.problem(
            DiagnosticKind::Field,
            &place.pointer,
            Target::Key,
            format!("`{}` must be a single value here; {what}", place.label),
        );
        None
    }

    /// Keys that only make sense beside certain sources.
    fn check_companions(&mut self, pointer: &Pointer, field: &model::Field, given: &[Given<'_>]) {
        let has = |name: &str| given.iter().any(|g| g.name() == name);
        if field.response.is_some() && !has("from") {
            self.problem(
                DiagnosticKind::Field,
                &pointer.key("response"),
                Target::Key,
                "`response` names the step whose response `from` reads; add `from: $.body...`",
            );
        }
        if field.response.is_some() && (field.recall.is_some() || field.now) {
            self.problem(
                DiagnosticKind::Field,
                &pointer.key(if field.now { "now" } else { "recall" }),
                Target::Key,
                "a response's `from` has no fallback but `default`",
            );
        }
        for (name, set) in [("member", field.member.is_some()), ("first", field.first)] {
            if set && !has("from") {
                self.problem(
                    DiagnosticKind::Field,
                    &pointer.key(name),
                    Target::Key,
                    format!("`{name}` reads what `from` selects, and this field has no `from`"),
                );
            }
        }
        if !has("rest_of") {
            for (name, set) in [
                ("only", field.only.is_some()),
                ("except", field.except.is_some()),
                ("prefix", field.prefix.is_some()),
                ("flatten", !field.flatten.is_off()),
                ("dotted", field.dotted),
            ] {
                if set {
                    self.problem(
                        DiagnosticKind::Field,
                        &pointer.key(name),
                        Target::Key,
                        format!("`{name}` shapes a `rest_of` bucket, and this field has none"),
                    )
                    .help = Some("add `rest_of: $...` beside it, or remove it".into());
                }
            }
        }
        if field.within.is_some() && !(has("fields") || has("group") || has("rest_of")) {
            self.problem(
                DiagnosticKind::Field,
                &pointer.key("within"),
                Target::Key,
                "`within` says what `$` means inside an object, and this field is not one",
            )
            .help = Some("give the object's `fields`, `group` or `rest_of` beside it".into());
        }
        if field.filter.is_some() && !has("each") && !has("entries") {
            self.problem(
                DiagnosticKind::Field,
                &pointer.key("where"),
                Target::Key,
                "`where` chooses the items of `each` or the entries of `entries`, and this field has neither",
            )
            .help = Some("use `when` to decide whether the whole field is written".into());
        }
        self.check_each_keys(pointer, field, has("each"));
        if field.sum
            && !given.iter().any(|g| {
                matches!(
                    g,
                    Given::From(_) | Given::Template(_) | Given::Value(_) | Given::Setting(_)
                )
            })
        {
            self.problem(
                DiagnosticKind::Field,
                &pointer.key("sum"),
                Target::Key,
                "`sum` adds up a value per item: give it with `from` (or `template`)",
            )
            .help = Some("e.g. `{ each: $.products, from: $.price, sum: true }`".into());
        }
    }

    /// The keys that say what `each` makes of its list: only beside `each`, and not two that
    /// contradict each other.
    fn check_each_keys(&mut self, pointer: &Pointer, field: &model::Field, each: bool) {
        for (name, set) in [
            ("single_as_list", field.single_as_list),
            ("keep_single", field.keep_single),
            ("sum", field.sum),
        ] {
            if set && !each {
                self.problem(
                    DiagnosticKind::Field,
                    &pointer.key(name),
                    Target::Key,
                    format!("`{name}` shapes the list of `each`, and this field has none"),
                );
            }
        }
        if field.keep_single && each {
            let other = if field.single_as_list {
                Some((
                    "single_as_list",
                    "a single value cannot be both a list of one and sent alone",
                ))
            } else if field.sum {
                Some(("sum", "`sum` sends one number whatever the list holds"))
            } else {
                None
            };
            if let Some((other, why)) = other {
                self.problem(
                    DiagnosticKind::Field,
                    &pointer.key("keep_single"),
                    Target::Key,
                    format!("`keep_single` beside `{other}`: {why}"),
                )
                .help = Some(format!("keep one of `keep_single` and `{other}`"));
            }
        }
    }

    /// A computed output name: a field that gives text.
    pub(super) fn key_field(&mut self, place: &Place, key: &model::Field) -> Option<Box<Field>> {
        let key_place = Place {
            pointer: place.pointer.key("key"),
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
            pointer: place.pointer.clone(),
            computed_key: None,
            when: None,
            spread: field.spread,
            source: Source::Value(Value::Null),
            default: field.default.clone(),
            required: match field.required {
                model::Required::Flag(false) => Required::No,
                model::Required::Flag(true) => Required::Fail,
                model::Required::Skip(_) => Required::Skip,
            },
            keep_null: match field.keep_null {
                model::KeepNull::Flag(false) => KeepNull::No,
                model::KeepNull::Flag(true) => KeepNull::Last,
                model::KeepNull::First(_) => KeepNull::First,
            },
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
        pointer: &Pointer,
        place: &Place,
        name: &str,
    ) -> Option<Vec<Field>> {
        let document: &ferry_spec::Document = self.document;
        let Some(group) = document.mapping.groups.get(name) else {
            let near = did_you_mean(name, document.mapping.groups.keys().map(String::as_str));
            self.problem(
                DiagnosticKind::Group,
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
                DiagnosticKind::Group,
                pointer,
                Target::Value,
                format!("group `{name}` uses itself: `{chain}` -> `{name}`"),
            );
            return None;
        }
        self.groups_in_use.push(name.to_owned());
        let parent = Place {
            pointer: Pointer::root().key("groups").key(name),
            label: place.label.clone(),
        };
        let fields = self.fields(&parent, group, ".", Slot::Member);
        self.groups_in_use.pop();
        Some(fields)
    }
}
