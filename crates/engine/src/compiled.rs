//! The compiled form of a mapping: everything parsed, checked and indexed once at load time,
//! immutable afterwards and shared by every connection and every event.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ferry_spec::Pointer;
use ferry_spec::model::{
    BodyFormat, Conversion, Delivery, Mapping, Method, OnInvalid, Otherwise, Setting,
    SourceDialect, TimeUnit, Transform, UserAgentPart, ValueType,
};
use regex::Regex;
use serde_json::Value;

use crate::batch_rule::BatchRule;
use crate::path::Path;
use crate::template::{Template, Templates};

/// A mapping ready to execute.
#[derive(Debug)]
pub struct CompiledMapping {
    /// The mapping's name.
    pub name: Arc<str>,
    /// The file it came from.
    pub file: String,
    pub(crate) spec: Mapping,
    pub(crate) templates: Templates,
    pub(crate) http: CompiledHttp,
    /// `computed`, in order.
    pub(crate) computed: Vec<Field>,
    /// The mapping's own `refuse` rules, checked before any action is selected.
    pub(crate) refuse: Vec<Refusal>,
    pub(crate) actions: Vec<CompiledAction>,
    /// The list settings that names are read from (`event`, `only`, `except`), each with the
    /// member of its items that holds a name, by [`NameSource::slot`].
    pub(crate) name_sources: Vec<NameSource>,
    /// The settings that remaps read as tables, by [`RemapSetting::slot`].
    pub(crate) remap_settings: Vec<RemapSetting>,
    /// How many parents the event paths have ([`crate::path::Parents`]).
    pub(crate) parents: usize,
}

/// The shared HTTP part: rendered once per connection.
#[derive(Debug)]
pub(crate) struct CompiledHttp {
    pub base_url: Template,
    /// `http.headers`, in order.
    pub headers: Vec<(Arc<str>, Template)>,
    /// `http.auth`.
    pub auth: Option<AuthRule>,
}

/// How a request authenticates.
#[derive(Debug)]
pub(crate) enum AuthRule {
    /// A header (`bearer`, `basic`, `header`).
    Header { name: Arc<str>, value: HeaderValue },
    /// A query parameter.
    Query { name: Box<str>, value: Template },
}

/// How a header value rendered once per connection is made.
#[derive(Debug)]
pub(crate) enum HeaderValue {
    Template(Template),
    Basic {
        username: Template,
        password: Template,
    },
}

#[derive(Debug)]
pub(crate) struct CompiledAction {
    pub name: Arc<str>,
    pub when: Selector,
    pub refuse: Vec<Refusal>,
    pub for_each: Option<ForEach>,
    /// One unnamed step for an action with a single `request`.
    pub steps: Vec<CompiledStep>,
    pub remember: Vec<Remember>,
    pub dedupe_key: Option<Field>,
}

/// A reason to refuse an event.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub when: Selector,
    pub reason: Template,
}

/// The list an action plans one request per item of.
#[derive(Debug)]
pub(crate) struct ForEach {
    pub path: Path,
    pub filter: Option<Selector>,
    /// `unnest`: each value of this field (named by its key) is a run, as a member of the item.
    pub unnest: Option<Field>,
}

#[derive(Debug)]
pub(crate) struct CompiledStep {
    /// `None` for an action's single request.
    pub name: Option<Arc<str>>,
    pub when: Option<Selector>,
    pub request: CompiledRequest,
    pub batch: Option<Arc<BatchRule>>,
    /// The `failure` rules, in order: the first whose `when` holds decides. Rules written
    /// alike share one list, so that requests compare them by pointer.
    pub failure: Option<Arc<[FailureRule]>>,
    /// Position among all steps of the mapping, for what a connection renders once per step.
    pub slot: usize,
    /// Non-2xx statuses of this step's response that a later step handles.
    pub handled: Vec<u16>,
}

/// How a 2xx response says that its request failed.
#[derive(Debug)]
pub(crate) struct FailureRule {
    pub(crate) when: Selector,
    pub(crate) reason: Option<Path>,
    pub(crate) retry: bool,
}

#[derive(Debug)]
pub(crate) struct CompiledRequest {
    pub method: Method,
    pub path: Template,
    pub query: Vec<Field>,
    pub headers: Vec<ActionHeader>,
    /// `auth` of the request, instead of the mapping's.
    pub auth: Option<AuthRule>,
    pub body: Option<Object>,
    pub format: BodyFormat,
    /// Whether a header of the mapping, the auth or the action is named `Content-Type`: then
    /// the body's own is not added.
    pub content_type_given: bool,
}

/// A header of one action, rendered per event.
#[derive(Debug)]
pub(crate) struct ActionHeader {
    pub name: Arc<str>,
    pub value: Template,
    /// A header of the mapping or its auth has this name (in another case, perhaps): this one
    /// replaces it when it is written.
    pub replaces: bool,
}

/// A condition on an event (or a response, or an item): every condition must hold.
#[derive(Debug, Default)]
pub(crate) struct Selector {
    pub conditions: Vec<Condition>,
    /// The earlier step (by index in the action) whose response the paths read.
    pub response: Option<usize>,
    /// For a field's `when` that several parts hold: where a run keeps what it gave against
    /// the whole event, so that the fields sharing it and the buckets asking about them test
    /// it once. Numbered when the mapping has compiled.
    pub slot: std::sync::OnceLock<u8>,
}

/// How many fields' `when` selectors a run keeps answers for.
pub(crate) const SELECTOR_SLOTS: usize = 128;

/// One condition of a selector, in the order they are tested.
#[derive(Debug)]
pub(crate) enum Condition {
    Types(Vec<Box<str>>),
    Events(Names),
    Exists(Vec<Path>),
    Missing(Vec<Path>),
    Filled(Vec<Path>),
    Blank(Vec<Path>),
    /// With loose matching, texts are compared as `loose` says.
    Equals(Vec<(Path, Value)>, Looseness),
    Matches(Vec<(Path, Regex)>),
    /// `is`: each path selects a value of one of these types.
    Is(Vec<(Path, Vec<ValueType>)>),
    /// `time_outside`: each path selects a time further from now than its window allows.
    TimeOutside(Vec<(Path, TimeWindow)>),
    Same(Path, Path, Looseness),
    /// `in`: the first path's value is one of the second's list (or equals its one value).
    In(Path, Path, Looseness),
    Settings(Vec<(Box<str>, Value)>),
    Recalled(Recall),
    Statuses(Vec<u16>),
    Not(Box<Selector>),
    Any(Vec<Selector>),
    All(Vec<Selector>),
}

/// How far from now a time may lie, in milliseconds, and how a number is read as a time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeWindow {
    pub past: Option<i64>,
    pub future: Option<i64>,
    pub unit: ferry_spec::model::TimeUnit,
}

/// How texts are compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Looseness {
    #[default]
    Exact,
    /// Without regard to case and surrounding white space.
    Loose,
    /// Without regard to case.
    Case,
}

/// Names written in the mapping, or held by list settings (`"*"` allows every name).
#[derive(Debug, Default)]
pub(crate) enum Names {
    /// No condition.
    #[default]
    Any,
    /// Names as written (with loose matching, as they are compared), and those the settings
    /// listed beside them hold; a setting a connection leaves unset adds none.
    Listed {
        names: Vec<Box<str>>,
        settings: Vec<NameSource>,
        loose: Looseness,
    },
    /// The names one setting holds; a connection that leaves it unset sets no condition.
    Setting {
        source: NameSource,
        loose: Looseness,
    },
}

/// A list setting that names are read from: its items, or each item's `member`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameSource {
    pub setting: Box<str>,
    pub member: Option<Box<str>>,
    /// Where a connection keeps the names, among the mapping's `name_sources`.
    pub slot: usize,
}

#[derive(Debug)]
pub(crate) struct Remember {
    pub store: Box<str>,
    pub key: Path,
    pub value: Vec<Path>,
}

/// Whether a missing value is left out, fails the action or skips it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Required {
    No,
    Fail,
    Skip,
}

/// When an explicit `null` is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeepNull {
    No,
    /// When no path selects another value.
    Last,
    /// When the first path present holds it.
    First,
}

#[derive(Debug)]
pub(crate) struct Field {
    /// `"name":`, escaped once.
    pub key_json: Box<[u8]>,
    pub key: Box<str>,
    /// Dotted output path for messages, e.g. `data.email`.
    pub label: Box<str>,
    /// Where the field is written in the mapping, for problems found after it compiled.
    pub pointer: Pointer,
    /// The output name computed per event (`key:`), instead of `key`.
    pub computed_key: Option<Box<Field>>,
    /// Written only when this holds.
    pub when: Option<Arc<Selector>>,
    /// An object whose members go into the enclosing object.
    pub spread: bool,
    pub source: Source,
    pub default: Option<Value>,
    pub required: Required,
    pub keep_null: KeepNull,
    pub omit_empty: bool,
    /// Operations on a present value, in the order they apply.
    pub ops: Vec<Op>,
    pub on_invalid: OnInvalid,
    pub must_be: Option<ValueType>,
    pub time_unit: TimeUnit,
}

/// One operation on a present value.
#[derive(Debug)]
pub(crate) enum Op {
    Remap(Remap),
    Transform(Transform),
    Capture(Regex),
    UserAgent(UserAgentPart),
    Truncate(usize),
    /// Text split at this separator into trimmed, non-empty texts.
    Split(Box<str>),
    Count,
    ToObject(Value),
    Convert(Conversion),
    /// A number multiplied by the number a path selects (1 when it selects nothing).
    Times(Path),
    /// A number rounded to this many decimal places.
    Round(u8),
    /// A time written with a strftime pattern, in UTC or in a time zone.
    FormatTime(Box<str>, Option<Zone>),
    MustBe(ValueType),
}

/// The time zone `format_time` writes a time in.
#[derive(Debug)]
pub(crate) enum Zone {
    /// A zone written in the mapping.
    Fixed(chrono_tz::Tz),
    /// The zone an event value names (`$.context.timezone`), per event.
    Read(Path),
}

#[derive(Debug)]
pub(crate) enum Source {
    Paths {
        paths: Vec<Path>,
        recall: Option<Recall>,
        /// `member`: the member of the selected object named by the text here.
        member: Option<Path>,
        /// `first`: a query's first match instead of the list of matches.
        first: bool,
        /// `now`: the current time when no path selects a value (nor `recall`).
        now: bool,
        /// Whether a path reads a computed value, whose failure fails the field.
        reads_computed: bool,
    },
    Recall(Recall),
    Value(Value),
    Template(Template),
    /// The template a `template` setting holds, compiled by the connection.
    SettingTemplate(Box<str>),
    Setting(Box<str>),
    /// The current time.
    Now,
    Object(Object),
    Each {
        path: Path,
        item: Box<Field>,
        filter: Option<Selector>,
        /// What a single value where the list is expected becomes.
        single: Single,
        /// The sum of the items' values instead of the list.
        sum: bool,
    },
    /// One member per entry of the first object the paths select.
    Entries {
        paths: Vec<Path>,
        item: Box<Field>,
        filter: Option<Selector>,
    },
    /// A list: one entry per field, or every item of a field that is an `each`.
    Items(Vec<Field>),
    /// `response` + `from`: paths into an earlier step's response.
    Response {
        step: usize,
        paths: Vec<Path>,
    },
    /// `from_setting`: the path a `path` setting holds, compiled by the connection.
    SettingPath(Box<str>),
}

/// What `each` makes of a single value (not a list, not `null`) where it expects a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Single {
    /// An error: `each` needs a list.
    Refused,
    /// A list of one (`single_as_list`).
    AsList,
    /// Shaped like an item and sent alone (`keep_single`).
    Alone,
}

#[derive(Debug)]
pub(crate) struct Recall {
    pub store: Box<str>,
    pub key: Path,
}

/// An object: explicit fields (a group's first), then the bucket.
#[derive(Debug)]
pub(crate) struct Object {
    /// `within`: the first of these that selects an object is `$` inside this one.
    pub within: Vec<Path>,
    pub fields: Vec<Field>,
    pub rest: Option<Box<Rest>>,
    /// Some member's name is only known per event (a computed key, `entries`, a spread
    /// object's bucket, or names that fields left out by their `when` may share): names written
    /// are tracked so that none is written twice.
    pub dynamic: bool,
}

/// Conditions that must all hold, each in the scope of the bucket it affects.
pub(crate) type Conditions = Vec<Arc<Selector>>;

/// Keys that count only for events whose conditions hold, grouped by those conditions (the
/// same selectors, as `when`s written alike compile to one): a bucket tests each group's
/// conditions once per event, however many keys they govern.
#[derive(Debug, Default)]
pub(crate) struct KeysWhen(pub Vec<(Conditions, KeySet)>);

impl KeysWhen {
    pub fn insert(&mut self, conditions: &Conditions, key: Box<str>) {
        let same = |held: &Conditions| {
            held.len() == conditions.len()
                && held.iter().zip(conditions).all(|(a, b)| Arc::ptr_eq(a, b))
        };
        match self.0.iter_mut().find(|(held, _)| same(held)) {
            Some((_, keys)) => {
                keys.insert(key);
            }
            None => self.0.push((conditions.clone(), KeySet::from_iter([key]))),
        }
    }

    /// Drops the keys that already count whatever the conditions (and groups left empty).
    pub fn remove_all_of(&mut self, always: &KeySet) {
        for (_, keys) in &mut self.0 {
            keys.retain(|key| !always.contains(key));
        }
        self.0.retain(|(_, keys)| !keys.is_empty());
    }
}

#[derive(Debug)]
pub(crate) struct Rest {
    /// The first of these that selects an object is bucketed.
    pub paths: Vec<Path>,
    /// Source keys read by other fields of the action, or listed in `except`.
    pub consumed: KeySet,
    /// Source keys read by fields that are written only when their conditions hold.
    pub consumed_when: KeysWhen,
    /// Paths (in the bucket's scope) whose text names a key another field reads (`member`).
    pub named: Vec<Path>,
    /// Output names of the explicit fields beside the bucket: they win over bucketed keys.
    pub siblings: KeySet,
    /// Output names of fields beside the bucket written only when their conditions hold.
    pub siblings_when: KeysWhen,
    pub prefix: Box<str>,
    /// How nested values are flattened, if they are.
    pub flatten: Option<Flattening>,
    pub only: Names,
    /// `only: [{ matches: REGEX }]`: keys bucketed besides those `only` names.
    pub only_patterns: Vec<Regex>,
    /// `except: { setting: NAME }`: keys never bucketed, per connection.
    pub except: Names,
    /// `except: { path: $... }`: keys never bucketed, named by the text or list of texts the
    /// path selects in this event.
    pub except_paths: Vec<Path>,
    /// `except: { matches: REGEX }`: keys never bucketed, those the expression matches.
    pub except_patterns: Vec<Regex>,
    /// `dotted: true`: the names of `only` and `except` are dotted paths into the object.
    pub dotted: bool,
    /// With `dotted`: the paths written in `except` that reach into a member (`address.city`).
    pub except_nested: Vec<Box<str>>,
}

/// How a bucket flattens nested values into keys of its own.
#[derive(Debug)]
pub(crate) struct Flattening {
    /// Between a parent's key and a child's.
    pub separator: Box<str>,
    /// For list items: the text before and after the index (`[` and `]` for `"[{i}]"`); lists
    /// are kept as they are without it.
    pub lists: Option<(Box<str>, Box<str>)>,
}

#[derive(Debug)]
pub(crate) struct Remap {
    /// The mapping's table, its keys already through `matching`.
    pub table: HashMap<Box<str>, Value>,
    /// The setting whose table wins over `table`, by [`RemapSetting::slot`].
    pub setting: Option<usize>,
    /// The transforms a value goes through before it is looked up (`match`).
    pub matching: Box<[Transform]>,
    pub otherwise: Otherwise,
    pub default: Option<Value>,
}

/// A `map` or `list` setting that a remap reads as a table, which each connection builds once
/// (keys through `matching`, the first or last of repeated keys kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemapSetting {
    pub setting: Box<str>,
    pub matching: Box<[Transform]>,
    pub last_wins: bool,
    /// Where a connection keeps the table, among the mapping's `remap_settings`.
    pub slot: usize,
}

impl CompiledMapping {
    /// The mapping as written in its file.
    pub fn spec(&self) -> &Mapping {
        &self.spec
    }

    /// The input dialect.
    pub fn dialect(&self) -> SourceDialect {
        self.spec.source
    }

    /// The mapping's delivery rules (`delivery:`).
    pub fn delivery(&self) -> &Delivery {
        &self.spec.delivery
    }

    /// The settings the mapping declares, in order.
    pub fn settings(&self) -> &indexmap::IndexMap<String, Setting> {
        &self.spec.settings
    }

    /// The largest body the mapping plans, in bytes.
    pub(crate) fn max_body_bytes(&self) -> u64 {
        self.spec.http.max_body_bytes
    }

    /// Action names, in order.
    pub fn action_names(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(|a| &*a.name)
    }

    /// What plans a request: `action` for an action with one request, `action.step` for each
    /// step of a multi-step action.
    pub fn request_labels(&self) -> Vec<String> {
        self.actions
            .iter()
            .flat_map(|a| {
                a.steps.iter().map(|s| match &s.name {
                    Some(step) => format!("{}.{step}", a.name),
                    None => a.name.to_string(),
                })
            })
            .collect()
    }
}

/// A set of object keys, looked up once per bucketed key of every event.
pub(crate) type KeySet = HashSet<Box<str>, FastHash>;

/// The hasher of the engine's in-memory tables (key sets, setting name lists, open batches):
/// foldhash, several times faster than the default SipHash on short keys and than a bytewise
/// hash on long ones (a batch key covers the URL and every header). A fixed seed is enough:
/// none of these tables grows with what events contain.
pub(crate) type FastHash = foldhash::fast::FixedState;
