//! Actions: their `when` selectors, requests or steps, batch rules, `remember` and dedupe keys.

use std::sync::Arc;
use std::time::Duration;

use ferry_spec::model::{self, BodyFormat, SettingType, SourceDialect};
use ferry_spec::{Diagnostic, Target, did_you_mean, escape_segment};
use serde_json::Value;

use crate::batch_rule::{BatchRule, ItemErrorRule, Merge};
use crate::compiled::{
    CompiledAction, CompiledRequest, CompiledStep, Names, Remember, Selector, Source,
};
use crate::path::Path;
use crate::template::Escape;

use super::{
    Compiler, Place, SEGMENT_TYPES, StepScope, check_header_name, list_pointer, settle_steps,
};
use crate::checks::{check_setting_type, setting_type_name};

impl Compiler<'_> {
    #[allow(clippy::too_many_lines)]
    pub(super) fn action(
        &mut self,
        name: &str,
        action: &model::Action,
        slots: &mut usize,
    ) -> Option<CompiledAction> {
        let base = format!("/actions/{}", escape_segment(name));
        let errors_before = self.problems.len();
        self.steps_in_scope = None;
        let when = self.selector(&format!("{base}/when"), &action.when);
        let mut steps = Vec::new();
        match (&action.request, action.steps.is_empty()) {
            (Some(request), true) => {
                let request = self.request(&format!("{base}/request"), request);
                let batch = action
                    .batch
                    .as_ref()
                    .and_then(|b| self.batch(&format!("{base}/batch"), b, request.as_ref()));
                if let Some(request) = request {
                    steps.push(CompiledStep {
                        name: None,
                        when: None,
                        request,
                        batch,
                        slot: *slots,
                        handled: Vec::new(),
                    });
                    *slots += 1;
                }
            }
            (None, false) => {
                if action.batch.is_some() {
                    self.problem(
                        &format!("{base}/batch"),
                        Target::Key,
                        "an action with `steps` declares `batch` on the step it applies to",
                    );
                }
                let names: Vec<String> = action.steps.keys().cloned().collect();
                let mut earlier: Vec<String> = Vec::new();
                for (at, (step_name, step)) in action.steps.iter().enumerate() {
                    let pointer = format!("{base}/steps/{}", escape_segment(step_name));
                    self.steps_in_scope = Some(StepScope {
                        current: step_name.clone(),
                        earlier: earlier.clone(),
                        later: names[at + 1..].to_vec(),
                    });
                    let step_when = step
                        .when
                        .as_ref()
                        .map(|w| self.selector(&format!("{pointer}/when"), w));
                    let request = self.request(&format!("{pointer}/request"), &step.request);
                    let batch = step
                        .batch
                        .as_ref()
                        .and_then(|b| self.batch(&format!("{pointer}/batch"), b, request.as_ref()));
                    earlier.push(step_name.clone());
                    if let Some(request) = request {
                        steps.push(CompiledStep {
                            name: Some(step_name.as_str().into()),
                            when: step_when,
                            request,
                            batch,
                            slot: *slots,
                            handled: Vec::new(),
                        });
                        *slots += 1;
                    }
                }
                self.steps_in_scope = None;
            }
            (Some(_), false) => {
                self.problem(
                    &format!("{base}/steps"),
                    Target::Key,
                    "an action has either one `request` or several `steps`, not both",
                )
                .help = Some("move the request into a step".into());
            }
            (None, true) => {
                self.problem(
                    &base,
                    Target::Key,
                    format!("action `{name}` has neither `request` nor `steps`"),
                )
                .help = Some("add `request: { method: POST, path: /... }`".into());
            }
        }
        let remember = action
            .remember
            .iter()
            .filter_map(|(store, rule)| {
                let pointer = format!("{base}/remember/{}", escape_segment(store));
                let key = self.path(&format!("{pointer}/key"), &rule.key);
                let value: Vec<Path> = rule
                    .value
                    .as_slice()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        self.path(
                            &list_pointer(&format!("{pointer}/value"), &rule.value, i),
                            p,
                        )
                    })
                    .collect();
                Some(Remember {
                    store: store.as_str().into(),
                    key: key?,
                    value,
                })
            })
            .collect();
        let dedupe_key = action.dedupe_key.as_ref().and_then(|field| {
            let place = Place {
                pointer: format!("{base}/dedupe_key"),
                label: "dedupe_key".into(),
            };
            let compiled = self.field(&place, "dedupe_key", field, true)?;
            Some(compiled)
        });
        if self.problems.len() > errors_before {
            return None;
        }
        let mut compiled = CompiledAction {
            name: name.into(),
            when,
            steps,
            remember,
            dedupe_key,
        };
        settle_steps(&mut compiled);
        Some(compiled)
    }

    fn request(&mut self, base: &str, request: &model::Request) -> Option<CompiledRequest> {
        let errors_before = self.problems.len();
        let path_pointer = format!("{base}/path");
        if !request.path.starts_with('/') {
            let help = if request.path.contains("://") || request.path.starts_with("{{") {
                "put only the path here, e.g. `/v1/events`: the scheme and host come from \
                 `http.base_url`, and event data can never choose them"
                    .to_owned()
            } else {
                format!(
                    "write `/{}`: the path is added to `http.base_url`",
                    request.path
                )
            };
            self.problem(
                &path_pointer,
                Target::Value,
                "the request path must start with `/`",
            )
            .help = Some(help);
        }
        let path = self.template(&path_pointer, &request.path, Escape::PathSegment);
        let root = Place {
            pointer: format!("{base}/query"),
            label: String::new(),
        };
        let query = self.fields(&root, &request.query, "&", true);
        let mut headers = Vec::new();
        for (header, value) in &request.headers {
            let pointer = format!("{base}/headers/{}", escape_segment(header));
            check_header_name(header)
                .err()
                .map(|why| self.problem(&pointer, Target::Key, why));
            if let Some(t) = self.template(&pointer, value, Escape::None) {
                headers.push((header.as_str().into(), t));
            }
        }
        let body = request.body.as_ref().map(|body| {
            let root = Place {
                pointer: format!("{base}/body"),
                label: String::new(),
            };
            self.fields(&root, body, ".", request.format == BodyFormat::Form)
        });
        if self.problems.len() > errors_before {
            return None;
        }
        Some(CompiledRequest {
            method: request.method,
            path: path?,
            query,
            headers,
            body,
            format: request.format,
        })
    }

    #[allow(clippy::too_many_lines)]
    pub(super) fn selector(&mut self, pointer: &str, selector: &model::Selector) -> Selector {
        let dialect = self.mapping().source;
        let mut out = Selector::default();
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
            out.events = self.names(&format!("{pointer}/event"), events);
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
        for (key, list, into_missing) in [
            ("exists", &selector.exists, false),
            ("missing", &selector.missing, true),
        ] {
            if let Some(paths) = list {
                for (i, path) in paths.as_slice().iter().enumerate() {
                    if let Some(p) =
                        self.path(&list_pointer(&format!("{pointer}/{key}"), paths, i), path)
                    {
                        if into_missing {
                            out.missing.push(p);
                        } else {
                            out.exists.push(p);
                        }
                    }
                }
            }
        }
        if let Some(equals) = &selector.equals {
            for (path, value) in equals {
                let at = format!("{pointer}/equals/{}", escape_segment(path));
                if let Some(p) = self.path_at(&at, Target::Key, path) {
                    out.equals.push((p, value.clone()));
                }
            }
        }
        if let Some(settings) = &selector.settings {
            for (name, value) in settings {
                let at = format!("{pointer}/settings/{}", escape_segment(name));
                if let Some(setting) = self.setting_ref_at(&at, Target::Key, name)
                    && let Err(why) = check_setting_type(setting.kind, value)
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
            out.not = Some(Box::new(self.selector(&format!("{pointer}/not"), not)));
        }
        out
    }

    /// Names written in the mapping or taken from a list setting.
    pub(super) fn names(&mut self, pointer: &str, names: &model::Names) -> Names {
        match names {
            model::Names::One(one) => Names::Listed(vec![one.as_str().into()]),
            model::Names::Many(many) => {
                Names::Listed(many.iter().map(|n| n.as_str().into()).collect())
            }
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
                Names::Setting(reference.setting.as_str().into())
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

    /// A batch needs a JSON body, and `concat` needs list fields of that body.
    fn check_batchable(&mut self, pointer: &str, merge: Option<&Merge>, request: &CompiledRequest) {
        if request.body.is_none() {
            self.problem(
                pointer,
                Target::Key,
                "this request has no body, so there is nothing to merge",
            )
            .help = Some("give the request a JSON `body`, or remove `batch`".into());
        } else if request.format != BodyFormat::Json {
            self.problem(
                pointer,
                Target::Key,
                "only requests with a JSON body can be batched",
            )
            .help = Some("remove `format: form`, or remove `batch`".into());
        } else if let (Some(Merge::Concat(names)), Some(body)) = (merge, &request.body) {
            for (i, name) in names.iter().enumerate() {
                let field = body.iter().find(|f| *f.key == **name);
                let is_list = field.is_some_and(|f| {
                    matches!(
                        f.source,
                        Source::Items(_) | Source::Each { .. } | Source::Value(Value::Array(_))
                    )
                });
                if !is_list {
                    let at = format!("{pointer}/concat/{i}");
                    let (message, help) = if field.is_some() {
                        (
                            format!(
                                "body field `{name}` is not a list (`items`, `each` or a list `value`), so it cannot be concatenated"
                            ),
                            Some(format!(
                                "make it a list: `{name}: {{ items: [ {{ fields: ... }} ] }}`"
                            )),
                        )
                    } else {
                        let keys: Vec<&str> = body.iter().map(|f| &*f.key).collect();
                        (
                            format!("the request body has no field `{name}` to concatenate"),
                            did_you_mean(name, keys.iter().copied())
                                .map(|n| format!("did you mean `{n}`?")),
                        )
                    };
                    self.problem(&at, Target::Value, message).help = help;
                }
            }
        }
    }

    fn batch(
        &mut self,
        pointer: &str,
        batch: &model::Batch,
        request: Option<&CompiledRequest>,
    ) -> Option<Arc<BatchRule>> {
        let errors_before = self.problems.len();
        let merge = match (batch.concat.is_empty(), &batch.wrap) {
            (false, None) => Some(Merge::Concat(
                batch.concat.iter().map(|c| c.as_str().into()).collect(),
            )),
            (true, Some(wrap)) => Some(Merge::Wrap(wrap.as_str().into())),
            (false, Some(_)) => {
                self.problem(&format!("{pointer}/wrap"), Target::Key, "a batch either concatenates arrays (`concat`) or wraps bodies (`wrap`), not both");
                None
            }
            (true, None) => {
                self.problem(pointer, Target::Key, "say how requests merge: `concat: [array, ...]` or `wrap: KEY`")
                    .help = Some("Braze-style bodies concatenate their arrays: `concat: [attributes, events, purchases]`".into());
                None
            }
        };
        if let Some(request) = request {
            self.check_batchable(pointer, merge.as_ref(), request);
        }
        let limit = self.mapping().http.max_body_bytes;
        if let Some(max) = batch.max_bytes
            && max > limit
        {
            self.problem(
                &format!("{pointer}/max_bytes"),
                Target::Value,
                format!("`max_bytes` is larger than `http.max_body_bytes` ({limit})"),
            )
            .help = Some(
                "leave `max_bytes` out to use `http.max_body_bytes`, or raise `http.max_body_bytes`"
                    .into(),
            );
        }
        let key = batch
            .key
            .as_ref()
            .and_then(|key| self.template(&format!("{pointer}/key"), key, Escape::None));
        let item_errors = batch.item_errors.as_ref().and_then(|rule| {
            let at = format!("{pointer}/item_errors");
            let list = self.path(&format!("{at}/list"), &rule.list);
            let index = self.path(&format!("{at}/index"), &rule.index);
            let array = rule
                .array
                .as_ref()
                .map(|a| self.path(&format!("{at}/array"), a));
            let reason = rule
                .reason
                .as_ref()
                .map(|r| self.path(&format!("{at}/reason"), r));
            Some(ItemErrorRule {
                list: list?,
                index: index?,
                array: array.map(|a| a.ok_or(())).transpose().ok()?,
                reason: reason.map(|r| r.ok_or(())).transpose().ok()?,
            })
        });
        if self.problems.len() > errors_before {
            return None;
        }
        Some(Arc::new(BatchRule {
            merge: merge?,
            max_items: batch.max_items as usize,
            max_bytes: usize::try_from(batch.max_bytes.unwrap_or(limit)).unwrap_or(usize::MAX),
            linger: batch.linger_ms.map(Duration::from_millis),
            key,
            item_errors,
        }))
    }

    pub(super) fn path(&mut self, pointer: &str, text: &str) -> Option<Path> {
        self.path_at(pointer, Target::Value, text)
    }

    pub(super) fn path_at(&mut self, pointer: &str, target: Target, text: &str) -> Option<Path> {
        match Path::parse(text) {
            Ok(path) => Some(path),
            Err(why) => {
                let (message, at) = match unbalanced(text).or_else(|| parse_error_column(&why)) {
                    Some(column) => {
                        let rest: String = text.chars().skip(column - 1).collect();
                        if rest.is_empty() {
                            (
                                format!("invalid JSONPath `{text}`: it ends too early"),
                                None,
                            )
                        } else if let Some(what) = unclosed(&rest) {
                            (
                                format!("invalid JSONPath `{text}`: {what}"),
                                Some((column, rest.chars().take(1).collect())),
                            )
                        } else {
                            (
                                format!("invalid JSONPath `{text}`: unexpected `{rest}`"),
                                Some((column, rest)),
                            )
                        }
                    }
                    None => (why, None),
                };
                let diagnostic = self.problem(pointer, target, message);
                if let Some((column, rest)) = &at {
                    narrow_path(diagnostic, text, *column, rest);
                }
                if text.starts_with('$') {
                    diagnostic.help = Some(path_help(text, at.as_ref().map(|(c, _)| *c)));
                }
                None
            }
        }
    }
}

/// The 1-based character where the JSONPath parser stopped, read from its error text
/// (`... --> 1:10 ...`).
pub(super) fn parse_error_column(why: &str) -> Option<usize> {
    let (_, after) = why.split_once("--> 1:")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|&column| column >= 1)
}

/// The 1-based character of the first bracket or quote of `text` that is never closed.
pub(super) fn unbalanced(text: &str) -> Option<usize> {
    let mut open: Vec<(usize, char)> = Vec::new();
    let mut quote: Option<(usize, char)> = None;
    let mut escaped = false;
    for (i, c) in text.chars().enumerate() {
        if let Some((_, q)) = quote {
            match c {
                '\\' if !escaped => escaped = true,
                c if c == q && !escaped => quote = None,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some((i + 1, c)),
            '[' | '(' => open.push((i + 1, c)),
            ']' | ')' => {
                let want = if c == ']' { '[' } else { '(' };
                match open.pop() {
                    Some((_, o)) if o == want => {}
                    // A stray closing bracket: let the parser say what it expected.
                    _ => return None,
                }
            }
            _ => {}
        }
    }
    quote
        .map(|(at, _)| at)
        .or_else(|| open.first().map(|(at, _)| *at))
}

/// "this `[` is never closed", for the rest of a path that starts at an unclosed bracket or
/// quote.
pub(super) fn unclosed(rest: &str) -> Option<String> {
    let first = rest.chars().next()?;
    if !matches!(first, '[' | '(' | '\'' | '"') || unbalanced(rest) != Some(1) {
        return None;
    }
    let closing = match first {
        '[' => ']',
        '(' => ')',
        quote => quote,
    };
    Some(format!("this `{first}` is never closed with `{closing}`"))
}

/// Puts the caret of a JSONPath diagnostic under the part the parser could not read, when the
/// path is written on the diagnostic's line exactly as `text`.
pub(super) fn narrow_path(diagnostic: &mut Diagnostic, text: &str, column: usize, rest: &str) {
    let chars: Vec<char> = diagnostic.snippet.chars().collect();
    let needle: Vec<char> = text.chars().collect();
    let start = diagnostic.column.saturating_sub(1);
    // A quoted value starts one character after its quote.
    let begin = [start, start + 1]
        .into_iter()
        .find(|&at| chars.get(at..at + needle.len()) == Some(&needle[..]));
    if let Some(begin) = begin {
        diagnostic.column = begin + column;
        diagnostic.len = rest.chars().count();
    }
}

/// How to fix a JSONPath the parser rejected.
pub(super) fn path_help(text: &str, column: Option<usize>) -> String {
    let before = column.and_then(|c| text.chars().nth(c.checked_sub(2)?));
    let after = column.and_then(|c| text.chars().nth(c - 1));
    if let Some(column) = column
        && before == Some('[')
        && after.is_some_and(|c| c.is_alphabetic() || c == '_')
    {
        let head: String = text.chars().take(column - 1).collect();
        let name: String = text
            .chars()
            .skip(column - 1)
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let tail: String = text
            .chars()
            .skip(column - 1 + name.chars().count())
            .collect();
        return format!("quote the member name: `{head}'{name}'{tail}`");
    }
    "JSONPath reads like `$.traits.email`, `$.products[0].sku` or `$.traits['first name']`"
        .to_owned()
}
