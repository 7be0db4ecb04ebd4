//! Running a connection on one event: select actions, evaluate fields, write bodies straight to
//! a buffer in the mapping's order. Nothing here parses the mapping; everything was compiled.

use std::sync::Arc;

use ferry_spec::model::SourceDialect;
use serde_json::Value;

use std::borrow::Cow;

use crate::compiled::{CompiledAction, Selector};
use crate::connection::Connection;
use crate::convert::kind;
use crate::path::{Path, Root};
use crate::plan::{Continuation, Failure, Outcome, Plan, Skip, StepResponse};
use crate::state::{Recall, Remembered};

mod bucket;
mod list;
mod request;
mod select;

use select::Subject;
mod value;
mod write;

/// An event's message type and event name, read once per event.
type Identity<'e> = (Option<&'e str>, Option<&'e str>);

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

    /// Continues a multi-step action once the destination answered the step `continuation`
    /// was planned for: plans the next step whose `when` holds, or returns `None` when the
    /// action is complete. A non-2xx status that no later step handles fails the action.
    pub fn resume(
        &self,
        event: &Value,
        state: &dyn Recall,
        continuation: &Continuation,
        response: &StepResponse,
    ) -> Option<Outcome> {
        let action = self.mapping.actions.get(continuation.action)?;
        let step = action.steps.get(continuation.step)?;
        if !(200..300).contains(&response.status) && !step.handled.contains(&response.status) {
            return Some(Outcome::Failed(Failure {
                action: Arc::clone(&action.name),
                message: self
                    .redact(&format!(
                        "step `{}` answered {}, which no later step handles",
                        step.name.as_deref().unwrap_or(&action.name),
                        response.status
                    ))
                    .into_owned(),
            }));
        }
        let mut responses = continuation.responses.clone();
        responses[continuation.step] = Some(Arc::new(response.document()));
        self.next_step(
            continuation.action,
            continuation.step + 1,
            (event, self.identify(event)),
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
        let subject = Subject {
            event,
            scope: event,
            key: None,
            message_type,
            event_name,
            responses: &[],
            connection: self,
            state,
        };
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
            let mut trace = tracing.then(Vec::new);
            // A single-step action never reads a response: no allocation for one.
            let responses = if action.steps.len() > 1 {
                vec![None; action.steps.len()]
            } else {
                Vec::new()
            };
            let outcome = self.next_step(
                index,
                0,
                (event, (message_type, event_name)),
                state,
                responses,
                &mut trace,
            );
            if let Some(lines) = trace {
                plan.trace
                    .push(format!("action `{}`: selected", action.name));
                plan.trace.extend(lines);
            }
            match outcome {
                Some(Outcome::Request(request)) => {
                    remember(action, event, &mut plan);
                    plan.outcomes.push(Outcome::Request(request));
                }
                Some(other) => plan.outcomes.push(other),
                None => plan.outcomes.push(Outcome::Skipped(Skip {
                    action: Some(Arc::clone(&action.name)),
                    reason: "no step of this action applies".to_owned(),
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

    /// Plans the first step from `from` on whose `when` holds; `None` when none does.
    /// `subject` is the event with its message type and name.
    fn next_step(
        &self,
        index: usize,
        from: usize,
        subject: (&Value, Identity<'_>),
        state: &dyn Recall,
        responses: Vec<Option<Arc<Value>>>,
        trace: &mut Option<Vec<String>>,
    ) -> Option<Outcome> {
        let (event, (message_type, event_name)) = subject;
        let action = &self.mapping.actions[index];
        let (at, more) = if action.steps.len() == 1 && action.steps[0].when.is_none() {
            // A plain `request`: nothing to choose, nothing waits.
            (0, false)
        } else {
            self.choose_step(action, from, subject, state, &responses, trace)?
        };
        let step = &action.steps[at];
        let mut run = Run {
            connection: self,
            state,
            action: &action.name,
            event,
            message_type,
            event_name,
            responses: &responses,
            trace: trace.take(),
            capture: None,
        };
        if let (Some(lines), Some(name)) = (run.trace.as_mut(), &step.name) {
            lines.push(format!("  step `{name}`: runs"));
        }
        let outcome = run.request(step, action.dedupe_key.as_ref(), event);
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
            Err(Stop::Drop(reason)) => Outcome::Skipped(Skip {
                action: Some(Arc::clone(&action.name)),
                reason,
            }),
            Err(Stop::Failed(message)) => Outcome::Failed(Failure {
                action: Arc::clone(&action.name),
                message: self.redact(&message).into_owned(),
            }),
        })
    }

    /// The first step from `from` on whose `when` holds, and whether a later step may still run
    /// after it (so that its response is waited for).
    fn choose_step(
        &self,
        action: &CompiledAction,
        from: usize,
        subject: (&Value, Identity<'_>),
        state: &dyn Recall,
        responses: &[Option<Arc<Value>>],
        trace: &mut Option<Vec<String>>,
    ) -> Option<(usize, bool)> {
        let (event, (message_type, event_name)) = subject;
        let subject = Subject {
            event,
            scope: event,
            key: None,
            message_type,
            event_name,
            responses,
            connection: self,
            state,
        };
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

    /// The message type and event name, read where the mapping's dialect keeps them.
    fn identify<'e>(&self, event: &'e Value) -> Identity<'e> {
        let text = |key: &str| event.get(key).and_then(Value::as_str);
        match self.mapping.spec.source {
            SourceDialect::Segment => (text("type").or_else(|| text("action")), text("event")),
            SourceDialect::Amplitude => (Some("track"), text("event_type")),
            // Extole's webhooks carry events; ferry also accepts `"type": "delete"` for erasures.
            SourceDialect::Extole => (text("type").or(Some("track")), text("event_name")),
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

/// The state of one step's run on one event.
struct Run<'a> {
    connection: &'a Connection,
    state: &'a dyn Recall,
    action: &'a Arc<str>,
    /// The whole event, which `$event` paths read wherever they are.
    event: &'a Value,
    message_type: Option<&'a str>,
    event_name: Option<&'a str>,
    /// Responses of the action's earlier steps, by step index.
    responses: &'a [Option<Arc<Value>>],
    trace: Option<Vec<String>>,
    /// While a merged array of a batched body is written: where its items are.
    capture: Option<Capture>,
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
    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            trace.push(format!("  {}", line()));
        }
    }

    /// The value at `path` in `scope`, or of the whole event, or the entry's key.
    fn read(&self, path: &Path, scope: Scope<'a>) -> Option<Cow<'a, Value>> {
        match path.root() {
            Root::Scope => path.get(scope.value),
            Root::Event => path.get(self.event),
            Root::Key => scope.key.map(|k| Cow::Owned(Value::String(k.to_owned()))),
        }
    }

    /// A query's first match (a plain path's value), in `scope` or of the whole event.
    fn read_first(&self, path: &Path, scope: Scope<'a>) -> Option<Cow<'a, Value>> {
        match path.root() {
            Root::Scope => path.first(scope.value).map(Cow::Borrowed),
            Root::Event => path.first(self.event).map(Cow::Borrowed),
            Root::Key => self.read(path, scope),
        }
    }

    /// Whether `selector` holds in `scope`; when tracing, the reason it does not is noted
    /// under `label`.
    fn holds(&mut self, selector: &Selector, scope: Scope<'a>, label: &str, what: &str) -> bool {
        let subject = Subject {
            event: self.event,
            scope: scope.value,
            key: scope.key,
            message_type: self.message_type,
            event_name: self.event_name,
            responses: self.responses,
            connection: self.connection,
            state: self.state,
        };
        let holds = selector.matches(&subject);
        if !holds && self.trace.is_some() {
            let why = selector.explain(&subject);
            self.note(|| format!("{label}: left out by its `{what}`: {why}"));
        }
        holds
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
            message_type: self.message_type,
            event_name: self.event_name,
            responses: self.responses,
            trace: None,
            capture: None,
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

/// Text of a value for query strings, form fields and keys.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
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
