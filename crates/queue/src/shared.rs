//! What a [`SqliteQueue`](crate::SqliteQueue) handle, its blocking reads (claims, listings) and
//! its writer thread share.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rusqlite::Connection;

use crate::state::States;
use crate::wake::Wake;

/// What the handle, its blocking reads and the writer thread share.
pub(crate) struct Shared {
    pub(crate) path: PathBuf,
    pub(crate) dedupe_window: Duration,
    pub(crate) states: States,
    pub(crate) wake: Wake,
    pub(crate) commits: AtomicU64,
    pub(crate) reader: Mutex<Connection>,
}
