//! What a run measured, as a commissioning engineer reads it, built above the run store
//! (`hallmark-store`, which holds every table and all SQL):
//!
//! * [`run_summary`] → [`RunSummary`] (serde; rendered by [`render_text`] / `Display`),
//!   [`fabric_summary`] → [`FabricSummary`] (also in [`RunSummary::fabric`]; printed by
//!   [`render_fabric`]); both computed from the store's typed reads and its one telemetry scan.
//! * Certification: [`spec::parse_spec`] reads a spec file, [`spec::evaluate`] judges a run against it
//!   ([`Verdict`]s), [`store_certification`] / [`certifications`] store and read them through the
//!   store, [`spec::render_verdicts`] prints them (`docs/SPEC.md`).
//! * [`compute_metrics`] → [`MetricValue`]s: the per-subject metrics a regression shows up in
//!   ([`metrics`], `docs/COMPARE.md`); [`find_outliers`] → [`Outlier`]s, the cross-sectional
//!   outliers within a run (median and MAD over like subjects), also in [`RunSummary::outliers`].
//! * [`StoreExt`] offers the same as methods of [`Store`] (`store.run_summary(run)`).
//!
//! The store's own types are re-exported here for the crates above that use both. Dependencies
//! point one way: this crate uses `hallmark-protocol` and `hallmark-store`, never the coordinator.

pub mod aggregate;
mod certify;
mod ext;
pub mod fabric;
pub mod facility;
mod load;
pub mod metrics;
pub mod outliers;
pub mod regress;
mod render;
pub mod spec;
mod summary;
pub mod verdict;

pub use aggregate::throttle;
pub use certify::{certifications, store_certification, Certification};
pub use ext::StoreExt;
pub use fabric::{fabric_summary, render_fabric, FabricPhaseSummary, FabricSummary};
pub use metrics::{compute_metrics, MetricValue, SubjectKind};
pub use outliers::{find_outliers, Outlier, Side};
pub use render::{render_text, share_of};
pub use spec::{demo_spec, evaluate, parse_spec, render_verdicts, Spec, SpecError, DEMO_SPEC};
// The store's types, for the crates above that use both (the store is `hallmark-store`).
pub use hallmark_store::{
    event_kind, liveness, time, Inserted, NewRun, PhaseRow, ProbeRow, RunId, RunRow, RunStatus,
    Simulation, Store, StoreError, APPLICATION_ID, BUSY_TIMEOUT, DB_FILE, MIGRATIONS,
    SCHEMA_VERSION,
};
pub use summary::{
    run_summary, run_summary_with_metrics, DeviceRef, EventSummary, GapSummary, LostProbe,
    NodeNote, PhaseSummary, RackSummary, RunSummary, SUSTAINED_WINDOW_S,
};
pub use verdict::{overall, Comparison, Evidence, Scope, Status, Verdict};
