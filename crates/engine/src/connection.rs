//! A connection: one compiled mapping bound to one set of settings. Binding checks every
//! setting and renders what does not depend on events (base URL, auth, shared headers) once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use ferry_spec::did_you_mean;
use ferry_spec::model::SettingType;
use serde_json::{Map, Value};

use crate::checks::{check_base_url, check_header_value, check_setting_value};
use crate::compiled::{CompiledMapping, FastHash, HeaderValue, KeySet};
use crate::path::Path;
use crate::template::{RenderError, Template};

/// A list setting's texts, looked up by `event: { setting: ... }` and `only: { setting: ... }`.
#[derive(Debug, Default)]
pub(crate) struct NameList {
    /// The list holds `"*"`.
    pub all: bool,
    pub exact: KeySet,
    /// Trimmed and in lower case, for loose matching.
    pub loose: KeySet,
}

/// What secrets are replaced with wherever ferry shows them.
pub const REDACTED: &str = "[redacted]";

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

/// A compiled mapping with its settings.
pub struct Connection {
    pub(crate) mapping: Arc<CompiledMapping>,
    pub(crate) values: Map<String, Value>,
    pub(crate) settings: minijinja::Value,
    redacted_settings: minijinja::Value,
    pub(crate) base_url: Box<str>,
    pub(crate) headers: Arc<[Header]>,
    /// Full URL of each step whose path does not read the event, rendered once.
    pub(crate) paths: Vec<Option<Box<str>>>,
    /// The paths held by `path` settings, compiled once.
    pub(crate) setting_paths: HashMap<Box<str>, Path>,
    /// The texts of `list` settings, as sets, for selectors that match names against them.
    pub(crate) name_lists: HashMap<Box<str>, NameList, FastHash>,
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
    pub fn new(
        mapping: Arc<CompiledMapping>,
        supplied: &Map<String, Value>,
    ) -> Result<Connection, SettingsError> {
        let declared = &mapping.spec.settings;
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
                    if setting.kind == SettingType::Path {
                        match setting_path(name, value) {
                            Ok(Some(path)) => {
                                setting_paths.insert(Box::from(name.as_str()), path);
                            }
                            Ok(None) => {}
                            Err(why) => problems.push(why),
                        }
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
        let name_lists = name_lists(&values);
        let settings = crate::template::template_object(&values);
        let redacted_settings = crate::template::template_object(&redacted_values);
        let name = mapping.name.to_string();
        let fail = |problem: String| SettingsError {
            mapping: name.clone(),
            problems: vec![problem],
        };
        let mut connection = Connection {
            mapping,
            values,
            settings,
            redacted_settings,
            base_url: Box::from(""),
            headers: Arc::from(Vec::new()),
            paths: Vec::new(),
            setting_paths,
            name_lists,
            secret_names,
            secrets,
        };
        let base_url = connection
            .render_constant(&connection.mapping.base_url)
            .map_err(&fail)?;
        check_base_url(&base_url).map_err(|why| fail(connection.redact(&why).into_owned()))?;
        connection.base_url = base_url.trim_end_matches('/').into();
        let headers = connection
            .mapping
            .headers
            .iter()
            .map(|(name, value)| connection.header(name, value))
            .collect::<Result<Vec<_>, _>>()
            .map_err(&fail)?;
        connection.headers = headers.into();
        connection.paths = connection.constant_urls().map_err(&fail)?;
        Ok(connection)
    }

    /// Sends every request to `base_url` instead of the mapping's (e.g. a local server while
    /// testing); the path of each request is kept.
    pub fn override_base_url(&mut self, base_url: &str) -> Result<(), SettingsError> {
        let fail = |problem: String| SettingsError {
            mapping: self.mapping.name.to_string(),
            problems: vec![problem],
        };
        check_base_url(base_url).map_err(fail)?;
        self.base_url = base_url.trim_end_matches('/').into();
        self.paths = self.constant_urls().map_err(|why| SettingsError {
            mapping: self.mapping.name.to_string(),
            problems: vec![why],
        })?;
        Ok(())
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The full URL of every step whose path does not read the event.
    fn constant_urls(&self) -> Result<Vec<Option<Box<str>>>, String> {
        self.mapping
            .actions
            .iter()
            .flat_map(|action| &action.steps)
            .map(|step| {
                if step.request.path.reads_event() {
                    return Ok(None);
                }
                let path = self.render_constant(&step.request.path)?;
                Ok(Some(format!("{}{path}", self.base_url).into()))
            })
            .collect()
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

    fn render_constant(&self, template: &Template) -> Result<String, String> {
        self.render(template, None).map_err(|e| match e {
            RenderError::Undefined(why) => match self.missing_in(template, &Value::Null) {
                Some(what) => format!("a template needs {what}"),
                None => self.redact(&why).into_owned(),
            },
            RenderError::Failed(why) => self.redact(&why).into_owned(),
        })
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
        event: Option<&Value>,
    ) -> Result<String, RenderError> {
        self.mapping
            .templates
            .render(template, event, &self.settings)
    }

    /// Renders a template for display, with secrets replaced.
    pub(crate) fn render_redacted(
        &self,
        template: &Template,
        event: Option<&Value>,
    ) -> Result<String, RenderError> {
        self.mapping
            .templates
            .render(template, event, &self.redacted_settings)
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
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                let secret = self.reads_secret(username) || self.reads_secret(password);
                (
                    format!("Basic {encoded}"),
                    secret.then(|| format!("Basic {REDACTED}")),
                )
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

/// The texts of every list setting, as sets.
fn name_lists(values: &Map<String, Value>) -> HashMap<Box<str>, NameList, FastHash> {
    values
        .iter()
        .filter_map(|(name, value)| {
            let list = value.as_array()?;
            let texts = || list.iter().filter_map(Value::as_str);
            Some((
                Box::from(name.as_str()),
                NameList {
                    all: texts().any(|t| t == "*"),
                    exact: texts().map(Into::into).collect(),
                    loose: texts().map(|t| t.trim().to_lowercase().into()).collect(),
                },
            ))
        })
        .collect()
}

/// Compiles the JSONPath a `path` setting holds.
fn setting_path(name: &str, value: &Value) -> Result<Option<Path>, String> {
    let Some(text) = value.as_str() else {
        return Ok(None);
    };
    Path::parse(text).map(Some).map_err(|why| {
        format!(
            "setting `{name}` is not a valid JSONPath: {}",
            why.lines().next().unwrap_or_default()
        )
    })
}

/// Secrets shorter than this are not searched for in free text (a one-letter "secret" would
/// redact every occurrence of that letter); headers built from them are still redacted whole.
const MIN_SCRUBBED_LEN: usize = 4;

fn collect_secret_text(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.len() >= MIN_SCRUBBED_LEN => {
            out.push(s.clone());
            // Inside JSON bodies the secret appears escaped.
            let escaped = serde_json::to_string(s).expect("a string serializes");
            let escaped = &escaped[1..escaped.len() - 1];
            if escaped != s {
                out.push(escaped.to_owned());
            }
        }
        Value::Number(n) if n.to_string().len() >= MIN_SCRUBBED_LEN => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| collect_secret_text(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_secret_text(v, out)),
        _ => {}
    }
}

/// Reads a setting given as text (`--set name=value`): text settings take it as written; the
/// others parse it as YAML (`42`, `true`, `[a, b]`, `{a: b}`).
pub fn setting_from_text(
    mapping: &CompiledMapping,
    name: &str,
    text: &str,
) -> Result<Value, String> {
    match mapping.spec.settings.get(name).map(|s| s.kind) {
        Some(SettingType::String | SettingType::Path) | None => Ok(Value::String(text.to_owned())),
        Some(_) => serde_yaml::from_str::<Value>(text)
            .map_err(|e| format!("setting `{name}`: cannot read `{text}`: {e}")),
    }
}
