//! What executing a mapping on an event produces: planned requests, skips and failures.

use std::sync::Arc;

use ferry_spec::model::Method;
use serde_json::Value;

use crate::batch_rule::{BatchRule, BodyLayout};
use crate::compiled::FailureRule;
use crate::connection::Header;
use crate::state::Remembered;

/// Everything one event leads to.
#[derive(Debug, Default)]
pub struct Plan {
    /// One entry per action that ran (several for an action with `for_each`), plus one skip
    /// when none matched.
    pub outcomes: Vec<Outcome>,
    /// Values to remember for later events.
    pub remember: Vec<Remembered>,
    /// Field-level explanation, when tracing was asked for.
    pub trace: Vec<String>,
}

impl Plan {
    /// Records that `action` (or, with `None`, the event) is skipped, and why: in the trace
    /// too, when tracing.
    pub(crate) fn skipped(
        &mut self,
        action: Option<&Arc<str>>,
        kind: SkipKind,
        reason: String,
        tracing: bool,
    ) {
        if tracing {
            self.trace.push(format!("  skipped: {reason}"));
        }
        self.outcomes.push(Outcome::Skipped(Skip {
            action: action.cloned(),
            kind,
            reason,
        }));
    }

    /// Records that `action` (or, with `None`, the event) failed with `message`, which holds
    /// no secret.
    pub(crate) fn failed(&mut self, action: Option<&Arc<str>>, kind: FailureKind, message: String) {
        self.outcomes.push(Outcome::Failed(Failure {
            action: action.cloned(),
            kind,
            message,
        }));
    }
}

/// What one action made of the event.
#[derive(Debug)]
pub enum Outcome {
    /// A request to send.
    Request(PlannedRequest),
    /// Nothing to send, and that is expected (no action matches, a remap dropped the event).
    Skipped(Skip),
    /// The event cannot be mapped by this action.
    Failed(Failure),
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct PlannedRequest {
    /// The action that planned it.
    pub action: Arc<str>,
    /// HTTP method.
    pub method: Method,
    /// Full URL, query included.
    pub url: String,
    /// Headers as sent, in order: the mapping's (or those the request's own replace), the
    /// auth's, the request's, then the body's `Content-Type` unless a header gave one.
    pub headers: Vec<Header>,
    /// The body, if any.
    pub body: Option<Body>,
    /// Key for dropping duplicates, when the action declares one.
    pub dedupe_key: Option<String>,
    /// The step of a multi-step action that planned it.
    pub step: Option<Arc<str>>,
    /// How this request may merge with others, when the action or step declares a batch.
    pub batch: Option<Arc<BatchRule>>,
    /// The rendered `batch.key`, when the rule has one.
    pub batch_key: Option<String>,
    /// Set when later steps of the action wait for this request's response: hand the response
    /// to [`Connection::resume`](crate::Connection::resume).
    pub continuation: Option<Continuation>,
    /// How a 2xx response to it can still say it failed: the first rule whose `when` holds.
    pub(crate) failure: Option<Arc<[FailureRule]>>,
    /// Where the JSON body's members and merged items are, when the engine recorded it.
    pub(crate) layout: Option<Box<BodyLayout>>,
}

impl PlannedRequest {
    /// Whether the request goes through a batcher: it declares a batch and no later step waits
    /// for its own response.
    pub fn batchable(&self) -> bool {
        self.batch.is_some() && self.continuation.is_none()
    }

    /// `action`, or `action.step` for a step of a multi-step action.
    pub fn label(&self) -> String {
        match &self.step {
            Some(step) => format!("{}.{step}", self.action),
            None => self.action.to_string(),
        }
    }
}

/// Where a multi-step action stands: which step was planned and the responses so far.
#[derive(Debug, Clone)]
pub struct Continuation {
    pub(crate) action: usize,
    pub(crate) step: usize,
    pub(crate) responses: Vec<Option<Arc<Value>>>,
}

/// A destination's answer to one step, as later steps read it: `$.status`, `$.headers` (names
/// in lower case) and `$.body` (parsed JSON, or text when the body is not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct StepResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Value,
}

impl StepResponse {
    /// A response from its raw parts.
    pub fn from_bytes(status: u16, headers: Vec<(String, String)>, body: &[u8]) -> StepResponse {
        let body = serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        StepResponse {
            status,
            headers,
            body,
        }
    }

    pub(crate) fn document(&self) -> Value {
        let headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone())))
            .collect();
        serde_json::json!({ "status": self.status, "headers": headers, "body": self.body })
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// A JSON object, written in the mapping's field order.
    Json(String),
    /// A JSON array of objects.
    JsonArray(String),
    /// Newline-delimited JSON: one object a line, each line ended by `\n`.
    Ndjson(String),
    /// Form fields, in order; a field holding a list or an object holds its JSON text.
    Form(Vec<(String, String)>),
}

impl Body {
    /// The bytes sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Body::Json(text) | Body::JsonArray(text) | Body::Ndjson(text) => {
                text.as_bytes().to_vec()
            }
            Body::Form(fields) => url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish()
                .into_bytes(),
        }
    }

    /// The number of bytes sent, counted without writing them.
    pub fn byte_len(&self) -> usize {
        match self {
            Body::Json(text) | Body::JsonArray(text) | Body::Ndjson(text) => text.len(),
            Body::Form(fields) => {
                let pairs: usize = fields
                    .iter()
                    .map(|(name, value)| form_encoded_len(name) + 1 + form_encoded_len(value))
                    .sum();
                pairs + fields.len().saturating_sub(1)
            }
        }
    }

    /// The JSON text of a JSON, JSON array or NDJSON body.
    pub fn text(&self) -> Option<&str> {
        match self {
            Body::Json(text) | Body::JsonArray(text) | Body::Ndjson(text) => Some(text),
            Body::Form(_) => None,
        }
    }

    /// The `Content-Type` of the body, sent unless a header of the mapping gives another.
    pub fn content_type(&self) -> &'static str {
        match self {
            Body::Json(_) | Body::JsonArray(_) => "application/json",
            Body::Ndjson(_) => "application/x-ndjson",
            Body::Form(_) => "application/x-www-form-urlencoded",
        }
    }
}

/// A 2xx response that says its request failed, as the request's `failure` rule reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why, as the response says it.
    pub reason: String,
    /// Whether to send the request again later, as after a 5xx.
    pub retry: bool,
}

/// Why an action (or the whole event) produced nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The action, or `None` when no action matched.
    pub action: Option<Arc<str>>,
    /// What kind of skip it is.
    pub kind: SkipKind,
    /// Why.
    pub reason: String,
}

/// Why nothing is sent for an event, by the mapping's design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipKind {
    /// No action selects the event.
    NoAction,
    /// No step of the action applies.
    NoStep,
    /// `for_each` found no item to plan a request for.
    NoItem,
    /// A remap says to drop the event (`otherwise: drop`).
    Dropped,
    /// A value declared `required: skip` is missing.
    Required,
}

/// Why an action could not map the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The action, or `None` when the event fails before any action (it is not an object).
    pub action: Option<Arc<str>>,
    /// What kind of failure it is.
    pub kind: FailureKind,
    /// What is wrong with the event, naming the field.
    pub message: String,
}

/// What kind of problem an event has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The event is not a JSON object.
    NotAnObject,
    /// A required value is missing (or a required list or object came out empty).
    Missing,
    /// A value cannot be shaped, or has another type than the mapping says it must.
    Invalid,
    /// The mapping refuses the event (`refuse`).
    Refused,
    /// A template failed for another reason than a missing value.
    Template,
    /// A setting the action needs has no value.
    Setting,
    /// The body is larger than the mapping allows.
    TooLarge,
    /// A step's response is one no later step handles.
    Step,
    /// The request cannot join a batch.
    Batch,
}

impl Failure {
    /// `action `NAME`: message`, or the message alone for a failure of the whole event.
    pub fn describe(&self) -> String {
        match &self.action {
            Some(action) => format!("action `{action}`: {}", self.message),
            None => self.message.clone(),
        }
    }
}

/// The length of `text` form-encoded (`application/x-www-form-urlencoded`, as `to_bytes` writes
/// it): ASCII letters and digits, `*`, `-`, `.` and `_` stay, a space becomes `+`, and every other
/// byte `%XX`.
pub(crate) fn form_encoded_len(text: &str) -> usize {
    text.bytes()
        .map(|byte| usize::from(FORM_ENCODED_LEN[usize::from(byte)]))
        .sum()
}

/// How many bytes form encoding writes for each byte: 1 for those it keeps (a space as `+`), 3
/// for `%XX`. A table, since a request's body of kilobytes is counted once or twice.
static FORM_ENCODED_LEN: [u8; 256] = {
    let mut table = [3; 256];
    let mut byte: u8 = 0;
    loop {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'*' | b'-' | b'.' | b'_' | b' ') {
            table[byte as usize] = 1;
        }
        if byte == u8::MAX {
            break table;
        }
        byte += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_s_length_is_that_of_the_bytes_sent() {
        let every_ascii: String = (1..=127u8).map(char::from).collect();
        let texts = [
            "",
            "plain",
            "a b+c&d=e",
            "[{\"x\":\"é ✓\"}]",
            "*-._~!'()%",
            &every_ascii,
            "Zz09@[`{/:ÿĀ\u{10FFFF}",
        ];
        for name in texts {
            for value in texts {
                let body = Body::Form(vec![
                    (name.to_owned(), value.to_owned()),
                    ("data".to_owned(), value.to_owned()),
                ]);
                assert_eq!(
                    body.byte_len(),
                    body.to_bytes().len(),
                    "{name:?} = {value:?}"
                );
            }
        }
        assert_eq!(Body::Form(Vec::new()).byte_len(), 0);
        let json = Body::Json("{\"a\":\"é\"}".to_owned());
        assert_eq!(json.byte_len(), json.to_bytes().len());
    }
}
