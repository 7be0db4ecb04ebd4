//! `ferry serve`.
pub mod ingest;
