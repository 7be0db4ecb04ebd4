//! `ferry validate`: every problem of every mapping, located.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::mappings::expand;

pub fn run(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let files = expand(paths)?;
    let mut problems = 0;
    for file in &files {
        match ferry_engine::load(file) {
            Ok(mapping) => {
                let actions = mapping.action_names().count();
                println!(
                    "ok: {} ({}, {actions} action{})",
                    file.display(),
                    mapping.name,
                    plural(actions)
                );
            }
            Err(diagnostics) => {
                problems += diagnostics.0.len();
                eprintln!("{diagnostics}");
            }
        }
    }
    if problems > 0 {
        eprintln!(
            "{problems} problem{} in {} file{}",
            plural(problems),
            files.len(),
            plural(files.len())
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
