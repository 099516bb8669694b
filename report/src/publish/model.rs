//! The flat input of a publication, one [`PublishRun`] per run, as the command fills it from the
//! store: who the run is (ids, plan, hall, spec, bundle), how it was measured ([`Method`]), what the
//! system is ([`SystemDescription`]), what it measured ([`Figures`]) and its verdict counts.
//!
//! Absent is never 0: a figure nobody measured is `None` (and `–` on the page, an empty CSV field,
//! `null` in JSON); a list nobody filled is empty.

use crate::SpecRef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One run to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishRun {
    /// The run's full id.
    pub run_id: String,
    /// The run's name (from its plan).
    pub name: String,
    pub plan_name: String,
    /// SHA-256 of the plan file, lowercase hex.
    pub plan_sha256: String,
    /// The hall the run measured (a simulated hall's name, or what the operator calls the real one).
    pub hall: String,
    pub started_at_ns: i64,
    /// The SIMULATED banner of a run with any simulated node or device
    /// ([`hallmark_results::Simulation::banner`]); `None` for a run on real hardware only.
    pub simulated: Option<String>,
    /// The spec its verdicts were judged against; `None` when the run was not judged.
    pub spec: Option<SpecRef>,
    /// The run's signed bundle, written into `DIR/bundles/` before the publication.
    pub bundle: Option<BundleRef>,
    /// What the figures can be traced to when no bundle was written (for example the SHA-256 of the
    /// run's data file); shown beside "bundle not written".
    pub data: Option<DataRef>,
    pub method: Method,
    pub system: SystemDescription,
    pub figures: Figures,
    /// Verdict counts by status (`PASS`, `WARN`, `FAIL`, `INCOMPLETE`); empty when not judged.
    pub verdicts: BTreeMap<String, usize>,
}

/// A signed bundle in the publication's `bundles/` directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleRef {
    /// The file name inside `DIR/bundles/` (a plain name, no directories).
    pub file: String,
    /// SHA-256 of the bundle file, lowercase hex.
    pub sha256: String,
}

/// Something other than a bundle that the figures come from, with its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRef {
    /// What was hashed, in words (for example `run data file hallmark.sqlite`).
    pub what: String,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// A kind of facility meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MeterKind {
    /// Rack power distribution units: the rack's electrical input.
    Pdu,
    /// Coolant distribution units: flow and temperatures of a rack's liquid loop.
    Cdu,
    /// Baseboard management controllers: a node's or chassis' own power reading.
    Bmc,
}

impl MeterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MeterKind::Pdu => "PDU",
            MeterKind::Cdu => "CDU",
            MeterKind::Bmc => "BMC",
        }
    }
}

/// Meters of one kind that took readings during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meter {
    pub kind: MeterKind,
    /// Meters of this kind with at least one reading.
    pub count: usize,
    /// Racks with at least one of these meters reading.
    pub racks: usize,
    /// Readings per second of one meter (the median over the meters); `None` when unknown.
    pub sample_hz: Option<f64>,
}

/// How a run was measured: what a quality level needs ([`super::quality`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Method {
    /// The GPU-side power sensor, in words (for example `NVML power, instant field` or
    /// `simulated GPU model`); `None` when no device reported power.
    pub gpu_sensor: Option<String>,
    /// Device samples per second, as the plan asked and the probes sampled.
    pub gpu_sample_hz: Option<f64>,
    /// Devices with at least one power reading.
    pub devices_instrumented: usize,
    /// All devices of the run.
    pub devices_total: usize,
    /// The run's duration, seconds.
    pub run_s: Option<f64>,
    /// Seconds of the run covered by the instrumented devices' samples (the duration less the
    /// stretches without samples).
    pub covered_s: Option<f64>,
    /// How the thermal resistances were measured (for example `over CDU supply` or
    /// `idle-to-load differential`); `None` when no device has one.
    pub thermal_method: Option<String>,
    /// The facility meters that took readings, one entry per kind present.
    pub meters: Vec<Meter>,
    /// All racks of the run.
    pub racks_total: usize,
}

/// What the system is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SystemDescription {
    /// Device models and how many of each.
    pub device_models: BTreeMap<String, usize>,
    pub nodes: usize,
    pub racks: usize,
    /// The probes' backends (`cuda`, `cpu`, `sim`).
    pub backends: Vec<String>,
    /// GPU driver versions reported by the devices.
    pub drivers: Vec<String>,
    /// Further facts as label and text (cooling, interconnect, hallmark version), in this order.
    pub notes: Vec<(String, String)>,
}

/// One GPU's figures over the run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GpuFigures {
    /// The device (`node/index` or its UUID).
    pub device: String,
    pub rack: Option<String>,
    /// Sustained TFLOP/s.
    pub tflops: Option<f64>,
    /// Mean power while loaded, W.
    pub power_w: Option<f64>,
    /// Seconds throttled (any slowdown reason).
    pub throttle_s: Option<f64>,
    /// Thermal resistance: the steady GPU temperature's rise over the coolant supply per watt of
    /// GPU power, K/W (how it was measured: [`Method::thermal_method`]).
    pub thermal_resistance_k_per_w: Option<f64>,
}

impl GpuFigures {
    /// GFLOP/s per W: sustained TFLOP/s × 1000 / mean power, where both are measured and the power
    /// is above zero.
    pub fn gflops_per_w(&self) -> Option<f64> {
        match (self.tflops, self.power_w) {
            (Some(t), Some(w)) if t.is_finite() && w.is_finite() && w > 0.0 => Some(t * 1e3 / w),
            _ => None,
        }
    }
}

/// One rack's power against its design.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RackFigures {
    pub rack: String,
    /// Sustained rack power, kW.
    pub kw: Option<f64>,
    /// The rack's design power, kW.
    pub design_kw: Option<f64>,
}

impl RackFigures {
    /// Sustained power as a percentage of the design.
    pub fn pct_of_design(&self) -> Option<f64> {
        match (self.kw, self.design_kw) {
            (Some(kw), Some(d)) if kw.is_finite() && d.is_finite() && d > 0.0 => {
                Some(kw / d * 100.0)
            }
            _ => None,
        }
    }
}

/// A collective's bus bandwidth at one message size, measured by one subject (a group, a rank set
/// or one repetition).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BusBw {
    /// The collective (`all_reduce`, `all_gather`, …).
    pub collective: String,
    /// Message size, bytes.
    pub bytes: u64,
    pub subject: String,
    /// Bus bandwidth, GB/s.
    pub gb_s: Option<f64>,
}

/// One node pair's latency.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PairLatency {
    /// The pair (`a↔b`).
    pub pair: String,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
}

/// The distributions a run measured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Figures {
    pub gpus: Vec<GpuFigures>,
    pub racks: Vec<RackFigures>,
    pub busbw: Vec<BusBw>,
    pub latency: Vec<PairLatency>,
}

/// A finite value or absent.
pub(crate) fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}
