//! Running a connection on one event: select actions, evaluate fields, write bodies straight to
//! a buffer in the mapping's order. Nothing here parses the mapping; everything was compiled.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use ferry_spec::model::{BodyFormat, Otherwise, SourceDialect};
use serde_json::Value;

use crate::compiled::{CompiledAction, Field, Recall as RecallRule, Rest, Selector, Source};
use crate::connection::{Connection, Header, check_header_value};
use crate::convert::{self, kind, short};
use crate::path::walk;
use crate::plan::{Body, Failure, Outcome, Plan, PlannedRequest, Skip};
use crate::state::{Recall, Remembered};
use crate::template::RenderError;

/// Why an action stopped.
enum Stop {
    /// The event cannot be mapped: a per-event error.
    Failed(String),
    /// The mapping says to drop the event (a remap's `otherwise: drop`).
    Drop(String),
}

type Step<T> = Result<T, Stop>;

impl Connection {
    /// Plans the requests for `event`, reading remembered values from `state`.
    pub fn plan(&self, event: &Value, state: &dyn Recall) -> Plan {
        self.run(event, state, false)
    }

    /// Like [`Connection::plan`], and explains in `Plan::trace` which actions were selected and
    /// where every field came from.
    pub fn plan_traced(&self, event: &Value, state: &dyn Recall) -> Plan {
        self.run(event, state, true)
    }

    fn run(&self, event: &Value, state: &dyn Recall, tracing: bool) -> Plan {
        let mut plan = Plan::default();
        if !event.is_object() {
            plan.outcomes.push(Outcome::Failed(Failure {
                action: "*".into(),
                message: format!("an event must be a JSON object, not {}", kind(event)),
            }));
            return plan;
        }
        let (message_type, event_name) = self.identify(event);
        let mut selected = false;
        for (index, action) in self.mapping.actions.iter().enumerate() {
            if !action.when.matches(event, message_type, event_name) {
                if tracing {
                    let why = action.when.explain(event, message_type, event_name);
                    plan.trace
                        .push(format!("action `{}`: not selected: {why}", action.name));
                }
                continue;
            }
            selected = true;
            let mut run = Run {
                connection: self,
                state,
                action: &action.name,
                trace: tracing.then(Vec::new),
            };
            let outcome = run.action(index, action, event);
            if let Some(lines) = run.trace {
                plan.trace
                    .push(format!("action `{}`: selected", action.name));
                plan.trace.extend(lines);
            }
            match outcome {
                Ok(request) => {
                    remember(action, event, &mut plan);
                    plan.outcomes.push(Outcome::Request(request));
                }
                Err(Stop::Drop(reason)) => plan.outcomes.push(Outcome::Skipped(Skip {
                    action: Some(Arc::clone(&action.name)),
                    reason,
                })),
                Err(Stop::Failed(message)) => plan.outcomes.push(Outcome::Failed(Failure {
                    action: Arc::clone(&action.name),
                    message: self.redact(&message).into_owned(),
                })),
            }
        }
        if !selected {
            let mut what = Vec::new();
            if let Some(t) = message_type {
                what.push(format!("type `{t}`"));
            }
            if let Some(e) = event_name {
                what.push(format!("event `{e}`"));
            }
            let reason = if what.is_empty() {
                "no action matches this event".to_owned()
            } else {
                format!("no action matches {}", what.join(", "))
            };
            plan.outcomes.push(Outcome::Skipped(Skip {
                action: None,
                reason,
            }));
        }
        plan
    }

    /// The message type and event name, read where the mapping's dialect keeps them.
    fn identify<'e>(&self, event: &'e Value) -> (Option<&'e str>, Option<&'e str>) {
        let text = |key: &str| event.get(key).and_then(Value::as_str);
        match self.mapping.spec.source {
            SourceDialect::Segment => (text("type").or_else(|| text("action")), text("event")),
            SourceDialect::Amplitude => (Some("track"), text("event_type")),
            SourceDialect::Extole => (Some("track"), text("event_name")),
            SourceDialect::Json => (None, None),
        }
    }
}

fn remember(action: &CompiledAction, event: &Value, plan: &mut Plan) {
    for rule in &action.remember {
        let Some(key) = rule.key.get(event).and_then(|k| key_text(&k)) else {
            continue;
        };
        let value = rule
            .value
            .iter()
            .find_map(|p| p.get(event).filter(|v| !v.is_null()));
        if let Some(value) = value {
            plan.remember.push(Remembered {
                store: rule.store.clone(),
                key,
                value: value.into_owned(),
            });
        }
    }
}

fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Selector {
    fn matches(&self, event: &Value, message_type: Option<&str>, event_name: Option<&str>) -> bool {
        let listed = |list: &[Box<str>], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|x| &**x == v))
        };
        listed(&self.types, message_type)
            && listed(&self.events, event_name)
            && self
                .exists
                .iter()
                .all(|p| p.get(event).is_some_and(|v| !v.is_null()))
            && self
                .equals
                .iter()
                .all(|(p, want)| p.get(event).is_some_and(|v| *v == *want))
            && self
                .not
                .as_ref()
                .is_none_or(|not| !not.matches(event, message_type, event_name))
    }

    fn explain(
        &self,
        event: &Value,
        message_type: Option<&str>,
        event_name: Option<&str>,
    ) -> String {
        let list = |l: &[Box<str>]| {
            l.iter()
                .map(|x| format!("`{x}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        if !self.types.is_empty()
            && !message_type.is_some_and(|t| self.types.iter().any(|x| &**x == t))
        {
            return format!("type is {}, not {}", shown(message_type), list(&self.types));
        }
        if !self.events.is_empty()
            && !event_name.is_some_and(|t| self.events.iter().any(|x| &**x == t))
        {
            return format!("event is {}, not {}", shown(event_name), list(&self.events));
        }
        if let Some(p) = self
            .exists
            .iter()
            .find(|p| p.get(event).is_none_or(|v| v.is_null()))
        {
            return format!("`{p}` is missing");
        }
        if let Some((p, want)) = self
            .equals
            .iter()
            .find(|(p, want)| p.get(event).is_none_or(|v| *v != *want))
        {
            return format!("`{p}` is not `{want}`");
        }
        "the `not` condition holds".to_owned()
    }
}

fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "missing".to_owned(), |v| format!("`{v}`"))
}

/// The state of one action's run on one event.
struct Run<'a> {
    connection: &'a Connection,
    state: &'a dyn Recall,
    action: &'a str,
    trace: Option<Vec<String>>,
}

impl<'a> Run<'a> {
    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            trace.push(format!("  {}", line()));
        }
    }

    fn action(
        &mut self,
        index: usize,
        action: &'a CompiledAction,
        event: &'a Value,
    ) -> Step<PlannedRequest> {
        let connection = self.connection;
        let mut url = if let Some(url) = &connection.paths[index] {
            url.to_string()
        } else {
            let path = connection
                .render(&action.path, Some(event))
                .map_err(|e| match e {
                    RenderError::Undefined(why) => Stop::Failed(format!(
                        "the request path needs a value the event lacks: {why}"
                    )),
                    RenderError::Failed(why) => {
                        Stop::Failed(format!("the request path cannot be rendered: {why}"))
                    }
                })?;
            format!("{}{path}", connection.base_url)
        };
        if !action.query.is_empty() {
            let pairs = self.flat_fields(&action.query, event)?;
            if !pairs.is_empty() {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(
                    &url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(&pairs)
                        .finish(),
                );
            }
        }
        let mut headers: Vec<Header> = connection.headers.to_vec();
        for (name, template) in &action.headers {
            let value = match connection.render(template, Some(event)) {
                Ok(value) => value,
                Err(RenderError::Undefined(_)) => continue,
                Err(RenderError::Failed(why)) => {
                    return Err(Stop::Failed(format!("header `{name}`: {why}")));
                }
            };
            check_header_value(name, &value).map_err(Stop::Failed)?;
            let redacted = if connection.reads_secret(template) {
                connection
                    .render_redacted(template, Some(event))
                    .ok()
                    .map(Into::into)
            } else {
                None
            };
            headers.push(Header {
                name: Arc::clone(name),
                value: value.into(),
                redacted,
            });
        }
        let body = match (&action.body, action.format) {
            (None, _) => None,
            (Some(fields), BodyFormat::Json) => {
                let mut out = Vec::with_capacity(256);
                self.object(fields, None, None, event, &mut out)?;
                let limit = connection.mapping.spec.http.max_body_bytes;
                if out.len() as u64 > limit {
                    return Err(Stop::Failed(format!(
                        "the body is {} bytes, over the mapping's limit of {limit} (`http.max_body_bytes`)",
                        out.len()
                    )));
                }
                Some(Body::Json(
                    String::from_utf8(out).expect("serde_json writes UTF-8"),
                ))
            }
            (Some(fields), BodyFormat::Form) => Some(Body::Form(self.flat_fields(fields, event)?)),
        };
        let dedupe_key = match &action.dedupe_key {
            Some(field) => self.value(field, event)?.map(|v| text_of(&v)),
            None => None,
        };
        Ok(PlannedRequest {
            action: Arc::clone(&action.name),
            method: action.method,
            url,
            headers,
            body,
            dedupe_key,
        })
    }

    /// Query parameters and form fields: name and text of every present value.
    fn flat_fields(
        &mut self,
        fields: &'a [Field],
        event: &'a Value,
    ) -> Step<Vec<(String, String)>> {
        let mut pairs = Vec::with_capacity(fields.len());
        for field in fields {
            if let Some(value) = self.value(field, event)? {
                pairs.push((field.key.to_string(), text_of(&value)));
            }
        }
        Ok(pairs)
    }

    /// Writes `{...}`: the explicit fields, then the bucket.
    fn object(
        &mut self,
        fields: &'a [Field],
        rest: Option<&'a Rest>,
        owner: Option<&'a Field>,
        root: &'a Value,
        out: &mut Vec<u8>,
    ) -> Step<()> {
        out.push(b'{');
        let mut first = true;
        for field in fields {
            self.field(field, root, out, &mut first)?;
        }
        if let (Some(rest), Some(owner)) = (rest, owner) {
            self.rest(rest, owner, root, out, &mut first)?;
        }
        out.push(b'}');
        Ok(())
    }

    fn field(
        &mut self,
        field: &'a Field,
        root: &'a Value,
        out: &mut Vec<u8>,
        first: &mut bool,
    ) -> Step<()> {
        let mark = (out.len(), *first);
        match &field.source {
            Source::Object { fields, rest } => {
                separate(out, first);
                out.extend_from_slice(&field.key_json);
                let start = out.len();
                self.object(fields, rest.as_ref(), Some(field), root, out)?;
                if out.len() - start == 2 && (field.omit_empty || field.required) {
                    if field.required {
                        return Err(Stop::Failed(format!(
                            "`{}` is required but came out empty",
                            field.label
                        )));
                    }
                    self.note(|| format!("{}: omitted (empty)", field.label));
                    out.truncate(mark.0);
                    *first = mark.1;
                }
            }
            Source::Each { path, item } => {
                let found = path.get(root).filter(|v| !v.is_null());
                match found {
                    Some(Cow::Borrowed(Value::Array(items)))
                        if !(items.is_empty() && field.omit_empty) =>
                    {
                        separate(out, first);
                        out.extend_from_slice(&field.key_json);
                        out.push(b'[');
                        let mut first_item = true;
                        for value in items {
                            self.item(item, value, out, &mut first_item)?;
                        }
                        out.push(b']');
                        self.note(|| {
                            format!("{} <- each of {path} ({} items)", field.label, items.len())
                        });
                    }
                    Some(Cow::Owned(Value::Array(items)))
                        if !(items.is_empty() && field.omit_empty) =>
                    {
                        separate(out, first);
                        out.extend_from_slice(&field.key_json);
                        self.each_owned(item, &items, out)?;
                        self.note(|| {
                            format!("{} <- each of {path} ({} items)", field.label, items.len())
                        });
                    }
                    None | Some(Cow::Borrowed(Value::Array(_)) | Cow::Owned(Value::Array(_))) => {
                        if let Some(value) =
                            self.missing(field, || format!("`{path}` is missing"))?
                        {
                            separate(out, first);
                            out.extend_from_slice(&field.key_json);
                            write_value(out, &value);
                        }
                    }
                    Some(other) => {
                        return Err(Stop::Failed(format!(
                            "`{}`: `{path}` must be a list, not {}",
                            field.label,
                            kind(&other)
                        )));
                    }
                }
            }
            _ => {
                if let Some(value) = self.value(field, root)? {
                    separate(out, first);
                    out.extend_from_slice(&field.key_json);
                    write_value(out, &value);
                }
            }
        }
        Ok(())
    }

    /// Maps the items of a query result, which this call owns, through a run scoped to them.
    fn each_owned(&mut self, item: &Field, items: &[Value], out: &mut Vec<u8>) -> Step<()> {
        let mut scoped = Run {
            connection: self.connection,
            state: self.state,
            action: self.action,
            trace: None,
        };
        out.push(b'[');
        let mut first_item = true;
        for value in items {
            scoped.item(item, value, out, &mut first_item)?;
        }
        out.push(b']');
        Ok(())
    }

    fn item(
        &mut self,
        item: &'a Field,
        value: &'a Value,
        out: &mut Vec<u8>,
        first: &mut bool,
    ) -> Step<()> {
        if let Source::Object { fields, rest } = &item.source {
            separate(out, first);
            return self.object(fields, rest.as_ref(), Some(item), value, out);
        }
        if let Some(v) = self.value(item, value)? {
            separate(out, first);
            write_value(out, &v);
        }
        Ok(())
    }

    /// The value of a field that is not an object or list, after defaults and shaping; `None`
    /// when it is omitted.
    fn value(&mut self, field: &'a Field, root: &'a Value) -> Step<Option<Cow<'a, Value>>> {
        let (raw, from) = match &field.source {
            Source::Paths { paths, recall } => {
                let mut saw_null = false;
                let mut found = None;
                for path in paths {
                    match path.get(root) {
                        Some(v) if v.is_null() => saw_null = true,
                        Some(v) => {
                            found = Some((v, path.as_str()));
                            break;
                        }
                        None => {}
                    }
                }
                match found {
                    Some((v, path)) => (Some(v), Origin::Path(path)),
                    None => match recall {
                        Some(rule) => match self.recall(rule, root) {
                            Some(v) => (Some(Cow::Owned(v)), Origin::Recalled(&rule.store)),
                            None if saw_null => (Some(Cow::Owned(Value::Null)), Origin::Null),
                            None => (None, Origin::Nothing),
                        },
                        None if saw_null => (Some(Cow::Owned(Value::Null)), Origin::Null),
                        None => (None, Origin::Nothing),
                    },
                }
            }
            Source::Recall(rule) => (
                self.recall(rule, root).map(Cow::Owned),
                Origin::Recalled(&rule.store),
            ),
            Source::Value(value) => (Some(Cow::Borrowed(value)), Origin::Literal),
            Source::Template(template) => match self.connection.render(template, Some(root)) {
                Ok(text) => (Some(Cow::Owned(Value::String(text))), Origin::Template),
                Err(RenderError::Undefined(_)) => (None, Origin::Nothing),
                Err(RenderError::Failed(why)) => {
                    return Err(Stop::Failed(format!("`{}`: {why}", field.label)));
                }
            },
            Source::Setting(name) => (
                self.connection.values.get(&**name).map(Cow::Borrowed),
                Origin::Setting(name),
            ),
            Source::Object { .. } | Source::Each { .. } => {
                return Err(Stop::Failed(format!(
                    "`{}` must be a single value",
                    field.label
                )));
            }
        };
        let value = match raw {
            Some(v) if v.is_null() && field.keep_null => return Ok(Some(v)),
            Some(v) if v.is_null() || (field.omit_empty && is_empty(&v)) => None,
            other => other,
        };
        let Some(value) = value else {
            return self.missing(field, || field.source.describe_missing(root));
        };
        let shaped = self.shape(field, value)?;
        self.note(|| format!("{} <- {from}", field.label));
        Ok(Some(shaped))
    }

    /// What a missing value becomes: the default, an error when required, or omission.
    fn missing(
        &mut self,
        field: &'a Field,
        why: impl FnOnce() -> String,
    ) -> Step<Option<Cow<'a, Value>>> {
        if let Some(default) = &field.default {
            self.note(|| format!("{} <- default", field.label));
            return Ok(Some(Cow::Borrowed(default)));
        }
        if field.required {
            return Err(Stop::Failed(format!(
                "`{}` is required but {}",
                field.label,
                why()
            )));
        }
        if self.trace.is_some() {
            let why = why();
            self.note(|| format!("{}: omitted ({why})", field.label));
        }
        Ok(None)
    }

    fn shape(&self, field: &'a Field, value: Cow<'a, Value>) -> Step<Cow<'a, Value>> {
        let mut value = value;
        if let Some(remap) = &field.remap {
            let text: Cow<'_, str> = match &*value {
                Value::String(s) => Cow::Borrowed(s.as_str()),
                Value::Number(n) => Cow::Owned(n.to_string()),
                Value::Bool(b) => Cow::Owned(b.to_string()),
                other => {
                    return Err(Stop::Failed(format!(
                        "`{}`: a remap needs text, not {}",
                        field.label,
                        kind(other)
                    )));
                }
            };
            let from_setting = remap
                .setting
                .as_deref()
                .and_then(|s| self.connection.values.get(s))
                .and_then(|table| table.get(&*text));
            let found = from_setting.or_else(|| remap.table.get(&*text));
            value = match (found, remap.otherwise) {
                (Some(mapped), _) => Cow::Borrowed(mapped),
                (None, Otherwise::Keep) => value,
                (None, Otherwise::Default) => {
                    Cow::Borrowed(remap.default.as_ref().expect("checked when compiled"))
                }
                (None, Otherwise::Drop) => {
                    return Err(Stop::Drop(format!(
                        "`{}`: `{}` is not in the remap table (`otherwise: drop`)",
                        field.label,
                        short(&value)
                    )));
                }
                (None, Otherwise::Error) => {
                    return Err(Stop::Failed(format!(
                        "`{}`: `{}` is not in the remap table",
                        field.label,
                        short(&value)
                    )));
                }
            };
        }
        for transform in &field.transforms {
            value = Cow::Owned(
                convert::transform(&value, *transform)
                    .map_err(|why| Stop::Failed(format!("`{}`: {why}", field.label)))?,
            );
        }
        if let Some(to) = field.convert {
            value = convert::convert(value, to, field.time_unit)
                .map_err(|why| Stop::Failed(format!("`{}`: {why}", field.label)))?;
        }
        Ok(value)
    }

    fn recall(&self, rule: &RecallRule, root: &Value) -> Option<Value> {
        let key = rule.key.get(root).and_then(|k| key_text(&k))?;
        self.state.recall(&rule.store, &key)
    }

    /// Writes every key of the bucket's object that nothing else reads.
    fn rest(
        &mut self,
        rest: &'a Rest,
        owner: &'a Field,
        root: &'a Value,
        out: &mut Vec<u8>,
        first: &mut bool,
    ) -> Step<()> {
        let segments = rest.path.segments().expect("rest_of paths are plain");
        let map = match walk(root, segments) {
            Some(Value::Object(map)) => map,
            None | Some(Value::Null) => return Ok(()),
            Some(other) => {
                return Err(Stop::Failed(format!(
                    "`{}`: `{}` must be an object, not {}",
                    owner.label,
                    rest.path,
                    kind(other)
                )));
            }
        };
        let mut written = Vec::new();
        for (key, value) in map {
            if rest.consumed.contains(key.as_str()) {
                continue;
            }
            let name: Cow<'_, str> = if rest.prefix.is_empty() {
                Cow::Borrowed(key)
            } else {
                Cow::Owned(format!("{}{key}", rest.prefix))
            };
            self.rest_entry(rest, owner, &name, value, out, first, &mut written)?;
        }
        if !written.is_empty() {
            self.note(|| {
                format!(
                    "{} <- rest of {}: {}",
                    owner.label,
                    rest.path,
                    written.join(", ")
                )
            });
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn rest_entry(
        &mut self,
        rest: &'a Rest,
        owner: &'a Field,
        name: &str,
        value: &'a Value,
        out: &mut Vec<u8>,
        first: &mut bool,
        written: &mut Vec<String>,
    ) -> Step<()> {
        if rest.flatten
            && let Value::Object(inner) = value
        {
            for (key, value) in inner {
                self.rest_entry(
                    rest,
                    owner,
                    &format!("{name}_{key}"),
                    value,
                    out,
                    first,
                    written,
                )?;
            }
            return Ok(());
        }
        if rest.siblings.contains(name)
            || (value.is_null() && !owner.keep_null)
            || (owner.omit_empty && is_empty(value))
        {
            return Ok(());
        }
        let value = if value.is_null() {
            Cow::Borrowed(value)
        } else {
            Self::shape_bucketed(owner, value)?
        };
        separate(out, first);
        serde_json::to_writer(&mut *out, name).expect("writing to memory cannot fail");
        out.push(b':');
        write_value(out, &value);
        if self.trace.is_some() {
            written.push(name.to_owned());
        }
        Ok(())
    }

    fn shape_bucketed(owner: &'a Field, value: &'a Value) -> Step<Cow<'a, Value>> {
        let mut value = Cow::Borrowed(value);
        for transform in &owner.transforms {
            value = Cow::Owned(
                convert::transform(&value, *transform)
                    .map_err(|why| Stop::Failed(format!("`{}`: {why}", owner.label)))?,
            );
        }
        if let Some(to) = owner.convert {
            value = convert::convert(value, to, owner.time_unit)
                .map_err(|why| Stop::Failed(format!("`{}`: {why}", owner.label)))?;
        }
        Ok(value)
    }
}

/// Where a field's value came from, for the trace: only written out when tracing.
#[derive(Clone, Copy)]
enum Origin<'a> {
    Path(&'a str),
    Recalled(&'a str),
    Setting(&'a str),
    Literal,
    Template,
    Null,
    /// Nothing was found; never shown, since a missing value is traced as missing.
    Nothing,
}

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Path(path) => write!(f, "`{path}`"),
            Origin::Recalled(store) => write!(f, "recalled `{store}`"),
            Origin::Setting(name) => write!(f, "setting `{name}`"),
            Origin::Literal => f.write_str("literal"),
            Origin::Template => f.write_str("template"),
            Origin::Null => f.write_str("null"),
            Origin::Nothing => Ok(()),
        }
    }
}

impl Source {
    fn describe_missing(&self, root: &Value) -> String {
        match self {
            Source::Paths { paths, recall } => {
                let list = paths.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>();
                let mut text = match list.len() {
                    0 => String::from("nothing is read"),
                    1 => format!("{} is missing", list[0]),
                    _ => format!("none of {} is present", list.join(", ")),
                };
                if let Some(rule) = recall {
                    text.push_str(", and ");
                    text.push_str(&rule.describe_unknown(root));
                }
                text
            }
            Source::Recall(rule) => rule.describe_unknown(root),
            Source::Template(_) => "the template reads a value the event lacks".to_owned(),
            Source::Setting(name) => format!("setting `{name}` is not set"),
            Source::Value(_) | Source::Object { .. } | Source::Each { .. } => {
                "it is empty".to_owned()
            }
        }
    }
}

impl RecallRule {
    /// "no `email` is remembered for `$.userId` (`u-1`)".
    fn describe_unknown(&self, root: &Value) -> String {
        match self.key.get(root).and_then(|k| key_text(&k)) {
            Some(key) => format!(
                "no `{}` is remembered for `{}` (`{key}`)",
                self.store, self.key
            ),
            None => format!(
                "`{}`, the key to recall `{}` by, is missing",
                self.key, self.store
            ),
        }
    }
}

fn separate(out: &mut Vec<u8>, first: &mut bool) {
    if *first {
        *first = false;
    } else {
        out.push(b',');
    }
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    serde_json::to_writer(&mut *out, value).expect("writing a JSON value to memory cannot fail");
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Text of a value for query strings, form fields and keys.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
