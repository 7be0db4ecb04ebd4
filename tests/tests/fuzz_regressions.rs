//! Inputs the fuzz targets (`fuzz/`, `fuzz/run`) found, fed through the functions they broke.
//! Each is also kept in the target's corpus (`fuzz/seeds/<target>/regression-*`).

/// The lines of `text` as YAML counts them: `\n`, `\r\n` and a lone `\r` each end one.
fn yaml_lines(text: &str) -> Vec<&str> {
    text.split("\r\n")
        .flat_map(|part| part.split(['\n', '\r']))
        .collect()
}

/// Each problem shows the line it names, and renders with that line.
fn assert_located(text: &str, problems: &ferry_spec::Diagnostics) {
    let lines = yaml_lines(text);
    for problem in &problems.0 {
        assert!(problem.line >= 1, "{problem}");
        assert_eq!(problem.snippet, lines[problem.line - 1], "{problem}");
        let rendered = problem.to_string();
        assert!(
            rendered.contains(&format!("{} | {}", problem.line, problem.snippet)),
            "{rendered}"
        );
    }
}

/// A lone carriage return ends a line for the YAML parsers; diagnostics showed the line that
/// `str::lines` numbered the same, which could be another line or none (fuzz target
/// `config_load`).
#[test]
fn a_configuration_problem_after_a_lone_carriage_return_shows_its_own_line() {
    let text = "#Thdefinitguses \r\r\r\rwhen no ppings: mappings\ndata: f# Te";
    let problems = ferry_spec::load_config_str("ferry.yaml", text).expect_err("an unknown key");
    assert_eq!(problems.0[0].line, 5);
    assert_eq!(problems.0[0].snippet, "when no ppings: mappings");
    assert_located(text, &problems);
}

/// The same in a mapping, where the YAML parser reports a syntax error (fuzz target
/// `mapping_load`).
#[test]
fn a_mapping_syntax_error_after_lone_carriage_returns_shows_its_own_line() {
    let mapping = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/extole.yaml"),
    )
    .expect("extole.yaml can be read");
    let broken = format!("            p{} email:", "\r".repeat(300));
    let text = mapping.replacen("            email:", &broken, 1);
    assert_ne!(text, mapping, "extole.yaml has an `email:` field to break");
    let problems = ferry_engine::load_str("extole.yaml", &text).expect_err("a syntax error");
    assert_located(&text, &problems);
}
