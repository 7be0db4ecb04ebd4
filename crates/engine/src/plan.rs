//! What executing a mapping on an event produces: planned requests, skips and failures.

use std::sync::Arc;

use ferry_spec::model::Method;

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
