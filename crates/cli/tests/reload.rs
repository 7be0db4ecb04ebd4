//! Hot reload of a running `ferry serve` by file events: a reload happens when what the files
//! say changed, once per change, whether the change is good or broken.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Destination, Ferry, Workspace, http, sink_mapping};

fn generation(ferry: &Ferry) -> u64 {
    let (_, body) = http("GET", &format!("{}/admin/status", ferry.url), &[], "");
    let status: Value = serde_json::from_str(&body).unwrap_or_default();
    status["generation"].as_u64().unwrap_or(0)
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Longer than the watcher's debounce and the reloader's settling pause together.
const QUIET: Duration = Duration::from_millis(1500);

#[test]
fn reading_files_or_saving_them_unchanged_does_not_reload() {
    let destination = Destination::start();
    let workspace = Workspace::new(&destination.url);
    let ferry = Ferry::start(&workspace);
    let mapping = workspace.path().join("mappings/sink.yaml");

    std::fs::read(&mapping).unwrap();
    std::fs::read(&workspace.config).unwrap();
    let validated = workspace.ferry(&["validate", "mappings"]);
    assert!(validated.status.success());
    assert!(workspace.ferry(&["dlq", "list"]).status.success());
    // Saved again as it was.
    std::fs::write(&mapping, std::fs::read(&mapping).unwrap()).unwrap();
    std::fs::write(&workspace.config, workspace.config_text()).unwrap();
    std::thread::sleep(QUIET);
    assert_eq!(generation(&ferry), 1, "{}", ferry.log());

    workspace.write_mapping(&sink_mapping("v2"));
    wait_for("the changed mapping to be served", || {
        generation(&ferry) == 2
    });
    let log = ferry.log();
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is no terminal:\n{log}"
    );
}

#[test]
fn a_broken_mapping_is_tried_and_reported_once_per_change() {
    let destination = Destination::start();
    let workspace = Workspace::new(&destination.url);
    let ferry = Ferry::start(&workspace);
    let mapping = workspace.path().join("mappings/sink.yaml");
    let refusals = || ferry.log().matches("reload refused").count();

    workspace.write_mapping(&sink_mapping("v2").replace("method: POST", "method: PUSH"));
    wait_for("the broken mapping to be refused", || refusals() == 1);
    for _ in 0..5 {
        std::fs::read(&mapping).unwrap();
        assert!(!workspace.ferry(&["validate", "mappings"]).status.success());
    }
    std::thread::sleep(QUIET);
    assert_eq!(refusals(), 1, "{}", ferry.log());

    // Another broken edit is another change.
    workspace.write_mapping(&sink_mapping("v3").replace("method: POST", "method: PUSH"));
    wait_for("the second broken edit to be refused", || refusals() == 2);
    // Its problem names the mapping, and the connection's line says it failed to load.
    let log = ferry.log();
    assert!(log.contains("PUSH"), "{log}");
    assert!(log.contains("the mapping `sink` failed to load"), "{log}");
    assert!(!log.contains("no mapping in"), "{log}");

    workspace.write_mapping(&sink_mapping("v4"));
    wait_for("the fixed mapping to be served", || generation(&ferry) == 2);
    assert_eq!(refusals(), 2);
}
