use std::path::Path;

use super::*;

#[test]
fn the_embedded_configuration_serves_every_bundled_mapping() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = EMBEDDED_CONFIG.replace(
        "mappings: mappings",
        &format!("mappings: {}/mappings", root.display()),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferry.yaml");
    std::fs::write(&file, text).unwrap();
    let setup = Setup::load(&ConfigOrigin::File(file)).unwrap_or_else(|d| panic!("{d}"));
    let mut mappings: Vec<&str> = setup
        .connections
        .values()
        .map(|c| &*c.connection.mapping().name)
        .collect();
    mappings.sort_unstable();
    let mut bundled: Vec<String> = std::fs::read_dir(root.join("mappings"))
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            let yaml = path.extension().is_some_and(|e| e == "yaml");
            yaml.then(|| path.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    bundled.sort_unstable();
    assert_eq!(mappings, bundled);
    assert!(setup.connections.values().all(|c| c.dry_run));
}

#[test]
fn every_problem_of_the_configuration_and_the_mappings_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mappings = dir.path().join("mappings");
    std::fs::create_dir(&mappings).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings");
    std::fs::copy(root.join("extole.yaml"), mappings.join("extole.yaml")).unwrap();
    std::fs::write(mappings.join("broken.yaml"), "version: 1\nname: broken\n").unwrap();
    let config = "version: 1
sources:
  web: { type: segment, keys: [k1] }
  app: { type: amplitude, keys: [k1, '${FERRY_TEST_UNSET_VARIABLE}'] }
connections:
  a: { source: nowhere, mapping: extole, settings: { api_key: x } }
  b: { source: web, mapping: extol }
  c: { source: app, mapping: extole, settings: { api_key: x } }
  d: { source: web, mapping: extole, settings: { unknown: 1 } }
";
    let file = dir.path().join("ferry.yaml");
    std::fs::write(&file, config).unwrap();
    let problems = Setup::load(&ConfigOrigin::File(file)).unwrap_err();
    let shown = problems.to_string();
    for expected in [
        "broken.yaml",
        "FERRY_TEST_UNSET_VARIABLE",
        "no source is named `nowhere`",
        "no mapping in",
        "did you mean `extole`?",
        "reads segment events, but the source `app` sends amplitude events",
        "connection `d`",
    ] {
        assert!(
            shown.contains(expected),
            "missing `{expected}` in:\n{shown}"
        );
    }
    assert!(shown.contains("ferry.yaml:6:"), "{shown}");
}

#[test]
fn a_connection_whose_mapping_failed_to_load_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mappings = dir.path().join("mappings");
    std::fs::create_dir(&mappings).unwrap();
    std::fs::write(
        mappings.join("acme.yaml"),
        "version: 1\nname: acme\nsource: segment\nactions: { a: { when: { type: track }, request: { method: PUSH, path: /x } } }\nhttp: { base_url: 'https://x.example' }\n",
    )
    .unwrap();
    let file = dir.path().join("ferry.yaml");
    std::fs::write(
        &file,
        "version: 1\nsources:\n  web: { type: segment, keys: [k1] }\nconnections:\n  a: { source: web, mapping: acme }\n",
    )
    .unwrap();
    let shown = Setup::load(&ConfigOrigin::File(file))
        .unwrap_err()
        .to_string();
    assert!(shown.contains("PUSH"), "{shown}");
    assert!(
        shown.contains("the mapping `acme` failed to load"),
        "{shown}"
    );
    assert!(!shown.contains("no mapping in"), "{shown}");
}
