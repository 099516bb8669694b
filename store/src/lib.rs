//! The run store: everything a run measured, behind one interface over SQLite (a file per results
//! directory) and PostgreSQL (one database many engineers share).
//!
//! This crate holds the schema, its migrations, telemetry ingest and the typed read API; it is the
//! only crate of hallmark that writes SQL. Summaries, certification, the report and bundles are
//! built above it from what it reads.

pub mod columnar;
pub mod db;
pub mod location;
#[cfg(feature = "testing")]
pub mod testing;
