//! Selectors (`when`, `where`): message types, event names, paths, settings, remembered values,
//! earlier steps' responses, and their `any`, `all` and `not` combinations.

use ferry_spec::model::{self, SettingType, SourceDialect};
use ferry_spec::{Target, did_you_mean, escape_segment};
use serde_json::Value;

use crate::checks::{check_setting_value, setting_type_name};
use crate::compiled::{Names, Selector};
use crate::path::Path;

use super::{Compiler, SEGMENT_TYPES, list_pointer};

impl Compiler<'_> {
    /// Compiles a `when` (or `where`); `loose` is inherited from an enclosing selector.
    pub(super) fn selector(&mut self, pointer: &str, selector: &model::Selector) -> Selector {
        self.selector_in(pointer, selector, false)
    }

    #[allow(clippy::too_many_lines)]
    fn selector_in(
        &mut self,
        pointer: &str,
        selector: &model::Selector,
        inherited_loose: bool,
    ) -> Selector {
        let dialect = self.mapping().source;
        let loose = inherited_loose || selector.loose;
        let mut out = Selector {
            loose,
            ..Selector::default()
        };
        if let Some(types) = &selector.kind {
            if dialect == SourceDialect::Json {
                self.problem(
                    &format!("{pointer}/type"),
                    Target::Key,
                    "`type` needs a source dialect with message types; `source: json` has none",
                )
                .help = Some("select with `exists` or `equals` instead".into());
            }
            for (i, kind) in types.as_slice().iter().enumerate() {
                let allowed: &[&str] = match dialect {
                    SourceDialect::Segment => SEGMENT_TYPES,
                    SourceDialect::Extole => &["track", "delete"],
                    _ => &["track"],
                };
                if !allowed.contains(&kind.as_str()) && dialect != SourceDialect::Json {
                    let near = did_you_mean(kind, allowed.iter().copied());
                    let message = format!(
                        "unknown message type `{kind}` for `source: {}`",
                        dialect.as_str()
                    );
                    let diagnostic = self.problem(
                        &list_pointer(&format!("{pointer}/type"), types, i),
                        Target::Value,
                        message,
                    );
                    diagnostic.help = Some(match near {
                        Some(near) => format!("did you mean `{near}`?"),
                        None => format!("expected one of: {}", allowed.join(", ")),
                    });
                }
                out.types.push(kind.as_str().into());
            }
        }
        if let Some(events) = &selector.event {
            if dialect == SourceDialect::Json {
                self.problem(
                    &format!("{pointer}/event"),
                    Target::Key,
                    "`event` needs a source dialect with event names; `source: json` has none",
                )
                .help = Some("select with `equals: { $.your.name.field: ... }` instead".into());
            }
            out.events = self.names(&format!("{pointer}/event"), events, loose);
        }
        if let Some(name) = &selector.response {
            out.response = self.step_ref(&format!("{pointer}/response"), name);
        }
        if let Some(statuses) = &selector.status {
            if selector.response.is_none() {
                let step = self
                    .steps_in_scope
                    .as_ref()
                    .and_then(|s| s.earlier.last().cloned());
                self.problem(
                    &format!("{pointer}/status"),
                    Target::Key,
                    "`status` reads a response: name the step with `response: STEP`",
                )
                .help = Some(match step {
                    Some(step) => format!("add `response: {step}`"),
                    None => "only a step after another step can test a response status".into(),
                });
            }
            for (i, status) in statuses.as_slice().iter().enumerate() {
                if !(100..=599).contains(status) {
                    self.problem(
                        &list_pointer(&format!("{pointer}/status"), statuses, i),
                        Target::Value,
                        format!("`{status}` is not an HTTP status"),
                    );
                }
                out.statuses.push(*status);
            }
        }
        for (key, list) in [
            ("exists", &selector.exists),
            ("missing", &selector.missing),
            ("filled", &selector.filled),
            ("blank", &selector.blank),
        ] {
            let Some(paths) = list else { continue };
            let compiled: Vec<Path> = paths
                .as_slice()
                .iter()
                .enumerate()
                .filter_map(|(i, path)| {
                    self.path(&list_pointer(&format!("{pointer}/{key}"), paths, i), path)
                })
                .collect();
            match key {
                "exists" => out.exists = compiled,
                "missing" => out.missing = compiled,
                "filled" => out.filled = compiled,
                _ => out.blank = compiled,
            }
        }
        if let Some(equals) = &selector.equals {
            for (path, value) in equals {
                let at = format!("{pointer}/equals/{}", escape_segment(path));
                if let Some(p) = self.path_at(&at, Target::Key, path) {
                    let value = match value {
                        Value::String(text) if loose => Value::String(loosened(text)),
                        other => other.clone(),
                    };
                    out.equals.push((p, value));
                }
            }
        }
        if let Some(settings) = &selector.settings {
            for (name, value) in settings {
                let at = format!("{pointer}/settings/{}", escape_segment(name));
                if let Some(setting) = self.setting_ref_at(&at, Target::Key, name)
                    && let Err(why) = check_setting_value(setting, value)
                {
                    self.problem(
                        &at,
                        Target::Value,
                        format!("setting `{name}` can never hold this value: it {why}"),
                    );
                }
                out.settings.push((name.as_str().into(), value.clone()));
            }
        }
        if let Some(recalled) = &selector.recalled {
            out.recalled = self.recall(&format!("{pointer}/recalled"), recalled);
        }
        if let Some(not) = &selector.not {
            out.not = Some(Box::new(self.selector_in(
                &format!("{pointer}/not"),
                not,
                loose,
            )));
        }
        for (key, list, into) in [
            ("any", &selector.any, &mut out.any),
            ("all", &selector.all, &mut out.all),
        ] {
            for (i, nested) in list.iter().enumerate() {
                let compiled = self.selector_in(&format!("{pointer}/{key}/{i}"), nested, loose);
                into.push(compiled);
            }
        }
        if !selector.any.is_empty() && selector.any.len() < 2 {
            self.problem(
                &format!("{pointer}/any"),
                Target::Key,
                "`any` with one selector is that selector: write its conditions in place",
            );
        }
        out
    }

    /// Names written in the mapping or taken from a list setting; `loose` names are kept
    /// trimmed and in lower case, as they are compared.
    pub(super) fn names(&mut self, pointer: &str, names: &model::Names, loose: bool) -> Names {
        let listed = |list: &[String]| Names::Listed {
            names: list
                .iter()
                .map(|n| {
                    if loose {
                        loosened(n).into()
                    } else {
                        n.as_str().into()
                    }
                })
                .collect(),
            loose,
        };
        match names {
            model::Names::One(one) => listed(std::slice::from_ref(one)),
            model::Names::Many(many) => listed(many),
            model::Names::Setting(reference) => {
                let at = format!("{pointer}/setting");
                match self.setting_ref(&at, &reference.setting).map(|s| s.kind) {
                    Some(SettingType::List) | None => {}
                    Some(kind) => {
                        self.problem(
                            &at,
                            Target::Value,
                            format!(
                                "setting `{}` is a `{}` setting; a list of names needs a `list`",
                                reference.setting,
                                setting_type_name(kind)
                            ),
                        )
                        .help = Some(format!(
                            "declare `settings.{}` with `type: list`",
                            reference.setting
                        ));
                    }
                }
                Names::Setting {
                    name: reference.setting.as_str().into(),
                    loose,
                }
            }
        }
    }

    /// The index of an earlier step of the action being compiled.
    pub(super) fn step_ref(&mut self, pointer: &str, name: &str) -> Option<usize> {
        let Some(scope) = self.steps_in_scope.clone() else {
            self.problem(
                pointer,
                Target::Key,
                "`response` reads an earlier step's response; only a step of an action with `steps` has one",
            );
            return None;
        };
        if let Some(index) = scope.earlier.iter().position(|s| s == name) {
            return Some(index);
        }
        let current = &scope.current;
        if name.starts_with('$') {
            let diagnostic = self.problem(
                pointer,
                Target::Value,
                format!("`response` names a step, not a path: `{name}`"),
            );
            let step = scope.earlier.last().map_or("STEP", String::as_str);
            diagnostic.help = Some(format!(
                "write `response: {step}` and put the path in `from: \"{name}\"`"
            ));
            return None;
        }
        let (message, help) = if scope.later.contains(&name.to_owned()) {
            (
                format!("step `{name}` runs after `{current}`, so its response is not known yet"),
                format!("steps run in the order written: move `{name}` above `{current}`"),
            )
        } else if name == current {
            (
                format!("step `{current}` cannot read its own response"),
                "a later step reads this step's response: move the condition or field there"
                    .to_owned(),
            )
        } else {
            let near = did_you_mean(name, scope.earlier.iter().map(String::as_str));
            let help = match (near, scope.earlier.is_empty()) {
                (Some(near), _) => format!("did you mean `{near}`?"),
                (None, true) => "the first step has no earlier response to read".to_owned(),
                (None, false) => format!(
                    "a step reads the responses of the steps before it: {}",
                    scope.earlier.join(", ")
                ),
            };
            (format!("`{name}` is not a step of this action"), help)
        };
        self.problem(pointer, Target::Value, message).help = Some(help);
        None
    }
}

/// A text as loose matching compares it: trimmed, in lower case.
pub(crate) fn loosened(text: &str) -> String {
    text.trim().to_lowercase()
}
