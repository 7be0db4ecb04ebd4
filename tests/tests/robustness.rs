//! Events with every value swapped for values of other types, hostile text included: planning
//! never panics, every body is valid JSON, no event value ever becomes a key of its own, and
//! every URL keeps the mapping's host.

use std::path::Path;
use std::sync::Arc;

use ferry_engine::{Body, Connection, MemoryState, Outcome};
use serde_json::{Map, Value, json};

/// Deterministic choices, so failures reproduce.
struct Rng(fastrand::Rng);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.u64(..)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.0.usize(..items.len())]
    }
}

const MARKER: &str = "INJECTED";

fn hostile(rng: &mut Rng) -> Value {
    let texts = [
        format!("\",\"{MARKER}\":true,\"x\":\""),
        "{{ settings.api_key }}".to_owned(),
        "../../admin?x=1#frag".to_owned(),
        "@evil.example.com/".to_owned(),
        "line\r\nX-Injected: 1".to_owned(),
        "日本語 🚀 \u{0}\u{7f}".to_owned(),
        String::new(),
        "9".repeat(400),
        "2026-13-45T99:99:99Z".to_owned(),
    ];
    match rng.next() % 9 {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1.5e300),
        3 => json!(u64::MAX),
        4 => json!([rng.pick(&texts), 1, null]),
        5 => json!({ "nested": rng.pick(&texts) }),
        _ => json!(rng.pick(&texts)),
    }
}

/// Replaces some values of `value`, at any depth, keeping keys (so mappings still find them).
fn mutate(value: &Value, rng: &mut Rng, depth: usize) -> Value {
    if depth > 0 && rng.next().is_multiple_of(3) {
        return hostile(rng);
    }
    match value {
        Value::Object(map) => {
            let out: Map<String, Value> = map
                .iter()
                .map(|(k, v)| {
                    // Keep the message type readable most of the time so actions still run.
                    if depth == 0 && k == "type" && !rng.next().is_multiple_of(4) {
                        (k.clone(), v.clone())
                    } else {
                        (k.clone(), mutate(v, rng, depth + 1))
                    }
                })
                .collect();
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| mutate(v, rng, depth + 1)).collect())
        }
        other => other.clone(),
    }
}

fn contains_key(value: &Value, key: &str) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| k == key || contains_key(v, key)),
        Value::Array(items) => items.iter().any(|v| contains_key(v, key)),
        _ => false,
    }
}

fn check_mapping(name: &str, settings: &Value, host: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mapping_path = root.join(format!("mappings/{name}.yaml"));
    let mapping = Arc::new(ferry_engine::load(&mapping_path).expect("bundled mappings compile"));
    let connection =
        Connection::new(mapping, settings.as_object().expect("a map")).expect("settings fit");
    let mut seeds: Vec<Value> = Vec::new();
    for case in ferry_golden::discover(&mapping_path) {
        seeds.extend(ferry_golden::Case::read(&case).expect("cases parse").events);
    }
    let mut rng = Rng(fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15));
    let mut state = MemoryState::default();
    let mut requests = 0;
    for round in 0..300 {
        let seed = &seeds[round % seeds.len()];
        let event = mutate(seed, &mut rng, 0);
        let plan = connection.plan(&event, &state);
        for outcome in &plan.outcomes {
            let Outcome::Request(request) = outcome else {
                continue;
            };
            requests += 1;
            assert!(
                request.url.starts_with(host),
                "{name}: the host changed: {} for {event}",
                request.url
            );
            for header in &request.headers {
                assert!(
                    !header.value.contains(['\r', '\n']),
                    "{name}: a header carries a line break: {header:?}"
                );
            }
            if let Some(Body::Json(text)) = &request.body {
                let body: Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("{name}: the body is not JSON ({e}): {text}"));
                assert!(
                    !contains_key(&body, MARKER),
                    "{name}: event text became a key: {text}"
                );
            }
        }
        state.apply(plan.remember);
    }
    assert!(
        requests > 50,
        "{name}: too few requests survived mutation to test anything ({requests})"
    );
}

#[test]
fn extole_survives_hostile_events() {
    check_mapping(
        "extole",
        &json!({ "api_key": "robust-key" }),
        "https://api.extole.io/",
    );
}

#[test]
fn promoter_survives_hostile_events() {
    check_mapping(
        "promoter",
        &json!({ "api_key": "robust-key", "campaign_id": 1 }),
        "https://app.promoter.io/",
    );
}
