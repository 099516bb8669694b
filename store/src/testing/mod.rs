//! Test support for the store's tests and those of the crates above it (cargo feature `testing`):
//! a throw-away PostgreSQL server and a fresh database per test ([`pg`]), a fresh store on each
//! backend ([`stores`]), and a SQLite store copied into a PostgreSQL database ([`copy`]).

pub mod copy;
pub mod pg;
pub mod stores;
