//! [`evaluate`]: every criterion of a spec judged against a stored run, one [`Verdict`] per criterion
//! per subject. This file holds the dispatch and what the kinds share — subjects by scope, the phase
//! selection, and the comparison of a measured value with its limit; the kinds are in `eval_power`
//! (sustained and peak power), `eval_device` (temperature, throttling, TFLOP/s, wrong elements),
//! `eval_fabric` (latency p99 per node pair, all-reduce bus bandwidth), `eval_hall` (start skew,
//! inventory, coverage) and `eval_facility` (the facility's readings: PDU power, coolant, heat,
//! the energy and heat balances).
//!
//! Subjects are named as [`Verdict::subject`] documents: a device `node/index`, a node by its id, a
//! rack by its rack label (`row/rack` when two rows use the same rack label), a row by its label, the
//! hall by its name. Per-phase hall verdicts (start skew) are named `hall/phase`.

use std::collections::BTreeMap;

use super::data::RunData;
use super::{
    eval_device, eval_fabric, eval_facility, eval_hall, eval_power, Criterion, CriterionKind, Spec,
};
use crate::verdict::{Comparison, Evidence, Scope, Status, Verdict};
use hallmark_store::Store;
use hallmark_store::StoreError;

/// Judges every criterion of `spec` against run `run_id`: one verdict per criterion per subject, in
/// the spec's order, subjects in hall order. An unknown run is [`StoreError::UnknownRun`].
pub fn evaluate(store: &Store, run_id: &str, spec: &Spec) -> Result<Vec<Verdict>, StoreError> {
    let data = super::data::spec_data(store, run_id)?;
    let interconnect = |c: &Criterion| {
        matches!(
            c.kind,
            CriterionKind::LatencyP99 { .. } | CriterionKind::CollectiveBusbw { .. }
        )
    };
    // The fabric phases, read only when a criterion needs them (percentiles per pair come from
    // the stored columns; no histogram is decoded).
    let fabric = if spec.criteria.iter().any(interconnect) {
        crate::fabric::fabric_phases(store, run_id, false)?
    } else {
        Vec::new()
    };
    // The facility readings, read only when a criterion needs them.
    let facility = if spec.criteria.iter().any(|c| c.kind.is_facility()) {
        crate::load::facility_readings(store, run_id)?
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for c in &spec.criteria {
        let sel = match Sel::new(&data, c) {
            Ok(sel) => sel,
            Err(detail) => {
                let gpus = matches!(
                    c.kind,
                    CriterionKind::GpuTemperature { .. } | CriterionKind::Throttle { .. }
                );
                let (cmp, unit, limit) = limit_of(c);
                for s in subjects(&data, c.scope, gpus) {
                    let ev = Evidence {
                        subjects: vec![s.name.clone()],
                        detail: detail.clone(),
                        ..Evidence::default()
                    };
                    out.push(verdict(
                        c,
                        &s.name,
                        Status::Incomplete,
                        None,
                        limit,
                        cmp,
                        unit,
                        ev,
                    ));
                }
                continue;
            }
        };
        match &c.kind {
            CriterionKind::SustainedPower { .. } | CriterionKind::PeakPower { .. } => {
                eval_power::judge(&data, c, &sel, &mut out)
            }
            CriterionKind::GpuTemperature { .. }
            | CriterionKind::Throttle { .. }
            | CriterionKind::Tflops { .. }
            | CriterionKind::WrongElements { .. } => eval_device::judge(&data, c, &sel, &mut out),
            CriterionKind::LatencyP99 { .. } | CriterionKind::CollectiveBusbw { .. } => {
                eval_fabric::judge(&data, &fabric, c, &sel, &mut out)
            }
            k if k.is_facility() => eval_facility::judge(&data, &facility, c, &sel, &mut out),
            _ => eval_hall::judge(&data, c, &sel, &mut out),
        }
    }
    Ok(out)
}

/// The comparison, unit and (fixed) limit a criterion's verdicts carry, in the verdicts' units.
pub(super) fn limit_of(c: &Criterion) -> (Comparison, &'static str, Option<f64>) {
    use CriterionKind::*;
    match &c.kind {
        SustainedPower { min_kw, .. } => (Comparison::AtLeast, "kW", Some(*min_kw)),
        PeakPower { max_kw, .. } => (Comparison::AtMost, "kW", Some(*max_kw)),
        GpuTemperature { limit, .. } => (
            Comparison::AtMost,
            "°C",
            match limit {
                super::TempLimit::Absolute { max_c } => Some(*max_c),
                super::TempLimit::BelowMaxOperating { .. } => None,
            },
        ),
        Throttle { max_s, .. } => (Comparison::AtMost, "s", Some(*max_s)),
        Tflops { .. } => (Comparison::AtLeast, "TFLOP/s", None),
        WrongElements { max } => (Comparison::AtMost, "elements", Some(*max as f64)),
        StartSkew { max_s, .. } => (Comparison::AtMost, "ms", Some(max_s * 1e3)),
        LatencyP99 { max_s, .. } => (Comparison::AtMost, "µs", Some(max_s * 1e6)),
        CollectiveBusbw { min_gb_s, .. } => (Comparison::AtLeast, "GB/s", Some(*min_gb_s)),
        Inventory { nodes, .. } => (Comparison::AtLeast, "nodes", nodes.map(|n| n as f64)),
        Coverage { min_fraction, .. } => (Comparison::AtLeast, "%", Some(min_fraction * 100.0)),
        PduPeakPower { max_kw, .. } => (Comparison::AtMost, "kW", Some(*max_kw)),
        PduSustainedPower { min_kw, .. } => (Comparison::AtLeast, "kW", Some(*min_kw)),
        CoolantSupplyTemperature { max_c, .. } => (Comparison::AtMost, "°C", Some(*max_c)),
        CoolantDeltaT { max_k, .. } => (Comparison::AtMost, "K", Some(*max_k)),
        HeatRemoved { min_kw, .. } => (Comparison::AtLeast, "kW", Some(*min_kw)),
        EnergyBalance { tolerance } => (Comparison::AtMost, "%", Some((1.0 + tolerance) * 100.0)),
        HeatBalance { tolerance, .. } => (Comparison::AtMost, "%", Some(tolerance * 100.0)),
    }
}

/// The phases a criterion looks in.
pub(super) struct Sel {
    /// Positions in `RunData::phases`; `None`: the whole run.
    pub phases: Option<Vec<usize>>,
}

impl Sel {
    /// The criterion's phases, or why they cannot be found.
    fn new(d: &RunData, c: &Criterion) -> Result<Sel, String> {
        if c.phases.is_empty() {
            return Ok(Sel { phases: None });
        }
        let mut pos = Vec::new();
        for name in &c.phases {
            match d.phases.iter().position(|p| &p.name == name) {
                Some(i) => pos.push(i),
                None => {
                    let names: Vec<&str> = d.phases.iter().map(|p| p.name.as_str()).collect();
                    return Err(format!(
                        "the run has no phase `{name}` (its phases: {}); the criterion has no evidence",
                        if names.is_empty() { "none".to_string() } else { names.join(", ") }
                    ));
                }
            }
        }
        Ok(Sel { phases: Some(pos) })
    }

    /// Does an instant fall in the selection?
    pub fn holds(&self, d: &RunData, t: i64) -> bool {
        match &self.phases {
            None => true,
            Some(ps) => ps
                .iter()
                .any(|&i| d.phases[i].start_ns <= t && t < d.phases[i].end_ns),
        }
    }

    /// "in phase steady", "in phases ramp, steady", "over the whole run".
    pub fn describe(&self, d: &RunData) -> String {
        match &self.phases {
            None => "over the whole run".to_string(),
            Some(ps) => {
                let names: Vec<&str> = ps.iter().map(|&i| d.phases[i].name.as_str()).collect();
                format!(
                    "in phase{} {}",
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", ")
                )
            }
        }
    }

    /// The time span of the selection: the phases' windows, or the run's start to its end (or now
    /// unknown: the latest phase end).
    pub fn span(&self, d: &RunData) -> (Option<i64>, Option<i64>) {
        let ps: Vec<usize> = match &self.phases {
            Some(ps) => ps.clone(),
            None => {
                let end = d
                    .ended_at_ns
                    .or_else(|| d.phases.iter().map(|p| p.end_ns).max());
                return (Some(d.started_at_ns), end);
            }
        };
        (
            ps.iter().map(|&i| d.phases[i].start_ns).min(),
            ps.iter().map(|&i| d.phases[i].end_ns).max(),
        )
    }
}

/// A subject of a verdict: its name and the nodes and devices (positions in `RunData`) it covers.
pub(super) struct Subject {
    pub name: String,
    pub nodes: Vec<usize>,
    pub devices: Vec<usize>,
}

/// The subjects of a scope, in hall order. `gpus_only`: leave CPU sockets out.
pub(super) fn subjects(d: &RunData, scope: Scope, gpus_only: bool) -> Vec<Subject> {
    let keep = |i: &usize| !gpus_only || d.devices[*i].is_gpu();
    let mut node_devices: Vec<Vec<usize>> = vec![Vec::new(); d.nodes.len()];
    for (i, dev) in d.devices.iter().enumerate() {
        if keep(&i) {
            node_devices[dev.node].push(i);
        }
    }
    for v in &mut node_devices {
        v.sort_by_key(|&i| d.devices[i].index);
    }
    if scope == Scope::Device {
        return node_devices
            .iter()
            .flatten()
            .map(|&i| Subject {
                name: d.device_name(i),
                nodes: vec![d.devices[i].node],
                devices: vec![i],
            })
            .collect();
    }
    // Racks are named by label; a label used in two rows is qualified with its row.
    let mut rows_of_rack: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for n in &d.nodes {
        rows_of_rack.entry(&n.rack).or_default().insert(&n.row);
    }
    let mut groups: Vec<Subject> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (i, n) in d.nodes.iter().enumerate() {
        let name = match scope {
            Scope::Node | Scope::Device => n.id.clone(),
            Scope::Rack
                if rows_of_rack
                    .get(n.rack.as_str())
                    .is_some_and(|r| r.len() > 1) =>
            {
                format!("{}/{}", n.row, n.rack)
            }
            Scope::Rack => n.rack.clone(),
            Scope::Row => n.row.clone(),
            Scope::Hall => d.hall.clone(),
        };
        let g = *index.entry(name.clone()).or_insert_with(|| {
            groups.push(Subject {
                name,
                nodes: Vec::new(),
                devices: Vec::new(),
            });
            groups.len() - 1
        });
        groups[g].nodes.push(i);
        groups[g].devices.extend(&node_devices[i]);
    }
    if scope == Scope::Hall && groups.is_empty() {
        groups.push(Subject {
            name: d.hall.clone(),
            nodes: Vec::new(),
            devices: Vec::new(),
        });
    }
    groups
}

/// Tolerance of comparisons: values converted between units must not fail by a rounding error.
fn slack(limit: f64) -> f64 {
    1e-9 * limit.abs().max(1.0)
}

/// FAIL above `limit`, WARN above `warn`, else PASS.
pub(super) fn at_most(measured: f64, limit: f64, warn: Option<f64>) -> Status {
    if measured > limit + slack(limit) {
        Status::Fail
    } else if warn.is_some_and(|w| measured > w + slack(w)) {
        Status::Warn
    } else {
        Status::Pass
    }
}

/// FAIL below `limit`, WARN below `warn`, else PASS.
pub(super) fn at_least(measured: f64, limit: f64, warn: Option<f64>) -> Status {
    if measured < limit - slack(limit) {
        Status::Fail
    } else if warn.is_some_and(|w| measured < w - slack(w)) {
        Status::Warn
    } else {
        Status::Pass
    }
}

/// Appends the warning threshold to the detail of a WARN verdict (`; warning threshold 82.0 °C`).
pub(super) fn note_warn(ev: &mut Evidence, status: Status, warn: Option<f64>, unit: &str) {
    if let (Status::Warn, Some(w)) = (status, warn) {
        ev.detail.push_str(&format!(
            "; {WARNING_THRESHOLD} {}",
            super::render::fmt_value(w, unit)
        ));
    }
}

/// The words that introduce the warning threshold in a detail (the renderer shows what follows).
pub(super) const WARNING_THRESHOLD: &str = "warning threshold";

/// A verdict of criterion `c` (its id, title and scope).
#[allow(clippy::too_many_arguments)]
pub(super) fn verdict(
    c: &Criterion,
    subject: &str,
    status: Status,
    measured: Option<f64>,
    limit: Option<f64>,
    comparison: Comparison,
    unit: &str,
    evidence: Evidence,
) -> Verdict {
    Verdict {
        criterion: c.id.clone(),
        title: c.title.clone(),
        scope: c.scope,
        subject: subject.to_string(),
        status,
        measured: measured.filter(|x| x.is_finite()),
        limit: limit.filter(|x| x.is_finite()),
        comparison,
        unit: unit.to_string(),
        evidence,
    }
}

/// A list for a detail sentence: the first `max` items, then how many more.
pub(super) fn list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..max].join(", "), items.len() - max)
    }
}
