//! Finding mapping files from what the user typed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use ferry_engine::CompiledMapping;

/// Mapping files named by `paths`: files as given, folders expanded to their `*.yaml` files.
pub fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read the folder `{}`", path.display()))?
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            bail!("`{}` does not exist", path.display());
        }
    }
    Ok(files)
}

/// `NAME_OR_FILE`: an existing file, or `mappings/NAME.yaml`.
pub fn resolve(name_or_file: &str) -> anyhow::Result<PathBuf> {
    let as_file = Path::new(name_or_file);
    if as_file.is_file() {
        return Ok(as_file.to_path_buf());
    }
    let named = Path::new("mappings").join(format!("{name_or_file}.yaml"));
    if named.is_file() {
        return Ok(named);
    }
    bail!(
        "no mapping `{name_or_file}`: neither a file nor `{}`",
        named.display()
    )
}

/// Loads and compiles a mapping, printing every problem when it does not compile.
pub fn load(path: &Path) -> Option<Arc<CompiledMapping>> {
    match ferry_engine::load(path) {
        Ok(mapping) => Some(Arc::new(mapping)),
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            None
        }
    }
}
