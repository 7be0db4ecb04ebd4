//! What a batch holds of its requests: the envelope they share, and the elements of the merged
//! arrays appended as each request joins, so that no planned body is kept until the batch
//! closes.

use std::ops::Range;

use crate::batch_rule::Slot;

use super::parts::Parts;

/// The members every request of a batch shares (they are part of its key), as the first one
/// wrote them.
#[derive(Debug, Clone)]
pub(super) struct Envelope {
    /// The members' values, one after another.
    text: String,
    /// Name and value range of each member, in the order written.
    pub(super) members: Vec<(Box<str>, Range<usize>)>,
    /// Bytes of the members, a separator each.
    pub(super) bytes: usize,
}

impl Envelope {
    /// The envelope of a split body, its values copied.
    pub(super) fn of(parts: &Parts) -> Envelope {
        let mut text = String::new();
        let members = (0..parts.envelope.len())
            .map(|i| {
                let start = text.len();
                text.push_str(parts.envelope_value(i));
                (parts.envelope[i].0.clone(), start..text.len())
            })
            .collect();
        Envelope {
            text,
            members,
            bytes: parts.envelope_bytes,
        }
    }

    pub(super) fn value(&self, index: usize) -> &str {
        &self.text[self.members[index].1.clone()]
    }

    /// Whether a split body has these members, in this order, with these values.
    pub(super) fn matches(&self, parts: &Parts) -> bool {
        self.members.len() == parts.envelope.len()
            && (0..parts.envelope.len()).all(|i| {
                self.members[i].0 == parts.envelope[i].0 && self.value(i) == parts.envelope_value(i)
            })
    }
}

/// Where one request's elements of one merged array are.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    /// Its elements in the array's text, comma-separated.
    range: Range<usize>,
    /// How many.
    count: usize,
}

/// The merged arrays' elements of the requests of a batch, in order.
#[derive(Debug, Clone)]
pub(super) struct Items {
    /// Per merged array of the rule: the elements of every request, comma-separated.
    arrays: Vec<String>,
    /// Per request, then per merged array: where its elements are.
    spans: Vec<Span>,
    /// Per request: its top-level members in the order written, by index in `layouts`.
    layout_of: Vec<usize>,
    /// The distinct member orders of the requests (one, mostly).
    layouts: Vec<Vec<Slot>>,
    /// What separates two elements: `,`, or a line break for NDJSON.
    separator: char,
}

impl Items {
    /// No requests yet, for a rule merging `arrays` arrays whose elements `separator` parts.
    pub(super) fn new(arrays: usize, separator: char) -> Items {
        Items {
            arrays: vec![String::new(); arrays],
            spans: Vec::new(),
            layout_of: Vec::new(),
            layouts: Vec::new(),
            separator,
        }
    }

    /// The number of requests.
    pub(super) fn len(&self) -> usize {
        self.layout_of.len()
    }

    /// Appends the elements of a split body (its text still in `parts`).
    pub(super) fn push(&mut self, parts: &Parts) {
        for (array, ranges) in self.arrays.iter_mut().zip(&parts.arrays) {
            let range = append(
                array,
                ranges.iter().map(|r| &parts.text[r.clone()]),
                self.separator,
            );
            self.spans.push(Span {
                range,
                count: ranges.len(),
            });
        }
        self.push_layout(&parts.layout);
    }

    fn push_layout(&mut self, layout: &[Slot]) {
        let index = if let Some(index) = self.layouts.iter().position(|l| **l == *layout) {
            index
        } else {
            self.layouts.push(layout.to_vec());
            self.layouts.len() - 1
        };
        self.layout_of.push(index);
    }

    fn span(&self, item: usize, array: usize) -> &Span {
        &self.spans[item * self.arrays.len() + array]
    }

    /// How many elements request `item` has in merged array `array`.
    pub(super) fn count(&self, item: usize, array: usize) -> usize {
        self.span(item, array).count
    }

    /// How many elements the requests have in merged array `array`, together.
    pub(super) fn total(&self, array: usize) -> usize {
        (0..self.len()).map(|item| self.count(item, array)).sum()
    }

    /// The elements of merged array `array`, separated.
    pub(super) fn array(&self, array: usize) -> &str {
        &self.arrays[array]
    }

    /// The members of request `item` in the order it wrote them.
    pub(super) fn layout(&self, item: usize) -> &[Slot] {
        &self.layouts[self.layout_of[item]]
    }

    /// Bytes of the elements, separated.
    pub(super) fn bytes(&self) -> usize {
        self.arrays.iter().map(String::len).sum()
    }

    /// The requests in `range`, on their own.
    pub(super) fn sub(&self, range: Range<usize>) -> Items {
        let mut out = Items::new(self.arrays.len(), self.separator);
        for item in range {
            for (a, array) in out.arrays.iter_mut().enumerate() {
                let span = self.span(item, a);
                let range = append(array, [&self.arrays[a][span.range.clone()]], self.separator);
                out.spans.push(Span {
                    range,
                    count: span.count,
                });
            }
            let layout = self.layout(item).to_vec();
            out.push_layout(&layout);
        }
        out
    }
}

/// Appends separated elements (none, one, or already joined) after those in `array`,
/// returning where they are.
fn append<'a>(
    array: &mut String,
    elements: impl IntoIterator<Item = &'a str>,
    separator: char,
) -> Range<usize> {
    let mut start = None;
    for element in elements {
        if element.is_empty() {
            continue;
        }
        if !array.is_empty() {
            array.push(separator);
        }
        start.get_or_insert(array.len());
        array.push_str(element);
    }
    start.map_or(array.len()..array.len(), |start| start..array.len())
}

#[cfg(test)]
mod tests {
    use crate::{Batcher, Body, Connection, NoState, Outcome, PlannedRequest};
    use serde_json::json;

    fn text(request: &PlannedRequest) -> &str {
        match &request.body {
            Some(Body::Json(text)) => text,
            other => panic!("a JSON body, not {other:?}"),
        }
    }

    /// Requests of two actions sharing a rule, with their members in different orders and one
    /// lacking a merged array, come back out of the merged request and its halves exactly as
    /// they were planned.
    #[test]
    fn items_come_back_out_of_a_batch_as_planned() {
        let text_yaml = r#"version: 1
name: t
source: segment
http: { base_url: "https://x.example" }
batches:
  shared:
    concat: [attributes, events]
    max_items: 50
actions:
  identify:
    when: { type: identify }
    request:
      method: POST
      path: /track
      body:
        api: { value: 2 }
        attributes: { items: [ { fields: { id: { from: $.userId } } } ] }
        events:
          items:
            - { each: $.tags, fields: { tag: { from: $ } } }
    batch: shared
  track:
    when: { type: track }
    request:
      method: POST
      path: /track
      body:
        events: { items: [ { fields: { name: { from: $.event } } } ] }
        api: { value: 2 }
    batch: shared
"#;
        let mapping = std::sync::Arc::new(crate::load_str("t.yaml", text_yaml).unwrap());
        let connection = Connection::new(mapping, &serde_json::Map::new()).unwrap();
        let events = [
            json!({"type": "track", "event": "a"}),
            json!({"type": "identify", "userId": "u1", "tags": ["x", "y"]}),
            json!({"type": "identify", "userId": "u2"}),
            json!({"type": "track", "event": "b,\"]"}),
            json!({"type": "identify", "userId": "u3", "tags": ["z"]}),
        ];
        let mut planned = Vec::new();
        let mut batcher = Batcher::new();
        for (i, event) in events.iter().enumerate() {
            for outcome in connection.plan(event, &NoState).outcomes {
                let Outcome::Request(request) = outcome else {
                    panic!("a request");
                };
                planned.push(text(&request).to_owned());
                assert!(batcher.push(i, request).unwrap().is_empty());
            }
        }
        let mut merged = batcher.flush();
        assert_eq!(merged.len(), 1);
        let mut first = merged.pop().unwrap();
        assert_eq!(
            text(&first.request),
            r#"{"events":[{"name":"a"},{"tag":"x"},{"tag":"y"},{"name":"b,\"]"},{"tag":"z"}],"api":2,"attributes":[{"id":"u1"},{"id":"u2"},{"id":"u3"}]}"#
        );
        for (i, body) in planned.iter().enumerate() {
            assert_eq!(text(&first.item_request(i).unwrap()), body);
        }
        let second = first.split().unwrap();
        assert_eq!(
            (first.items.clone(), second.items.clone()),
            (vec![0, 1], vec![2, 3, 4])
        );
        assert_eq!(
            text(&second.request),
            r#"{"api":2,"attributes":[{"id":"u2"},{"id":"u3"}],"events":[{"name":"b,\"]"},{"tag":"z"}]}"#
        );
        for (i, body) in planned[2..].iter().enumerate() {
            assert_eq!(text(&second.item_request(i).unwrap()), body);
        }
        let failed = second.failed_items(&json!({}));
        assert!(failed.failed.is_empty());
    }
}
