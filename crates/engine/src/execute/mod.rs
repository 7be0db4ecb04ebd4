//! Running a connection on one event: compute the mapping's named values, select actions,
//! evaluate fields, write bodies straight to a buffer in the mapping's order. Nothing here
//! parses the mapping; everything was compiled.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::sync::Arc;

use ferry_spec::model::SourceDialect;
use serde_json::{Map, Value};

use crate::compiled::{CompiledAction, Field, Selector, Source};
use crate::connection::Connection;
use crate::convert::kind;
use crate::path::{Parents, Path, ReadParents, Root, member, walk};
use crate::plan::{
    Continuation, Failure, FailureKind, Outcome, Plan, PlannedRequest, Refusal, Skip, SkipKind,
    StepResponse,
};
use crate::state::{Recall, Remembered};
use crate::template::{Context, Item, NamedValues, RenderError, Template, template_value};

mod bucket;
mod list;
mod request;
mod select;
mod value;
mod write;

use select::Subject;

/// An event's message type and event name, read once per event.
type Identity<'e> = (Option<&'e str>, Option<&'e str>);

/// Why an action stopped.
#[derive(Debug, Clone)]
enum Stop {
    /// The event cannot be mapped: a per-event error.
    Failed(FailureKind, String),
    /// The mapping says to plan nothing for the event (a remap's `otherwise: drop`, a value
    /// `required: skip`).
    Skip(SkipKind, String),
}

type Step<T> = Result<T, Stop>;

/// The mapping's computed values for one event, read as `$computed.NAME`: each kept at the
/// position of its field, which paths of computed values are given when the mapping compiles.
/// A value is made when it is first read, so an event pays only for the values its actions,
/// selectors and templates read. While a value is made, only the values above it are seen, as
/// when they are made in order.
pub(crate) struct Computed<'m> {
    /// The mapping's computed values, for their names.
    fields: &'m [Field],
    /// How many values, from the first, can be read: all of them, except while the value at
    /// this position is made.
    visible: Cell<usize>,
    /// Each value once made, by position, or why it could not be: a field that reads it stops
    /// the same way.
    values: Box<[OnceCell<Step<Option<Value>>>]>,
    /// What making a value reads; `None` where there is no value to make.
    maker: Option<Maker<'m>>,
}

/// The event and connection computed values are made from.
#[derive(Clone, Copy)]
struct Maker<'m> {
    connection: &'m Connection,
    event: &'m Value,
    identity: Identity<'m>,
    parents: &'m dyn ReadParents,
    state: &'m dyn Recall,
}

impl<'m> Computed<'m> {
    /// No computed values: for runs over documents other than events.
    fn none() -> Computed<'m> {
        Computed {
            fields: &[],
            visible: Cell::new(0),
            values: Box::default(),
            maker: None,
        }
    }

    /// The value at `slot`, made now if it was not yet; `None` for a value not seen from the
    /// one being made.
    fn made(&self, slot: usize) -> Option<&Step<Option<Value>>> {
        if slot >= self.visible.get() {
            return None;
        }
        Some(self.values[slot].get_or_init(|| self.make(slot, &mut None)))
    }

    /// Makes the value at `slot`, seeing only the values above it; when tracing, `trace` gets
    /// the lines saying where it came from.
    fn make(&self, slot: usize, trace: &mut Option<Vec<String>>) -> Step<Option<Value>> {
        let maker = self.maker.expect("computed values are made for an event");
        let this = Event {
            value: maker.event,
            identity: maker.identity,
            computed: self,
            parents: maker.parents,
        };
        let name = &maker.connection.mapping.name;
        let mut run = Run::new(maker.connection, maker.state, name, this, None, &[]);
        run.trace = trace.take();
        let outer = self.visible.replace(slot);
        let made = run.computed_value(&self.fields[slot], Scope::of(maker.event));
        self.visible.set(outer);
        *trace = run.trace.take();
        made
    }

    /// The value at `path`, a path of a computed value.
    pub(crate) fn read(&self, path: &Path) -> Option<&Value> {
        let (slot, under) = path.computed_slot()?;
        walk(self.made(slot)?.as_ref().ok()?.as_ref()?, under)
    }

    /// How a read of `path` stops, when it reads a value that could not be made.
    fn stop_for(&self, path: &Path) -> Option<&Stop> {
        let (slot, _) = path.computed_slot()?;
        self.made(slot)?.as_ref().err()
    }
}

impl NamedValues for Computed<'_> {
    fn named(&self, name: &str) -> Option<(&str, &Value)> {
        let slot = self.fields.iter().position(|field| *field.key == *name)?;
        Some((
            &self.fields[slot].key,
            self.made(slot)?.as_ref().ok()?.as_ref()?,
        ))
    }

    fn all(&self) -> Vec<(&str, &Value)> {
        (0..self.fields.len())
            .filter_map(|slot| {
                let value = self.made(slot)?.as_ref().ok()?.as_ref()?;
                Some((&*self.fields[slot].key, value))
            })
            .collect()
    }
}

/// What one event is, for every action: the event, its message type and name, the computed
/// values.
#[derive(Clone, Copy)]
struct Event<'e> {
    value: &'e Value,
    identity: Identity<'e>,
    computed: &'e Computed<'e>,
    /// The parents of the event's paths, each walked once.
    parents: &'e dyn ReadParents,
}

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

    /// Continues a multi-step action once the destination answered the step `continuation`
    /// was planned for: plans the next step whose `when` holds, or returns `None` when the
    /// action is complete. A non-2xx status that no later step handles, or a 2xx response
    /// that the step's `failure` rule reads as a failure, fails the action.
    pub fn resume(
        &self,
        event: &Value,
        state: &dyn Recall,
        continuation: &Continuation,
        response: &StepResponse,
    ) -> Option<Outcome> {
        let action = self.mapping.actions.get(continuation.action)?;
        let step = action.steps.get(continuation.step)?;
        let step_name = step.name.as_deref().unwrap_or(&action.name);
        let failed = |message: String| {
            Some(Outcome::Failed(Failure {
                action: Some(Arc::clone(&action.name)),
                kind: FailureKind::Step,
                message: self.redact(&message).into_owned(),
            }))
        };
        if !(200..300).contains(&response.status) && !step.handled.contains(&response.status) {
            return failed(format!(
                "step `{step_name}` answered {}, which no later step handles",
                response.status
            ));
        }
        let document = Arc::new(response.document());
        if (200..300).contains(&response.status)
            && let Some(rules) = &step.failure
            && let Some((why, _)) = self.failure_in(rules, &document)
        {
            return failed(format!(
                "step `{step_name}` answered {}: {why}",
                response.status
            ));
        }
        let mut responses = continuation.responses.clone();
        responses[continuation.step] = Some(document);
        let parents = Parents::new(event, self.mapping.parents);
        let identity = self.identify(event);
        let computed = self.computed(event, identity, &parents, state, &mut None);
        let event = Event {
            value: event,
            identity,
            computed: &computed,
            parents: &parents,
        };
        self.next_step(
            continuation.action,
            continuation.step + 1,
            event,
            None,
            state,
            responses,
            &mut None,
        )
    }

    /// Whether a response with `status` to the step `continuation` was planned for goes on to
    /// [`Connection::resume`] (2xx, or a status a later step handles) rather than being a
    /// delivery failure.
    pub fn expects(&self, continuation: &Continuation, status: u16) -> bool {
        (200..300).contains(&status)
            || self
                .mapping
                .actions
                .get(continuation.action)
                .and_then(|a| a.steps.get(continuation.step))
                .is_some_and(|s| s.handled.contains(&status))
    }

    /// The reason a refusal gives, written for `event`, secrets redacted.
    fn refusal_reason(
        &self,
        refusal: &crate::compiled::Refusal,
        this: Event<'_>,
        event: &Value,
    ) -> String {
        let message = match self.render(&refusal.reason, self.context(this, event)) {
            Ok(reason) => reason,
            Err(error) => format!(
                "the event is refused, and its reason cannot be written: {}",
                render_error(&error)
            ),
        };
        self.redact(&message).into_owned()
    }

    fn run(&self, event: &Value, state: &dyn Recall, tracing: bool) -> Plan {
        let mut plan = Plan::default();
        if !event.is_object() {
            let message = format!("an event must be a JSON object, not {}", kind(event));
            plan.failed(None, FailureKind::NotAnObject, message);
            return plan;
        }
        let mut trace = tracing.then(Vec::new);
        let parents = Parents::new(event, self.mapping.parents);
        let identity = self.identify(event);
        let (message_type, event_name) = identity;
        let computed = self.computed(event, identity, &parents, state, &mut trace);
        plan.trace.extend(trace.take().unwrap_or_default());
        let this = Event {
            value: event,
            identity,
            computed: &computed,
            parents: &parents,
        };
        let subject = self.subject(this, None, state, &[]);
        if let Some(refusal) = self
            .mapping
            .refuse
            .iter()
            .find(|r| r.when.matches(&subject))
        {
            let message = self.refusal_reason(refusal, this, event);
            if tracing {
                plan.trace
                    .push(format!("refused by the mapping: {message}"));
            }
            plan.failed(None, FailureKind::Refused, message);
            return plan;
        }
        let mut selected = false;
        for (index, action) in self.mapping.actions.iter().enumerate() {
            if !action.when.matches(&subject) {
                if tracing {
                    let why = action.when.explain(&subject);
                    plan.trace
                        .push(format!("action `{}`: not selected: {why}", action.name));
                }
                continue;
            }
            selected = true;
            if tracing {
                plan.trace
                    .push(format!("action `{}`: selected", action.name));
            }
            if let Some(refusal) = action.refuse.iter().find(|r| r.when.matches(&subject)) {
                let message = self.refusal_reason(refusal, this, event);
                if tracing {
                    plan.trace.push(format!("  refused: {message}"));
                }
                plan.failed(Some(&action.name), FailureKind::Refused, message);
                continue;
            }
            match &action.for_each {
                None => self.plan_action(index, this, None, state, tracing, &mut plan),
                Some(rule) => self.plan_each(index, rule, this, state, tracing, &mut plan),
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
            plan.skipped(None, SkipKind::NoAction, reason, false);
        }
        plan
    }

    /// Plans an action with `for_each` once per item its list keeps.
    fn plan_each(
        &self,
        index: usize,
        rule: &crate::compiled::ForEach,
        this: Event<'_>,
        state: &dyn Recall,
        tracing: bool,
        plan: &mut Plan,
    ) {
        let action = &self.mapping.actions[index];
        let subject = self.subject(this, None, state, &[]);
        let items = match subject.read(&rule.path, this.value) {
            Some(Cow::Borrowed(Value::Array(items))) => Cow::Borrowed(&items[..]),
            Some(Cow::Owned(Value::Array(items))) => Cow::Owned(items),
            None | Some(Cow::Borrowed(Value::Null) | Cow::Owned(Value::Null)) => {
                Cow::Owned(Vec::new())
            }
            Some(other) => {
                let message = format!(
                    "`for_each`: `{}` must be a list, not {}",
                    rule.path,
                    kind(&other)
                );
                plan.failed(Some(&action.name), FailureKind::Invalid, message);
                return;
            }
        };
        let before = plan.outcomes.len();
        for (position, value) in items.iter().enumerate() {
            let item = Item {
                value,
                index: position,
            };
            let kept = rule
                .filter
                .as_ref()
                .is_none_or(|filter| filter.matches(&self.subject(this, Some(item), state, &[])));
            if !kept {
                continue;
            }
            match &rule.unnest {
                None => self.plan_action(index, this, Some(item), state, tracing, plan),
                Some(unnest) => {
                    self.plan_unnested(index, rule, unnest, this, item, state, tracing, plan);
                }
            }
        }
        if plan.outcomes.len() == before {
            let reason = format!("`for_each` found no item in `{}`", rule.path);
            plan.skipped(Some(&action.name), SkipKind::NoItem, reason, tracing);
        }
    }

    /// Plans a run of an action with `for_each` and `unnest` for each value the unnested
    /// field gives for `item`, each as the item with that value as its member.
    #[allow(clippy::too_many_arguments)]
    fn plan_unnested(
        &self,
        index: usize,
        rule: &crate::compiled::ForEach,
        unnest: &Field,
        this: Event<'_>,
        item: Item<'_>,
        state: &dyn Recall,
        tracing: bool,
        plan: &mut Plan,
    ) {
        let action = &self.mapping.actions[index];
        let mut run = Run::new(self, state, &action.name, this, Some(item), &[]);
        run.trace = tracing.then(Vec::new);
        let made = run.computed_value(unnest, Scope::of(this.value));
        if let Some(lines) = run.trace.take() {
            plan.trace.extend(lines);
        }
        let name = Some(&action.name);
        let values = match made {
            Ok(Some(Value::Array(values))) if !values.is_empty() => values,
            Ok(None | Some(Value::Null | Value::Array(_))) => {
                let reason = format!(
                    "`{}` gives no value for item {} of `{}`",
                    unnest.label, item.index, rule.path
                );
                return plan.skipped(name, SkipKind::NoItem, reason, tracing);
            }
            Ok(Some(one)) => vec![one],
            Err(Stop::Failed(kind, message)) => {
                return plan.failed(name, kind, self.redact(&message).into_owned());
            }
            Err(Stop::Skip(kind, reason)) => return plan.skipped(name, kind, reason, tracing),
        };
        let Value::Object(members) = item.value else {
            let message = format!(
                "`for_each`: `unnest` adds `{}` to each item, and item {} is {}, not an object",
                unnest.key,
                item.index,
                kind(item.value)
            );
            return plan.failed(name, FailureKind::Invalid, message);
        };
        for value in values {
            let mut unnested = members.clone();
            unnested.insert(unnest.key.to_string(), value);
            let unnested = Value::Object(unnested);
            let run = Item {
                value: &unnested,
                index: item.index,
            };
            self.plan_action(index, this, Some(run), state, tracing, plan);
        }
    }

    /// Plans one run of an action (one item of its `for_each`, or the event).
    fn plan_action(
        &self,
        index: usize,
        event: Event<'_>,
        item: Option<Item<'_>>,
        state: &dyn Recall,
        tracing: bool,
        plan: &mut Plan,
    ) {
        let action = &self.mapping.actions[index];
        let mut trace = tracing.then(Vec::new);
        // A single-step action never reads a response: no allocation for one.
        let responses = if action.steps.len() > 1 {
            vec![None; action.steps.len()]
        } else {
            Vec::new()
        };
        let outcome = self.next_step(index, 0, event, item, state, responses, &mut trace);
        if let Some(lines) = trace {
            plan.trace.extend(lines);
        }
        match outcome {
            Some(Outcome::Request(request)) => {
                remember(action, event.value, plan);
                plan.outcomes.push(Outcome::Request(request));
            }
            Some(other) => plan.outcomes.push(other),
            None => {
                let reason = "no step of this action applies".to_owned();
                plan.skipped(Some(&action.name), SkipKind::NoStep, reason, tracing);
            }
        }
    }

    /// The computed values of `event` (of message type and name `identity`), made as they are
    /// read; when tracing, all of them now, in order, each saying where it came from.
    fn computed<'e>(
        &'e self,
        event: &'e Value,
        identity: Identity<'e>,
        parents: &'e dyn ReadParents,
        state: &'e dyn Recall,
        trace: &mut Option<Vec<String>>,
    ) -> Computed<'e> {
        if self.mapping.computed.is_empty() {
            return Computed::none();
        }
        let computed = Computed {
            fields: &self.mapping.computed,
            visible: Cell::new(self.mapping.computed.len()),
            values: self
                .mapping
                .computed
                .iter()
                .map(|_| OnceCell::new())
                .collect(),
            maker: Some(Maker {
                connection: self,
                event,
                identity,
                parents,
                state,
            }),
        };
        if trace.is_some() {
            for (slot, cell) in computed.values.iter().enumerate() {
                let made = computed.make(slot, trace);
                cell.set(made)
                    .expect("a value above is made before the ones below it");
            }
        }
        computed
    }

    /// Plans the first step from `from` on whose `when` holds; `None` when none does.
    #[allow(clippy::too_many_arguments)]
    fn next_step(
        &self,
        index: usize,
        from: usize,
        event: Event<'_>,
        item: Option<Item<'_>>,
        state: &dyn Recall,
        responses: Vec<Option<Arc<Value>>>,
        trace: &mut Option<Vec<String>>,
    ) -> Option<Outcome> {
        let action = &self.mapping.actions[index];
        let (at, more) = if action.steps.len() == 1 && action.steps[0].when.is_none() {
            // A plain `request`: nothing to choose, nothing waits.
            (0, false)
        } else {
            self.choose_step(action, from, event, item, state, &responses, trace)?
        };
        let step = &action.steps[at];
        let mut run = Run::new(self, state, &action.name, event, item, &responses);
        run.trace = trace.take();
        if let (Some(lines), Some(name)) = (run.trace.as_mut(), &step.name) {
            lines.push(format!("  step `{name}`: runs"));
        }
        let outcome = run.request(step, action.dedupe_key.as_ref());
        *trace = run.trace;
        Some(match outcome {
            Ok(mut request) => {
                if more {
                    request.continuation = Some(Continuation {
                        action: index,
                        step: at,
                        responses,
                    });
                }
                Outcome::Request(request)
            }
            Err(Stop::Skip(kind, reason)) => {
                if let Some(lines) = trace.as_mut() {
                    lines.push(format!("  skipped: {reason}"));
                }
                Outcome::Skipped(Skip {
                    action: Some(Arc::clone(&action.name)),
                    kind,
                    reason,
                })
            }
            Err(Stop::Failed(kind, message)) => Outcome::Failed(Failure {
                action: Some(Arc::clone(&action.name)),
                kind,
                message: self.redact(&message).into_owned(),
            }),
        })
    }

    /// The first step from `from` on whose `when` holds, and whether a later step may still run
    /// after it (so that its response is waited for).
    #[allow(clippy::too_many_arguments)]
    fn choose_step(
        &self,
        action: &CompiledAction,
        from: usize,
        event: Event<'_>,
        item: Option<Item<'_>>,
        state: &dyn Recall,
        responses: &[Option<Arc<Value>>],
        trace: &mut Option<Vec<String>>,
    ) -> Option<(usize, bool)> {
        let subject = self.subject(event, item, state, responses);
        let position = action.steps[from..].iter().position(|step| {
            let runs = step.when.as_ref().is_none_or(|w| w.matches(&subject));
            if !runs && let (Some(lines), Some(when)) = (trace.as_mut(), &step.when) {
                lines.push(format!(
                    "  step `{}`: skipped: {}",
                    step.name.as_deref().unwrap_or_default(),
                    when.explain(&subject)
                ));
            }
            runs
        })?;
        let at = from + position;
        // A later step whose `when` reads only responses already known, and fails, can never
        // run: without other later steps, nothing waits for this step's response.
        let more = action.steps[at + 1..].iter().any(|later| {
            later
                .when
                .as_ref()
                .is_none_or(|w| w.reads_response_from(at) || w.matches(&subject))
        });
        Some((at, more))
    }

    fn subject<'e>(
        &'e self,
        event: Event<'e>,
        item: Option<Item<'e>>,
        state: &'e dyn Recall,
        responses: &'e [Option<Arc<Value>>],
    ) -> Subject<'e> {
        Subject {
            event: event.value,
            scope: event.value,
            key: None,
            item,
            computed: event.computed,
            parents: event.parents,
            message_type: event.identity.0,
            event_name: event.identity.1,
            responses,
            connection: self,
            state,
        }
    }

    /// What a template renders with, `scope` being `event` in it.
    fn context<'e>(&'e self, event: Event<'e>, scope: &'e Value) -> Context<'e> {
        Context {
            event: Some(scope),
            settings: &self.settings,
            computed: Some(event.computed),
            item: None,
            responses: None,
        }
    }

    /// Whether a 2xx `response` to `request` says that the request failed, by the first
    /// `failure` rule of its action or step whose `when` holds: why, and whether to send it
    /// again later.
    pub fn refusal(&self, request: &PlannedRequest, response: &StepResponse) -> Option<Refusal> {
        let rules = request.failure.as_ref()?;
        if !(200..300).contains(&response.status) {
            return None;
        }
        let (reason, retry) = self.failure_in(rules, &response.document())?;
        Some(Refusal {
            reason: self.redact(&reason).into_owned(),
            retry,
        })
    }

    /// Why the first of `rules` that reads `response` (a step response's document) as a
    /// failure does, and whether its request is retried; `None` when none does.
    pub(crate) fn failure_in(
        &self,
        rules: &[crate::compiled::FailureRule],
        response: &Value,
    ) -> Option<(String, bool)> {
        let computed = Computed::none();
        let parents = Parents::new(response, 0);
        let subject = Subject {
            event: response,
            scope: response,
            key: None,
            item: None,
            computed: &computed,
            parents: &parents,
            message_type: None,
            event_name: None,
            responses: &[],
            connection: self,
            state: &crate::state::NoState,
        };
        let rule = rules.iter().find(|rule| rule.when.matches(&subject))?;
        let reason = match rule.reason.as_ref().and_then(|path| path.get(response)) {
            Some(reason) => value::text_of(&reason),
            None => "it gives no reason".to_owned(),
        };
        Some((reason, rule.retry))
    }

    /// The message type and event name, read where the mapping's dialect keeps them.
    fn identify<'e>(&self, event: &'e Value) -> Identity<'e> {
        let text = |key: &str| match event {
            Value::Object(map) => member(map, key).and_then(Value::as_str),
            _ => None,
        };
        match self.mapping.dialect() {
            SourceDialect::Segment => (text("type").or_else(|| text("action")), text("event")),
            SourceDialect::Amplitude => (Some("track"), text("event_type")),
            // Extole's webhooks carry events; ferry also accepts `"type": "delete"` for erasures.
            SourceDialect::Extole => (text("type").or(Some("track")), text("event_name")),
            SourceDialect::Json => (None, None),
        }
    }
}

/// A template error as a message names it.
fn render_error(error: &RenderError) -> String {
    match error {
        RenderError::Undefined(Some(name)) => format!("it reads `{name}`, which is missing"),
        RenderError::Undefined(None) => "it reads a value that is missing".to_owned(),
        RenderError::Failed(why) => why.clone(),
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

/// The state of one step's run on one event.
struct Run<'a> {
    connection: &'a Connection,
    state: &'a dyn Recall,
    action: &'a Arc<str>,
    /// The whole event, which `$event` paths read wherever they are.
    event: &'a Value,
    computed: &'a Computed<'a>,
    /// The parents of the event's paths, each walked once.
    parents: &'a dyn ReadParents,
    /// The item of the action's `for_each` this run plans a request for, with its position.
    item: Option<Item<'a>>,
    message_type: Option<&'a str>,
    event_name: Option<&'a str>,
    /// Responses of the action's earlier steps, by step index.
    responses: &'a [Option<Arc<Value>>],
    trace: Option<Vec<String>>,
    /// While a merged array of a batched body is written: where its items are.
    capture: Option<Capture>,
    /// Why the last template found missing was: the value it read that the event lacks.
    undefined: Option<String>,
    /// Which fields' `when` selectors (by slot) this run tested against the whole event, and
    /// which of those held: fields written under one `when`, and the buckets that ask whether
    /// they were, test it once.
    tested: u128,
    held: u128,
}

/// The item ranges of the list being written at `depth` 1.
struct Capture {
    /// How many lists deep the writer is: 1 inside the captured list itself.
    depth: usize,
    items: Vec<std::ops::Range<usize>>,
    /// Whether the captured list was entered: a list written whole (a list `value`) was not.
    entered: bool,
    /// False once an item was written where its range could not be recorded.
    valid: bool,
}

/// What `$` reads where a field is evaluated: the event, or an item of `each` or `entries`
/// (with its key).
#[derive(Clone, Copy)]
struct Scope<'a> {
    value: &'a Value,
    key: Option<&'a str>,
}

impl<'a> Scope<'a> {
    fn of(value: &'a Value) -> Self {
        Scope { value, key: None }
    }
}

impl<'a> Run<'a> {
    fn new(
        connection: &'a Connection,
        state: &'a dyn Recall,
        action: &'a Arc<str>,
        event: Event<'a>,
        item: Option<Item<'a>>,
        responses: &'a [Option<Arc<Value>>],
    ) -> Run<'a> {
        Run {
            connection,
            state,
            action,
            event: event.value,
            computed: event.computed,
            parents: event.parents,
            item,
            message_type: event.identity.0,
            event_name: event.identity.1,
            responses,
            trace: None,
            capture: None,
            undefined: None,
            tested: 0,
            held: 0,
        }
    }

    /// A computed value: one value, or an object or a list (`fields`, `each`, `items`,
    /// `entries`) made as a body member would be, then read back.
    fn computed_value(&mut self, field: &'a Field, scope: Scope<'a>) -> Step<Option<Value>> {
        if !matches!(
            field.source,
            Source::Object(_) | Source::Each { .. } | Source::Items(_) | Source::Entries { .. }
        ) {
            return self
                .value(field, scope)
                .map(|value| value.map(Cow::into_owned));
        }
        let mut out = vec![b'{'];
        let mut first = true;
        self.field(field, scope, &mut out, &mut first, &mut None)?;
        out.push(b'}');
        let mut written: Map<String, Value> =
            serde_json::from_slice(&out).expect("the engine writes JSON");
        Ok(written.remove(&*field.key))
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            trace.push(format!("  {}", line()));
        }
    }

    /// The value a path's root stands for, `scope` being `$`.
    fn root(&self, path: &Path, scope: Scope<'a>) -> Option<&'a Value> {
        match path.root() {
            Root::Scope => Some(scope.value),
            Root::Event => Some(self.event),
            Root::Item => self.item.map(|item| item.value),
            Root::Settings => Some(&self.connection.settings_value),
            Root::Key | Root::Index | Root::Computed => None,
        }
    }

    /// The value at `path` in `scope`, or of another root, or the entry's key, or the item's
    /// position.
    fn read(&self, path: &Path, scope: Scope<'a>) -> Option<Cow<'a, Value>> {
        match path.root() {
            Root::Key => scope.key.map(|k| Cow::Owned(Value::String(k.to_owned()))),
            Root::Index => self.item.map(|item| Cow::Owned(Value::from(item.index))),
            Root::Computed => self.computed.read(path).map(Cow::Borrowed),
            _ => self.parents.get(path, self.root(path, scope)?),
        }
    }

    /// A query's first match (a plain path's value).
    fn read_first(&self, path: &Path, scope: Scope<'a>) -> Option<Cow<'a, Value>> {
        if matches!(path.root(), Root::Key | Root::Index | Root::Computed) {
            return self.read(path, scope);
        }
        path.first(self.root(path, scope)?).map(Cow::Borrowed)
    }

    /// Fails the way a computed value `path` reads failed, if it did.
    fn check_computed(&self, path: &Path) -> Step<()> {
        match self.computed.stop_for(path) {
            Some(stop) => Err(stop.clone()),
            None => Ok(()),
        }
    }

    /// Whether `selector` holds in `scope`; when tracing, the reason it does not is noted
    /// under `label`.
    fn holds(&mut self, selector: &Selector, scope: Scope<'a>, label: &str, what: &str) -> bool {
        let subject = self.subject_at(scope);
        let holds = selector.matches(&subject);
        if !holds && self.trace.is_some() {
            let why = selector.explain(&subject);
            self.note(|| format!("{label}: left out by its `{what}`: {why}"));
        }
        holds
    }

    /// Whether a field's `when` holds in `scope`; when tracing, the reason it does not is
    /// noted under `label`.
    fn field_holds(&mut self, when: &Selector, scope: Scope<'a>, label: &str) -> bool {
        if when.slot.get().is_none() {
            return self.holds(when, scope, label, "when");
        }
        let holds = self.tested(when, scope);
        if !holds && self.trace.is_some() {
            let why = when.explain(&self.subject_at(scope));
            self.note(|| format!("{label}: left out by its `when`: {why}"));
        }
        holds
    }

    /// Whether `selector` holds in `scope`: for a field's `when` against the whole event,
    /// tested once per run.
    fn tested(&mut self, selector: &Selector, scope: Scope<'a>) -> bool {
        let whole_event = std::ptr::eq(scope.value, self.event) && scope.key.is_none();
        let Some(bit) = selector
            .slot
            .get()
            .filter(|_| whole_event)
            .map(|&slot| 1_u128 << slot)
        else {
            return selector.matches(&self.subject_at(scope));
        };
        if self.tested & bit == 0 {
            self.tested |= bit;
            if selector.matches(&self.subject_at(scope)) {
                self.held |= bit;
            }
        }
        self.held & bit != 0
    }

    fn subject_at(&self, scope: Scope<'a>) -> Subject<'a> {
        Subject {
            event: self.event,
            scope: scope.value,
            key: scope.key,
            item: self.item,
            computed: self.computed,
            parents: self.parents,
            message_type: self.message_type,
            event_name: self.event_name,
            responses: self.responses,
            connection: self.connection,
            state: self.state,
        }
    }

    /// Renders a template with `scope` as its `event`.
    fn render(&self, template: &Template, scope: &'a Value) -> Result<String, RenderError> {
        let responses =
            (!template.response_steps.is_empty()).then(|| self.responses_read(template));
        self.connection.render(
            template,
            Context {
                event: Some(scope),
                settings: &self.connection.settings,
                computed: Some(self.computed),
                item: self.item,
                responses: responses.as_ref(),
            },
        )
    }

    /// The responses of the earlier steps `template` reads, by step name: a step that did not
    /// run is missing.
    fn responses_read(&self, template: &Template) -> minijinja::Value {
        let read = template.response_steps.iter().filter_map(|(name, index)| {
            let document = self.responses.get(*index)?.as_deref()?;
            Some((minijinja::Value::from(&**name), template_value(document)))
        });
        minijinja::Value::from_object(read.collect::<std::collections::BTreeMap<_, _>>())
    }

    /// The same run over values that live shorter (items a query copied out of the event).
    fn scoped<'b>(&self) -> Run<'b>
    where
        'a: 'b,
    {
        Run {
            connection: self.connection,
            state: self.state,
            action: self.action,
            event: self.event,
            computed: self.computed,
            parents: self.parents,
            item: self.item,
            message_type: self.message_type,
            event_name: self.event_name,
            responses: self.responses,
            trace: None,
            capture: None,
            undefined: None,
            tested: 0,
            held: 0,
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
    match value {
        Value::String(text) => write_str(out, text),
        other => serde_json::to_writer(&mut *out, other)
            .expect("writing a JSON value to memory cannot fail"),
    }
}

/// Writes `text` as a JSON string, exactly as serde_json does. Most texts (names, ids, keys)
/// need no escape: those are copied in one go instead of scanned fragment by fragment.
fn write_str(out: &mut Vec<u8>, text: &str) {
    if needs_escape(text.as_bytes()) {
        serde_json::to_writer(&mut *out, text).expect("writing to memory cannot fail");
        return;
    }
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// Whether `bytes` hold a byte serde_json escapes: a control character, `"` or `\\`. Eight
/// bytes are tested at a time (the word tests of "Bit Twiddling Hacks", exact for this use).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |w: u64| w.wrapping_sub(ONES) & !w & HIGH != 0;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        if w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0
            || zero_byte(w ^ (ONES * u64::from(b'"')))
            || zero_byte(w ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{needs_escape, write_str, write_value};
    use serde_json::{Value, json};

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let texts = [
            "",
            "plain",
            "Zoë Østergaard",
            "quote \" inside",
            "back\\slash",
            "tab\tnew\nline\r",
            "\u{0}\u{1f}\u{7f}",
            "slash / and </script>",
            "emoji 🎉",
        ];
        for text in texts {
            let mut out = Vec::new();
            write_str(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
            let mut out = Vec::new();
            write_value(&mut out, &Value::String(text.to_owned()));
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
        // Every byte at every position of a word, next to plain and multi-byte text.
        for at in 0..17 {
            for byte in 0..=255_u8 {
                let mut bytes = vec![b'a'; 17];
                bytes[at] = byte;
                bytes[(at + 5) % 17] = 0xC3;
                let want = byte < 0x20 || byte == b'"' || byte == b'\\';
                assert_eq!(needs_escape(&bytes), want, "{byte:#x} at {at}");
            }
        }
        let nested = json!({"a": [1, 2.5, "x\"y", null, true], "b": {"c": "d"}});
        let mut out = Vec::new();
        write_value(&mut out, &nested);
        assert_eq!(out, serde_json::to_vec(&nested).unwrap());
    }
}
