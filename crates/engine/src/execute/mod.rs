//! Running a connection on one event: select actions, evaluate fields, write bodies straight to
//! a buffer in the mapping's order. Nothing here parses the mapping; everything was compiled.

use std::sync::Arc;

use ferry_spec::model::SourceDialect;
use serde_json::Value;

use crate::compiled::CompiledAction;
use crate::connection::Connection;
use crate::convert::kind;
use crate::plan::{Failure, Outcome, Plan, Skip};
use crate::state::{Recall, Remembered};

mod request;
mod select;
mod value;
mod write;

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

/// The state of one action's run on one event.
struct Run<'a> {
    connection: &'a Connection,
    state: &'a dyn Recall,
    action: &'a str,
    trace: Option<Vec<String>>,
}

impl Run<'_> {
    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            trace.push(format!("  {}", line()));
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
