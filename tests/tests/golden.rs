//! Golden cases: every case under `mappings/cases/<mapping>/` is run and its planned requests
//! are compared with the snapshot beside it (`cargo insta review` accepts changes; so does
//! `ferry test --accept`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferry_engine::CompiledMapping;
use ferry_golden::Case;

fn mapping_for(
    case: &Path,
    cache: &Mutex<HashMap<PathBuf, Arc<CompiledMapping>>>,
) -> Arc<CompiledMapping> {
    let name = case
        .parent()
        .and_then(Path::file_name)
        .expect("cases live in a folder per mapping");
    let mapping = case
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("cases live under mappings/cases/")
        .join(format!("{}.yaml", name.to_string_lossy()));
    let mut cache = cache
        .lock()
        .expect("no test panicked while holding the cache");
    Arc::clone(cache.entry(mapping.clone()).or_insert_with(|| {
        Arc::new(
            ferry_engine::load(&mapping)
                .unwrap_or_else(|d| panic!("{} does not compile:\n{d}", mapping.display())),
        )
    }))
}

#[test]
fn golden_cases() {
    let cache = Mutex::new(HashMap::new());
    insta::glob!("../../mappings/cases", "*/*.yaml", |path| {
        let mapping = mapping_for(path, &cache);
        let case = Case::read(path).unwrap_or_else(|e| panic!("{e}"));
        let rendered = case.run(path, &mapping).unwrap_or_else(|e| panic!("{e}"));
        let name = path
            .file_stem()
            .expect("a case file name")
            .to_string_lossy()
            .into_owned();
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(path.parent().expect("a case folder"));
        settings.set_prepend_module_to_snapshot(false);
        settings.remove_snapshot_suffix();
        settings.bind(|| insta::assert_snapshot!(name, rendered));
    });
}

#[test]
fn every_action_and_step_has_a_golden_case() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings");
    for entry in std::fs::read_dir(&root).expect("mappings/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let mapping = Arc::new(ferry_engine::load(&path).expect("bundled mappings compile"));
        let mut covered = std::collections::HashSet::new();
        for case_path in ferry_golden::discover(&path) {
            let rendered = Case::read(&case_path)
                .and_then(|c| c.run(&case_path, &mapping))
                .expect("cases run");
            for label in mapping.request_labels() {
                if rendered.contains(&format!("-> {label}\n")) {
                    covered.insert(label);
                }
            }
        }
        let missing: Vec<String> = mapping
            .request_labels()
            .into_iter()
            .filter(|a| !covered.contains(a))
            .collect();
        assert!(
            missing.is_empty(),
            "{}: no golden case plans a request for {missing:?}",
            path.display()
        );
    }
}
