//! The run store: everything a run measured, behind one interface over SQLite (a file per results
//! directory, `DIR/hallmark.sqlite`; schema in `docs/SCHEMA.md`) and PostgreSQL (a database per
//! store), the same schema and statements on both ([`db::Db`]).
//!
//! This crate holds the schema, its migrations, telemetry ingest and the typed read API; it is the
//! only crate of hallmark that writes SQL. Summaries, certification, the report and bundles are
//! built above it (`hallmark-results`, `hallmark-report`, `hallmark-bundle`) from what it reads.
//!
//! * [`Store::open`] creates or opens the database (WAL journal, `synchronous=NORMAL`, foreign keys on,
//!   schema versioned by `PRAGMA user_version`); [`Store::open_read_only`] reads one a coordinator is
//!   writing; [`Store::open_postgres`] and [`Store::open_postgres_read_only`] do the same for a
//!   PostgreSQL database, and [`Store::open_location`] / [`Store::open_location_read_only`] open
//!   whichever a `--results` argument names ([`location::Location`]).
//! * Writer API (the coordinator, from one task): [`Store::create_run`], [`Store::add_probe`],
//!   [`Store::add_devices`], [`Store::add_probe_software`] (driver and library versions, schema 8),
//!   [`Store::add_phase`], [`Store::phase_started`], [`Store::insert_batch`] and
//!   [`Store::insert_batches`] (many telemetry batches in one transaction; replays are recognised by
//!   sequence number), [`Store::record_gap`], [`Store::phase_report`], [`Store::probe_lost`],
//!   [`Store::event`], [`Store::finish_run`]; for fabric phases [`Store::fabric_members`] (the
//!   phase's members in rank order; its latency pairs, collective results and faults come with
//!   [`Store::phase_report`]); facility readings of the hall's meters from facility collectors
//!   ([`Store::insert_facility_batches`], replays recognised by sequence number as for telemetry);
//!   liveness ([`liveness`]).
//! * Reader API, flat records in a stable order: [`Store::list_runs`], [`Store::resolve_run`],
//!   [`Store::run`], [`Store::probes`], [`Store::devices`], [`Store::phases`],
//!   [`Store::phase_starts`], [`Store::phase_reports`], [`Store::phase_results`], [`Store::gaps`],
//!   [`Store::events`], [`Store::simulation`], fabric records ([`Store::fabric_members_of`],
//!   [`Store::fabric_latency`], [`Store::fabric_collectives`], [`Store::fabric_faults`]),
//!   certifications ([`Store::store_certification_rows`], [`Store::certification_rows`]), facility
//!   readings in time order ([`Store::facility_readings`]), and the one
//!   streaming telemetry pass [`Store::scan_telemetry`].
//! * Per-subject metrics computed once per run (schema 8): [`Store::store_run_metrics`],
//!   [`Store::run_metrics`], a subject's history across runs [`Store::metric_history`], and what
//!   makes two runs comparable, [`Store::run_context`].
//!
//! Dependencies point one way: this crate uses `hallmark-protocol` and nothing else of hallmark.

mod certify;
pub mod columnar;
mod context;
pub mod db;
mod error;
mod fabric_read;
mod fabric_write;
mod facility;
mod gaps;
pub mod hist;
pub mod liveness;
pub mod location;
mod metrics;
mod model;
mod open;
mod reads;
mod runs;
mod scan;
mod schema;
mod simulated;
mod software;
mod store;
mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
mod upgrade_v5;

pub use certify::{CertificationRow, VerdictRow};
pub use context::{ContextDevice, ContextProbe, RunContext};
pub use error::StoreError;
pub use fabric_read::{CollectiveRecord, FabricMemberRecord, FaultRecord, LatencyRecord};
pub use facility::FACILITY_NOT_FINITE;
pub use gaps::NewGap;
pub use metrics::{HistoryQuery, MetricRow, MetricSet, RunMetrics};
pub use model::{
    event_kind, Inserted, NewRun, PhaseRow, ProbeRow, RunId, RunRow, RunStatus,
    StoredFacilityReading,
};
pub use open::DB_FILE;
pub use reads::{
    DeviceRecord, EventRecord, GapRecord, PhaseRecord, PhaseReportRecord, PhaseResultRecord,
    PhaseStartRecord, ProbeRecord, RunRecord,
};
pub use scan::{NodePowerRecord, SampleRecord, ScanOptions, ScanOrder, Telemetry};
pub use schema::{APPLICATION_ID, BUSY_TIMEOUT, MIGRATIONS, SCHEMA_VERSION};
pub use simulated::Simulation;
pub use store::Store;
