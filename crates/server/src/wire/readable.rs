//! The one rule between ingest and the delivery workers: an event is acknowledged only when
//! its stored text reads the way a worker reads it (serde_json into a `Value`: nesting at most
//! 128 deep, strings valid UTF-8 with no lone surrogate escapes). The wire formats read events
//! with borrowed raw values, which skip over such problems, so every stored text is checked
//! here once, without building anything.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Why a worker could not read `text`, or `None` when it can.
pub(crate) fn unreadable(text: &str) -> Option<serde_json::Error> {
    serde_json::from_str::<Readable>(text).err()
}

/// Why a worker could not read `raw` as the value of a field of a stored event, or `None` when
/// it can. Nesting counts from the event: an object or array is checked one level down.
pub(crate) fn unreadable_field(raw: &RawValue) -> Option<serde_json::Error> {
    let text = raw.get();
    if let Some(e) = unreadable(text) {
        return Some(e);
    }
    // Read alone, the value is one level shallower than in the event: only one nested to
    // exactly the last level allowed reads alone and not in the event, and it holds at least
    // that many opening brackets. Counting them is cheaper than copying every value.
    let openings = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    if openings >= MAX_NESTING {
        return unreadable(&format!("[{text}]"));
    }
    None
}

/// The deepest nesting serde_json reads (a value at level 128 is refused), counted from the
/// document's own value as level 1.
const MAX_NESTING: usize = 127;

/// Consumes any JSON value the way `serde_json::Value` would read it, keeping nothing. Read in
/// place of a value inside a larger document, it checks that value at its own depth there.
pub(crate) struct Readable;

impl<'de> Deserialize<'de> for Readable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Readable)
    }
}

impl<'de> Visitor<'de> for Readable {
    type Value = Readable;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_str<E>(self, _: &str) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_unit<E>(self) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_none<E>(self) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Readable, D::Error> {
        Readable::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Readable, A::Error> {
        while seq.next_element::<Readable>()?.is_some() {}
        Ok(Readable)
    }

    /// Objects, and numbers kept as written (arbitrary precision reads them as a one-entry map).
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Readable, A::Error> {
        while map.next_entry::<Readable, Readable>()?.is_some() {}
        Ok(Readable)
    }
}

#[cfg(test)]
mod tests {
    use super::{unreadable, unreadable_field};

    /// Whatever this says, `serde_json::Value` says the same.
    fn agrees(text: &str) -> bool {
        let ours = unreadable(text).is_none();
        let theirs = serde_json::from_str::<serde_json::Value>(text).is_ok();
        assert_eq!(ours, theirs, "{text:?}");
        ours
    }

    #[test]
    fn reads_what_a_value_reads() {
        assert!(agrees(
            r#"{"a":[1,2.5,-3e10,123456789012345678901234567890],"b":{"c":null}}"#
        ));
        assert!(agrees(r#"{"x":1e400,"y":"\ud83d\ude00","z":"é"}"#));
        assert!(agrees(&format!("{}{}", "[".repeat(127), "]".repeat(127))));
    }

    /// A field's value is checked at its depth in the event.
    #[test]
    fn a_field_is_read_one_level_down() {
        let field = |text: &str| {
            let raw = serde_json::value::RawValue::from_string(text.to_owned()).unwrap();
            let ours = unreadable_field(&raw).is_none();
            let theirs =
                serde_json::from_str::<serde_json::Value>(&format!("{{\"f\":{text}}}")).is_ok();
            assert_eq!(ours, theirs, "{text:?}");
            ours
        };
        assert!(field(&format!("{}{}", "[".repeat(126), "]".repeat(126))));
        assert!(!field(&format!("{}{}", "[".repeat(127), "]".repeat(127))));
        assert!(field(r#"{"a":1e400,"b":"x"}"#));
        assert!(!field(r#""\ud800""#));
        assert!(field("123456789012345678901234567890"));
    }

    #[test]
    fn refuses_what_a_value_refuses() {
        assert!(!agrees(r#"{"a":"\ud800"}"#));
        assert!(!agrees(r#"{"\udc00":1}"#));
        assert!(!agrees(&format!("{}{}", "[".repeat(129), "]".repeat(129))));
        assert!(!agrees(r#"{"a":}"#));
        assert!(!agrees("[1,]"));
    }
}
