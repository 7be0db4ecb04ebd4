//! Templates, compiled once with strict undefined values and bounded work. Each template knows
//! the event values it reads, so rendering converts only those, not the whole event.

use std::collections::BTreeSet;
use std::sync::Arc;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

/// Work one render may do (minijinja fuel): enough for any sane template, small enough that a
/// runaway loop over event data stops quickly.
const FUEL: u64 = 20_000;
/// Longest text a template may produce.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// Characters kept as-is in a URL path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Where a template's output goes, which decides how interpolated values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Plain text (body values, headers).
    None,
    /// One URL path segment per value: `/`, `?`, `#` and the like are percent-encoded.
    PathSegment,
}

/// All templates of one mapping.
pub struct Templates {
    plain: Environment<'static>,
    url: Environment<'static>,
    count: usize,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Templates({})", self.count)
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(32);
    env
}

impl Default for Templates {
    fn default() -> Self {
        let mut url = environment();
        url.set_formatter(|out, _state, value| {
            let text = value.to_string();
            write!(out, "{}", utf8_percent_encode(&text, SEGMENT)).map_err(|e| {
                minijinja::Error::new(ErrorKind::WriteFailure, "cannot write the URL")
                    .with_source(e)
            })
        });
        Templates {
            plain: environment(),
            url,
            count: 0,
        }
    }
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    name: Arc<str>,
    escape: Escape,
    /// Event values read, as key paths (`event.traits.email` -> `[traits, email]`); an empty
    /// path means the whole event.
    event_paths: Vec<Vec<Box<str>>>,
    /// Settings read.
    pub settings: BTreeSet<String>,
    /// Top-level names the template reads that are neither `event` nor `settings`.
    pub unknown: BTreeSet<String>,
}

/// Why a template did not produce text.
#[derive(Debug)]
pub enum RenderError {
    /// A value the template reads is missing: the field is treated as missing.
    Undefined(String),
    /// Anything else (a failing filter, too much work, too long an output).
    Failed(String),
}

impl Templates {
    /// Compiles `source`.
    pub fn add(&mut self, source: &str, escape: Escape) -> Result<Template, String> {
        let name: Arc<str> = format!("t{}", self.count).into();
        self.count += 1;
        let env = match escape {
            Escape::None => &mut self.plain,
            Escape::PathSegment => &mut self.url,
        };
        env.add_template_owned(name.to_string(), source.to_owned())
            .map_err(|e| describe(&e))?;
        let template = env.get_template(&name).map_err(|e| describe(&e))?;
        let mut event_paths = Vec::new();
        let mut settings = BTreeSet::new();
        let mut unknown = BTreeSet::new();
        for variable in template.undeclared_variables(true) {
            let mut parts = variable.split('.');
            match parts.next() {
                Some("event") => event_paths.push(parts.map(Into::into).collect()),
                Some("settings") => {
                    if let Some(setting) = parts.next() {
                        settings.insert(setting.to_owned());
                    }
                }
                Some(other) => {
                    unknown.insert(other.to_owned());
                }
                None => {}
            }
        }
        Ok(Template {
            name,
            escape,
            event_paths,
            settings,
            unknown,
        })
    }

    /// Renders `template` with `event` (only the values it reads) and `settings`.
    pub fn render(
        &self,
        template: &Template,
        event: Option<&Value>,
        settings: &minijinja::Value,
    ) -> Result<String, RenderError> {
        let env = match template.escape {
            Escape::None => &self.plain,
            Escape::PathSegment => &self.url,
        };
        let compiled = env
            .get_template(&template.name)
            .map_err(|e| RenderError::Failed(describe(&e)))?;
        let event_value = match event {
            Some(event) if !template.event_paths.is_empty() => {
                event_context(event, &template.event_paths)
            }
            _ => minijinja::Value::UNDEFINED,
        };
        let context = minijinja::context! { event => event_value, settings => settings.clone() };
        match compiled.render(context) {
            Ok(text) if text.len() > MAX_OUTPUT => Err(RenderError::Failed(format!(
                "the template produced {} bytes, over the limit of {MAX_OUTPUT}",
                text.len()
            ))),
            Ok(text) => Ok(text),
            Err(error) if error.kind() == ErrorKind::UndefinedError => {
                Err(RenderError::Undefined(describe(&error)))
            }
            Err(error) => Err(RenderError::Failed(describe(&error))),
        }
    }
}

impl Template {
    /// Whether the template reads the event.
    pub fn reads_event(&self) -> bool {
        !self.event_paths.is_empty()
    }

    /// The event key paths the template reads (for bucketing: those keys count as mapped).
    pub fn event_paths(&self) -> impl Iterator<Item = &[Box<str>]> {
        self.event_paths.iter().map(Vec::as_slice)
    }
}

/// The part of `event` a template reads, as a template value.
fn event_context(event: &Value, paths: &[Vec<Box<str>>]) -> minijinja::Value {
    if paths.iter().any(Vec::is_empty) {
        return template_value(event);
    }
    let mut root = Map::new();
    for path in paths {
        copy_path(&mut root, event, path);
    }
    template_object(&root)
}

/// A JSON value as a template value. Numbers are kept as written (serde_json's arbitrary
/// precision), which minijinja's serde bridge does not understand, so they are converted here:
/// integers as integers (up to 128 bits), anything else as the nearest float.
pub(crate) fn template_value(value: &Value) -> minijinja::Value {
    match value {
        Value::Null => minijinja::Value::from(()),
        Value::Bool(b) => minijinja::Value::from(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                minijinja::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                minijinja::Value::from(u)
            } else if let Ok(i) = n.as_str().parse::<i128>() {
                minijinja::Value::from(i)
            } else {
                minijinja::Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => minijinja::Value::from(s.as_str()),
        Value::Array(items) => items.iter().map(template_value).collect(),
        Value::Object(map) => template_object(map),
    }
}

/// An object as a template map, keys in the object's order.
pub(crate) fn template_object(map: &Map<String, Value>) -> minijinja::Value {
    minijinja::Value::from_object(
        map.iter()
            .map(|(k, v)| (minijinja::Value::from(k.as_str()), template_value(v)))
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
}

/// Copies the value at `path` of `source` into `target`, creating the objects on the way. When the
/// path stops early, the objects that do exist are still created, so that a template can test
/// `event.a.b is defined` without `event.a` itself being undefined.
fn copy_path(target: &mut Map<String, Value>, source: &Value, path: &[Box<str>]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(found) = source.get(&**first) else {
        return;
    };
    if rest.is_empty() || !found.is_object() {
        target.insert(first.to_string(), found.clone());
        return;
    }
    let child = target
        .entry(first.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(map) = child {
        copy_path(map, found, rest);
    }
}

/// minijinja's message without its debug dump, on one line.
fn describe(error: &minijinja::Error) -> String {
    let mut text = error.kind().to_string();
    if let Some(detail) = error.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn knows_what_a_template_reads() {
        let mut templates = Templates::default();
        let t = templates
            .add(
                "{{ event.traits.firstName }} {{ settings.api_key }} {{ nope }}",
                Escape::None,
            )
            .unwrap();
        assert!(t.reads_event());
        assert_eq!(t.settings.iter().collect::<Vec<_>>(), vec!["api_key"]);
        assert_eq!(t.unknown.iter().collect::<Vec<_>>(), vec!["nope"]);
    }

    #[test]
    fn encodes_each_value_as_one_path_segment() {
        let mut templates = Templates::default();
        let t = templates
            .add("/users/{{ event.id }}/events", Escape::PathSegment)
            .unwrap();
        let event = json!({"id": "../admin?x=1#y z"});
        let out = templates
            .render(&t, Some(&event), &minijinja::Value::UNDEFINED)
            .unwrap();
        assert_eq!(out, "/users/..%2Fadmin%3Fx%3D1%23y%20z/events");
    }

    #[test]
    fn a_missing_value_is_reported_as_undefined() {
        let mut templates = Templates::default();
        let t = templates.add("{{ event.name }}", Escape::None).unwrap();
        let out = templates.render(&t, Some(&json!({})), &minijinja::Value::UNDEFINED);
        assert!(matches!(out, Err(RenderError::Undefined(_))));
        let guarded = templates
            .add(
                "{{ event.name if event.name is defined else 'anon' }}",
                Escape::None,
            )
            .unwrap();
        let out = templates.render(&guarded, Some(&json!({})), &minijinja::Value::UNDEFINED);
        assert_eq!(out.unwrap(), "anon");
    }

    #[test]
    fn runaway_templates_stop() {
        let mut templates = Templates::default();
        let t = templates
            .add(
                "{% for i in range(100000) %}{{ i }}{% endfor %}",
                Escape::None,
            )
            .unwrap();
        let out = templates.render(&t, None, &minijinja::Value::UNDEFINED);
        assert!(matches!(out, Err(RenderError::Failed(_))));
    }
}
