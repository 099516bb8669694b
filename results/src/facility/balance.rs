//! The balances of a rack, each a flat record with its numbers and a [`Status`]:
//!
//! * **energy**: over the bins of the window in which each level has a figure and the GPU-side
//!   power held steady for the meters' interval on either side of the bin ([`STEADY_FRACTION`]), the means of the
//!   GPU-side rack power (the probes' node power), the BMC chassis sum (where every node of the
//!   rack has a chassis source) and the rack's PDU power. Each level must not exceed the one
//!   upstream of it: GPU-side ≤ chassis ≤ PDU. The measured value is the largest ratio of a level
//!   to the one upstream (GPU ÷ PDU, GPU ÷ chassis, chassis ÷ PDU); FAIL above 1 + tolerance.
//! * **heat**: over the window's bins, the mean heat ρ · c_p · flow · ΔT of the rack's CDU loops
//!   against the mean heat they report removed: FAIL when they differ by more than the tolerance
//!   (of the larger); the liquid-capture ratio, heat removed ÷ the rack's PDU power, must lie in
//!   the stated range.
//!
//! A source that is missing, stale or unreadable in the window makes the balance INCOMPLETE (it
//! stays FAIL when the evidence there is already fails it); no figure is ever 0 for want of one.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::series::Series;
use super::{mean_over, Frame, RackData};
use crate::verdict::Status;

/// GPU-side power that varies by at most this fraction of its mean over a meter's interval is
/// steady: only such bins are compared with a meter that reads once per interval (a load that
/// changes faster than the meter reads cannot be compared bin by bin: a 0.5 s square wave polled
/// every second is seen at the same phase every time).
pub const STEADY_FRACTION: f64 = 0.02;

/// The longest median interval of `series`, in bins (at least 1).
fn meter_span(f: &Frame, series: &[&Series]) -> i64 {
    let m = series.iter().filter_map(|s| s.median_ns).max().unwrap_or(0);
    (m.saturating_add(f.width_ns - 1) / f.width_ns).max(1)
}

/// The bins at which the GPU-side power held within [`STEADY_FRACTION`] of its mean over the
/// `span` bins on either side of them (every one of them with a figure). On either side: a
/// reading stands for the interval that ends at it, but the meter took it at some instant in
/// that interval, so the figure a bin gets may come from up to an interval after it; and the
/// meter may have updated it up to an interval before (a rack throttling, or a phase ending
/// right after the bin, is not steady there).
fn steady(gpu: &BTreeMap<i64, f64>, span: i64) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for &b in gpu.keys() {
        let w: Vec<f64> = gpu.range(b - span..=b + span).map(|(_, v)| *v).collect();
        if w.len() as i64 != 2 * span + 1 {
            continue;
        }
        let (lo, hi) = w
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(*v), h.max(*v))
            });
        let mean = w.iter().sum::<f64>() / w.len() as f64;
        if hi - lo <= STEADY_FRACTION * mean.abs() {
            out.insert(b);
        }
    }
    out
}

/// The limits of the balances.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerances {
    /// Energy: a level may exceed the one upstream by at most this fraction.
    pub energy: f64,
    /// Heat: computed and reported heat may differ by at most this fraction of the larger.
    pub heat: f64,
    /// Liquid capture (heat removed ÷ PDU power): the expected range, fractions.
    pub capture_min: Option<f64>,
    pub capture_max: Option<f64>,
}

impl Default for Tolerances {
    /// The summary's: 5 % energy, 10 % heat (`hallmark-facility`'s heat tolerance), capture
    /// 50–110 %.
    fn default() -> Self {
        Tolerances {
            energy: 0.05,
            heat: 0.10,
            capture_min: Some(0.5),
            capture_max: Some(1.1),
        }
    }
}

/// The energy balance of one rack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyBalance {
    pub rack: String,
    /// Means over the bins compared, kW (`null`: that level has no figure).
    pub gpu_kw: Option<f64>,
    pub chassis_kw: Option<f64>,
    pub pdu_kw: Option<f64>,
    /// Bins in which every level compared has a figure.
    pub bins: usize,
    /// GPU-side ÷ PDU, GPU-side ÷ chassis, chassis ÷ PDU.
    pub gpu_over_pdu: Option<f64>,
    pub gpu_over_chassis: Option<f64>,
    pub chassis_over_pdu: Option<f64>,
    /// The largest of the three: the measured value.
    pub worst_ratio: Option<f64>,
    pub tolerance: f64,
    pub status: Status,
    pub detail: String,
}

/// The heat balance of one rack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeatBalance {
    pub rack: String,
    /// Means over the bins compared, kW.
    pub computed_heat_kw: Option<f64>,
    pub cdu_heat_removed_kw: Option<f64>,
    pub pdu_kw: Option<f64>,
    /// |computed − reported| ÷ the larger: the measured value.
    pub difference: Option<f64>,
    /// Heat removed ÷ PDU power.
    pub capture_ratio: Option<f64>,
    pub tolerance: f64,
    pub capture_min: Option<f64>,
    pub capture_max: Option<f64>,
    pub status: Status,
    pub detail: String,
}

/// A status from the evidence, and the problems with the sources: INCOMPLETE unless it fails.
fn settle(status: Status, problems: &[String], detail: &mut String) -> Status {
    if problems.is_empty() {
        return status;
    }
    detail.push_str(&format!("; {}", problems.join("; ")));
    if status == Status::Fail {
        Status::Fail
    } else {
        Status::Incomplete
    }
}

/// The energy balance of a rack in `windows`.
pub fn energy(f: &Frame, d: &RackData, windows: &[(i64, i64)], tol: f64) -> EnergyBalance {
    let mut problems = d.problems_pdu(windows);
    if d.sources.pdus.is_empty() {
        problems.push(format!("rack {} has no PDU source", d.sources.rack));
    }
    let use_chassis = !d.sources.chassis.is_empty() && d.sources.nodes_without_chassis.is_empty();
    if use_chassis {
        problems.extend(d.problems_chassis(windows));
    }
    if d.gpu_kw.is_empty() {
        problems.push("no GPU-side node power in the rack".to_string());
    }
    let mut keys: Vec<i64> = d
        .pdu_kw
        .keys()
        .copied()
        .filter(|b| f.holds(windows, *b) && d.gpu_kw.contains_key(b))
        .collect();
    if use_chassis {
        keys.retain(|b| d.chassis_kw.contains_key(b));
    }
    let meters: Vec<&Series> = d.sources.pdus.iter().chain(&d.sources.chassis).collect();
    let span = meter_span(f, &meters);
    let candidates = keys.len();
    let steady = steady(&d.gpu_kw, span);
    keys.retain(|b| steady.contains(b));
    let gpu = mean_over(&d.gpu_kw, &keys);
    let pdu = mean_over(&d.pdu_kw, &keys);
    let chassis = use_chassis
        .then(|| mean_over(&d.chassis_kw, &keys))
        .flatten();
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).filter(|x| x.1 > 0.0).map(|(a, b)| a / b);
    let gpu_over_pdu = ratio(gpu, pdu);
    let gpu_over_chassis = ratio(gpu, chassis);
    let chassis_over_pdu = ratio(chassis, pdu);
    let worst = [gpu_over_pdu, gpu_over_chassis, chassis_over_pdu]
        .into_iter()
        .flatten()
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let mut detail = match (gpu, pdu) {
        (Some(g), Some(p)) => format!(
            "means over {} bins in which the GPU-side power held within {:.0} % for the meters' interval ({:.1} s) on either side: GPU-side {g:.2} kW, chassis {}, PDU {p:.2} kW; GPU ÷ PDU {:.1} %",
            keys.len(),
            STEADY_FRACTION * 100.0,
            span as f64 * f.width_ns as f64 / 1e9,
            chassis.map_or_else(
                || {
                    if d.sources.chassis.is_empty() {
                        "- (no chassis source)".to_string()
                    } else {
                        format!(
                            "- (no chassis source for {})",
                            d.sources.nodes_without_chassis.join(", ")
                        )
                    }
                },
                |c| format!("{c:.2} kW")
            ),
            gpu_over_pdu.unwrap_or(f64::NAN) * 100.0
        ),
        _ if candidates > 0 => format!(
            "the GPU-side power never held within {:.0} % for the meters' interval ({:.1} s) on either side in the {candidates} bins in which it and the PDU power are both known: a load that changes faster than the meters read cannot be balanced",
            STEADY_FRACTION * 100.0,
            span as f64 * f.width_ns as f64 / 1e9
        ),
        _ => "no bin in which the GPU-side and the PDU power are both known".to_string(),
    };
    let status = match worst {
        Some(w) if w > 1.0 + tol + 1e-12 => {
            detail.push_str(&format!(
                "; a level exceeds the one upstream of it by {:.1} %, more than the {:.1} % tolerance",
                (w - 1.0) * 100.0,
                tol * 100.0
            ));
            Status::Fail
        }
        Some(_) => Status::Pass,
        None => Status::Incomplete,
    };
    let status = settle(status, &problems, &mut detail);
    EnergyBalance {
        rack: d.sources.rack.clone(),
        gpu_kw: gpu,
        chassis_kw: chassis,
        pdu_kw: pdu,
        bins: keys.len(),
        gpu_over_pdu,
        gpu_over_chassis,
        chassis_over_pdu,
        worst_ratio: worst,
        tolerance: tol,
        status,
        detail,
    }
}

/// The heat balance of a rack in `windows`.
pub fn heat(f: &Frame, d: &RackData, windows: &[(i64, i64)], tol: &Tolerances) -> HeatBalance {
    let mut problems = d.problems_cdu(windows, &super::CduPart::ALL);
    if d.sources.cdus.is_empty() {
        problems.push(format!("rack {} has no CDU source", d.sources.rack));
    }
    let capture_judged = tol.capture_min.is_some() || tol.capture_max.is_some();
    if capture_judged {
        problems.extend(d.problems_pdu(windows));
        if d.sources.pdus.is_empty() {
            problems.push(format!("rack {} has no PDU source", d.sources.rack));
        }
    }
    let keys: Vec<i64> = d
        .heat_kw
        .keys()
        .copied()
        .filter(|b| f.holds(windows, *b) && d.computed_kw.contains_key(b))
        .collect();
    let computed = mean_over(&d.computed_kw, &keys);
    let reported = mean_over(&d.heat_kw, &keys);
    // Two meters that read once per interval: compared only where the load held steady.
    let meters: Vec<&Series> = d
        .sources
        .pdus
        .iter()
        .chain(d.sources.cdus.iter().map(|c| &c.heat))
        .collect();
    let steady = steady(&d.gpu_kw, meter_span(f, &meters));
    let pkeys: Vec<i64> = keys
        .iter()
        .copied()
        .filter(|b| d.pdu_kw.contains_key(b) && steady.contains(b))
        .collect();
    let capture = mean_over(&d.heat_kw, &pkeys)
        .zip(mean_over(&d.pdu_kw, &pkeys))
        .filter(|x| x.1 > 0.0)
        .map(|(h, p)| h / p);
    let pdu = mean_over(&d.pdu_kw, &pkeys);
    let difference = computed
        .zip(reported)
        .map(|(c, r)| (c - r).abs() / c.abs().max(r.abs()).max(1e-9));
    let mut detail = match (computed, reported) {
        (Some(c), Some(r)) => format!(
            "means over {} bins: ρ·c_p·flow·ΔT {c:.2} kW ({}), CDU heat removed {r:.2} kW",
            keys.len(),
            d.coolant_note
        ),
        _ => "no bin with both the CDU's heat removed and its flow and ΔT".to_string(),
    };
    let mut status = match difference {
        Some(x) if x > tol.heat + 1e-12 => {
            detail.push_str(&format!(
                "; they differ by {:.1} %, more than the {:.1} % tolerance",
                x * 100.0,
                tol.heat * 100.0
            ));
            Status::Fail
        }
        Some(_) => Status::Pass,
        None => Status::Incomplete,
    };
    if let Some(c) = capture {
        detail.push_str(&format!(
            "; liquid capture {:.1} % of PDU {:.2} kW",
            c * 100.0,
            pdu.unwrap_or(f64::NAN)
        ));
        let low = tol.capture_min.is_some_and(|m| c < m - 1e-12);
        let high = tol.capture_max.is_some_and(|m| c > m + 1e-12);
        if low || high {
            detail.push_str(&format!(
                ", outside the expected {}–{} %",
                tol.capture_min
                    .map_or("-".into(), |m| format!("{:.0}", m * 100.0)),
                tol.capture_max
                    .map_or("-".into(), |m| format!("{:.0}", m * 100.0))
            ));
            status = Status::Fail;
        }
    } else if capture_judged && status != Status::Fail {
        status = Status::Incomplete;
        detail.push_str("; no liquid-capture ratio: no bin with both heat removed and PDU power while the load held steady");
    }
    let status = settle(status, &problems, &mut detail);
    HeatBalance {
        rack: d.sources.rack.clone(),
        computed_heat_kw: computed,
        cdu_heat_removed_kw: reported,
        pdu_kw: pdu,
        difference,
        capture_ratio: capture,
        tolerance: tol.heat,
        capture_min: tol.capture_min,
        capture_max: tol.capture_max,
        status,
        detail,
    }
}
