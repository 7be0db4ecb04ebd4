//! Every mapping shipped in `mappings/` loads and compiles without a problem.

use std::path::Path;

#[test]
fn every_bundled_mapping_compiles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("mappings/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            if let Err(diagnostics) = ferry_engine::load(&path) {
                panic!("{} does not compile:\n{diagnostics}", path.display());
            }
            count += 1;
        }
    }
    assert!(count >= 2, "expected the bundled mappings, found {count}");
}

#[test]
fn every_bundled_mapping_declares_the_schema_for_editors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings");
    for entry in std::fs::read_dir(&dir).expect("mappings/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("readable mapping");
            assert!(
                text.starts_with(
                    "# yaml-language-server: $schema=../schemas/mapping.schema.json\n"
                ),
                "{} must start with the yaml-language-server schema line",
                path.display()
            );
        }
    }
}
