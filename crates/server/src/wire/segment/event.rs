//! One Segment event: the checks it must pass and the text it is stored as.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{MAX_CALL_BYTES, MAX_MESSAGE_ID_CHARS, SERVER_FIELDS_BYTES};
use crate::wire::Accepted;
use crate::wire::readable::{Readable, unreadable_field};
use crate::wire::splice::{as_str, is_null, is_object, json_string, prepend};

/// The event types an event may have once stored.
const EVENT_TYPES: [&str; 7] = [
    "identify", "track", "page", "screen", "group", "alias", "delete",
];

/// What a request gives each of its events.
pub(super) struct Shared<'a> {
    pub(super) received_at: &'a RawValue,
    pub(super) context: Option<&'a RawValue>,
    pub(super) integrations: Option<&'a RawValue>,
    pub(super) sent_at: Option<&'a RawValue>,
}

/// The fields of an event that ferry checks or fills, read without copying.
///
/// Every field is `Some` when present, even as `null`, so that splicing never repeats a key.
/// Reading a probe also checks that a worker can read the whole event (see `readable.rs`), in
/// the same pass: the other fields' values are read as [`Readable`] where they stand, and the
/// probed ones, kept raw, are checked at their depth. A probed field that appears twice is an
/// error.
#[derive(Default)]
pub(super) struct Probe<'a> {
    pub(super) kind: Option<&'a RawValue>,
    pub(super) action: Option<&'a RawValue>,
    pub(super) user_id: Option<&'a RawValue>,
    pub(super) anonymous_id: Option<&'a RawValue>,
    pub(super) event: Option<&'a RawValue>,
    pub(super) message_id: Option<&'a RawValue>,
    pub(super) received_at: Option<&'a RawValue>,
    pub(super) sent_at: Option<&'a RawValue>,
    pub(super) context: Option<&'a RawValue>,
    pub(super) integrations: Option<&'a RawValue>,
    pub(super) write_key: Option<&'a RawValue>,
}

impl<'a> Probe<'a> {
    /// The slot of a probed field, by its name in the event.
    fn slot(&mut self, key: &str) -> Option<(&'static str, &mut Option<&'a RawValue>)> {
        Some(match key {
            "type" => ("type", &mut self.kind),
            "action" => ("action", &mut self.action),
            "userId" => ("userId", &mut self.user_id),
            "anonymousId" => ("anonymousId", &mut self.anonymous_id),
            "event" => ("event", &mut self.event),
            "messageId" => ("messageId", &mut self.message_id),
            "receivedAt" => ("receivedAt", &mut self.received_at),
            "sentAt" => ("sentAt", &mut self.sent_at),
            "context" => ("context", &mut self.context),
            "integrations" => ("integrations", &mut self.integrations),
            "writeKey" => ("writeKey", &mut self.write_key),
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Probe<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ProbeVisitor)
    }
}

struct ProbeVisitor;

impl<'de> Visitor<'de> for ProbeVisitor {
    type Value = Probe<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe<'de>, A::Error> {
        let mut probe = Probe::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match probe.slot(&key) {
                Some((name, slot)) => {
                    if slot.is_some() {
                        return Err(de::Error::duplicate_field(name));
                    }
                    let raw: &'de RawValue = map.next_value()?;
                    if let Some(e) = unreadable_field(raw) {
                        return Err(de::Error::custom(format_args!("in `{name}`: {e}")));
                    }
                    *slot = Some(raw);
                }
                None => {
                    map.next_value::<Readable>()?;
                }
            }
        }
        Ok(probe)
    }
}

/// Which event of a request a refusal speaks of; written out only when one is refused.
pub(super) enum Who {
    /// The one event of a single call.
    Single,
    /// The event at this position (from 1) of a batch.
    Item(usize),
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Single => f.write_str("the event"),
            Who::Item(position) => write!(f, "event {position} of the batch"),
        }
    }
}

/// Why an event is not stored.
pub(super) enum Refusal {
    /// This event alone is refused, for this reason.
    Item(String),
    /// A batch item without `type`: the whole request is refused.
    MissingType,
}

/// How a field reaches the stored event.
#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    /// The event lacks it: splice it in.
    Add,
    /// The event has it with another value (or `null`): set it.
    Replace,
    /// Both are objects: add the keys the event's object lacks.
    Merge,
}

/// Whether an id field holds a usable id.
enum Id {
    Missing,
    Usable,
    WrongType,
}

fn id(raw: Option<&RawValue>) -> Id {
    match raw {
        None => Id::Missing,
        Some(raw) if is_null(raw) => Id::Missing,
        Some(raw) => match as_str(raw) {
            Some(text) if text.is_empty() => Id::Missing,
            Some(_) => Id::Usable,
            None if raw
                .get()
                .starts_with(|c: char| c == '-' || c.is_ascii_digit()) =>
            {
                Id::Usable
            }
            None => Id::WrongType,
        },
    }
}

/// Checks one event and builds its stored text; `path_type` is a single call's type.
pub(super) fn build(
    text: &str,
    probe: &Probe<'_>,
    path_type: Option<&'static str>,
    shared: &Shared<'_>,
    who: &Who,
) -> Result<Accepted, Refusal> {
    let refuse = |reason: String| Err(Refusal::Item(reason));
    let mut fields: Vec<(&'static str, Cow<'_, RawValue>, How)> = Vec::with_capacity(6);
    let kind = event_type(probe, path_type, who, &mut fields)?;
    if !EVENT_TYPES.contains(&kind.as_ref()) {
        return refuse(format!(
            "{who} has type `{kind}`, which is not one of {}",
            EVENT_TYPES.join(", ")
        ));
    }

    let user = id(probe.user_id);
    let anonymous = id(probe.anonymous_id);
    if matches!(user, Id::WrongType) {
        return refuse(format!(
            "{who} has a `userId` that is neither a string nor a number"
        ));
    }
    if matches!(anonymous, Id::WrongType) {
        return refuse(format!(
            "{who} has an `anonymousId` that is neither a string nor a number"
        ));
    }
    if kind == "delete" {
        if !matches!(user, Id::Usable) {
            return refuse(format!("{who} is a delete without `userId`"));
        }
    } else if !matches!(user, Id::Usable) && !matches!(anonymous, Id::Usable) {
        return refuse(format!("{who} has neither userId nor anonymousId"));
    }
    if kind == "track" && probe.event.and_then(as_str).is_none_or(|e| e.is_empty()) {
        return refuse(format!("{who} is a track without `event`"));
    }

    let dedupe = match probe.message_id.filter(|raw| !is_null(raw)) {
        None => None,
        Some(raw) => match as_str(raw) {
            Some(id) if id.chars().count() > MAX_MESSAGE_ID_CHARS => {
                return refuse(format!(
                    "{who} has a `messageId` over {MAX_MESSAGE_ID_CHARS} characters"
                ));
            }
            Some(id) => (!id.is_empty()).then(|| id.into_owned()),
            None => return refuse(format!("{who} has a `messageId` that is not a string")),
        },
    };

    fill(
        "receivedAt",
        probe.received_at,
        Some(shared.received_at),
        false,
        &mut fields,
    );
    fill("sentAt", probe.sent_at, shared.sent_at, false, &mut fields);
    fill("context", probe.context, shared.context, true, &mut fields);
    fill(
        "integrations",
        probe.integrations,
        shared.integrations,
        true,
        &mut fields,
    );

    // A write key is a credential of the source, not part of the event: never stored, so never
    // forwarded by a mapping or shown by `ferry dlq`.
    let drop_write_key = probe.write_key.is_some();
    // The probe checked that a worker can read the event's own text, and the request's fields
    // were checked at the same depth once for all its events: what is spliced together reads too.
    let body = apply(text, &fields, drop_write_key)
        .map_err(|e| Refusal::Item(format!("{who} cannot be read: {e}")))?;
    // The limit of one event applies to it as stored, the batch's `context` and
    // `integrations` merged in, so that a shared context cannot multiply what a request stores.
    if body.len() > MAX_CALL_BYTES + SERVER_FIELDS_BYTES {
        return refuse(format!(
            "{who} is {} bytes once the batch's `context` and `integrations` are merged in, \
             over the {MAX_CALL_BYTES}-byte limit for one event",
            body.len()
        ));
    }
    Ok(Accepted { dedupe, body })
}

/// The event's type, from the path of a single call, its own `type`, or the old name `action`;
/// plans the `type` field to store when the event's own differs.
fn event_type<'a>(
    probe: &Probe<'a>,
    path_type: Option<&'static str>,
    who: &Who,
    fields: &mut Vec<(&'static str, Cow<'a, RawValue>, How)>,
) -> Result<Cow<'a, str>, Refusal> {
    let refuse = |reason: String| Err(Refusal::Item(reason));
    let own_type = probe.kind.filter(|raw| !is_null(raw));
    let kind = if let Some(kind) = path_type {
        if probe.kind.and_then(as_str).as_deref() != Some(kind) {
            let how = if probe.kind.is_some() {
                How::Replace
            } else {
                How::Add
            };
            fields.push(("type", Cow::Owned(json_string(kind)), how));
        }
        Cow::Borrowed(kind)
    } else if let Some(raw) = own_type {
        match as_str(raw) {
            Some(kind) => kind,
            None => return refuse(format!("{who} has a `type` that is not a string")),
        }
    } else if let Some(raw) = probe.action.filter(|raw| !is_null(raw)) {
        let Some(kind) = as_str(raw) else {
            return refuse(format!("{who} has an `action` that is not a string"));
        };
        let how = if probe.kind.is_some() {
            How::Replace
        } else {
            How::Add
        };
        fields.push(("type", Cow::Owned(json_string(&kind)), how));
        kind
    } else {
        return Err(Refusal::MissingType);
    };
    Ok(kind)
}

/// Plans how `given` (the server's or the batch's value) reaches an event whose own value is `own`.
fn fill<'a>(
    key: &'static str,
    own: Option<&RawValue>,
    given: Option<&'a RawValue>,
    merge: bool,
    fields: &mut Vec<(&'static str, Cow<'a, RawValue>, How)>,
) {
    let Some(given) = given else { return };
    let how = match own {
        None => How::Add,
        Some(own) if is_null(own) => How::Replace,
        Some(own) if merge && is_object(own) => How::Merge,
        Some(_) => return,
    };
    fields.push((key, Cow::Borrowed(given), how));
}

/// The stored text: spliced when every field is new, else rebuilt through a `Map` (which also
/// drops `writeKey` when asked). Numbers keep their digits either way.
fn apply(
    text: &str,
    fields: &[(&'static str, Cow<'_, RawValue>, How)],
    drop_write_key: bool,
) -> Result<String, serde_json::Error> {
    if !drop_write_key && fields.iter().all(|(_, _, how)| *how == How::Add) {
        let adds: Vec<(&'static str, &RawValue)> = fields
            .iter()
            .map(|(key, value, _)| (*key, value.as_ref()))
            .collect();
        return Ok(prepend(text, &adds));
    }
    let mut event: Map<String, Value> = serde_json::from_str(text)?;
    if drop_write_key {
        event.remove("writeKey");
    }
    for (key, value, how) in fields {
        let value: Value = serde_json::from_str(value.get())?;
        match (how, event.get_mut(*key), value) {
            (How::Merge, Some(Value::Object(own)), Value::Object(given)) => {
                for (name, item) in given {
                    own.entry(name).or_insert(item);
                }
            }
            (_, _, value) => {
                event.insert((*key).to_owned(), value);
            }
        }
    }
    serde_json::to_string(&event)
}
