//! Templates, compiled once with strict undefined values and bounded work. Each template knows
//! the event values it reads, so rendering converts only those, not the whole event; and every
//! filter, test and function it calls is checked when it compiles, so that a name minijinja
//! does not know is a load-time error rather than a failure of every event.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use minijinja::machinery::{Instruction, Instructions, get_compiled_template};
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

/// The variables a template may read.
pub const VARIABLES: [&str; 6] = [
    "event",
    "settings",
    "computed",
    "item",
    "index",
    "responses",
];

/// Where a template's output goes, which decides how interpolated values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Plain text (body values, headers).
    None,
    /// One URL path segment per value: `/`, `?`, `#` and the like are percent-encoded.
    PathSegment,
}

/// All templates of one mapping (or of one connection's template settings).
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
    /// Whether it reads `computed`, or the `item` of a `for_each` or its `index`.
    pub(crate) reads_computed: bool,
    pub(crate) reads_item: bool,
    pub(crate) reads_index: bool,
    /// The computed values and item values read, as key paths: only those are handed to the
    /// template, so that a template reading one computed value does not copy them all.
    computed_paths: Vec<Vec<Box<str>>>,
    item_paths: Vec<Vec<Box<str>>>,
    /// The earlier steps whose responses it reads (`responses.lookup.body.id`), by name; `None`
    /// for a read of `responses` as a whole. The compiler resolves them to step positions.
    pub(crate) response_names: Vec<Option<Box<str>>>,
    /// The steps read, as (name, position among the action's steps): set by the compiler.
    pub(crate) response_steps: Vec<(Box<str>, usize)>,
    /// The template as text and plain values, when it is only that
    /// (`/customers/{{ computed.person }}/events`).
    pieces: Option<Box<[Piece]>>,
}

/// A part of a template that is only text and plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Box<str>),
    /// `{{ computed.person }}`: a variable and the keys read under it.
    Value(Variable, Box<[Box<str>]>),
}

/// A variable a plain value reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variable {
    Event,
    Settings,
    Computed,
    Item,
    Index,
}

/// A name a template uses that nothing defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    /// A variable other than `event`, `settings`, `computed`, `item`, `index` and `responses`.
    Variable(String),
    /// A filter (`{{ x|truncate }}`).
    Filter(String),
    /// A test (`{% if x is foo %}`).
    Test(String),
    /// A function (`{{ truncate(x) }}`).
    Function(String),
}

impl Unknown {
    /// The name as written.
    pub fn name(&self) -> &str {
        match self {
            Unknown::Variable(name)
            | Unknown::Filter(name)
            | Unknown::Test(name)
            | Unknown::Function(name) => name,
        }
    }
}

/// Values a template reads by name, as `computed.NAME`.
pub(crate) trait NamedValues {
    /// The value named `name`, and its name as its holder keeps it.
    fn named(&self, name: &str) -> Option<(&str, &Value)>;
    /// Every value, with its name (for a template that reads them all at once).
    fn all(&self) -> Vec<(&str, &Value)>;
}

/// The item of an action's `for_each` a run plans a request for, read as `item` (`$item` in
/// paths), and its 0-based position in the list, read as `index` (`$index`).
#[derive(Clone, Copy)]
pub(crate) struct Item<'e> {
    pub value: &'e Value,
    pub index: usize,
}

/// What a template renders with: the event (or the item in scope) and the other variables.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    pub event: Option<&'a Value>,
    pub settings: &'a minijinja::Value,
    pub computed: Option<&'a dyn NamedValues>,
    pub item: Option<Item<'a>>,
    /// The responses of earlier steps the template reads, by step name.
    pub responses: Option<&'a minijinja::Value>,
}

/// Why a template did not produce text.
#[derive(Debug)]
pub enum RenderError {
    /// A value the template reads is missing (named when minijinja names it, e.g.
    /// `event.traits.first`): the field is treated as missing.
    Undefined(Option<String>),
    /// Anything else (a failing filter, too much work, too long an output).
    Failed(String),
}

/// What a template reads, variable by variable, as compiling it finds out.
#[derive(Default)]
struct Reads {
    event_paths: Vec<Vec<Box<str>>>,
    settings: BTreeSet<String>,
    computed_paths: Vec<Vec<Box<str>>>,
    item_paths: Vec<Vec<Box<str>>>,
    index: bool,
    response_names: Vec<Option<Box<str>>>,
    unknown: Vec<Unknown>,
    /// The variables read through a path (`event.a`): a lookup of one of them by key reads no more.
    roots_with_paths: BTreeSet<String>,
}

impl Reads {
    /// A variable as minijinja lists it: `event.traits.email`.
    fn variable(&mut self, variable: &str, globals: &BTreeSet<String>) {
        let mut parts = variable.split('.');
        let Some(root) = parts.next() else { return };
        self.roots_with_paths.insert(root.to_owned());
        match root {
            "event" => self.event_paths.push(parts.map(Into::into).collect()),
            "settings" => {
                if let Some(setting) = parts.next() {
                    self.settings.insert(setting.to_owned());
                }
            }
            "computed" => self.computed_paths.push(parts.map(Into::into).collect()),
            "item" => self.item_paths.push(parts.map(Into::into).collect()),
            "index" => self.index = true,
            "responses" => {
                let step = parts.next().map(Into::into);
                if !self.response_names.contains(&step) {
                    self.response_names.push(step);
                }
            }
            other if globals.contains(other) => {}
            other => self.unknown.push(Unknown::Variable(other.to_owned())),
        }
    }

    /// A variable read by a lookup that shows no path (a slice, `event[key]`): all of it.
    fn whole(&mut self, root: &str) {
        if self.roots_with_paths.contains(root) {
            return;
        }
        match root {
            "event" => self.event_paths.push(Vec::new()),
            "computed" => self.computed_paths.push(Vec::new()),
            "item" => self.item_paths.push(Vec::new()),
            "responses" => self.response_names.push(None),
            _ => {}
        }
    }
}

impl Templates {
    /// Compiles `source`, with the names it uses that nothing defines.
    pub fn add(
        &mut self,
        source: &str,
        escape: Escape,
    ) -> Result<(Template, Vec<Unknown>), String> {
        let name: Arc<str> = format!("t{}", self.count).into();
        self.count += 1;
        let env = match escape {
            Escape::None => &mut self.plain,
            Escape::PathSegment => &mut self.url,
        };
        env.add_template_owned(name.to_string(), source.to_owned())
            .map_err(|e| describe(&e))?;
        let env = match escape {
            Escape::None => &self.plain,
            Escape::PathSegment => &self.url,
        };
        let template = env.get_template(&name).map_err(|e| describe(&e))?;
        let globals: BTreeSet<String> = env.globals().map(|(name, _)| name.to_owned()).collect();
        let mut reads = Reads::default();
        for variable in template.undeclared_variables(true) {
            reads.variable(&variable, &globals);
        }
        let compiled = get_compiled_template(&template);
        let mut calls = Vec::new();
        let mut looked_up = BTreeSet::new();
        for instructions in std::iter::once(&compiled.instructions).chain(compiled.blocks.values())
        {
            calls_in(instructions, &mut calls, &mut looked_up);
        }
        // Some reads (a slice, `event[key]`) do not show as paths: read the whole value.
        for root in looked_up {
            reads.whole(root);
        }
        let mut unknown = std::mem::take(&mut reads.unknown);
        for call in calls {
            let known = match &call {
                Unknown::Filter(name) => probe(env, name, "filter"),
                Unknown::Test(name) => probe(env, name, "test"),
                Unknown::Function(name) => {
                    globals.contains(name.as_str())
                        || !unknown.contains(&Unknown::Variable(name.clone()))
                }
                Unknown::Variable(_) => true,
            };
            if !known && !unknown.contains(&call) {
                if let Unknown::Function(name) = &call {
                    unknown.retain(|u| *u != Unknown::Variable(name.clone()));
                }
                unknown.push(call);
            }
        }
        Ok((
            Template {
                name,
                escape,
                event_paths: reads.event_paths,
                settings: reads.settings,
                reads_computed: !reads.computed_paths.is_empty(),
                reads_item: !reads.item_paths.is_empty(),
                reads_index: reads.index,
                computed_paths: reads.computed_paths,
                item_paths: reads.item_paths,
                response_names: reads.response_names,
                response_steps: Vec::new(),
                pieces: plain_pieces(source).map(Vec::into_boxed_slice),
            },
            unknown,
        ))
    }

    /// Renders `template` with the values it reads.
    pub(crate) fn render(
        &self,
        template: &Template,
        context: Context<'_>,
    ) -> Result<String, RenderError> {
        match template
            .pieces
            .as_deref()
            .and_then(|pieces| render_plain(pieces, template.escape, context))
        {
            Some(Ok(text)) if text.len() > MAX_OUTPUT => return Err(too_long(text.len())),
            Some(rendered) => return rendered,
            None => {}
        }
        let env = match template.escape {
            Escape::None => &self.plain,
            Escape::PathSegment => &self.url,
        };
        let compiled = env
            .get_template(&template.name)
            .map_err(|e| RenderError::Failed(describe(&e)))?;
        let read = |value: Option<&Value>, paths: &[Vec<Box<str>>]| match value {
            Some(value) if !paths.is_empty() => event_context(value, paths),
            _ => minijinja::Value::UNDEFINED,
        };
        let context = minijinja::context! {
            event => read(context.event, &template.event_paths),
            settings => context.settings.clone(),
            computed => named_context(context.computed, &template.computed_paths),
            item => read(context.item.map(|item| item.value), &template.item_paths),
            index => context.item.map_or(minijinja::Value::UNDEFINED, |item| item.index.into()),
            responses => context.responses.cloned().unwrap_or(minijinja::Value::UNDEFINED),
        };
        match compiled.render(context) {
            Ok(text) if text.len() > MAX_OUTPUT => Err(too_long(text.len())),
            Ok(text) => Ok(text),
            Err(error) if error.kind() == ErrorKind::UndefinedError => {
                Err(RenderError::Undefined(undefined_name(&error)))
            }
            Err(error) => Err(RenderError::Failed(describe(&error))),
        }
    }
}

fn too_long(length: usize) -> RenderError {
    RenderError::Failed(format!(
        "the template produced {length} bytes, over the limit of {MAX_OUTPUT}"
    ))
}

/// `source` as text and plain values (`{{ event.a.b }}`), or `None` when it holds anything else:
/// a filter, an expression, a block, a comment, whitespace control, or a final newline (which
/// minijinja drops).
fn plain_pieces(source: &str) -> Option<Vec<Piece>> {
    if source.ends_with('\n') {
        return None;
    }
    let mut pieces = Vec::new();
    let mut rest = source;
    loop {
        let (text, expression) = match rest.find("{{") {
            Some(at) => (&rest[..at], Some(&rest[at + 2..])),
            None => (rest, None),
        };
        if text.contains("{%") || text.contains("{#") {
            return None;
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.into()));
        }
        let Some(expression) = expression else {
            return Some(pieces);
        };
        let end = expression.find("}}")?;
        let mut names = expression[..end].trim_matches(' ').split('.');
        let variable = match names.next()? {
            "event" => Variable::Event,
            "settings" => Variable::Settings,
            "computed" => Variable::Computed,
            "item" => Variable::Item,
            "index" => Variable::Index,
            _ => return None,
        };
        let keys: Vec<Box<str>> = names.map(Into::into).collect();
        let identifier = |key: &str| {
            key.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !keys.iter().all(|key| identifier(key)) {
            return None;
        }
        pieces.push(Piece::Value(variable, keys.into_boxed_slice()));
        rest = &expression[end + 2..];
    }
}

/// Renders text and plain values without minijinja when every value is a string or an integer,
/// which print as themselves; `None` for anything else (a missing value, a float, a list...),
/// which minijinja renders or reports.
/// `None` when it takes minijinja to say what the template prints (a value that is not text or
/// an integer, a read through something that is not an object); a value an object lacks is
/// missing, named as minijinja names it.
fn render_plain(
    pieces: &[Piece],
    escape: Escape,
    context: Context<'_>,
) -> Option<Result<String, RenderError>> {
    let mut out = String::new();
    let push_value = |out: &mut String, text: &str| match escape {
        Escape::None => out.push_str(text),
        Escape::PathSegment => out.extend(utf8_percent_encode(text, SEGMENT)),
    };
    for piece in pieces {
        let (variable, keys) = match piece {
            Piece::Text(text) => {
                out.push_str(text);
                continue;
            }
            Piece::Value(variable, keys) => (variable, keys),
        };
        // Where the walk starts, and how many keys that already read: a computed value is
        // found by its name, and the keys below it remain.
        let (json, root, read) = match variable {
            Variable::Settings => {
                let mut value = context.settings.clone();
                for key in keys {
                    value = value.get_attr(key).ok()?;
                }
                push_value(&mut out, value.as_str()?);
                continue;
            }
            Variable::Event => (context.event, "event", 0),
            Variable::Computed => {
                let (name, _) = keys.split_first()?;
                match context.computed?.named(name) {
                    Some((_, value)) => (Some(value), "computed", 1),
                    None => {
                        return Some(Err(RenderError::Undefined(Some(format!(
                            "computed.{name}"
                        )))));
                    }
                }
            }
            Variable::Item => (context.item.map(|item| item.value), "item", 0),
            Variable::Index if keys.is_empty() => {
                push_value(&mut out, &context.item?.index.to_string());
                continue;
            }
            // `index.x`: minijinja says what it makes of a number's member.
            Variable::Index => return None,
        };
        let mut node = json?;
        for (depth, key) in keys.iter().enumerate().skip(read) {
            let Value::Object(members) = node else {
                return None;
            };
            let Some(inner) = members.get(&**key) else {
                let mut name = root.to_owned();
                for key in &keys[..=depth] {
                    name.push('.');
                    name.push_str(key);
                }
                return Some(Err(RenderError::Undefined(Some(name))));
            };
            node = inner;
        }
        match node {
            Value::String(text) => push_value(&mut out, text),
            // As minijinja prints the integer, not as written (`-0` is 0).
            Value::Number(n) if let Some(i) = n.as_i64() => push_value(&mut out, &i.to_string()),
            Value::Number(n) if let Some(u) = n.as_u64() => push_value(&mut out, &u.to_string()),
            _ => return None,
        }
    }
    Some(Ok(out))
}
/// The filters, tests and functions `instructions` call, and the variables they look up.
fn calls_in<'s>(
    instructions: &Instructions<'s>,
    calls: &mut Vec<Unknown>,
    looked_up: &mut BTreeSet<&'s str>,
) {
    let mut at = 0;
    while let Some(instruction) = instructions.get(at) {
        match instruction {
            Instruction::ApplyFilter(name, ..) => calls.push(Unknown::Filter((*name).to_owned())),
            Instruction::PerformTest(name, ..) => calls.push(Unknown::Test((*name).to_owned())),
            Instruction::CallFunction(name, ..) => {
                calls.push(Unknown::Function((*name).to_owned()));
            }
            Instruction::Lookup(name) => {
                looked_up.insert(name);
            }
            _ => {}
        }
        at += 1;
    }
}

/// Whether `env` has a filter (or test, as `kind` says) named `name`.
fn probe(env: &Environment<'_>, name: &str, kind: &str) -> bool {
    let source = format!("{{% if {name:?} is {kind} %}}yes{{% endif %}}");
    env.render_str(&source, ()).is_ok_and(|out| out == "yes")
}

/// `event.traits.first` from minijinja's "`event.traits.first` is undefined".
fn undefined_name(error: &minijinja::Error) -> Option<String> {
    let detail = error.detail()?;
    let rest = detail.strip_prefix('`')?;
    let (name, _) = rest.split_once('`')?;
    Some(name.to_owned())
}

impl Template {
    /// Whether the template reads the event.
    pub fn reads_event(&self) -> bool {
        !self.event_paths.is_empty()
    }

    /// Whether the template reads anything but settings.
    pub(crate) fn reads_more_than_settings(&self) -> bool {
        self.reads_event()
            || self.reads_computed
            || self.reads_item
            || self.reads_index
            || self.reads_responses()
    }

    /// Whether the template reads an earlier step's response.
    pub(crate) fn reads_responses(&self) -> bool {
        !self.response_names.is_empty()
    }

    /// The first value the template reads that `event` lacks, as `event.a.b`.
    pub fn first_missing(&self, event: &Value) -> Option<String> {
        self.event_paths.iter().find_map(|path| {
            let mut node = event;
            for (depth, key) in path.iter().enumerate() {
                match node.get(&**key) {
                    Some(next) if !next.is_null() => node = next,
                    _ => {
                        let shown: Vec<&str> = path[..=depth].iter().map(|k| &**k).collect();
                        return Some(format!("event.{}", shown.join(".")));
                    }
                }
            }
            None
        })
    }

    /// The event key paths the template reads (for bucketing: those keys count as mapped).
    pub fn event_paths(&self) -> impl Iterator<Item = &[Box<str>]> {
        self.event_paths.iter().map(Vec::as_slice)
    }
}

/// The part of `event` a template reads, as a template value.
fn event_context(event: &Value, paths: &[Vec<Box<str>>]) -> minijinja::Value {
    if paths.iter().any(Vec::is_empty) || !event.is_object() {
        return template_value(event);
    }
    let mut root = BTreeMap::new();
    for path in paths {
        add_path(&mut root, event, path);
    }
    part_object(root)
}

/// What a template reads of an object, borrowed from it: values read whole, and the objects on
/// the way to them.
enum Part<'v> {
    Whole(&'v Value),
    Object(BTreeMap<&'v str, Part<'v>>),
}

/// What a template reads of values kept by name (`computed`): only the values it reads, found
/// by their names, with what it reads under them.
fn named_context(values: Option<&dyn NamedValues>, paths: &[Vec<Box<str>>]) -> minijinja::Value {
    let Some(values) = values.filter(|_| !paths.is_empty()) else {
        return minijinja::Value::UNDEFINED;
    };
    let mut root = BTreeMap::new();
    if paths.iter().any(Vec::is_empty) {
        for (name, value) in values.all() {
            root.insert(name, Part::Whole(value));
        }
        return part_object(root);
    }
    for path in paths {
        let Some((first, rest)) = path.split_first() else {
            continue;
        };
        if let Some((key, found)) = values.named(first) {
            add_found(&mut root, key, found, rest);
        }
    }
    part_object(root)
}

/// Adds the value at `path` of `source` to `target`, with the objects on the way. When the path
/// stops early, the objects that do exist are still there, so that a template can test
/// `event.a.b is defined` without `event.a` itself being undefined.
fn add_path<'v>(target: &mut BTreeMap<&'v str, Part<'v>>, source: &'v Value, path: &[Box<str>]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some((key, found)) = source
        .as_object()
        .and_then(|object| object.get_key_value(&**first))
    else {
        return;
    };
    add_found(target, key, found, rest);
}

/// Adds `found`, the value at `key`, to `target`: whole, or what `rest` reads under it.
fn add_found<'v>(
    target: &mut BTreeMap<&'v str, Part<'v>>,
    key: &'v str,
    found: &'v Value,
    rest: &[Box<str>],
) {
    if rest.is_empty() || !found.is_object() {
        target.insert(key, Part::Whole(found));
        return;
    }
    // An object read whole already holds what a longer path reads.
    if let Part::Object(inner) = target
        .entry(key)
        .or_insert_with(|| Part::Object(BTreeMap::new()))
    {
        add_path(inner, found, rest);
    }
}

fn part_object(parts: BTreeMap<&str, Part<'_>>) -> minijinja::Value {
    minijinja::Value::from_object(
        parts
            .into_iter()
            .map(|(key, part)| {
                let value = match part {
                    Part::Whole(value) => template_value(value),
                    Part::Object(inner) => part_object(inner),
                };
                (minijinja::Value::from(key), value)
            })
            .collect::<BTreeMap<_, _>>(),
    )
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
            .collect::<BTreeMap<_, _>>(),
    )
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

    fn context(event: &Value) -> Context<'_> {
        static NONE: minijinja::Value = minijinja::Value::UNDEFINED;
        Context {
            event: Some(event),
            settings: &NONE,
            computed: None,
            item: None,
            responses: None,
        }
    }

    #[test]
    fn knows_what_a_template_reads() {
        let mut templates = Templates::default();
        let (t, unknown) = templates
            .add(
                "{{ event.traits.firstName }} {{ settings.api_key }} {{ nope }} {{ range(2)|join }}",
                Escape::None,
            )
            .unwrap();
        assert!(t.reads_event());
        assert_eq!(t.settings.iter().collect::<Vec<_>>(), vec!["api_key"]);
        assert_eq!(unknown, vec![Unknown::Variable("nope".into())]);
    }

    #[test]
    fn unknown_filters_tests_and_functions_are_found_when_compiled() {
        let mut templates = Templates::default();
        let (_, unknown) = templates
            .add(
                "{{ event.x|truncate(3) }}{% if event.x is foo %}{% endif %}{{ datetimeformat(event.t) }}{{ event.x|upper }}",
                Escape::None,
            )
            .unwrap();
        assert_eq!(
            unknown,
            vec![
                Unknown::Filter("truncate".into()),
                Unknown::Test("foo".into()),
                Unknown::Function("datetimeformat".into()),
            ]
        );
    }

    #[test]
    fn slices_read_the_value_they_slice() {
        let mut templates = Templates::default();
        let (t, unknown) = templates
            .add("{{ event.messageId[:4] }}", Escape::None)
            .unwrap();
        assert!(unknown.is_empty());
        let event = json!({"messageId": "0123456789"});
        assert_eq!(templates.render(&t, context(&event)).unwrap(), "0123");
    }

    #[test]
    fn encodes_each_value_as_one_path_segment() {
        let mut templates = Templates::default();
        let (t, _) = templates
            .add("/users/{{ event.id }}/events", Escape::PathSegment)
            .unwrap();
        let event = json!({"id": "../admin?x=1#y z"});
        let out = templates.render(&t, context(&event)).unwrap();
        assert_eq!(out, "/users/..%2Fadmin%3Fx%3D1%23y%20z/events");
    }

    #[test]
    fn a_missing_value_is_reported_as_undefined_with_its_name() {
        let mut templates = Templates::default();
        let (t, _) = templates.add("{{ event.name }}", Escape::None).unwrap();
        let out = templates.render(&t, context(&json!({})));
        assert!(
            matches!(&out, Err(RenderError::Undefined(Some(name))) if name == "event.name"),
            "{out:?}"
        );
        let (guarded, _) = templates
            .add(
                "{{ event.name if event.name is defined else event.other }}",
                Escape::None,
            )
            .unwrap();
        let out = templates.render(&guarded, context(&json!({})));
        assert!(
            matches!(&out, Err(RenderError::Undefined(Some(name))) if name == "event.other"),
            "{out:?}"
        );
        let (set, _) = templates
            .add("{% set x = event.nope %}{{ x }}", Escape::None)
            .unwrap();
        let out = templates.render(&set, context(&json!({})));
        assert!(
            matches!(&out, Err(RenderError::Undefined(Some(name))) if name == "event.nope"),
            "{out:?}"
        );
    }

    #[test]
    fn text_and_plain_values_render_as_minijinja_renders_them() {
        let event = json!({
            "s": "a/b c?é", "i": -42, "u": u64::MAX, "f": 1.0, "b": true, "z": serde_json::from_str::<Value>("-0").unwrap(),
            "n": null, "l": [1, 2], "o": {"k": "v"}, "e": ""
        });
        let sources = [
            "{{ event.s }}",
            "x{{event.i}}y{{ event.u }}",
            "{{ event.z }}",
            "/u/{{ event.s }}/{{ event.i }}",
            "{{ event.f }}",
            "{{ event.b }}",
            "{{ event.n }}",
            "{{ event.l }}",
            "{{ event.o }}",
            "{{ event.o.k }}-{{ event.e }}",
            "{{ event.missing }}",
            "{{ event.o.missing }}",
            "a{{ event.s }}/{{ event.o.missing.deeper }}",
            "{{ event.missing.deeper }}",
            "{{ event.n.deeper }}",
            "{{ event.o.k.deeper }}",
            "a }} b {{ event.s }}",
            "{{- event.s }} x",
            "{{ event.s }}\n",
            "{{ event['s'] }}",
            "plain text",
            "",
        ];
        for escape in [Escape::None, Escape::PathSegment] {
            for source in sources {
                let mut templates = Templates::default();
                let (fast, _) = templates.add(source, escape).unwrap();
                let slow = Template {
                    pieces: None,
                    ..fast.clone()
                };
                let expected = templates.render(&slow, context(&event));
                let got = templates.render(&fast, context(&event));
                match (&expected, &got) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{source:?} {escape:?}"),
                    (Err(RenderError::Undefined(a)), Err(RenderError::Undefined(b))) => {
                        assert_eq!(a, b, "{source:?} {escape:?}");
                    }
                    (Err(RenderError::Failed(_)), Err(RenderError::Failed(_))) => {}
                    _ => panic!("{source:?} {escape:?}: {expected:?} vs {got:?}"),
                }
            }
        }
        let settings = template_value(&json!({"region": "eu", "n": 5, "o": {"k": "v"}}));
        for source in [
            "{{ settings.region }}/{{ settings.n }}",
            "{{ settings.o.k }}",
            "{{ settings.none }}",
        ] {
            let mut templates = Templates::default();
            let (fast, _) = templates.add(source, Escape::None).unwrap();
            let slow = Template {
                pieces: None,
                ..fast.clone()
            };
            let with = |t: &Template| {
                let context = Context {
                    settings: &settings,
                    ..context(&event)
                };
                templates.render(t, context).ok()
            };
            assert_eq!(with(&fast), with(&slow), "{source}");
        }
        let mut templates = Templates::default();
        let plain = |source: &str| plain_pieces(source).is_some();
        assert!(plain("/u/{{ event.s }}/{{computed.person}}"));
        assert!(!plain("{{ event.s|lower }}"));
        assert!(!plain("{{ event.s }}\n"));
        assert!(!plain("{% if x %}{% endif %}"));
        let (t, _) = templates.add("{{ event.s }}", Escape::None).unwrap();
        assert!(t.pieces.is_some());
    }

    #[test]
    fn the_index_of_a_for_each_item_is_a_number_to_print_or_compute_with() {
        let event = json!({"messageId": "m-1"});
        let mut templates = Templates::default();
        for (source, expected) in [
            ("{{ index }}", "3"),
            ("{{ event.messageId }}-{{ index + 1 }}", "m-1-4"),
            ("{{ 'first' if index == 0 else 'later' }}", "later"),
        ] {
            let (template, unknown) = templates.add(source, Escape::None).unwrap();
            assert!(unknown.is_empty(), "{source}: {unknown:?}");
            assert!(template.reads_index && template.reads_more_than_settings());
            let with_index = Context {
                item: Some(Item {
                    value: &event,
                    index: 3,
                }),
                ..context(&event)
            };
            assert_eq!(templates.render(&template, with_index).unwrap(), expected);
            // Without an item there is no index (the compiler refuses such a template).
            assert!(
                templates.render(&template, context(&event)).is_err(),
                "{source}"
            );
        }
        let (plain, _) = templates.add("{{ index }}", Escape::None).unwrap();
        assert!(plain.pieces.is_some());
    }

    #[test]
    fn runaway_templates_stop() {
        let mut templates = Templates::default();
        let (t, _) = templates
            .add(
                "{% for i in range(100000) %}{{ i }}{% endfor %}",
                Escape::None,
            )
            .unwrap();
        let out = templates.render(&t, context(&json!({})));
        assert!(matches!(out, Err(RenderError::Failed(_))));
    }
}
