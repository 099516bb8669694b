//! The coordinator: registers probes, keeps their clocks in sync, and (as the project grows) runs
//! plans against them and stores what they measure.
//!
//! * [`machine`] — the sans-IO state machine (registration, refusals, clock sync).
//! * [`server`] — the tokio/quinn shell that drives it.

pub mod machine;
pub mod server;

pub use machine::{Coordinator, CoordinatorConfig, Event, ProbeRecord};
pub use server::{ServerError, ServerHandle, ServerOptions};
