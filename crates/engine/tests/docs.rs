//! The reference in docs/writing-a-mapping.md lists exactly the filters, tests and functions a
//! mapping's templates have.

mod support;

use support::HEAD;

/// The names listed after `**Label:**` in the reference, up to the next blank line.
fn documented(label: &str) -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/writing-a-mapping.md"
    );
    let doc = std::fs::read_to_string(path).expect("the reference is readable");
    let start = doc
        .find(&format!("**{label}:**"))
        .unwrap_or_else(|| panic!("the reference lists the {label}"));
    let section = doc[start..].split("\n\n").next().expect("a paragraph");
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Whether a template using `source` loads.
fn loads(source: &str) -> bool {
    let text = format!(
        "{HEAD}actions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n      body:\n        x: {{ template: {source:?} }}\n"
    );
    ferry_engine::load_str("docs.yaml", &text).is_ok()
}

/// Names of Jinja2's built-ins and of minijinja's contributed ones: none may be known to ferry's
/// templates without being documented.
const CANDIDATE_FILTERS: &[&str] = &[
    "center",
    "datetimeformat",
    "dateformat",
    "filesizeformat",
    "forceescape",
    "pluralize",
    "random",
    "striptags",
    "timeformat",
    "truncate",
    "urlencode",
    "urlize",
    "wordcount",
    "wordwrap",
    "xmlattr",
];
const CANDIDATE_TESTS: &[&str] = &["callable", "empty", "positive", "none_or_empty"];
const CANDIDATE_FUNCTIONS: &[&str] = &["cycler", "joiner", "lipsum", "now", "datetimeformat"];

#[test]
fn the_documented_filters_tests_and_functions_are_exactly_those_templates_have() {
    let filters = documented("Filters");
    let tests = documented("Tests");
    let functions = documented("Functions");
    assert!(filters.len() > 40 && tests.len() > 30 && !functions.is_empty());
    for name in &filters {
        assert!(
            loads(&format!("{{{{ event.x|{name} }}}}")),
            "filter `{name}`"
        );
    }
    for name in &tests {
        // `==` and the like are named only where a test is chosen by name, as in `select`.
        assert!(
            loads(&format!("{{% if event.x is {name}(1) %}}y{{% endif %}}"))
                || loads(&format!("{{% if event.x is {name} %}}y{{% endif %}}"))
                || loads(&format!("{{{{ event.x|select({name:?}, 1)|list }}}}")),
            "test `{name}`"
        );
    }
    for name in &functions {
        assert!(loads(&format!("{{{{ {name}() }}}}")), "function `{name}`");
    }
    for name in CANDIDATE_FILTERS {
        let known = loads(&format!("{{{{ event.x|{name} }}}}"));
        assert_eq!(known, filters.iter().any(|f| f == name), "filter `{name}`");
    }
    for name in CANDIDATE_TESTS {
        let known = loads(&format!("{{% if event.x is {name} %}}y{{% endif %}}"));
        assert_eq!(known, tests.iter().any(|t| t == name), "test `{name}`");
    }
    for name in CANDIDATE_FUNCTIONS {
        let known = loads(&format!("{{{{ {name}() }}}}"));
        assert_eq!(
            known,
            functions.iter().any(|f| f == name),
            "function `{name}`"
        );
    }
}
