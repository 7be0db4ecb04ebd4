//! What the tests of `ferry serve` (and the ingest benchmark) share: the server as a real
//! process, a destination on loopback, a folder with a configuration and the one test mapping,
//! HTTP clients, and load generators. Each test file uses a part of it.

#![allow(dead_code, unused_imports)]

pub mod client;
pub mod destination;
pub mod ferry;
pub mod load;
pub mod nats;
pub mod node;
pub mod workspace;

pub use client::{http, post_batch, track};
pub use destination::{Destination, Received};
pub use ferry::Ferry;
pub use workspace::{SINK_KEY, WRITE_KEY, Workspace, WorkspaceOptions, sink_mapping};
