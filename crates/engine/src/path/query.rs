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

use super::member;

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
            (Selector::Name(name), Value::Object(map)) => out.extend(member(map, name)),
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
                Test::RelQuery(relative) => match walk_singular(relative, current) {
                    Some(found) => found,
                    None => !segments(relative, vec![current], root).is_empty(),
                },
                Test::AbsQuery(query) => match walk_singular(&query.segments, root) {
                    Some(found) => found,
                    None => !select(query, root).is_empty(),
                },
                Test::Function(_) => unreachable!("functions are left to jsonpath-rust"),
            };
            found != *not
        }
        Filter::Atom(FilterAtom::Comparison(comparison)) => compare(comparison, current, root),
    }
}

/// Whether a query of names and indexes alone (`@.a.b`, `$.a[0]`) selects a node, walked
/// without lists of nodes; `None` for a query of any other step.
fn walk_singular(segments: &[Segment], from: &Value) -> Option<bool> {
    let mut node = from;
    for segment in segments {
        let next = match segment {
            Segment::Selector(Selector::Name(name)) => match node {
                Value::Object(map) => member(map, name),
                _ => None,
            },
            Segment::Selector(Selector::Index(index)) => match node {
                Value::Array(items) => at(items, *index),
                _ => None,
            },
            _ => return None,
        };
        match next {
            Some(next) => node = next,
            // Nothing selected: no later step selects anything either.
            None => return Some(false),
        }
    }
    Some(true)
}

/// One side of a comparison: a literal of the query, the node a singular query selects, or
/// nothing. Literals are compared where they are, never made into values per item.
enum Operand<'a> {
    Literal(&'a Literal),
    Node(&'a Value),
    Nothing,
}

impl<'a> Operand<'a> {
    fn of(comparable: &'a Comparable, current: &'a Value, root: &'a Value) -> Operand<'a> {
        match comparable {
            Comparable::Literal(literal) => Operand::Literal(literal),
            Comparable::SingularQuery(query) => {
                let (mut node, steps) = match query {
                    SingularQuery::Current(steps) => (current, steps),
                    SingularQuery::Root(steps) => (root, steps),
                };
                for step in steps {
                    let next = match (step, node) {
                        (SingularQuerySegment::Name(name), Value::Object(map)) => member(map, name),
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

    /// The number, as a JSON value holding it reads as `f64`. A float literal beyond `f64`
    /// stands for `null`, as JSON has no such number.
    fn number(&self) -> Option<f64> {
        match self {
            Operand::Node(value) => value.as_f64(),
            #[allow(clippy::cast_precision_loss)] // as serde_json reads an i64 as f64
            Operand::Literal(Literal::Int(n)) => Some(*n as f64),
            Operand::Literal(Literal::Float(n)) => n.is_finite().then_some(*n),
            Operand::Literal(_) | Operand::Nothing => None,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Operand::Node(value) => value.as_str(),
            Operand::Literal(Literal::String(text)) => Some(text),
            Operand::Literal(_) | Operand::Nothing => None,
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

fn equal(left: &Operand<'_>, right: &Operand<'_>) -> bool {
    if let (Some(l), Some(r)) = (left.number(), right.number()) {
        return (l - r).abs() < f64::EPSILON;
    }
    match (left, right) {
        (Operand::Nothing, Operand::Nothing) => true,
        (Operand::Nothing, _) | (_, Operand::Nothing) => false,
        (Operand::Node(l), Operand::Node(r)) => l == r,
        (Operand::Literal(literal), Operand::Node(node))
        | (Operand::Node(node), Operand::Literal(literal)) => literal_is(literal, node),
        (Operand::Literal(l), Operand::Literal(r)) => match (l, r) {
            (Literal::String(l), Literal::String(r)) => l == r,
            (Literal::Bool(l), Literal::Bool(r)) => l == r,
            (l, r) => is_null(l) && is_null(r),
        },
    }
}

/// Whether `literal` is the value `node` (numbers aside, compared as numbers before).
fn literal_is(literal: &Literal, node: &Value) -> bool {
    match (literal, node) {
        (Literal::String(text), Value::String(other)) => text == other,
        (Literal::Bool(b), Value::Bool(other)) => b == other,
        (literal, Value::Null) => is_null(literal),
        _ => false,
    }
}

/// `null`, or a float literal JSON cannot hold (which serde_json makes `null`).
fn is_null(literal: &Literal) -> bool {
    match literal {
        Literal::Null => true,
        Literal::Float(n) => !n.is_finite(),
        _ => false,
    }
}

fn less(left: &Operand<'_>, right: &Operand<'_>) -> bool {
    if let (Some(l), Some(r)) = (left.number(), right.number()) {
        l < r
    } else if let (Some(l), Some(r)) = (left.text(), right.text()) {
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
            "$.a[?@ == false]",
            "$.a[?@.b == false]",
            "$.a[?@.n == 1.0]",
            "$.a[?@.n != 2]",
            "$.a[?@.n < 1.5]",
            "$.a[?@.s > 'b']",
            "$.a[?@.k != null]",
            "$.a[?@.b != true]",
            "$.a[?@.l[0]]",
            "$.a[?@.l[5]]",
            "$.a[?!@.o.k]",
            "$.a[?'v' == $.o.z]",
            "$.a[?$.o.n == 1]",
            "$.a[?1 == 1.0]",
            "$.a[?null == null]",
            "$.a[?'a' < 'b']",
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
                  {"o": {"k": "v"}, "s": "c", "l": [1]}, true, {"k": null}, [1, 2], false, {"b": false, "n": -1}],
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
