//! The loader targets: a mapping file and `ferry.yaml`, as text. Every input loads or is refused
//! with located diagnostics that render; never a panic, and (libFuzzer's `-timeout`) never a hang.

use std::sync::Arc;

use ferry_spec::{Diagnostics, Target, escape_segment};

/// The file name the targets give the text.
pub const FILE: &str = "fuzz.yaml";

/// The lines of `text` as YAML counts them: a line ends at `\n`, `\r\n` or a lone `\r`.
fn yaml_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            Some(at) => {
                lines.push(&rest[..at]);
                rest = &rest[at + if rest[at..].starts_with("\r\n") { 2 } else { 1 }..];
            }
            None => {
                lines.push(rest);
                rest = "";
            }
        }
    }
    lines
}

/// Every diagnostic names the file, sits inside the text and shows the line it names, and
/// renders.
fn check_refusal(text: &str, problems: &Diagnostics) {
    assert!(!problems.0.is_empty(), "a refusal without a reason");
    let lines = yaml_lines(text);
    for problem in &problems.0 {
        assert_eq!(problem.file, FILE);
        assert!(!problem.message.is_empty());
        assert!(
            problem.line <= lines.len() + 1,
            "a problem at line {} of a text of {} lines: {}",
            problem.line,
            lines.len(),
            problem.message
        );
        if let Some(line) = problem.line.checked_sub(1).and_then(|i| lines.get(i)) {
            // The line, or the part of it the snippet says it begins at (a long line is cut
            // around the place), with the place inside it.
            let shown: String = line
                .chars()
                .skip(problem.snippet_from as usize - 1)
                .take(problem.snippet.chars().count())
                .collect();
            assert_eq!(
                problem.snippet, shown,
                "the line shown is not line {} from column {}: {}",
                problem.line, problem.snippet_from, problem.message
            );
            if problem.snippet_from > 1 {
                assert!(
                    problem.column >= problem.snippet_from as usize
                        && problem.column - problem.snippet_from as usize
                            <= problem.snippet.chars().count(),
                    "column {} lies outside the part of line {} shown from column {}",
                    problem.column,
                    problem.line,
                    problem.snippet_from
                );
            }
        }
        let _ = problem.to_string();
    }
    let _ = problems.to_string();
}

/// The whole input is a mapping file.
pub fn mapping(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ferry_engine::load_str(FILE, text) {
        Ok(mapping) => {
            // What compiles also loads on its own, and binds or explains its settings.
            assert!(ferry_spec::load_str(FILE, text).is_ok());
            if let Err(error) =
                ferry_engine::Connection::new(Arc::new(mapping), &Default::default())
            {
                assert!(!error.problems.is_empty());
                let _ = error.to_string();
            }
        }
        Err(problems) => check_refusal(text, &problems),
    }
}

/// The whole input is a `ferry.yaml`.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let document = match ferry_spec::load_config_str(FILE, text) {
        Ok(document) => document,
        Err(problems) => return check_refusal(text, &problems),
    };
    // What `ferry serve`'s setup does next without the file system: resolve `${VAR}` in keys and
    // locate a problem at any source or connection, whatever their names (line 0 when YAML
    // aliases leave it no place in the text).
    let config = &document.config;
    for (name, source) in &config.sources {
        for (i, key) in source.keys.iter().enumerate() {
            let _ = ferry_server::interpolate(key);
            let pointer = format!("/sources/{}/keys/{i}", escape_segment(name));
            let problem = document.diagnostic(&pointer, Target::Value, "a problem");
            let _ = problem.to_string();
        }
    }
    for name in config.connections.keys() {
        for (pointer, target) in [
            (
                format!("/connections/{}", escape_segment(name)),
                Target::Key,
            ),
            (
                format!("/connections/{}/mapping", escape_segment(name)),
                Target::Value,
            ),
        ] {
            let problem = document.diagnostic(&pointer, target, "a problem");
            let _ = problem.to_string();
        }
    }
}
