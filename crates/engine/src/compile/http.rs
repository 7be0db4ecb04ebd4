//! The shared HTTP part: base URL, auth and headers, all templates over settings only; and the
//! templates of the whole mapping, checked for the names they use.

use std::sync::Arc;

use ferry_spec::model;
use ferry_spec::{Diagnostic, DiagnosticKind, Pointer, Target, did_you_mean};

use crate::checks::check_base_url;
use crate::compiled::{AuthRule, HeaderValue};
use crate::template::{Escape, Template, Unknown, VARIABLES};

use super::Compiler;

impl Compiler<'_> {
    /// A template that may read settings only (base URL, shared headers, auth).
    pub(super) fn settings_template(
        &mut self,
        pointer: &Pointer,
        source: &str,
        what: &str,
    ) -> Option<Template> {
        let template = self.template(pointer, source, Escape::None)?;
        if template.reads_more_than_settings() {
            let message = if what == "http.base_url" {
                "the base URL cannot use event data: event data must never choose the host"
                    .to_owned()
            } else {
                format!("`{what}` is rendered once per connection and cannot use event data")
            };
            let help = if what == "http.base_url" {
                "put event values in an action's `request.path`, where each one is URL-encoded"
            } else {
                "use an action's `request.headers` for values taken from the event"
            };
            self.problem(DiagnosticKind::Request, pointer, Target::Value, message)
                .help = Some(help.into());
            return None;
        }
        for setting in &template.settings {
            let declared = self.mapping().settings.get(setting).cloned();
            if let Some(declared) = declared
                && !declared.required
                && declared.default.is_none()
                && what.starts_with("http.")
            {
                let diagnostic = self.problem(DiagnosticKind::Setting, pointer, Target::Value, format!("`{what}` uses setting `{setting}`, which is neither required nor has a default"));
                narrow(diagnostic, &[&format!("settings.{setting}"), setting]);
                diagnostic.help = Some(format!(
                    "mark `settings.{setting}` as `required: true`, or give it a `default`"
                ));
            }
        }
        if what == "http.base_url" && template.settings.is_empty() {
            check_base_url(source)
                .err()
                .map(|why| self.problem(DiagnosticKind::Request, pointer, Target::Value, why));
        }
        Some(template)
    }

    pub(super) fn template(
        &mut self,
        pointer: &Pointer,
        source: &str,
        escape: Escape,
    ) -> Option<Template> {
        let (mut template, unknown) = match self.templates.add(source, escape) {
            Ok(compiled) => compiled,
            Err(why) => {
                self.problem(
                    DiagnosticKind::Template,
                    pointer,
                    Target::Value,
                    format!("invalid template: {why}"),
                );
                return None;
            }
        };
        let mut ok = true;
        for name in &unknown {
            ok = false;
            let (message, help) = match name {
                Unknown::Variable(name) => (
                    format!("the template reads `{name}`, which is not defined"),
                    match did_you_mean(name, VARIABLES) {
                        Some(near) => format!("did you mean `{near}`?"),
                        None => "templates read `event`, `settings`, `computed`, with `for_each` `item`, and in a step `responses`".into(),
                    },
                ),
                Unknown::Filter(name) => (
                    format!("the template uses the filter `{name}`, which does not exist"),
                    "docs/writing-a-mapping.md lists the filters, tests and functions templates have; fields also have operations such as `truncate`, `format_time` and `capture`".into(),
                ),
                Unknown::Test(name) => (
                    format!("the template uses the test `{name}`, which does not exist"),
                    "docs/writing-a-mapping.md lists the tests templates have".into(),
                ),
                Unknown::Function(name) => (
                    format!("the template calls the function `{name}`, which does not exist"),
                    "docs/writing-a-mapping.md lists the functions templates have".into(),
                ),
            };
            let diagnostic =
                self.problem(DiagnosticKind::Template, pointer, Target::Value, message);
            narrow(diagnostic, &[name.name()]);
            diagnostic.help = Some(help);
        }
        for setting in &template.settings {
            if !self.mapping().settings.contains_key(setting) {
                ok = false;
                let near =
                    did_you_mean(setting, self.mapping().settings.keys().map(String::as_str))
                        .map(str::to_owned);
                let diagnostic = self.problem(
                    DiagnosticKind::Setting,
                    pointer,
                    Target::Value,
                    format!("the template reads `settings.{setting}`, which is not declared"),
                );
                narrow(diagnostic, &[&format!("settings.{setting}"), setting]);
                diagnostic.help = Some(match near {
                    Some(near) => format!("did you mean `settings.{near}`?"),
                    None => "declare it under `settings:`".into(),
                });
            }
        }
        if template.reads_responses() {
            ok &= self.bind_responses(pointer, &mut template);
        }
        for (reads, variable, what) in [
            (template.reads_item, "item", "the item"),
            (template.reads_index, "index", "the position of the item"),
        ] {
            if reads && !self.for_each_in_scope {
                ok = false;
                let diagnostic = self.problem(
                    DiagnosticKind::Template,
                    pointer,
                    Target::Value,
                    format!(
                        "the template reads `{variable}`, {what} of the action's `for_each`, and this action has none"
                    ),
                );
                narrow(diagnostic, &[variable]);
            }
        }
        ok.then_some(template)
    }

    /// Resolves the steps whose responses `template` reads to their positions: each must be a
    /// step before the one being compiled (`responses` alone reads all of those).
    fn bind_responses(&mut self, pointer: &Pointer, template: &mut Template) -> bool {
        let Some(scope) = self.steps_in_scope.clone() else {
            let diagnostic = self.problem(
                DiagnosticKind::Template,
                pointer,
                Target::Value,
                "the template reads `responses`, the answers of earlier steps, and only a step of an action with `steps` has them",
            );
            narrow(diagnostic, &["responses"]);
            return false;
        };
        let mut ok = true;
        for name in template.response_names.clone() {
            match name {
                Some(name) => match self.step_ref(pointer, &name) {
                    Some(index) => template.response_steps.push((name, index)),
                    None => ok = false,
                },
                None => template.response_steps.extend(
                    scope
                        .earlier
                        .iter()
                        .enumerate()
                        .map(|(index, name)| (name.as_str().into(), index)),
                ),
            }
        }
        ok
    }

    /// `http.headers` and `http.auth`.
    pub(super) fn mapping_headers(&mut self) -> (Vec<(Arc<str>, Template)>, Option<AuthRule>) {
        let http = self.mapping().http.clone();
        let base = Pointer::root().key("http");
        let auth = http
            .auth
            .as_ref()
            .and_then(|auth| self.auth(&base.key("auth"), auth, "http.auth"));
        let mut headers: Vec<(Arc<str>, Template)> = Vec::new();
        for (name, value) in &http.headers {
            let pointer = base.key("headers").key(name);
            if let Err(why) = check_header_name(name) {
                self.problem(DiagnosticKind::Header, &pointer, Target::Key, why);
            } else if let Some((earlier, _)) =
                headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                let earlier = Arc::clone(earlier);
                self.problem(
                    DiagnosticKind::Header,
                    &pointer,
                    Target::Key,
                    format!("`{name}` is the header `{earlier}` again: header names are compared without regard to case"),
                )
                .help = Some("keep one of them".into());
            } else if let Some(AuthRule::Header {
                name: auth_name, ..
            }) = &auth
                && auth_name.eq_ignore_ascii_case(name)
            {
                self.problem(
                    DiagnosticKind::Header,
                    &pointer,
                    Target::Key,
                    format!("`http.auth` sets the `{auth_name}` header already: two would be sent"),
                )
                .help = Some("remove this header, or the auth".into());
            }
            if let Some(t) = self.settings_template(&pointer, value, "http.headers") {
                headers.push((name.as_str().into(), t));
            }
        }
        (headers, auth)
    }

    /// An auth rule (`http.auth`, or a request's own).
    /// `what` names it in messages: `http.auth`, or `request.auth`.
    pub(super) fn auth(
        &mut self,
        pointer: &Pointer,
        auth: &model::Auth,
        what: &str,
    ) -> Option<AuthRule> {
        let model::Auth {
            bearer,
            basic,
            header,
            query,
        } = auth;
        if let Some(token) = bearer {
            let t = self.settings_template(
                &pointer.key("bearer"),
                &format!("Bearer {token}"),
                &format!("{what}.bearer"),
            )?;
            return Some(AuthRule::Header {
                name: "Authorization".into(),
                value: HeaderValue::Template(t),
            });
        }
        if let Some(basic) = basic {
            let at = pointer.key("basic");
            let username = self.settings_template(
                &at.key("username"),
                &basic.username,
                &format!("{what}.basic.username"),
            );
            let password = self.settings_template(
                &at.key("password"),
                &basic.password,
                &format!("{what}.basic.password"),
            );
            return Some(AuthRule::Header {
                name: "Authorization".into(),
                value: HeaderValue::Basic {
                    username: username?,
                    password: password?,
                },
            });
        }
        if let Some(header) = header {
            let at = pointer.key("header");
            if let Err(why) = check_header_name(&header.name) {
                self.problem(DiagnosticKind::Header, &at.key("name"), Target::Value, why);
            }
            let t = self.settings_template(
                &at.key("value"),
                &header.value,
                &format!("{what}.header.value"),
            )?;
            return Some(AuthRule::Header {
                name: header.name.as_str().into(),
                value: HeaderValue::Template(t),
            });
        }
        if let Some(query) = query {
            let at = pointer.key("query");
            if query.name.is_empty() {
                self.problem(
                    DiagnosticKind::Request,
                    &at.key("name"),
                    Target::Value,
                    "the query parameter needs a name",
                );
            }
            let t = self.settings_template(
                &at.key("value"),
                &query.value,
                &format!("{what}.query.value"),
            )?;
            return Some(AuthRule::Query {
                name: query.name.as_str().into(),
                value: t,
            });
        }
        None
    }
}

/// Headers a mapping may not set, with why. `Host` would let a template route the request (and
/// its credentials) through a proxy or CDN to another host than `http.base_url`'s; the framing
/// headers are the HTTP client's to write; the hop-by-hop headers (RFC 9110 section 7.6.1, plus
/// the non-standard `Proxy-Connection` and the proxy's own `Proxy-Authorization` and
/// `Proxy-Authenticate`) are consumed by the next proxy rather than the destination.
const RESERVED_HEADERS: &[(&str, &str)] = &[
    ("host", "the host comes from `http.base_url`"),
    ("content-length", "ferry sets the body length"),
    ("transfer-encoding", "ferry sets the body framing"),
    ("connection", "it is a hop-by-hop header"),
    ("keep-alive", "it is a hop-by-hop header"),
    ("proxy-connection", "it is a hop-by-hop header"),
    ("te", "it is a hop-by-hop header"),
    ("trailer", "it is a hop-by-hop header"),
    ("upgrade", "it is a hop-by-hop header"),
    (
        "proxy-authorization",
        "it is a credential for a proxy, not the destination",
    ),
    ("proxy-authenticate", "it is a hop-by-hop header"),
];

pub(super) fn check_header_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid {
        return Err(format!("`{name}` is not a valid header name"));
    }
    if let Some((_, why)) = RESERVED_HEADERS
        .iter()
        .find(|(reserved, _)| reserved.eq_ignore_ascii_case(name))
    {
        return Err(format!("a mapping cannot set the `{name}` header: {why}"));
    }
    Ok(())
}

/// Moves the caret of a diagnostic on a template from the whole value to the first of `names`
/// found in it as a whole word, when the value is on one line.
pub(super) fn narrow(diagnostic: &mut Diagnostic, names: &[&str]) {
    let chars: Vec<char> = diagnostic.snippet.chars().collect();
    let start = diagnostic.column.saturating_sub(1);
    let end = (start + diagnostic.len).min(chars.len());
    if start >= end {
        return;
    }
    let is_word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
    for name in names {
        let needle: Vec<char> = name.chars().collect();
        if needle.is_empty() {
            continue;
        }
        let found = (start..end.saturating_sub(needle.len() - 1)).find(|&at| {
            chars[at..].starts_with(&needle)
                && !is_word(at.checked_sub(1).and_then(|b| chars.get(b)))
                && !is_word(chars.get(at + needle.len()))
        });
        if let Some(at) = found {
            diagnostic.column = at + 1;
            diagnostic.len = needle.len();
            return;
        }
    }
}
