//! What executing a mapping on an event produces: planned requests, skips and failures.

use std::sync::Arc;

use ferry_spec::model::Method;
use serde_json::Value;

use crate::batch_rule::{BatchRule, BodyLayout};
use crate::connection::Header;
use crate::state::Remembered;

/// Everything one event leads to.
#[derive(Debug, Default)]
pub struct Plan {
    /// One entry per action that ran, plus one skip when none matched.
    pub outcomes: Vec<Outcome>,
    /// Values to remember for later events.
    pub remember: Vec<Remembered>,
    /// Field-level explanation, when tracing was asked for.
    pub trace: Vec<String>,
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
    /// Headers, shared ones first.
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
    /// Where the JSON body's members and merged items are, when the engine recorded it.
    pub(crate) layout: Option<Box<BodyLayout>>,
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
    /// JSON text, written in the mapping's field order.
    Json(String),
    /// Form fields, in order.
    Form(Vec<(String, String)>),
}

impl Body {
    /// The bytes sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Body::Json(text) => text.as_bytes().to_vec(),
            Body::Form(fields) => url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish()
                .into_bytes(),
        }
    }

    /// The `Content-Type` header value.
    pub fn content_type(&self) -> &'static str {
        match self {
            Body::Json(_) => "application/json",
            Body::Form(_) => "application/x-www-form-urlencoded",
        }
    }
}

/// Why an action (or the whole event) produced nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The action, or `None` when no action matched.
    pub action: Option<Arc<str>>,
    /// Why.
    pub reason: String,
}

/// Why an action could not map the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The action.
    pub action: Arc<str>,
    /// What is wrong with the event, naming the field.
    pub message: String,
}
