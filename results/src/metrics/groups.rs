//! Metrics of groups and of the fabric and facility: node and rack `idle_power_w` and
//! `full_load_power_w`; pair and hall `latency_p50_us` and `latency_p99_us`; collective
//! `busbw_gbps`; and the rack's facility figures over the second half of the full-load phases
//! (`pdu_full_load_power_w`, `cdu_heat_removed_w`, `coolant_delta_t_k`, `heat_capture_pct`) and
//! its energy balance (`energy_balance_pct`), with the rack's CDU supply per bin that the thermal
//! resistance is measured over.

use std::collections::{BTreeMap, HashMap};

use hallmark_protocol::facility::FacilityReading;

use super::scan::{Context, Load, NodeAcc};
use super::{MetricValue, MetricsAcc, SubjectKind};
use crate::aggregate::{node_bins, Bins, GroupBins};
use crate::fabric::FabricPhaseSummary;
use crate::facility::{
    by_rack, facility_summary, Coolant, FacilitySummary, Frame, RackInput, RackSources,
};

/// One rack's facility figures over the full-load phases.
#[derive(Debug, Clone, Default)]
struct RackFigures {
    /// Whether the rack has a PDU source, a CDU source.
    pdu: bool,
    cdu: bool,
    /// Means over the second half of the full-load phases: PDU power and heat removed (W), the
    /// highest loop's return − supply (K).
    pdu_w: Option<f64>,
    heat_w: Option<f64>,
    delta_t_k: Option<f64>,
    /// The energy balance's worst ratio (the summary's, under load), %.
    energy_pct: Option<f64>,
}

/// The facility's figures per rack, by rack subject name.
pub(crate) struct FacilityFigures {
    bins: Bins,
    /// The rack's coolant supply per bin: its CDU loop's, the highest where it has several.
    supply: HashMap<String, BTreeMap<i64, f64>>,
    racks: Vec<(String, RackFigures)>,
}

/// Mean of `series` over the bins whose centre lies in the second half of a full-load phase: the
/// facility's meters update every second or slower and hold their reading between updates, and
/// a coolant loop lags its heat, so the first readings of a phase still show the one before.
fn full_load_mean(frame: &Frame, series: &BTreeMap<i64, f64>) -> Option<f64> {
    let v: Vec<f64> = series
        .iter()
        .filter(|(b, _)| frame.holds(&frame.load, **b))
        .map(|(_, x)| *x)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// (hall, row, rack label) → node slots, in that order.
fn racks_of(cx: &Context) -> BTreeMap<(String, String, String), Vec<usize>> {
    let mut out: BTreeMap<(String, String, String), Vec<usize>> = BTreeMap::new();
    for (i, n) in cx.nodes.iter().enumerate() {
        out.entry((n.hall.clone(), n.row.clone(), n.rack_label.clone()))
            .or_default()
            .push(i);
    }
    out
}

impl FacilityFigures {
    /// The figures from the run's facility readings; `summary` is the run summary's facility
    /// block when the caller has one, else it is computed here from the node readings kept in
    /// `acc` (see [`MetricsAcc::keeping_readings`]).
    pub fn new(
        cx: &Context,
        acc: &MetricsAcc,
        readings: &[FacilityReading],
        summary: Option<&FacilitySummary>,
    ) -> FacilityFigures {
        let bins = Bins::new(cx.started_at_ns, cx.sample_hz);
        let mut out = FacilityFigures {
            bins,
            supply: HashMap::new(),
            racks: Vec::new(),
        };
        if readings.is_empty() {
            return out;
        }
        let racks = racks_of(cx);
        let subject = |slots: &[usize]| cx.nodes[slots[0]].rack.clone();
        let keys: Vec<(String, Vec<String>)> = racks
            .iter()
            .map(|((_, _, label), slots)| {
                let nodes = slots.iter().map(|&i| cx.nodes[i].id.clone()).collect();
                (label.clone(), nodes)
            })
            .collect();
        let refs: Vec<(&str, &[String])> = keys
            .iter()
            .map(|(l, n)| (l.as_str(), n.as_slice()))
            .collect();
        let full: Vec<(i64, i64)> = cx
            .windows
            .iter()
            .filter(|w| w.load == Load::Full)
            .map(|w| (w.start_ns + (w.end_ns - w.start_ns) / 2, w.end_ns))
            .collect();
        let frame = Frame::new(cx.started_at_ns, cx.sample_hz, full);
        let mut figures = Vec::new();
        for ((slots, own), (label, nodes)) in
            racks.values().zip(by_rack(readings, &refs)).zip(&keys)
        {
            let sources = RackSources::new(&own, label, nodes);
            let loops: Vec<_> = sources
                .cdus
                .iter()
                .map(|c| c.bins(bins, frame.width_ns, Coolant::PG25))
                .collect();
            let pick = |f: fn(&crate::facility::rack::LoopBins) -> &BTreeMap<i64, f64>| {
                loops.iter().map(|l| f(l).clone()).collect::<Vec<_>>()
            };
            let heat = crate::facility::series::sum_all(&pick(|l| &l.heat_kw));
            out.supply
                .insert(subject(slots), highest(&pick(|l| &l.supply_c)));
            figures.push(RackFigures {
                pdu: !sources.pdus.is_empty(),
                cdu: !sources.cdus.is_empty(),
                pdu_w: full_load_mean(&frame, &sources.pdu_kw(bins, frame.width_ns))
                    .map(|kw| kw * 1e3),
                heat_w: full_load_mean(&frame, &heat).map(|kw| kw * 1e3),
                delta_t_k: full_load_mean(&frame, &highest(&pick(|l| &l.delta_t_k))),
                energy_pct: None,
            });
        }
        let computed;
        let summary = match summary {
            Some(s) => s,
            None => {
                computed = summarise(cx, acc, readings, &racks);
                &computed
            }
        };
        for ((rf, slots), mut fig) in summary.racks.iter().zip(racks.values()).zip(figures) {
            fig.energy_pct = rf.energy.worst_ratio.map(|r| r * 100.0);
            out.racks.push((subject(slots), fig));
        }
        out
    }

    /// The rack's mean coolant supply over `[from, to)`, °C; `None` without a supply reading in
    /// that span.
    pub fn supply_mean(&self, rack: &str, from_ns: i64, to_ns: i64) -> Option<f64> {
        let series = self.supply.get(rack)?;
        let (a, b) = (self.bins.of(from_ns), self.bins.of(to_ns));
        let v: Vec<f64> = series.range(a..b.max(a + 1)).map(|(_, c)| *c).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// Appends each rack's facility figures (none without facility readings).
    pub fn rack_metrics(&self, out: &mut Vec<MetricValue>) {
        for (rack, rf) in &self.racks {
            let mut push = |metric: &str, value: Option<f64>, unit: &str| {
                out.push(MetricValue::new(
                    SubjectKind::Rack,
                    rack.clone(),
                    metric,
                    value,
                    unit,
                ))
            };
            if rf.pdu {
                push("pdu_full_load_power_w", rf.pdu_w, "W");
                push("energy_balance_pct", rf.energy_pct, "%");
            }
            if rf.cdu {
                push("cdu_heat_removed_w", rf.heat_w, "W");
                push("coolant_delta_t_k", rf.delta_t_k, "K");
            }
            if rf.pdu && rf.cdu {
                let capture = rf.heat_w.zip(rf.pdu_w.filter(|p| *p > 0.0));
                push("heat_capture_pct", capture.map(|(h, p)| h / p * 100.0), "%");
            }
        }
    }
}

/// Bin-wise highest of several series, in the bins where all have a value.
fn highest(series: &[BTreeMap<i64, f64>]) -> BTreeMap<i64, f64> {
    let Some((first, rest)) = series.split_first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .filter_map(|(&b, &v)| {
            rest.iter()
                .try_fold(v, |m, s| s.get(&b).map(|x| m.max(*x)))
                .map(|m| (b, m))
        })
        .collect()
}

/// The facility block as the run summary computes it, from the node readings kept in `acc`.
fn summarise(
    cx: &Context,
    acc: &MetricsAcc,
    readings: &[FacilityReading],
    racks: &BTreeMap<(String, String, String), Vec<usize>>,
) -> FacilitySummary {
    let bins = Bins::new(cx.started_at_ns, cx.sample_hz);
    let inputs = racks
        .iter()
        .map(|((hall, row, rack), slots)| {
            let mut power = GroupBins::default();
            for &i in slots {
                power.add_node(&node_bins(bins, acc.nodes[i].readings.iter().copied()));
            }
            RackInput {
                hall: hall.clone(),
                row: row.clone(),
                rack: rack.clone(),
                nodes: slots.iter().map(|&i| cx.nodes[i].id.clone()).collect(),
                gpu_kw: power.complete_kw(),
            }
        })
        .collect();
    let load = cx
        .phase_spans
        .iter()
        .filter(|(w, ..)| w != "idle")
        .map(|&(_, s, e)| (s, e))
        .filter(|(s, e)| e > s)
        .collect();
    let frame = Frame::new(cx.started_at_ns, cx.sample_hz, load);
    facility_summary(&frame, readings, inputs)
}

/// Appends node and rack `idle_power_w` and `full_load_power_w`.
pub(super) fn power_metrics(cx: &Context, acc: &MetricsAcc, out: &mut Vec<MetricValue>) {
    let mean = |(sum, n): (f64, u64)| (n > 0).then(|| sum / n as f64);
    type Sums = fn(&NodeAcc) -> (f64, u64);
    let figures: [(Load, &str, Sums); 2] = [
        (Load::Idle, "idle_power_w", |n| n.idle),
        (Load::Full, "full_load_power_w", |n| n.full),
    ];
    for (load, metric, of) in figures {
        if !cx.has(load) {
            continue;
        }
        let mut racks: BTreeMap<&str, Option<f64>> = BTreeMap::new();
        for (node, a) in cx.nodes.iter().zip(&acc.nodes) {
            let v = mean(of(a));
            out.push(MetricValue::new(
                SubjectKind::Node,
                &node.id,
                metric,
                v,
                "W",
            ));
            // A rack's figure is the sum of its nodes'; one silent node leaves it unknown.
            let r = racks.entry(node.rack.as_str()).or_insert(Some(0.0));
            *r = r.zip(v).map(|(a, b)| a + b);
        }
        for (rack, v) in racks {
            out.push(MetricValue::new(SubjectKind::Rack, rack, metric, v, "W"));
        }
    }
}

/// The worst of two figures of one subject: `None` (unmeasured) wins, else `pick`.
fn worst(a: Option<Option<f64>>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match a {
        None => b,
        Some(a) => a.zip(b).map(|(a, b)| pick(a, b)),
    }
}

/// Appends pair and hall latency percentiles and collective bus bandwidths. Where several phases
/// measured one subject, the worst figure counts (the highest latency, the lowest busbw).
pub(super) fn fabric_metrics(
    cx: &Context,
    fabric: &[FabricPhaseSummary],
    out: &mut Vec<MetricValue>,
) {
    type Figures = BTreeMap<(SubjectKind, String, &'static str), Option<f64>>;
    let mut figures: Figures = BTreeMap::new();
    let mut add = |kind, subject: String, metric, v: Option<f64>, pick: fn(f64, f64) -> f64| {
        let e = figures.entry((kind, subject, metric));
        let merged = match &e {
            std::collections::btree_map::Entry::Occupied(o) => worst(Some(*o.get()), v, pick),
            std::collections::btree_map::Entry::Vacant(_) => v,
        };
        *e.or_insert(None) = merged;
    };
    for f in fabric {
        if let Some(lat) = f.latency.as_ref().filter(|_| f.is_latency()) {
            for p in &lat.pairs {
                let name = format!("{}->{}", p.src, p.dst);
                let rtt = p.rtt.as_ref();
                add(
                    SubjectKind::Pair,
                    name.clone(),
                    "latency_p50_us",
                    rtt.map(|r| r.p50_us),
                    f64::max,
                );
                add(
                    SubjectKind::Pair,
                    name,
                    "latency_p99_us",
                    rtt.map(|r| r.p99_us),
                    f64::max,
                );
            }
            for p in &lat.missing {
                let name = format!("{}->{}", p.src, p.dst);
                add(
                    SubjectKind::Pair,
                    name.clone(),
                    "latency_p50_us",
                    None,
                    f64::max,
                );
                add(SubjectKind::Pair, name, "latency_p99_us", None, f64::max);
            }
            let hall = lat.hall.as_ref();
            add(
                SubjectKind::Hall,
                cx.hall.clone(),
                "latency_p50_us",
                hall.map(|h| h.p50_us),
                f64::max,
            );
            add(
                SubjectKind::Hall,
                cx.hall.clone(),
                "latency_p99_us",
                hall.map(|h| h.p99_us),
                f64::max,
            );
        }
        for c in &f.collectives {
            let name = format!("{}/{}", c.op, c.size_bytes);
            // A rank that did not report could only have been slower: the figure is unknown.
            let v = (c.missing.is_empty() && c.busbw_gb_s.is_finite()).then_some(c.busbw_gb_s);
            add(SubjectKind::Collective, name, "busbw_gbps", v, f64::min);
        }
    }
    for ((kind, subject, metric), v) in figures {
        let unit = if metric == "busbw_gbps" {
            "GB/s"
        } else {
            "µs"
        };
        out.push(MetricValue::new(kind, subject, metric, v, unit));
    }
}
