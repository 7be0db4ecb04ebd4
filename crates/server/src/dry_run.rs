//! The record of a dry run: every request a connection in dry-run mode would have sent, with
//! its secrets redacted, appended as one JSON line to `DATA/dry-run.ndjson` (readable by its
//! owner only) and logged.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ferry_delivery::RecordedRequest;
use serde::Serialize;

/// Appends dry-run requests to a file.
pub(crate) struct DryRunLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

#[derive(Serialize)]
struct Line<'a> {
    at: String,
    connection: &'a str,
    request: &'a RecordedRequest,
}

impl DryRunLog {
    /// A log at `path`, opened on the first request.
    pub(crate) fn new(path: &Path) -> DryRunLog {
        DryRunLog {
            path: path.to_path_buf(),
            file: Mutex::new(None),
        }
    }

    /// Records one request (already redacted by the pipeline).
    pub(crate) fn record(&self, connection: &str, request: &RecordedRequest) {
        tracing::info!(
            connection,
            method = %request.method,
            url = %request.url,
            "dry run: request not sent"
        );
        let mut line = serde_json::to_vec(&Line {
            at: ferry_delivery::timestamp(std::time::SystemTime::now()),
            connection,
            request,
        })
        .expect("a recorded request serializes");
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if file.is_none() {
            // It holds users' data, as the store does: readable by its owner only.
            if let Err(error) = crate::store::private_file(&self.path, true) {
                tracing::error!("{error}");
                return;
            }
            match OpenOptions::new().append(true).open(&self.path) {
                Ok(opened) => *file = Some(opened),
                Err(error) => {
                    tracing::error!("cannot open `{}`: {error}", self.path.display());
                    return;
                }
            }
        }
        if let Some(open) = file.as_mut()
            && let Err(error) = open.write_all(&line)
        {
            tracing::error!("cannot write to `{}`: {error}", self.path.display());
        }
    }
}
