//! Extole webhooks: `Authorization` and `X-Extole-Signature` headers and a body (see
//! `ferry_fuzz::ingest::extole`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ferry_fuzz::ingest::extole(data));
