//! Reading probed fields, adding server fields to an event's own JSON text, and taking one out.
//!
//! Splicing only ever inserts `"<static key>":<RawValue>` pairs after an object's opening brace.
//! Keys are ours and values are `RawValue`s, which serde_json has already checked or escaped, so
//! event data cannot add fields or break out of a string.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// For `#[serde(default, deserialize_with = "present")]`: a field that is there, even as `null`,
/// is `Some`; only a missing field is `None`. (A plain `Option` reads `null` as `None`.)
pub(crate) fn present<'de, D>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// Whether a raw value is `null`.
pub(crate) fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// Whether a raw value is a JSON object.
pub(crate) fn is_object(raw: &RawValue) -> bool {
    raw.get().trim_start().starts_with('{')
}

/// The string a raw value holds, borrowed when it has no escapes; `None` for other types.
pub(crate) fn as_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// A string as a JSON string value, escaped by serde_json.
pub(crate) fn json_string(value: &str) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("a string always serialises")
}

/// `object` (the text of a JSON object) with `fields` inserted right after its opening brace.
///
/// The caller makes sure none of the keys is already in the object.
pub(crate) fn prepend(object: &str, fields: &[(&'static str, &RawValue)]) -> String {
    let object = object.trim();
    debug_assert!(object.starts_with('{'), "only objects are spliced");
    if fields.is_empty() {
        return object.to_owned();
    }
    let rest = &object[1..];
    let extra: usize = fields
        .iter()
        .map(|(k, v)| k.len() + v.get().len() + 4)
        .sum();
    let mut text = String::with_capacity(object.len() + extra);
    text.push('{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        debug_assert!(!key.contains(['"', '\\']), "keys are plain names");
        text.push('"');
        text.push_str(key);
        text.push_str("\":");
        text.push_str(value.get());
    }
    if !rest.trim_start().starts_with('}') {
        text.push(',');
    }
    text.push_str(rest);
    text
}

/// `object` (the text of a JSON object) without its members named `name`, however the name is
/// escaped, and every other member as written; borrowed when it has no such member. Only the
/// object's own members are looked at, not those of the objects inside it.
///
/// The members are read as raw values, as an envelope reads its items: text nested past
/// serde_json's depth or holding a lone surrogate escape is skipped over, not refused. `None`
/// when `object` is not a JSON object.
pub(crate) fn without_member<'a>(object: &'a str, name: &str) -> Option<Cow<'a, str>> {
    let Members(members) = serde_json::from_str(object).ok()?;
    let named = |key: &RawValue| as_str(key).is_some_and(|key| key == name);
    if !members.iter().any(|(key, _)| named(key)) {
        return Some(Cow::Borrowed(object));
    }
    let mut text = String::with_capacity(object.len());
    text.push('{');
    for (key, value) in members.iter().filter(|(key, _)| !named(key)) {
        if text.len() > 1 {
            text.push(',');
        }
        text.push_str(key.get());
        text.push(':');
        text.push_str(value.get());
    }
    text.push('}');
    Some(Cow::Owned(text))
}

/// The members of a JSON object, its keys and values as written, in order, repeats included.
struct Members<'a>(Vec<(&'a RawValue, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some(entry) = map.next_entry()? {
            members.push(entry);
        }
        Ok(Members(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn prepends_into_empty_and_filled_objects() {
        let a = json_string("x");
        let b = raw("{\"k\":1}");
        assert_eq!(prepend("{}", &[("a", &a)]), r#"{"a":"x"}"#);
        assert_eq!(prepend(" { } ", &[("a", &a)]), r#"{"a":"x" }"#);
        assert_eq!(
            prepend(r#"{"z":true}"#, &[("a", &a), ("b", &b)]),
            r#"{"a":"x","b":{"k":1},"z":true}"#
        );
        assert_eq!(prepend(r#"{"z":1}"#, &[]), r#"{"z":1}"#);
    }

    #[test]
    fn spliced_strings_cannot_add_keys() {
        let evil = json_string(r#"","injected":"x"#);
        let text = prepend("{}", &[("a", &evil)]);
        let parsed: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed["a"], r#"","injected":"x"#);
    }

    #[test]
    fn reads_strings_with_and_without_escapes() {
        assert_eq!(as_str(&raw(r#""abc""#)).as_deref(), Some("abc"));
        assert_eq!(as_str(&raw(r#""a\"b""#)).as_deref(), Some("a\"b"));
        assert_eq!(as_str(&raw("12")), None);
        assert!(is_null(&raw("null")));
        assert!(is_object(&raw("{}")));
    }

    #[test]
    fn takes_out_every_member_of_a_name_and_keeps_the_rest_as_written() {
        let cases = [
            (r#"{"k":1,"a":2}"#, r#"{"a":2}"#),
            (r#"{"a":2,"k":1}"#, r#"{"a":2}"#),
            (r#" { "k" : 1 } "#, "{}"),
            (
                r#"{"k":1,"a":1e400,"k":[2],"\u006b":3,"b":"\ud800"}"#,
                r#"{"a":1e400,"b":"\ud800"}"#,
            ),
            (
                r#"{"a":{"k":1},"b":[{"k":2}],"k ":3,"K":4}"#,
                r#"{"a":{"k":1},"b":[{"k":2}],"k ":3,"K":4}"#,
            ),
            (r#"{"\ud800":1,"k":"x"}"#, r#"{"\ud800":1}"#),
        ];
        for (object, want) in cases {
            assert_eq!(
                without_member(object, "k").as_deref(),
                Some(want),
                "{object}"
            );
        }
        let unchanged = r#" {"a" : 1} "#;
        assert!(matches!(
            without_member(unchanged, "k"),
            Some(Cow::Borrowed(text)) if text == unchanged
        ));
        let deep = format!(r#"{{"k":1,"d":{}0{}}}"#, "[".repeat(500), "]".repeat(500));
        let want = format!("{{{}", &deep[r#"{"k":1,"#.len()..]);
        assert_eq!(without_member(&deep, "k").as_deref(), Some(want.as_str()));
        for other in ["[1]", r#""k""#, "{", r#"{"k":1} x"#, ""] {
            assert_eq!(without_member(other, "k"), None, "{other}");
        }
    }
}
