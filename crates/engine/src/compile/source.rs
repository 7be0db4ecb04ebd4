//! Field sources that give one value: paths into the event (or the item, or a response),
//! path settings, literals, templates, settings, the clock and remembered values; and the
//! operations that shape a present value (in a fixed order, or as `apply` says).

use std::collections::HashMap;

use serde_json::Value;

use ferry_spec::model::{
    self, Conversion, OneOrMany, Otherwise, Pairs, SettingType, TemplateSource,
};
use ferry_spec::{DiagnosticKind, Pointer, Target, did_you_mean};

use crate::checks::setting_type_name;
use crate::compiled::{Op, Recall, Remap, RemapSetting, Source, Zone};
use crate::convert;
use crate::path::{Path, Root};
use crate::template::Escape;

use super::field::Given;
use super::{Compiler, Place, each_item};

impl<'d> Compiler<'d> {
    /// `from` (with `member`, `first`, `response`), and its fallbacks `recall` and `now`.
    pub(super) fn paths_source(
        &mut self,
        place: &Place,
        field: &model::Field,
        from: &OneOrMany<String>,
        recall: Option<&model::Recall>,
        now: bool,
    ) -> Option<Source> {
        let pointer = &place.pointer;
        let paths: Vec<Path> = each_item(&pointer.key("from"), from)
            .filter_map(|(at, text)| self.path(&at, text))
            .collect();
        if let Some(step) = &field.response {
            for (key, set) in [("member", field.member.is_some()), ("first", field.first)] {
                if set {
                    self.problem(
                        DiagnosticKind::Field,
                        &pointer.key(key),
                        Target::Key,
                        format!("`{key}` reads the event, not a response"),
                    );
                }
            }
            let step = self.step_ref(&pointer.key("response"), step)?;
            return Some(Source::Response { step, paths });
        }
        let recall = recall.and_then(|r| self.recall(&pointer.key("recall"), r));
        let member = field
            .member
            .as_ref()
            .and_then(|m| self.path(&pointer.key("member"), m));
        let reads_computed = paths.iter().any(|path| path.root() == Root::Computed);
        Some(Source::Paths {
            paths,
            recall,
            member,
            first: field.first,
            now,
            reads_computed,
        })
    }

    /// The source of a field that gives one value, or `None` (reported) when it cannot compile.
    pub(super) fn single_source(
        &mut self,
        place: &Place,
        field: &model::Field,
        given: Given<'_>,
    ) -> Option<Source> {
        let pointer = &place.pointer;
        Some(match given {
            Given::From(from) => return self.paths_source(place, field, from, None, false),
            Given::FromSetting(setting) => {
                let at = pointer.key("from_setting");
                self.typed_setting(&at, setting, SettingType::Path, "`from_setting`")?;
                Source::SettingPath(setting.into())
            }
            Given::Recall(recall) => Source::Recall(self.recall(&pointer.key("recall"), recall)?),
            Given::Value(value) => Source::Value(value.clone()),
            Given::Template(TemplateSource::Text(text)) => {
                Source::Template(self.template(&pointer.key("template"), text, Escape::None)?)
            }
            Given::Template(TemplateSource::Setting(reference)) => {
                let at = pointer.key("template").key("setting");
                self.typed_setting(
                    &at,
                    &reference.setting,
                    SettingType::Template,
                    "`template: { setting }`",
                )?;
                Source::SettingTemplate(reference.setting.as_str().into())
            }
            Given::Setting(setting) => {
                self.setting_ref(&pointer.key("setting"), setting)?;
                Source::Setting(setting.into())
            }
            Given::Now => Source::Now,
            Given::Fields
            | Given::Group
            | Given::RestOf
            | Given::Items(_)
            | Given::Each(_)
            | Given::Entries(_) => unreachable!("objects and lists are not single values"),
        })
    }

    /// A setting that must have type `kind` for `what` to read it.
    fn typed_setting(
        &mut self,
        pointer: &Pointer,
        name: &str,
        kind: SettingType,
        what: &str,
    ) -> Option<()> {
        match self.setting_ref(pointer, name).map(|s| s.kind) {
            Some(found) if found == kind => Some(()),
            Some(found) => {
                self.problem(
                    DiagnosticKind::Setting,
                    pointer,
                    Target::Value,
                    format!(
                        "{what} needs a `{}` setting; `{name}` is a `{}` setting",
                        setting_type_name(kind),
                        setting_type_name(found)
                    ),
                )
                .help = Some(format!(
                    "declare `settings.{name}` with `type: {}`",
                    setting_type_name(kind)
                ));
                None
            }
            None => None,
        }
    }

    /// The operations on a present value: `apply` in its order, or the field's own keys in
    /// theirs.
    pub(super) fn operations(&mut self, pointer: &Pointer, field: &model::Field) -> Vec<Op> {
        let mut ops = Vec::new();
        let model::Field {
            remap,
            transform,
            capture,
            user_agent,
            truncate,
            split,
            count,
            to_object,
            convert,
            times,
            round,
            format_time,
            apply,
            ..
        } = field;
        let own = model::Operation {
            remap: remap.clone(),
            transform: (!transform.is_empty()).then(|| OneOrMany::Many(transform.clone())),
            capture: capture.clone(),
            user_agent: *user_agent,
            truncate: *truncate,
            split: split.clone(),
            count: count.then_some(true),
            to_object: to_object.clone(),
            convert: *convert,
            times: times.clone(),
            round: *round,
            format_time: format_time.clone(),
            must_be: None,
        };
        if apply.is_empty() {
            if convert.is_some() && format_time.is_some() {
                self.problem(
                    DiagnosticKind::Operation,
                    &pointer.key("format_time"),
                    Target::Key,
                    "`format_time` writes a time as text itself; `as` beside it has nothing to do",
                )
                .help = Some("remove `as`, or use `apply` to give both in order".into());
            }
            self.operation(pointer, &own, &mut ops);
        } else {
            for key in op_keys(&own) {
                self.problem(
                    DiagnosticKind::Operation,
                    &pointer.key(key),
                    Target::Key,
                    format!("`{key}` beside `apply`: give every operation in `apply`, in the order they run"),
                )
                .help = Some(format!("move it into `apply`, e.g. `apply: [{{ {key}: ... }}]`"));
            }
            for (i, op) in apply.iter().enumerate() {
                self.operation(&pointer.key("apply").index(i), op, &mut ops);
            }
        }
        let converts_time = ops.iter().any(|op| {
            matches!(
                op,
                Op::FormatTime(..)
                    | Op::Convert(
                        Conversion::Iso8601
                            | Conversion::Date
                            | Conversion::UnixSeconds
                            | Conversion::UnixMillis
                            | Conversion::UnixMicros
                    )
            )
        });
        if field.time_unit.is_some() && !converts_time {
            self.problem(
                DiagnosticKind::Operation,
                &pointer.key("time_unit"),
                Target::Key,
                "`time_unit` only applies with `as: iso8601`, `date`, `unix_*`, or `format_time`",
            );
        }
        let can_fail = ops.iter().any(|op| !matches!(op, Op::Remap(_)));
        if field.on_invalid.is_some() && !can_fail {
            self.problem(
                DiagnosticKind::Operation,
                &pointer.key("on_invalid"),
                Target::Key,
                "`on_invalid` says what a value that cannot be transformed or converted becomes, and this field has no operation that can fail",
            );
        }
        if field.on_invalid == Some(model::OnInvalid::Next)
            && !matches!(&field.from, Some(OneOrMany::Many(paths)) if paths.len() > 1)
        {
            self.problem(
                DiagnosticKind::Operation,
                &pointer.key("on_invalid"),
                Target::Value,
                "`on_invalid: next` reads the next path of `from`, and this field has only one",
            )
            .help = Some("give `from` a list of paths, or use `omit` or `keep`".into());
        }
        ops
    }

    /// The operations of one `apply` entry (or of a field's own keys), in their fixed order.
    fn operation(&mut self, pointer: &Pointer, op: &model::Operation, ops: &mut Vec<Op>) {
        let model::Operation {
            remap,
            transform,
            capture,
            user_agent,
            truncate,
            split,
            count,
            to_object,
            convert,
            times,
            round,
            format_time,
            must_be,
        } = op;
        if let Some(remap) = remap {
            ops.extend(self.remap(&pointer.key("remap"), remap).map(Op::Remap));
        }
        if let Some(transforms) = transform {
            ops.extend(transforms.as_slice().iter().map(|t| Op::Transform(*t)));
        }
        if let Some(pattern) = capture {
            ops.extend(
                self.regex(&pointer.key("capture"), pattern)
                    .map(Op::Capture),
            );
        }
        ops.extend(user_agent.map(Op::UserAgent));
        if let Some(chars) = truncate {
            if *chars == 0 {
                self.problem(
                    DiagnosticKind::Operation,
                    &pointer.key("truncate"),
                    Target::Value,
                    "`truncate: 0` keeps nothing",
                );
            }
            ops.push(Op::Truncate(*chars));
        }
        if let Some(separator) = split {
            if separator.is_empty() {
                self.problem(
                    DiagnosticKind::Operation,
                    &pointer.key("split"),
                    Target::Value,
                    "`split: \"\"` has no separator to split at",
                )
                .help = Some("write the text between the parts, e.g. `split: \",\"`".into());
            }
            ops.push(Op::Split(separator.as_str().into()));
        }
        if *count == Some(true) {
            ops.push(Op::Count);
        }
        ops.extend(to_object.clone().map(Op::ToObject));
        ops.extend(convert.map(Op::Convert));
        if let Some(path) = times {
            ops.extend(self.path(&pointer.key("times"), path).map(Op::Times));
        }
        if let Some(places) = round {
            if *places > MAX_ROUND_PLACES {
                self.problem(
                    DiagnosticKind::Operation,
                    &pointer.key("round"),
                    Target::Value,
                    format!("`round: {places}`: a number has at most {MAX_ROUND_PLACES} decimal places to round to"),
                );
            }
            ops.push(Op::Round(*places));
        }
        if let Some(format) = format_time {
            let at = pointer.key("format_time");
            let pattern = format.pattern();
            if let Err(why) = convert::check_time_format(pattern) {
                let at = match format {
                    model::TimeFormat::Pattern(_) => at.clone(),
                    model::TimeFormat::Zoned(_) => at.key("pattern"),
                };
                self.problem(
                    DiagnosticKind::Operation,
                    &at,
                    Target::Value,
                    format!("`{pattern}` is not a time format: {why}"),
                )
                .help = Some("strftime patterns read like `%Y-%m-%dT%H:%M:%S`".into());
            }
            let zone = match format {
                model::TimeFormat::Pattern(_) => None,
                model::TimeFormat::Zoned(zoned) => self.zone(&at.key("zone"), &zoned.zone),
            };
            ops.push(Op::FormatTime(pattern.into(), zone));
        }
        ops.extend(must_be.map(Op::MustBe));
    }

    /// The time zone of `format_time`: an IANA name, checked here, or a path read per event.
    fn zone(&mut self, pointer: &Pointer, zone: &str) -> Option<Zone> {
        if zone.starts_with('$') {
            return self.path(pointer, zone).map(Zone::Read);
        }
        match convert::time_zone(zone) {
            Ok(zone) => Some(Zone::Fixed(zone)),
            Err(why) => {
                self.problem(DiagnosticKind::Operation, pointer, Target::Value, why)
                    .help = Some("write an IANA time zone such as `Asia/Kolkata`, or a path to the event's, such as `$.context.timezone`".into());
                None
            }
        }
    }

    /// A regular expression, compiled once.
    pub(super) fn regex(&mut self, pointer: &Pointer, pattern: &str) -> Option<regex::Regex> {
        match regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
        {
            Ok(regex) => Some(regex),
            Err(error) => {
                let why = error.to_string();
                let last = why.lines().last().unwrap_or_default().trim();
                let last = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                self.problem(
                    DiagnosticKind::Operation,
                    pointer,
                    Target::Value,
                    format!("`{pattern}` is not a regular expression: {last}"),
                );
                None
            }
        }
    }

    pub(super) fn recall(&mut self, pointer: &Pointer, recall: &model::Recall) -> Option<Recall> {
        self.recalls
            .push((pointer.key("name"), recall.name.clone()));
        let key = self.path(&pointer.key("key"), &recall.key)?;
        Some(Recall {
            store: recall.name.as_str().into(),
            key,
        })
    }

    pub(super) fn setting_ref(
        &mut self,
        pointer: &Pointer,
        name: &str,
    ) -> Option<&'d model::Setting> {
        self.setting_ref_at(pointer, Target::Value, name)
    }

    pub(super) fn setting_ref_at(
        &mut self,
        pointer: &Pointer,
        target: Target,
        name: &str,
    ) -> Option<&'d model::Setting> {
        let document: &'d ferry_spec::Document = self.document;
        if let Some(setting) = document.mapping.settings.get(name) {
            return Some(setting);
        }
        let near = did_you_mean(name, self.mapping().settings.keys().map(String::as_str))
            .map(str::to_owned);
        let diagnostic = self.problem(
            DiagnosticKind::Setting,
            pointer,
            target,
            format!("unknown setting `{name}`"),
        );
        diagnostic.help = Some(match near {
            Some(near) => format!("did you mean `{near}`?"),
            None => "declare it under `settings:`".into(),
        });
        None
    }

    pub(super) fn remap(&mut self, pointer: &Pointer, remap: &model::Remap) -> Option<Remap> {
        let mut ok = true;
        if let Some(setting) = &remap.setting {
            let at = pointer.key("setting");
            match self.setting_ref(&at, setting).map(|s| s.kind) {
                Some(SettingType::Map | SettingType::List) => {}
                Some(kind) => {
                    ok = false;
                    self.problem(
                        DiagnosticKind::Setting,
                        &at,
                        Target::Value,
                        format!(
                            "remap setting `{setting}` is a `{}` setting; a remap needs a `map`, or a `list` of `{{from, to}}` pairs",
                            setting_type_name(kind)
                        ),
                    )
                    .help = Some(format!(
                        "declare `settings.{setting}` with `type: map`, or list the values in the remap's `table`"
                    ));
                }
                None => ok = false,
            }
        }
        match (remap.otherwise, &remap.default) {
            (Otherwise::Default, None) => {
                ok = false;
                self.problem(
                    DiagnosticKind::Operation,
                    &pointer.key("otherwise"),
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
                    DiagnosticKind::Operation,
                    &pointer.key("default"),
                    Target::Key,
                    "the remap's `default` is only used with `otherwise: default`",
                )
                .help = Some("add `otherwise: default`, or remove `default`".into());
            }
            _ => {}
        }
        if remap.pairs == Pairs::Last && remap.setting.is_none() {
            ok = false;
            self.problem(
                DiagnosticKind::Operation,
                &pointer.key("pairs"),
                Target::Key,
                "`pairs` chooses among the pairs of a remap setting, and this remap has no `setting`",
            )
            .help = Some("add `setting: NAME` (a list of `{from, to}` pairs), or remove `pairs`".into());
        }
        let table = self.remap_keys(pointer, remap, &mut ok);
        let setting = remap
            .setting
            .as_deref()
            .map(|setting| self.remap_setting(setting, remap));
        ok.then(|| Remap {
            table,
            setting,
            matching: remap.matching.as_slice().into(),
            otherwise: remap.otherwise,
            default: remap.default.clone(),
        })
    }

    /// The mapping's table of a remap, its keys through `match`: a key the transforms refuse,
    /// or two keys that become one, are problems of the mapping.
    fn remap_keys(
        &mut self,
        pointer: &Pointer,
        remap: &model::Remap,
        ok: &mut bool,
    ) -> HashMap<Box<str>, Value> {
        let mut table: HashMap<Box<str>, Value> = HashMap::with_capacity(remap.table.len());
        for (from, to) in &remap.table {
            let at = pointer.key("table").key(from);
            if to.is_object() || to.is_array() {
                *ok = false;
                self.problem(
                    DiagnosticKind::Operation,
                    &at,
                    Target::Value,
                    format!("remap entry `{from}` must map to a single value"),
                );
            }
            let key: Box<str> = match convert::matched(from, &remap.matching) {
                Ok(key) => key.into(),
                Err(why) => {
                    *ok = false;
                    self.problem(
                        DiagnosticKind::Operation,
                        &at,
                        Target::Key,
                        format!("remap entry `{from}` cannot be matched: {why}"),
                    );
                    continue;
                }
            };
            if table.contains_key(&key) {
                // The entry written first under this key, named in the message.
                let first = remap
                    .table
                    .keys()
                    .find(|k| convert::matched(k, &remap.matching).is_ok_and(|m| *m == *key))
                    .map_or("", String::as_str);
                *ok = false;
                self.problem(
                    DiagnosticKind::Operation,
                    &at,
                    Target::Key,
                    format!("remap entries `{first}` and `{from}` are the same key (`{key}`) once matched"),
                )
                .help = Some("keep one of them: the remap could give only one value for both".into());
                continue;
            }
            table.insert(key, to.clone());
        }
        table
    }

    /// The slot of the setting a remap reads: each setting is built into a table once per
    /// connection for each way it is matched.
    fn remap_setting(&mut self, setting: &str, remap: &model::Remap) -> usize {
        let last_wins = remap.pairs == Pairs::Last;
        let known = self.remap_settings.iter().find(|known| {
            &*known.setting == setting
                && *known.matching == *remap.matching
                && known.last_wins == last_wins
        });
        if let Some(known) = known {
            return known.slot;
        }
        let slot = self.remap_settings.len();
        self.remap_settings.push(RemapSetting {
            setting: setting.into(),
            matching: remap.matching.as_slice().into(),
            last_wins,
            slot,
        });
        slot
    }
}

/// The most decimal places `round` takes: a 64-bit float holds about 15 significant digits.
const MAX_ROUND_PLACES: u8 = 15;

/// The operation keys given in `op`.
fn op_keys(op: &model::Operation) -> Vec<&'static str> {
    let model::Operation {
        remap,
        transform,
        capture,
        user_agent,
        truncate,
        split,
        count,
        to_object,
        convert,
        times,
        round,
        format_time,
        must_be,
    } = op;
    [
        ("remap", remap.is_some()),
        ("transform", transform.is_some()),
        ("capture", capture.is_some()),
        ("user_agent", user_agent.is_some()),
        ("truncate", truncate.is_some()),
        ("split", split.is_some()),
        ("count", count.is_some()),
        ("to_object", to_object.is_some()),
        ("as", convert.is_some()),
        ("times", times.is_some()),
        ("round", round.is_some()),
        ("format_time", format_time.is_some()),
        ("must_be", must_be.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect()
}
