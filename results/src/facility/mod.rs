//! The hall's own meters during a run: rack PDUs, CDUs and node BMCs, read by a facility collector
//! and stored with the run as flat [`FacilityReading`]s (docs/FACILITY.md, "Criteria and
//! balances"). Pure functions over the readings; the store is read in `load.rs`.
//!
//! * [`series`]: one source's quantity at one point — its median interval, staleness, and its
//!   readings held over the run's bins (the bins of [`crate::aggregate`]: one sample interval).
//! * [`rack`]: a rack's sources — the PDU power sum, the chassis sum, the CDU loops.
//! * [`balance`]: the energy and heat balances, each a record with its numbers and a status.
//! * [`facility_summary`]: per rack `pdu_peak_kw` and `pdu_sustained_kw` (as the GPU-side
//!   `peak_kw` and `sustained_kw`: the largest bin, and the highest mean over
//!   [`crate::SUSTAINED_WINDOW_S`] of consecutive bins or the longest stretch if shorter), the CDU
//!   figures under load and `cdu_heat_removed_kw` (sustained, the same window), and the balances
//!   with the default [`Tolerances`].
//!
//! **Under load** means in the windows of the phases whose workload is not `idle`.

pub mod balance;
pub mod rack;
pub mod render;
pub mod series;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aggregate::{sustained, Bins};
use hallmark_protocol::facility::FacilityReading;

pub use balance::{EnergyBalance, HeatBalance, Tolerances};
pub use rack::{Coolant, RackSources};

/// The run's bins and its windows under load.
#[derive(Debug, Clone)]
pub struct Frame {
    pub bins: Bins,
    pub origin_ns: i64,
    pub width_ns: i64,
    pub sample_hz: f64,
    /// The windows of the phases with load (workload not `idle`), `[start, end)`.
    pub load: Vec<(i64, i64)>,
}

impl Frame {
    pub fn new(started_at_ns: i64, sample_hz: f64, load: Vec<(i64, i64)>) -> Frame {
        Frame {
            bins: Bins::new(started_at_ns, sample_hz),
            origin_ns: started_at_ns,
            width_ns: (1e9 / sample_hz).round().max(1.0) as i64,
            sample_hz,
            load,
        }
    }

    /// The centre of bin `b`, ns.
    pub fn centre(&self, b: i64) -> i64 {
        self.origin_ns
            .saturating_add(b.saturating_mul(self.width_ns))
    }

    /// Does bin `b`'s centre lie in one of `windows`?
    pub fn holds(&self, windows: &[(i64, i64)], b: i64) -> bool {
        let t = self.centre(b);
        windows.iter().any(|&(a, e)| a <= t && t < e)
    }
}

/// A rack's sources and its binned figures.
#[derive(Debug, Clone)]
pub struct RackData {
    pub sources: RackSources,
    /// GPU-side rack power over the complete bins, kW.
    pub gpu_kw: BTreeMap<i64, f64>,
    pub pdu_kw: BTreeMap<i64, f64>,
    pub chassis_kw: BTreeMap<i64, f64>,
    /// Sums over the rack's CDU loops, in the bins where every loop has a figure.
    pub heat_kw: BTreeMap<i64, f64>,
    pub computed_kw: BTreeMap<i64, f64>,
    pub flow_lpm: BTreeMap<i64, f64>,
    /// The highest of the loops.
    pub supply_c: BTreeMap<i64, f64>,
    pub return_c: BTreeMap<i64, f64>,
    pub delta_t_k: BTreeMap<i64, f64>,
    /// How ρ and c_p were chosen.
    pub coolant_note: String,
}

/// Bin-wise maximum over several series, where every one has a figure.
pub(crate) fn max_all(series: &[BTreeMap<i64, f64>]) -> BTreeMap<i64, f64> {
    let Some((first, rest)) = series.split_first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .filter_map(|(&b, &v)| {
            rest.iter()
                .try_fold(v, |acc, s| s.get(&b).map(|x| acc.max(*x)))
                .map(|m| (b, m))
        })
        .collect()
}

/// What ρ and c_p the rack's loops were computed with: the CDUs' stated coolant, or `assumed`.
fn coolant_note(cdus: &[rack::CduLoop], assumed: Coolant) -> String {
    let mut parts: Vec<String> = cdus
        .iter()
        .map(|c| match c.stated {
            Some(s) => format!(
                "ρ {} kg/m³, c_p {} kJ/(kg·K) as {} states",
                s.density_kg_per_m3, s.specific_heat_kj_per_kg_k, c.source
            ),
            None => format!(
                "ρ {} kg/m³, c_p {} kJ/(kg·K) assumed",
                assumed.density_kg_per_m3, assumed.specific_heat_kj_per_kg_k
            ),
        })
        .collect();
    parts.dedup();
    if parts.is_empty() {
        parts.push(format!(
            "ρ {} kg/m³, c_p {} kJ/(kg·K) assumed",
            assumed.density_kg_per_m3, assumed.specific_heat_kj_per_kg_k
        ));
    }
    parts.join("; ")
}

impl RackData {
    /// The rack's figures from its sources; `gpu_kw` is its GPU-side power over complete bins.
    pub fn new(
        f: &Frame,
        sources: RackSources,
        gpu_kw: BTreeMap<i64, f64>,
        coolant: Coolant,
    ) -> RackData {
        let pdu_kw = sources.pdu_kw(f.bins, f.width_ns);
        let chassis_kw = sources.chassis_kw(f.bins, f.width_ns);
        let loops: Vec<_> = sources
            .cdus
            .iter()
            .map(|c| c.bins(f.bins, f.width_ns, coolant))
            .collect();
        let pick = |g: fn(&rack::LoopBins) -> &BTreeMap<i64, f64>| -> Vec<BTreeMap<i64, f64>> {
            loops.iter().map(|l| g(l).clone()).collect()
        };
        RackData {
            heat_kw: series::sum_all(&pick(|l| &l.heat_kw)),
            computed_kw: series::sum_all(&pick(|l| &l.computed_kw)),
            flow_lpm: series::sum_all(&pick(|l| &l.flow_lpm)),
            supply_c: max_all(&pick(|l| &l.supply_c)),
            return_c: max_all(&pick(|l| &l.return_c)),
            delta_t_k: max_all(&pick(|l| &l.delta_t_k)),
            coolant_note: coolant_note(&sources.cdus, coolant),
            sources,
            gpu_kw,
            pdu_kw,
            chassis_kw,
        }
    }

    fn problems(series: &[&series::Series], windows: &[(i64, i64)]) -> Vec<String> {
        let mut out = Vec::new();
        for s in series {
            for &(a, b) in windows {
                if let Some(p) = s.problem(a, b) {
                    out.push(p);
                    break;
                }
            }
        }
        out
    }

    /// What is wrong with the rack's PDUs in `windows` (empty: nothing).
    pub fn problems_pdu(&self, windows: &[(i64, i64)]) -> Vec<String> {
        Self::problems(&self.sources.pdus.iter().collect::<Vec<_>>(), windows)
    }

    pub fn problems_chassis(&self, windows: &[(i64, i64)]) -> Vec<String> {
        Self::problems(&self.sources.chassis.iter().collect::<Vec<_>>(), windows)
    }

    /// What is wrong with the rack's CDU loops in `windows`, for the readings `parts` needs.
    pub fn problems_cdu(&self, windows: &[(i64, i64)], parts: &[CduPart]) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.sources.cdus {
            let name = |q: &str| format!("{} ({} {q})", c.source, point_name(&c.point));
            let mut check = |s: &series::Series, q: &str| {
                if s.t.is_empty() && s.absent.is_empty() {
                    out.push(format!("CDU `{}` reports no {q}", name(q)));
                } else {
                    let mut s = s.clone();
                    s.source = name(q);
                    out.extend(Self::problems(&[&s], windows));
                }
            };
            for part in parts {
                match part {
                    CduPart::Flow => check(&c.flow, "flow_lpm"),
                    CduPart::Supply => check(&c.supply, "supply_temp_c"),
                    // The reported ΔT stands in for a return temperature that is not read.
                    CduPart::Return
                        if c.ret.t.is_empty()
                            && c.ret.absent.is_empty()
                            && !c.delta_t.t.is_empty() =>
                    {
                        check(&c.delta_t, "delta_t_k")
                    }
                    CduPart::Return => check(&c.ret, "return_temp_c"),
                    CduPart::Heat => check(&c.heat, "heat_removed_kw"),
                }
            }
        }
        out
    }
}

/// The readings of a CDU loop a figure rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CduPart {
    Flow,
    Supply,
    /// The return temperature, or the reported ΔT where no return temperature is read.
    Return,
    Heat,
}

impl CduPart {
    pub const ALL: [CduPart; 4] = [
        CduPart::Flow,
        CduPart::Supply,
        CduPart::Return,
        CduPart::Heat,
    ];
}

/// The readings of each rack — those about the rack and those about its nodes — in one pass over
/// all of them; `racks` are (rack label, its node ids), the result in their order.
pub fn by_rack(
    readings: &[FacilityReading],
    racks: &[(&str, &[String])],
) -> Vec<Vec<FacilityReading>> {
    use hallmark_protocol::facility::Subject;
    use std::collections::HashMap;
    let mut of_rack: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut of_node: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (rack, nodes)) in racks.iter().enumerate() {
        of_rack.entry(rack).or_default().push(i);
        for n in nodes.iter() {
            of_node.entry(n.as_str()).or_default().push(i);
        }
    }
    let mut out = vec![Vec::new(); racks.len()];
    for r in readings {
        let targets = match &r.subject {
            Subject::Rack(name) => of_rack.get(name.as_str()),
            Subject::Node(name) => of_node.get(name.as_str()),
            Subject::Row(_) | Subject::Hall => None,
        };
        for &i in targets.into_iter().flatten() {
            out[i].push(r.clone());
        }
    }
    out
}

/// `secondary`, `primary`, or `unit` for the whole unit.
pub fn point_name(p: &str) -> &str {
    if p.is_empty() {
        "unit"
    } else {
        p
    }
}

/// Mean of `series` over `keys` (bins it has), `None` without any.
pub fn mean_over(series: &BTreeMap<i64, f64>, keys: &[i64]) -> Option<f64> {
    let v: Vec<f64> = keys.iter().filter_map(|b| series.get(b).copied()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Highest value of `series` over the bins in `windows`.
pub fn max_in(f: &Frame, series: &BTreeMap<i64, f64>, windows: &[(i64, i64)]) -> Option<f64> {
    series
        .iter()
        .filter(|(b, _)| f.holds(windows, **b))
        .map(|(_, v)| *v)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
}

/// One rack's facility figures in the run summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RackFacility {
    pub hall: String,
    pub row: String,
    pub rack: String,
    /// The sources that serve the rack, by their names in `facility.toml`.
    pub pdus: Vec<String>,
    pub cdus: Vec<String>,
    /// Nodes of the rack with a chassis (BMC) source.
    pub chassis_nodes: usize,
    /// Largest rack PDU power of any bin, kW.
    pub pdu_peak_kw: Option<f64>,
    /// Highest mean over `pdu_sustained_window_s` of consecutive bins with PDU power, kW.
    pub pdu_sustained_kw: Option<f64>,
    pub pdu_sustained_window_s: f64,
    /// Highest mean of the CDU's heat removed over `cdu_heat_window_s` of consecutive bins, kW.
    pub cdu_heat_removed_kw: Option<f64>,
    pub cdu_heat_window_s: f64,
    /// Under load: the highest supply and return temperature and ΔT, the mean flow, heat removed
    /// and ρ·c_p·flow·ΔT.
    pub supply_temp_max_c: Option<f64>,
    pub return_temp_max_c: Option<f64>,
    pub delta_t_max_k: Option<f64>,
    pub flow_mean_lpm: Option<f64>,
    pub heat_removed_mean_kw: Option<f64>,
    pub computed_heat_mean_kw: Option<f64>,
    /// Sources missing, stale or unreadable under load.
    pub problems: Vec<String>,
    pub energy: EnergyBalance,
    pub heat: HeatBalance,
}

/// The facility block of the run summary: the tolerances the balances were judged with, and
/// per rack its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FacilitySummary {
    pub readings: usize,
    pub tolerances: Tolerances,
    pub coolant: Coolant,
    pub racks: Vec<RackFacility>,
}

/// A rack of the summary as the facility figures need it.
pub struct RackInput {
    pub hall: String,
    pub row: String,
    pub rack: String,
    pub nodes: Vec<String>,
    /// GPU-side rack power over its complete bins, kW.
    pub gpu_kw: BTreeMap<i64, f64>,
}

/// The facility figures of every rack (see the module docs).
pub fn facility_summary(
    f: &Frame,
    readings: &[FacilityReading],
    racks: Vec<RackInput>,
) -> FacilitySummary {
    let tol = Tolerances::default();
    let coolant = Coolant::PG25;
    let target = ((crate::SUSTAINED_WINDOW_S * f.sample_hz).round() as usize).max(1);
    let keys: Vec<(&str, &[String])> = racks
        .iter()
        .map(|r| (r.rack.as_str(), r.nodes.as_slice()))
        .collect();
    let per_rack = by_rack(readings, &keys);
    let mut out = Vec::new();
    for (r, own) in racks.into_iter().zip(per_rack) {
        let sources = RackSources::new(&own, &r.rack, &r.nodes);
        let d = RackData::new(f, sources, r.gpu_kw, coolant);
        let pdu: Vec<(i64, f64)> = d.pdu_kw.iter().map(|(b, v)| (*b, *v)).collect();
        let (pdu_sustained_kw, pw) = sustained(&pdu, target);
        let heat: Vec<(i64, f64)> = d.heat_kw.iter().map(|(b, v)| (*b, *v)).collect();
        let (cdu_heat_removed_kw, hw) = sustained(&heat, target);
        let load = &f.load;
        let in_load = |s: &BTreeMap<i64, f64>| -> Vec<i64> {
            s.keys().copied().filter(|b| f.holds(load, *b)).collect()
        };
        let mut problems = Vec::new();
        if !d.sources.any() {
            problems.push(format!(
                "rack {} has no facility source: no PDU, CDU or chassis readings",
                r.rack
            ));
        }
        problems.extend(d.problems_pdu(load));
        problems.extend(d.problems_cdu(load, &CduPart::ALL));
        if d.sources.nodes_without_chassis.len() < r.nodes.len() {
            problems.extend(d.problems_chassis(load));
        }
        out.push(RackFacility {
            hall: r.hall,
            row: r.row,
            rack: r.rack,
            pdus: d.sources.pdus.iter().map(|s| s.source.clone()).collect(),
            cdus: d.sources.cdus.iter().map(|s| s.source.clone()).collect(),
            chassis_nodes: r.nodes.len() - d.sources.nodes_without_chassis.len(),
            pdu_peak_kw: pdu
                .iter()
                .map(|x| x.1)
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x)))),
            pdu_sustained_kw,
            pdu_sustained_window_s: pw as f64 / f.sample_hz,
            cdu_heat_removed_kw,
            cdu_heat_window_s: hw as f64 / f.sample_hz,
            supply_temp_max_c: max_in(f, &d.supply_c, load),
            return_temp_max_c: max_in(f, &d.return_c, load),
            delta_t_max_k: max_in(f, &d.delta_t_k, load),
            flow_mean_lpm: mean_over(&d.flow_lpm, &in_load(&d.flow_lpm)),
            heat_removed_mean_kw: mean_over(&d.heat_kw, &in_load(&d.heat_kw)),
            computed_heat_mean_kw: mean_over(&d.computed_kw, &in_load(&d.computed_kw)),
            problems,
            energy: balance::energy(f, &d, load, tol.energy),
            heat: balance::heat(f, &d, load, &tol),
        });
    }
    FacilitySummary {
        readings: readings.len(),
        tolerances: tol,
        coolant,
        racks: out,
    }
}

#[cfg(test)]
mod tests;
