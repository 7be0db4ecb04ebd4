//! A golden case file and where cases live.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_engine::{CannedResponses, CompiledMapping, Connection, DryRun, Shown};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::render::{render_followed, render_merged};

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
    /// Several connections of the mapping, by name, each with its settings; every event runs
    /// through each of them. Instead of `settings`.
    #[serde(default)]
    pub connections: IndexMap<String, Map<String, Value>>,
    /// Canned destination responses to the steps of multi-step actions, by `action.step` or
    /// step name: `{ status, headers?, body? }`.
    #[serde(default)]
    pub responses: Value,
    /// Show the requests merged as the mapping's batch rules declare, instead of one per event.
    #[serde(default)]
    pub batch: bool,
    /// The time the mapping's `now` reads, e.g. `2026-11-02T09:00:00Z`: pinned so that the
    /// case plans the same requests on every run.
    #[serde(default)]
    pub now: Option<String>,
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
    /// The case's canned responses are malformed.
    #[error("`{path}`: {message}")]
    Responses {
        /// The case file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The case's `now` is not a time.
    #[error("`{path}`: `now` must be an ISO-8601 time such as `2026-11-02T09:00:00Z`, not `{now}`")]
    Now {
        /// The case file.
        path: String,
        /// The text given.
        now: String,
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
        let shown = path.display().to_string();
        let canned = if self.responses.is_null() {
            CannedResponses::default()
        } else {
            CannedResponses::from_value(self.responses.clone()).map_err(|message| {
                CaseError::Responses {
                    path: shown.clone(),
                    message,
                }
            })?
        };
        let connections: Vec<(Option<&str>, &Map<String, Value>)> = if self.connections.is_empty() {
            vec![(None, &self.settings)]
        } else {
            self.connections
                .iter()
                .map(|(name, settings)| (Some(name.as_str()), settings))
                .collect()
        };
        let now = match &self.now {
            Some(text) => Some(crate::parse_time(text).ok_or_else(|| CaseError::Now {
                path: shown.clone(),
                now: text.clone(),
            })?),
            None => None,
        };
        let mut out = format!("# {}\n", self.description.trim());
        for (name, settings) in connections {
            let mut connection =
                Connection::new(Arc::clone(mapping), settings).map_err(|source| {
                    CaseError::Settings {
                        path: shown.clone(),
                        source,
                    }
                })?;
            if let Some(now) = now {
                connection.pin_clock(now);
            }
            let mut run = DryRun::new(&connection, canned.clone(), self.batch, false);
            let mut merged = Vec::new();
            for (index, event) in self.events.iter().enumerate() {
                let (shown_now, _) = run.event(index + 1, event);
                let mut followed = Vec::new();
                for item in shown_now {
                    match item {
                        Shown::Event { followed: f, .. } => followed.push(f),
                        Shown::Batch(batch) => merged.push(batch),
                    }
                }
                if !followed.is_empty() {
                    out.push('\n');
                    out.push_str(&render_followed(index + 1, name, &followed, &connection));
                }
            }
            merged.extend(run.finish().into_iter().filter_map(|item| match item {
                Shown::Batch(batch) => Some(batch),
                Shown::Event { .. } => None,
            }));
            for (number, request) in merged.iter().enumerate() {
                out.push('\n');
                out.push_str(&render_merged(number + 1, name, request, &connection));
            }
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
