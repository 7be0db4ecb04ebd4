//! Selectors (`when`, `where`, `refuse`, `failure`): message types, event names, paths,
//! settings, remembered values, earlier steps' responses, and their `any`, `all` and `not`
//! combinations.

use ferry_spec::model::{self, Loose, LooseCase, SettingType, SourceDialect};
use ferry_spec::{DiagnosticKind, Pointer, Target, did_you_mean};
use serde_json::Value;

use crate::checks::{check_setting_value, setting_type_name};
use crate::compiled::{Condition, Looseness, NameSource, Names, Selector, TimeWindow};
use crate::path::Path;

use super::{Compiler, SEGMENT_TYPES, each_item};

impl Compiler<'_> {
    /// Compiles a `when` (or `where`).
    pub(super) fn selector(&mut self, pointer: &Pointer, selector: &model::Selector) -> Selector {
        self.selector_in(pointer, selector, Looseness::Exact)
    }

    /// Compiles a selector; `loose` is inherited from an enclosing one. Every key of the model's
    /// selector is named here, so that a new condition is compiled when it is added.
    #[allow(clippy::too_many_lines)]
    fn selector_in(
        &mut self,
        pointer: &Pointer,
        selector: &model::Selector,
        inherited: Looseness,
    ) -> Selector {
        let model::Selector {
            kind,
            event,
            exists,
            equals,
            matches,
            is,
            time_outside,
            same,
            among,
            missing,
            settings,
            recalled,
            response,
            status,
            filled,
            blank,
            not,
            any,
            all,
            loose,
        } = selector;
        let loose = match loose {
            Loose::Flag(true) => Looseness::Loose,
            Loose::Only(LooseCase::Case) => Looseness::Case,
            Loose::Flag(false) => inherited,
        };
        let mut out = Selector::default();
        let conditions = &mut Vec::new();
        if let Some(types) = kind {
            conditions.push(Condition::Types(self.types(&pointer.key("type"), types)));
        }
        if let Some(events) = event {
            if self.mapping().source == SourceDialect::Json {
                self.problem(
                    DiagnosticKind::Selector,
                    &pointer.key("event"),
                    Target::Key,
                    "`event` needs a source dialect with event names; `source: json` has none",
                )
                .help = Some("select with `equals: { $.your.name.field: ... }` instead".into());
            }
            conditions.push(Condition::Events(self.names(
                &pointer.key("event"),
                events,
                loose,
            )));
        }
        if let Some(name) = response {
            out.response = self.step_ref(&pointer.key("response"), name);
        }
        if let Some(statuses) = status {
            if response.is_none() {
                let step = self
                    .steps_in_scope
                    .as_ref()
                    .and_then(|s| s.earlier.last().cloned());
                self.problem(
                    DiagnosticKind::Step,
                    &pointer.key("status"),
                    Target::Key,
                    "`status` reads a response: name the step with `response: STEP`",
                )
                .help = Some(match step {
                    Some(step) => format!("add `response: {step}`"),
                    None => "only a step after another step can test a response status".into(),
                });
            }
            for (at, status) in each_item(&pointer.key("status"), statuses) {
                if !(100..=599).contains(status) {
                    self.problem(
                        DiagnosticKind::Step,
                        &at,
                        Target::Value,
                        format!("`{status}` is not an HTTP status"),
                    );
                }
            }
            conditions.push(Condition::Statuses(statuses.as_slice().to_vec()));
        }
        let paths = |compiler: &mut Self, key: &str, list: &Option<model::OneOrMany<String>>| {
            list.as_ref().map(|list| {
                each_item(&pointer.key(key), list)
                    .filter_map(|(at, text)| compiler.path(&at, text))
                    .collect::<Vec<Path>>()
            })
        };
        if let Some(list) = paths(self, "exists", exists) {
            conditions.push(Condition::Exists(list));
        }
        if let Some(list) = paths(self, "missing", missing) {
            conditions.push(Condition::Missing(list));
        }
        if let Some(list) = paths(self, "filled", filled) {
            conditions.push(Condition::Filled(list));
        }
        if let Some(list) = paths(self, "blank", blank) {
            conditions.push(Condition::Blank(list));
        }
        if let Some(equals) = equals {
            let mut compiled = Vec::new();
            for (path, value) in equals {
                let at = pointer.key("equals").key(path);
                if let Some(p) = self.path_at(&at, Target::Key, path) {
                    let value = match value {
                        Value::String(text) => Value::String(loosened(text, loose)),
                        other => other.clone(),
                    };
                    compiled.push((p, value));
                }
            }
            conditions.push(Condition::Equals(compiled, loose));
        }
        if let Some(matches) = matches {
            let mut compiled = Vec::new();
            for (path, pattern) in matches {
                let at = pointer.key("matches").key(path);
                let path = self.path_at(&at, Target::Key, path);
                let regex = self.regex(&at, pattern);
                if let (Some(path), Some(regex)) = (path, regex) {
                    compiled.push((path, regex));
                }
            }
            conditions.push(Condition::Matches(compiled));
        }
        if let Some(is) = is {
            let mut compiled = Vec::new();
            for (path, types) in is {
                let at = pointer.key("is").key(path);
                if let Some(path) = self.path_at(&at, Target::Key, path) {
                    compiled.push((path, types.as_slice().to_vec()));
                }
            }
            conditions.push(Condition::Is(compiled));
        }
        if let Some(windows) = time_outside {
            let mut compiled = Vec::new();
            for (path, window) in windows {
                let at = pointer.key("time_outside").key(path);
                let path = self.path_at(&at, Target::Key, path);
                let window = self.time_window(&at, window);
                if let (Some(path), Some(window)) = (path, window) {
                    compiled.push((path, window));
                }
            }
            conditions.push(Condition::TimeOutside(compiled));
        }
        if let Some((a, b)) = same
            .as_ref()
            .and_then(|pair| self.path_pair(&pointer.key("same"), pair))
        {
            conditions.push(Condition::Same(a, b, loose));
        }
        if let Some((a, b)) = among
            .as_ref()
            .and_then(|pair| self.path_pair(&pointer.key("in"), pair))
        {
            conditions.push(Condition::In(a, b, loose));
        }
        if let Some(settings) = settings {
            let mut compiled = Vec::new();
            for (name, value) in settings {
                let at = pointer.key("settings").key(name);
                if let Some(setting) = self.setting_ref_at(&at, Target::Key, name)
                    && let Err(why) = check_setting_value(setting, value)
                {
                    self.problem(
                        DiagnosticKind::Setting,
                        &at,
                        Target::Value,
                        format!("setting `{name}` can never hold this value: it {why}"),
                    );
                }
                compiled.push((name.as_str().into(), value.clone()));
            }
            conditions.push(Condition::Settings(compiled));
        }
        if let Some(recalled) = recalled
            && let Some(rule) = self.recall(&pointer.key("recalled"), recalled)
        {
            conditions.push(Condition::Recalled(rule));
        }
        if let Some(not) = not {
            let inner = self.selector_in(&pointer.key("not"), not, loose);
            conditions.push(Condition::Not(Box::new(inner)));
        }
        for (key, list) in [("any", any), ("all", all)] {
            if list.is_empty() {
                continue;
            }
            let nested: Vec<Selector> = list
                .iter()
                .enumerate()
                .map(|(i, nested)| self.selector_in(&pointer.key(key).index(i), nested, loose))
                .collect();
            conditions.push(if key == "any" {
                Condition::Any(nested)
            } else {
                Condition::All(nested)
            });
        }
        if any.len() == 1 {
            self.problem(
                DiagnosticKind::Selector,
                &pointer.key("any"),
                Target::Key,
                "`any` with one selector is that selector: write its conditions in place",
            );
        }
        out.conditions = std::mem::take(conditions);
        out
    }

    /// A `time_outside` window: its spans in milliseconds.
    fn time_window(&mut self, pointer: &Pointer, window: &model::TimeWindow) -> Option<TimeWindow> {
        if window.past.is_none() && window.future.is_none() {
            self.problem(
                DiagnosticKind::Selector,
                pointer,
                Target::Value,
                "a time window needs `past`, `future` or both: how far from now a time may lie",
            )
            .help = Some("e.g. `{ past: 7d, future: 1m }`".into());
            return None;
        }
        let past = self.span(&pointer.key("past"), window.past.as_deref());
        let future = self.span(&pointer.key("future"), window.future.as_deref());
        Some(TimeWindow {
            past: past.ok()?,
            future: future.ok()?,
            unit: window.unit.unwrap_or_default(),
        })
    }

    /// A span of a time window in milliseconds (`None` when not given); `Err` once reported.
    fn span(&mut self, pointer: &Pointer, text: Option<&str>) -> Result<Option<i64>, ()> {
        let Some(text) = text else { return Ok(None) };
        if let Some(millis) = span_millis(text) {
            return Ok(Some(millis));
        }
        self.problem(
            DiagnosticKind::Selector,
            pointer,
            Target::Value,
            format!("`{text}` is not a span of time"),
        )
        .help = Some("write a whole number and a unit: `90s`, `15m`, `72h` or `7d`".into());
        Err(())
    }

    /// Message types, checked against the source dialect.
    fn types(&mut self, pointer: &Pointer, types: &model::OneOrMany<String>) -> Vec<Box<str>> {
        let dialect = self.mapping().source;
        if dialect == SourceDialect::Json {
            self.problem(
                DiagnosticKind::Selector,
                pointer,
                Target::Key,
                "`type` needs a source dialect with message types; `source: json` has none",
            )
            .help = Some("select with `exists` or `equals` instead".into());
        }
        let allowed: &[&str] = match dialect {
            SourceDialect::Segment => SEGMENT_TYPES,
            SourceDialect::Extole => &["track", "delete"],
            SourceDialect::Amplitude | SourceDialect::Json => &["track"],
        };
        let mut out = Vec::new();
        for (at, kind) in each_item(pointer, types) {
            if !allowed.contains(&kind.as_str()) && dialect != SourceDialect::Json {
                let near = did_you_mean(kind, allowed.iter().copied());
                let message = format!(
                    "unknown message type `{kind}` for `source: {}`",
                    dialect.as_str()
                );
                self.problem(DiagnosticKind::Selector, &at, Target::Value, message)
                    .help = Some(match near {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("expected one of: {}", allowed.join(", ")),
                });
            }
            out.push(kind.as_str().into());
        }
        out
    }

    /// Names written in the mapping or taken from list settings; loose names are kept as they
    /// are compared.
    pub(super) fn names(
        &mut self,
        pointer: &Pointer,
        names: &model::Names,
        loose: Looseness,
    ) -> Names {
        match names {
            model::Names::One(one) => Names::Listed {
                names: vec![loosened(one, loose).into()],
                settings: Vec::new(),
                loose,
            },
            model::Names::Many(items) => {
                let mut listed = Vec::new();
                let mut settings = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        model::NameItem::Name(name) => listed.push(loosened(name, loose).into()),
                        model::NameItem::Setting(reference) => {
                            settings.extend(self.name_source(&pointer.index(i), reference));
                        }
                        model::NameItem::Path(_) | model::NameItem::Pattern(_) => {
                            let (what, help) = match item {
                                model::NameItem::Path(_) => (
                                    "names read from the event (`path:`) are allowed only in a bucket's `except`",
                                    "write the names here, or take them from a list setting with `{ setting: NAME }`",
                                ),
                                _ => (
                                    "names a pattern matches (`matches:`) are allowed only in a bucket's `only` and `except`",
                                    "to test the event name against a pattern, write the condition `matches: { $.event: REGEX }`",
                                ),
                            };
                            self.problem(
                                DiagnosticKind::Field,
                                &pointer.index(i),
                                Target::Value,
                                what,
                            )
                            .help = Some(help.into());
                        }
                    }
                }
                Names::Listed {
                    names: listed,
                    settings,
                    loose,
                }
            }
            model::Names::Setting(reference) => match self.name_source(pointer, reference) {
                Some(source) => Names::Setting { source, loose },
                None => Names::Any,
            },
        }
    }

    /// The list setting `reference` names, checked: a `list` setting, whose default (when it
    /// has one) holds names where `member` says.
    pub(super) fn name_source(
        &mut self,
        pointer: &Pointer,
        reference: &model::SettingNames,
    ) -> Option<NameSource> {
        let at = pointer.key("setting");
        let name = &reference.setting;
        let declared = self.setting_ref(&at, name)?;
        if declared.kind != SettingType::List {
            self.problem(
                DiagnosticKind::Setting,
                &at,
                Target::Value,
                format!(
                    "setting `{name}` is a `{}` setting; a list of names needs a `list`",
                    setting_type_name(declared.kind)
                ),
            )
            .help = Some(format!("declare `settings.{name}` with `type: list`"));
            return None;
        }
        let member = reference.member.as_deref().map(Box::<str>::from);
        let setting: Box<str> = name.as_str().into();
        let known = self
            .name_sources
            .iter()
            .find(|s| s.setting == setting && s.member == member)
            .map(|s| s.slot);
        let slot = if let Some(slot) = known {
            slot
        } else {
            // The default is checked once, where the first use of this member is written.
            self.check_names_default(pointer, reference, declared);
            let slot = self.name_sources.len();
            self.name_sources.push(NameSource {
                setting: setting.clone(),
                member: member.clone(),
                slot,
            });
            slot
        };
        Some(NameSource {
            setting,
            member,
            slot,
        })
    }

    /// A default of a names setting read with `member`: each item text, or an object whose
    /// member is text (or absent).
    fn check_names_default(
        &mut self,
        pointer: &Pointer,
        reference: &model::SettingNames,
        setting: &model::Setting,
    ) {
        let name = &reference.setting;
        if let (Some(member), Some(Value::Array(items))) = (&reference.member, &setting.default) {
            let holds_name = |item: &Value| {
                item.is_string()
                    || item.as_object().is_some_and(|object| {
                        object
                            .get(member.as_str())
                            .is_none_or(|v| v.is_string() || v.is_null())
                    })
            };
            if let Some(i) = items.iter().position(|item| !holds_name(item)) {
                let line = self
                    .document
                    .diagnostic(
                        DiagnosticKind::Setting,
                        &pointer.key("member"),
                        Target::Value,
                        "",
                    )
                    .line;
                let default_at = Pointer::root()
                    .key("settings")
                    .key(name)
                    .key("default")
                    .index(i);
                self.problem(
                    DiagnosticKind::Setting,
                    &default_at,
                    Target::Value,
                    format!(
                        "`{}` holds no name: `member: {member}` at line {line} reads each item's `{member}`, which must be text",
                        crate::convert::short(&items[i])
                    ),
                )
                .help = Some(format!(
                    "write each item as text, or as an object whose `{member}` is text, e.g. `{{ {member}: age }}`"
                ));
            }
        }
    }

    /// The two paths of `same` or `in` (the schema holds them to two), each compiled where it
    /// is written; `None` when either has a problem, already reported.
    fn path_pair(&mut self, at: &Pointer, pair: &[String]) -> Option<(Path, Path)> {
        let [a, b] = pair else { return None };
        let a = self.path(&at.index(0), a);
        let b = self.path(&at.index(1), b);
        a.zip(b)
    }

    /// The index of an earlier step of the action being compiled.
    pub(super) fn step_ref(&mut self, pointer: &Pointer, name: &str) -> Option<usize> {
        let Some(scope) = self.steps_in_scope.clone() else {
            self.problem(
                DiagnosticKind::Step,
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
                DiagnosticKind::Step,
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
        self.problem(DiagnosticKind::Step, pointer, Target::Value, message)
            .help = Some(help);
        None
    }
}

/// A text as a comparison of `loose` reads it.
pub(crate) fn loosened(text: &str, loose: Looseness) -> String {
    match loose {
        Looseness::Exact => text.to_owned(),
        Looseness::Loose => text.trim().to_lowercase(),
        Looseness::Case => text.to_lowercase(),
    }
}

/// Milliseconds in a span written as a whole number and a unit: `90s`, `15m`, `72h`, `7d`.
fn span_millis(text: &str) -> Option<i64> {
    let unit = match text.chars().last()? {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    let count = &text[..text.len() - 1];
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    count.parse::<i64>().ok()?.checked_mul(unit)
}
