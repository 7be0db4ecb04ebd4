//! The ferry mapping language: its model, the JSON Schema generated from it, and loading a
//! mapping file with every problem located by file, line and column.

mod diagnostic;
mod load;
pub mod model;
mod schema;
mod source_map;
mod suggest;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use load::{Document, Target, display_pointer, load_file, load_str};
pub use schema::{mapping_schema, mapping_schema_text};
pub use source_map::escape_segment;
pub use suggest::did_you_mean;
