//! Fields: sources, missing-value rules, remaps, transforms and conversions.

use ferry_spec::model::{self, Conversion, Otherwise, SettingType};
use ferry_spec::{Target, did_you_mean, escape_segment};
use serde_json::Value;

use crate::compiled::{Field, Names, Recall, Remap, Rest, Source};
use crate::path::Path;
use crate::template::Escape;

use crate::checks::setting_type_name;

use super::{Compiler, Place, list_pointer};

impl<'d> Compiler<'d> {
    pub(super) fn fields(
        &mut self,
        parent: &Place,
        fields: &model::Ordered<model::Field>,
        separator: &str,
        flat: bool,
    ) -> Vec<Field> {
        fields
            .iter()
            .filter_map(|(key, field)| {
                let place = parent.child(key, separator);
                self.field(&place, key, field, flat)
            })
            .collect()
    }

    /// Compiles one field; `flat` forbids objects and lists (query strings, forms, dedupe keys).
    #[allow(clippy::too_many_lines)]
    pub(super) fn field(
        &mut self,
        place: &Place,
        key: &str,
        field: &model::Field,
        flat: bool,
    ) -> Option<Field> {
        let pointer = place.pointer.as_str();
        let given: Vec<&str> = [
            ("from", field.from.is_some()),
            ("from_setting", field.from_setting.is_some()),
            ("value", field.value.is_some()),
            ("template", field.template.is_some()),
            ("setting", field.setting.is_some()),
            ("fields", field.fields.is_some()),
            ("rest_of", field.rest_of.is_some()),
            ("items", field.items.is_some()),
            ("each", field.each.is_some()),
            ("recall", field.recall.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        // `each` describes the list; the other keys describe each item.
        let per_item: Vec<&str> = given.iter().copied().filter(|g| *g != "each").collect();
        let combinable = per_item.len() <= 1
            || matches!(
                per_item.as_slice(),
                ["from", "recall"] | ["fields", "rest_of"]
            );
        if given.is_empty()
            && let Some(response) = &field.response
        {
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
            return None;
        }
        if given.is_empty() {
            self.problem(pointer, Target::Key, format!("field `{}` has no source", place.label))
                .help = Some("give one of `from`, `from_setting`, `value`, `template`, `setting`, `fields`, `rest_of`, `items`, `each` or `recall`".into());
            return None;
        }
        if !combinable {
            let list = given
                .iter()
                .map(|g| format!("`{g}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.problem(pointer, Target::Key, format!("field `{}` has several sources: {list}", place.label))
                .help = Some("a field takes one source; `from` may add `recall` as a fallback, and `fields` may add `rest_of`".into());
            return None;
        }
        if field.response.is_some() && field.from.is_none() {
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
        if field.rest_of.is_none() {
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
        if field.time_unit.is_some()
            && !matches!(
                field.convert,
                Some(Conversion::Iso8601 | Conversion::UnixSeconds | Conversion::UnixMillis)
            )
        {
            self.problem(
                &format!("{pointer}/time_unit"),
                Target::Key,
                "`time_unit` only applies with `as: iso8601`, `unix_seconds` or `unix_millis`",
            );
        }
        // With `each`, the remap belongs to the item and is compiled with it.
        let remap = match (&field.remap, &field.each) {
            (Some(remap), None) => self.remap(&format!("{pointer}/remap"), remap),
            _ => None,
        };

        let source = if let Some(each) = &field.each {
            if flat {
                self.problem(
                    pointer,
                    Target::Key,
                    format!(
                        "`{}` must be a single value here; `each` makes a list",
                        place.label
                    ),
                );
                return None;
            }
            let path = self.path(&format!("{pointer}/each"), each);
            let item_spec = model::Field {
                each: None,
                default: None,
                required: false,
                omit_empty: false,
                keep_null: field.keep_null,
                ..field.clone()
            };
            let item_spec = if given.len() == 1 {
                // `each` alone: the items themselves.
                model::Field {
                    from: Some(model::OneOrMany::One("$".into())),
                    ..item_spec
                }
            } else {
                item_spec
            };
            let item_place = Place {
                pointer: place.pointer.clone(),
                label: format!("{}[]", place.label),
            };
            let item = self.field(&item_place, key, &item_spec, false);
            return Some(Field {
                source: Source::Each {
                    path: path?,
                    item: Box::new(item?),
                },
                remap: None,
                transforms: Vec::new(),
                convert: None,
                ..Self::field_shell(place, key, field)
            });
        } else if let Some(from) = &field.from {
            let paths: Vec<Path> = from
                .as_slice()
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    self.path(&list_pointer(&format!("{pointer}/from"), from, i), p)
                })
                .collect();
            if let Some(step) = &field.response {
                let step = self.step_ref(&format!("{pointer}/response"), step)?;
                Source::Response { step, paths }
            } else {
                let recall = field
                    .recall
                    .as_ref()
                    .and_then(|r| self.recall(&format!("{pointer}/recall"), r));
                Source::Paths { paths, recall }
            }
        } else if let Some(setting) = &field.from_setting {
            let at = format!("{pointer}/from_setting");
            match self.setting_ref(&at, setting).map(|s| s.kind) {
                Some(SettingType::Path) => {}
                Some(kind) => {
                    self.problem(
                        &at,
                        Target::Value,
                        format!(
                            "`from_setting` needs a `path` setting; `{setting}` is a `{}` setting",
                            setting_type_name(kind)
                        ),
                    )
                    .help = Some(format!("declare `settings.{setting}` with `type: path`"));
                    return None;
                }
                None => return None,
            }
            Source::SettingPath(setting.as_str().into())
        } else if let Some(items) = &field.items {
            if flat {
                self.problem(
                    pointer,
                    Target::Key,
                    format!(
                        "`{}` must be a single value here; `items` makes a list",
                        place.label
                    ),
                );
                return None;
            }
            let mut compiled = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let item_place = Place {
                    pointer: format!("{pointer}/items/{i}"),
                    label: format!("{}[{i}]", place.label),
                };
                compiled.extend(self.field(&item_place, key, item, false));
            }
            Source::Items(compiled)
        } else if let Some(recall) = &field.recall {
            Source::Recall(self.recall(&format!("{pointer}/recall"), recall)?)
        } else if let Some(value) = &field.value {
            Source::Value(value.clone())
        } else if let Some(template) = &field.template {
            Source::Template(self.template(
                &format!("{pointer}/template"),
                template,
                Escape::None,
            )?)
        } else if let Some(setting) = &field.setting {
            self.setting_ref(&format!("{pointer}/setting"), setting)?;
            Source::Setting(setting.as_str().into())
        } else {
            if flat {
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
            let fields = field
                .fields
                .as_ref()
                .map(|fields| {
                    let parent = Place {
                        pointer: format!("{pointer}/fields"),
                        label: place.label.clone(),
                    };
                    self.fields(&parent, fields, ".", false)
                })
                .unwrap_or_default();
            let rest = match &field.rest_of {
                Some(rest_of) => {
                    let path = self.path(&format!("{pointer}/rest_of"), rest_of)?;
                    if path.is_query() {
                        self.problem(&format!("{pointer}/rest_of"), Target::Value, "`rest_of` needs a plain path to one object, without wildcards or filters");
                        return None;
                    }
                    let only = match &field.only {
                        Some(names) => self.names(&format!("{pointer}/only"), names),
                        None => Names::Any,
                    };
                    Some(Rest {
                        path,
                        consumed: field.except.iter().map(|k| k.as_str().into()).collect(),
                        siblings: fields.iter().map(|f| f.key.clone()).collect(),
                        prefix: field.prefix.as_deref().unwrap_or("").into(),
                        flatten: field.flatten,
                        only,
                    })
                }
                None => None,
            };
            Source::Object { fields, rest }
        };
        if flat && let Source::Value(Value::Array(_) | Value::Object(_)) = &source {
            self.problem(
                pointer,
                Target::Key,
                format!("`{}` must be a single value here", place.label),
            );
        }
        Some(Field {
            source,
            remap,
            ..Self::field_shell(place, key, field)
        })
    }

    /// The parts of a compiled field that do not depend on its source.
    pub(super) fn field_shell(place: &Place, key: &str, field: &model::Field) -> Field {
        let mut key_json = serde_json::to_vec(key).expect("a string serializes");
        key_json.push(b':');
        Field {
            key_json: key_json.into_boxed_slice(),
            key: key.into(),
            label: place.label.as_str().into(),
            source: Source::Value(Value::Null),
            default: field.default.clone(),
            required: field.required,
            keep_null: field.keep_null,
            omit_empty: field.omit_empty,
            remap: None,
            transforms: field.transform.clone(),
            convert: field.convert,
            time_unit: field.time_unit.unwrap_or_default(),
        }
    }

    pub(super) fn recall(&mut self, pointer: &str, recall: &model::Recall) -> Option<Recall> {
        let key = self.path(&format!("{pointer}/key"), &recall.key)?;
        Some(Recall {
            store: recall.name.as_str().into(),
            key,
        })
    }

    pub(super) fn setting_ref(&mut self, pointer: &str, name: &str) -> Option<&'d model::Setting> {
        self.setting_ref_at(pointer, Target::Value, name)
    }

    pub(super) fn setting_ref_at(
        &mut self,
        pointer: &str,
        target: Target,
        name: &str,
    ) -> Option<&'d model::Setting> {
        let document: &'d ferry_spec::Document = self.document;
        if let Some(setting) = document.mapping.settings.get(name) {
            return Some(setting);
        }
        let near = did_you_mean(name, self.mapping().settings.keys().map(String::as_str))
            .map(str::to_owned);
        let diagnostic = self.problem(pointer, target, format!("unknown setting `{name}`"));
        diagnostic.help = Some(match near {
            Some(near) => format!("did you mean `{near}`?"),
            None => "declare it under `settings:`".into(),
        });
        None
    }

    pub(super) fn remap(&mut self, pointer: &str, remap: &model::Remap) -> Option<Remap> {
        let mut ok = true;
        if let Some(setting) = &remap.setting {
            match self
                .setting_ref(&format!("{pointer}/setting"), setting)
                .map(|s| s.kind)
            {
                Some(SettingType::Map) => {}
                Some(kind) => {
                    ok = false;
                    self.problem(
                        &format!("{pointer}/setting"),
                        Target::Value,
                        format!(
                            "remap setting `{setting}` is a `{}` setting; a remap needs a `map`",
                            setting_type_name(kind)
                        ),
                    )
                    .help = Some(format!(
                        "declare `settings.{setting}` with `type: map`, or list the values in the remap's `table`"
                    ));
                }
                None => ok = false,
            }
        } else if remap.table.is_empty() {
            ok = false;
            self.problem(
                pointer,
                Target::Key,
                "a remap needs a `table`, a `setting`, or both",
            );
        }
        match (remap.otherwise, &remap.default) {
            (Otherwise::Default, None) => {
                ok = false;
                self.problem(
                    &format!("{pointer}/otherwise"),
                    Target::Value,
                    "`otherwise: default` needs a `default` value in the remap",
                )
                .help = Some(
                    "add `default: <value>` to the remap, or use `otherwise: keep`, `omit`, `drop` or `error`"
                        .into(),
                );
            }
            (other, Some(_)) if other != Otherwise::Default => {
                ok = false;
                self.problem(
                    &format!("{pointer}/default"),
                    Target::Key,
                    "the remap's `default` is only used with `otherwise: default`",
                )
                .help = Some("add `otherwise: default`, or remove `default`".into());
            }
            _ => {}
        }
        for (from, to) in &remap.table {
            if to.is_object() || to.is_array() {
                ok = false;
                self.problem(
                    &format!("{pointer}/table/{}", escape_segment(from)),
                    Target::Value,
                    format!("remap entry `{from}` must map to a single value"),
                );
            }
        }
        ok.then(|| Remap {
            table: remap
                .table
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.clone()))
                .collect(),
            setting: remap.setting.as_deref().map(Into::into),
            otherwise: remap.otherwise,
            default: remap.default.clone(),
        })
    }
}
