//! A rack's facility figures from its readings: the PDU power series (the sum of the rack's PDUs'
//! whole-unit `power_w`, or of its inlets' where a PDU reports only those, held over the run's
//! bins; a bin where one PDU has no value has no rack figure), the BMC chassis sum (the rack's nodes' chassis `power_w`, only where every node of the
//! rack has a chassis source), and per CDU the coolant loop: the `secondary` connector (the rack's
//! loop) where the CDU reports one, else the whole unit (point ""), else `primary`.

use std::collections::BTreeMap;

use super::series::{sum_all, Series};
use crate::aggregate::Bins;
use hallmark_protocol::facility::{FacilityQuantity as Q, FacilityReading, SourceKind, Subject};

/// The held series of one CDU's loop.
#[derive(Debug, Clone, Default)]
pub struct CduLoop {
    pub source: String,
    /// `secondary`, `` (whole unit) or `primary`.
    pub point: String,
    pub supply: Series,
    pub ret: Series,
    pub delta_t: Series,
    pub flow: Series,
    pub heat: Series,
    /// The coolant the CDU states for this loop (its latest density and specific heat), used
    /// instead of the assumed one for ρ · c_p · flow · ΔT.
    pub stated: Option<Coolant>,
}

/// The readings of one rack, as series.
#[derive(Debug, Clone, Default)]
pub struct RackSources {
    pub rack: String,
    /// One per PDU source (whole-unit power, W).
    pub pdus: Vec<Series>,
    /// One per node with a chassis source (power, W), and the rack's nodes without one.
    pub chassis: Vec<Series>,
    pub nodes_without_chassis: Vec<String>,
    pub cdus: Vec<CduLoop>,
}

fn of<'a>(
    readings: &'a [FacilityReading],
    kind: SourceKind,
    subject: &'a Subject,
) -> impl Iterator<Item = &'a FacilityReading> + 'a {
    readings
        .iter()
        .filter(move |r| r.kind == kind && &r.subject == subject)
}

fn sources<'a>(rs: impl Iterator<Item = &'a FacilityReading>) -> Vec<String> {
    let mut names: Vec<String> = rs.map(|r| r.source.clone()).collect();
    names.sort();
    names.dedup();
    names
}

fn series(readings: &[FacilityReading], source: &str, point: &str, q: Q) -> Series {
    Series::new(
        source,
        readings
            .iter()
            .filter(|r| r.source == source && r.point == point && r.quantity == q),
    )
}

impl RackSources {
    /// The rack's sources among `readings`; `nodes` are the rack's node ids.
    pub fn new(readings: &[FacilityReading], rack: &str, nodes: &[String]) -> RackSources {
        let subject = Subject::Rack(rack.to_string());
        let mut out = RackSources {
            rack: rack.to_string(),
            ..RackSources::default()
        };
        for s in sources(of(readings, SourceKind::Pdu, &subject)) {
            out.pdus.extend(pdu_power(readings, &s));
        }
        for n in nodes {
            let subject = Subject::Node(n.clone());
            let names = sources(of(readings, SourceKind::Chassis, &subject));
            if names.is_empty() {
                out.nodes_without_chassis.push(n.clone());
            }
            for s in names {
                out.chassis.push(series(readings, &s, "", Q::PowerW));
            }
        }
        for s in sources(of(readings, SourceKind::Cdu, &subject)) {
            let points: Vec<&str> = readings
                .iter()
                .filter(|r| r.source == s && r.kind == SourceKind::Cdu)
                .map(|r| r.point.as_str())
                .collect();
            let point = ["secondary", "", "primary"]
                .into_iter()
                .find(|p| points.contains(p))
                .unwrap_or("secondary");
            out.cdus.push(CduLoop {
                source: s.clone(),
                point: point.to_string(),
                supply: series(readings, &s, point, Q::SupplyTempC),
                ret: series(readings, &s, point, Q::ReturnTempC),
                delta_t: series(readings, &s, point, Q::DeltaTK),
                flow: series(readings, &s, point, Q::FlowLpm),
                heat: series(readings, &s, point, Q::HeatRemovedKw),
                stated: stated_coolant(readings, &s, point),
            });
        }
        out
    }

    /// Has the rack any facility source at all?
    pub fn any(&self) -> bool {
        !(self.pdus.is_empty() && self.chassis.is_empty() && self.cdus.is_empty())
    }

    /// Rack PDU power per bin, kW.
    pub fn pdu_kw(&self, bins: Bins, width_ns: i64) -> BTreeMap<i64, f64> {
        kw(&self.pdus, bins, width_ns)
    }

    /// The rack's chassis power per bin, kW; empty unless every node has a chassis source.
    pub fn chassis_kw(&self, bins: Bins, width_ns: i64) -> BTreeMap<i64, f64> {
        if !self.nodes_without_chassis.is_empty() {
            return BTreeMap::new();
        }
        kw(&self.chassis, bins, width_ns)
    }
}

/// The input power of PDU `source`: its whole-unit `power_w`, or where it reports none (an SNMP
/// profile reads its inlets, `inlet/1`, …) one series per inlet, which the rack sums like PDUs.
fn pdu_power(readings: &[FacilityReading], source: &str) -> Vec<Series> {
    let whole = series(readings, source, "", Q::PowerW);
    if !(whole.t.is_empty() && whole.absent.is_empty()) {
        return vec![whole];
    }
    let mut inlets: Vec<&str> = readings
        .iter()
        .filter(|r| r.source == source && r.quantity == Q::PowerW)
        .map(|r| r.point.as_str())
        .filter(|p| p.starts_with("inlet/"))
        .collect();
    inlets.sort_unstable();
    inlets.dedup();
    if inlets.is_empty() {
        return vec![whole];
    }
    inlets
        .into_iter()
        .map(|p| series(readings, source, p, Q::PowerW))
        .collect()
}

/// The latest density and specific heat source `source` states at `point`, when it states both.
fn stated_coolant(readings: &[FacilityReading], source: &str, point: &str) -> Option<Coolant> {
    let latest = |q: Q| {
        readings
            .iter()
            .filter(|r| r.source == source && r.point == point && r.quantity == q)
            .filter_map(|r| r.value.map(|v| (r.t_ns, v)))
            .max_by_key(|(t, _)| *t)
            .map(|(_, v)| v)
    };
    Some(Coolant {
        density_kg_per_m3: latest(Q::CoolantDensityKgM3)?,
        specific_heat_kj_per_kg_k: latest(Q::CoolantSpecificHeatKjKgK)?,
    })
}

fn kw(series: &[Series], bins: Bins, width_ns: i64) -> BTreeMap<i64, f64> {
    let held: Vec<_> = series.iter().map(|s| s.held(bins, width_ns)).collect();
    let mut sum = sum_all(&held);
    for v in sum.values_mut() {
        *v /= 1000.0;
    }
    sum
}

/// Coolant density and specific heat for ρ · c_p · flow · ΔT.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Coolant {
    pub density_kg_per_m3: f64,
    pub specific_heat_kj_per_kg_k: f64,
}

impl Coolant {
    /// 25 % propylene glycol in water near 30 °C, the default of `hallmark-facility`'s `heat.rs`
    /// (for a CDU that does not state its coolant).
    pub const PG25: Coolant = Coolant {
        density_kg_per_m3: 1020.0,
        specific_heat_kj_per_kg_k: 3.93,
    };
    /// Water at 30 °C (`hallmark-facility`'s `heat::WATER`).
    pub const WATER: Coolant = Coolant {
        density_kg_per_m3: 995.7,
        specific_heat_kj_per_kg_k: 4.178,
    };

    /// ρ · c_p · flow · ΔT, kW (flow L/min → m³/s: ÷ 60 000). The same one-line formula as
    /// `hallmark_facility::heat::heat_kw`, repeated here because that crate brings an HTTP client
    /// and TLS that this crate must not depend on.
    pub fn heat_kw(&self, flow_lpm: f64, delta_t_k: f64) -> f64 {
        self.density_kg_per_m3 * (flow_lpm / 60_000.0) * self.specific_heat_kj_per_kg_k * delta_t_k
    }
}

/// One CDU loop's figures per bin.
#[derive(Debug, Clone, Default)]
pub struct LoopBins {
    pub supply_c: BTreeMap<i64, f64>,
    pub return_c: BTreeMap<i64, f64>,
    /// Return − supply where both are read, else the reported ΔT.
    pub delta_t_k: BTreeMap<i64, f64>,
    pub flow_lpm: BTreeMap<i64, f64>,
    pub heat_kw: BTreeMap<i64, f64>,
    /// ρ · c_p · flow · ΔT.
    pub computed_kw: BTreeMap<i64, f64>,
}

impl CduLoop {
    /// The loop's figures per bin; ρ · c_p · flow · ΔT with the coolant the CDU states, else
    /// `coolant`.
    pub fn bins(&self, bins: Bins, width_ns: i64, coolant: Coolant) -> LoopBins {
        let coolant = self.stated.unwrap_or(coolant);
        let supply_c = self.supply.held(bins, width_ns);
        let return_c = self.ret.held(bins, width_ns);
        let mut delta_t_k = self.delta_t.held(bins, width_ns);
        for (b, r) in &return_c {
            if let Some(s) = supply_c.get(b) {
                delta_t_k.insert(*b, r - s);
            }
        }
        let flow_lpm = self.flow.held(bins, width_ns);
        let computed_kw = flow_lpm
            .iter()
            .filter_map(|(b, f)| delta_t_k.get(b).map(|dt| (*b, coolant.heat_kw(*f, *dt))))
            .collect();
        LoopBins {
            supply_c,
            return_c,
            delta_t_k,
            flow_lpm,
            heat_kw: self.heat.held(bins, width_ns),
            computed_kw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_is_the_facility_crates_formula() {
        // DMTF's public-cooling-unit primary loop (docs/FACILITY.md): 28.65 kW.
        let c = Coolant {
            density_kg_per_m3: 1030.0,
            specific_heat_kj_per_kg_k: 3.974,
        };
        assert!((c.heat_kw(42.0, 10.0) - 28.652).abs() < 1e-3);
    }
}
