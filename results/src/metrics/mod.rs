//! Per-subject metrics of one run, the figures a regression shows up in (issue 11, item 1):
//! [`compute_metrics`] → [`MetricValue`]s, sorted by (kind, subject, metric). `docs/COMPARE.md`,
//! "Per-subject metrics", is the reference; in short:
//!
//! * **Subjects** are named as the certification verdicts name them: a device `node/index`, a node
//!   by its id, a rack by its label (`row/rack` where a label is used in two rows), the hall by its
//!   name, a directed pair `A->B`, a collective `op/size_bytes` (`all-reduce/1048576`).
//! * **Metric names** are the base names of `hallmark_compare::KNOWN_METRICS`, with a
//!   `.qualifier` where one subject has several of one kind (`throttle_s.sw_thermal`).
//! * **Phases.** *Full load* is a `burn` phase whose pattern is steady at a level of at least
//!   [`FULL_LOAD_LEVEL`] (read from the run's stored plan; where the stored plan does not parse,
//!   as in a store written without it, every `burn` phase); *idle* is an `idle` phase.
//! * **Absent is never 0.** A metric the run had no means to measure (no idle phase, no latency
//!   phase, no facility readings) is not emitted; a metric the run should have measured for a
//!   subject but did not (no samples, no steady state, a silent node of a rack, a pair with every
//!   packet lost) is emitted with `value: None`, so that a comparison can say it went missing.
//! * **Thermal resistance** (K/W): (steady GPU temperature − coolant supply) / GPU power over the
//!   steady part of the full-load phases, the supply being the rack's CDU supply from the facility
//!   readings (unit [`UNIT_K_PER_W_SUPPLY`]); without them, the differential (T_load − T_idle) /
//!   (P_load − P_idle) between the steady parts of the idle and full-load phases (unit
//!   [`UNIT_K_PER_W_DIFFERENTIAL`]), which equals the plate's resistance while the supply holds.
//!   The steady part of a phase: of its [`SEGMENTS`] equal slices, the longest run of trailing
//!   slices whose mean GPU temperature is within [`STEADY_TOLERANCE_K`] of the last slice's, and
//!   at least [`MIN_STEADY_SEGMENTS`] of them.
//!
//! Telemetry is read in one pass ([`hallmark_store::Store::scan_telemetry`]) into fixed-size
//! accumulators (per device: a few numbers per slice of each idle and full-load phase), so memory
//! does not grow with the run's length; [`crate::RunSummary`] feeds the same accumulators from its
//! own pass for its outliers ([`crate::outliers`]).

mod device;
mod groups;
mod scan;

use hallmark_store::{ScanOptions, Store, StoreError, Telemetry};
use serde::{Deserialize, Serialize};

pub(crate) use scan::{Context, MetricsAcc};

/// Every base name (before a `.qualifier`) this module emits; each has a policy in
/// `hallmark_compare::KNOWN_METRICS`.
pub const METRIC_NAMES: &[&str] = &[
    "sustained_tflops",
    "mean_power_w",
    "gflops_per_w",
    "idle_power_w",
    "full_load_power_w",
    "thermal_resistance_k_per_w",
    "throttle_s",
    "wrong_elements",
    "latency_p50_us",
    "latency_p99_us",
    "busbw_gbps",
    "pdu_full_load_power_w",
    "energy_balance_pct",
    "cdu_heat_removed_w",
    "coolant_delta_t_k",
    "heat_capture_pct",
];

/// The rack's facility figures among [`METRIC_NAMES`] (from the hall's own meters).
pub const FACILITY_METRICS: &[&str] = &[
    "pdu_full_load_power_w",
    "energy_balance_pct",
    "cdu_heat_removed_w",
    "coolant_delta_t_k",
    "heat_capture_pct",
];

/// A `burn` phase whose steady level is at least this is a full-load phase.
pub const FULL_LOAD_LEVEL: f64 = 0.99;
/// Slices of each idle and full-load phase, for finding its steady part.
pub const SEGMENTS: usize = 10;
/// A slice is steady when its mean GPU temperature is within this of the phase's last slice, K.
pub const STEADY_TOLERANCE_K: f64 = 1.0;
/// Fewer steady slices than this (30 % of the phase) give the phase no steady part.
pub const MIN_STEADY_SEGMENTS: usize = 3;
/// The differential method needs P_load − P_idle of at least this fraction of P_load.
pub const MIN_POWER_STEP_FRACTION: f64 = 0.25;
/// Unit of a thermal resistance measured over the CDU's coolant supply.
pub const UNIT_K_PER_W_SUPPLY: &str = "K/W (over CDU supply)";
/// Unit of a thermal resistance from the idle-to-full-load differential.
pub const UNIT_K_PER_W_DIFFERENTIAL: &str = "K/W (idle-to-load differential)";

/// What a metric is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    Device,
    Node,
    Rack,
    /// A directed node pair of the latency mesh, `A->B`.
    Pair,
    Hall,
    /// A collective operation at one size, `op/size_bytes`.
    Collective,
    /// A rack PDU, by its source name in the facility file (no metric of this kind yet: the
    /// facility figures are per rack, [`SubjectKind::Rack`]).
    Pdu,
    /// A CDU, by its source name in the facility file (no metric of this kind yet: the facility
    /// figures are per rack, [`SubjectKind::Rack`]).
    Cdu,
}

impl SubjectKind {
    pub const ALL: [SubjectKind; 8] = [
        SubjectKind::Device,
        SubjectKind::Node,
        SubjectKind::Rack,
        SubjectKind::Pair,
        SubjectKind::Hall,
        SubjectKind::Collective,
        SubjectKind::Pdu,
        SubjectKind::Cdu,
    ];

    /// The name in JSON and text: `device`, `node`, `rack`, `pair`, `hall`, `collective`, `pdu`,
    /// `cdu`.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Device => "device",
            SubjectKind::Node => "node",
            SubjectKind::Rack => "rack",
            SubjectKind::Pair => "pair",
            SubjectKind::Hall => "hall",
            SubjectKind::Collective => "collective",
            SubjectKind::Pdu => "pdu",
            SubjectKind::Cdu => "cdu",
        }
    }

    /// The kind named by [`SubjectKind::as_str`]; `None` for any other text.
    pub fn parse(s: &str) -> Option<SubjectKind> {
        SubjectKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for SubjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One metric of one subject in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    pub kind: SubjectKind,
    pub subject: String,
    /// A base name of `hallmark_compare::KNOWN_METRICS`, possibly with a `.qualifier`.
    pub metric: String,
    /// `None`: the run should have measured it for this subject and did not.
    pub value: Option<f64>,
    /// The unit; for a thermal resistance also the method ([`UNIT_K_PER_W_SUPPLY`],
    /// [`UNIT_K_PER_W_DIFFERENTIAL`]).
    pub unit: String,
}

impl MetricValue {
    pub(crate) fn new(
        kind: SubjectKind,
        subject: impl Into<String>,
        metric: impl Into<String>,
        value: Option<f64>,
        unit: &str,
    ) -> MetricValue {
        MetricValue {
            kind,
            subject: subject.into(),
            metric: metric.into(),
            value: value.filter(|v| v.is_finite()),
            unit: unit.to_string(),
        }
    }
}

/// Every per-subject metric of a stored run, sorted by (kind, subject, metric); deterministic.
/// An unknown run is [`StoreError::UnknownRun`].
pub fn compute_metrics(store: &Store, run_id: &str) -> Result<Vec<MetricValue>, StoreError> {
    let cx = Context::load(store, run_id)?;
    let readings = crate::load::facility_readings(store, run_id)?;
    let mut acc = MetricsAcc::new(&cx);
    if !readings.is_empty() {
        acc = acc.keeping_readings();
    }
    store.scan_telemetry::<StoreError>(run_id, ScanOptions::ALL, |rec| {
        match rec {
            Telemetry::Sample(r) => acc.sample(&cx, &r),
            Telemetry::NodePower(r) => acc.node_power(&cx, &r),
        }
        Ok(())
    })?;
    let fabric = crate::fabric::fabric_phases(store, run_id, true)?;
    finish(store, run_id, &cx, &acc, &fabric, &readings, None)
}

/// The metrics from a finished scan, the run's fabric phases and its facility readings;
/// `facility` is the run summary's facility block where the caller has it (else it is computed
/// from the node readings `acc` kept).
pub(crate) fn finish(
    store: &Store,
    run_id: &str,
    cx: &Context,
    acc: &MetricsAcc,
    fabric: &[crate::fabric::FabricPhaseSummary],
    readings: &[hallmark_protocol::facility::FacilityReading],
    facility: Option<&crate::facility::FacilitySummary>,
) -> Result<Vec<MetricValue>, StoreError> {
    let results = store.phase_results(run_id)?;
    let facility = groups::FacilityFigures::new(cx, acc, readings, facility);
    let mut out = Vec::new();
    device::device_metrics(cx, acc, &results, &facility, &mut out);
    groups::power_metrics(cx, acc, &mut out);
    groups::fabric_metrics(cx, fabric, &mut out);
    facility.rack_metrics(&mut out);
    out.sort_by(|a, b| (a.kind, &a.subject, &a.metric).cmp(&(b.kind, &b.subject, &b.metric)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_kinds_round_trip_through_their_names() {
        for k in SubjectKind::ALL {
            assert_eq!(SubjectKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(SubjectKind::parse("gpu"), None);
        assert_eq!(SubjectKind::parse("Device"), None);
    }

    #[test]
    fn a_value_that_is_not_finite_is_absent() {
        let m = MetricValue::new(SubjectKind::Node, "n1", "idle_power_w", Some(f64::NAN), "W");
        assert_eq!(m.value, None);
    }
}
