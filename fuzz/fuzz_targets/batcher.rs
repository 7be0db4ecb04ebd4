//! braze.yaml's planned requests merged, split and read back (see `ferry_fuzz::batching` for
//! the input layout).
#![no_main]

use std::sync::LazyLock;

use ferry_fuzz::batching::{BatchInput, Braze};
use libfuzzer_sys::fuzz_target;

static BRAZE: LazyLock<Braze> = LazyLock::new(Braze::load);

fuzz_target!(|data: &[u8]| {
    BRAZE.run(&BatchInput::decode(data));
});
