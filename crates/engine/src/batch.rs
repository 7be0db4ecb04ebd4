//! Batching: planned requests of one step merge into one HTTP request, as the mapping's `batch`
//! declares (concatenated body arrays, or bodies wrapped in one array), within item and byte
//! limits. The batcher only merges; when to send (linger, shutdown) is the caller's clock.
//!
//! Item bodies are split into their top-level members once, keeping every value as raw JSON
//! text, so merging never re-serialises event data.

use std::borrow::Cow;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash as _, Hasher as _};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use indexmap::IndexMap;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::batch_rule::{BatchRule, BodyLayout, Merge, Slot};
use crate::compiled::Fnv;
use crate::connection::Header;
use crate::plan::{Body, PlannedRequest};

/// A planned request the batcher cannot take.
#[derive(Debug)]
pub struct Rejected<T> {
    /// The caller's tag of the request.
    pub item: T,
    /// The request, unchanged.
    pub request: Box<PlannedRequest>,
    /// Why: too large on its own, or a body that cannot be merged.
    pub reason: String,
}

/// One planned request split for merging: its body text, and where its members and array
/// items are in it.
#[derive(Debug, Clone)]
struct Parts {
    /// Taken from the planned request once it is split (the ranges index into it).
    text: String,
    /// Members that are not merged (part of the batch key): name and value range.
    envelope: Vec<(Box<str>, Range<usize>)>,
    /// Per merged array of the rule: the ranges of its items.
    arrays: Vec<Vec<Range<usize>>>,
    /// Where the merged arrays sit among the envelope members.
    layout: Vec<Slot>,
    /// Bytes of the array items, a separator each.
    bytes: usize,
    /// Bytes of the envelope members, a separator each.
    envelope_bytes: usize,
}

impl Parts {
    fn item(&self, range: &Range<usize>) -> &str {
        &self.text[range.clone()]
    }

    fn envelope_value(&self, index: usize) -> &str {
        &self.text[self.envelope[index].1.clone()]
    }
}

/// Planned requests merged into one HTTP request.
#[derive(Debug)]
pub struct MergedRequest<T> {
    /// The request to send: method, URL and headers of its items, the merged body.
    pub request: PlannedRequest,
    /// The caller's tags of the merged requests, in order.
    pub items: Vec<T>,
    rule: Arc<BatchRule>,
    parts: Vec<Parts>,
}

/// Items a 2xx response reports as failed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ItemFailures {
    /// Position in [`MergedRequest::items`] and the reason.
    pub failed: Vec<(usize, String)>,
    /// Errors that name no item of this request (no index, or an index out of range).
    pub unattributed: Vec<String>,
}

impl<T> MergedRequest<T> {
    /// The number of merged requests.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing was merged (never true for a request the batcher returns).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The batching rule.
    pub fn rule(&self) -> &BatchRule {
        &self.rule
    }

    /// Reads the failed items from a 2xx response body, by the mapping's `item_errors`.
    pub fn failed_items(&self, body: &Value) -> ItemFailures {
        let mut out = ItemFailures::default();
        let Some(rule) = &self.rule.item_errors else {
            return out;
        };
        let Some(list) = rule.list.get(body) else {
            return out;
        };
        let errors: Vec<&Value> = match &*list {
            Value::Array(errors) => errors.iter().collect(),
            Value::Null => Vec::new(),
            other => vec![other],
        };
        let names = self.rule.arrays();
        for error in errors {
            let reason = rule
                .reason
                .as_ref()
                .and_then(|p| p.get(error))
                .map_or_else(|| error.to_string(), |r| text(&r));
            let array = match &rule.array {
                Some(path) => path
                    .get(error)
                    .and_then(|a| names.iter().position(|n| a.as_str() == Some(&**n))),
                None => Some(0),
            };
            let index = rule
                .index
                .get(error)
                .and_then(|i| i.as_u64())
                .and_then(|i| usize::try_from(i).ok());
            match (array, index) {
                (Some(array), Some(index)) => match self.owner(array, index) {
                    Some(item) => out.failed.push((item, reason)),
                    None => out.unattributed.push(reason),
                },
                _ => out.unattributed.push(reason),
            }
        }
        out.failed.sort_by_key(|(item, _)| *item);
        out
    }

    /// The request item `index` alone would have been: for dead letters and per-item retries.
    pub fn item_request(&self, index: usize) -> Option<PlannedRequest> {
        let parts = self.parts.get(index)?.clone();
        Some(assemble(&self.request, &self.rule, vec![parts], vec![()]).request)
    }

    /// The item that contributed element `index` of merged array `array`.
    fn owner(&self, array: usize, index: usize) -> Option<usize> {
        let mut seen = 0;
        for (item, parts) in self.parts.iter().enumerate() {
            let n = parts.arrays.get(array).map_or(0, Vec::len);
            if index < seen + n {
                return Some(item);
            }
            seen += n;
        }
        None
    }

    /// Splits off the second half of the items into a request of their own (for a destination
    /// that answered 413), leaving the first half here; `None` for a single item, which cannot
    /// be split.
    pub fn split(&mut self) -> Option<MergedRequest<T>> {
        if self.items.len() < 2 {
            return None;
        }
        let half = self.items.len() / 2;
        let later_items = self.items.split_off(half);
        let later_parts = self.parts.split_off(half);
        let second = assemble(&self.request, &self.rule, later_parts, later_items);
        let items = std::mem::take(&mut self.items);
        let parts = std::mem::take(&mut self.parts);
        *self = assemble(&self.request, &self.rule, parts, items);
        Some(second)
    }
}

/// An open batch.
struct Open<T> {
    rule: Arc<BatchRule>,
    head: PlannedRequest,
    items: Vec<T>,
    parts: Vec<Parts>,
    counts: Vec<usize>,
    bytes: usize,
    opened: Instant,
}

/// Collects planned requests that declare a batch rule into merged requests.
pub struct Batcher<T> {
    /// Open batches by a hash of their batch key, oldest first.
    open: IndexMap<u64, Open<T>, BuildHasherDefault<Fnv>>,
}

impl<T> Default for Batcher<T> {
    fn default() -> Self {
        Batcher {
            open: IndexMap::default(),
        }
    }
}

impl<T> fmt::Debug for Batcher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("open", &self.open.len())
            .finish()
    }
}

impl<T> Batcher<T> {
    /// An empty batcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no batch is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Adds a planned request tagged `item`. Returns the batches this closed: the open batch it
    /// did not fit into, and its own batch when that became full. A request without a batch
    /// rule, or one too large on its own, is rejected.
    pub fn push(
        &mut self,
        item: T,
        mut request: PlannedRequest,
    ) -> Result<Vec<MergedRequest<T>>, Rejected<T>> {
        let Some(rule) = request.batch.clone() else {
            let reason = format!("action `{}` declares no batch", request.action);
            return Err(Rejected {
                item,
                request: Box::new(request),
                reason,
            });
        };
        let layout = request.layout.take();
        let mut parts = match split_body(&request, layout, &rule) {
            Ok(parts) => parts,
            Err(reason) => {
                return Err(Rejected {
                    item,
                    request: Box::new(request),
                    reason,
                });
            }
        };
        if let Some(n) = parts
            .arrays
            .iter()
            .map(Vec::len)
            .find(|&n| n > rule.max_items)
        {
            return Err(Rejected {
                item,
                request: Box::new(request),
                reason: format!(
                    "one request carries {n} items, over the batch limit of {}",
                    rule.max_items
                ),
            });
        }
        // Braces, the envelope once, and each merged array's key and brackets.
        let overhead = 2
            + parts.envelope_bytes
            + rule
                .arrays()
                .iter()
                .map(|name| name.len() + 6)
                .sum::<usize>();
        if overhead + parts.bytes > rule.max_bytes {
            return Err(Rejected {
                item,
                request: Box::new(request),
                reason: format!(
                    "the body is {} bytes on its own, over the batch limit of {}",
                    overhead + parts.bytes,
                    rule.max_bytes
                ),
            });
        }
        if let Some(Body::Json(text)) = request.body.take() {
            parts.text = text;
        }
        let key = batch_key(&request, &parts);
        let mut closed = Vec::new();
        if let Some(open) = self.open.get(&key)
            && !open.takes(&request, &parts)
        {
            // Two different keys with one hash: send the open batch rather than mix them.
            let open = self.open.shift_remove(&key).expect("just found");
            closed.push(open.close());
        }
        if let Some(open) = self.open.get(&key) {
            let fits = open.bytes + parts.bytes <= rule.max_bytes
                && open
                    .counts
                    .iter()
                    .zip(parts.arrays.iter().map(Vec::len))
                    .all(|(have, add)| have + add <= rule.max_items);
            if !fits {
                let open = self.open.shift_remove(&key).expect("just found");
                closed.push(open.close());
            }
        }
        let open = self.open.entry(key).or_insert_with(|| Open {
            rule: Arc::clone(&rule),
            head: request,
            items: Vec::new(),
            parts: Vec::new(),
            counts: vec![0; parts.arrays.len()],
            bytes: overhead,
            opened: Instant::now(),
        });
        open.bytes += parts.bytes;
        for (have, add) in open
            .counts
            .iter_mut()
            .zip(parts.arrays.iter().map(Vec::len))
        {
            *have += add;
        }
        open.items.push(item);
        open.parts.push(parts);
        if open.counts.iter().any(|&n| n >= rule.max_items) {
            let open = self.open.shift_remove(&key).expect("just inserted");
            closed.push(open.close());
        }
        Ok(closed)
    }

    /// Closes the batches that have waited their linger time by `now`.
    pub fn due(&mut self, now: Instant) -> Vec<MergedRequest<T>> {
        let keys: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, open)| {
                open.rule
                    .linger
                    .is_none_or(|linger| open.opened + linger <= now)
            })
            .map(|(key, _)| *key)
            .collect();
        keys.into_iter()
            .filter_map(|key| self.open.shift_remove(&key))
            .map(Open::close)
            .collect()
    }

    /// When the next open batch is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.open
            .values()
            .map(|open| open.opened + open.rule.linger.unwrap_or_default())
            .min()
    }

    /// Closes every open batch, oldest first.
    pub fn flush(&mut self) -> Vec<MergedRequest<T>> {
        self.open.drain(..).map(|(_, open)| open.close()).collect()
    }
}

impl<T> Open<T> {
    /// Whether `request` has this batch's key (its hash matched).
    fn takes(&self, request: &PlannedRequest, parts: &Parts) -> bool {
        let head = &self.head;
        let first = &self.parts[0];
        let same_rule = match (
            &self.rule.group,
            request.batch.as_ref().and_then(|r| r.group.as_ref()),
        ) {
            (Some(group), Some(other)) => group == other,
            (None, None) => head.action == request.action && head.step == request.step,
            _ => false,
        };
        same_rule
            && head.method == request.method
            && head.url == request.url
            && same_headers(&head.headers, &request.headers)
            && head.batch_key == request.batch_key
            && first.envelope.len() == parts.envelope.len()
            && (0..parts.envelope.len()).all(|i| {
                first.envelope[i].0 == parts.envelope[i].0
                    && first.envelope_value(i) == parts.envelope_value(i)
            })
    }

    fn close(self) -> MergedRequest<T> {
        assemble(&self.head, &self.rule, self.parts, self.items)
    }
}

fn assemble<T>(
    head: &PlannedRequest,
    rule: &Arc<BatchRule>,
    parts: Vec<Parts>,
    items: Vec<T>,
) -> MergedRequest<T> {
    let names = rule.arrays();
    let first = &parts[0];
    // Exactly what is written, so the body is allocated once: braces, the envelope once, each
    // array's key and brackets, and the items with their separators.
    let capacity = 2
        + first.envelope_bytes
        + names.iter().map(|name| name.len() + 6).sum::<usize>()
        + parts.iter().map(|p| p.bytes).sum::<usize>();
    let mut out = String::with_capacity(capacity);
    out.push('{');
    let mut written = vec![false; names.len()];
    let mut any = false;
    let mut member = |out: &mut String, key: &str| {
        if any {
            out.push(',');
        }
        any = true;
        out.push_str(&serde_json::to_string(key).expect("a string serializes"));
        out.push(':');
    };
    let write_array = |out: &mut String, array: usize| {
        out.push('[');
        let mut first_item = true;
        for part in &parts {
            for item in &part.arrays[array] {
                if !first_item {
                    out.push(',');
                }
                first_item = false;
                out.push_str(part.item(item));
            }
        }
        out.push(']');
    };
    for slot in &first.layout {
        match *slot {
            Slot::Envelope(i) => {
                member(&mut out, &first.envelope[i].0);
                out.push_str(first.envelope_value(i));
            }
            Slot::Array(a) => {
                member(&mut out, &names[a]);
                write_array(&mut out, a);
                written[a] = true;
            }
        }
    }
    for (a, name) in names.iter().enumerate() {
        if !written[a] && parts.iter().any(|p| !p.arrays[a].is_empty()) {
            member(&mut out, name);
            write_array(&mut out, a);
        }
    }
    out.push('}');
    let mut request = head.clone();
    request.body = Some(Body::Json(out));
    request.dedupe_key = None;
    request.batch_key = None;
    request.layout = None;
    MergedRequest {
        request,
        items,
        rule: Arc::clone(rule),
        parts,
    }
}

/// Splits a JSON body into envelope members and the items of the arrays the rule merges, in
/// one pass that borrows from the body text.
fn split_body(
    request: &PlannedRequest,
    layout: Option<Box<BodyLayout>>,
    rule: &BatchRule,
) -> Result<Parts, String> {
    let Some(Body::Json(text)) = &request.body else {
        return Err("only JSON bodies can be batched".to_owned());
    };
    let names = rule.arrays();
    if let Merge::Wrap(_) = rule.merge {
        return Ok(Parts {
            text: String::new(),
            envelope: Vec::new(),
            arrays: vec![vec![0..text.len()]],
            layout: vec![Slot::Array(0)],
            bytes: text.len() + 1,
            envelope_bytes: 0,
        });
    }
    // The engine records where the members are as it writes them: no parse needed.
    if let Some(layout) = layout.filter(|l| l.len == text.len() && l.arrays.len() == names.len()) {
        return Ok(parts_of(*layout));
    }
    let mut parts = Parts {
        text: String::new(),
        envelope: Vec::new(),
        arrays: vec![Vec::new(); names.len()],
        layout: Vec::new(),
        bytes: 0,
        envelope_bytes: 0,
    };
    let base = text.as_ptr() as usize;
    let range = |raw: &str| {
        let start = raw.as_ptr() as usize - base;
        start..start + raw.len()
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let members = deserializer
        .deserialize_map(MembersVisitor { arrays: names })
        .and_then(|members| deserializer.end().map(|()| members))
        .map_err(|e| format!("the body cannot be merged: {e}"))?;
    for member in members {
        match member {
            Member::Array(a, items) => {
                parts.bytes += items.iter().map(|i| i.get().len() + 1).sum::<usize>();
                parts.arrays[a] = items.iter().map(|i| range(i.get())).collect();
                parts.layout.push(Slot::Array(a));
            }
            Member::Envelope(key, raw) => {
                parts.envelope_bytes += key.len() + 4 + raw.get().len();
                parts.layout.push(Slot::Envelope(parts.envelope.len()));
                parts.envelope.push((key.into(), range(raw.get())));
            }
        }
    }
    Ok(parts)
}

/// Headers equal: those of one connection share their text, so most compare by pointer.
fn same_headers(a: &[Header], b: &[Header]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            (Arc::ptr_eq(&x.name, &y.name) || x.name == y.name)
                && (Arc::ptr_eq(&x.value, &y.value) || x.value == y.value)
        })
}

/// Parts from a layout the engine recorded while writing the body.
fn parts_of(layout: BodyLayout) -> Parts {
    let BodyLayout {
        envelope,
        arrays,
        slots,
        ..
    } = layout;
    Parts {
        text: String::new(),
        envelope_bytes: envelope
            .iter()
            .map(|(key, range)| key.len() + 4 + range.len())
            .sum(),
        bytes: arrays.iter().flatten().map(|item| item.len() + 1).sum(),
        envelope,
        arrays,
        layout: slots,
    }
}

/// A hash of what must be equal for two requests to merge (checked by [`Open::takes`]): the
/// action and step, or the shared rule's name.
fn batch_key(request: &PlannedRequest, parts: &Parts) -> u64 {
    let mut hasher = Fnv::default();
    // A shared rule merges the requests of every action that names it.
    if let Some(group) = request.batch.as_ref().and_then(|rule| rule.group.as_ref()) {
        group.hash(&mut hasher);
    } else {
        request.action.hash(&mut hasher);
        request.step.hash(&mut hasher);
    }
    request.method.as_str().hash(&mut hasher);
    request.url.hash(&mut hasher);
    for header in &request.headers {
        header.name.hash(&mut hasher);
        header.value.hash(&mut hasher);
    }
    request.batch_key.hash(&mut hasher);
    for (i, (name, _)) in parts.envelope.iter().enumerate() {
        name.hash(&mut hasher);
        parts.envelope_value(i).hash(&mut hasher);
    }
    hasher.finish()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A top-level member of a body, borrowed from its text.
enum Member<'de> {
    /// One of the merged arrays (by index in the rule), as its raw items.
    Array(usize, Vec<&'de RawValue>),
    /// Any other member, as raw JSON.
    Envelope(Cow<'de, str>, &'de RawValue),
}

struct MembersVisitor<'r> {
    arrays: &'r [Box<str>],
}

impl<'de> Visitor<'de> for MembersVisitor<'_> {
    type Value = Vec<Member<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.arrays.iter().position(|name| **name == *key) {
                Some(a) => {
                    let Items(items) = map.next_value()?;
                    members.push(Member::Array(a, items));
                }
                None => members.push(Member::Envelope(key, map.next_value()?)),
            }
        }
        Ok(members)
    }
}

/// The items of a merged array, raw, borrowed from the body.
struct Items<'de>(Vec<&'de RawValue>);

impl<'de> serde::Deserialize<'de> for Items<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemsVisitor;
        impl<'de> Visitor<'de> for ItemsVisitor {
            type Value = Items<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list, to merge")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Items<'de>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(item) = seq.next_element::<&'de RawValue>()? {
                    items.push(item);
                }
                Ok(Items(items))
            }
        }
        deserializer.deserialize_seq(ItemsVisitor)
    }
}

/// An object key, borrowed unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Connection, NoState, Outcome};
    use serde_json::json;

    /// The layout the engine records while writing a body splits it exactly as parsing does.
    #[test]
    fn a_recorded_layout_splits_a_body_as_parsing_it_does() {
        let text = r#"version: 1
name: t
source: segment
http: { base_url: "https://x.example" }
actions:
  track:
    when: {}
    request:
      method: POST
      path: /track
      body:
        api: { value: 2 }
        events:
          items:
            - { each: $.products, fields: { id: { from: $.id }, tags: { each: $.tags } } }
            - { fields: { name: { from: $.event } } }
        fixed: { value: [1, 2] }
        empty: { items: [] }
        last: { fields: { x: { value: "a,]" } } }
    batch: { concat: [events, empty], max_items: 10 }
"#;
        let mapping = std::sync::Arc::new(crate::load_str("t.yaml", text).unwrap());
        let connection = Connection::new(mapping, &serde_json::Map::new()).unwrap();
        for event in [
            json!({"event": "e", "products": [{"id": 1, "tags": ["a", "b"]}, {"id": 2}]}),
            json!({"event": "e"}),
        ] {
            let plan = connection.plan(&event, &NoState);
            let Some(Outcome::Request(request)) = plan.outcomes.into_iter().next() else {
                panic!("a request");
            };
            let rule = request.batch.clone().unwrap();
            assert!(request.layout.is_some(), "the layout is recorded");
            let layout = request.layout.clone();
            let recorded = split_body(&request, layout, &rule).unwrap();
            let parsed = split_body(&request, None, &rule).unwrap();
            assert_eq!(recorded.envelope, parsed.envelope);
            assert_eq!(recorded.arrays, parsed.arrays);
            assert_eq!(recorded.layout, parsed.layout);
            assert_eq!(
                (recorded.bytes, recorded.envelope_bytes),
                (parsed.bytes, parsed.envelope_bytes)
            );
        }
        // A merged array written whole (a list `value`) has no recorded items: the batcher
        // reads the body itself.
        let whole = text.replace("[events, empty]", "[events, fixed]");
        let mapping = std::sync::Arc::new(crate::load_str("t.yaml", &whole).unwrap());
        let connection = Connection::new(mapping, &serde_json::Map::new()).unwrap();
        let plan = connection.plan(&json!({"event": "e"}), &NoState);
        let Some(Outcome::Request(request)) = plan.outcomes.into_iter().next() else {
            panic!("a request");
        };
        assert!(request.layout.is_none());
    }
}
