//! The playground's API: the mappings of the mappings folder, and a dry run of a mapping (one of
//! them, or YAML being written) with settings over events, which answers what `ferry map`
//! prints (requests as its JSON lines, skips and failures), the trace of every field, and the
//! mapping's problems located as `ferry validate` prints them. The result comes with a golden
//! case file holding the same settings and events, and the snapshot that case records.

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_engine::{CannedResponses, CompiledMapping, Connection, DryRun, Outcome, Shown};
use ferry_golden::{Case, RequestLines};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::app::{App, Problem};

/// Most events one dry run takes.
const MAX_EVENTS: usize = 100;
/// Largest mapping file the list shows.
const MAX_MAPPING_BYTES: u64 = 512 * 1024;

/// `GET /console/api/mappings`: every mapping file of the mappings folder, with its text.
pub(crate) async fn mappings(State(app): State<Arc<App>>) -> Response {
    let dir = app.setup.load().mappings_dir.clone();
    let listed = tokio::task::spawn_blocking(move || read_mappings(&dir)).await;
    match listed {
        Ok(Ok(mappings)) => Json(json!({ "mappings": mappings })).into_response(),
        Ok(Err(error)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": format!("cannot read the mappings folder: {error}") })),
        )
            .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": error.to_string() })),
        )
            .into_response(),
    }
}

fn read_mappings(dir: &Path) -> std::io::Result<Vec<Value>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| p.metadata().is_ok_and(|m| m.len() <= MAX_MAPPING_BYTES))
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let file = path.file_name()?.to_string_lossy().into_owned();
            Some(json!({ "file": file, "text": text }))
        })
        .collect())
}

/// What the playground runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Trial {
    /// The mapping's YAML.
    mapping: String,
    /// Its file name, for the problems' locations.
    #[serde(default = "default_file")]
    file: String,
    /// Settings as YAML or JSON text.
    #[serde(default)]
    settings: String,
    /// Events: a JSON object, a JSON array, or one JSON object a line.
    #[serde(default)]
    events: String,
    /// The time `now` reads, ISO-8601.
    #[serde(default)]
    now: Option<String>,
    /// Merge requests as the mapping's batch rules say.
    #[serde(default)]
    batch: bool,
}

fn default_file() -> String {
    "playground.yaml".to_owned()
}

/// `POST /console/api/playground`.
pub(crate) async fn run(Json(trial): Json<Trial>) -> Response {
    match tokio::task::spawn_blocking(move || dry_run(&trial)).await {
        Ok(result) => Json(result).into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": error.to_string() })),
        )
            .into_response(),
    }
}

fn dry_run(trial: &Trial) -> Value {
    let mapping = match ferry_engine::load_str(&trial.file, &trial.mapping) {
        Ok(mapping) => Arc::new(mapping),
        Err(problems) => {
            let problems: Vec<Problem> = problems.0.iter().map(Problem::from).collect();
            return json!({ "valid": false, "problems": problems });
        }
    };
    let mut result = json!({ "valid": true, "mapping": &*mapping.name, "problems": [] });
    let settings = match read_settings(&trial.settings) {
        Ok(settings) => settings,
        Err(message) => {
            result["settings_error"] = json!(message);
            return result;
        }
    };
    let mut connection = match Connection::new(Arc::clone(&mapping), &settings) {
        Ok(connection) => connection,
        Err(error) => {
            result["settings_error"] = json!(error.to_string());
            return result;
        }
    };
    if let Some(now) = trial.now.as_deref().filter(|n| !n.trim().is_empty()) {
        let Some(time) = ferry_golden::parse_time(now) else {
            result["settings_error"] = json!(format!(
                "`{now}` is not an ISO-8601 time such as `2026-11-02T09:00:00Z`"
            ));
            return result;
        };
        connection.pin_clock(time);
    }
    let events = match read_events(&trial.events) {
        Ok(events) => events,
        Err(message) => {
            result["events_error"] = json!(message);
            return result;
        }
    };
    let ran = plan(&mapping, &connection, &events, trial.batch);
    result["requests"] = json!(ran.requests);
    result["outcomes"] = json!(ran.outcomes);
    result["trace"] = json!(ran.trace);
    let case = case_file(&mapping, &settings, &events, trial);
    result["snapshot"] = match serde_yaml::from_str::<Case>(&case) {
        Ok(parsed) => match parsed.run(Path::new(&trial.file), &mapping) {
            Ok(snapshot) => json!(snapshot),
            Err(error) => json!(format!("the case does not run: {error}")),
        },
        Err(error) => json!(format!("the case does not read back: {error}")),
    };
    result["case"] = json!(case);
    result
}

/// What a dry run printed.
struct Ran {
    requests: Vec<Value>,
    outcomes: Vec<Value>,
    trace: Vec<Value>,
}

fn plan(mapping: &CompiledMapping, connection: &Connection, events: &[Value], batch: bool) -> Ran {
    let lines = RequestLines {
        mapping: &mapping.name,
        connection,
        show_secrets: false,
    };
    let line = |events: &[usize], request: &ferry_engine::PlannedRequest, answered| {
        let mut out = Vec::new();
        let _ = lines.write(&mut out, events, request, answered);
        serde_json::from_slice::<Value>(&out).unwrap_or(Value::Null)
    };
    let mut ran = Ran {
        requests: Vec::new(),
        outcomes: Vec::new(),
        trace: Vec::new(),
    };
    let mut dry_run = DryRun::new(connection, CannedResponses::default(), batch, true);
    let mut shown = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let (now, trace) = dry_run.event(index + 1, event);
        ran.trace.extend(
            trace
                .iter()
                .map(|line| json!({ "event": index + 1, "line": connection.redact(line) })),
        );
        shown.extend(now);
    }
    shown.extend(dry_run.finish());
    for output in shown {
        match output {
            Shown::Batch(merged) => ran
                .requests
                .push(line(&merged.items, &merged.request, None)),
            Shown::Event { event, followed } => match followed.outcome {
                Outcome::Request(request) => {
                    let answered = followed.answer.as_ref().map(|a| a.status);
                    ran.requests.push(line(&[event], &request, answered));
                }
                Outcome::Skipped(skip) => ran.outcomes.push(json!({
                    "event": event,
                    "action": skip.action.as_deref(),
                    "skipped": connection.redact(&skip.reason),
                })),
                Outcome::Failed(failure) => ran.outcomes.push(json!({
                    "event": event,
                    "action": failure.action.as_deref(),
                    "error": connection.redact(&failure.message),
                })),
            },
        }
    }
    ran
}

fn read_settings(text: &str) -> Result<Map<String, Value>, String> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_yaml::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err("the settings must be a map of setting names to values".to_owned()),
        Err(error) => Err(format!("the settings are not YAML or JSON: {error}")),
    }
}

/// Events from a JSON object, a JSON array of them, or one JSON object a line.
fn read_events(text: &str) -> Result<Vec<Value>, String> {
    let events = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(events)) => events,
        Ok(event) => vec![event],
        Err(_) => {
            let mut events = Vec::new();
            for (number, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let event = serde_json::from_str(line)
                    .map_err(|error| format!("line {}: not JSON: {error}", number + 1))?;
                events.push(event);
            }
            events
        }
    };
    if events.is_empty() {
        return Err("give at least one event".to_owned());
    }
    if events.len() > MAX_EVENTS {
        return Err(format!("at most {MAX_EVENTS} events at once"));
    }
    Ok(events)
}

/// A golden case file with the trial's settings and events; secret settings get stand-in
/// values (the snapshot redacts them anyway).
fn case_file(
    mapping: &CompiledMapping,
    settings: &Map<String, Value>,
    events: &[Value],
    trial: &Trial,
) -> String {
    let settings: Map<String, Value> = settings
        .iter()
        .map(|(name, value)| {
            let secret = mapping.settings().get(name).is_some_and(|s| s.secret);
            let value = if secret {
                Value::String(format!("test-{}", name.replace('_', "-")))
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect();
    let mut case: IndexMap<&str, Value> = IndexMap::new();
    case.insert(
        "description",
        json!(format!(
            "written in the console's playground for {}",
            mapping.name
        )),
    );
    case.insert("settings", Value::Object(settings));
    if let Some(now) = trial.now.as_deref().filter(|n| !n.trim().is_empty()) {
        case.insert("now", json!(now));
    }
    if trial.batch {
        case.insert("batch", json!(true));
    }
    case.insert("events", Value::Array(events.to_vec()));
    let yaml = serde_yaml::to_string(&case).unwrap_or_default();
    format!(
        "# A golden case of {name}: save it as mappings/cases/{name}/NAME.yaml, then record its\n\
         # snapshot with `ferry test mappings/{name}.yaml --accept`.\n{yaml}",
        name = mapping.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_as_an_object_an_array_or_lines() {
        assert_eq!(read_events(r#"{"a":1}"#).unwrap().len(), 1);
        assert_eq!(read_events(r#"[{"a":1},{"a":2}]"#).unwrap().len(), 2);
        assert_eq!(read_events("{\"a\":1}\n\n{\"a\":2}\n").unwrap().len(), 2);
        assert_eq!(
            read_events("{\"a\":1}\n{nope}").unwrap_err(),
            "line 2: not JSON: key must be a string at line 1 column 2"
        );
        assert!(read_events("  ").is_err());
    }
}
