//! The coordinator: registers probes, keeps their clocks in sync, and (as the project grows) runs
//! plans against them and stores what they measure.
//!
//! * [`machine`] — the sans-IO state machine (registration, refusals, clock sync).
//! * [`event`] — its configuration, probe records, events and outputs.
//! * [`limits`] — what a probe may send: frame and batch limits, the telemetry budget.
//! * [`run`] — the run engine inside it: inventory, phase schedule, telemetry, limits.
//! * [`fabric`] — fabric phases: members, per-pair keys, the NCCL unique id for GPU collectives.
//! * [`server`] — the tokio/quinn shell that drives it.

mod admit;
mod conn;
pub mod event;
pub mod fabric;
mod flow;
mod gaplog;
pub mod limits;
pub mod machine;
pub mod metrics;
mod metrics_facility;
pub mod metrics_http;
mod metrics_text;
mod probelist;
pub mod record;
mod refused;
pub mod run;
pub mod server;
mod shell;
mod status;
pub mod store;
mod validate;

pub use admit::LoadRefusals;
pub use machine::{Coordinator, CoordinatorConfig, Event, ProbeRecord};
pub use server::{
    RunProgress, RunStage, ServerError, ServerHandle, ServerOptions, DEFAULT_MAX_HANDSHAKES,
    DEFAULT_UDP_RECEIVE_BUFFER,
};
pub use store::StoreRecorder;
