//! The shared HTTP part: base URL, auth and headers, all templates over settings only.

use std::sync::Arc;

use ferry_spec::{Diagnostic, Target, did_you_mean, escape_segment};

use crate::checks::check_base_url;
use crate::compiled::HeaderValue;
use crate::template::{Escape, Template};

use super::Compiler;

impl Compiler<'_> {
    /// A template that may read settings only (base URL, shared headers, auth).
    pub(super) fn settings_template(
        &mut self,
        pointer: &str,
        source: &str,
        what: &str,
    ) -> Option<Template> {
        let template = self.template(pointer, source, Escape::None)?;
        if template.reads_event() {
            let message = if what == "http.base_url" {
                "the base URL cannot use event data: event data must never choose the host"
                    .to_owned()
            } else {
                format!("`{what}` is shared by every request and cannot use event data")
            };
            let help = if what == "http.base_url" {
                "put event values in an action's `request.path`, where each one is URL-encoded"
            } else {
                "use an action's `request.headers` for values taken from the event"
            };
            self.problem(pointer, Target::Value, message).help = Some(help.into());
            return None;
        }
        for setting in &template.settings {
            let declared = self.mapping().settings.get(setting).cloned();
            if let Some(declared) = declared
                && !declared.required
                && declared.default.is_none()
            {
                let diagnostic = self.problem(pointer, Target::Value, format!("`{what}` uses setting `{setting}`, which is neither required nor has a default"));
                narrow(diagnostic, &[&format!("settings.{setting}"), setting]);
                diagnostic.help = Some(format!(
                    "mark `settings.{setting}` as `required: true`, or give it a `default`"
                ));
            }
        }
        if what == "http.base_url" && template.settings.is_empty() {
            check_base_url(source)
                .err()
                .map(|why| self.problem(pointer, Target::Value, why));
        }
        Some(template)
    }

    pub(super) fn template(
        &mut self,
        pointer: &str,
        source: &str,
        escape: Escape,
    ) -> Option<Template> {
        let template = match self.templates.add(source, escape) {
            Ok(template) => template,
            Err(why) => {
                self.problem(pointer, Target::Value, format!("invalid template: {why}"));
                return None;
            }
        };
        let mut ok = true;
        for name in &template.unknown {
            ok = false;
            let diagnostic = self.problem(
                pointer,
                Target::Value,
                format!("the template reads `{name}`, which is not defined"),
            );
            narrow(diagnostic, &[name]);
            diagnostic.help = Some(match did_you_mean(name, ["event", "settings"]) {
                Some(near) => format!("did you mean `{near}`?"),
                None => "templates can read `event` (the incoming event) and `settings`".into(),
            });
        }
        for setting in &template.settings {
            if !self.mapping().settings.contains_key(setting) {
                ok = false;
                let near =
                    did_you_mean(setting, self.mapping().settings.keys().map(String::as_str))
                        .map(str::to_owned);
                let diagnostic = self.problem(
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
        ok.then_some(template)
    }

    pub(super) fn mapping_headers(&mut self) -> Vec<(Arc<str>, HeaderValue)> {
        let http = self.mapping().http.clone();
        let mut headers = Vec::new();
        if let Some(auth) = &http.auth {
            if let Some(token) = &auth.bearer
                && let Some(t) = self.settings_template(
                    "/http/auth/bearer",
                    &format!("Bearer {token}"),
                    "http.auth.bearer",
                )
            {
                headers.push(("Authorization".into(), HeaderValue::Template(t)));
            }
            if let Some(basic) = &auth.basic {
                let username = self.settings_template(
                    "/http/auth/basic/username",
                    &basic.username,
                    "http.auth.basic.username",
                );
                let password = self.settings_template(
                    "/http/auth/basic/password",
                    &basic.password,
                    "http.auth.basic.password",
                );
                if let (Some(username), Some(password)) = (username, password) {
                    headers.push((
                        "Authorization".into(),
                        HeaderValue::Basic { username, password },
                    ));
                }
            }
            if let Some(header) = &auth.header {
                check_header_name(&header.name)
                    .err()
                    .map(|why| self.problem("/http/auth/header/name", Target::Value, why));
                if let Some(t) = self.settings_template(
                    "/http/auth/header/value",
                    &header.value,
                    "http.auth.header.value",
                ) {
                    headers.push((header.name.as_str().into(), HeaderValue::Template(t)));
                }
            }
        }
        for (name, value) in &http.headers {
            let pointer = format!("/http/headers/{}", escape_segment(name));
            check_header_name(name)
                .err()
                .map(|why| self.problem(&pointer, Target::Key, why));
            if let Some(t) = self.settings_template(&pointer, value, "http.headers") {
                headers.push((name.as_str().into(), HeaderValue::Template(t)));
            }
        }
        headers
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
