//! Every committed input of every target (seeds and kept crash inputs) passes its target's
//! checks, and the input layouts decode what the seeds encode. `cargo test` in `fuzz/` runs this
//! without libFuzzer; the fuzz runs replay the same inputs first.

use std::path::Path;

use ferry_fuzz::batching::{BatchInput, Braze, ItemError};
use ferry_fuzz::engine::{Engine, EngineInput};

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{target} has no seeds");
    files
        .iter()
        .map(|path| std::fs::read(path).expect("a seed can be read"))
        .collect()
}

#[test]
fn the_batcher_input_decodes_what_is_encoded() {
    let errors = [
        ItemError {
            array: 1,
            index: 513,
            index_as_text: true,
        },
        ItemError {
            array: 3,
            index: 7,
            index_as_text: false,
        },
    ];
    let data = BatchInput::encode(1, 75, &errors, "{\"a\":1}");
    let input = BatchInput::decode(&data);
    assert_eq!((input.variant, input.repeat, input.list_form), (1, 75, 0));
    assert_eq!(input.errors, errors);
    assert_eq!(input.text, "{\"a\":1}");
}

#[test]
fn the_engine_input_decodes_what_is_encoded() {
    let data = EngineInput::encode(5, 2, true, "{}\n[]");
    let input = EngineInput::decode(&data);
    assert_eq!(
        (input.connection, input.responses, input.traced),
        (5, 2, true)
    );
    assert_eq!(input.text, "{}\n[]");
}

#[test]
fn committed_inputs_pass_every_check() {
    for data in inputs("mapping_load") {
        ferry_fuzz::loaders::mapping(&data);
    }
    for data in inputs("config_load") {
        ferry_fuzz::loaders::config(&data);
    }
    let engine = Engine::load();
    let planned: usize = inputs("engine")
        .iter()
        .map(|data| engine.run(&EngineInput::decode(data)))
        .sum();
    assert!(planned > 100, "the engine seeds plan {planned} requests");
    for data in inputs("ingest_segment") {
        ferry_fuzz::ingest::segment(&data);
    }
    for data in inputs("ingest_amplitude") {
        ferry_fuzz::ingest::amplitude(&data);
    }
    for data in inputs("ingest_extole") {
        ferry_fuzz::ingest::extole(&data);
    }
    let braze = Braze::load();
    for data in inputs("batcher") {
        braze.run(&BatchInput::decode(&data));
    }
}

#[test]
fn the_batcher_seeds_fill_batches_and_name_failed_items() {
    let braze = Braze::load();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/batcher");
    let run = |name: &str| {
        let data = std::fs::read(dir.join(name)).expect("the seed exists");
        braze.run(&BatchInput::decode(&data))
    };
    let full = run("seed-examples-full");
    assert_eq!(full.largest, 75, "{full:?}");
    assert!(full.failed >= 2, "{full:?}");
    let small = run("seed-examples-small");
    assert!(small.merged > 2 && small.largest <= 3, "{small:?}");
    let pending = run("seed-case-alias_flow_pending");
    assert_eq!(
        pending.planned, 0,
        "a step awaiting its response is not batched: {pending:?}"
    );
}
