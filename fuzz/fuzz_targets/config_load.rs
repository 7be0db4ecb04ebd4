//! A `ferry.yaml`'s text: it loads, or is refused with located diagnostics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ferry_fuzz::loaders::config(data));
