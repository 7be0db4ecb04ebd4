//! The queue behaviour suite (`tests/behaviour/`) on SQLite.

mod behaviour;

every_case!(behaviour::Backend::sqlite());
