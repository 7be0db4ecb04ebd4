//! Extole.
