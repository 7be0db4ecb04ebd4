//! ferry's mapping engine: compiles a loaded mapping once, binds it to a connection's settings,
//! and turns events into planned HTTP requests.
//!
//! ```text
//! Document --compile--> CompiledMapping --Connection::new(settings)--> Connection
//! Connection::plan(event, remembered state) -> Plan { requests | skips | failures, remember }
//! ```

mod batch;
mod batch_rule;
mod canned;
mod checks;
mod compile;
mod compiled;
mod connection;
mod convert;
mod dry_run;
mod execute;
mod path;
mod plan;
mod state;
mod template;

pub use batch::{Batcher, ItemFailures, MergedRequest, Rejected};
pub use batch_rule::BatchRule;
pub use canned::{CannedResponses, Followed};
use compile::compile;
pub use compiled::CompiledMapping;
pub use connection::{Connection, Header, SettingsError, setting_from_text};
pub use convert::snake_case;
pub use dry_run::{DryRun, Shown};
pub use path::Path as JsonPath;
pub use plan::{
    Body, Continuation, Failure, FailureKind, Outcome, Plan, PlannedRequest, Refusal, Skip,
    SkipKind, StepResponse,
};
pub use state::{MemoryState, NoState, Recall, Remembered};

/// Loads and compiles the mapping file at `path`, reporting every problem at once.
pub fn load(path: &std::path::Path) -> Result<CompiledMapping, ferry_spec::Diagnostics> {
    finish(ferry_spec::read_file(path))
}

/// Loads and compiles a mapping from text (`file` names it in messages).
pub fn load_str(file: &str, text: &str) -> Result<CompiledMapping, ferry_spec::Diagnostics> {
    finish(ferry_spec::read_str(file, text))
}

/// Compiles what loaded; when some actions were set aside for structural problems, the rest is
/// still compiled so that its problems are reported in the same pass.
fn finish(loaded: ferry_spec::Loaded) -> Result<CompiledMapping, ferry_spec::Diagnostics> {
    match loaded {
        ferry_spec::Loaded::Complete(document) => compile(document),
        ferry_spec::Loaded::Failed(problems) => Err(problems),
        ferry_spec::Loaded::Partial { document, problems } => {
            let mut all = problems.0;
            if let Err(more) = compile(document) {
                all.extend(more.0);
            }
            all.sort_by_key(|d| (d.line, d.column));
            all.dedup();
            Err(ferry_spec::Diagnostics(all))
        }
    }
}
