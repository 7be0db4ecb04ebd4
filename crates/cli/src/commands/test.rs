//! `ferry test`: run golden cases, compare with their snapshots, show a diff when they differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use ferry_golden::{Case, discover, read_snapshot, snapshot_path, write_snapshot};
use similar::{ChangeTag, TextDiff};

use crate::mappings::expand;

pub fn run(paths: &[PathBuf], accept: bool) -> anyhow::Result<ExitCode> {
    // Group the cases to run by the mapping they test.
    let mut plan: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for path in paths {
        if path.is_file()
            && path
                .parent()
                .and_then(Path::parent)
                .is_some_and(|p| p.ends_with("cases"))
        {
            let mapping = case_mapping(path);
            plan.entry(mapping).or_default().push(path.clone());
        } else {
            for mapping in expand(std::slice::from_ref(path))? {
                let cases = discover(&mapping);
                plan.entry(mapping).or_default().extend(cases);
            }
        }
    }
    let (mut passed, mut failed, mut accepted) = (0, 0, 0);
    for (mapping_path, cases) in &plan {
        let mapping = match ferry_engine::load(mapping_path) {
            Ok(mapping) => Arc::new(mapping),
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                failed += cases.len().max(1);
                continue;
            }
        };
        if cases.is_empty() {
            println!(
                "warning: {} has no golden cases (add them under {})",
                mapping_path.display(),
                ferry_golden::cases_dir(mapping_path).display()
            );
        }
        for case_path in cases {
            let outcome = Case::read(case_path).and_then(|case| case.run(case_path, &mapping));
            let actual = match outcome {
                Ok(actual) => actual,
                Err(error) => {
                    failed += 1;
                    println!("FAIL {}: {}", case_path.display(), error_chain(&error));
                    continue;
                }
            };
            let snapshot = snapshot_path(case_path);
            match read_snapshot(&snapshot) {
                Some(expected) if expected == actual => {
                    passed += 1;
                    println!("ok   {}", case_path.display());
                }
                expected => {
                    if accept {
                        write_snapshot(&snapshot, case_path, &actual)?;
                        accepted += 1;
                        println!("accepted {}", snapshot.display());
                        continue;
                    }
                    failed += 1;
                    match expected {
                        None => println!(
                            "FAIL {}: no expected output yet ({} is missing)",
                            case_path.display(),
                            snapshot.display()
                        ),
                        Some(expected) => {
                            println!(
                                "FAIL {}: the planned requests changed (- expected, + actual)",
                                case_path.display()
                            );
                            print_diff(&expected, &actual);
                        }
                    }
                }
            }
        }
    }
    println!(
        "{passed} passed, {failed} failed{}",
        if accepted > 0 {
            format!(", {accepted} accepted")
        } else {
            String::new()
        }
    );
    if failed > 0 {
        println!("review with `cargo insta review`, or accept with `ferry test --accept`");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `mappings/cases/extole/x.yaml` tests `mappings/extole.yaml`.
fn case_mapping(case: &Path) -> PathBuf {
    let name = case.parent().and_then(Path::file_name).unwrap_or_default();
    let root = case
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    root.join(format!("{}.yaml", name.to_string_lossy()))
}

fn print_diff(expected: &str, actual: &str) {
    let diff = TextDiff::from_lines(expected, actual);
    for group in diff.grouped_ops(3) {
        println!("@@");
        for op in group {
            for change in diff.iter_changes(&op) {
                let sign = match change.tag() {
                    ChangeTag::Delete => '-',
                    ChangeTag::Insert => '+',
                    ChangeTag::Equal => ' ',
                };
                print!("{sign} {change}");
                if change.missing_newline() {
                    println!();
                }
            }
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
