//! The compiled form of a mapping: everything parsed, checked and indexed once at load time,
//! immutable afterwards and shared by every connection and every event.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ferry_spec::model::{
    BodyFormat, Conversion, Mapping, Method, OnInvalid, Otherwise, SourceDialect, TimeUnit,
    Transform, ValueType,
};
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
    /// The mapping as written, for delivery rules and settings declarations.
    pub spec: Mapping,
    pub(crate) templates: Templates,
    pub(crate) base_url: Template,
    pub(crate) headers: Vec<(Arc<str>, HeaderValue)>,
    pub(crate) actions: Vec<CompiledAction>,
}

/// How a mapping-wide header value is made.
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
    /// One unnamed step for an action with a single `request`.
    pub steps: Vec<CompiledStep>,
    pub remember: Vec<Remember>,
    pub dedupe_key: Option<Field>,
}

#[derive(Debug)]
pub(crate) struct CompiledStep {
    /// `None` for an action's single request.
    pub name: Option<Arc<str>>,
    pub when: Option<Selector>,
    pub request: CompiledRequest,
    pub batch: Option<Arc<BatchRule>>,
    /// Position among all steps of the mapping, for what a connection renders once per step.
    pub slot: usize,
    /// Non-2xx statuses of this step's response that a later step handles.
    pub handled: Vec<u16>,
}

#[derive(Debug)]
pub(crate) struct CompiledRequest {
    pub method: Method,
    pub path: Template,
    pub query: Vec<Field>,
    pub headers: Vec<(Arc<str>, Template)>,
    pub body: Option<Object>,
    pub format: BodyFormat,
}

#[derive(Debug, Default)]
pub(crate) struct Selector {
    pub types: Vec<Box<str>>,
    pub events: Names,
    pub exists: Vec<Path>,
    pub missing: Vec<Path>,
    pub filled: Vec<Path>,
    pub blank: Vec<Path>,
    /// With `loose`, texts are compared trimmed and without regard to case.
    pub equals: Vec<(Path, Value)>,
    pub settings: Vec<(Box<str>, Value)>,
    pub recalled: Option<Recall>,
    /// The earlier step (by index in the action) whose response the paths read.
    pub response: Option<usize>,
    pub statuses: Vec<u16>,
    pub not: Option<Box<Selector>>,
    pub any: Vec<Selector>,
    pub all: Vec<Selector>,
    pub loose: bool,
}

/// Names written in the mapping, or held by a list setting (`"*"` allows every name).
#[derive(Debug, Default)]
pub(crate) enum Names {
    /// No condition.
    #[default]
    Any,
    /// Names as written; with `loose`, written trimmed and in lower case.
    Listed {
        names: Vec<Box<str>>,
        loose: bool,
    },
    Setting {
        name: Box<str>,
        loose: bool,
    },
}

#[derive(Debug)]
pub(crate) struct Remember {
    pub store: Box<str>,
    pub key: Path,
    pub value: Vec<Path>,
}

#[derive(Debug)]
pub(crate) struct Field {
    /// `"name":`, escaped once.
    pub key_json: Box<[u8]>,
    pub key: Box<str>,
    /// Dotted output path for messages, e.g. `data.email`.
    pub label: Box<str>,
    /// The output name computed per event (`key:`), instead of `key`.
    pub computed_key: Option<Box<Field>>,
    /// Written only when this holds.
    pub when: Option<Selector>,
    /// An object whose members go into the enclosing object.
    pub spread: bool,
    pub source: Source,
    pub default: Option<Value>,
    pub required: bool,
    pub keep_null: bool,
    pub omit_empty: bool,
    /// Remaps, transforms and conversions, in the order they apply.
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
    Convert(Conversion),
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
    },
    Recall(Recall),
    Value(Value),
    Template(Template),
    Setting(Box<str>),
    Object(Object),
    Each {
        path: Path,
        item: Box<Field>,
        filter: Option<Selector>,
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
    pub rest: Option<Rest>,
    /// Some member's name is only known per event (a computed key, `entries`, or a spread
    /// object's bucket): names written are tracked so that none is written twice.
    pub dynamic: bool,
}

#[derive(Debug)]
pub(crate) struct Rest {
    /// The first of these that selects an object is bucketed.
    pub paths: Vec<Path>,
    /// Source keys read by other fields of the action, or listed in `except`.
    pub consumed: KeySet,
    /// Paths (in the bucket's scope) whose text names a key another field reads (`member`).
    pub named: Vec<Path>,
    /// Output names of the explicit fields beside the bucket: they win over bucketed keys.
    pub siblings: KeySet,
    pub prefix: Box<str>,
    pub flatten: bool,
    pub only: Names,
}

#[derive(Debug)]
pub(crate) struct Remap {
    pub table: HashMap<Box<str>, Value>,
    pub setting: Option<Box<str>>,
    pub otherwise: Otherwise,
    pub default: Option<Value>,
}

impl CompiledMapping {
    /// The input dialect.
    pub fn dialect(&self) -> SourceDialect {
        self.spec.source
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
