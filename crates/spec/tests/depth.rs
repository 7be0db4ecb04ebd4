//! Deeply nested YAML is refused with a located problem before any work that grows with the
//! square of the depth, in mappings and in `ferry.yaml` alike.

use std::time::{Duration, Instant};

use ferry_spec::MAX_DEPTH;

/// `levels` flow mappings inside one another under `key`, all on line `line`.
fn nested(levels: usize) -> String {
    format!("{}1{}", "{a: ".repeat(levels), "}".repeat(levels))
}

fn mapping(levels: usize) -> String {
    format!(
        "version: 1\nname: deep\nsource: segment\nhttp: {{ base_url: https://x.example }}\nactions:\n  a:\n    when: {{}}\n    request:\n      method: POST\n      path: /\n      body:\n        f: {{ value: {} }}\n",
        nested(levels)
    )
}

#[test]
fn a_mapping_nested_past_the_limit_is_refused_where_it_goes_too_deep() {
    let problems = ferry_spec::load_str("deep.yaml", &mapping(100)).unwrap_err();
    assert_eq!(problems.0.len(), 1, "{problems}");
    let problem = &problems.0[0];
    assert_eq!(problem.line, 12, "{problems}");
    assert!(
        problem
            .message
            .contains(&format!("nests more than {MAX_DEPTH} levels")),
        "{problems}"
    );
    let shown = problems.to_string();
    assert!(shown.contains("deep.yaml:12:"), "{shown}");
}

#[test]
fn a_mapping_within_the_limit_still_loads() {
    // The body field's value starts 7 levels down; it may take the rest.
    ferry_spec::load_str("deep.yaml", &mapping(MAX_DEPTH - 6)).unwrap_or_else(|d| panic!("{d}"));
    assert!(ferry_spec::load_str("deep.yaml", &mapping(MAX_DEPTH - 5)).is_err());
}

#[test]
fn a_configuration_nested_past_the_limit_is_refused() {
    let text = format!(
        "version: 1\nsources: {{ web: {{ type: segment, keys: [k] }} }}\nconnections:\n  c:\n    source: web\n    mapping: m\n    settings: {{ x: {} }}\n",
        nested(100)
    );
    let problems = ferry_spec::load_config_str("ferry.yaml", &text).unwrap_err();
    assert_eq!(problems.0.len(), 1, "{problems}");
    assert_eq!(problems.0[0].line, 7, "{problems}");
    assert!(
        problems.0[0]
            .message
            .starts_with("the configuration nests more than"),
        "{problems}"
    );
}

#[test]
fn a_hundred_thousand_levels_are_refused_at_once() {
    for text in [
        mapping(100_000),
        format!("a: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000)),
    ] {
        let started = Instant::now();
        let problems = ferry_spec::load_str("deep.yaml", &text).unwrap_err();
        let took = started.elapsed();
        assert_eq!(problems.0.len(), 1, "{problems}");
        assert!(
            problems.0[0].message.contains("nests more than"),
            "{problems}"
        );
        // The snippet is cut around the place, not the whole 500 KB line.
        assert!(problems.0[0].snippet.len() < 200);
        // A sanity guard only, far above the few milliseconds this takes: quadratic parsing
        // took close to a minute.
        assert!(took < Duration::from_secs(10), "took {took:?}");
    }
}
