//! Every event request the Extole mapping plans validates against `EventDispatcherRequest` in
//! Extole's published OpenAPI contract (`tests/contracts/extole/`, MIT, from Extole).

use std::path::Path;
use std::sync::Arc;

use ferry_engine::{Body, Connection, MemoryState, Outcome};
use serde_json::{Value, json};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn event_request_validator() -> jsonschema::Validator {
    let path = root().join("tests/contracts/extole/integration-server-to-extole.json");
    let contract: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the contract is in the repo"))
            .expect("the contract is JSON");
    let schema = json!({
        "$ref": "#/components/schemas/EventDispatcherRequest",
        "components": contract["components"],
    });
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("EventDispatcherRequest is a valid schema")
}

/// Every event of the Extole golden cases and of the bundled sample stream.
fn events() -> Vec<Value> {
    let mut events = Vec::new();
    for case in ferry_golden::discover(&root().join("mappings/extole.yaml")) {
        let case = ferry_golden::Case::read(&case).expect("cases parse");
        events.extend(case.events);
    }
    let sample = std::fs::read_to_string(root().join("examples/segment-events.ndjson"))
        .expect("sample events");
    events.extend(
        sample
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("sample lines are JSON")),
    );
    events
}

#[test]
fn event_requests_validate_against_extole_event_dispatcher_request() {
    let mapping = Arc::new(
        ferry_engine::load(&root().join("mappings/extole.yaml")).expect("extole.yaml compiles"),
    );
    let settings = json!({ "api_key": "contract-test" });
    let connection =
        Connection::new(mapping, settings.as_object().expect("a map")).expect("settings fit");
    let validator = event_request_validator();
    let state = MemoryState::default();
    let mut checked = 0;
    for event in events() {
        for outcome in connection.plan(&event, &state).outcomes {
            let Outcome::Request(request) = outcome else {
                continue;
            };
            if !request.url.ends_with("/v6/events") {
                continue;
            }
            let Some(Body::Json(text)) = &request.body else {
                panic!("event requests carry a JSON body")
            };
            let body: Value = serde_json::from_str(text).expect("bodies are JSON");
            let problems: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                problems.is_empty(),
                "{body:#}\ndoes not match EventDispatcherRequest: {problems:#?}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 15,
        "expected to check the event requests of every case, checked {checked}"
    );
}

#[test]
fn the_contract_check_rejects_a_request_without_event_name() {
    let validator = event_request_validator();
    let body =
        json!({ "event_time": "2026-11-02T09:15:00.000Z", "data": { "email": "a@example.com" } });
    assert!(!validator.is_valid(&body));
    let bad_email = json!({ "event_name": "x", "event_time": "2026-11-02T09:15:00.000Z", "data": { "email": "not an email" } });
    assert!(!validator.is_valid(&bad_email));
}
