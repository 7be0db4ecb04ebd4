//! One module per subcommand.

pub mod map;
pub mod replay;
pub mod schema;
pub mod send;
pub mod test;
pub mod validate;
