//! Turns a parsed mapping into its compiled form, checking every path, template, setting
//! reference and rule, and reporting every problem at once with its place in the file.

use std::collections::HashSet;
use std::sync::Arc;

use ferry_spec::model::{
    self, BodyFormat, Conversion, Mapping, Otherwise, SettingType, SourceDialect,
};
use ferry_spec::{Diagnostic, Diagnostics, Document, Target, did_you_mean, escape_segment};
use serde_json::Value;

use crate::compiled::{
    CompiledAction, CompiledMapping, Field, HeaderValue, Recall, Remap, Remember, Rest, Selector,
    Source,
};
use crate::path::{Path, Segment};
use crate::template::{Escape, Template, Templates};

/// Message types of the Segment spec (plus `delete`, which Segment sends to destinations).
const SEGMENT_TYPES: &[&str] = &[
    "identify", "track", "page", "screen", "group", "alias", "delete",
];

/// Compiles a loaded mapping, or returns every problem in it.
pub fn compile(document: Document) -> Result<CompiledMapping, Diagnostics> {
    let mut compiler = Compiler {
        document: &document,
        problems: Vec::new(),
        templates: Templates::default(),
    };
    let mapping = &document.mapping;
    compiler.check_settings();
    let base_url =
        compiler.settings_template("/http/base_url", &mapping.http.base_url, "http.base_url");
    let headers = compiler.mapping_headers();
    let actions: Vec<CompiledAction> = mapping
        .actions
        .iter()
        .filter_map(|(name, action)| compiler.action(name, action))
        .collect();
    compiler.check_recalls(&actions);

    let Compiler {
        problems,
        templates,
        ..
    } = compiler;
    if !problems.is_empty() {
        let mut problems = problems;
        problems.sort_by_key(|d| (d.line, d.column));
        problems.dedup();
        return Err(Diagnostics(problems));
    }
    let base_url = base_url.expect("no problems means the base URL compiled");
    Ok(CompiledMapping {
        name: mapping.name.as_str().into(),
        file: document.file.clone(),
        spec: document.mapping,
        templates,
        base_url,
        headers,
        actions,
    })
}

struct Compiler<'d> {
    document: &'d Document,
    problems: Vec<Diagnostic>,
    templates: Templates,
}

/// Where a field sits: its pointer in the file and its dotted output label.
#[derive(Clone)]
struct Place {
    pointer: String,
    label: String,
}

impl Place {
    fn child(&self, key: &str, separator: &str) -> Place {
        Place {
            pointer: format!("{}/{}", self.pointer, escape_segment(key)),
            label: if self.label.is_empty() {
                key.to_owned()
            } else {
                format!("{}{separator}{key}", self.label)
            },
        }
    }
}

impl Compiler<'_> {
    fn mapping(&self) -> &Mapping {
        &self.document.mapping
    }

    fn problem(
        &mut self,
        pointer: &str,
        target: Target,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let diagnostic = self.document.diagnostic(pointer, target, message);
        self.problems.push(diagnostic);
        self.problems.last_mut().expect("just pushed")
    }

    fn check_settings(&mut self) {
        let settings: Vec<(String, model::Setting)> = self
            .mapping()
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, setting) in settings {
            let pointer = format!("/settings/{}", escape_segment(&name));
            if setting.required && setting.default.is_some() {
                self.problem(
                    &format!("{pointer}/default"),
                    Target::Key,
                    format!("setting `{name}` is required and also has a default"),
                )
                .help = Some(
                    "a default makes the setting optional: remove `required: true` or the default"
                        .into(),
                );
            }
            if let Some(default) = &setting.default
                && let Err(why) = crate::connection::check_setting_type(setting.kind, default)
            {
                self.problem(
                    &format!("{pointer}/default"),
                    Target::Value,
                    format!("the default of setting `{name}` {why}"),
                );
            }
        }
    }

    /// A template that may read settings only (base URL, shared headers, auth).
    fn settings_template(&mut self, pointer: &str, source: &str, what: &str) -> Option<Template> {
        let template = self.template(pointer, source, Escape::None)?;
        if template.reads_event() {
            let message = if what == "http.base_url" {
                "the base URL cannot use event data: event data must never choose the host"
                    .to_owned()
            } else {
                format!("`{what}` is shared by every request and cannot use event data")
            };
            let help = if what == "http.base_url" {
                "put event values in an action's `request.path`, where each one is URL-encoded"
            } else {
                "use an action's `request.headers` for values taken from the event"
            };
            self.problem(pointer, Target::Value, message).help = Some(help.into());
            return None;
        }
        for setting in &template.settings {
            let declared = self.mapping().settings.get(setting).cloned();
            if let Some(declared) = declared
                && !declared.required
                && declared.default.is_none()
            {
                let diagnostic = self.problem(pointer, Target::Value, format!("`{what}` uses setting `{setting}`, which is neither required nor has a default"));
                narrow(diagnostic, &[&format!("settings.{setting}"), setting]);
                diagnostic.help = Some(format!(
                    "mark `settings.{setting}` as `required: true`, or give it a `default`"
                ));
            }
        }
        if what == "http.base_url" && template.settings.is_empty() {
            check_base_url(source)
                .err()
                .map(|why| self.problem(pointer, Target::Value, why));
        }
        Some(template)
    }

    fn template(&mut self, pointer: &str, source: &str, escape: Escape) -> Option<Template> {
        let template = match self.templates.add(source, escape) {
            Ok(template) => template,
            Err(why) => {
                self.problem(pointer, Target::Value, format!("invalid template: {why}"));
                return None;
            }
        };
        let mut ok = true;
        for name in &template.unknown {
            ok = false;
            let diagnostic = self.problem(
                pointer,
                Target::Value,
                format!("the template reads `{name}`, which is not defined"),
            );
            narrow(diagnostic, &[name]);
            diagnostic.help = Some(match did_you_mean(name, ["event", "settings"]) {
                Some(near) => format!("did you mean `{near}`?"),
                None => "templates can read `event` (the incoming event) and `settings`".into(),
            });
        }
        for setting in &template.settings {
            if !self.mapping().settings.contains_key(setting) {
                ok = false;
                let near =
                    did_you_mean(setting, self.mapping().settings.keys().map(String::as_str))
                        .map(str::to_owned);
                let diagnostic = self.problem(
                    pointer,
                    Target::Value,
                    format!("the template reads `settings.{setting}`, which is not declared"),
                );
                narrow(diagnostic, &[&format!("settings.{setting}"), setting]);
                diagnostic.help = Some(match near {
                    Some(near) => format!("did you mean `settings.{near}`?"),
                    None => "declare it under `settings:`".into(),
                });
            }
        }
        ok.then_some(template)
    }

    fn mapping_headers(&mut self) -> Vec<(Arc<str>, HeaderValue)> {
        let http = self.mapping().http.clone();
        let mut headers = Vec::new();
        if let Some(auth) = &http.auth {
            if let Some(token) = &auth.bearer
                && let Some(t) = self.settings_template(
                    "/http/auth/bearer",
                    &format!("Bearer {token}"),
                    "http.auth.bearer",
                )
            {
                headers.push(("Authorization".into(), HeaderValue::Template(t)));
            }
            if let Some(basic) = &auth.basic {
                let username = self.settings_template(
                    "/http/auth/basic/username",
                    &basic.username,
                    "http.auth.basic.username",
                );
                let password = self.settings_template(
                    "/http/auth/basic/password",
                    &basic.password,
                    "http.auth.basic.password",
                );
                if let (Some(username), Some(password)) = (username, password) {
                    headers.push((
                        "Authorization".into(),
                        HeaderValue::Basic { username, password },
                    ));
                }
            }
            if let Some(header) = &auth.header {
                check_header_name(&header.name)
                    .err()
                    .map(|why| self.problem("/http/auth/header/name", Target::Value, why));
                if let Some(t) = self.settings_template(
                    "/http/auth/header/value",
                    &header.value,
                    "http.auth.header.value",
                ) {
                    headers.push((header.name.as_str().into(), HeaderValue::Template(t)));
                }
            }
        }
        for (name, value) in &http.headers {
            let pointer = format!("/http/headers/{}", escape_segment(name));
            check_header_name(name)
                .err()
                .map(|why| self.problem(&pointer, Target::Key, why));
            if let Some(t) = self.settings_template(&pointer, value, "http.headers") {
                headers.push((name.as_str().into(), HeaderValue::Template(t)));
            }
        }
        headers
    }

    fn action(&mut self, name: &str, action: &model::Action) -> Option<CompiledAction> {
        let base = format!("/actions/{}", escape_segment(name));
        let errors_before = self.problems.len();
        let when = self.selector(&format!("{base}/when"), &action.when);
        let request = &action.request;
        let path_pointer = format!("{base}/request/path");
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
            pointer: format!("{base}/request/query"),
            label: String::new(),
        };
        let query = self.fields(&root, &request.query, "&", true);
        let mut headers = Vec::new();
        for (header, value) in &request.headers {
            let pointer = format!("{base}/request/headers/{}", escape_segment(header));
            check_header_name(header)
                .err()
                .map(|why| self.problem(&pointer, Target::Key, why));
            if let Some(t) = self.template(&pointer, value, Escape::None) {
                headers.push((header.as_str().into(), t));
            }
        }
        let body = request.body.as_ref().map(|body| {
            let root = Place {
                pointer: format!("{base}/request/body"),
                label: String::new(),
            };
            self.fields(&root, body, ".", request.format == BodyFormat::Form)
        });
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
            method: request.method,
            path: path?,
            query,
            headers,
            body,
            format: request.format,
            remember,
            dedupe_key,
        };
        settle_buckets(&mut compiled);
        Some(compiled)
    }

    fn selector(&mut self, pointer: &str, selector: &model::Selector) -> Selector {
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
                let allowed: &[&str] = if dialect == SourceDialect::Segment {
                    SEGMENT_TYPES
                } else {
                    &["track"]
                };
                if !allowed.contains(&kind.as_str()) && dialect != SourceDialect::Json {
                    let near = did_you_mean(kind, allowed.iter().copied());
                    let message = format!(
                        "unknown message type `{kind}` for `source: {}`",
                        dialect_name(dialect)
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
            out.events = events
                .as_slice()
                .iter()
                .map(|e| e.as_str().into())
                .collect();
        }
        if let Some(exists) = &selector.exists {
            for (i, path) in exists.as_slice().iter().enumerate() {
                if let Some(p) =
                    self.path(&list_pointer(&format!("{pointer}/exists"), exists, i), path)
                {
                    out.exists.push(p);
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
        if let Some(not) = &selector.not {
            out.not = Some(Box::new(self.selector(&format!("{pointer}/not"), not)));
        }
        out
    }

    fn path(&mut self, pointer: &str, text: &str) -> Option<Path> {
        self.path_at(pointer, Target::Value, text)
    }

    fn path_at(&mut self, pointer: &str, target: Target, text: &str) -> Option<Path> {
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

    fn fields(
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
    fn field(
        &mut self,
        place: &Place,
        key: &str,
        field: &model::Field,
        flat: bool,
    ) -> Option<Field> {
        let pointer = place.pointer.as_str();
        let given: Vec<&str> = [
            ("from", field.from.is_some()),
            ("value", field.value.is_some()),
            ("template", field.template.is_some()),
            ("setting", field.setting.is_some()),
            ("fields", field.fields.is_some()),
            ("rest_of", field.rest_of.is_some()),
            ("each", field.each.is_some()),
            ("recall", field.recall.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        let allowed_pair = matches!(given.as_slice(), ["from", "recall"] | ["fields", "rest_of"])
            || (given.first() == Some(&"each") || given.contains(&"each")) && given.len() <= 2;
        if given.is_empty() {
            self.problem(pointer, Target::Key, format!("field `{}` has no source", place.label))
                .help = Some("give one of `from`, `value`, `template`, `setting`, `fields`, `rest_of`, `each` or `recall`".into());
            return None;
        }
        if given.len() > 1 && !allowed_pair {
            let list = given
                .iter()
                .map(|g| format!("`{g}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.problem(pointer, Target::Key, format!("field `{}` has several sources: {list}", place.label))
                .help = Some("a field takes one source; `from` may add `recall` as a fallback, and `fields` may add `rest_of`".into());
            return None;
        }
        if field.rest_of.is_none() {
            for (name, set) in [
                ("except", !field.except.is_empty()),
                ("prefix", field.prefix.is_some()),
                ("flatten", field.flatten),
            ] {
                if set {
                    self.problem(
                        &format!("{pointer}/{name}"),
                        Target::Key,
                        format!("`{name}` only applies with `rest_of`"),
                    );
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
        let remap = field
            .remap
            .as_ref()
            .and_then(|remap| self.remap(&format!("{pointer}/remap"), remap));

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
            let recall = field
                .recall
                .as_ref()
                .and_then(|r| self.recall(&format!("{pointer}/recall"), r));
            Source::Paths { paths, recall }
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
                    Some(Rest {
                        path,
                        consumed: field.except.iter().map(|k| k.as_str().into()).collect(),
                        siblings: fields.iter().map(|f| f.key.clone()).collect(),
                        prefix: field.prefix.as_deref().unwrap_or("").into(),
                        flatten: field.flatten,
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
    fn field_shell(place: &Place, key: &str, field: &model::Field) -> Field {
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

    fn recall(&mut self, pointer: &str, recall: &model::Recall) -> Option<Recall> {
        let key = self.path(&format!("{pointer}/key"), &recall.key)?;
        Some(Recall {
            store: recall.name.as_str().into(),
            key,
        })
    }

    fn setting_ref(&mut self, pointer: &str, name: &str) -> Option<&model::Setting> {
        if self.mapping().settings.contains_key(name) {
            return self.document.mapping.settings.get(name);
        }
        let near = did_you_mean(name, self.mapping().settings.keys().map(String::as_str))
            .map(str::to_owned);
        let diagnostic = self.problem(pointer, Target::Value, format!("unknown setting `{name}`"));
        diagnostic.help = Some(match near {
            Some(near) => format!("did you mean `{near}`?"),
            None => "declare it under `settings:`".into(),
        });
        None
    }

    fn remap(&mut self, pointer: &str, remap: &model::Remap) -> Option<Remap> {
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
                    "add `default: <value>` to the remap, or use `otherwise: keep`, `drop` or `error`"
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

    fn check_recalls(&mut self, actions: &[CompiledAction]) {
        let remembered: HashSet<&str> = actions
            .iter()
            .flat_map(|a| a.remember.iter().map(|r| &*r.store))
            .collect();
        let mut missing = Vec::new();
        for (name, action) in &self.mapping().actions {
            let base = format!("/actions/{}/request", escape_segment(name));
            visit_recalls(
                &format!("{base}/body"),
                action.request.body.as_ref(),
                &mut missing,
            );
            visit_recalls(
                &format!("{base}/query"),
                Some(&action.request.query),
                &mut missing,
            );
        }
        if actions.len() < self.mapping().actions.len() || !self.document.pruned_actions.is_empty()
        {
            // Some actions failed to load or compile; their `remember` is unknown, so do not guess.
            return;
        }
        let mut stores: Vec<&str> = remembered.iter().copied().collect();
        stores.sort_unstable();
        for (pointer, store) in missing {
            if !remembered.contains(store.as_str()) {
                let help = match did_you_mean(&store, stores.iter().copied()) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!(
                        "add `remember: {{ {store}: {{ key: ..., value: ... }} }}` to the action that sees the value"
                    ),
                };
                self.problem(
                    &pointer,
                    Target::Value,
                    format!("`recall` reads the store `{store}`, but no action remembers it"),
                )
                .help = Some(help);
            }
        }
    }
}

fn visit_recalls(
    base: &str,
    fields: Option<&model::Ordered<model::Field>>,
    out: &mut Vec<(String, String)>,
) {
    let Some(fields) = fields else { return };
    for (key, field) in fields {
        let pointer = format!("{base}/{}", escape_segment(key));
        if let Some(recall) = &field.recall {
            out.push((format!("{pointer}/recall/name"), recall.name.clone()));
        }
        visit_recalls(&format!("{pointer}/fields"), field.fields.as_ref(), out);
    }
}

/// Marks the keys of each `rest_of` object that other fields of the action read.
fn settle_buckets(action: &mut CompiledAction) {
    let mut read: Vec<Vec<Box<str>>> = Vec::new();
    let mut collect = |field: &Field| collect_reads(field, &mut read);
    action.query.iter().for_each(&mut collect);
    action.body.iter().flatten().for_each(&mut collect);
    action.dedupe_key.iter().for_each(&mut collect);
    for (_, template) in &action.headers {
        read.extend(template.event_paths().map(<[Box<str>]>::to_vec));
    }
    read.extend(action.path.event_paths().map(<[Box<str>]>::to_vec));
    let mut mark = |field: &mut Field| mark_rests(field, &read);
    action.body.iter_mut().flatten().for_each(&mut mark);
}

fn collect_reads(field: &Field, out: &mut Vec<Vec<Box<str>>>) {
    let keys = |path: &Path| -> Option<Vec<Box<str>>> {
        path.segments().map(|segments| {
            segments
                .iter()
                .map_while(|s| match s {
                    Segment::Key(k) => Some(k.clone()),
                    Segment::Index(_) => None,
                })
                .collect()
        })
    };
    match &field.source {
        Source::Paths { paths, .. } => out.extend(paths.iter().filter_map(keys)),
        Source::Template(template) => out.extend(template.event_paths().map(<[Box<str>]>::to_vec)),
        Source::Object { fields, .. } => fields.iter().for_each(|f| collect_reads(f, out)),
        // Paths inside `each` are relative to the item; the list itself counts as read.
        Source::Each { path, .. } => out.extend(keys(path)),
        Source::Recall(_) | Source::Value(_) | Source::Setting(_) => {}
    }
}

fn mark_rests(field: &mut Field, read: &[Vec<Box<str>>]) {
    if let Source::Object { fields, rest } = &mut field.source {
        if let Some(rest) = rest
            && let Some(segments) = rest.path.segments()
        {
            let prefix: Option<Vec<&str>> = segments
                .iter()
                .map(|s| match s {
                    Segment::Key(k) => Some(&**k),
                    Segment::Index(_) => None,
                })
                .collect();
            if let Some(prefix) = prefix {
                for path in read {
                    if path.len() > prefix.len()
                        && path.iter().zip(&prefix).all(|(a, b)| &**a == *b)
                    {
                        rest.consumed.insert(path[prefix.len()].clone());
                    }
                }
            }
        }
        for f in fields {
            mark_rests(f, read);
        }
    }
}

fn list_pointer<T>(base: &str, list: &model::OneOrMany<T>, index: usize) -> String {
    match list {
        model::OneOrMany::One(_) => base.to_owned(),
        model::OneOrMany::Many(_) => format!("{base}/{index}"),
    }
}

fn dialect_name(dialect: SourceDialect) -> &'static str {
    match dialect {
        SourceDialect::Segment => "segment",
        SourceDialect::Amplitude => "amplitude",
        SourceDialect::Extole => "extole",
        SourceDialect::Json => "json",
    }
}

fn check_header_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid header name"))
    }
}

/// A base URL must be an absolute http(s) URL with a host and no query or fragment.
pub(crate) fn check_base_url(text: &str) -> Result<(), String> {
    let url =
        url::Url::parse(text).map_err(|e| format!("`{text}` is not a valid base URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the base URL `{text}` must use http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("the base URL `{text}` has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "the base URL `{text}` must not have a query or fragment"
        ));
    }
    Ok(())
}

fn setting_type_name(kind: SettingType) -> &'static str {
    match kind {
        SettingType::String => "string",
        SettingType::Number => "number",
        SettingType::Integer => "integer",
        SettingType::Boolean => "boolean",
        SettingType::List => "list",
        SettingType::Map => "map",
    }
}

/// Moves the caret of a diagnostic on a template from the whole value to the first of `names`
/// found in it as a whole word, when the value is on one line.
fn narrow(diagnostic: &mut Diagnostic, names: &[&str]) {
    let chars: Vec<char> = diagnostic.snippet.chars().collect();
    let start = diagnostic.column.saturating_sub(1);
    let end = (start + diagnostic.len).min(chars.len());
    if start >= end {
        return;
    }
    let is_word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
    for name in names {
        let needle: Vec<char> = name.chars().collect();
        if needle.is_empty() {
            continue;
        }
        let found = (start..end.saturating_sub(needle.len() - 1)).find(|&at| {
            chars[at..].starts_with(&needle)
                && !is_word(at.checked_sub(1).and_then(|b| chars.get(b)))
                && !is_word(chars.get(at + needle.len()))
        });
        if let Some(at) = found {
            diagnostic.column = at + 1;
            diagnostic.len = needle.len();
            return;
        }
    }
}

/// The 1-based character where the JSONPath parser stopped, read from its error text
/// (`... --> 1:10 ...`).
fn parse_error_column(why: &str) -> Option<usize> {
    let (_, after) = why.split_once("--> 1:")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|&column| column >= 1)
}

/// The 1-based character of the first bracket or quote of `text` that is never closed.
fn unbalanced(text: &str) -> Option<usize> {
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
fn unclosed(rest: &str) -> Option<String> {
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
fn narrow_path(diagnostic: &mut Diagnostic, text: &str, column: usize, rest: &str) {
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
fn path_help(text: &str, column: Option<usize>) -> String {
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
