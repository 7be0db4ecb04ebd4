//! The Amplitude HTTP V2 API: a body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ferry_fuzz::ingest::amplitude(data));
