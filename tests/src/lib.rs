//! Cross-crate tests of ferry live in `tests/`: golden cases, rejected-mapping diagnostics,
//! the Extole contract, the JSON Schema and hostile inputs. This library is empty.
