//! The Segment Tracking API: a call, an `Authorization` header and a body (see
//! `ferry_fuzz::ingest::segment`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ferry_fuzz::ingest::segment(data));
