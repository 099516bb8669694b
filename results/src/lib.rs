//! The run store, criteria evaluation, reports, comparison and export.
//!
//! Nothing is stored yet: the SQLite run store (schema in `docs/SCHEMA.md`) arrives with the
//! plans-and-telemetry work. The crate exists now so that the dependency direction
//! (protocol ← results ← coordinator, never results → coordinator) is fixed from the start.
