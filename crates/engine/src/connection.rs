//! A connection: one compiled mapping bound to one set of settings. Binding checks every
//! setting and renders what does not depend on events (base URL, auth, shared headers, the
//! paths of requests that read no event value) once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use ferry_spec::did_you_mean;
use ferry_spec::model::SettingType;
use serde_json::{Map, Value};

use crate::checks::{check_base_url, check_header_value, check_setting_value};
use crate::compiled::{
    AuthRule, CompiledMapping, CompiledRequest, HeaderValue, KeySet, Looseness, NameSource,
    RemapSetting,
};
use crate::path::Path;
use crate::plan::Body;
use crate::template::{Context, Escape, Item, RenderError, Template, Templates};

/// A list setting's texts, looked up by `event: { setting: ... }`, `only` and `except`.
#[derive(Debug, Default)]
pub(crate) struct NameList {
    /// The list holds `"*"`.
    pub all: bool,
    pub exact: KeySet,
    /// In lower case, for `loose: case`.
    pub lower: KeySet,
    /// Trimmed and in lower case, for `loose: true`.
    pub loose: KeySet,
    /// The texts in the order of the list, for `only` with `dotted`.
    pub ordered: Vec<Box<str>>,
}

impl NameList {
    pub(crate) fn allows(&self, name: &str, loose: Looseness) -> bool {
        self.all
            || (!name.is_empty()
                && match loose {
                    Looseness::Exact => self.exact.contains(name),
                    Looseness::Case => self.lower.contains(name.to_lowercase().as_str()),
                    Looseness::Loose => self.loose.contains(name.trim().to_lowercase().as_str()),
                })
    }
}

/// What secrets are replaced with wherever ferry shows them.
pub(crate) const REDACTED: &str = "[redacted]";

/// A header of a planned request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub name: Arc<str>,
    /// The value sent.
    pub value: Arc<str>,
    /// The value shown in dry runs and logs when `value` holds a secret.
    pub redacted: Option<Arc<str>>,
}

impl Header {
    /// The value safe to show: redacted when it holds a secret.
    pub fn display_value(&self) -> &str {
        self.redacted.as_deref().unwrap_or(&self.value)
    }
}

/// What a connection renders once for one step of the mapping.
#[derive(Debug)]
pub(crate) struct SlotConstants {
    /// The full URL when the path reads no event value (`None` when it does), or why it
    /// cannot be made (a setting it needs is not set).
    pub url: Result<Option<Box<str>>, String>,
    /// The mapping's headers and the auth's, as this step sends them, or why they cannot be
    /// made.
    pub headers: Result<Arc<[Header]>, String>,
    /// The auth's query parameter, when the auth is one.
    pub query_auth: Option<(Box<str>, Box<str>)>,
}

/// A compiled mapping with its settings.
pub struct Connection {
    pub(crate) mapping: Arc<CompiledMapping>,
    pub(crate) values: Map<String, Value>,
    /// The settings as one object, for `$settings` paths.
    pub(crate) settings_value: Value,
    pub(crate) settings: minijinja::Value,
    redacted_settings: minijinja::Value,
    pub(crate) base_url: Box<str>,
    /// Per step of the mapping (by slot).
    pub(crate) slots: Vec<SlotConstants>,
    /// The paths held by `path` settings, compiled once.
    pub(crate) setting_paths: HashMap<Box<str>, Path>,
    /// The templates held by `template` settings, compiled once.
    setting_templates: (Templates, HashMap<Box<str>, Template>),
    /// The names each of the mapping's name sources holds, as sets, by slot: `None` for a
    /// setting this connection leaves unset (or sets to something other than a list).
    pub(crate) name_lists: Vec<Option<NameList>>,
    /// The tables remap settings hold, by slot: `None` for a setting left unset.
    remap_tables: Vec<Option<HashMap<Box<str>, Value>>>,
    /// `Content-Type` headers of the body formats, made once.
    content_types: [Header; 3],
    /// The time `now` reads, when pinned (dry runs, golden cases).
    clock: Option<SystemTime>,
    secret_names: Vec<String>,
    secrets: Vec<String>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("mapping", &self.mapping.name)
            .field("base_url", &self.redact(&self.base_url))
            .finish_non_exhaustive()
    }
}

/// Settings a connection cannot use: every problem, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The mapping's name.
    pub mapping: String,
    /// What is wrong, one entry per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid settings for mapping `{}`:", self.mapping)?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsError {}

impl Connection {
    /// Binds `mapping` to the `supplied` settings, filling in defaults.
    #[allow(clippy::too_many_lines)]
    pub fn new(
        mapping: Arc<CompiledMapping>,
        supplied: &Map<String, Value>,
    ) -> Result<Connection, SettingsError> {
        let declared = mapping.settings();
        let mut problems = Vec::new();
        for name in supplied.keys() {
            if !declared.contains_key(name) {
                let hint = match did_you_mean(name, declared.keys().map(String::as_str)) {
                    Some(near) => format!("; did you mean `{near}`?"),
                    None if declared.is_empty() => "; this mapping has no settings".to_owned(),
                    None => format!(
                        "; known settings: {}",
                        declared.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                };
                problems.push(format!("unknown setting `{name}`{hint}"));
            }
        }
        let mut values = Map::new();
        let mut setting_paths = HashMap::new();
        let mut templates = Templates::default();
        let mut setting_templates = HashMap::new();
        let mut secret_names = Vec::new();
        let mut secrets = Vec::new();
        for (name, setting) in declared {
            let value = supplied.get(name).or(setting.default.as_ref());
            match value {
                Some(value) => {
                    if let Err(why) = check_setting_value(setting, value) {
                        problems.push(format!("setting `{name}` {why}"));
                    }
                    if setting.secret {
                        collect_secret_text(value, &mut secrets);
                    }
                    match setting.kind {
                        SettingType::Path => match setting_path(name, value) {
                            Ok(Some(path)) => {
                                setting_paths.insert(Box::from(name.as_str()), path);
                            }
                            Ok(None) => {}
                            Err(why) => problems.push(why),
                        },
                        SettingType::Template => {
                            if let Some(text) = value.as_str() {
                                match setting_template(&mut templates, name, text) {
                                    Ok(template) => {
                                        setting_templates
                                            .insert(Box::from(name.as_str()), template);
                                    }
                                    Err(why) => problems.push(why),
                                }
                            }
                        }
                        _ => {}
                    }
                    values.insert(name.clone(), value.clone());
                }
                None if setting.required => problems.push(format!(
                    "missing required setting `{name}`: {}",
                    setting.description
                )),
                None => {}
            }
            if setting.secret {
                secret_names.push(name.clone());
            }
        }
        for (name, setting) in declared {
            if is_set(values.get(name)) {
                continue;
            }
            if let Some(other) = setting
                .required_with
                .iter()
                .find(|other| is_set(values.get(other.as_str())))
            {
                problems.push(format!(
                    "setting `{name}` is required when `{other}` is set: {}",
                    setting.description
                ));
            }
        }
        let remap_tables = mapping
            .remap_settings
            .iter()
            .map(|setting| {
                let secret = declared.get(&*setting.setting).is_some_and(|s| s.secret);
                remap_table(setting, &values, secret, &mut problems)
            })
            .collect();
        if !problems.is_empty() {
            return Err(SettingsError {
                mapping: mapping.name.to_string(),
                problems,
            });
        }
        // Longest first, so a secret containing another is redacted whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut redacted_values = values.clone();
        for name in &secret_names {
            if redacted_values.contains_key(name) {
                redacted_values.insert(name.clone(), Value::String(REDACTED.into()));
            }
        }
        let name_lists = name_lists(&mapping.name_sources, &values);
        let settings = crate::template::template_object(&values);
        let redacted_settings = crate::template::template_object(&redacted_values);
        let name = mapping.name.to_string();
        let fail = |problem: String| SettingsError {
            mapping: name.clone(),
            problems: vec![problem],
        };
        let content_type = |value: &str| Header {
            name: "Content-Type".into(),
            value: value.into(),
            redacted: None,
        };
        let mut connection = Connection {
            mapping,
            settings_value: Value::Object(values.clone()),
            values,
            settings,
            redacted_settings,
            base_url: Box::from(""),
            slots: Vec::new(),
            setting_paths,
            setting_templates: (templates, setting_templates),
            name_lists,
            remap_tables,
            content_types: [
                content_type("application/json"),
                content_type("application/x-ndjson"),
                content_type("application/x-www-form-urlencoded"),
            ],
            clock: None,
            secret_names,
            secrets,
        };
        let base_url = connection
            .render_constant(&connection.mapping.http.base_url)
            .map_err(&fail)?;
        check_base_url(&base_url).map_err(|why| fail(connection.redact(&why).into_owned()))?;
        connection.base_url = base_url.trim_end_matches('/').into();
        // The mapping's own headers and auth are needed by every request: a problem with them
        // refuses the connection.
        connection.shared_headers(None).map_err(&fail)?;
        connection.slots = connection.slot_constants();
        Ok(connection)
    }

    /// Sends every request to `base_url` instead of the mapping's (e.g. a local server while
    /// testing); the path of each request is kept.
    pub fn override_base_url(&mut self, base_url: &str) -> Result<(), SettingsError> {
        check_base_url(base_url).map_err(|why| SettingsError {
            mapping: self.mapping.name.to_string(),
            problems: vec![why],
        })?;
        self.base_url = base_url.trim_end_matches('/').into();
        self.slots = self.slot_constants();
        Ok(())
    }

    /// Pins the time that `now` reads (a dry run or a golden case that must repeat).
    pub fn pin_clock(&mut self, now: SystemTime) {
        self.clock = Some(now);
    }

    /// The current time, or the pinned one, as ISO-8601 text in UTC.
    pub(crate) fn now(&self) -> Value {
        let time = self.now_time();
        Value::String(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }

    /// The current time, or the pinned one.
    pub(crate) fn now_time(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.unwrap_or_else(SystemTime::now).into()
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// What every step of the mapping renders once.
    fn slot_constants(&self) -> Vec<SlotConstants> {
        self.mapping
            .actions
            .iter()
            .flat_map(|action| &action.steps)
            .map(|step| {
                let request = &step.request;
                let url = if request.path.reads_more_than_settings() {
                    Ok(None)
                } else {
                    self.render_constant(&request.path)
                        .map(|path| Some(format!("{}{path}", self.base_url).into()))
                };
                let auth = request.auth.as_ref().or(self.mapping.http.auth.as_ref());
                let query_auth = match auth {
                    Some(AuthRule::Query { name, value }) => match self.render_constant(value) {
                        Ok(value) => Some((name.clone(), value.into())),
                        Err(why) => {
                            return SlotConstants {
                                url,
                                headers: Err(why),
                                query_auth: None,
                            };
                        }
                    },
                    _ => None,
                };
                SlotConstants {
                    url,
                    headers: self.shared_headers(Some(request)).map(Into::into),
                    query_auth,
                }
            })
            .collect()
    }

    /// The auth's header and the mapping's headers, as `request` sends them: its own auth
    /// replaces the mapping's, and replaces a mapping header of the same name.
    fn shared_headers(&self, request: Option<&CompiledRequest>) -> Result<Vec<Header>, String> {
        let mut headers = Vec::with_capacity(self.mapping.http.headers.len() + 1);
        let auth = request
            .and_then(|r| r.auth.as_ref())
            .or(self.mapping.http.auth.as_ref());
        let auth_name = match auth {
            Some(AuthRule::Header { name, value }) => {
                headers.push(self.header(name, value)?);
                Some(name)
            }
            _ => None,
        };
        for (name, template) in &self.mapping.http.headers {
            if auth_name.is_some_and(|auth| auth.eq_ignore_ascii_case(name)) {
                continue;
            }
            headers.push(self.header(name, &HeaderValue::Template(template.clone()))?);
        }
        Ok(headers)
    }

    /// The names a name source holds for this connection; `None` when it leaves the setting
    /// unset.
    pub(crate) fn names_of(&self, source: &NameSource) -> Option<&NameList> {
        self.name_lists.get(source.slot)?.as_ref()
    }

    /// The compiled mapping.
    pub fn mapping(&self) -> &Arc<CompiledMapping> {
        &self.mapping
    }

    /// A setting's value (after defaults).
    pub fn setting(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// `text` with every secret setting value replaced by `[redacted]`.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        out
    }

    /// Whether `template` reads a secret setting.
    pub(crate) fn reads_secret(&self, template: &Template) -> bool {
        template
            .settings
            .iter()
            .any(|s| self.secret_names.contains(s))
    }

    /// The `Content-Type` header of `body`.
    pub(crate) fn content_type(&self, body: &Body) -> Header {
        let at = match body {
            Body::Json(_) | Body::JsonArray(_) => 0,
            Body::Ndjson(_) => 1,
            Body::Form(_) => 2,
        };
        self.content_types[at].clone()
    }

    /// The table a remap setting holds (by [`RemapSetting::slot`]), or `None` when this
    /// connection leaves it unset.
    pub(crate) fn remap_table(&self, slot: usize) -> Option<&HashMap<Box<str>, Value>> {
        self.remap_tables[slot].as_ref()
    }

    fn render_constant(&self, template: &Template) -> Result<String, String> {
        self.render(template, self.no_event()).map_err(|e| match e {
            RenderError::Undefined(name) => match self.missing_in(template, &Value::Null) {
                Some(what) => format!("a template needs {what}"),
                None => format!(
                    "a template reads `{}`, which is missing",
                    self.redact(&name.unwrap_or_default())
                ),
            },
            RenderError::Failed(why) => self.redact(&why).into_owned(),
        })
    }

    fn no_event(&self) -> Context<'_> {
        Context {
            event: None,
            settings: &self.settings,
            computed: None,
            item: None,
            responses: None,
        }
    }

    /// What `template` reads that neither `event` nor the settings have, for a message:
    /// ``the event's `event.userId`, which it lacks`` or ``setting `region`, which is not set``.
    pub(crate) fn missing_in(&self, template: &Template, event: &Value) -> Option<String> {
        if let Some(setting) = template
            .settings
            .iter()
            .find(|s| self.values.get(s.as_str()).is_none_or(Value::is_null))
        {
            return Some(format!("setting `{setting}`, which is not set"));
        }
        template
            .first_missing(event)
            .map(|path| format!("`{path}`, which the event lacks"))
    }

    /// Renders a template with this connection's settings.
    pub(crate) fn render(
        &self,
        template: &Template,
        context: Context<'_>,
    ) -> Result<String, RenderError> {
        self.mapping.templates.render(template, context)
    }

    /// Renders a template for display, with secrets replaced.
    pub(crate) fn render_redacted(
        &self,
        template: &Template,
        event: Option<&Value>,
    ) -> Result<String, RenderError> {
        self.mapping.templates.render(
            template,
            Context {
                event,
                settings: &self.redacted_settings,
                computed: None,
                item: None,
                responses: None,
            },
        )
    }

    /// Renders the template the `template` setting `name` holds; `None` when it is not set.
    pub(crate) fn render_setting_template(
        &self,
        name: &str,
        event: &Value,
        item: Option<Item<'_>>,
    ) -> Option<Result<String, RenderError>> {
        let (templates, by_name) = &self.setting_templates;
        let template = by_name.get(name)?;
        Some(templates.render(
            template,
            Context {
                event: Some(event),
                settings: &self.settings,
                computed: None,
                item,
                responses: None,
            },
        ))
    }

    fn header(&self, name: &Arc<str>, value: &HeaderValue) -> Result<Header, String> {
        let (value, redacted) = match value {
            HeaderValue::Template(template) => {
                let value = self.render_constant(template)?;
                let redacted = if self.reads_secret(template) {
                    Some(
                        self.render_redacted(template, None)
                            .map_err(|_| "cannot render a header".to_owned())?,
                    )
                } else {
                    None
                };
                (value, redacted)
            }
            HeaderValue::Basic { username, password } => {
                let user = self.render_constant(username)?;
                let pass = self.render_constant(password)?;
                let basic = |user: &str, pass: &str| {
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
                    )
                };
                // Shown with only the secret settings' values replaced, so that a dry run
                // says which credential a connection chose.
                let redacted = (self.reads_secret(username) || self.reads_secret(password))
                    .then(|| -> Result<String, String> {
                        let shown = |t: &Template| {
                            self.render_redacted(t, None)
                                .map_err(|_| "cannot render a header".to_owned())
                        };
                        Ok(basic(&shown(username)?, &shown(password)?))
                    })
                    .transpose()?;
                (basic(&user, &pass), redacted)
            }
        };
        check_header_value(name, &value)?;
        Ok(Header {
            name: Arc::clone(name),
            value: value.into(),
            redacted: redacted.map(Into::into),
        })
    }
}

/// Whether a setting has a value that counts as set: not null, not empty.
fn is_set(value: Option<&Value>) -> bool {
    value.is_some_and(|v| match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    })
}

/// The names every name source holds, as sets: a list setting's items (texts, or the `from` of
/// `{from, to}` pairs), or with a member, that member of each item (an item that is text being
/// a name itself).
fn name_lists(sources: &[NameSource], values: &Map<String, Value>) -> Vec<Option<NameList>> {
    sources
        .iter()
        .map(|source| {
            let list = values.get(&*source.setting)?.as_array()?;
            let member = source.member.as_deref().unwrap_or("from");
            let texts = || {
                list.iter().filter_map(|item| match item {
                    Value::Object(object) => object.get(member).and_then(Value::as_str),
                    other => other.as_str(),
                })
            };
            Some(NameList {
                all: texts().any(|t| t == "*"),
                exact: texts().map(Into::into).collect(),
                lower: texts().map(|t| t.to_lowercase().into()).collect(),
                loose: texts().map(|t| t.trim().to_lowercase().into()).collect(),
                ordered: texts().map(Into::into).collect(),
            })
        })
        .collect()
}

/// The table a remap setting holds: a `map`'s entries, or a `list`'s `{from, to}` pairs (a
/// `from` may be a number; a pair without a `to`, or with a `to` that is null or empty text, is
/// an unfinished row and left out), keys through the remap's `match`, the first or the last of
/// a repeated key kept. A key the `match` cannot take is a problem of the settings (named only
/// when the setting is not secret).
fn remap_table(
    rule: &RemapSetting,
    values: &Map<String, Value>,
    secret: bool,
    problems: &mut Vec<String>,
) -> Option<HashMap<Box<str>, Value>> {
    let entries: Vec<(Cow<'_, str>, &Value)> = match values.get(&*rule.setting)? {
        Value::Object(table) => table
            .iter()
            .map(|(from, to)| (Cow::Borrowed(from.as_str()), to))
            .collect(),
        Value::Array(pairs) => pairs
            .iter()
            .filter_map(|pair| {
                let from = match pair.get("from")? {
                    Value::String(s) => Cow::Borrowed(s.as_str()),
                    Value::Number(n) => Cow::Owned(n.to_string()),
                    _ => return None,
                };
                let to = pair
                    .get("to")
                    .filter(|to| !matches!(to, Value::Null) && *to != "")?;
                Some((from, to))
            })
            .collect(),
        _ => return None,
    };
    let mut table = HashMap::with_capacity(entries.len());
    for (from, to) in entries {
        let key = match crate::convert::matched(&from, &rule.matching) {
            Ok(key) => Box::<str>::from(key),
            Err(_) if secret => {
                problems.push(format!(
                    "setting `{}`: a key cannot be matched by the remap's `match`",
                    rule.setting
                ));
                continue;
            }
            Err(why) => {
                problems.push(format!(
                    "setting `{}`: `{from}` cannot be matched: {why}",
                    rule.setting
                ));
                continue;
            }
        };
        if rule.last_wins || !table.contains_key(&key) {
            table.insert(key, to.clone());
        }
    }
    Some(table)
}

/// Compiles the path a `path` setting holds: a JSONPath, or a dotted path.
fn setting_path(name: &str, value: &Value) -> Result<Option<Path>, String> {
    let Some(text) = value.as_str() else {
        return Ok(None);
    };
    if !text.starts_with('$') {
        return Path::from_dotted(text)
            .map(Some)
            .ok_or_else(|| format!("setting `{name}` is not a path: `{text}` has an empty part"));
    }
    match Path::parse(text) {
        Ok(path)
            if matches!(
                path.root(),
                crate::path::Root::Scope | crate::path::Root::Event
            ) =>
        {
            Ok(Some(path))
        }
        Ok(_) => Err(format!(
            "setting `{name}` must be a path into the event, `$.` or `$event.`, not `{text}`"
        )),
        Err(why) => Err(format!(
            "setting `{name}` is not a valid JSONPath: {}",
            why.lines().next().unwrap_or_default()
        )),
    }
}

/// Compiles the template a `template` setting holds, under the mapping's template rules.
fn setting_template(templates: &mut Templates, name: &str, text: &str) -> Result<Template, String> {
    let (template, unknown) = templates
        .add(text, Escape::None)
        .map_err(|why| format!("setting `{name}` is not a valid template: {why}"))?;
    if let Some(unknown) = unknown.first() {
        return Err(format!(
            "setting `{name}`: the template uses `{}`, which does not exist (templates read `event` and `settings`)",
            unknown.name()
        ));
    }
    if template.reads_computed {
        return Err(format!(
            "setting `{name}`: a template setting reads `event` and `settings`, not `computed`"
        ));
    }
    Ok(template)
}

/// Secrets shorter than this are not searched for in free text (a one-letter "secret" would
/// redact every occurrence of that letter); headers built from them are still redacted whole.
const MIN_SCRUBBED_LEN: usize = 4;

fn collect_secret_text(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.len() >= MIN_SCRUBBED_LEN => {
            out.push(s.clone());
            // Inside JSON bodies the secret appears escaped, and in URLs encoded.
            let escaped = serde_json::to_string(s).expect("a string serializes");
            let escaped = &escaped[1..escaped.len() - 1];
            if escaped != s {
                out.push(escaped.to_owned());
            }
            let encoded: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
            if encoded != *s {
                out.push(encoded);
            }
        }
        Value::Number(n) if n.to_string().len() >= MIN_SCRUBBED_LEN => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| collect_secret_text(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_secret_text(v, out)),
        _ => {}
    }
}

/// Reads a setting given as text (`--set name=value`): text, path and template settings take it
/// as written; the others parse it as YAML (`42`, `true`, `[a, b]`, `{a: b}`).
pub fn setting_from_text(
    mapping: &CompiledMapping,
    name: &str,
    text: &str,
) -> Result<Value, String> {
    match mapping.settings().get(name).map(|s| s.kind) {
        Some(SettingType::String | SettingType::Path | SettingType::Template) | None => {
            Ok(Value::String(text.to_owned()))
        }
        Some(_) => serde_yaml::from_str::<Value>(text)
            .map_err(|e| format!("setting `{name}`: cannot read `{text}`: {e}")),
    }
}
