//! Merged requests: the body assembled from its parts, halves for a destination that refuses it
//! as too large, and the items a 2xx response names as failed.

use std::sync::Arc;

use serde_json::Value;

use crate::batch_rule::{BatchRule, Slot};
use crate::plan::{Body, PlannedRequest};

use super::items::{Envelope, Items};

/// Planned requests merged into one HTTP request.
#[derive(Debug)]
pub struct MergedRequest<T> {
    /// The request to send: method, URL and headers of its items, the merged body.
    pub request: PlannedRequest,
    /// The caller's tags of the merged requests, in order.
    pub items: Vec<T>,
    rule: Arc<BatchRule>,
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
        if index >= self.merged.len() {
            return None;
        }
        let items = self.merged.sub(index..index + 1);
        Some(
            assemble(
                &self.request,
                &self.rule,
                self.envelope.clone(),
                items,
                vec![()],
            )
            .request,
        )
    }

    /// The item that contributed element `index` of merged array `array`.
    fn owner(&self, array: usize, index: usize) -> Option<usize> {
        if array >= self.rule.arrays().len() {
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
            self.envelope.clone(),
            later,
            later_tags,
        );
        let tags = std::mem::take(&mut self.items);
        let earlier = self.merged.sub(0..half);
        let envelope = self.envelope.clone();
        *self = assemble(&self.request, &self.rule, envelope, earlier, tags);
        Some(second)
    }
}

pub(super) fn assemble<T>(
    head: &PlannedRequest,
    rule: &Arc<BatchRule>,
    envelope: Envelope,
    merged: Items,
    items: Vec<T>,
) -> MergedRequest<T> {
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
    // The members in the order the first item wrote them.
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
    let mut request = head.clone();
    request.body = Some(Body::Json(out));
    request.dedupe_key = None;
    request.batch_key = None;
    request.layout = None;
    MergedRequest {
        request,
        items,
        rule: Arc::clone(rule),
        envelope,
        merged,
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
