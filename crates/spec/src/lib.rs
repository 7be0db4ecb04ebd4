//! The ferry mapping language: its model, the JSON Schema generated from it, and loading a
//! mapping file with every problem located by file, line and column.

pub mod config;
mod depth;
mod diagnostic;
mod document;
mod explain;
mod load;
pub mod model;
mod pointer;
mod schema;
mod source_map;
mod suggest;

pub use config::{
    ConfigDocument, config_schema, config_schema_text, load_config_file, load_config_str,
};
pub use depth::MAX_DEPTH;
pub use diagnostic::{Diagnostic, DiagnosticKind, Diagnostics};
pub use document::{Document, Target};
pub use load::{Loaded, load_file, load_str, read_file, read_str};
pub use pointer::Pointer;
pub use schema::{mapping_schema, mapping_schema_text};
pub use source_map::{display_pointer, escape_segment};
pub use suggest::did_you_mean;
