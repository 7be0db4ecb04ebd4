//! JSONPath queries (wildcards and filters) evaluated on the event directly. jsonpath-rust
//! parses every query, but its evaluator builds the normalized path of every node it visits,
//! which made a filter over a few products cost more than the rest of the event's mapping. The
//! queries this module evaluates give the same nodes in the same order as jsonpath-rust's (the
//! tests below compare both on every query of the bundled mappings); a query using a function,
//! a descendant, a slice, or a filter directly on `@` is left to jsonpath-rust.

use jsonpath_rust::parser::model::{
    Comparable, Comparison, Filter, FilterAtom, JpQuery, Literal, Segment, Selector, SingularQuery,
    SingularQuerySegment, Test,
};
use serde_json::Value;

/// Whether [`select`] evaluates `query`.
pub(super) fn supported(query: &JpQuery) -> bool {
    query
        .segments
        .iter()
        .all(|segment| segment_supported(segment, false))
}

/// `in_filter`: the segment is part of a relative query inside a filter, where jsonpath-rust
/// evaluates a filter placed directly on `@` as a condition rather than as a selector.
fn segment_supported(segment: &Segment, in_filter: bool) -> bool {
    match segment {
        Segment::Descendant(_) => false,
        Segment::Selector(selector) => selector_supported(selector, in_filter),
        Segment::Selectors(selectors) => selectors.iter().all(|s| selector_supported(s, in_filter)),
    }
}

fn selector_supported(selector: &Selector, in_filter: bool) -> bool {
    match selector {
        Selector::Name(_) | Selector::Wildcard | Selector::Index(_) => true,
        Selector::Slice(..) => false,
        Selector::Filter(filter) => !in_filter && filter_supported(filter),
    }
}

fn filter_supported(filter: &Filter) -> bool {
    match filter {
        Filter::Or(filters) | Filter::And(filters) => filters.iter().all(filter_supported),
        Filter::Atom(FilterAtom::Filter { expr, .. }) => filter_supported(expr),
        Filter::Atom(FilterAtom::Test { expr, .. }) => match &**expr {
            Test::RelQuery(segments) => segments.iter().all(|s| segment_supported(s, true)),
            Test::AbsQuery(query) => supported(query),
            Test::Function(_) => false,
        },
        Filter::Atom(FilterAtom::Comparison(comparison)) => {
            let (left, right) = comparison.vals();
            !matches!(left, Comparable::Function(_)) && !matches!(right, Comparable::Function(_))
        }
    }
}

/// The nodes `query` selects from `root`, in jsonpath-rust's order.
pub(super) fn select<'a>(query: &JpQuery, root: &'a Value) -> Vec<&'a Value> {
    segments(&query.segments, vec![root], root)
}

fn segments<'a>(
    segments: &[Segment],
    mut nodes: Vec<&'a Value>,
    root: &'a Value,
) -> Vec<&'a Value> {
    for segment in segments {
        if nodes.is_empty() {
            break;
        }
        nodes = match segment {
            Segment::Selector(selector) => {
                let mut next = Vec::new();
                apply(selector, &nodes, root, &mut next);
                next
            }
            // Each selector over every node in turn, as jsonpath-rust joins them.
            Segment::Selectors(selectors) => {
                let mut next = Vec::new();
                for selector in selectors {
                    apply(selector, &nodes, root, &mut next);
                }
                next
            }
            Segment::Descendant(_) => unreachable!("descendant segments are left to jsonpath-rust"),
        };
    }
    nodes
}

fn apply<'a>(selector: &Selector, nodes: &[&'a Value], root: &'a Value, out: &mut Vec<&'a Value>) {
    for node in nodes {
        match (selector, node) {
            (Selector::Name(name), Value::Object(map)) => out.extend(map.get(name)),
            (Selector::Index(index), Value::Array(items)) => out.extend(at(items, *index)),
            (Selector::Wildcard, Value::Array(items)) => out.extend(items),
            (Selector::Wildcard, Value::Object(map)) => out.extend(map.values()),
            (Selector::Filter(filter), Value::Array(items)) => {
                out.extend(items.iter().filter(|item| holds(filter, item, root)));
            }
            (Selector::Filter(filter), Value::Object(map)) => {
                out.extend(map.values().filter(|item| holds(filter, item, root)));
            }
            _ => {}
        }
    }
}

/// The item at `index`, counted from the end when negative.
fn at(items: &[Value], index: i64) -> Option<&Value> {
    let position = if index >= 0 {
        usize::try_from(index).ok()?
    } else {
        items
            .len()
            .checked_sub(usize::try_from(index.unsigned_abs()).ok()?)?
    };
    items.get(position)
}

/// Whether `filter` holds for `current`.
fn holds(filter: &Filter, current: &Value, root: &Value) -> bool {
    match filter {
        Filter::Or(filters) => filters.iter().any(|f| holds(f, current, root)),
        Filter::And(filters) => filters.iter().all(|f| holds(f, current, root)),
        Filter::Atom(FilterAtom::Filter { expr, not }) => holds(expr, current, root) != *not,
        Filter::Atom(FilterAtom::Test { expr, not }) => {
            let found = match &**expr {
                Test::RelQuery(relative) => !segments(relative, vec![current], root).is_empty(),
                Test::AbsQuery(query) => !select(query, root).is_empty(),
                Test::Function(_) => unreachable!("functions are left to jsonpath-rust"),
            };
            found != *not
        }
        Filter::Atom(FilterAtom::Comparison(comparison)) => compare(comparison, current, root),
    }
}

/// One side of a comparison: a literal, the node a singular query finds, or nothing.
enum Operand<'a> {
    Literal(Value),
    Node(&'a Value),
    Nothing,
}

impl<'a> Operand<'a> {
    fn of(comparable: &Comparable, current: &'a Value, root: &'a Value) -> Operand<'a> {
        match comparable {
            Comparable::Literal(literal) => Operand::Literal(match literal {
                Literal::Int(n) => Value::from(*n),
                Literal::Float(n) => Value::from(*n),
                Literal::String(s) => Value::from(s.as_str()),
                Literal::Bool(b) => Value::Bool(*b),
                Literal::Null => Value::Null,
            }),
            Comparable::SingularQuery(query) => {
                let (mut node, steps) = match query {
                    SingularQuery::Current(steps) => (current, steps),
                    SingularQuery::Root(steps) => (root, steps),
                };
                for step in steps {
                    let next = match (step, node) {
                        (SingularQuerySegment::Name(name), Value::Object(map)) => map.get(name),
                        (SingularQuerySegment::Index(index), Value::Array(items)) => {
                            at(items, *index)
                        }
                        _ => None,
                    };
                    match next {
                        Some(next) => node = next,
                        None => return Operand::Nothing,
                    }
                }
                Operand::Node(node)
            }
            Comparable::Function(_) => unreachable!("functions are left to jsonpath-rust"),
        }
    }

    fn value(&self) -> Option<&Value> {
        match self {
            Operand::Literal(value) => Some(value),
            Operand::Node(value) => Some(value),
            Operand::Nothing => None,
        }
    }
}

fn compare(comparison: &Comparison, current: &Value, root: &Value) -> bool {
    let (left, right) = comparison.vals();
    let left = Operand::of(left, current, root);
    let right = Operand::of(right, current, root);
    match comparison {
        Comparison::Eq(..) => equal(&left, &right),
        Comparison::Ne(..) => !equal(&left, &right),
        Comparison::Lt(..) => less(&left, &right),
        Comparison::Lte(..) => less(&left, &right) || equal(&left, &right),
        Comparison::Gt(..) => less(&right, &left),
        Comparison::Gte(..) => less(&right, &left) || equal(&left, &right),
    }
}

/// Two missing values are equal; numbers compare by value; anything else as JSON.
fn equal(left: &Operand<'_>, right: &Operand<'_>) -> bool {
    match (left.value(), right.value()) {
        (Some(left), Some(right)) => match (left.as_f64(), right.as_f64()) {
            (Some(l), Some(r)) => (l - r).abs() < f64::EPSILON,
            _ => left == right,
        },
        (None, None) => true,
        _ => false,
    }
}

/// Numbers and strings are ordered; nothing else is.
fn less(left: &Operand<'_>, right: &Operand<'_>) -> bool {
    let (Some(left), Some(right)) = (left.value(), right.value()) else {
        return false;
    };
    if let (Some(l), Some(r)) = (left.as_f64(), right.as_f64()) {
        l < r
    } else if let (Some(l), Some(r)) = (left.as_str(), right.as_str()) {
        l < r
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path as FilePath;

    use jsonpath_rust::parser::parse_json_path;
    use jsonpath_rust::query::js_path_process;
    use serde_json::{Value, json};

    use super::{select, supported};

    /// The nodes jsonpath-rust selects, as addresses, beside the ones `select` does.
    fn both(text: &str, document: &Value) -> Option<(Vec<*const Value>, Vec<*const Value>)> {
        let query = parse_json_path(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        if !supported(&query) {
            return None;
        }
        let theirs = js_path_process(&query, document)
            .map(|found| {
                found
                    .into_iter()
                    .map(|r| std::ptr::from_ref(r.val()))
                    .collect()
            })
            .unwrap_or_default();
        let ours = select(&query, document)
            .into_iter()
            .map(std::ptr::from_ref)
            .collect();
        Some((theirs, ours))
    }

    /// Every string of a YAML document that is a JSONPath query, with `$event`, `$item`,
    /// `$settings` and `$computed` read as `$`.
    fn queries_in(yaml: &serde_yaml::Value, out: &mut Vec<String>) {
        match yaml {
            serde_yaml::Value::String(text) if text.starts_with('$') => {
                let rest = ["$event", "$item", "$settings", "$computed", "$"]
                    .iter()
                    .find_map(|root| text.strip_prefix(root));
                if let Some(rest) = rest
                    && (rest.contains('[') && !rest.starts_with(char::is_alphanumeric))
                    && parse_json_path(&format!("${rest}")).is_ok()
                {
                    out.push(format!("${rest}"));
                }
            }
            serde_yaml::Value::Sequence(items) => items.iter().for_each(|v| queries_in(v, out)),
            serde_yaml::Value::Mapping(map) => {
                for (key, value) in map {
                    queries_in(key, out);
                    queries_in(value, out);
                }
            }
            serde_yaml::Value::Tagged(tagged) => queries_in(&tagged.value, out),
            _ => {}
        }
    }

    #[test]
    fn selects_what_jsonpath_rust_selects() {
        let root = FilePath::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut queries: Vec<String> = [
            "$.a[*]",
            "$.a.*",
            "$.o.*",
            "$.a[0]",
            "$.a[-1]",
            "$.a[-9]",
            "$.a[9]",
            "$['a','o']",
            "$.a[0,1]",
            "$.a[?@.k == 'x']",
            "$.a[?@.k != 'x']",
            "$.a[?(@.n > 1)]",
            "$.a[?@.n >= 1.0]",
            "$.a[?@.n < 2 || @.k]",
            "$.a[?!@.k && @ != null]",
            "$.a[?@.k == null]",
            "$.a[?@.missing == @.other]",
            "$.a[?@.s < 'b']",
            "$.a[?@.l[0] == 1]",
            "$.a[?@.k == $.o.k]",
            "$.a[?$.o.k]",
            "$.a[?$.o.none]",
            "$.a[?(@.k == 'x' || (@.n == 2 && !@.l))]",
            "$.a[?@.o.k == 'v']",
            "$.a[?@.o]",
            "$.o[?@ == 'v']",
            "$[?@.k]",
            "$.a[?@ == true]",
            "$.a[?@.l == @.l]",
            "$.a[*].k",
            "$.a[?@.n == 2].k",
            "$.nope[*]",
            "$.a[?@.*]",
            "$.a[?@[?@.k]]",
            "$..k",
            "$.a[0:2]",
            "$.a[?length(@.s) > 1]",
        ]
        .map(String::from)
        .to_vec();
        for entry in std::fs::read_dir(root.join("mappings")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
            queries_in(&yaml, &mut queries);
        }
        let mut documents = vec![json!({
            "a": [{"k": "x", "n": 1}, {"k": "y", "n": 2, "l": [1]}, null, {"n": 2.0, "s": "a"},
                  {"o": {"k": "v"}, "s": "c", "l": [1]}, true, {"k": null}, [1, 2]],
            "o": {"k": "v", "z": "v", "n": 1},
        })];
        for entry in std::fs::read_dir(root.join("examples")).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            documents.extend(
                text.lines()
                    .filter_map(|line| serde_json::from_str(line).ok()),
            );
        }
        let (mut compared, mut left) = (0, 0);
        for query in &queries {
            for document in &documents {
                match both(query, document) {
                    Some((theirs, ours)) => {
                        assert_eq!(theirs, ours, "{query} on {document}");
                        compared += 1;
                    }
                    None => left += 1,
                }
            }
        }
        assert!(
            compared > 1000 && left > 0,
            "{compared} compared, {left} left to jsonpath-rust"
        );
    }
}
