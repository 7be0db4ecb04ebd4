//! JSONPaths in a mapping: compiled once, and when one cannot be read, a diagnostic whose caret
//! sits under the part the parser stopped at. Paths rooted at `$key`, `$item`, `$settings` and
//! `$computed` are checked against what they can read where they are written.

use ferry_spec::{Diagnostic, DiagnosticKind, Pointer, Target, did_you_mean};

use crate::path::{Path, Root, Segment};

use super::Compiler;

impl Compiler<'_> {
    pub(super) fn path(&mut self, pointer: &Pointer, text: &str) -> Option<Path> {
        self.path_at(pointer, Target::Value, text)
    }

    pub(super) fn path_at(
        &mut self,
        pointer: &Pointer,
        target: Target,
        text: &str,
    ) -> Option<Path> {
        match Path::parse(text) {
            Ok(mut path) => {
                self.parents.assign(&mut path);
                self.check_root(pointer, target, path)
            }
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
                let diagnostic = self.problem(DiagnosticKind::Path, pointer, target, message);
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

    /// A path whose root can be read where it is written.
    fn check_root(&mut self, pointer: &Pointer, target: Target, mut path: Path) -> Option<Path> {
        let first = || match path.segments().and_then(<[Segment]>::first) {
            Some(Segment::Key(name)) => Some(name.to_string()),
            _ => None,
        };
        match path.root() {
            Root::Key if self.entries_depth == 0 => {
                self.problem(DiagnosticKind::Path, pointer, target, "`$key` is the key of an entry, and only `entries` has entries")
                    .help = Some("read the key inside a field with `entries: $...`, or use a path such as `$.name`".into());
                None
            }
            Root::Item | Root::Index if !self.for_each_in_scope => {
                let root = path.root().as_str();
                let what = if path.root() == Root::Item {
                    "the item"
                } else {
                    "the position of the item"
                };
                self.problem(
                    DiagnosticKind::Path,
                    pointer,
                    target,
                    format!(
                        "`{root}` is {what} of the action's `for_each`, and this action has none"
                    ),
                )
                .help =
                    Some("add `for_each: $...` to the action, or read the event with `$.`".into());
                None
            }
            Root::Scope | Root::Event | Root::Key | Root::Item | Root::Index => Some(path),
            Root::Settings => {
                let Some(name) = first() else {
                    self.problem(
                        DiagnosticKind::Path,
                        pointer,
                        target,
                        "`$settings` needs the name of a setting: `$settings.NAME`",
                    );
                    return None;
                };
                self.setting_ref_at(pointer, target, &name)?;
                Some(path)
            }
            Root::Computed => {
                let Some(name) = first() else {
                    self.problem(
                        DiagnosticKind::Path,
                        pointer,
                        target,
                        "`$computed` needs the name of a computed value: `$computed.NAME`",
                    );
                    return None;
                };
                if let Some(slot) = self.computed_known.iter().position(|known| *known == name) {
                    path.set_computed_slot(slot);
                    return Some(path);
                }
                let declared = self.mapping().computed.contains_key(&name);
                let near = did_you_mean(&name, self.computed_known.iter().map(String::as_str))
                    .map(str::to_owned);
                let diagnostic = self.problem(
                    DiagnosticKind::Computed,
                    pointer,
                    target,
                    if declared {
                        format!("computed value `{name}` is computed after this one, so it is not known here")
                    } else {
                        format!("no computed value is named `{name}`")
                    },
                );
                diagnostic.help = Some(match (declared, near) {
                    (true, _) => {
                        "a computed value reads only those written before it: move it up".into()
                    }
                    (false, Some(near)) => format!("did you mean `$computed.{near}`?"),
                    (false, None) => "declare it under `computed:`".into(),
                });
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
    for root in [Root::Key, Root::Index] {
        if text
            .strip_prefix(root.as_str())
            .is_some_and(|rest| rest.starts_with(['.', '[']))
        {
            return format!("write `{}` alone: it is one value", root.as_str());
        }
    }
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
