//! `ferry serve`.
pub mod ingest;
pub mod setup;
