//! `ferry schema`: the JSON Schemas editors validate mappings and `ferry.yaml` with.

use std::io::Write as _;
use std::process::ExitCode;

pub fn run(config: bool) -> anyhow::Result<ExitCode> {
    let text = if config {
        ferry_spec::config_schema_text()
    } else {
        ferry_spec::mapping_schema_text()
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
