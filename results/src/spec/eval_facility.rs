//! The facility criteria, judged per rack from the run's facility readings
//! ([`crate::facility`]): PDU peak and sustained power, coolant supply temperature and ΔT under
//! load, heat removed, and the energy and heat balances.
//!
//! * The selection: the criterion's phases; without `phase`, the whole run for the PDU power
//!   kinds (as `peak_power` and `sustained_power`), and the phases with load (workload not
//!   `idle`) for the coolant, heat and balance kinds.
//! * A rack with no facility source at all, a source the criterion needs that is missing, stale
//!   or unreadable in the selection (`crate::facility::series`), is INCOMPLETE with what was
//!   missing — never PASS, never 0. A maximum that the evidence there is already exceeds stays
//!   FAIL.

use hallmark_protocol::facility::FacilityReading;

use super::data::RunData;
use super::eval::{at_least, at_most, limit_of, list, note_warn, subjects, verdict, Sel, Subject};
use super::eval_power::best_window;
use super::{Criterion, CriterionKind};
use crate::aggregate::{node_bins, GroupBins};
use crate::facility::{balance, CduPart, Coolant, Frame, RackData, RackSources, Tolerances};
use crate::verdict::{Evidence, Status, Verdict};
use std::collections::BTreeMap;

/// Judges a facility criterion for every rack.
pub(super) fn judge(
    d: &RunData,
    readings: &[FacilityReading],
    c: &Criterion,
    sel: &Sel,
    out: &mut Vec<Verdict>,
) {
    let load = crate::load::load_windows(
        d.phases
            .iter()
            .map(|p| (p.workload.as_str(), p.start_ns, p.end_ns)),
    );
    let f = Frame::new(d.started_at_ns, d.sample_hz, load.clone());
    let whole_run = matches!(
        c.kind,
        CriterionKind::PduPeakPower { .. } | CriterionKind::PduSustainedPower { .. }
    );
    let windows: Vec<(i64, i64)> = match &sel.phases {
        Some(ps) => ps
            .iter()
            .map(|&i| (d.phases[i].start_ns, d.phases[i].end_ns))
            .collect(),
        None if whole_run => {
            let (a, b) = sel.span(d);
            let last = readings.iter().map(|r| r.t_ns.saturating_add(1)).max();
            match (a, b.or(last)) {
                (Some(a), Some(b)) if b > a => vec![(a, b)],
                _ => Vec::new(),
            }
        }
        None => load,
    };
    let where_ = match (&sel.phases, whole_run) {
        (None, false) => "under load (the phases whose workload is not idle)".to_string(),
        _ => sel.describe(d),
    };
    let bins = f.bins;
    let per_node: Vec<Vec<(i64, f64)>> = d
        .power
        .iter()
        .map(|r| node_bins(bins, r.iter().copied()))
        .collect();
    let (cmp, unit, limit) = limit_of(c);
    let subjects = subjects(d, c.scope, false);
    let nodes: Vec<(String, Vec<String>)> = subjects
        .iter()
        .map(|s| {
            let ids = s.nodes.iter().map(|&n| d.nodes[n].id.clone()).collect();
            (rack_label(d, s), ids)
        })
        .collect();
    let keys: Vec<(&str, &[String])> = nodes
        .iter()
        .map(|(r, n)| (r.as_str(), n.as_slice()))
        .collect();
    let per_rack = crate::facility::by_rack(readings, &keys);
    for ((s, own), (label, ids)) in subjects.into_iter().zip(per_rack).zip(&nodes) {
        let mut ev = Evidence {
            subjects: vec![s.name.clone()],
            ..Evidence::default()
        };
        let incomplete = |mut ev: Evidence, detail: String| {
            ev.detail = detail;
            verdict(c, &s.name, Status::Incomplete, None, limit, cmp, unit, ev)
        };
        if windows.is_empty() {
            out.push(incomplete(
                ev,
                format!("the run has no phase with load: nothing to judge {where_}"),
            ));
            continue;
        }
        let Some(data) = rack_data(&own, label, ids, &f, &s, &per_node, coolant_of(c)) else {
            let rack = label;
            out.push(incomplete(
                ev,
                format!("rack {rack} has no facility source: no PDU, CDU or chassis readings are stored with the run"),
            ));
            continue;
        };
        ev.subjects = data
            .sources
            .pdus
            .iter()
            .map(|x| x.source.clone())
            .chain(data.sources.cdus.iter().map(|x| x.source.clone()))
            .collect();
        let cx = Cx {
            c,
            f: &f,
            s: &s,
            d: &data,
            windows: &windows,
            where_: &where_,
        };
        out.push(cx.judge(ev));
    }
}

fn rack_label(d: &RunData, s: &Subject) -> String {
    s.nodes
        .first()
        .map_or_else(|| s.name.clone(), |&n| d.nodes[n].rack.clone())
}

fn coolant_of(c: &Criterion) -> Coolant {
    match c.kind {
        CriterionKind::HeatBalance { coolant, .. } => coolant,
        _ => Coolant::PG25,
    }
}

/// The rack's facility data, `None` when it has no facility source at all.
fn rack_data(
    readings: &[FacilityReading],
    rack: &str,
    nodes: &[String],
    f: &Frame,
    s: &Subject,
    per_node: &[Vec<(i64, f64)>],
    coolant: Coolant,
) -> Option<RackData> {
    let sources = RackSources::new(readings, rack, nodes);
    if !sources.any() {
        return None;
    }
    let mut g = GroupBins::default();
    for &n in &s.nodes {
        g.add_node(&per_node[n]);
    }
    Some(RackData::new(f, sources, g.complete_kw(), coolant))
}

/// One rack being judged.
struct Cx<'a> {
    c: &'a Criterion,
    f: &'a Frame,
    s: &'a Subject,
    d: &'a RackData,
    windows: &'a [(i64, i64)],
    where_: &'a str,
}

impl Cx<'_> {
    fn judge(&self, ev: Evidence) -> Verdict {
        let d = self.d;
        let w = self.windows;
        match &self.c.kind {
            CriterionKind::PduPeakPower { warn_max_kw, .. } => self.extreme(
                ev,
                &d.pdu_kw,
                d.problems_pdu(w),
                *warn_max_kw,
                "rack PDU power (the sum of its PDUs)",
                d.sources.pdus.is_empty().then_some("PDU"),
            ),
            CriterionKind::CoolantSupplyTemperature { warn_max_c, .. } => self.extreme(
                ev,
                &d.supply_c,
                d.problems_cdu(w, &[CduPart::Supply]),
                *warn_max_c,
                "coolant supply temperature of the rack's CDU loop",
                d.sources.cdus.is_empty().then_some("CDU"),
            ),
            CriterionKind::CoolantDeltaT { warn_max_k, .. } => self.extreme(
                ev,
                &d.delta_t_k,
                d.problems_cdu(w, &[CduPart::Supply, CduPart::Return]),
                *warn_max_k,
                "coolant ΔT (return − supply) of the rack's CDU loop",
                d.sources.cdus.is_empty().then_some("CDU"),
            ),
            CriterionKind::PduSustainedPower {
                window_s,
                warn_min_kw,
                ..
            } => self.sustained(
                ev,
                &d.pdu_kw,
                d.problems_pdu(w),
                *window_s,
                *warn_min_kw,
                "rack PDU power",
                d.sources.pdus.is_empty().then_some("PDU"),
            ),
            CriterionKind::HeatRemoved {
                window_s,
                warn_min_kw,
                ..
            } => self.sustained(
                ev,
                &d.heat_kw,
                d.problems_cdu(w, &[CduPart::Heat]),
                *window_s,
                *warn_min_kw,
                "heat the rack's CDU reports removed",
                d.sources.cdus.is_empty().then_some("CDU"),
            ),
            CriterionKind::EnergyBalance { tolerance } => {
                let b = balance::energy(self.f, d, w, *tolerance);
                self.balance(ev, b.status, b.worst_ratio, b.detail)
            }
            CriterionKind::HeatBalance {
                tolerance,
                capture_min,
                capture_max,
                ..
            } => {
                let tol = Tolerances {
                    energy: 0.0,
                    heat: *tolerance,
                    capture_min: *capture_min,
                    capture_max: *capture_max,
                };
                let b = balance::heat(self.f, d, w, &tol);
                self.balance(ev, b.status, b.difference, b.detail)
            }
            _ => unreachable_kind(self.c, self.s, ev),
        }
    }

    fn bin_span(&self, first: i64, last: i64) -> (i64, i64) {
        let half = self.f.width_ns / 2;
        (
            self.f.centre(first).saturating_sub(half),
            self.f.centre(last).saturating_add(self.f.width_ns - half),
        )
    }

    fn rel_s(&self, t: i64) -> f64 {
        t.saturating_sub(self.f.origin_ns) as f64 / 1e9
    }

    /// A maximum over the bins of the selection (peak PDU power, supply temperature, ΔT).
    fn extreme(
        &self,
        mut ev: Evidence,
        series: &BTreeMap<i64, f64>,
        problems: Vec<String>,
        warn: Option<f64>,
        what: &str,
        no_source: Option<&str>,
    ) -> Verdict {
        let (cmp, unit, limit) = limit_of(self.c);
        let name = &self.s.name;
        let top = series
            .iter()
            .filter(|(b, _)| self.f.holds(self.windows, **b))
            .fold(None, |m: Option<(i64, f64)>, (&b, &v)| match m {
                Some(m) if m.1 >= v => Some(m),
                _ => Some((b, v)),
            });
        let mut problems = problems;
        if let Some(kind) = no_source {
            problems.push(format!("the rack has no {kind} source"));
        }
        let Some((bin, v)) = top else {
            ev.detail = format!("no {what} {}; {}", self.where_, problems.join("; "));
            return verdict(self.c, name, Status::Incomplete, None, limit, cmp, unit, ev);
        };
        let (from, to) = self.bin_span(bin, bin);
        (ev.from_ns, ev.to_ns) = (Some(from), Some(to));
        ev.detail = format!(
            "highest {what} {}, at +{:.1} s after the run's start",
            self.where_,
            self.rel_s(from)
        );
        let status = at_most(v, limit.unwrap_or(f64::INFINITY), warn);
        note_warn(&mut ev, status, warn, unit);
        if !problems.is_empty() && status != Status::Fail {
            ev.detail = format!("{}; {}", ev.detail, list(&problems, 5));
            return verdict(self.c, name, Status::Incomplete, None, limit, cmp, unit, ev);
        }
        if !problems.is_empty() {
            ev.detail = format!("{}; also: {}", ev.detail, list(&problems, 5));
        }
        verdict(self.c, name, status, Some(v), limit, cmp, unit, ev)
    }

    /// The highest mean over `window_s` of consecutive bins of the selection.
    #[allow(clippy::too_many_arguments)]
    fn sustained(
        &self,
        mut ev: Evidence,
        series: &BTreeMap<i64, f64>,
        problems: Vec<String>,
        window_s: f64,
        warn: Option<f64>,
        what: &str,
        no_source: Option<&str>,
    ) -> Verdict {
        let (cmp, unit, limit) = limit_of(self.c);
        let name = &self.s.name;
        let mut problems = problems;
        if let Some(kind) = no_source {
            problems.push(format!("the rack has no {kind} source"));
        }
        let w = ((window_s * self.f.sample_hz).round() as usize).max(1);
        let bins: Vec<(i64, f64)> = series
            .iter()
            .filter(|(b, _)| self.f.holds(self.windows, **b))
            .map(|(b, v)| (*b, *v))
            .collect();
        match best_window(&bins, w) {
            Err(longest) => {
                ev.detail = format!(
                    "no {window_s} s window of consecutive bins with the {what} {}: the longest stretch is {} s",
                    self.where_,
                    longest as f64 / self.f.sample_hz
                );
                if !problems.is_empty() {
                    ev.detail = format!("{}; {}", ev.detail, list(&problems, 5));
                }
                verdict(self.c, name, Status::Incomplete, None, limit, cmp, unit, ev)
            }
            Ok((mean, first)) => {
                let (from, to) = self.bin_span(first, first + w as i64 - 1);
                (ev.from_ns, ev.to_ns) = (Some(from), Some(to));
                ev.detail = format!(
                    "highest {window_s} s rolling mean of the {what} {}: +{:.1} s to +{:.1} s after the run's start",
                    self.where_,
                    self.rel_s(from),
                    self.rel_s(to)
                );
                let status = at_least(mean, limit.unwrap_or(0.0), warn);
                note_warn(&mut ev, status, warn, unit);
                if !problems.is_empty() {
                    // A stretch that is missing could have held a higher mean: nothing is settled.
                    ev.detail = format!("{}; {}", ev.detail, list(&problems, 5));
                    return verdict(self.c, name, Status::Incomplete, None, limit, cmp, unit, ev);
                }
                verdict(self.c, name, status, Some(mean), limit, cmp, unit, ev)
            }
        }
    }

    /// A balance's verdict: its status, its measured fraction in %.
    fn balance(&self, mut ev: Evidence, status: Status, x: Option<f64>, detail: String) -> Verdict {
        let (cmp, unit, limit) = limit_of(self.c);
        let windows = self.windows;
        ev.from_ns = windows.iter().map(|w| w.0).min();
        ev.to_ns = windows.iter().map(|w| w.1).max();
        ev.detail = format!("{} {}", detail, self.where_);
        let measured = (status != Status::Incomplete).then_some(x).flatten();
        verdict(
            self.c,
            &self.s.name,
            status,
            measured.map(|x| x * 100.0),
            limit,
            cmp,
            unit,
            ev,
        )
    }
}

/// Only facility kinds reach this module; any other is INCOMPLETE rather than a panic.
fn unreachable_kind(c: &Criterion, s: &Subject, mut ev: Evidence) -> Verdict {
    let (cmp, unit, limit) = limit_of(c);
    ev.detail = format!(
        "criterion kind `{}` is not a facility criterion",
        c.kind.name()
    );
    verdict(c, &s.name, Status::Incomplete, None, limit, cmp, unit, ev)
}
