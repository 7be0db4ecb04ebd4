//! The mapping language as Rust types: the single source of truth for both parsing and the JSON
//! Schema that editors use. Doc comments here become the schema's descriptions.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An ordered map that keeps the order keys are written in the file.
pub type Ordered<V> = indexmap::IndexMap<String, V>;

/// A ferry mapping: how the events of one source become HTTP requests to one destination.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ferry mapping")]
#[schemars(extend("patternProperties" = {
    "^x-": { "description": "Not read by ferry: a place for reusable pieces, e.g. a YAML anchor (`x-common: &common {...}`) merged into fields with `<<: *common`." }
}))]
pub struct Mapping {
    /// Version of the mapping language this file is written in. Always `1`.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Short identifier of the destination, used in output and logs, e.g. `extole`.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_-]*$"))]
    #[schemars(example = &"extole")]
    pub name: String,
    /// One sentence on what this mapping does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The input dialect: where the message type and the event name are read from.
    pub source: SourceDialect,
    /// Values the user supplies per connection (API keys, lookup tables, options).
    /// Templates read them as `settings.NAME`.
    #[serde(default)]
    pub settings: Ordered<Setting>,
    /// Where requests go and how they authenticate. Shared by every action.
    pub http: Http,
    /// How delivery treats this destination: retries, rate limits, batching.
    #[serde(default)]
    pub delivery: Delivery,
    /// Named groups of fields, written once and used by any object of any action with
    /// `group: NAME`, e.g. the user identifier every Braze object carries.
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub groups: Ordered<Ordered<Field>>,
    /// Values computed once per event and read by any field or condition as `$computed.NAME`,
    /// e.g. the destination's event type that several fields and conditions need. Each is a
    /// field read in the event's scope; one may read those written before it.
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub computed: Ordered<Field>,
    /// Named batch rules: actions and steps that name the same rule in `batch: NAME` merge their
    /// requests into one HTTP request, e.g. Braze's attributes, events and purchases to
    /// `/users/track`.
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub batches: Ordered<Batch>,
    /// Events the destination refuses whichever action would take them (a message type it does
    /// not accept, a setting missing for the chosen API version): checked in order once the
    /// computed values are made and before any action is selected; the first rule whose `when`
    /// holds fails the event with its reason, and no action runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refuse: Vec<Refusal>,
    /// What to send, keyed by action name. Every action whose `when` matches an event runs,
    /// in the order written here.
    pub actions: Ordered<Action>,
}

/// The shape of the incoming events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceDialect {
    /// Segment spec: type in `$.type` (or the legacy `$.action`), event name in `$.event`.
    Segment,
    /// Amplitude events: every event is a `track`, event name in `$.event_type`.
    Amplitude,
    /// Extole webhook events: every event is a `track`, event name in `$.event_name`.
    Extole,
    /// Any JSON object: no message type or event name; select actions with `exists`/`equals`.
    Json,
}

impl SourceDialect {
    /// The name used in mapping files.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceDialect::Segment => "segment",
            SourceDialect::Amplitude => "amplitude",
            SourceDialect::Extole => "extole",
            SourceDialect::Json => "json",
        }
    }
}

/// A value the user supplies for each connection of this mapping.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    /// The type the value must have.
    #[serde(rename = "type")]
    pub kind: SettingType,
    /// What the setting is for, shown to the person configuring a connection.
    pub description: String,
    /// The connection is refused when a required setting has no value.
    #[serde(default)]
    pub required: bool,
    /// Value used when the connection does not set one. Not allowed with `required: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Redact the value everywhere ferry prints or records it (dry runs, logs, errors, snapshots).
    #[serde(default)]
    pub secret: bool,
    /// The only values allowed, e.g. `[us, eu]`; checked when a connection is made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub one_of: Vec<Value>,
    /// Settings that need this one: a connection that gives any of them a value must give this
    /// one a value too, e.g. `project_id` with `required_with: [service_account_user]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_with: Vec<String>,
}

/// The type of a setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettingType {
    /// Text.
    String,
    /// Any number.
    Number,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A list of values.
    List,
    /// A table of keys to values, e.g. an event-name remap.
    Map,
    /// A path into the event, read by fields with `from_setting`: a JSONPath such as
    /// `$.user_id`, or the destination's dotted form, `properties.order_id`.
    Path,
    /// A template over `event` and `settings`, rendered per event by fields with
    /// `template: { setting: NAME }`, e.g. a page name pattern.
    Template,
}

/// The HTTP side shared by every action.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// Scheme and host (and optional path prefix) of every request. A literal or a template over
    /// `settings` only: event data can never choose the host.
    #[schemars(example = &"https://api.extole.io")]
    pub base_url: String,
    /// How requests authenticate. At most one of `bearer`, `basic` or `header`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Headers sent with every request: templates over `settings`.
    #[serde(default)]
    pub headers: Ordered<String>,
    /// Largest request body ferry will plan, in bytes; a larger body is a per-event error.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
}

fn default_max_body_bytes() -> u64 {
    1024 * 1024
}

/// Authentication helper. Set exactly one key; values are templates over `settings`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct Auth {
    /// `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"{{ settings.api_key }}")]
    pub bearer: Option<String>,
    /// `Authorization: Basic base64(username:password)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    /// Any header, e.g. `Authorization: Token <key>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderAuth>,
    /// A query parameter, e.g. `?api_key=<key>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<QueryAuth>,
}

/// A credential sent as a query parameter.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryAuth {
    /// Parameter name, e.g. `api_key`.
    pub name: String,
    /// Parameter value: a template over `settings`.
    pub value: String,
}

/// HTTP Basic credentials.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name: a template over `settings`.
    pub username: String,
    /// Password: a template over `settings`; empty when omitted.
    #[serde(default)]
    pub password: String,
}

/// A credential sent in a header of your choice.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderAuth {
    /// Header name, e.g. `Authorization`.
    pub name: String,
    /// Header value: a template over `settings`, e.g. `Token {{ settings.api_key }}`.
    pub value: String,
}

/// Delivery rules for this destination, enforced by the delivery layer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// When and how often a failed request is retried.
    #[serde(default)]
    pub retry: Retry,
    /// Most requests sent in a time window, e.g. `{ requests: 100, per_seconds: 60 }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Most requests in flight at once to this destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub concurrency: Option<u32>,
    /// Total time allowed for one attempt of a request, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Longest time one request may take, every attempt and wait between them included, in
    /// milliseconds; a request that runs out is dead-lettered.
    #[serde(default = "default_max_total_ms")]
    pub max_total_ms: u64,
}

/// A mapping without `delivery:` gets exactly what `delivery: {}` gives: the serde defaults of
/// every key (a derived `Default` would make the timeouts 0).
impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            retry: Retry::default(),
            rate_limit: None,
            concurrency: None,
            timeout_ms: default_timeout_ms(),
            max_total_ms: default_max_total_ms(),
        }
    }
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_max_total_ms() -> u64 {
    120_000
}

/// Retry rules.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Statuses that are retried; any other non-2xx status is a permanent failure.
    /// Connection errors and timeouts are always retried.
    #[serde(default = "default_retry_statuses")]
    pub on_status: Vec<u16>,
    /// Wait as long as the destination's `Retry-After` (or `X-RateLimit-Reset`) header asks.
    #[serde(default = "yes")]
    pub respect_retry_after: bool,
    /// Attempts per request, the first included.
    #[serde(default = "default_max_attempts")]
    #[schemars(range(min = 1))]
    pub max_attempts: u32,
    /// First backoff, in milliseconds; it doubles per attempt, with full jitter.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Longest backoff between two attempts, in milliseconds.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            on_status: default_retry_statuses(),
            respect_retry_after: true,
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

fn default_retry_statuses() -> Vec<u16> {
    vec![408, 429, 500, 502, 503, 504]
}
fn yes() -> bool {
    true
}
fn default_max_attempts() -> u32 {
    5
}
fn default_initial_backoff_ms() -> u64 {
    1_000
}
fn default_max_backoff_ms() -> u64 {
    30_000
}

/// A request rate ceiling.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per window.
    #[schemars(range(min = 1))]
    pub requests: u32,
    /// Length of the window in seconds.
    #[schemars(range(min = 1))]
    pub per_seconds: u32,
}

/// One kind of request this destination receives.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// What this action is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Which events this action handles. Every condition given must hold.
    pub when: Selector,
    /// Events this action refuses, each with its reason: an event a rule's `when` holds for
    /// fails the action with that reason (a template over `event` and `settings`), before any
    /// request is planned, e.g. `{ when: { blank: [$.userId, $.traits.email] }, reason: userId
    /// or email is required }`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refuse: Vec<Refusal>,
    /// One request per item of a list, read from the event or a setting (`$settings.NAME`):
    /// inside the request, `$item` paths read the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<ForEach>,
    /// The request to plan for a matching event. Give either `request` or `steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// Named steps, run in order, for an action that needs more than one request: a step may
    /// read the responses of earlier steps (`response:` in its `when` and in its fields) and is
    /// skipped when its `when` does not hold. Give either `request` or `steps`.
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub steps: Ordered<Step>,
    /// Values to remember after this action maps an event, for later events to `recall`,
    /// keyed by a store name, e.g. `email: { key: $.userId, value: $.traits.email }`.
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub remember: Ordered<Remember>,
    /// Key the destination or delivery layer may use to drop duplicates, e.g. `$.messageId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_key: Option<Field>,
    /// How planned requests of this action may be merged into one HTTP request: a rule written
    /// here, or the name of a rule under `batches` shared with other actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchRef>,
    /// How a response says the request failed although its status is 2xx, e.g. Mixpanel's
    /// `200 {"status": 0, "error": "..."}`: one rule, or a list of them, the first whose `when`
    /// holds deciding (e.g. TikTok's throttling code, retried, before its other codes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<OneOrMany<FailureRule>>,
}

/// A reason to refuse an event.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    /// The event is refused when these conditions hold.
    pub when: Selector,
    /// Why: a template over `event` and `settings`, e.g. `event {{ event.event }} is not valid`.
    pub reason: String,
}

/// The list an action plans one request per item of.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ForEach {
    /// A path to the list, e.g. `$.properties.products` or `$settings.event_mappings`.
    Path(String),
    /// A list and which of its items to keep.
    Filtered(ForEachRule),
}

/// A list and which of its items to keep.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForEachRule {
    /// A path to the list, e.g. `$settings.event_mappings`.
    pub each: String,
    /// Only the items for which these conditions hold; `$item` paths read the item, e.g.
    /// `{ same: [$item.from, $.event] }`.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<Box<Selector>>,
    /// One name and a field, read for each item kept (`$item` being the item): every value it
    /// gives is a run of the action (a list gives one per member, one value one, nothing none),
    /// whose `$item` is the item with that value as the member of that name, e.g.
    /// `{ group_id: { from: $.traits, member: $item.groupKey } }` for one request per group a
    /// trait lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unnest: Option<Ordered<Field>>,
}

/// How a 2xx response says that the request failed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureRule {
    /// The request failed when these conditions hold, read against the response: `$.status`,
    /// `$.headers` (names in lower case) and `$.body`, e.g. `{ equals: { $.body.status: 0 } }`.
    pub when: Selector,
    /// JSONPath in the response to the reason, e.g. `$.body.error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Send the request again later (as after a 5xx) instead of dead-lettering it at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry: bool,
}

/// One step of a multi-step action.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// What this step is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When this step runs; with `response: STEP`, the paths of `exists`, `missing` and `equals`
    /// read that earlier step's response (`$.status`, `$.headers`, `$.body`). A step that reads
    /// the response of a step that did not run is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Selector>,
    /// The request this step makes.
    pub request: Request,
    /// How requests of this step merge into one HTTP request: a rule, or the name of one under
    /// `batches`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchRef>,
    /// How a 2xx response to this step says that it failed: one rule, or a list of them, the
    /// first whose `when` holds deciding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<OneOrMany<FailureRule>>,
}

/// A batch rule written in place, or the name of a shared one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum BatchRef {
    /// The name of a rule under the mapping's `batches`: requests of every action that names it
    /// merge together.
    Named(String),
    /// A rule for this action's (or step's) requests only.
    Rule(Box<Batch>),
}

/// How planned requests merge into one HTTP request. Requests merge only when their method, URL,
/// headers (credentials included), the parts of their bodies that are not merged, and `key` are
/// all equal.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// JSON body arrays whose items are concatenated, e.g. `[attributes, events, purchases]`;
    /// every other body key must be equal for requests to merge. With a JSON object or form
    /// body, give `concat` or `wrap`; a `json_array` or `ndjson` body merges its items without
    /// either.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub concat: Vec<String>,
    /// Each planned body becomes one item of a JSON array under this key, e.g. `events`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap: Option<String>,
    /// Most items in one request: per array with `concat`, in the array with `wrap`.
    #[schemars(range(min = 1))]
    pub max_items: u32,
    /// Largest merged body, in bytes; `http.max_body_bytes` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Longest time an item waits for its batch to fill, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linger_ms: Option<u64>,
    /// An extra batch key, a template over `event` and `settings`: only requests with the same
    /// key merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Where a successful (2xx) response lists items that failed, so that only those are
    /// retried or dead-lettered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_errors: Option<ItemErrors>,
}

/// Failed items in a 2xx response body, e.g. Braze's
/// `{"errors": [{"type": "...", "input_array": "events", "index": 2}]}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemErrors {
    /// Besides 2xx: statuses whose response lists the failed items, the others being delivered,
    /// e.g. Mixpanel's `400` with `failed_records`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OneOrMany<u16>>,
    /// JSONPath to the list of errors in the response body, e.g. `$.errors`.
    pub list: String,
    /// JSONPath, within one error, to the 0-based index of the failed item in its array.
    pub index: String,
    /// JSONPath, within one error, to the name of the array the index counts in (with `concat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<String>,
    /// JSONPath, within one error, to the reason, e.g. `$.type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Conditions on an event. All given conditions must hold; an empty selector matches every event.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Message type, or a list of them: `identify`, `track`, `page`, `screen`, `group`, `alias`,
    /// `delete`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"track")]
    pub kind: Option<OneOrMany<String>>,
    /// Event name, a list of them (exact, case-sensitive match), or `{ setting: NAME }` naming a
    /// list setting; `"*"` in a list matches every event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"Order Completed")]
    pub event: Option<Names>,
    /// JSONPath (or list of them) that must each select a non-null value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<OneOrMany<String>>,
    /// JSONPath to value: each path must select exactly this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<BTreeMap<String, Value>>,
    /// JSONPath to regular expression: each path must select text (or a number) that the
    /// expression matches somewhere, e.g. `{ $.context.userAgent: "Mobile" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<BTreeMap<String, String>>,
    /// JSONPath to a type or a list of them (`string`, `number`, `integer`, `boolean`, `list`,
    /// `object`): each path must select a value of one of them, e.g.
    /// `{ $.properties.category: object }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is: Option<BTreeMap<String, OneOrMany<ValueType>>>,
    /// JSONPath to a window around the current time: each path must select a time (ISO-8601
    /// text, or a unix number in `unit`) more than `past` before now or more than `future`
    /// after it, e.g. `{ $.timestamp: { past: 72h, future: 15m } }` for an event a
    /// destination would refuse as too old or ahead of its clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_outside: Option<BTreeMap<String, TimeWindow>>,
    /// Two JSONPaths that must select equal values, e.g. `[$item.from, $.event]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 2))]
    pub same: Option<Vec<String>>,
    /// Two JSONPaths: the value the first selects must be one of the list the second selects
    /// (or equal it, when that is one value), e.g. `[$key, $computed.fields_to_append]` in an
    /// `entries`' `where`. Texts compare as `loose` says.
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 2))]
    pub among: Option<Vec<String>>,
    /// JSONPath (or list of them) that must each select nothing, or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<OneOrMany<String>>,
    /// Setting name to value: each setting must hold exactly this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<BTreeMap<String, Value>>,
    /// Holds when an earlier event remembered a value under this store and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recalled: Option<Recall>,
    /// In a step's `when`: the earlier step whose response `exists`, `missing`, `equals` and
    /// `status` read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// With `response`: the response status, or a list of them, e.g. `404` or `[200, 201]`. A
    /// step that names a non-2xx status handles it, so that status is not a delivery failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OneOrMany<u16>>,
    /// JSONPath (or list of them) that must each select a value that is not null, `""`, `[]`
    /// or `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filled: Option<OneOrMany<String>>,
    /// JSONPath (or list of them) that must each select nothing, null, `""`, `[]` or `{}`, e.g.
    /// an empty `userId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blank: Option<OneOrMany<String>>,
    /// Conditions that must not all hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<Selector>>,
    /// Selectors of which at least one must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<Selector>,
    /// Selectors that must all hold (for grouping inside `any` and `not`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<Selector>,
    /// Match `event` names, `equals` and `same` texts without regard to letter case and
    /// surrounding white space (`true`: `order completed ` matches `Order Completed`), or to
    /// letter case only (`case`), here and in every nested selector.
    #[serde(default, skip_serializing_if = "Loose::is_strict")]
    pub loose: Loose,
}

/// How loosely texts are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Loose {
    /// `true`: without regard to letter case and surrounding white space; `false`: exactly.
    Flag(bool),
    /// Without regard to letter case only.
    Only(LooseCase),
}

impl Default for Loose {
    fn default() -> Self {
        Loose::Flag(false)
    }
}

/// The word `case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LooseCase {
    /// Without regard to letter case, spaces kept.
    Case,
}

impl Loose {
    /// Whether texts are compared exactly.
    pub fn is_strict(&self) -> bool {
        matches!(self, Loose::Flag(false))
    }
}

/// How `format_time` writes a time: a strftime pattern (in UTC), or a pattern and the time zone
/// the time is written in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TimeFormat {
    /// A strftime pattern, the time in UTC: `"%Y-%m-%dT%H:%M:%S"`.
    Pattern(String),
    /// A pattern and a time zone: `{ pattern: "%H:%M %Z", zone: $.context.timezone }`.
    Zoned(ZonedTimeFormat),
}

/// A strftime pattern written in a time zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZonedTimeFormat {
    /// The strftime pattern; `%Z` is the zone's abbreviation at that time (`IST`, `CEST`).
    pub pattern: String,
    /// The IANA time zone (`Asia/Kolkata`), or a JSONPath to the event's (`$.context.timezone`).
    pub zone: String,
}

impl TimeFormat {
    /// The strftime pattern.
    pub fn pattern(&self) -> &str {
        match self {
            TimeFormat::Pattern(pattern) => pattern,
            TimeFormat::Zoned(zoned) => &zoned.pattern,
        }
    }
}

/// Names, written in the mapping or taken from a setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Names {
    /// A single name.
    One(String),
    /// Several names, each written here or the names a list setting holds, e.g.
    /// `[city, { setting: traits_to_increment, member: traits }]`.
    Many(Vec<NameItem>),
    /// The names in a list setting: its items, or each item's `member`.
    Setting(SettingNames),
}

/// One entry of a list of names: a name, or the names a list setting holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum NameItem {
    /// A name as written.
    Name(String),
    /// The names a list setting holds (none when a connection leaves it unset).
    Setting(SettingNames),
    /// In a bucket's `except` only: the names an event value holds, per event.
    Path(PathNames),
    /// In a bucket's `only` and `except` only: every name a regular expression matches.
    Pattern(PatternNames),
}

/// The names a regular expression matches somewhere, e.g. `{ matches: "^(google_|ga_)" }` for
/// the names that start with a reserved prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatternNames {
    /// The regular expression.
    pub matches: String,
}

/// The names an event value holds: the text, or the texts of a list, that a JSONPath selects,
/// e.g. `{ path: $.integrations.Klaviyo.fieldsToAppend }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathNames {
    /// The JSONPath.
    pub path: String,
}

/// The names a `list` setting holds: its items (texts, or the `from` of `{from, to}` pairs), or
/// with `member` the member of that name of each item, e.g. `{ setting: prop_increments,
/// member: property }` reads `counter` from `[{property: counter}]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingNames {
    /// The setting's name; it must be a `list` setting.
    pub setting: String,
    /// The member of each item (an object) that holds the name; an item that is text is a
    /// name itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

/// A reference to a setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingRef {
    /// The setting's name.
    pub setting: String,
}

/// One value or a list of values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// Several values.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The values as a slice.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(one) => std::slice::from_ref(one),
            OneOrMany::Many(many) => many,
        }
    }
}

/// An HTTP request template.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Path after `http.base_url`, starting with `/`. A template over `event` and `settings`;
    /// every interpolated value is URL-encoded as one path segment.
    #[schemars(example = &"/v6/events")]
    pub path: String,
    /// Query parameters, mapped like body fields; values are URL-encoded.
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub query: Ordered<Field>,
    /// Extra headers for this action: templates over `event` and `settings`. A header named
    /// like one of `http.headers` or of the auth (in any case) replaces it.
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub headers: Ordered<String>,
    /// How this request authenticates, instead of `http.auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Body fields, keyed by output name, written in this order: the object sent, or with
    /// `format: json_array` or `ndjson` the one item sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Ordered<Field>>,
    /// How the body is encoded.
    #[serde(default)]
    pub format: BodyFormat,
}

/// HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum Method {
    /// GET
    GET,
    /// POST
    POST,
    /// PUT
    PUT,
    /// PATCH
    PATCH,
    /// DELETE
    DELETE,
}

impl Method {
    /// The method as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
        }
    }
}

/// Body encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// A JSON object (`Content-Type: application/json`).
    #[default]
    Json,
    /// A JSON array of the objects `body` makes (`Content-Type: application/json`): one per
    /// request, several in a batch.
    JsonArray,
    /// Newline-delimited JSON, one object a line (`Content-Type: application/x-ndjson`): one
    /// line per request, several in a batch.
    Ndjson,
    /// URL-encoded form fields (`Content-Type: application/x-www-form-urlencoded`); a field
    /// holding a list or an object is sent as compact JSON text.
    Form,
}

impl BodyFormat {
    /// The name used in mapping files.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyFormat::Json => "json",
            BodyFormat::JsonArray => "json_array",
            BodyFormat::Ndjson => "ndjson",
            BodyFormat::Form => "form",
        }
    }
}

/// How one output value is produced.
///
/// Give exactly one source: `from` (optionally with `recall` or `now` as a last fallback, or
/// with `response`), `from_setting`, `value`, `template`, `setting`, `now`, `fields`, `group`,
/// `rest_of`, `items`, `each`, `entries` or `recall`. `fields`, `group` and `rest_of` may be
/// combined. Then, in this order: a missing value takes `default`, or fails when `required`, or
/// is omitted; `remap`, `transform`, `capture`, `user_agent`, `truncate`, `split`, `count`,
/// `to_object`, `as` and `format_time` shape a present value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The field is written only when these conditions hold (read in the field's own scope: the
    /// event, or the item inside `each`); otherwise it is left out as if it were missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Selector>,
    /// JSONPath into the event, or a list of them: the first that selects a non-null value wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"$.traits.email")]
    pub from: Option<OneOrMany<String>>,
    /// With `from`: take, from the object selected, the member named by the text at this path,
    /// e.g. `{ from: $, member: $.identifier }` reads `2` from `{identifier: id, id: 2}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// With `from`: a query (filter, wildcard) gives its first match instead of the list of its
    /// matches, e.g. `$.context.externalId[?(@.type=='brazeExternalId')].id`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub first: bool,
    /// With `from`: read the response of this earlier step (`$.status`, `$.headers`, `$.body`)
    /// instead of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// A `path` setting holding the JSONPath to read, so that each connection chooses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_setting: Option<String>,
    /// A literal value, sent as written; `value: null` sends JSON `null`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<Value>,
    /// A template producing a string, over `event` and `settings`, or `{ setting: NAME }` for
    /// the template a `template` setting holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"{{ event.traits.firstName }} {{ event.traits.lastName }}")]
    pub template: Option<TemplateSource>,
    /// The current time as ISO-8601 text (`ferry map --now` and golden cases pin it); with
    /// `from`, used when no path selects a value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub now: bool,
    /// The value of a setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
    /// A nested object with these fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Ordered<Field>>,
    /// A nested object with the fields of this group (from the mapping's `groups`), before any
    /// `fields` given here; a field here with the same name replaces the group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// With `fields`, `group` or `rest_of`: JSONPath to an object (or a list, the first present
    /// wins) that `$` means inside this object, e.g. `$.properties` to shape the product a
    /// `Product Viewed` event carries in its properties like the items of `products`. The object
    /// is missing when none is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<OneOrMany<String>>,
    /// Write this object's members (its fields, group and bucket) into the enclosing object
    /// instead of under this field's name, e.g. every trait as a top-level attribute. On an entry
    /// of `items`: a list it gives adds its members to the enclosing list, one value itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spread: bool,
    /// JSONPath to an object, or a list of them (the first that selects an object wins): one
    /// output member per entry of it, named by `key` (the entry's own key by default) and shaped
    /// by the other keys of this field, where `$` is the entry's value and `$key` its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<OneOrMany<String>>,
    /// With `each` or `entries`: only the items (or entries) for which these conditions hold,
    /// read with `$` as the item.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<Box<Selector>>,
    /// The output name, computed: a text field such as `{ from: $key, transform: [snake_case] }`
    /// or `{ template: "group_{{ event.groupId }}" }`, instead of the name written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Box<Field>>,
    /// JSONPath to an object, or a list of them (the first that selects an object wins): every
    /// key of it that no other field of this action reads goes into this object (the catch-all
    /// bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"$.traits")]
    pub rest_of: Option<OneOrMany<String>>,
    /// With `rest_of`: only these keys go into the bucket, written here, `{ setting: NAME }`, or
    /// `{ matches: REGEX }` for the names a regular expression matches; `"*"` allows every key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<Names>,
    /// With `rest_of`: keys that never go into the bucket, written here, `{ setting: NAME }`,
    /// `{ path: $... }` for the names an event value lists, or `{ matches: REGEX }` for the
    /// names a regular expression matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<Names>,
    /// With `rest_of`: a prefix added to every bucketed key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// With `rest_of`: nested objects become `parent_child` keys (`true`), or as the rule says:
    /// `{ separator: ".", lists: "[{i}]" }` joins keys with `.` and flattens lists too, each
    /// item's index written by the pattern (`items[0].sku`).
    #[serde(default, skip_serializing_if = "Flatten::is_off")]
    pub flatten: Flatten,
    /// With `rest_of`: the names in `only` and `except` are dotted paths into the object
    /// (`address.city`). `only` takes the value at each path it lists, named by the path as
    /// written; `except` leaves out the member at each path, and keeps the rest of the object
    /// that holds it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dotted: bool,
    /// JSONPath to a list: the field becomes a list with one entry per item, each mapped by the
    /// other keys of this field (`from`, `fields`, `template`...), where `$` and `event` mean the
    /// item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"$.properties.products")]
    pub each: Option<String>,
    /// With `each`: a single value (an object, a text, a number, a boolean) where the list is
    /// expected counts as a list of one, e.g. one email or several, hashed item by item.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub single_as_list: bool,
    /// With `each`: a single value where the list is expected is shaped like an item and sent
    /// alone, not in a list, e.g. one phone as text and several as a list, each hashed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_single: bool,
    /// With `each` and a value per item: the sum of the items' values (numbers, or numeric
    /// text) instead of the list, e.g. the revenue of an order's products.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sum: bool,
    /// A list with one entry per field given here, in order; entries that are omitted are left
    /// out, e.g. Braze's `attributes: { items: [ { fields: {...} } ] }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Field>>,
    /// A value remembered by an earlier event's action; used after `from` finds nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<Recall>,
    /// Value used when the source is missing (or null); `default: null` sends JSON `null`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<Value>,
    /// A missing value (an empty object or list, for those) fails the event's action with an
    /// error naming this field (`true`), or skips the action for the event (`skip`).
    #[serde(default, skip_serializing_if = "Required::is_no")]
    pub required: Required,
    /// Send an explicit JSON `null` when the source holds `null` (normally null counts as
    /// missing): `true` when no path selects another value, `first` when the first path
    /// present holds `null`, whatever later paths hold.
    #[serde(default, skip_serializing_if = "KeepNull::is_no")]
    pub keep_null: KeepNull,
    /// Treat `""`, `[]` and `{}` as missing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub omit_empty: bool,
    /// Replace the value through a lookup table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remap: Option<Remap>,
    /// Text transforms applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transform: Vec<Transform>,
    /// The first match of a regular expression in the text: its first group when it has
    /// groups, else the whole match; no match makes the value missing, e.g.
    /// `"Chrome/([0-9.]+)"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
    /// A part of a user-agent text, read by a maintained user-agent parser: `browser`,
    /// `browser_version`, `os`, `os_version` or `device`; an unknown part makes the value missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<UserAgentPart>,
    /// Keep at most this many characters of the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<usize>,
    /// Text split at this separator into a list of trimmed texts, empty ones left out, e.g.
    /// `"a, b"` -> `["a", "b"]` with `split: ","`; a list is kept as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// The number of items of a list (members of an object, characters of a text).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub count: bool,
    /// A list of names becomes an object with each name as a key holding this value, e.g.
    /// `[email]` -> `{"email": "-"}` with `to_object: "-"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_object: Option<Value>,
    /// Convert the value to this type; a value that cannot be converted is a per-event error
    /// unless `on_invalid` says otherwise.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub convert: Option<Conversion>,
    /// The number multiplied by the number (or numeric text) this JSONPath selects, by 1 when
    /// it selects nothing, e.g. a price `times: $.quantity`; integers give an integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<String>,
    /// A number rounded to this many decimal places (half away from zero), e.g. `12.345` ->
    /// `12.35` with `round: 2`; numeric text is read as a number, an integer is kept as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u8>,
    /// A time (ISO-8601 text or a unix number in `time_unit`) written with this strftime
    /// pattern, in UTC, e.g. `"%Y-%m-%dT%H:%M:%S"`; or `{ pattern, zone }` in a time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_time: Option<TimeFormat>,
    /// Operations in the order written, instead of `remap`, `transform`, `capture`,
    /// `user_agent`, `truncate`, `split`, `count`, `to_object`, `as`, `times`, `round` and `format_time` (which
    /// apply in that fixed order), and `must_be` checks at any point, e.g.
    /// `[{ must_be: string }, { transform: [trim, lower] }, { remap: {...} }]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apply: Vec<Operation>,
    /// What a value that cannot be converted or transformed becomes: `fail` the action (the
    /// default), `omit` the field, `keep` it unchanged, or read the `next` path of `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_invalid: Option<OnInvalid>,
    /// The type the value must have, checked after shaping: an event whose value has another
    /// type fails this action with a reason naming the field, e.g. `email: 123`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_be: Option<ValueType>,
    /// How time conversions (`as: iso8601`, `date`, `unix_*`, `format_time`) read a number: as
    /// unix seconds (the default), milliseconds or microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_unit: Option<TimeUnit>,
}

/// One operation of `apply`: give exactly one key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct Operation {
    /// Replace the value through a lookup table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remap: Option<Remap>,
    /// Text transforms, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<OneOrMany<Transform>>,
    /// The first match of a regular expression (its first group, if it has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
    /// A part of a user-agent text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<UserAgentPart>,
    /// Keep at most this many characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<usize>,
    /// Text split at this separator into a list of trimmed texts; a list is kept as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// The number of items (members, characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<bool>,
    /// A list of names becomes an object of those keys holding this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_object: Option<Value>,
    /// Convert the value to this type.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub convert: Option<Conversion>,
    /// The number multiplied by the number this JSONPath selects (1 when it selects nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<String>,
    /// A number rounded to this many decimal places.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u8>,
    /// A time written with this strftime pattern, in UTC; or `{ pattern, zone }` in a time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_time: Option<TimeFormat>,
    /// Check the type of the value at this point: a value of another type fails the action,
    /// naming the field, e.g. `{ must_be: string }` before `transform: [lower]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_be: Option<ValueType>,
}

/// `true`, `false`, or `skip`: whether a missing value fails the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Required {
    /// `true`: a missing value fails the action; `false`: it is left out.
    Flag(bool),
    /// `skip`: a missing value skips the action for this event.
    Skip(SkipWord),
}

/// The word `skip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipWord {
    /// Skip the action for this event.
    Skip,
}

impl Default for Required {
    fn default() -> Self {
        Required::Flag(false)
    }
}

impl Required {
    /// Whether a missing value is simply left out.
    pub fn is_no(&self) -> bool {
        *self == Required::Flag(false)
    }
}

/// `true`, `false`, or `first`: when an explicit `null` is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum KeepNull {
    /// `true`: `null` when no path selects another value; `false`: never.
    Flag(bool),
    /// `first`: `null` when the first path present holds it.
    First(FirstWord),
}

/// The word `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FirstWord {
    /// The first path present wins, even when it holds `null`.
    First,
}

impl Default for KeepNull {
    fn default() -> Self {
        KeepNull::Flag(false)
    }
}

impl KeepNull {
    /// Whether `null` counts as missing.
    pub fn is_no(&self) -> bool {
        *self == KeepNull::Flag(false)
    }
}

/// `true`, `false`, or a rule: how a bucket flattens nested values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Flatten {
    /// `true`: nested objects become `parent_child` keys, lists are kept; `false`: nothing is
    /// flattened.
    Flag(bool),
    /// Keys joined by a separator of your choice, and lists flattened too when `lists` says
    /// how to write an item's index.
    Rule(FlattenRule),
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten::Flag(false)
    }
}

impl Flatten {
    /// Whether nothing is flattened.
    pub fn is_off(&self) -> bool {
        *self == Flatten::Flag(false)
    }
}

/// How a bucket flattens nested values, e.g. `{ separator: ".", lists: "[{i}]" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlattenRule {
    /// What joins a parent key and a child key: `_` when not given, e.g. `.` for
    /// `friend.names.first`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    /// How a list item's key is written after the list's own, `{i}` standing for its 0-based
    /// index: `"[{i}]"` gives `items[0]`, `"_{i}"` gives `tags_0`. Without it, lists are kept
    /// as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"[{i}]")]
    pub lists: Option<String>,
}

/// A value that was written, `null` included (serde reads a `null` as an absent `Option`).
fn present<'de, D>(deserializer: D) -> Result<Option<Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Value::deserialize(deserializer).map(Some)
}

/// A template written in place, or held by a `template` setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TemplateSource {
    /// The template text.
    Text(String),
    /// The template a `template` setting holds.
    Setting(SettingRef),
}

/// A part of a user-agent text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserAgentPart {
    /// The browser's name, e.g. `Chrome`.
    Browser,
    /// The browser's version, e.g. `79.0.3945.117`.
    BrowserVersion,
    /// The operating system's name, e.g. `Mac OSX`.
    Os,
    /// The operating system's version, e.g. `10.15.2`.
    OsVersion,
    /// The kind of device: `pc`, `smartphone`, `mobilephone`, `appliance`, `crawler` or `misc`.
    Device,
}

/// What happens to a value that cannot be converted or transformed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    /// Fail this action for the event, naming the field.
    #[default]
    Fail,
    /// Leave the field out; the rest of the request is sent.
    Omit,
    /// Send the value as it was before the operation that could not handle it.
    Keep,
    /// Read the next path of `from` (then `default`), as if this one selected nothing.
    Next,
}

/// A JSON type a value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// Text.
    String,
    /// Any number.
    Number,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A list.
    List,
    /// An object.
    Object,
}

/// How far from now a time may lie before `time_outside` holds: spans of whole seconds (`90s`),
/// minutes (`15m`), hours (`72h`) or days (`7d`); either bound may be left out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeWindow {
    /// Holds for a time more than this before now, e.g. `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(s|m|h|d)$"))]
    pub past: Option<String>,
    /// Holds for a time more than this after now, e.g. `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(s|m|h|d)$"))]
    pub future: Option<String>,
    /// How a number is read: unix `seconds` (the default), `milliseconds` or `microseconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<TimeUnit>,
}

/// The unit of a unix time number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Seconds since 1970-01-01T00:00:00Z.
    #[default]
    Seconds,
    /// Milliseconds since 1970-01-01T00:00:00Z.
    Milliseconds,
    /// Microseconds since 1970-01-01T00:00:00Z.
    Microseconds,
}

/// Read a remembered value.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recall {
    /// Store name used by an action's `remember`.
    pub name: String,
    /// JSONPath to the key to look up, e.g. `$.userId`.
    pub key: String,
}

/// Remember a value under a key for later events.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Remember {
    /// JSONPath to the key, e.g. `$.userId`; nothing is remembered when it is missing.
    pub key: String,
    /// JSONPath (or list, first present wins) to the value; nothing is remembered when missing.
    pub value: OneOrMany<String>,
}

/// A lookup table.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Remap {
    /// Input value to output value.
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub table: Ordered<Value>,
    /// A `map` setting, or a `list` setting of `{from, to}` pairs, whose entries are added to
    /// `table` (and win over it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
    /// How a value and the table's keys are compared: these text transforms are applied to both
    /// first, e.g. `[lower]` to ignore letter case, `[spaces_to_underscores, lower]` to read
    /// `Order Completed` as `order_completed`.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matching: Vec<Transform>,
    /// Which pair of a `list` setting gives the value when several `from`s match it: the first
    /// (the default) or the last.
    #[serde(default)]
    pub pairs: Pairs,
    /// What happens to a value the table does not list.
    #[serde(default)]
    pub otherwise: Otherwise,
    /// The value used with `otherwise: default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// Which of several `{from, to}` pairs matching a value gives it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pairs {
    /// The first pair in the list.
    #[default]
    First,
    /// The last pair in the list (as a later row of a settings table overrides an earlier one).
    Last,
}

/// The rule for values a remap table does not list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Otherwise {
    /// Send the value unchanged.
    #[default]
    Keep,
    /// Skip this action for the event (reported as skipped, not as an error).
    Drop,
    /// Fail this action for the event with an error.
    Error,
    /// Send the remap's `default`.
    Default,
    /// Leave this field out; the rest of the request is still sent.
    Omit,
    /// Send `null` (which some destinations read as "clear this value"). Written
    /// `send_null`, since a bare `null` in YAML is no value at all.
    #[serde(rename = "send_null")]
    Null,
}

/// A text transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Lower-case.
    Lower,
    /// Upper-case.
    Upper,
    /// Strip leading and trailing white space.
    Trim,
    /// `Order Completed` -> `order_completed`, `firstName` -> `first_name`.
    SnakeCase,
    /// The words (split at runs of white space) joined by `_`, letter case kept:
    /// ` Order  Completed ` -> `Order_Completed`.
    SpacesToUnderscores,
    /// Hex SHA-256 digest of the text.
    Sha256,
    /// Only the digits: `+1 (555) 010-9999` -> `15550109999`.
    Digits,
    /// A phone number in E.164 form: the digits after a `+` (`00` read as `+`), e.g.
    /// `+1 (555) 010-9999` -> `+15550109999`.
    E164,
}

/// A type conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Conversion {
    /// Text; numbers and booleans are written out, lists and objects as JSON text.
    String,
    /// A number, from a number or numeric text.
    Number,
    /// A whole number, from a whole number or integer text.
    Integer,
    /// `true`/`false`, from a boolean or the text `true`/`false`.
    Boolean,
    /// An ISO-8601 time in UTC, from ISO-8601 text or unix seconds/milliseconds.
    Iso8601,
    /// A calendar date `YYYY-MM-DD` (UTC), from a date, ISO-8601 text or a unix number.
    Date,
    /// Unix time in seconds, from ISO-8601 text or a unix number.
    UnixSeconds,
    /// Unix time in milliseconds, from ISO-8601 text or a unix number.
    UnixMillis,
    /// Unix time in microseconds, from ISO-8601 text or a unix number.
    UnixMicros,
    /// A list: a list as it is, any other value as a list of one (`"a"` -> `["a"]`).
    List,
}
