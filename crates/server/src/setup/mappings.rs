//! The mappings folder: every mapping file in it compiled, by mapping name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_engine::CompiledMapping;
use ferry_spec::config::SourceKind;
use ferry_spec::model::SourceDialect;
use ferry_spec::{Diagnostic, DiagnosticKind};

/// The mappings of a folder: those that compiled, by name, and the files that did not.
#[derive(Default)]
pub(crate) struct Folder {
    pub(crate) mappings: HashMap<Arc<str>, Arc<CompiledMapping>>,
    /// Files that failed to load, with the name they declare when it can be read.
    pub(crate) failed: Vec<(PathBuf, Option<String>)>,
}

impl Folder {
    /// The file that failed to load and declares `name` (or, when its name cannot be read, is
    /// called `name.yaml`).
    pub(crate) fn failed(&self, name: &str) -> Option<&Path> {
        self.failed
            .iter()
            .find(|(file, declared)| match declared {
                Some(declared) => declared == name,
                None => file.file_stem().is_some_and(|stem| stem == name),
            })
            .map(|(file, _)| file.as_path())
    }
}

/// The `name:` a mapping file declares at its top level, read line by line so that it is found
/// even when the file as a whole does not load.
fn declared_name(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix("name:")?.split('#').next()?.trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_owned())
    })
}

/// Compiles every mapping file directly in `dir`, by mapping name. Problems of every file are
/// collected.
pub(crate) fn load_mappings(dir: &Path, problems: &mut Vec<Diagnostic>) -> Folder {
    let mut folder = Folder::default();
    let mappings = &mut folder.mappings;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            problems.push(
                Diagnostic::at(
                    DiagnosticKind::Read,
                    &dir.display().to_string(),
                    "",
                    None,
                    format!("cannot read the mappings folder: {error}"),
                )
                .with_help(
                    "`mappings` in the configuration names it, relative to the configuration's \
                     folder (for the embedded configuration, the current folder: run `ferry serve` \
                     from the ferry repository, or pass `--config`)",
                ),
            );
            return folder;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    for file in files {
        match ferry_engine::load(&file) {
            Ok(mapping) => {
                let name = Arc::clone(&mapping.name);
                if let Some(earlier) = mappings.insert(Arc::clone(&name), Arc::new(mapping)) {
                    problems.push(Diagnostic::at(
                        DiagnosticKind::Conflict,
                        &file.display().to_string(),
                        "",
                        None,
                        format!(
                            "the mapping name `{name}` is also used by `{}`",
                            earlier.file
                        ),
                    ));
                }
            }
            Err(found) => {
                problems.extend(found.0);
                let name = declared_name(&file);
                folder.failed.push((file, name));
            }
        }
    }
    folder
}

/// Whether a mapping written for `dialect` can read events of a source of `kind`.
pub(crate) fn reads(dialect: SourceDialect, kind: SourceKind) -> bool {
    matches!(
        (dialect, kind),
        (SourceDialect::Json, _)
            | (SourceDialect::Segment, SourceKind::Segment)
            | (SourceDialect::Amplitude, SourceKind::Amplitude)
            | (SourceDialect::Extole, SourceKind::Extole)
    )
}
