//! Seed corpora, from the golden cases (`mappings/cases/**`), the sample events (`examples/`),
//! the bundled mappings and configuration, and the rejected-mapping fixtures: each in the input
//! layout its target decodes.

use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::batching::{BatchInput, ItemError};
use crate::bundled::{Bundled, root};
use crate::engine::{Engine, EngineInput};
use crate::ingest::{CALLS, EXTOLE_SECRET};

/// The most seeds of one event each per target: the cases of large batches repeat one shape.
const MAX_SINGLES: usize = 24;

/// The seeds of one target: file name and content.
pub type Seeds = Vec<(String, Vec<u8>)>;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The sample events of `examples/<name>.ndjson`, one value each.
fn examples(name: &str) -> Vec<Value> {
    read(&root().join("examples").join(format!("{name}.ndjson")))
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("an example event is JSON"))
        .collect()
}

fn ndjson(events: &[Value]) -> String {
    events
        .iter()
        .map(|event| serde_json::to_string(event).expect("a value serializes"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

/// `mapping_load`: every bundled mapping and every rejected-mapping fixture.
pub fn mapping_load() -> Seeds {
    let mut seeds = Seeds::new();
    for path in yaml_files(&root().join("mappings")) {
        seeds.push((format!("mapping-{}", stem(&path)), read(&path).into_bytes()));
    }
    for path in yaml_files(&root().join("tests/fixtures/rejected")) {
        seeds.push((
            format!("rejected-{}", stem(&path)),
            read(&path).into_bytes(),
        ));
    }
    seeds
}

/// `config_load`: the embedded configuration and the `ferry.yaml` examples of docs/serving.md.
pub fn config_load() -> Seeds {
    let mut seeds = vec![(
        "embedded".to_owned(),
        ferry_server::EMBEDDED_CONFIG.as_bytes().to_vec(),
    )];
    let doc = read(&root().join("docs/serving.md"));
    for (n, block) in doc.split("```yaml\n").skip(1).enumerate() {
        let block = block.split("```").next().unwrap_or_default();
        if block.contains("version:") {
            seeds.push((format!("serving-md-{n}"), block.as_bytes().to_vec()));
        }
    }
    seeds
}

/// `engine`: every golden case's events through its own connection (with its canned responses,
/// as a golden case's set and inline), and the sample events through every mapping of their
/// source.
pub fn engine(engine: &Engine) -> Seeds {
    let mut seeds = Seeds::new();
    for (m, bundled) in engine.bundled.iter().enumerate() {
        for ((file, case), (connections, canned)) in bundled.cases.iter().zip(&bundled.uses) {
            let name = format!("case-{}-{}", bundled.name, file.trim_end_matches(".yaml"));
            let index = engine.connection_index(m, connections[0]);
            let events = ndjson(&case.events);
            seeds.push((name.clone(), EngineInput::encode(index, 0, false, &events)));
            if let Some(set) = canned {
                let set = u8::try_from(*set).expect("few cases");
                let table = serde_json::to_string(&case.responses).expect("a value serializes");
                seeds.push((
                    format!("{name}-canned"),
                    EngineInput::encode(index, 2 + set, false, &events),
                ));
                seeds.push((
                    format!("{name}-inline"),
                    EngineInput::encode(index, 1, true, &format!("{table}\n{events}")),
                ));
            }
        }
        let sample = match bundled.mapping.spec().source {
            ferry_spec::model::SourceDialect::Segment => "segment-events",
            ferry_spec::model::SourceDialect::Amplitude => "amplitude-events",
            ferry_spec::model::SourceDialect::Extole => "extole-events",
            // No sample events are plain JSON.
            ferry_spec::model::SourceDialect::Json => continue,
        };
        let index = engine.connection_index(m, 0);
        seeds.push((
            format!("examples-{}-{sample}", bundled.name),
            EngineInput::encode(index, 0, true, &ndjson(&examples(sample))),
        ));
    }
    seeds
}

/// Events of the golden cases of the mappings reading `dialect`.
fn case_events(bundled: &[Bundled], dialect: ferry_spec::model::SourceDialect) -> Vec<Value> {
    bundled
        .iter()
        .filter(|b| b.mapping.spec().source == dialect)
        .flat_map(|b| b.cases.iter().flat_map(|(_, case)| case.events.clone()))
        .collect()
}

/// `ingest_segment`: each sample and case event as its own call, and batches of them.
pub fn ingest_segment(bundled: &[Bundled]) -> Seeds {
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("demo-write-key:")
    );
    let mut events = examples("segment-events");
    events.extend(case_events(
        bundled,
        ferry_spec::model::SourceDialect::Segment,
    ));
    let mut seeds = Seeds::new();
    let call_of = |event: &Value| {
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("track");
        CALLS
            .iter()
            .position(|call| format!("{call:?}").eq_ignore_ascii_case(kind))
            .unwrap_or(1)
    };
    let mut seen = std::collections::BTreeSet::new();
    for event in events.iter().take(MAX_SINGLES) {
        let body = serde_json::to_string(event).expect("a value serializes");
        if !seen.insert(body.clone()) {
            continue;
        }
        let mut single = vec![u8::try_from(call_of(event)).expect("seven calls")];
        single.extend_from_slice(format!("{auth}\n{body}").as_bytes());
        seeds.push((format!("single-{}", seeds.len()), single));
    }
    let batch = u8::try_from(CALLS.len() - 1).expect("seven calls");
    let body = json!({
        "batch": examples("segment-events"),
        "context": { "library": { "name": "analytics-node", "version": "2.1.0" }, "ip": "203.0.113.7" },
        "integrations": { "All": true },
        "sentAt": "2026-11-02T09:30:00.000Z",
        "writeKey": "demo-write-key",
    });
    let mut seed = vec![batch, b'\n'];
    seed.extend_from_slice(body.to_string().as_bytes());
    seeds.push(("batch-examples".to_owned(), seed));
    let cases = json!({ "batch": case_events(bundled, ferry_spec::model::SourceDialect::Segment) });
    let mut seed = vec![batch];
    seed.extend_from_slice(format!("{auth}\n{cases}").as_bytes());
    seeds.push(("batch-cases".to_owned(), seed));
    seeds
}

/// `ingest_amplitude`: the sample and case events, in one request and one by one.
pub fn ingest_amplitude(bundled: &[Bundled]) -> Seeds {
    let mut events = examples("amplitude-events");
    events.extend(case_events(
        bundled,
        ferry_spec::model::SourceDialect::Amplitude,
    ));
    let mut seeds = vec![(
        "all".to_owned(),
        json!({ "api_key": "demo-api-key", "events": events, "options": { "min_id_length": 3 } })
            .to_string()
            .into_bytes(),
    )];
    for (n, event) in events.iter().take(MAX_SINGLES).enumerate() {
        seeds.push((
            format!("event-{n}"),
            json!({ "api_key": "demo-api-key", "events": [event] })
                .to_string()
                .into_bytes(),
        ));
    }
    seeds
}

/// `ingest_extole`: the sample and case events, as one array and one by one, with the bearer
/// secret and with a signature.
pub fn ingest_extole(bundled: &[Bundled]) -> Seeds {
    let mut events = examples("extole-events");
    events.extend(case_events(
        bundled,
        ferry_spec::model::SourceDialect::Extole,
    ));
    let all = Value::Array(events.clone()).to_string();
    let mut seeds = vec![(
        "all-bearer".to_owned(),
        format!("Bearer {EXTOLE_SECRET}\n\n{all}").into_bytes(),
    )];
    let signature = crate::ingest::extole_signature(all.as_bytes(), EXTOLE_SECRET);
    seeds.push((
        "all-signed".to_owned(),
        format!("\nsha256={signature}\n{all}").into_bytes(),
    ));
    for (n, event) in events.iter().take(MAX_SINGLES).enumerate() {
        seeds.push((
            format!("event-{n}"),
            format!("Bearer {EXTOLE_SECRET}\n\n{event}").into_bytes(),
        ));
    }
    seeds
}

/// `batcher`: braze's case events and the Extole samples, pushed once, to fill a batch, and
/// with a response naming failed items.
pub fn batcher(bundled: &[Bundled]) -> Seeds {
    let braze = bundled
        .iter()
        .find(|b| b.name == "braze")
        .expect("braze is bundled");
    let mut seeds = Seeds::new();
    let errors = [
        ItemError {
            array: 1,
            index: 0,
            index_as_text: false,
        },
        ItemError {
            array: 0,
            index: 2,
            index_as_text: false,
        },
        ItemError {
            array: 2,
            index: 1,
            index_as_text: false,
        },
    ];
    for (file, case) in &braze.cases {
        let text = ndjson(&case.events);
        let name = file.trim_end_matches(".yaml");
        seeds.push((format!("case-{name}"), BatchInput::encode(0, 1, &[], &text)));
    }
    let samples = ndjson(&examples("extole-events"));
    seeds.push((
        "examples".to_owned(),
        BatchInput::encode(0, 1, &errors, &samples),
    ));
    seeds.push((
        "examples-full".to_owned(),
        BatchInput::encode(0, 76, &errors, &samples),
    ));
    seeds.push((
        "examples-small".to_owned(),
        BatchInput::encode(1, 2, &errors, &samples),
    ));
    seeds
}

/// Every target's seeds, by target name.
pub fn all() -> Vec<(&'static str, Seeds)> {
    let engine_all = Engine::load();
    let bundled = &engine_all.bundled;
    vec![
        ("mapping_load", mapping_load()),
        ("config_load", config_load()),
        ("engine", engine(&engine_all)),
        ("ingest_segment", ingest_segment(bundled)),
        ("ingest_amplitude", ingest_amplitude(bundled)),
        ("ingest_extole", ingest_extole(bundled)),
        ("batcher", batcher(bundled)),
    ]
}
