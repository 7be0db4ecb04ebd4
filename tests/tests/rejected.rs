//! Snapshots of the diagnostics for mappings that must be rejected: one fixture per kind of
//! author mistake in `fixtures/rejected/`, each rendered exactly as `ferry validate` shows it.

use std::path::Path;

use ferry_spec::Diagnostics;

/// The name a fixture is reported under: relative, so snapshots do not depend on the machine.
fn relative_name(path: &Path) -> String {
    let file = path
        .file_name()
        .and_then(|name| name.to_str())
        .expect("fixture names are UTF-8");
    format!("fixtures/rejected/{file}")
}

/// Loads a fixture that must not compile, and returns its diagnostics.
fn rejected(name: &str, text: &str) -> Diagnostics {
    match ferry_engine::load_str(name, text) {
        Ok(_) => panic!("{name} compiled, but it is a rejected-mapping fixture: it must not"),
        Err(diagnostics) => diagnostics,
    }
}

#[test]
fn rejected_mappings_are_explained() {
    // insta refuses `..` inside the pattern itself, so the directory is the base argument.
    insta::glob!("../fixtures/rejected", "*.yaml", |path| {
        let text = std::fs::read_to_string(path).expect("readable fixture");
        let name = relative_name(path);
        assert!(
            text.starts_with("# "),
            "{name} must start with a comment naming its mistake"
        );
        let diagnostics = rejected(&name, &text);
        assert!(
            diagnostics.0.iter().all(|d| d.file == name),
            "{name}: every diagnostic names the fixture"
        );
        insta::assert_snapshot!(diagnostics.to_string());
    });
}

#[test]
fn every_mistake_in_a_file_is_reported_at_once() {
    let name = "fixtures/rejected/several_mistakes.yaml";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    let text = std::fs::read_to_string(&path).expect("readable fixture");
    let diagnostics = rejected(name, &text);
    let lines: Vec<usize> = diagnostics.0.iter().map(|d| d.line).collect();
    assert_eq!(
        diagnostics.0.len(),
        MISTAKES_IN_SEVERAL_MISTAKES,
        "expected one diagnostic per mistake, got lines {lines:?}:\n{diagnostics}"
    );
}

/// The distinct mistakes written into `several_mistakes.yaml` (each one marked by a comment).
const MISTAKES_IN_SEVERAL_MISTAKES: usize = 5;

#[test]
fn structural_problems_in_one_action_do_not_hide_semantic_problems_elsewhere() {
    let name = "fixtures/rejected/structural_and_semantic.yaml";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    let text = std::fs::read_to_string(&path).expect("readable fixture");
    let diagnostics = rejected(name, &text);
    let messages: Vec<&str> = diagnostics.0.iter().map(|d| d.message.as_str()).collect();
    // The `track` action has a structural mistake, so it is set aside whole; the semantic
    // mistakes in `http` and in `identify` are still found in the same pass.
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`actions.track.request.method` must be one of")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`settings.apikey`, which is not declared")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("unknown message type `identfy`")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("invalid JSONPath")),
        "{messages:?}"
    );
    assert_eq!(messages.len(), 4, "{messages:?}");
}

/// Every problem of a fixture carries the kind of mistake it is: tools and tests tell problems
/// apart by kind, not by their messages.
#[test]
fn each_problem_carries_its_kind() {
    use ferry_spec::DiagnosticKind as Kind;
    let expected: &[(&str, &[Kind])] = &[
        ("member_written_twice", &[Kind::DuplicateName]),
        ("header_set_twice", &[Kind::Header, Kind::Header]),
        ("batch_wrap_without_name", &[Kind::Batch, Kind::Batch]),
        (
            "template_unknown_filter",
            &[Kind::Template, Kind::Template, Kind::Template],
        ),
        ("computed_not_known", &[Kind::Computed, Kind::Computed]),
        ("item_outside_for_each", &[Kind::Path, Kind::Step]),
        ("body_format_mismatch", &[Kind::Request, Kind::Batch]),
        ("item_errors_on_success", &[Kind::Batch]),
        (
            "setting_rules_unknown",
            &[Kind::Setting, Kind::Setting, Kind::Setting],
        ),
        (
            "operations_invalid",
            &[
                Kind::Operation,
                Kind::Operation,
                Kind::Operation,
                Kind::Operation,
                Kind::Operation,
                Kind::Operation,
            ],
        ),
        ("merge_key_not_a_mapping", &[Kind::Structure]),
        ("unknown_key", &[Kind::Structure]),
        ("yaml_syntax_error", &[Kind::Syntax]),
        ("bad_jsonpath", &[Kind::Path]),
        ("recall_without_remember", &[Kind::Recall]),
        (
            "names_setting_member",
            &[Kind::Setting, Kind::Setting, Kind::Setting],
        ),
        (
            "flatten_rule_invalid",
            &[Kind::Field, Kind::Field, Kind::Field, Kind::Field],
        ),
        (
            "single_value_rules",
            &[Kind::Field, Kind::Field, Kind::Field, Kind::Operation],
        ),
        (
            "index_outside_for_each",
            &[Kind::Path, Kind::Template, Kind::Path],
        ),
        ("failure_rules_invalid", &[Kind::Path]),
    ];
    for (fixture, kinds) in expected {
        let name = format!("fixtures/rejected/{fixture}.yaml");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(&name);
        let text = std::fs::read_to_string(&path).expect("readable fixture");
        let found: Vec<ferry_spec::DiagnosticKind> =
            rejected(&name, &text).0.iter().map(|d| d.kind).collect();
        assert_eq!(&found, kinds, "{fixture}");
    }
}
