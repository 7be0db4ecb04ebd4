//! The bundled mappings (`mappings/*.yaml`), compiled once per process, each bound to every set of
//! settings its golden cases use, with the canned responses of those cases.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_engine::{CannedResponses, CompiledMapping, Connection};
use ferry_golden::Case;
use serde_json::{Map, Value};

/// The repository root (the fuzz crate lives in `fuzz/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/ has a parent")
        .to_path_buf()
}

/// The mapping files of `mappings/`, sorted.
pub fn mapping_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("mappings"))
        .expect("mappings/ can be read")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// One bundled mapping, compiled, with what its golden cases use.
pub struct Bundled {
    /// The mapping's file name without `.yaml`.
    pub name: String,
    pub mapping: Arc<CompiledMapping>,
    /// One connection per distinct set of settings in the golden cases.
    pub connections: Vec<Connection>,
    /// The settings of each connection, as JSON text.
    pub settings: Vec<String>,
    /// The canned responses of the cases that have some.
    pub responses: Vec<CannedResponses>,
    /// Per case: its connections (indexes into `connections`) and its canned responses (an index
    /// into `responses`).
    pub uses: Vec<(Vec<usize>, Option<usize>)>,
    /// `(action, step)` of every step of a multi-step action.
    pub steps: Vec<(String, String)>,
    /// The cases, parsed, with their file names.
    pub cases: Vec<(String, Case)>,
}

impl Bundled {
    /// Loads the mapping file `path` and its golden cases.
    pub fn load(path: &Path) -> Bundled {
        let name = path
            .file_stem()
            .expect("a mapping file name")
            .to_string_lossy()
            .into_owned();
        let mapping = Arc::new(
            ferry_engine::load(path)
                .unwrap_or_else(|d| panic!("{} does not compile:\n{d}", path.display())),
        );
        let mut cases = Vec::new();
        for case_path in ferry_golden::discover(path) {
            let case = Case::read(&case_path).unwrap_or_else(|e| panic!("{e}"));
            let file = case_path
                .file_name()
                .expect("a case file name")
                .to_string_lossy()
                .into_owned();
            cases.push((file, case));
        }
        let mut settings_seen: Vec<String> = Vec::new();
        let mut connections = Vec::new();
        let mut responses = Vec::new();
        let mut uses = Vec::new();
        for (_, case) in &cases {
            let mut sets: Vec<&Map<String, Value>> = case.connections.values().collect();
            if sets.is_empty() {
                sets.push(&case.settings);
            }
            let mut used = Vec::new();
            for settings in sets {
                let key = serde_json::to_string(settings).expect("settings serialize");
                let index = match settings_seen.iter().position(|seen| *seen == key) {
                    Some(index) => index,
                    None => {
                        connections.push(
                            Connection::new(Arc::clone(&mapping), settings)
                                .unwrap_or_else(|e| panic!("{name}: {e}")),
                        );
                        settings_seen.push(key);
                        connections.len() - 1
                    }
                };
                used.push(index);
            }
            let canned = if case.responses.is_null() {
                None
            } else {
                responses.push(
                    CannedResponses::from_value(case.responses.clone())
                        .unwrap_or_else(|e| panic!("{name}: {e}")),
                );
                Some(responses.len() - 1)
            };
            uses.push((used, canned));
        }
        assert!(
            !connections.is_empty(),
            "{name} has no golden case to take settings from"
        );
        let steps = mapping
            .spec()
            .actions
            .iter()
            .flat_map(|(action, spec)| {
                spec.steps
                    .keys()
                    .map(move |step| (action.clone(), step.clone()))
            })
            .collect();
        Bundled {
            name,
            mapping,
            connections,
            settings: settings_seen,
            responses,
            uses,
            steps,
            cases,
        }
    }

    /// Every bundled mapping.
    pub fn all() -> Vec<Bundled> {
        mapping_files()
            .iter()
            .map(|path| Bundled::load(path))
            .collect()
    }

    /// The bundled mapping named `name`.
    pub fn named(name: &str) -> Bundled {
        Bundled::load(&root().join("mappings").join(format!("{name}.yaml")))
    }
}
