//! One module per subcommand.

pub mod dlq;
pub mod map;
pub mod replay;
pub mod schema;
pub mod send;
pub mod serve;
pub mod tap;
pub mod test;
pub mod validate;
