//! Every bundled mapping against arbitrary events, with and without canned responses (see
//! `ferry_fuzz::engine` for the input layout).
#![no_main]

use std::sync::LazyLock;

use ferry_fuzz::engine::{Engine, EngineInput};
use libfuzzer_sys::fuzz_target;

static ENGINE: LazyLock<Engine> = LazyLock::new(Engine::load);

fuzz_target!(|data: &[u8]| {
    ENGINE.run(&EngineInput::decode(data));
});
