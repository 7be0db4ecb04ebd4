//! JSONPath sources, compiled once. Plain member chains (`$.traits.email`, `$['a.b'][0]`) are
//! lowered to a direct key walk; anything else (wildcards, filters, slices, descendants) runs
//! through a compiled query: evaluated here (`query`) when it uses names, indexes, wildcards
//! and filters, by jsonpath-rust otherwise.

mod parents;
mod query;

use parents::ParentId;
pub(crate) use parents::{ParentIds, Parents, ReadParents};

use std::borrow::Cow;
use std::fmt;

use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::{Map, Value};

/// One step of a plain path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// An object member.
    Key(Box<str>),
    /// A list index.
    Index(usize),
}

/// A compiled JSONPath.
#[derive(Clone)]
pub struct Path {
    text: Box<str>,
    root: Root,
    kind: Kind,
    /// For a plain path of the event of two steps or more: which of the mapping's parents (the
    /// steps but the last) it reads under, walked once per event ([`Parents`]).
    parent: Option<ParentId>,
    /// For a path of `$computed`: the position of the value its first step names among the
    /// mapping's computed values, given when the mapping compiles.
    computed_slot: Option<usize>,
}

/// What `$` of a path stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// The value in scope: the event, or the item inside `each` and `entries`.
    Scope,
    /// `$event...`: the whole event, wherever the path is read.
    Event,
    /// `$key`: the key of the entry in scope, inside `entries`.
    Key,
    /// `$item...`: the item of the action's `for_each` the request is planned for.
    Item,
    /// `$index`: the 0-based position of that item in the `for_each` list.
    Index,
    /// `$settings...`: the connection's settings, e.g. `$settings.event_mappings`.
    Settings,
    /// `$computed...`: the mapping's computed values, e.g. `$computed.event_type`.
    Computed,
}

impl Root {
    /// Whether the root is one value without members (`$key`, `$index`), not a document.
    pub fn is_scalar(self) -> bool {
        matches!(self, Root::Key | Root::Index)
    }

    /// How the root is written.
    pub fn as_str(self) -> &'static str {
        match self {
            Root::Scope => "$",
            Root::Event => "$event",
            Root::Key => "$key",
            Root::Item => "$item",
            Root::Index => "$index",
            Root::Settings => "$settings",
            Root::Computed => "$computed",
        }
    }
}

/// Roots written with a name, in the order they are tried.
const NAMED_ROOTS: [Root; 4] = [Root::Event, Root::Item, Root::Settings, Root::Computed];

#[derive(Clone)]
enum Kind {
    Plain(Box<[Segment]>),
    /// A query, and the plain member chain it starts with: when that chain is missing the query
    /// can match nothing, and it is not run.
    Query(Box<Query>, Box<[Segment]>),
}

/// A parsed query, and whether [`query::select`] evaluates it.
#[derive(Clone)]
struct Query {
    parsed: JpQuery,
    native: bool,
}

impl Query {
    fn new(parsed: JpQuery) -> Query {
        let native = query::supported(&parsed);
        Query { parsed, native }
    }

    /// The nodes the query selects.
    fn select<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        if self.native {
            return query::select(&self.parsed, root);
        }
        js_path_process(&self.parsed, root)
            .map(|found| {
                found
                    .into_iter()
                    .map(jsonpath_rust::query::QueryRef::val)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Path {
    /// Compiles `text`; the error says what is wrong with it.
    /// `$event` and `$key` start paths that read the whole event and the entry's key.
    pub fn parse(text: &str) -> Result<Path, String> {
        if !text.starts_with('$') {
            return Err(format!(
                "`{text}` is not a JSONPath: it must start with `$`, e.g. `$.{}`",
                text.trim_start_matches('.')
            ));
        }
        let named = NAMED_ROOTS.iter().find_map(|root| {
            text.strip_prefix(root.as_str())
                .filter(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
                .map(|rest| (*root, rest))
        });
        let (root, query_text): (Root, Cow<'_, str>) = if let Some((root, rest)) = named {
            (root, Cow::Owned(format!("${rest}")))
        } else if text == "$key" {
            (Root::Key, Cow::Borrowed("$"))
        } else if text.starts_with("$key") && text[4..].starts_with(['.', '[']) {
            return Err(format!(
                "`$key` is the text of the entry's key and has no members: write `$key` alone, not `{text}`"
            ));
        } else if text == "$index" {
            (Root::Index, Cow::Borrowed("$"))
        } else if text.starts_with("$index") && text[6..].starts_with(['.', '[']) {
            return Err(format!(
                "`$index` is the position of the `for_each` item, one number without members: `{text}`"
            ));
        } else {
            (Root::Scope, Cow::Borrowed(text))
        };
        let kind = if let Some(segments) = parse_plain(&query_text) {
            Kind::Plain(segments.into_boxed_slice())
        } else {
            let query = parse_json_path(&query_text)
                .map_err(|e| format!("invalid JSONPath `{text}`: {e}"))?;
            Kind::Query(
                Box::new(Query::new(query)),
                plain_prefix(&query_text).into_boxed_slice(),
            )
        };
        Ok(Path {
            text: text.into(),
            root,
            kind,
            parent: None,
            computed_slot: None,
        })
    }

    /// A path written in a destination's dotted form, `properties.order_id`, as the JSONPath
    /// `$['properties']['order_id']`; `None` for an empty text or an empty part.
    pub fn from_dotted(text: &str) -> Option<Path> {
        let segments: Vec<Segment> = text
            .split('.')
            .map(|part| (!part.is_empty()).then(|| Segment::Key(part.into())))
            .collect::<Option<_>>()?;
        Some(Path {
            text: text.into(),
            root: Root::Scope,
            kind: Kind::Plain(segments.into_boxed_slice()),
            parent: None,
            computed_slot: None,
        })
    }

    /// What `$` stands for in this path.
    pub fn root(&self) -> Root {
        self.root
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Notes where the computed value this path reads is kept: `slot` among the mapping's.
    pub(crate) fn set_computed_slot(&mut self, slot: usize) {
        self.computed_slot = Some(slot);
    }

    /// For a path of a computed value (`$computed.NAME...`): where the value is kept, and the
    /// steps under it.
    pub(crate) fn computed_slot(&self) -> Option<(usize, &[Segment])> {
        let Kind::Plain(segments) = &self.kind else {
            return None;
        };
        Some((self.computed_slot?, segments.get(1..)?))
    }

    /// The steps of a plain path; `None` for a query.
    pub fn segments(&self) -> Option<&[Segment]> {
        match &self.kind {
            Kind::Plain(segments) => Some(segments),
            Kind::Query(..) => None,
        }
    }

    /// Whether the path can select several values.
    pub fn is_query(&self) -> bool {
        matches!(self.kind, Kind::Query(..))
    }

    /// The first value at this path: a plain path's value, or a query's first match. Nothing
    /// is copied.
    pub fn first<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        match &self.kind {
            Kind::Plain(segments) => walk(root, segments),
            Kind::Query(query, prefix) => {
                walk(root, prefix)?;
                query.select(root).into_iter().next()
            }
        }
    }

    /// Whether the path finds anything in `root` (a query: at least one match).
    pub fn matches(&self, root: &Value) -> bool {
        self.first(root).is_some()
    }

    /// The value at this path. A plain path borrows from `root`; a query yields the list of its
    /// matches, or `None` when nothing matches.
    pub fn get<'a>(&self, root: &'a Value) -> Option<Cow<'a, Value>> {
        match &self.kind {
            Kind::Plain(segments) => walk(root, segments).map(Cow::Borrowed),
            Kind::Query(query, prefix) => {
                walk(root, prefix)?;
                let found = query.select(root);
                if found.is_empty() {
                    None
                } else {
                    Some(Cow::Owned(Value::Array(
                        found.into_iter().cloned().collect(),
                    )))
                }
            }
        }
    }
}

/// Follows plain segments from `root`.
pub fn walk<'a>(root: &'a Value, segments: &[Segment]) -> Option<&'a Value> {
    let mut node = root;
    for segment in segments {
        node = match (segment, node) {
            (Segment::Key(key), Value::Object(map)) => member(map, key)?,
            (Segment::Index(index), Value::Array(items)) => items.get(*index)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Objects of at most this many members are searched by [`member`] in order.
const SCANNED: usize = 12;

/// The member of `map` named `key`. An event's objects are mostly small, and the ordered map's
/// search compares `key` with each name it passes, byte by byte: a scan that compares lengths
/// first compares the bytes of few names, most often only the one it finds.
pub(crate) fn member<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if map.len() > SCANNED {
        return map.get(key);
    }
    map.iter()
        .find_map(|(name, value)| (name.len() == key.len() && name == key).then_some(value))
}

/// The plain steps a query starts with (`$.a.b[?...]` -> `a`, `b`): up to the first step that
/// is not a plain member or index.
fn plain_prefix(text: &str) -> Vec<Segment> {
    let mut end = text.len();
    loop {
        if let Some(segments) = parse_plain(&text[..end]) {
            return segments;
        }
        // Cut the last step: everything from the last `.` or `[` outside quotes is dropped.
        match text[..end].rfind(['.', '[']) {
            Some(at) if at > 0 => end = at,
            _ => return Vec::new(),
        }
    }
}

/// Parses `$`, `.name`, `['name']`, `["name"]` and `[N]` steps; `None` for anything else.
fn parse_plain(text: &str) -> Option<Vec<Segment>> {
    let bytes = text.as_bytes();
    let mut at = 1;
    let mut segments = Vec::new();
    while at < bytes.len() {
        match bytes[at] {
            b'.' => {
                let start = at + 1;
                let end = text[start..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '$'))
                    .map_or(text.len(), |n| start + n);
                if end == start {
                    return None;
                }
                segments.push(Segment::Key(text[start..end].into()));
                at = end;
            }
            b'[' => {
                let close = text[at..].find(']')? + at;
                let inner = &text[at + 1..close];
                if let Some(quoted) = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    if quoted.contains(['\'', '"', '\\']) {
                        return None;
                    }
                    segments.push(Segment::Key(quoted.into()));
                } else if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
                    segments.push(Segment::Index(inner.parse().ok()?));
                } else {
                    return None;
                }
                at = close + 1;
            }
            _ => return None,
        }
    }
    Some(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_member_is_found_as_the_ordered_map_finds_it_in_small_and_large_objects() {
        for size in [0, 1, 2, SCANNED - 1, SCANNED, SCANNED + 1, 3 * SCANNED] {
            // Names of one length, so that only their bytes tell them apart, and of others.
            let map: Map<String, Value> = (0..size)
                .map(|i| (format!("k{i:02}"), json!(i)))
                .chain([
                    ("k".to_owned(), json!("short")),
                    ("k000".to_owned(), json!("long")),
                ])
                .collect();
            for key in ["k", "k00", "k000", "k01", "k99", "", "K00", "k0"] {
                let key = if key == "k99" {
                    format!("k{:02}", size.saturating_sub(1))
                } else {
                    key.to_owned()
                };
                assert_eq!(
                    member(&map, &key),
                    map.get(&key),
                    "{key} of {} members",
                    map.len()
                );
            }
        }
    }

    #[test]
    fn lowers_member_chains_to_a_key_walk() {
        let path = Path::parse("$.traits['first.name'][1].x").unwrap();
        assert_eq!(
            path.segments().unwrap(),
            &[
                Segment::Key("traits".into()),
                Segment::Key("first.name".into()),
                Segment::Index(1),
                Segment::Key("x".into())
            ]
        );
        let event = json!({"traits": {"first.name": [0, {"x": "ok"}]}});
        assert_eq!(path.get(&event).as_deref(), Some(&json!("ok")));
    }

    #[test]
    fn runs_wildcards_and_filters_as_queries() {
        let path = Path::parse("$.products[*].sku").unwrap();
        assert!(path.is_query());
        let event = json!({"products": [{"sku": "a"}, {"sku": "b"}]});
        assert_eq!(path.get(&event).as_deref(), Some(&json!(["a", "b"])));
        let none = json!({"products": []});
        assert_eq!(path.get(&none), None);
    }

    #[test]
    fn reads_the_event_and_the_entry_key_from_named_roots() {
        let path = Path::parse("$event.userId").unwrap();
        assert_eq!(path.root(), Root::Event);
        assert_eq!(path.segments().unwrap(), &[Segment::Key("userId".into())]);
        assert_eq!(Path::parse("$event").unwrap().segments().unwrap(), &[]);
        assert_eq!(Path::parse("$key").unwrap().root(), Root::Key);
        assert_eq!(Path::parse("$index").unwrap().root(), Root::Index);
        assert!(Path::parse("$index.x").is_err());
        assert_eq!(Path::parse("$.events").unwrap().root(), Root::Scope);
        assert!(Path::parse("$events").is_err());
        let setting = Path::parse("$settings.event_map[0].to").unwrap();
        assert_eq!(setting.root(), Root::Settings);
        assert_eq!(
            setting
                .get(&json!({"event_map": [{"to": "Purchase"}]}))
                .as_deref(),
            Some(&json!("Purchase"))
        );
        assert_eq!(Path::parse("$item.from").unwrap().root(), Root::Item);
        assert_eq!(Path::parse("$computed").unwrap().root(), Root::Computed);
        assert!(Path::parse("$items").is_err());
        assert!(Path::parse("$key.x").unwrap_err().contains("no members"));
        let filter = Path::parse("$event.ids[?(@.type=='b')].id").unwrap();
        assert_eq!(filter.root(), Root::Event);
        let event = json!({"ids": [{"type": "a", "id": 1}, {"type": "b", "id": 2}, {"type": "b", "id": 3}]});
        assert_eq!(filter.first(&event), Some(&json!(2)));
    }

    #[test]
    fn dotted_paths_read_like_their_json_paths() {
        let path = Path::from_dotted("properties.custom dedup.id").unwrap();
        assert_eq!(
            path.get(&json!({"properties": {"custom dedup": {"id": 7}}}))
                .as_deref(),
            Some(&json!(7))
        );
        assert!(Path::from_dotted("a..b").is_none());
        assert!(Path::from_dotted("").is_none());
    }

    #[test]
    fn a_query_is_not_run_when_its_plain_start_is_missing() {
        assert_eq!(
            plain_prefix("$.context.externalId[?(@.type=='b')].id"),
            vec![
                Segment::Key("context".into()),
                Segment::Key("externalId".into())
            ]
        );
        assert_eq!(plain_prefix("$..traits"), Vec::<Segment>::new());
        assert_eq!(
            plain_prefix("$['a.b'][*]"),
            vec![Segment::Key("a.b".into())]
        );
        let path = Path::parse("$.context.ids[?(@.t=='b')].id").unwrap();
        assert_eq!(path.get(&json!({"context": {}})), None);
        assert_eq!(
            path.get(&json!({"context": {"ids": [{"t": "b", "id": 1}]}}))
                .as_deref(),
            Some(&json!([1]))
        );
    }

    #[test]
    fn rejects_malformed_paths_with_a_reason() {
        assert!(
            Path::parse("traits.email")
                .unwrap_err()
                .contains("must start with `$`")
        );
        assert!(
            Path::parse("$.a[?(@.b ==")
                .unwrap_err()
                .contains("invalid JSONPath")
        );
    }
}
