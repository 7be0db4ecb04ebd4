//! Merged requests: the body assembled from its parts, halves for a destination that refuses it
//! as too large, and the items a 2xx response names as failed.

use std::sync::Arc;

use serde_json::Value;

use crate::batch_rule::{BatchRule, Merge, Slot};
use crate::plan::{Body, PlannedRequest};

use super::items::{Envelope, Items};
use super::parts::Kind;

/// Planned requests merged into one HTTP request.
#[derive(Debug)]
pub struct MergedRequest<T> {
    /// The request to send: method, URL and headers of its items, the merged body.
    pub request: PlannedRequest,
    /// The caller's tags of the merged requests, in order.
    pub items: Vec<T>,
    rule: Arc<BatchRule>,
    kind: Kind,
    envelope: Envelope,
    /// The merged array elements of every item, kept apart from the body so that items can be
    /// told apart and sent alone whatever the caller does with `request`.
    merged: Items,
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

    /// Reads the failed items from a response body (2xx, or a status `item_errors` lists), by
    /// the mapping's `item_errors`.
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
            let array = match (&rule.array, &self.rule.merge) {
                (Some(path), Merge::Concat(_)) => path
                    .get(error)
                    .and_then(|a| names.iter().position(|n| a.as_str() == Some(&**n))),
                _ => Some(0),
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
        if index >= self.merged.len() {
            return None;
        }
        let items = self.merged.sub(index..index + 1);
        Some(
            assemble(
                &self.request,
                &self.rule,
                self.kind,
                self.envelope.clone(),
                items,
                vec![()],
            )
            .request,
        )
    }

    /// The item that contributed element `index` of merged array `array`.
    fn owner(&self, array: usize, index: usize) -> Option<usize> {
        if array >= self.rule.array_count() {
            return None;
        }
        let mut seen = 0;
        for item in 0..self.merged.len() {
            let n = self.merged.count(item, array);
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
        let (half, len) = (self.items.len() / 2, self.items.len());
        let later_tags = self.items.split_off(half);
        let later = self.merged.sub(half..len);
        let second = assemble(
            &self.request,
            &self.rule,
            self.kind,
            self.envelope.clone(),
            later,
            later_tags,
        );
        let tags = std::mem::take(&mut self.items);
        let earlier = self.merged.sub(0..half);
        let envelope = self.envelope.clone();
        *self = assemble(
            &self.request,
            &self.rule,
            self.kind,
            envelope,
            earlier,
            tags,
        );
        Some(second)
    }
}

pub(super) fn assemble<T>(
    head: &PlannedRequest,
    rule: &Arc<BatchRule>,
    kind: Kind,
    envelope: Envelope,
    merged: Items,
    items: Vec<T>,
) -> MergedRequest<T> {
    let body = match kind {
        Kind::Object => Body::Json(object(rule, &envelope, &merged)),
        Kind::Array => {
            let mut out = String::with_capacity(merged.bytes() + 2);
            out.push('[');
            out.push_str(merged.array(0));
            out.push(']');
            Body::JsonArray(out)
        }
        Kind::Lines => {
            let mut out = String::with_capacity(merged.bytes() + 1);
            out.push_str(merged.array(0));
            out.push('\n');
            Body::Ndjson(out)
        }
        Kind::Form => Body::Form(form(rule, &envelope, &merged)),
    };
    let mut request = head.clone();
    request.body = Some(body);
    request.dedupe_key = None;
    request.batch_key = None;
    request.layout = None;
    MergedRequest {
        request,
        items,
        rule: Arc::clone(rule),
        kind,
        envelope,
        merged,
    }
}

/// A merged JSON object: the members in the order the first item wrote them, then the merged
/// arrays it did not write that others did.
fn object(rule: &BatchRule, envelope: &Envelope, merged: &Items) -> String {
    let names = rule.arrays();
    // Exactly what is written, so the body is allocated once: braces, the envelope once, each
    // array's key and brackets, and the items with their separators.
    let capacity = 2
        + envelope.bytes
        + names.iter().map(|name| name.len() + 6).sum::<usize>()
        + merged.bytes();
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
        out.push_str(merged.array(array));
        out.push(']');
    };
    for slot in merged.layout(0) {
        match *slot {
            Slot::Envelope(i) => {
                member(&mut out, &envelope.members[i].0);
                out.push_str(envelope.value(i));
            }
            Slot::Array(a) => {
                member(&mut out, &names[a]);
                write_array(&mut out, a);
                written[a] = true;
            }
        }
    }
    for (a, name) in names.iter().enumerate() {
        if !written[a] && merged.total(a) > 0 {
            member(&mut out, name);
            write_array(&mut out, a);
        }
    }
    out.push('}');
    out
}

/// Merged form fields: in the order the first item wrote them, each merged list as JSON text.
fn form(rule: &BatchRule, envelope: &Envelope, merged: &Items) -> Vec<(String, String)> {
    let names = rule.arrays();
    let list = |a: usize| format!("[{}]", merged.array(a));
    let mut written = vec![false; names.len()];
    let mut out = Vec::with_capacity(envelope.members.len() + names.len());
    for slot in merged.layout(0) {
        match *slot {
            Slot::Envelope(i) => {
                out.push((
                    envelope.members[i].0.to_string(),
                    envelope.value(i).to_owned(),
                ));
            }
            Slot::Array(a) => {
                out.push((names[a].to_string(), list(a)));
                written[a] = true;
            }
        }
    }
    for (a, name) in names.iter().enumerate() {
        if !written[a] && merged.total(a) > 0 {
            out.push((name.to_string(), list(a)));
        }
    }
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
