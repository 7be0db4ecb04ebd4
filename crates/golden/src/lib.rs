//! Golden cases: files of input events beside each mapping, and the text of the requests they
//! plan, stored as insta snapshots so that `cargo insta review` and `ferry test` agree. Also
//! how a dry run's requests are shown as JSON lines (`ferry map`, the console's playground).
//!
//! ```text
//! mappings/extole.yaml                      the mapping
//! mappings/cases/extole/identify.yaml       a case: settings and events
//! mappings/cases/extole/identify.snap       what the case must plan (insta format)
//! ```

mod case;
mod line;
mod render;
mod snapshot;

pub use case::{Case, CaseError, cases_dir, discover};
pub use line::RequestLines;
pub use render::{render_followed, render_merged, render_request};
pub use snapshot::{read_snapshot, snapshot_path, write_snapshot};

/// A time given as ISO-8601 text (`2026-11-02T09:00:00Z`, any offset), for a pinned clock.
pub fn parse_time(text: &str) -> Option<std::time::SystemTime> {
    let time = chrono::DateTime::parse_from_rfc3339(text.trim()).ok()?;
    Some(time.with_timezone(&chrono::Utc).into())
}
