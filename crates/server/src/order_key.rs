//! The ordering key of an event, for connections with `ordered: true`: who the event is about.
//! By default, per source type: Segment `userId` else `anonymousId`, Amplitude `user_id` else
//! `device_id`, Extole `external_id` else `email`. A source's `order_key` (JSONPaths, the first
//! one present wins) replaces that.

use std::sync::Arc;

use ferry_engine::JsonPath as Path;
use ferry_queue::OrderKey;
use ferry_spec::config::SourceKind;
use serde_json::Value;

/// The paths read, in turn, when a source does not say.
pub(crate) fn default_paths(kind: SourceKind) -> Vec<Path> {
    let texts: &[&str] = match kind {
        SourceKind::Segment => &["$.userId", "$.anonymousId"],
        SourceKind::Amplitude => &["$.user_id", "$.device_id"],
        SourceKind::Extole => &["$.external_id", "$.email"],
    };
    texts
        .iter()
        .map(|text| Path::parse(text).expect("the default ordering paths are valid"))
        .collect()
}

/// The key function over `paths`: the first one that finds a string, number or boolean gives
/// the key (a number or boolean as its JSON text); an event where none does has no key and is
/// not held back by others.
pub(crate) fn order_key(paths: Vec<Path>) -> OrderKey {
    Arc::new(move |body: &str| {
        let event: Value = serde_json::from_str(body).ok()?;
        paths
            .iter()
            .find_map(|path| match path.get(&event)?.as_ref() {
                Value::String(text) if !text.is_empty() => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                Value::Bool(flag) => Some(flag.to_string()),
                _ => None,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_type_has_its_default_key() {
        let segment = order_key(default_paths(SourceKind::Segment));
        assert_eq!(
            segment(r#"{"userId":"u1","anonymousId":"a1"}"#).as_deref(),
            Some("u1")
        );
        assert_eq!(
            segment(r#"{"userId":null,"anonymousId":"a1"}"#).as_deref(),
            Some("a1")
        );
        assert_eq!(segment(r#"{"type":"track"}"#), None);
        let amplitude = order_key(default_paths(SourceKind::Amplitude));
        assert_eq!(
            amplitude(r#"{"user_id":"","device_id":"d1"}"#).as_deref(),
            Some("d1")
        );
        let extole = order_key(default_paths(SourceKind::Extole));
        assert_eq!(
            extole(r#"{"email":"a@x","external_id":7}"#).as_deref(),
            Some("7")
        );
        assert_eq!(extole("not json"), None);
    }

    #[test]
    fn paths_given_replace_the_defaults() {
        let key = order_key(vec![
            Path::parse("$.properties.account").unwrap(),
            Path::parse("$.userId").unwrap(),
        ]);
        assert_eq!(
            key(r#"{"userId":"u1","properties":{"account":"acme"}}"#).as_deref(),
            Some("acme")
        );
        assert_eq!(key(r#"{"userId":"u1"}"#).as_deref(), Some("u1"));
    }
}
