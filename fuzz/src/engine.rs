//! The `engine` target: every bundled mapping against arbitrary events, with and without canned
//! responses to the steps of multi-step actions.
//!
//! Input: byte 0 picks a connection (of every bundled mapping, with the settings of its golden
//! cases), byte 1 the canned responses (0: none; 1: the first line of the text is a responses
//! table `{ STEP: { status, headers?, body? } }`; 2 and up: those of a golden case), byte 2's low
//! bit asks for a traced plan; the rest is text whose lines are events, planned in order with
//! the values they remember.

use std::sync::Arc;

use arbitrary::Unstructured;
use ferry_engine::{
    Body, CannedResponses, Connection, DryRun, Followed, MemoryState, Outcome, PlannedRequest,
    Shown, StepResponse,
};
use serde_json::Value;

use crate::bundled::Bundled;

/// The most events one input plans.
pub const MAX_EVENTS: usize = 16;

/// Which canned responses an input asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Responses {
    None,
    /// The first line of the text.
    Inline,
    /// The golden case's set at this index.
    Case(usize),
}

/// One decoded input.
#[derive(Debug)]
pub struct EngineInput<'a> {
    pub connection: u8,
    pub responses: u8,
    pub traced: bool,
    pub text: std::borrow::Cow<'a, str>,
}

impl<'a> EngineInput<'a> {
    /// Decodes the bytes libFuzzer hands over.
    pub fn decode(data: &'a [u8]) -> EngineInput<'a> {
        let mut u = Unstructured::new(data);
        let connection = u.arbitrary::<u8>().unwrap_or(0);
        let responses = u.arbitrary::<u8>().unwrap_or(0);
        let traced = u.arbitrary::<u8>().unwrap_or(0) & 1 == 1;
        EngineInput {
            connection,
            responses,
            traced,
            text: String::from_utf8_lossy(u.take_rest()),
        }
    }

    /// The bytes that decode to this input.
    pub fn encode(connection: u8, responses: u8, traced: bool, text: &str) -> Vec<u8> {
        let mut out = vec![connection, responses, u8::from(traced)];
        out.extend_from_slice(text.as_bytes());
        out
    }
}

/// Every bundled mapping, and the connections of all of them in one list.
pub struct Engine {
    pub bundled: Vec<Bundled>,
    /// `(mapping index, connection index)` for each connection.
    pub connections: Vec<(usize, usize)>,
}

impl Engine {
    /// Loads every bundled mapping.
    pub fn load() -> Engine {
        let bundled = Bundled::all();
        let connections = bundled
            .iter()
            .enumerate()
            .flat_map(|(m, b)| (0..b.connections.len()).map(move |c| (m, c)))
            .collect();
        Engine {
            bundled,
            connections,
        }
    }

    /// The index byte 0 takes to reach connection `c` of mapping `m`.
    pub fn connection_index(&self, m: usize, c: usize) -> u8 {
        let index = self
            .connections
            .iter()
            .position(|&pair| pair == (m, c))
            .expect("a known connection");
        u8::try_from(index).expect("fewer than 256 connections")
    }

    /// Runs one input, panicking on any broken promise; returns the requests planned (the
    /// steps that canned responses answered included).
    pub fn run(&self, input: &EngineInput<'_>) -> usize {
        let mut requests = 0;
        let (m, c) = self.connections[usize::from(input.connection) % self.connections.len()];
        let bundled = &self.bundled[m];
        let connection = &bundled.connections[c];
        let mut lines = input.text.lines();
        let modes = 2 + bundled.responses.len();
        let responses = match usize::from(input.responses) % modes {
            0 => Responses::None,
            1 => Responses::Inline,
            n => Responses::Case(n - 2),
        };
        let canned = match responses {
            Responses::None => CannedResponses::default(),
            Responses::Inline => lines
                .next()
                .and_then(|line| serde_json::from_str::<Value>(line).ok())
                .and_then(|table| CannedResponses::from_value(table).ok())
                .unwrap_or_default(),
            Responses::Case(n) => bundled.responses[n].clone(),
        };
        // The dry run `ferry map` and golden cases make, without batches.
        let mut run = DryRun::new(connection, canned, false, input.traced);
        for (index, line) in lines.take(MAX_EVENTS).enumerate() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let (shown, _) = run.event(index + 1, &event);
            let followed: Vec<Followed> = shown
                .into_iter()
                .map(|item| match item {
                    Shown::Event { followed, .. } => followed,
                    Shown::Batch(_) => unreachable!("a dry run without batches merges nothing"),
                })
                .collect();
            for step in &followed {
                check_outcome(connection, &event, run.state(), step);
                requests += usize::from(matches!(step.outcome, Outcome::Request(_)));
            }
            // What a dry run shows (the trace is raw: `ferry map --trace` redacts each line).
            let shown = ferry_golden::render_followed(index + 1, None, &followed, connection);
            check_no_secret(connection, &shown, &input.text);
        }
        requests
    }
}

/// A planned request keeps the engine's promises: a JSON body that parses, a URL on the
/// connection's host, headers that HTTP can carry.
pub fn check_request(connection: &Connection, request: &PlannedRequest) {
    match &request.body {
        Some(Body::Json(text)) => {
            let body: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("a planned body is not JSON ({e}): {text}"));
            assert!(body.is_object(), "a planned body is not an object: {text}");
        }
        Some(Body::JsonArray(text)) => {
            let body: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("a planned body is not JSON ({e}): {text}"));
            assert!(
                body.is_array(),
                "a planned array body is not an array: {text}"
            );
        }
        Some(Body::Ndjson(text)) => {
            for line in text.lines() {
                let item: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a planned line is not JSON ({e}): {line}"));
                assert!(item.is_object(), "a planned line is not an object: {line}");
            }
        }
        Some(Body::Form(_)) | None => {}
    }
    let base = url::Url::parse(connection.base_url()).expect("the base URL parses");
    let url = url::Url::parse(&request.url)
        .unwrap_or_else(|e| panic!("a planned URL does not parse ({e}): {}", request.url));
    assert!(
        request.url.starts_with(connection.base_url()),
        "a planned URL left the base URL: {}",
        request.url
    );
    assert_eq!(
        url.host_str(),
        base.host_str(),
        "event data chose the host: {}",
        request.url
    );
    assert_eq!(url.port_or_known_default(), base.port_or_known_default());
    for header in &request.headers {
        http::HeaderName::from_bytes(header.name.as_bytes())
            .unwrap_or_else(|e| panic!("header name {:?}: {e}", header.name));
        http::HeaderValue::from_str(&header.value)
            .unwrap_or_else(|e| panic!("header {}: value {:?}: {e}", header.name, header.value));
    }
}

fn check_outcome(connection: &Connection, event: &Value, state: &MemoryState, step: &Followed) {
    match &step.outcome {
        Outcome::Request(request) => {
            check_request(connection, request);
            // A step nobody answered: what the destination might say next.
            if let (Some(continuation), None) = (&request.continuation, &step.answer) {
                for status in [200, 404, 500] {
                    let expected = connection.expects(continuation, status);
                    let response = StepResponse {
                        status,
                        headers: vec![("Content-Type".into(), "application/json".into())],
                        body: event.clone(),
                    };
                    let next = connection.resume(event, state, continuation, &response);
                    if !expected {
                        assert!(
                            matches!(next, Some(Outcome::Failed(_))),
                            "a status the step does not expect did not fail the action"
                        );
                    }
                    if let Some(Outcome::Request(next)) = &next {
                        check_request(connection, next);
                    }
                }
            }
        }
        Outcome::Failed(failure) => assert!(!failure.message.is_empty()),
        Outcome::Skipped(_) => {}
    }
}

/// Text ferry shows never holds a secret setting's value, unless the input itself held it.
pub fn check_no_secret(connection: &Connection, shown: &str, input: &str) {
    let mapping = Arc::clone(connection.mapping());
    for (name, setting) in &mapping.spec().settings {
        if !setting.secret {
            continue;
        }
        if let Some(Value::String(secret)) = connection.setting(name)
            && !secret.is_empty()
            && !input.contains(secret.as_str())
        {
            assert!(
                !shown.contains(secret.as_str()),
                "the secret `{name}` is shown: {shown}"
            );
        }
    }
}
