//! The `batcher` target: requests planned by the bundled batching mapping (`braze.yaml`) from
//! arbitrary events, merged, split down to single items, read back from a 2xx response's item
//! errors, and taken apart again item by item.
//!
//! Input: byte 0 picks the variant (0: `braze.yaml` as bundled; 1: the same mapping with batch
//! limits of 3 items and 1,500 bytes, so that limits are reached with few events), byte 1 how
//! many times each planned request is pushed (1 to 80: braze's batches hold 75), byte 2 how the
//! response lists its errors (0: a list, 1: `null`, 2: one error alone, 3: no list), byte 3 the
//! number of errors (0 to 8), then 4 bytes per error (array: 0 `attributes`, 1 `events`, 2 a name
//! no array has, 3 none; the index, 2 bytes; its form: low bit set for a string); the rest is
//! text whose lines are Extole events.

use std::collections::BTreeMap;
use std::sync::Arc;

use arbitrary::Unstructured;
use ferry_engine::{
    Batcher, Body, Connection, MemoryState, MergedRequest, Outcome, PlannedRequest,
};
use ferry_spec::model::{Batch, BatchRef};
use serde_json::{Map, Value, json};

use crate::bundled::Bundled;
use crate::engine::check_request;

/// The most events one input plans.
pub const MAX_EVENTS: usize = 16;
/// The most times one planned request is pushed.
pub const MAX_REPEAT: u8 = 80;
/// The most requests one input pushes: two full batches of braze's 75 and some.
pub const MAX_PUSHES: usize = 180;

/// One error a response reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemError {
    /// 0 and 1: the first and second merged array; 2: an unknown name; 3: none given.
    pub array: u8,
    pub index: u16,
    /// The index written as a string, which names no item.
    pub index_as_text: bool,
}

/// One decoded input.
#[derive(Debug)]
pub struct BatchInput<'a> {
    pub variant: u8,
    pub repeat: usize,
    pub list_form: u8,
    pub errors: Vec<ItemError>,
    pub text: std::borrow::Cow<'a, str>,
}

impl<'a> BatchInput<'a> {
    /// Decodes the bytes libFuzzer hands over.
    pub fn decode(data: &'a [u8]) -> BatchInput<'a> {
        let mut u = Unstructured::new(data);
        let variant = u.int_in_range(0..=1u8).unwrap_or(0);
        let repeat = usize::from(u.int_in_range(1..=MAX_REPEAT).unwrap_or(1));
        let list_form = u.int_in_range(0..=3u8).unwrap_or(0);
        let count = u.int_in_range(0..=8u8).unwrap_or(0);
        let errors = (0..count)
            .map(|_| ItemError {
                array: u.int_in_range(0..=3u8).unwrap_or(0),
                index: u.arbitrary::<u16>().unwrap_or(0),
                index_as_text: u.arbitrary::<u8>().unwrap_or(0) & 1 == 1,
            })
            .collect();
        BatchInput {
            variant,
            repeat,
            list_form,
            errors,
            text: String::from_utf8_lossy(u.take_rest()),
        }
    }

    /// The bytes that decode to this input (`repeat` 1 to 80).
    pub fn encode(variant: u8, repeat: u8, errors: &[ItemError], text: &str) -> Vec<u8> {
        let mut out = vec![
            variant,
            repeat - 1,
            0,
            u8::try_from(errors.len()).expect("few errors"),
        ];
        for error in errors {
            out.push(error.array);
            out.extend_from_slice(&error.index.to_le_bytes());
            out.push(u8::from(error.index_as_text));
        }
        out.extend_from_slice(text.as_bytes());
        out
    }
}

/// `braze.yaml` with batches of at most 3 items and 1,500 bytes: every `max_items` lowered, and
/// a `max_bytes` beside every `linger_ms`, at its indentation.
fn with_small_limits(text: &str) -> String {
    let mut small = String::with_capacity(text.len() + 200);
    for line in text.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        if line.trim_start().starts_with("max_items:") {
            small.push_str(indent);
            small.push_str("max_items: 3\n");
            continue;
        }
        small.push_str(line);
        small.push('\n');
        if line.trim_start().starts_with("linger_ms:") {
            small.push_str(indent);
            small.push_str("max_bytes: 1500\n");
        }
    }
    small
}

/// The braze connections, as bundled and with small limits.
pub struct Braze {
    pub variants: [Connection; 2],
}

impl Braze {
    pub fn load() -> Braze {
        let bundled = Bundled::named("braze");
        let settings: Map<String, Value> =
            serde_json::from_str(&bundled.settings[0]).expect("settings are a JSON object");
        let text = std::fs::read_to_string(crate::bundled::root().join("mappings/braze.yaml"))
            .expect("braze.yaml can be read");
        let small = with_small_limits(&text);
        assert_ne!(
            small, text,
            "braze.yaml no longer has the limits the fuzz target lowers"
        );
        let small = ferry_engine::load_str("braze-small.yaml", &small)
            .unwrap_or_else(|d| panic!("braze.yaml with small limits does not compile:\n{d}"));
        let bundled_connection = Connection::new(Arc::clone(&bundled.mapping), &settings)
            .expect("the case settings bind");
        let small_connection =
            Connection::new(Arc::new(small), &settings).expect("the case settings bind");
        Braze {
            variants: [bundled_connection, small_connection],
        }
    }

    /// Runs one input, panicking on any broken promise.
    pub fn run(&self, input: &BatchInput<'_>) -> Summary {
        let mut summary = Summary::default();
        let connection = &self.variants[usize::from(input.variant) % 2];
        let mut planned: Vec<PlannedRequest> = Vec::new();
        let mut rejected = Vec::new();
        let mut merged = Vec::new();
        let mut batcher = Batcher::new();
        let mut state = MemoryState::default();
        for line in input.text.lines().take(MAX_EVENTS) {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let plan = connection.plan(&event, &state);
            for outcome in plan.outcomes {
                let Outcome::Request(request) = outcome else {
                    continue;
                };
                if request.batch.is_none() || request.continuation.is_some() {
                    continue;
                }
                check_request(connection, &request);
                for _ in 0..input.repeat.min(MAX_PUSHES.saturating_sub(planned.len())) {
                    let tag = planned.len();
                    planned.push(request.clone());
                    match batcher.push(tag, request.clone()) {
                        Ok(closed) => merged.extend(closed),
                        Err(refused) => {
                            assert_eq!(refused.item, tag);
                            rejected.push(tag);
                        }
                    }
                }
            }
            state.apply(plan.remember);
        }
        merged.extend(batcher.flush());
        assert!(batcher.is_empty());

        let mut seen: Vec<usize> = merged
            .iter()
            .flat_map(|m: &MergedRequest<usize>| m.items.iter().copied())
            .chain(rejected)
            .collect();
        seen.sort_unstable();
        assert!(
            seen.iter().copied().eq(0..planned.len()),
            "every planned request is merged or rejected exactly once"
        );

        summary.planned = planned.len();
        let planned: Vec<(PlannedRequest, Map<String, Value>)> = planned
            .into_iter()
            .map(|request| match body_value(&request) {
                Value::Object(body) => (request, body),
                other => panic!("a planned body is not an object: {other}"),
            })
            .collect();
        summary.rejected = seen.len() - merged.iter().map(MergedRequest::len).sum::<usize>();
        summary.merged = merged.len();
        summary.largest = merged.iter().map(MergedRequest::len).max().unwrap_or(0);
        for mut request in merged {
            check_merged(connection, &request, &planned);
            summary.failed += check_item_errors(connection, &request, &planned, input);
            for (position, tag) in request.items.iter().enumerate() {
                let alone = request
                    .item_request(position)
                    .expect("an item of the request");
                let (original, body) = &planned[*tag];
                assert_eq!(
                    body_value(&alone).as_object(),
                    Some(body),
                    "an item taken back out of its batch differs from the request planned"
                );
                assert_eq!(alone.url, original.url);
                assert_eq!(alone.headers, original.headers);
            }
            assert!(request.item_request(request.len()).is_none());
            split_down(connection, &mut request, &planned);
        }
        summary
    }
}

/// What one input did, for tests of the seeds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Requests pushed.
    pub planned: usize,
    /// Requests the batcher refused.
    pub rejected: usize,
    /// Merged requests.
    pub merged: usize,
    /// Items in the largest merged request.
    pub largest: usize,
    /// Items named by the response's errors.
    pub failed: usize,
}

/// Splits `request` in halves down to single items, checking every piece.
fn split_down(
    connection: &Connection,
    request: &mut MergedRequest<usize>,
    planned: &[(PlannedRequest, Map<String, Value>)],
) {
    let before = request.items.clone();
    let Some(mut second) = request.split() else {
        assert_eq!(before.len(), 1, "only a single item cannot be split");
        return;
    };
    assert!(!request.is_empty() && !second.is_empty());
    let after: Vec<usize> = request.items.iter().chain(&second.items).copied().collect();
    assert_eq!(after, before, "a split keeps every item once, in order");
    check_merged(connection, request, planned);
    check_merged(connection, &second, planned);
    split_down(connection, request, planned);
    split_down(connection, &mut second, planned);
}

fn body_value(request: &PlannedRequest) -> Value {
    match &request.body {
        Some(Body::Json(text)) => serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("a body is not JSON ({e}): {text}")),
        other => panic!("a batched request without a JSON body: {other:?}"),
    }
}

/// The batch spec of the action (or step) that planned `request`.
fn batch_spec<'m>(connection: &'m Connection, request: &PlannedRequest) -> &'m Batch {
    let spec = &connection.mapping().spec();
    let action = &spec.actions[&*request.action];
    let batch = match &request.step {
        Some(step) => action.steps[&**step].batch.as_ref(),
        None => action.batch.as_ref(),
    }
    .expect("a batched request's action declares its batch");
    match batch {
        BatchRef::Rule(rule) => rule,
        BatchRef::Named(name) => &spec.batches[name.as_str()],
    }
}

/// The merged body holds each item's array elements once, in item order, within the limits.
fn check_merged(
    connection: &Connection,
    request: &MergedRequest<usize>,
    planned: &[(PlannedRequest, Map<String, Value>)],
) {
    check_request(connection, &request.request);
    let first = &planned[request.items[0]].0;
    assert_eq!(request.request.url, first.url);
    assert_eq!(request.request.headers, first.headers);
    assert_eq!(request.request.method, first.method);
    let body = body_value(&request.request);
    let body = body.as_object().expect("a merged body is an object");
    let text_len = match &request.request.body {
        Some(Body::Json(text)) => text.len(),
        _ => unreachable!("checked by body_value"),
    };
    let rule = request.rule();
    assert!(
        text_len <= rule.max_bytes(),
        "a merged body of {text_len} bytes is over the limit of {}",
        rule.max_bytes()
    );
    let spec = batch_spec(connection, first);
    let items: Vec<&Map<String, Value>> =
        request.items.iter().map(|tag| &planned[*tag].1).collect();
    if let Some(name) = &spec.wrap {
        let Some(Value::Array(got)) = body.get(name) else {
            panic!("a wrapped body without its `{name}` list");
        };
        assert!(got.len() <= rule.max_items());
        assert!(
            got.iter()
                .map(Value::as_object)
                .eq(items.iter().map(|&item| Some(item))),
            "`{name}` of a wrapped body is not the items' bodies in order"
        );
        return;
    }
    for name in &spec.concat {
        let expected: Vec<&Value> = items
            .iter()
            .flat_map(|&item| match item.get(name) {
                Some(Value::Array(values)) => values.iter().collect(),
                None => Vec::new(),
                Some(other) => panic!("`{name}` of a batched body is not a list: {other}"),
            })
            .collect();
        let got: Vec<&Value> = match body.get(name) {
            Some(Value::Array(got)) => got.iter().collect(),
            None => Vec::new(),
            Some(other) => panic!("`{name}` of a merged body is not a list: {other}"),
        };
        assert!(
            got.len() <= rule.max_items(),
            "`{name}` holds {} items, over the limit of {}",
            got.len(),
            rule.max_items()
        );
        assert!(
            got == expected,
            "`{name}` of a merged body is not the items' elements in order, each once"
        );
    }
    // Every other member is the same in each item, and in the merged body.
    for (key, value) in items[0] {
        if spec.concat.contains(key) {
            continue;
        }
        for item in &items {
            assert_eq!(
                item.get(key),
                Some(value),
                "items with different `{key}` merged"
            );
        }
        assert_eq!(body.get(key), Some(value));
    }
}

/// The path `$.name` as `name`; braze's item errors are plain key walks.
fn key_of(path: &str) -> &str {
    path.strip_prefix("$.")
        .filter(|key| key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or_else(|| {
            panic!("the fuzz target reads item errors at `$.key` paths, not `{path}`")
        })
}

/// `failed_items` names the items the response's errors point at, and nothing else.
fn check_item_errors(
    connection: &Connection,
    request: &MergedRequest<usize>,
    planned: &[(PlannedRequest, Map<String, Value>)],
    input: &BatchInput<'_>,
) -> usize {
    let spec = batch_spec(connection, &planned[request.items[0]].0);
    let Some(rule) = &spec.item_errors else {
        assert_eq!(request.failed_items(&json!({})), Default::default());
        return 0;
    };
    let arrays: Vec<&str> = match &spec.wrap {
        Some(name) => vec![name.as_str()],
        None => spec.concat.iter().map(String::as_str).collect(),
    };
    // The oracle: how many elements each item put in each array.
    let counts: Vec<BTreeMap<&str, usize>> = request
        .items
        .iter()
        .map(|tag| {
            let body = &planned[*tag].1;
            arrays
                .iter()
                .map(|name| {
                    let n = if spec.wrap.is_some() {
                        1
                    } else {
                        body.get(*name)
                            .and_then(Value::as_array)
                            .map_or(0, Vec::len)
                    };
                    (*name, n)
                })
                .collect()
        })
        .collect();
    let owner = |array: &str, index: usize| {
        let mut seen = 0;
        for (item, count) in counts.iter().enumerate() {
            let n = count[array];
            if index < seen + n {
                return Some(item);
            }
            seen += n;
        }
        None
    };
    // Each error the response may report, with the item it names.
    let mut errors: Vec<(Value, Option<usize>, String)> = Vec::new();
    for (n, error) in input.errors.iter().enumerate() {
        let reason = format!("reason {n}");
        let mut object = Map::new();
        if let Some(key) = &rule.reason {
            object.insert(key_of(key).to_owned(), json!(reason));
        }
        let index = usize::from(error.index);
        object.insert(
            key_of(&rule.index).to_owned(),
            if error.index_as_text {
                json!(index.to_string())
            } else {
                json!(index)
            },
        );
        let array = match (error.array, &rule.array) {
            (0 | 1, Some(key)) => {
                let name = arrays[usize::from(error.array) % arrays.len()];
                object.insert(key_of(key).to_owned(), json!(name));
                Some(name)
            }
            (2, Some(key)) => {
                object.insert(key_of(key).to_owned(), json!("no_such_array"));
                None
            }
            // Without `array` in the rule, the index counts in the first array.
            (_, None) => Some(arrays[0]),
            (_, Some(_)) => None,
        };
        let item = array
            .filter(|_| !error.index_as_text)
            .and_then(|array| owner(array, index));
        errors.push((Value::Object(object), item, reason));
    }
    let list = key_of(&rule.list).to_owned();
    let (response, reported) = match (input.list_form % 4, errors.first()) {
        (0, _) => {
            let all: Vec<Value> = errors.iter().map(|(error, _, _)| error.clone()).collect();
            (json!({ list.clone(): all }), &errors[..])
        }
        (2, Some((error, _, _))) => (json!({ list.clone(): error }), &errors[..1]),
        (1 | 2, _) => (json!({ list.clone(): null }), &errors[..0]),
        _ => (json!({ "message": "success" }), &errors[..0]),
    };
    let mut failed: Vec<(usize, String)> = reported
        .iter()
        .filter_map(|(_, item, reason)| item.map(|item| (item, reason.clone())))
        .collect();
    failed.sort_by_key(|(item, _)| *item);
    let unattributed: Vec<String> = reported
        .iter()
        .filter(|(_, item, _)| item.is_none())
        .map(|(_, _, reason)| reason.clone())
        .collect();
    let got = request.failed_items(&response);
    assert_eq!(got.failed, failed, "failed items of {response}");
    assert_eq!(
        got.unattributed, unattributed,
        "unattributed errors of {response}"
    );
    failed.len()
}
