//! Golden cases: files of input events beside each mapping, and the text of the requests they
//! plan, stored as insta snapshots so that `cargo insta review` and `ferry test` agree.
//!
//! ```text
//! mappings/extole.yaml                      the mapping
//! mappings/cases/extole/identify.yaml       a case: settings and events
//! mappings/cases/extole/identify.snap       what the case must plan (insta format)
//! ```

mod case;
mod render;
mod snapshot;

pub use case::{Case, CaseError, cases_dir, discover};
pub use render::{render_followed, render_merged, render_request};
pub use snapshot::{read_snapshot, snapshot_path, write_snapshot};
