//! Certification specs: criteria read from a TOML spec file, judged against a stored run.
//!
//! A [`Spec`] is a list of [`Criterion`]s, each of one [`CriterionKind`] at one [`Scope`]. The file
//! format, every kind, key and unit, and how each measured value is computed are described in
//! `docs/SPEC.md`.
//!
//! * [`parse_spec`] reads and checks a spec file (sans-IO: text in, [`Spec`] or [`SpecError`] out).
//!   Quantities are written with their units as strings (`min = "95 kW"`, `window = "20 s"`); each
//!   kind knows the dimension it needs, and a quantity of another dimension is refused with the
//!   position and what is allowed. Values are converted to canonical units: kW, °C, s, GB/s, a
//!   fraction (0–1) and bytes.
//! * [`evaluate`] judges every criterion against a run in a [`Store`](crate::Store): one
//!   [`Verdict`](crate::Verdict) per criterion per subject (rack, device, …), with the measured value,
//!   the limit, the unit and the evidence. A criterion whose evidence is not in the run is
//!   INCOMPLETE, never PASS.
//! * [`render_verdicts`] prints verdicts compactly for a terminal.
//! * [`DEMO_SPEC`] / [`demo_spec`] is the built-in spec for the simulated demo hall (equal to
//!   `examples/spec-demo-100kw.toml`).
//!
//! The module is split by stage: `units` (quantities and dimensions), `file` (private structs that
//! mirror the TOML), `convert` and `values` (their checks and conversion into a [`Spec`]), `errors` (positions
//! and wording), `data` (the run loaded once for evaluation; the fabric phases come from
//! [`crate::fabric`]), `eval*` (the verdicts) and `render`.

use serde::{Deserialize, Serialize};

use crate::verdict::Scope;

mod convert;
mod convert_facility;
mod data;
mod demo;
mod errors;
mod eval;
mod eval_device;
mod eval_fabric;
mod eval_facility;
mod eval_hall;
mod eval_power;
mod file;
mod render;
mod units;
mod values;

pub use demo::{demo_spec, DEMO_SPEC};
pub use errors::SpecError;
pub use eval::evaluate;
pub use render::render_verdicts;
pub use units::Dimension;

/// The criterion kinds a spec file accepts, as written in `kind = "..."`.
pub const KINDS: &[&str] = &[
    "sustained_power",
    "peak_power",
    "gpu_temperature",
    "throttle",
    "tflops",
    "wrong_elements",
    "start_skew",
    "latency_p99",
    "collective_busbw",
    "inventory",
    "coverage",
    "pdu_peak_power",
    "pdu_sustained_power",
    "coolant_supply_temperature",
    "coolant_delta_t",
    "heat_removed",
    "energy_balance",
    "heat_balance",
];

/// Certification criteria, read from a spec file by [`parse_spec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// 1–64 characters; names the certification in the store.
    pub name: String,
    pub description: Option<String>,
    /// At least one; ids are unique.
    pub criteria: Vec<Criterion>,
}

/// One criterion: what is measured, at which scope, against which limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    /// Unique within the spec (`[A-Za-z0-9._-]`, 1–64 characters).
    pub id: String,
    pub title: String,
    pub scope: Scope,
    /// The phases the measurement looks in, by name; empty: the whole run (for `tflops`: every
    /// phase that is not idle).
    pub phases: Vec<String>,
    pub kind: CriterionKind,
}

/// A GPU temperature limit: below the device's own maximum operating temperature, or absolute.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TempLimit {
    /// `max_operating_temp_c − margin_c` of each device.
    BelowMaxOperating { margin_c: f64 },
    /// The same limit for every device, °C.
    Absolute { max_c: f64 },
}

/// An NVML clock-event (throttle) reason that a `throttle` criterion budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleReason {
    SwPowerCap,
    HwSlowdown,
    SwThermal,
    HwThermal,
    HwPowerBrake,
}

impl ThrottleReason {
    /// All reasons, in the order of [`crate::throttle::REASONS`].
    pub const ALL: [ThrottleReason; 5] = [
        ThrottleReason::SwPowerCap,
        ThrottleReason::HwSlowdown,
        ThrottleReason::SwThermal,
        ThrottleReason::HwThermal,
        ThrottleReason::HwPowerBrake,
    ];

    /// The spec-file and summary name (`sw_thermal`, …).
    pub fn as_str(self) -> &'static str {
        crate::throttle::REASONS[self.index()].1
    }

    /// The NVML bit.
    pub fn bit(self) -> u64 {
        crate::throttle::REASONS[self.index()].0
    }

    /// Position in [`crate::throttle::REASONS`] (and in `DeviceAgg::by_reason`).
    pub fn index(self) -> usize {
        match self {
            ThrottleReason::SwPowerCap => 0,
            ThrottleReason::HwSlowdown => 1,
            ThrottleReason::SwThermal => 2,
            ThrottleReason::HwThermal => 3,
            ThrottleReason::HwPowerBrake => 4,
        }
    }

    pub fn parse(s: &str) -> Option<ThrottleReason> {
        ThrottleReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What a criterion measures and its limits, in canonical units (kW, °C, s, GB/s, fraction, bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CriterionKind {
    /// The highest mean group power over any window of `window_s` must be at least `min_kw`.
    SustainedPower {
        min_kw: f64,
        window_s: f64,
        warn_min_kw: Option<f64>,
    },
    /// The group's power in every bin must be at most `max_kw`.
    PeakPower {
        max_kw: f64,
        warn_max_kw: Option<f64>,
    },
    /// Each GPU's hottest reading must be at most `limit`; above `warn` (if given) it is a WARN.
    GpuTemperature {
        limit: TempLimit,
        warn: Option<TempLimit>,
    },
    /// Device-seconds with `reason`'s bit set must be at most `max_s`.
    Throttle {
        reason: ThrottleReason,
        max_s: f64,
        warn_max_s: Option<f64>,
    },
    /// Each device's achieved rate must be at least `min_fraction_of_median` × the fleet median; a
    /// device more than `mad_outlier` scaled MADs below the median is a WARN.
    Tflops {
        min_fraction_of_median: f64,
        mad_outlier: Option<f64>,
    },
    /// Wrong result elements per device must be at most `max`.
    WrongElements { max: u64 },
    /// Latest − earliest actual phase start, per phase, must be at most `max_s`.
    StartSkew { max_s: f64, warn_max_s: Option<f64> },
    /// The p99 round trip of every directed node pair of the latency phases must be at most
    /// `max_s` (the worst pair judged, per hall or per node).
    LatencyP99 { max_s: f64, warn_max_s: Option<f64> },
    /// The all-reduce's bus bandwidth at `size_bytes` must be at least `min_gb_s`, and no
    /// collective may find a wrong element.
    CollectiveBusbw {
        min_gb_s: f64,
        size_bytes: u64,
        warn_min_gb_s: Option<f64>,
    },
    /// The plan's expected inventory (and, if given, at least `nodes` nodes with at least
    /// `devices_per_node` devices each) must have registered.
    Inventory {
        nodes: Option<usize>,
        devices_per_node: Option<u32>,
    },
    /// Samples stored ÷ samples expected must be at least `min_fraction`.
    Coverage {
        min_fraction: f64,
        warn_min_fraction: Option<f64>,
    },
    /// The rack's PDU power (the sum of its PDUs) in every bin must be at most `max_kw`.
    PduPeakPower {
        max_kw: f64,
        warn_max_kw: Option<f64>,
    },
    /// The highest mean rack PDU power over any window of `window_s` must be at least `min_kw`.
    PduSustainedPower {
        min_kw: f64,
        window_s: f64,
        warn_min_kw: Option<f64>,
    },
    /// The rack's coolant supply temperature under load must stay at or below `max_c`.
    CoolantSupplyTemperature { max_c: f64, warn_max_c: Option<f64> },
    /// The rack loop's ΔT (return − supply) under load must stay at or below `max_k`.
    CoolantDeltaT { max_k: f64, warn_max_k: Option<f64> },
    /// The highest mean heat the rack's CDU reports removed over `window_s` under load must be at
    /// least `min_kw`.
    HeatRemoved {
        min_kw: f64,
        window_s: f64,
        warn_min_kw: Option<f64>,
    },
    /// GPU-side ≤ BMC chassis ≤ PDU power per rack: no level may exceed the one upstream of it by
    /// more than `tolerance` (a fraction).
    EnergyBalance { tolerance: f64 },
    /// ρ · c_p · flow · ΔT against the CDU's heat removed within `tolerance` (a fraction of the
    /// larger), and the liquid-capture ratio (heat removed ÷ PDU power) within `capture_min`…
    /// `capture_max` where given.
    HeatBalance {
        tolerance: f64,
        capture_min: Option<f64>,
        capture_max: Option<f64>,
        coolant: crate::facility::Coolant,
    },
}

impl CriterionKind {
    /// The name written in `kind = "..."`.
    pub fn name(&self) -> &'static str {
        match self {
            CriterionKind::SustainedPower { .. } => "sustained_power",
            CriterionKind::PeakPower { .. } => "peak_power",
            CriterionKind::GpuTemperature { .. } => "gpu_temperature",
            CriterionKind::Throttle { .. } => "throttle",
            CriterionKind::Tflops { .. } => "tflops",
            CriterionKind::WrongElements { .. } => "wrong_elements",
            CriterionKind::StartSkew { .. } => "start_skew",
            CriterionKind::LatencyP99 { .. } => "latency_p99",
            CriterionKind::CollectiveBusbw { .. } => "collective_busbw",
            CriterionKind::Inventory { .. } => "inventory",
            CriterionKind::Coverage { .. } => "coverage",
            CriterionKind::PduPeakPower { .. } => "pdu_peak_power",
            CriterionKind::PduSustainedPower { .. } => "pdu_sustained_power",
            CriterionKind::CoolantSupplyTemperature { .. } => "coolant_supply_temperature",
            CriterionKind::CoolantDeltaT { .. } => "coolant_delta_t",
            CriterionKind::HeatRemoved { .. } => "heat_removed",
            CriterionKind::EnergyBalance { .. } => "energy_balance",
            CriterionKind::HeatBalance { .. } => "heat_balance",
        }
    }

    /// Is this a criterion on the facility's readings (PDUs, CDUs, BMC chassis)?
    pub fn is_facility(&self) -> bool {
        matches!(
            self,
            CriterionKind::PduPeakPower { .. }
                | CriterionKind::PduSustainedPower { .. }
                | CriterionKind::CoolantSupplyTemperature { .. }
                | CriterionKind::CoolantDeltaT { .. }
                | CriterionKind::HeatRemoved { .. }
                | CriterionKind::EnergyBalance { .. }
                | CriterionKind::HeatBalance { .. }
        )
    }
}

/// Reads and checks a spec file. `file_name` is used only in error messages.
pub fn parse_spec(text: &str, file_name: &str) -> Result<Spec, SpecError> {
    let cx = errors::Cx {
        text,
        file: file_name,
    };
    let file: file::SpecFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.err(
            span.clone(),
            errors::explain(text, span, e.message().trim_end()),
        )
    })?;
    file.convert(&cx)
}
