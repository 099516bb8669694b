//! `sustained_power` and `peak_power`: group (rack, row, hall) power from node power, binned as the
//! run summary bins it ([`Bins`], [`node_bins`] of [`crate::aggregate`]).
//!
//! * A group's power in a bin is the sum of its nodes' mean power in that bin; a bin is *complete*
//!   when every node of the group that reported power in the selection has a reading in it.
//! * **sustained**: the highest mean over `w` consecutive complete bins, `w` = the window in bins
//!   (`round(window_s × sample_hz)`). Unlike the summary's `sustained_kw`, the window never shrinks:
//!   a run without `w` consecutive complete bins is INCOMPLETE. Evidence: the window found.
//! * **peak**: the largest group power of any bin. Evidence: that bin.
//!
//! A node that reported no power in the selection makes the group's power a lower bound: enough to
//! PASS a sustained minimum or to FAIL a peak maximum, otherwise INCOMPLETE.

use std::collections::BTreeMap;

use super::data::RunData;
use super::eval::{at_least, at_most, limit_of, list, note_warn, subjects, verdict, Sel, Subject};
use super::{Criterion, CriterionKind};
use crate::aggregate::{node_bins, Bins};
use crate::verdict::{Evidence, Status, Verdict};

/// Judges a `sustained_power` or `peak_power` criterion for every subject of its scope.
pub(super) fn judge(d: &RunData, c: &Criterion, sel: &Sel, out: &mut Vec<Verdict>) {
    let bins = Bins::new(d.started_at_ns, d.sample_hz);
    let width_ns = (1e9 / d.sample_hz).round().max(1.0) as i64;
    let per_node: Vec<Vec<(i64, f64)>> = d
        .power
        .iter()
        .map(|r| node_bins(bins, r.iter().copied().filter(|&(t, _)| sel.holds(d, t))))
        .collect();
    let g = Geometry {
        origin: d.started_at_ns,
        width_ns,
    };
    for s in subjects(d, c.scope, false) {
        let group = Group::new(&s, &per_node);
        let v = match &c.kind {
            CriterionKind::SustainedPower {
                window_s,
                warn_min_kw,
                ..
            } => sustained(d, c, sel, &s, &group, g, *window_s, *warn_min_kw),
            _ => peak(d, c, sel, &s, &group, g),
        };
        out.push(v);
    }
}

#[derive(Clone, Copy)]
struct Geometry {
    origin: i64,
    width_ns: i64,
}

impl Geometry {
    /// The start of bin `b` (its centre minus half a width).
    fn from(&self, b: i64) -> i64 {
        self.origin
            .saturating_add(b.saturating_mul(self.width_ns))
            .saturating_sub(self.width_ns / 2)
    }
    fn to(&self, b: i64) -> i64 {
        self.from(b).saturating_add(self.width_ns)
    }
    fn rel_s(&self, t: i64) -> f64 {
        t.saturating_sub(self.origin) as f64 / 1e9
    }
}

/// A group's binned power: bin → (W, nodes with data), and its nodes with and without data.
struct Group {
    bins: BTreeMap<i64, (f64, usize)>,
    reporting: usize,
    silent: Vec<usize>,
}

impl Group {
    fn new(s: &Subject, per_node: &[Vec<(i64, f64)>]) -> Group {
        let mut g = Group {
            bins: BTreeMap::new(),
            reporting: 0,
            silent: Vec::new(),
        };
        for &n in &s.nodes {
            let nb = &per_node[n];
            if nb.is_empty() {
                g.silent.push(n);
                continue;
            }
            g.reporting += 1;
            for &(b, w) in nb {
                let e = g.bins.entry(b).or_insert((0.0, 0));
                e.0 += w;
                e.1 += 1;
            }
        }
        g
    }

    fn silent_names(&self, d: &RunData) -> Vec<String> {
        self.silent.iter().map(|&n| d.nodes[n].id.clone()).collect()
    }
}

/// The highest mean over `w` consecutive bins of `series` (sorted by bin) and its first bin; or,
/// when no stretch of consecutive bins is that long, the longest stretch's length.
pub(super) fn best_window(series: &[(i64, f64)], w: usize) -> Result<(f64, i64), usize> {
    let mut best: Option<(f64, i64)> = None;
    let mut longest = 0;
    let mut start = 0;
    for i in 1..=series.len() {
        if i < series.len() && series[i - 1].0.checked_add(1) == Some(series[i].0) {
            continue;
        }
        let run = &series[start..i];
        start = i;
        longest = longest.max(run.len());
        if w == 0 || run.len() < w {
            continue;
        }
        let mut sum: f64 = run[..w].iter().map(|x| x.1).sum();
        let mut consider = |sum: f64, first: i64| {
            let mean = sum / w as f64;
            if best.is_none_or(|b| mean > b.0) {
                best = Some((mean, first));
            }
        };
        consider(sum, run[0].0);
        for j in w..run.len() {
            sum += run[j].1 - run[j - w].1;
            consider(sum, run[j - w + 1].0);
        }
    }
    best.ok_or(longest)
}

#[allow(clippy::too_many_arguments)]
fn sustained(
    d: &RunData,
    c: &Criterion,
    sel: &Sel,
    s: &Subject,
    group: &Group,
    g: Geometry,
    window_s: f64,
    warn_min: Option<f64>,
) -> Verdict {
    let (cmp, unit, limit) = limit_of(c);
    let min = limit.unwrap_or(0.0);
    let scope = c.scope.as_str();
    let w = ((window_s * d.sample_hz).round() as usize).max(1);
    let nodes: Vec<String> = s.nodes.iter().map(|&n| d.nodes[n].id.clone()).collect();
    let silent = group.silent_names(d);
    let mut ev = Evidence {
        subjects: nodes,
        ..Evidence::default()
    };
    let where_ = sel.describe(d);
    if group.reporting == 0 {
        ev.detail = format!("no node of the {scope} reported power {where_}");
        return verdict(c, &s.name, Status::Incomplete, None, limit, cmp, unit, ev);
    }
    let complete: Vec<(i64, f64)> = group
        .bins
        .iter()
        .filter(|(_, &(_, n))| n == group.reporting)
        .map(|(&b, &(watts, _))| (b, watts / 1000.0))
        .collect();
    let bin_ms = g.width_ns as f64 / 1e6;
    match best_window(&complete, w) {
        Err(longest) => {
            ev.detail = format!(
                "no {window_s} s window of complete {bin_ms} ms bins {where_}: the longest stretch in which all {} reporting nodes have power is {} s",
                group.reporting,
                longest as f64 / d.sample_hz
            );
            verdict(c, &s.name, Status::Incomplete, None, limit, cmp, unit, ev)
        }
        Ok((mean, first)) => {
            ev.from_ns = Some(g.from(first));
            ev.to_ns = Some(g.to(first + w as i64 - 1));
            let mut status = at_least(mean, min, warn_min);
            ev.detail = format!(
                "highest {window_s} s rolling mean of {scope} power {where_} ({w} bins of {bin_ms} ms, sum of {} nodes' power): +{:.1} s to +{:.1} s after the run's start",
                group.reporting,
                g.rel_s(g.from(first)),
                g.rel_s(g.to(first + w as i64 - 1))
            );
            note_warn(&mut ev, status, warn_min, unit);
            if status == Status::Fail && !silent.is_empty() {
                status = Status::Incomplete;
                ev.detail = format!(
                    "{}; {mean:.2} kW is a lower bound: {} reported no power {where_}",
                    ev.detail,
                    list(&silent, 5)
                );
                return verdict(c, &s.name, status, None, limit, cmp, unit, ev);
            }
            verdict(c, &s.name, status, Some(mean), limit, cmp, unit, ev)
        }
    }
}

fn peak(d: &RunData, c: &Criterion, sel: &Sel, s: &Subject, group: &Group, g: Geometry) -> Verdict {
    let (cmp, unit, limit) = limit_of(c);
    let max = limit.unwrap_or(f64::INFINITY);
    let warn = match c.kind {
        CriterionKind::PeakPower { warn_max_kw, .. } => warn_max_kw,
        _ => None,
    };
    let scope = c.scope.as_str();
    let where_ = sel.describe(d);
    let mut ev = Evidence {
        subjects: s.nodes.iter().map(|&n| d.nodes[n].id.clone()).collect(),
        ..Evidence::default()
    };
    let top = group
        .bins
        .iter()
        .map(|(&b, &(watts, _))| (b, watts / 1000.0))
        .fold(None, |m: Option<(i64, f64)>, x| match m {
            Some(m) if m.1 >= x.1 => Some(m),
            _ => Some(x),
        });
    let Some((bin, kw)) = top else {
        ev.detail = format!("no node of the {scope} reported power {where_}");
        return verdict(c, &s.name, Status::Incomplete, None, limit, cmp, unit, ev);
    };
    ev.from_ns = Some(g.from(bin));
    ev.to_ns = Some(g.to(bin));
    ev.detail = format!(
        "largest {scope} power of any {} ms bin {where_} (sum of {} nodes' power), at +{:.1} s after the run's start",
        g.width_ns as f64 / 1e6,
        group.reporting,
        g.rel_s(g.from(bin))
    );
    let status = at_most(kw, max, warn);
    note_warn(&mut ev, status, warn, unit);
    let silent = group.silent_names(d);
    if status != Status::Fail && !silent.is_empty() {
        ev.detail = format!(
            "{}; {kw:.2} kW is a lower bound: {} reported no power {where_}",
            ev.detail,
            list(&silent, 5)
        );
        return verdict(c, &s.name, Status::Incomplete, None, limit, cmp, unit, ev);
    }
    verdict(c, &s.name, status, Some(kw), limit, cmp, unit, ev)
}

#[cfg(test)]
mod tests {
    use super::best_window;
    use crate::aggregate::sustained;

    #[test]
    fn best_window_agrees_with_the_summary_and_finds_the_window() {
        let s: Vec<(i64, f64)> = vec![(0, 1.0), (1, 3.0), (2, 5.0), (3, 2.0), (10, 9.0)];
        assert_eq!(best_window(&s, 2), Ok((4.0, 1)));
        assert_eq!(sustained(&s, 2), (Some(4.0), 2));
        assert_eq!(best_window(&s, 1), Ok((9.0, 10)));
        assert_eq!(best_window(&s, 5), Err(4));
        assert_eq!(best_window(&[], 3), Err(0));
        let (mean, _) = best_window(&s, 3).unwrap();
        assert_eq!(Some(mean), sustained(&s, 3).0);
    }
}
