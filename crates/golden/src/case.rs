//! A golden case file and where cases live.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_engine::{CompiledMapping, Connection, MemoryState};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::render::render_outcomes;

/// One golden case: settings for a connection and the events to run through it, in order
/// (remembered values carry from one event to the next).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows.
    pub description: String,
    /// Settings of the connection.
    #[serde(default)]
    pub settings: Map<String, Value>,
    /// Input events.
    pub events: Vec<Value>,
}

/// Why a case could not run.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The case file cannot be read.
    #[error("cannot read `{path}`")]
    Read {
        /// The case file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The case file is not a valid case.
    #[error("`{path}` is not a valid case")]
    Parse {
        /// The case file.
        path: String,
        /// The cause.
        #[source]
        source: serde_yaml::Error,
    },
    /// The case's settings do not fit the mapping.
    #[error("`{path}`: {source}")]
    Settings {
        /// The case file.
        path: String,
        /// The cause.
        #[source]
        source: ferry_engine::SettingsError,
    },
}

impl Case {
    /// Reads a case file.
    pub fn read(path: &Path) -> Result<Case, CaseError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CaseError::Read {
            path: shown.clone(),
            source,
        })?;
        serde_yaml::from_str(&text).map_err(|source| CaseError::Parse {
            path: shown,
            source,
        })
    }

    /// Runs the case through `mapping` and renders what it plans, secrets redacted.
    pub fn run(&self, path: &Path, mapping: &Arc<CompiledMapping>) -> Result<String, CaseError> {
        let connection =
            Connection::new(Arc::clone(mapping), &self.settings).map_err(|source| {
                CaseError::Settings {
                    path: path.display().to_string(),
                    source,
                }
            })?;
        let mut state = MemoryState::default();
        let mut out = format!("# {}\n", self.description.trim());
        for (index, event) in self.events.iter().enumerate() {
            let plan = connection.plan(event, &state);
            out.push('\n');
            out.push_str(&render_outcomes(index + 1, &plan.outcomes, &connection));
            state.apply(plan.remember);
        }
        Ok(out.trim_end().to_owned())
    }
}

/// The folder holding the cases of the mapping file `mapping`: `cases/<name>/` beside it.
pub fn cases_dir(mapping: &Path) -> PathBuf {
    let name = mapping.file_stem().unwrap_or_default();
    mapping
        .parent()
        .unwrap_or(Path::new("."))
        .join("cases")
        .join(name)
}

/// The case files of the mapping file `mapping`, sorted by name.
pub fn discover(mapping: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_dir(mapping))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    cases
}
