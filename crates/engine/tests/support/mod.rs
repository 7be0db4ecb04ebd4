//! What the engine's tests share: loading a mapping written inline, binding it, and reading
//! what it plans.

#![allow(dead_code)] // each test file uses some of these

use std::sync::Arc;

use ferry_engine::{Body, CompiledMapping, Connection, NoState, Outcome, Plan, PlannedRequest};
use serde_json::Value;

/// The first lines of every mapping written in a test.
pub const HEAD: &str =
    "version: 1\nname: t\nsource: segment\nhttp:\n  base_url: https://api.example.com\n";

/// Compiles `text`, panicking with its problems when it does not compile.
pub fn load(text: &str) -> Arc<CompiledMapping> {
    Arc::new(ferry_engine::load_str("test.yaml", text).unwrap_or_else(|d| panic!("{d}")))
}

/// The problems of a mapping that must not compile, as `ferry validate` prints them.
pub fn rejected(text: &str) -> String {
    match ferry_engine::load_str("test.yaml", text) {
        Ok(_) => panic!("the mapping compiled, but it must be refused:\n{text}"),
        Err(problems) => problems.to_string(),
    }
}

/// A connection of `text` with `settings` (a JSON object).
pub fn connect(text: &str, settings: &Value) -> Connection {
    Connection::new(
        load(text),
        settings.as_object().expect("settings are a map"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The plan of `event`, without remembered values.
pub fn plan(connection: &Connection, event: &Value) -> Plan {
    connection.plan(event, &NoState)
}

/// The one request a plan holds.
pub fn request(plan: &Plan) -> &PlannedRequest {
    match plan.outcomes.as_slice() {
        [Outcome::Request(request)] => request,
        other => panic!("expected one request, got {other:?}"),
    }
}

/// The requests a plan holds, in order.
pub fn requests(plan: &Plan) -> Vec<&PlannedRequest> {
    plan.outcomes
        .iter()
        .map(|outcome| match outcome {
            Outcome::Request(request) => request,
            other => panic!("expected only requests, got {other:?}"),
        })
        .collect()
}

/// The text of a request's body as sent.
pub fn text(request: &PlannedRequest) -> String {
    String::from_utf8(request.body.as_ref().expect("a body").to_bytes()).expect("UTF-8")
}

/// A JSON body, parsed.
pub fn json(request: &PlannedRequest) -> Value {
    match &request.body {
        Some(Body::Json(text)) => serde_json::from_str(text).expect("bodies are JSON"),
        other => panic!("expected a JSON body, got {other:?}"),
    }
}

/// The message of the one failure a plan holds.
pub fn failure(plan: &Plan) -> String {
    match plan.outcomes.as_slice() {
        [Outcome::Failed(failure)] => failure.message.clone(),
        other => panic!("expected one failure, got {other:?}"),
    }
}

/// The reason of the one skip a plan holds.
pub fn skip(plan: &Plan) -> String {
    match plan.outcomes.as_slice() {
        [Outcome::Skipped(skip)] => skip.reason.clone(),
        other => panic!("expected one skip, got {other:?}"),
    }
}

/// The values of the headers named `name` (in any case), in order.
pub fn headers<'r>(request: &'r PlannedRequest, name: &str) -> Vec<&'r str> {
    request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| &*h.value)
        .collect()
}
