//! Field sources that give one value: paths into the event (or the item, or a response),
//! path settings, literals, templates, settings and remembered values; and the operations that
//! shape a present value (`remap`, `transform`, `as`, in a fixed order or as `apply` says).

use ferry_spec::model::{self, Conversion, Otherwise, SettingType};
use ferry_spec::{Target, did_you_mean, escape_segment};

use crate::checks::setting_type_name;
use crate::compiled::{Op, Recall, Remap, Source};
use crate::path::Path;
use crate::template::Escape;

use super::{Compiler, Place, list_pointer};

impl<'d> Compiler<'d> {
    /// The source of a field that gives one value, or `None` (reported) when it cannot compile.
    /// `kind` names the source key given.
    pub(super) fn scalar_source(
        &mut self,
        place: &Place,
        field: &model::Field,
        kind: &str,
    ) -> Option<Source> {
        let pointer = place.pointer.as_str();
        Some(match kind {
            "from" => {
                let from = field.from.as_ref().expect("`from` is given");
                let paths: Vec<Path> = from
                    .as_slice()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        self.path(&list_pointer(&format!("{pointer}/from"), from, i), p)
                    })
                    .collect();
                if let Some(step) = &field.response {
                    for (key, set) in [("member", field.member.is_some()), ("first", field.first)] {
                        if set {
                            self.problem(
                                &format!("{pointer}/{key}"),
                                Target::Key,
                                format!("`{key}` reads the event, not a response"),
                            );
                        }
                    }
                    let step = self.step_ref(&format!("{pointer}/response"), step)?;
                    Source::Response { step, paths }
                } else {
                    let recall = field
                        .recall
                        .as_ref()
                        .and_then(|r| self.recall(&format!("{pointer}/recall"), r));
                    let member = field
                        .member
                        .as_ref()
                        .and_then(|m| self.path(&format!("{pointer}/member"), m));
                    Source::Paths {
                        paths,
                        recall,
                        member,
                        first: field.first,
                    }
                }
            }
            "from_setting" => {
                let setting = field.from_setting.as_ref().expect("given");
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
            }
            "recall" => {
                let recall = field.recall.as_ref().expect("given");
                Source::Recall(self.recall(&format!("{pointer}/recall"), recall)?)
            }
            "value" => Source::Value(field.value.clone().expect("given")),
            "template" => Source::Template(self.template(
                &format!("{pointer}/template"),
                field.template.as_deref().expect("given"),
                Escape::None,
            )?),
            _ => {
                let setting = field.setting.as_ref().expect("given");
                self.setting_ref(&format!("{pointer}/setting"), setting)?;
                Source::Setting(setting.as_str().into())
            }
        })
    }

    /// The operations on a present value: `apply` in its order, or `remap`, `transform` and
    /// `as` in theirs.
    pub(super) fn operations(&mut self, pointer: &str, field: &model::Field) -> Vec<Op> {
        let mut ops = Vec::new();
        if field.apply.is_empty() {
            if let Some(remap) = &field.remap {
                ops.extend(
                    self.remap(&format!("{pointer}/remap"), remap)
                        .map(Op::Remap),
                );
            }
            ops.extend(field.transform.iter().map(|t| Op::Transform(*t)));
            ops.extend(field.convert.map(Op::Convert));
        } else {
            for (key, set) in [
                ("remap", field.remap.is_some()),
                ("transform", !field.transform.is_empty()),
                ("as", field.convert.is_some()),
            ] {
                if set {
                    self.problem(
                        &format!("{pointer}/{key}"),
                        Target::Key,
                        format!("`{key}` beside `apply`: give every operation in `apply`, in the order they run"),
                    )
                    .help = Some(format!("move it into `apply`, e.g. `apply: [{{ {key}: ... }}]`"));
                }
            }
            for (i, op) in field.apply.iter().enumerate() {
                let at = format!("{pointer}/apply/{i}");
                if let Some(remap) = &op.remap {
                    ops.extend(self.remap(&format!("{at}/remap"), remap).map(Op::Remap));
                } else if let Some(transforms) = &op.transform {
                    ops.extend(transforms.as_slice().iter().map(|t| Op::Transform(*t)));
                } else if let Some(to) = op.convert {
                    ops.push(Op::Convert(to));
                }
            }
        }
        let converts_time = ops.iter().any(|op| {
            matches!(
                op,
                Op::Convert(
                    Conversion::Iso8601
                        | Conversion::Date
                        | Conversion::UnixSeconds
                        | Conversion::UnixMillis
                )
            )
        });
        if field.time_unit.is_some() && !converts_time {
            self.problem(
                &format!("{pointer}/time_unit"),
                Target::Key,
                "`time_unit` only applies with `as: iso8601`, `date`, `unix_seconds` or `unix_millis`",
            );
        }
        let can_fail = ops
            .iter()
            .any(|op| matches!(op, Op::Transform(_) | Op::Convert(_)));
        if field.on_invalid.is_some() && !can_fail {
            self.problem(
                &format!("{pointer}/on_invalid"),
                Target::Key,
                "`on_invalid` says what a value that cannot be transformed or converted becomes, and this field has no `transform` or `as`",
            );
        }
        ops
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
