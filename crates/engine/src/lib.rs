//! ferry's mapping engine: compiles a loaded mapping once, binds it to a connection's settings,
//! and turns events into planned HTTP requests.
//!
//! ```text
//! Document --compile--> CompiledMapping --Connection::new(settings)--> Connection
//! Connection::plan(event, remembered state) -> Plan { requests | skips | failures, remember }
//! ```

mod compile;
mod compiled;
mod connection;
mod convert;
mod execute;
pub mod path;
mod plan;
mod state;
mod template;

pub use compile::compile;
pub use compiled::CompiledMapping;
pub use connection::{
    Connection, Header, REDACTED, SettingsError, check_setting_type, setting_from_text,
};
pub use convert::snake_case;
pub use plan::{Body, Failure, Outcome, Plan, PlannedRequest, Skip};
pub use state::{MemoryState, NoState, Recall, Remembered};

/// Loads and compiles the mapping file at `path`, reporting every problem at once.
pub fn load(path: &std::path::Path) -> Result<CompiledMapping, ferry_spec::Diagnostics> {
    compile(ferry_spec::load_file(path)?)
}

/// Loads and compiles a mapping from text (`file` names it in messages).
pub fn load_str(file: &str, text: &str) -> Result<CompiledMapping, ferry_spec::Diagnostics> {
    compile(ferry_spec::load_str(file, text)?)
}
