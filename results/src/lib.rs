//! The run store: everything a run measured, in one SQLite file per results directory
//! (`DIR/hallmark.sqlite`; schema in `docs/SCHEMA.md`), and the summary a commissioning engineer reads.
//!
//! * [`Store::open`] creates or opens the database (WAL journal, `synchronous=NORMAL`, foreign keys on,
//!   schema versioned by `PRAGMA user_version`); [`Store::open_read_only`] reads one a coordinator is
//!   writing.
//! * Writer API (the coordinator, from one task): [`Store::create_run`], [`Store::add_probe`],
//!   [`Store::add_devices`], [`Store::add_phase`], [`Store::phase_started`], [`Store::insert_batch`] and
//!   [`Store::insert_batches`] (many telemetry batches in one transaction; replays are recognised by
//!   sequence number), [`Store::record_gap`], [`Store::phase_report`], [`Store::probe_lost`],
//!   [`Store::event`], [`Store::finish_run`]; for fabric phases [`Store::fabric_members`] (the
//!   phase's members in rank order; its latency pairs, collective results and faults come with
//!   [`Store::phase_report`]).
//! * Reader API: [`Store::list_runs`], [`Store::resolve_run`], [`Store::run_summary`] → [`RunSummary`]
//!   (serde; rendered by [`render_text`] / `Display`), [`Store::fabric_summary`] → [`FabricSummary`]
//!   (also in [`RunSummary::fabric`]; printed by [`render_fabric`]).
//! * Certification: [`spec::parse_spec`] reads a spec file, [`spec::evaluate`] judges a run against it
//!   ([`Verdict`]s), [`Store::store_certification`] / [`Store::certifications`] store and read them,
//!   [`spec::render_verdicts`] prints them (`docs/SPEC.md`).
//!
//! Dependencies point one way: this crate uses `hallmark-protocol` and never the coordinator.

pub mod aggregate;
pub mod bundle;
mod certify;
mod error;
pub mod fabric;
pub mod liveness;
mod load;
mod model;
mod read;
mod render;
pub mod report;
mod schema;
mod simulated;
pub mod spec;
mod store;
mod summary;
mod telemetry;
pub mod time;
pub mod verdict;

pub use aggregate::throttle;
pub use certify::Certification;
pub use error::StoreError;
pub use fabric::{render_fabric, FabricPhaseSummary, FabricSummary};
pub use model::{event_kind, Inserted, NewRun, PhaseRow, ProbeRow, RunId, RunRow, RunStatus};
pub use render::{render_text, share_of};
pub use report::{
    write_report, write_report_with, ReportError, ReportFiles, ReportOptions, SpecRef,
};
pub use schema::{APPLICATION_ID, BUSY_TIMEOUT, MIGRATIONS, SCHEMA_VERSION};
pub use simulated::Simulation;
pub use spec::{demo_spec, evaluate, parse_spec, render_verdicts, Spec, SpecError, DEMO_SPEC};
pub use store::{Store, DB_FILE};
pub use summary::{
    DeviceRef, EventSummary, GapSummary, LostProbe, NodeNote, PhaseSummary, RackSummary,
    RunSummary, SUSTAINED_WINDOW_S,
};
pub use verdict::{overall, Comparison, Evidence, Scope, Status, Verdict};
