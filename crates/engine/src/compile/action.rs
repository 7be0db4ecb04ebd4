//! Actions: their `when` selectors, request templates, `remember` and dedupe keys.

use ferry_spec::model::{self, BodyFormat, SourceDialect};
use ferry_spec::{Diagnostic, Target, did_you_mean, escape_segment};

use crate::compiled::{CompiledAction, Remember, Selector};
use crate::path::Path;
use crate::template::Escape;

use super::{
    Compiler, Place, SEGMENT_TYPES, check_header_name, dialect_name, list_pointer, settle_buckets,
};

impl Compiler<'_> {
    pub(super) fn action(&mut self, name: &str, action: &model::Action) -> Option<CompiledAction> {
        let base = format!("/actions/{}", escape_segment(name));
        let errors_before = self.problems.len();
        let when = self.selector(&format!("{base}/when"), &action.when);
        let request = &action.request;
        let path_pointer = format!("{base}/request/path");
        if !request.path.starts_with('/') {
            let help = if request.path.contains("://") || request.path.starts_with("{{") {
                "put only the path here, e.g. `/v1/events`: the scheme and host come from \
                 `http.base_url`, and event data can never choose them"
                    .to_owned()
            } else {
                format!(
                    "write `/{}`: the path is added to `http.base_url`",
                    request.path
                )
            };
            self.problem(
                &path_pointer,
                Target::Value,
                "the request path must start with `/`",
            )
            .help = Some(help);
        }
        let path = self.template(&path_pointer, &request.path, Escape::PathSegment);
        let root = Place {
            pointer: format!("{base}/request/query"),
            label: String::new(),
        };
        let query = self.fields(&root, &request.query, "&", true);
        let mut headers = Vec::new();
        for (header, value) in &request.headers {
            let pointer = format!("{base}/request/headers/{}", escape_segment(header));
            check_header_name(header)
                .err()
                .map(|why| self.problem(&pointer, Target::Key, why));
            if let Some(t) = self.template(&pointer, value, Escape::None) {
                headers.push((header.as_str().into(), t));
            }
        }
        let body = request.body.as_ref().map(|body| {
            let root = Place {
                pointer: format!("{base}/request/body"),
                label: String::new(),
            };
            self.fields(&root, body, ".", request.format == BodyFormat::Form)
        });
        let remember = action
            .remember
            .iter()
            .filter_map(|(store, rule)| {
                let pointer = format!("{base}/remember/{}", escape_segment(store));
                let key = self.path(&format!("{pointer}/key"), &rule.key);
                let value: Vec<Path> = rule
                    .value
                    .as_slice()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        self.path(
                            &list_pointer(&format!("{pointer}/value"), &rule.value, i),
                            p,
                        )
                    })
                    .collect();
                Some(Remember {
                    store: store.as_str().into(),
                    key: key?,
                    value,
                })
            })
            .collect();
        let dedupe_key = action.dedupe_key.as_ref().and_then(|field| {
            let place = Place {
                pointer: format!("{base}/dedupe_key"),
                label: "dedupe_key".into(),
            };
            let compiled = self.field(&place, "dedupe_key", field, true)?;
            Some(compiled)
        });
        if self.problems.len() > errors_before {
            return None;
        }
        let mut compiled = CompiledAction {
            name: name.into(),
            when,
            method: request.method,
            path: path?,
            query,
            headers,
            body,
            format: request.format,
            remember,
            dedupe_key,
        };
        settle_buckets(&mut compiled);
        Some(compiled)
    }

    pub(super) fn selector(&mut self, pointer: &str, selector: &model::Selector) -> Selector {
        let dialect = self.mapping().source;
        let mut out = Selector::default();
        if let Some(types) = &selector.kind {
            if dialect == SourceDialect::Json {
                self.problem(
                    &format!("{pointer}/type"),
                    Target::Key,
                    "`type` needs a source dialect with message types; `source: json` has none",
                )
                .help = Some("select with `exists` or `equals` instead".into());
            }
            for (i, kind) in types.as_slice().iter().enumerate() {
                let allowed: &[&str] = if dialect == SourceDialect::Segment {
                    SEGMENT_TYPES
                } else {
                    &["track"]
                };
                if !allowed.contains(&kind.as_str()) && dialect != SourceDialect::Json {
                    let near = did_you_mean(kind, allowed.iter().copied());
                    let message = format!(
                        "unknown message type `{kind}` for `source: {}`",
                        dialect_name(dialect)
                    );
                    let diagnostic = self.problem(
                        &list_pointer(&format!("{pointer}/type"), types, i),
                        Target::Value,
                        message,
                    );
                    diagnostic.help = Some(match near {
                        Some(near) => format!("did you mean `{near}`?"),
                        None => format!("expected one of: {}", allowed.join(", ")),
                    });
                }
                out.types.push(kind.as_str().into());
            }
        }
        if let Some(events) = &selector.event {
            if dialect == SourceDialect::Json {
                self.problem(
                    &format!("{pointer}/event"),
                    Target::Key,
                    "`event` needs a source dialect with event names; `source: json` has none",
                )
                .help = Some("select with `equals: { $.your.name.field: ... }` instead".into());
            }
            out.events = events
                .as_slice()
                .iter()
                .map(|e| e.as_str().into())
                .collect();
        }
        if let Some(exists) = &selector.exists {
            for (i, path) in exists.as_slice().iter().enumerate() {
                if let Some(p) =
                    self.path(&list_pointer(&format!("{pointer}/exists"), exists, i), path)
                {
                    out.exists.push(p);
                }
            }
        }
        if let Some(equals) = &selector.equals {
            for (path, value) in equals {
                let at = format!("{pointer}/equals/{}", escape_segment(path));
                if let Some(p) = self.path_at(&at, Target::Key, path) {
                    out.equals.push((p, value.clone()));
                }
            }
        }
        if let Some(not) = &selector.not {
            out.not = Some(Box::new(self.selector(&format!("{pointer}/not"), not)));
        }
        out
    }

    pub(super) fn path(&mut self, pointer: &str, text: &str) -> Option<Path> {
        self.path_at(pointer, Target::Value, text)
    }

    pub(super) fn path_at(&mut self, pointer: &str, target: Target, text: &str) -> Option<Path> {
        match Path::parse(text) {
            Ok(path) => Some(path),
            Err(why) => {
                let (message, at) = match unbalanced(text).or_else(|| parse_error_column(&why)) {
                    Some(column) => {
                        let rest: String = text.chars().skip(column - 1).collect();
                        if rest.is_empty() {
                            (
                                format!("invalid JSONPath `{text}`: it ends too early"),
                                None,
                            )
                        } else if let Some(what) = unclosed(&rest) {
                            (
                                format!("invalid JSONPath `{text}`: {what}"),
                                Some((column, rest.chars().take(1).collect())),
                            )
                        } else {
                            (
                                format!("invalid JSONPath `{text}`: unexpected `{rest}`"),
                                Some((column, rest)),
                            )
                        }
                    }
                    None => (why, None),
                };
                let diagnostic = self.problem(pointer, target, message);
                if let Some((column, rest)) = &at {
                    narrow_path(diagnostic, text, *column, rest);
                }
                if text.starts_with('$') {
                    diagnostic.help = Some(path_help(text, at.as_ref().map(|(c, _)| *c)));
                }
                None
            }
        }
    }
}

/// The 1-based character where the JSONPath parser stopped, read from its error text
/// (`... --> 1:10 ...`).
pub(super) fn parse_error_column(why: &str) -> Option<usize> {
    let (_, after) = why.split_once("--> 1:")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|&column| column >= 1)
}

/// The 1-based character of the first bracket or quote of `text` that is never closed.
pub(super) fn unbalanced(text: &str) -> Option<usize> {
    let mut open: Vec<(usize, char)> = Vec::new();
    let mut quote: Option<(usize, char)> = None;
    let mut escaped = false;
    for (i, c) in text.chars().enumerate() {
        if let Some((_, q)) = quote {
            match c {
                '\\' if !escaped => escaped = true,
                c if c == q && !escaped => quote = None,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some((i + 1, c)),
            '[' | '(' => open.push((i + 1, c)),
            ']' | ')' => {
                let want = if c == ']' { '[' } else { '(' };
                match open.pop() {
                    Some((_, o)) if o == want => {}
                    // A stray closing bracket: let the parser say what it expected.
                    _ => return None,
                }
            }
            _ => {}
        }
    }
    quote
        .map(|(at, _)| at)
        .or_else(|| open.first().map(|(at, _)| *at))
}

/// "this `[` is never closed", for the rest of a path that starts at an unclosed bracket or
/// quote.
pub(super) fn unclosed(rest: &str) -> Option<String> {
    let first = rest.chars().next()?;
    if !matches!(first, '[' | '(' | '\'' | '"') || unbalanced(rest) != Some(1) {
        return None;
    }
    let closing = match first {
        '[' => ']',
        '(' => ')',
        quote => quote,
    };
    Some(format!("this `{first}` is never closed with `{closing}`"))
}

/// Puts the caret of a JSONPath diagnostic under the part the parser could not read, when the
/// path is written on the diagnostic's line exactly as `text`.
pub(super) fn narrow_path(diagnostic: &mut Diagnostic, text: &str, column: usize, rest: &str) {
    let chars: Vec<char> = diagnostic.snippet.chars().collect();
    let needle: Vec<char> = text.chars().collect();
    let start = diagnostic.column.saturating_sub(1);
    // A quoted value starts one character after its quote.
    let begin = [start, start + 1]
        .into_iter()
        .find(|&at| chars.get(at..at + needle.len()) == Some(&needle[..]));
    if let Some(begin) = begin {
        diagnostic.column = begin + column;
        diagnostic.len = rest.chars().count();
    }
}

/// How to fix a JSONPath the parser rejected.
pub(super) fn path_help(text: &str, column: Option<usize>) -> String {
    let before = column.and_then(|c| text.chars().nth(c.checked_sub(2)?));
    let after = column.and_then(|c| text.chars().nth(c - 1));
    if let Some(column) = column
        && before == Some('[')
        && after.is_some_and(|c| c.is_alphabetic() || c == '_')
    {
        let head: String = text.chars().take(column - 1).collect();
        let name: String = text
            .chars()
            .skip(column - 1)
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let tail: String = text
            .chars()
            .skip(column - 1 + name.chars().count())
            .collect();
        return format!("quote the member name: `{head}'{name}'{tail}`");
    }
    "JSONPath reads like `$.traits.email`, `$.products[0].sku` or `$.traits['first name']`"
        .to_owned()
}
