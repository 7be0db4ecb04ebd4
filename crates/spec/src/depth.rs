//! A bound on how deeply a YAML document nests, checked before anything else reads it.
//!
//! The YAML parsers' simple-key bookkeeping, the source map's pointers and the JSON Schema
//! validator all do work that grows with the depth of every node, so a deeply nested document
//! (40,000 flow levels in 200 KB) costs time quadratic in its depth. This check reads the
//! document's events only until it passes [`MAX_DEPTH`], so the parser never holds more than
//! that many open collections: refusing such a document takes time linear in its size.

use yaml_rust2::parser::{Event, Parser};

use crate::source_map::Span;

/// How many mappings and lists may nest inside one another. A mapping's deepest body field sits
/// about 15 levels down; anything past this is a mistake or an attack, not a mapping.
pub const MAX_DEPTH: usize = 64;

/// Where the document first nests deeper than [`MAX_DEPTH`], if it does. A syntax error ends the
/// check without a finding: the parsers that come next report it.
pub(crate) fn too_deep(text: &str) -> Option<Span> {
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            // The scanner has a flow-nesting limit of its own, past ours: the same finding.
            Err(error) if error.info().contains("recursion limit") => {
                let mark = error.marker();
                return Some(Span {
                    line: mark.line().max(1),
                    column: mark.col() + 1,
                    len: 1,
                });
            }
            Err(_) => return None,
        };
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(Span {
                        line: mark.line().max(1),
                        column: mark.col() + 1,
                        len: 1,
                    });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            Event::StreamEnd => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(levels: usize) -> String {
        format!("a: {}1{}\n", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn allows_the_limit_and_refuses_one_more() {
        // `a:` is the document's mapping: one level before the lists.
        assert_eq!(too_deep(&flow(MAX_DEPTH - 1)), None);
        let at = too_deep(&flow(MAX_DEPTH)).expect("one level too deep");
        assert_eq!((at.line, at.column), (1, 4 + MAX_DEPTH - 1));
    }

    #[test]
    fn counts_block_nesting_too() {
        let mut text = String::new();
        for level in 0..=MAX_DEPTH {
            text.push_str(&"  ".repeat(level));
            text.push_str("k:\n");
        }
        text.push_str(&"  ".repeat(MAX_DEPTH + 1));
        text.push_str("v: 1\n");
        assert!(too_deep(&text).is_some());
    }

    #[test]
    fn leaves_syntax_errors_to_the_parser() {
        assert_eq!(too_deep("a: [1, 2\nb: }"), None);
    }
}
