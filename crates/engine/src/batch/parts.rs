//! A planned body split for merging: its envelope members and the items of the merged arrays,
//! from the layout the engine recorded while writing it, or read from the text.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::batch_rule::{BatchRule, BodyLayout, Merge, Slot};
use crate::plan::{Body, PlannedRequest, form_encoded_len};

/// The kind of body a batch merges, which decides how its parts are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A JSON object.
    Object,
    /// A JSON array of items.
    Array,
    /// Lines of JSON.
    Lines,
    /// Form fields, some holding JSON lists.
    Form,
}

impl Kind {
    fn of(body: &Body) -> Kind {
        match body {
            Body::Json(_) => Kind::Object,
            Body::JsonArray(_) => Kind::Array,
            Body::Ndjson(_) => Kind::Lines,
            Body::Form(_) => Kind::Form,
        }
    }

    /// What separates two items of a merged array.
    pub(super) fn separator(self) -> char {
        match self {
            Kind::Lines => '\n',
            Kind::Object | Kind::Array | Kind::Form => ',',
        }
    }
}

/// One planned request split for merging: its body text, and where its members and array
/// items are in it.
#[derive(Debug, Clone)]
pub(super) struct Parts {
    pub(super) kind: Kind,
    /// Taken from the planned request once it is split (the ranges index into it); for a form,
    /// its fields' values one after another.
    pub(super) text: String,
    /// Members that are not merged (part of the batch key): name and value range.
    pub(super) envelope: Vec<(Box<str>, Range<usize>)>,
    /// Per merged array of the rule: the ranges of its items.
    pub(super) arrays: Vec<Vec<Range<usize>>>,
    /// Where the merged arrays sit among the envelope members.
    pub(super) layout: Vec<Slot>,
    /// Bytes of the array items as sent, a separator each.
    pub(super) bytes: usize,
    /// Bytes of the envelope members as sent, a separator each.
    pub(super) envelope_bytes: usize,
}

impl Parts {
    pub(super) fn envelope_value(&self, index: usize) -> &str {
        &self.text[self.envelope[index].1.clone()]
    }

    /// The bytes a merged body of these parts' kind has besides its items and envelope: an
    /// object's braces and each merged array's key and brackets, an array's brackets, a form's
    /// names and encoded brackets.
    pub(super) fn overhead(&self, rule: &BatchRule) -> usize {
        match self.kind {
            Kind::Object => {
                2 + self.envelope_bytes
                    + rule
                        .arrays()
                        .iter()
                        .map(|name| name.len() + 6)
                        .sum::<usize>()
            }
            Kind::Array => 2,
            Kind::Lines => 0,
            Kind::Form => {
                self.envelope_bytes
                    + rule
                        .arrays()
                        .iter()
                        .map(|name| form_encoded_len(name) + 8)
                        .sum::<usize>()
            }
        }
    }
}

/// Splits a body into envelope members and the items of the arrays the rule merges, in one
/// pass that borrows from the body text.
pub(super) fn split_body(
    request: &PlannedRequest,
    layout: Option<Box<BodyLayout>>,
    rule: &BatchRule,
) -> Result<Parts, String> {
    let Some(body) = &request.body else {
        return Err("a request without a body cannot be batched".to_owned());
    };
    let kind = Kind::of(body);
    let empty = |arrays: usize| Parts {
        kind,
        text: String::new(),
        envelope: Vec::new(),
        arrays: vec![Vec::new(); arrays],
        layout: Vec::new(),
        bytes: 0,
        envelope_bytes: 0,
    };
    match (&rule.merge, body) {
        (Merge::Wrap(_), Body::Json(text)) => Ok(Parts {
            arrays: vec![vec![0..text.len()]],
            layout: vec![Slot::Array(0)],
            bytes: text.len() + 1,
            ..empty(1)
        }),
        (Merge::Items, Body::JsonArray(text) | Body::Ndjson(text)) => {
            let items = match layout.filter(|l| l.len == text.len()) {
                Some(layout) => layout.arrays.into_iter().next().unwrap_or_default(),
                None if kind == Kind::Array => raw_items(text)?,
                None => lines(text),
            };
            Ok(Parts {
                bytes: items.iter().map(|i| i.len() + 1).sum(),
                arrays: vec![items],
                layout: vec![Slot::Array(0)],
                ..empty(1)
            })
        }
        (Merge::Concat(names), Body::Json(text)) => object_parts(text, names, layout, empty),
        (Merge::Concat(names), Body::Form(fields)) => form_parts(fields, names, layout, empty),
        _ => Err(format!(
            "this batch rule cannot merge a body of type `{}`",
            body.content_type()
        )),
    }
}

/// A JSON object's envelope members and the items of its merged arrays.
fn object_parts(
    text: &str,
    names: &[Box<str>],
    layout: Option<Box<BodyLayout>>,
    empty: impl Fn(usize) -> Parts,
) -> Result<Parts, String> {
    // The engine records where the members are as it writes them: no parse needed.
    if let Some(layout) = layout.filter(|l| l.len == text.len() && l.arrays.len() == names.len()) {
        return Ok(parts_of(*layout));
    }
    let mut parts = empty(names.len());
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
                if parts.layout.contains(&Slot::Array(a)) {
                    return Err(format!("the body holds `{}` twice", names[a]));
                }
                parts.bytes += items.iter().map(|i| i.get().len() + 1).sum::<usize>();
                parts.arrays[a] = items.iter().map(|i| range(i.get())).collect();
                parts.layout.push(Slot::Array(a));
            }
            Member::Envelope(key, raw) => {
                if parts.envelope.iter().any(|(name, _)| **name == *key) {
                    return Err(format!("the body holds `{key}` twice"));
                }
                parts.envelope_bytes += key.len() + 4 + raw.get().len();
                parts.layout.push(Slot::Envelope(parts.envelope.len()));
                parts.envelope.push((key.into(), range(raw.get())));
            }
        }
    }
    Ok(parts)
}

/// A form's fields: those the rule concatenates (which must hold JSON lists) as items, the
/// others as the envelope; their values are kept one after another in the parts' text. The
/// items are where the engine recorded them in their fields' values, or read from the values.
fn form_parts(
    fields: &[(String, String)],
    names: &[Box<str>],
    layout: Option<Box<BodyLayout>>,
    empty: impl Fn(usize) -> Parts,
) -> Result<Parts, String> {
    let total: usize = fields.iter().map(|(_, value)| value.len()).sum();
    let mut recorded = layout
        .filter(|l| l.len == total && l.arrays.len() == names.len())
        .map(|l| l.arrays);
    let mut parts = empty(names.len());
    for (name, value) in fields {
        let start = parts.text.len();
        parts.text.push_str(value);
        if let Some(a) = names.iter().position(|n| **n == **name) {
            let items = match &mut recorded {
                Some(arrays) => std::mem::take(&mut arrays[a]),
                None => raw_items(value).map_err(|_| {
                    format!("form field `{name}` does not hold a JSON list to merge")
                })?,
            };
            parts.bytes += items
                .iter()
                .map(|i| form_encoded_len(&value[i.clone()]) + 3)
                .sum::<usize>();
            parts.arrays[a] = items
                .into_iter()
                .map(|i| start + i.start..start + i.end)
                .collect();
            parts.layout.push(Slot::Array(a));
        } else {
            parts.envelope_bytes += form_encoded_len(name) + form_encoded_len(value) + 2;
            parts.layout.push(Slot::Envelope(parts.envelope.len()));
            parts
                .envelope
                .push((name.as_str().into(), start..parts.text.len()));
        }
    }
    Ok(parts)
}

/// The ranges of the items of the JSON array `text`.
fn raw_items(text: &str) -> Result<Vec<Range<usize>>, String> {
    let base = text.as_ptr() as usize;
    let items: Vec<&RawValue> =
        serde_json::from_str(text).map_err(|e| format!("the body cannot be merged: {e}"))?;
    Ok(items
        .iter()
        .map(|raw| {
            let start = raw.get().as_ptr() as usize - base;
            start..start + raw.get().len()
        })
        .collect())
}

/// The ranges of the non-empty lines of `text`.
fn lines(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in text.split('\n') {
        let end = start + line.len();
        if !line.trim().is_empty() {
            out.push(start..end);
        }
        start = end + 1;
    }
    out
}

/// The top-level members of a JSON object, borrowed from its text, in order.
pub(crate) fn members(text: &str) -> Result<Vec<(Cow<'_, str>, &RawValue)>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let members = deserializer.deserialize_map(MembersVisitor { arrays: &[] })?;
    deserializer.end()?;
    Ok(members
        .into_iter()
        .filter_map(|member| match member {
            Member::Envelope(key, raw) => Some((key, raw)),
            Member::Array(..) => None,
        })
        .collect())
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
        kind: Kind::Object,
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
