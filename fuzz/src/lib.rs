//! ferry's fuzz targets, shared: what each target's input means, the promises it checks, the
//! bundled mappings it runs, and its seed corpus. The targets in `fuzz_targets/` only decode
//! and call in here, so that a crash input replays the same code in a plain test.

pub mod batching;
pub mod bundled;
pub mod engine;
pub mod ingest;
pub mod loaders;
pub mod seeds;
