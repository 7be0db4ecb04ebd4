//! A mapping file's text: it loads and compiles, or is refused with located diagnostics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ferry_fuzz::loaders::mapping(data));
