//! `ferry schema`: the JSON Schema editors validate mappings with.

use std::io::Write as _;
use std::process::ExitCode;

pub fn run() -> anyhow::Result<ExitCode> {
    std::io::stdout().write_all(ferry_spec::mapping_schema_text().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
