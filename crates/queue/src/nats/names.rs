//! What ferry calls things in JetStream: streams, subjects, consumers, headers, and how names
//! from `ferry.yaml` become subject tokens.
//!
//! ```text
//! FERRY_EVENTS   ferry.events.<source>        every accepted event, once (interest retention:
//!                                             removed once every connection's consumer acked it)
//!   consumer ev-<connection>                  one per connection, shared by every node
//! FERRY_RETRIES  ferry.retries.<connection>   a copy of each event waiting for a retry at a time
//!   consumer rt-<connection>
//! FERRY_DEAD     ferry.dead.c.<connection>    dead letters (kept until purged)
//!                ferry.dead.ingest.<source>   events refused at ingest
//! KV ferry_remembered  <connection>.<store>.<key>   remembered values
//! KV ferry_leases      order.<connection>         the node delivering an ordered connection
//! ferry.wake     (core NATS, not stored)      "there is new work": wakes idle workers on every node
//! ```

use std::fmt::Write as _;

pub(crate) const EVENTS: &str = "FERRY_EVENTS";
pub(crate) const RETRIES: &str = "FERRY_RETRIES";
pub(crate) const DEAD: &str = "FERRY_DEAD";
pub(crate) const REMEMBERED: &str = "ferry_remembered";
pub(crate) const LEASES: &str = "ferry_leases";
pub(crate) const WAKE: &str = "ferry.wake";

/// Headers ferry writes on its messages.
pub(crate) mod header {
    /// When ferry received the event (Unix ms).
    pub(crate) const RECEIVED: &str = "Ferry-Received";
    /// The event's sequence in `FERRY_EVENTS` (its [`EventId`](crate::EventId)).
    pub(crate) const EVENT: &str = "Ferry-Event";
    pub(crate) const SOURCE: &str = "Ferry-Source";
    pub(crate) const CONNECTION: &str = "Ferry-Connection";
    pub(crate) const MAPPING: &str = "Ferry-Mapping";
    /// The number of the retry this message carries (0 for a replayed dead letter).
    pub(crate) const ATTEMPT: &str = "Ferry-Attempt";
    /// When a retry is due (Unix ms).
    pub(crate) const DUE: &str = "Ferry-Due";
    /// When a dead letter was written (Unix ms).
    pub(crate) const AT: &str = "Ferry-At";
    /// Why, as a JSON string (header values hold no line breaks).
    pub(crate) const REASON: &str = "Ferry-Reason";
}

pub(crate) fn event_subject(source: &str) -> String {
    format!("ferry.events.{}", token(source))
}

pub(crate) fn retry_subject(connection: &str) -> String {
    format!("ferry.retries.{}", token(connection))
}

pub(crate) fn dead_subject(connection: &str) -> String {
    format!("ferry.dead.c.{}", token(connection))
}

pub(crate) fn rejected_subject(source: &str) -> String {
    format!("ferry.dead.ingest.{}", token(source))
}

pub(crate) const ALL_DEAD: &str = "ferry.dead.>";

pub(crate) fn events_consumer(connection: &str) -> String {
    format!("ev-{}", token(connection))
}

pub(crate) fn retries_consumer(connection: &str) -> String {
    format!("rt-{}", token(connection))
}

/// The key of a remembered value, and the prefix of all of one connection's.
pub(crate) fn remembered_key(connection: &str, store: &str, key: &str) -> String {
    format!("{}.{}.{}", token(connection), token(store), token(key))
}

pub(crate) fn remembered_prefix(connection: &str) -> String {
    format!("$KV.{REMEMBERED}.{}.>", token(connection))
}

/// A name as one subject token, consumer-name and KV-key safe: `A-Z a-z 0-9 _ -` stay, every
/// other byte becomes `=HH`; the empty name is `=`. Reversible by [`untoken`].
pub(crate) fn token(name: &str) -> String {
    if name.is_empty() {
        return "=".to_owned();
    }
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "={byte:02X}");
        }
    }
    out
}

/// The name a [`token`] stands for.
pub(crate) fn untoken(token: &str) -> Option<String> {
    if token == "=" {
        return Some(String::new());
    }
    let mut bytes = Vec::with_capacity(token.len());
    let mut rest = token.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'=' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::{token, untoken};

    #[test]
    fn tokens_round_trip_and_hold_no_separator() {
        for name in [
            "web",
            "braze-prod_2",
            "",
            "a.b",
            "ünï côdé",
            "x=y",
            "*>",
            "a b\n",
        ] {
            let t = token(name);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-=".contains(&b)),
                "{t}"
            );
            assert_eq!(untoken(&t).as_deref(), Some(name), "{t}");
        }
        assert_ne!(token("a.b"), token("a=2Eb"));
    }
}
