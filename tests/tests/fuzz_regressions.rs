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

/// A document nested too deep is refused with its snippet cut around the place when the line
/// is long; the column was then counted from the cut instead of the line, so the place named
/// was not the place in the file (fuzz targets `config_load` and `mapping_load`).
#[test]
fn a_too_deep_document_names_the_column_of_the_line_and_shows_the_part_around_it() {
    // Near the start of a long line: shown from the line's start, cut after the place.
    let near = format!(" {}\nl\n", "{".repeat(200));
    // Far into it: shown from just before the place.
    let far = format!("{{a: {:?}, b: {}\nl\n", "x".repeat(300), "[".repeat(200));
    for (text, column, from_start) in [(near, 66, true), (far, 375, false)] {
        let problems = ferry_spec::load_config_str("ferry.yaml", &text).expect_err("too deep");
        let problem = &problems.0[0];
        let line: Vec<char> = yaml_lines(&text)[problem.line - 1].chars().collect();
        assert_eq!(problem.column, column, "{problem}");
        assert_eq!(problem.snippet_from == 1, from_start, "{problem}");
        assert!(problem.snippet.chars().count() <= 4 * 40 + 41, "{problem}");
        let shown: String = line
            .iter()
            .skip(problem.snippet_from as usize - 1)
            .take(problem.snippet.chars().count())
            .collect();
        assert_eq!(problem.snippet, shown);
        let rendered = problem.to_string();
        assert!(rendered.contains(&problem.snippet), "{rendered}");
        assert!(
            rendered.contains(&format!("ferry.yaml:1:{column}")),
            "{rendered}"
        );
    }

    for (target, file) in [("config_load", "ferry.yaml"), ("mapping_load", "m.yaml")] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds")
            .join(target)
            .join("regression-deep-long-line");
        let bytes = std::fs::read(&path).expect("the regression input can be read");
        let text = String::from_utf8(bytes).expect("the input is text");
        let problems = if target == "config_load" {
            ferry_spec::load_config_str(file, &text).expect_err("too deep")
        } else {
            ferry_engine::load_str(file, &text).expect_err("too deep")
        };
        let lines = yaml_lines(&text);
        for problem in &problems.0 {
            let shown: String = lines[problem.line - 1]
                .chars()
                .skip(problem.snippet_from as usize - 1)
                .take(problem.snippet.chars().count())
                .collect();
            assert_eq!(problem.snippet, shown, "{target}: {problem}");
            let _ = problem.to_string();
        }
    }
}

/// The YAML syntax checker ends lines at NEL (U+0085) too, so the line it named for a syntax
/// error after one was past the end of the text; the place is now taken from its character
/// index and counted as every other diagnostic counts lines (fuzz target `config_load`).
#[test]
fn a_syntax_error_after_a_next_line_character_shows_its_own_line() {
    // For the checker the comment ends at NEL, so `comment` is a value and the `:` of the next
    // line is out of place; that line is the one named, not the one after it.
    let text = "# a\u{85}comment\nconnections:\n  a: b\n";
    let problems = ferry_spec::load_config_str("ferry.yaml", text).expect_err("a syntax error");
    assert_eq!(problems.0[0].line, 2, "{problems}");
    assert_located(text, &problems);

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds/config_load/regression-next-line-character");
    let text = String::from_utf8(std::fs::read(path).expect("the input can be read"))
        .expect("the input is text");
    let problems = ferry_spec::load_config_str("ferry.yaml", &text).expect_err("a syntax error");
    let lines = yaml_lines(&text);
    for problem in &problems.0 {
        assert!(problem.line <= lines.len(), "{problem}");
    }
}
