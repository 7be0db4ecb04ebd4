//! Helpers shared by the queue's tests: real SQLite files in a temporary directory.

#![allow(dead_code)]

use std::path::PathBuf;

use ferry_queue::{SqliteOptions, SqliteQueue};

pub struct Store {
    pub dir: tempfile::TempDir,
}

impl Store {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("queue.db")
    }

    /// Opens a handle, as the server (or the CLI) would.
    pub fn open(&self) -> SqliteQueue {
        SqliteQueue::open(&self.path(), SqliteOptions::default()).unwrap()
    }

    /// A plain connection to look at the rows the queue wrote.
    pub fn count(&self, sql: &str) -> i64 {
        rusqlite::Connection::open(self.path())
            .unwrap()
            .query_row(sql, [], |row| row.get(0))
            .unwrap()
    }

    pub fn cursor(&self, connection: &str) -> i64 {
        rusqlite::Connection::open(self.path())
            .unwrap()
            .query_row(
                "SELECT cursor FROM connections WHERE name = ?1",
                [connection],
                |row| row.get(0),
            )
            .unwrap()
    }
}

#[path = "../behaviour/helpers.rs"]
mod helpers;

pub use helpers::*;
