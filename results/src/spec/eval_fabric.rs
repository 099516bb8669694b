//! Interconnect criteria, judged on the run's fabric phases ([`crate::fabric`]).
//!
//! * **latency_p99** (hall or node): over every directed pair of every latency phase in the
//!   selection, the highest p99 round trip, µs; per node, over the pairs it initiated or answered.
//!   A pair that sent packets and got no round trip back FAILs the criterion, named. An expected
//!   pair (members × (members − 1)) that was not measured leaves the value unknown: INCOMPLETE
//!   unless it already FAILs. No latency phase: INCOMPLETE.
//! * **collective_busbw** (hall): the all-reduce's bus bandwidth at the criterion's size, GB/s, from
//!   the slowest rank's mean time (nccl-tests' busbw); the lowest if several phases measured it.
//!   Wrong elements in any collective of the selection FAIL the criterion. The size not measured:
//!   INCOMPLETE, naming the sizes that were. A rank that did not report: INCOMPLETE unless it
//!   already FAILs (the missing rank could only be slower).

use super::data::RunData;
use super::eval::{at_least, at_most, limit_of, list, note_warn, subjects, verdict, Sel};
use super::{Criterion, CriterionKind};
use crate::fabric::{
    size_label, CollectiveSummary, FabricPhaseSummary, PairLatency, PairRef, Percentiles,
};
use crate::verdict::{Evidence, Scope, Status, Verdict};
use std::collections::BTreeSet;

/// Judges a `latency_p99` or `collective_busbw` criterion.
pub(super) fn judge(
    d: &RunData,
    fabric: &[FabricPhaseSummary],
    c: &Criterion,
    sel: &Sel,
    out: &mut Vec<Verdict>,
) {
    let selected: Vec<&FabricPhaseSummary> = fabric
        .iter()
        .filter(|f| match &sel.phases {
            None => true,
            Some(ps) => ps.iter().any(|&i| d.phases[i].id == f.phase_id),
        })
        .collect();
    match &c.kind {
        CriterionKind::LatencyP99 { warn_max_s, .. } => {
            let phases: Vec<&FabricPhaseSummary> =
                selected.into_iter().filter(|f| f.is_latency()).collect();
            latency(d, &phases, c, sel, warn_max_s.map(|w| w * 1e6), out)
        }
        CriterionKind::CollectiveBusbw {
            size_bytes,
            warn_min_gb_s,
            ..
        } => {
            let phases: Vec<&FabricPhaseSummary> =
                selected.into_iter().filter(|f| f.is_collective()).collect();
            out.push(busbw(d, &phases, c, sel, *size_bytes, *warn_min_gb_s))
        }
        _ => {}
    }
}

/// "the run's workloads are burn, idle" / "the run has no phases".
fn ran(d: &RunData) -> String {
    let mut workloads: Vec<&str> = d.phases.iter().map(|p| p.workload.as_str()).collect();
    workloads.sort_unstable();
    workloads.dedup();
    if workloads.is_empty() {
        "the run has no phases".to_string()
    } else {
        format!("the run's workloads are {}", workloads.join(", "))
    }
}

fn window(f: &FabricPhaseSummary) -> (Option<i64>, Option<i64>) {
    let ms = i64::try_from(f.duration_ms).unwrap_or(i64::MAX / 2);
    (
        Some(f.scheduled_start_ns),
        Some(
            f.scheduled_start_ns
                .saturating_add(ms.saturating_mul(1_000_000)),
        ),
    )
}

fn latency(
    d: &RunData,
    phases: &[&FabricPhaseSummary],
    c: &Criterion,
    sel: &Sel,
    warn_us: Option<f64>,
    out: &mut Vec<Verdict>,
) {
    let (cmp, unit, limit) = limit_of(c);
    let where_ = sel.describe(d);
    for s in subjects(d, c.scope, false) {
        let mut ev = Evidence {
            subjects: if c.scope == Scope::Node {
                vec![s.name.clone()]
            } else {
                Vec::new()
            },
            ..Evidence::default()
        };
        if phases.is_empty() {
            ev.detail = format!(
                "no latency phase ran {where_} ({}); the criterion needs a latency-mesh phase (p99 \
                 per node pair)",
                ran(d)
            );
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
            continue;
        }
        let mine: BTreeSet<&str> = s.nodes.iter().map(|&n| d.nodes[n].id.as_str()).collect();
        let involves = |src: &str, dst: &str| {
            c.scope != Scope::Node || mine.contains(src) || mine.contains(dst)
        };
        let mut pairs: Vec<(&FabricPhaseSummary, &PairLatency, Percentiles)> = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        let mut all_lost: Vec<String> = Vec::new();
        let (mut sent, mut lost) = (0u64, 0u64);
        for &f in phases {
            let Some(l) = &f.latency else { continue };
            let many = phases.len() > 1;
            let name = |p: &PairRef| {
                if many {
                    format!("{p} ({})", f.name)
                } else {
                    p.to_string()
                }
            };
            for p in l.pairs.iter().filter(|p| involves(&p.src, &p.dst)) {
                sent = sent.saturating_add(p.sent);
                lost = lost.saturating_add(p.lost);
                if let Some(r) = p.rtt {
                    pairs.push((f, p, r));
                }
            }
            missing.extend(
                l.missing
                    .iter()
                    .filter(|p| involves(&p.src, &p.dst))
                    .map(name),
            );
            all_lost.extend(
                l.all_lost
                    .iter()
                    .filter(|p| involves(&p.src, &p.dst))
                    .map(name),
            );
        }
        let worst = pairs.iter().max_by(|a, b| {
            a.2.p99_us
                .total_cmp(&b.2.p99_us)
                .then(a.2.max_us.total_cmp(&b.2.max_us))
                .then_with(|| b.1.pair().cmp(&a.1.pair()))
        });
        let mut value = None;
        let mut status = Status::Incomplete;
        match worst {
            Some((f, p, r)) => {
                (ev.from_ns, ev.to_ns) = window(f);
                if c.scope != Scope::Node {
                    ev.subjects = vec![p.src.clone(), p.dst.clone()];
                }
                ev.detail = format!(
                    "highest p99 round trip of {} measured node pair(s) {where_}: {}→{} in phase {} \
                     ({} round trips: p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.2} µs)",
                    pairs.len(),
                    p.src,
                    p.dst,
                    f.name,
                    r.count,
                    r.p50_us,
                    r.p99_us,
                    r.p999_us,
                    r.max_us
                );
                if lost > 0 {
                    ev.detail
                        .push_str(&format!("; {lost} of {sent} test packets lost"));
                }
                value = Some(r.p99_us);
                status = at_most(r.p99_us, limit.unwrap_or(0.0), warn_us);
                note_warn(&mut ev, status, warn_us, unit);
            }
            None => {
                ev.detail = format!("no round trip came back on any pair {where_}");
                if c.scope == Scope::Node {
                    ev.detail = format!(
                        "no round trip came back on any pair of node {} {where_}",
                        s.name
                    );
                }
            }
        }
        if !all_lost.is_empty() {
            status = Status::Fail;
            ev.detail = format!(
                "{}; every packet lost on {} pair(s): {}",
                ev.detail,
                all_lost.len(),
                list(&all_lost, 5)
            );
        }
        if !missing.is_empty() && status != Status::Fail {
            ev.detail = format!(
                "{}; {} expected pair(s) not measured: {}",
                ev.detail,
                missing.len(),
                list(&missing, 5)
            );
            status = Status::Incomplete;
            value = None;
        }
        out.push(verdict(c, &s.name, status, value, limit, cmp, unit, ev));
    }
}

fn busbw(
    d: &RunData,
    phases: &[&FabricPhaseSummary],
    c: &Criterion,
    sel: &Sel,
    size: u64,
    warn: Option<f64>,
) -> Verdict {
    let (cmp, unit, limit) = limit_of(c);
    let where_ = sel.describe(d);
    let mut ev = Evidence::default();
    let incomplete =
        |ev: Evidence| verdict(c, &d.hall, Status::Incomplete, None, limit, cmp, unit, ev);
    if phases.is_empty() {
        ev.detail = format!(
            "no collective phase ran {where_} ({}); the criterion needs an all-reduce phase at {}",
            ran(d),
            size_label(size)
        );
        return incomplete(ev);
    }
    // Wrong elements anywhere in the selection.
    let mut wrong: Vec<String> = Vec::new();
    let mut wrong_total = 0u64;
    let mut wrong_nodes: BTreeSet<String> = BTreeSet::new();
    for f in phases {
        for x in f.collectives.iter().filter(|x| x.wrong_elements > 0) {
            wrong_total = wrong_total.saturating_add(x.wrong_elements);
            wrong_nodes.extend(x.wrong_nodes.iter().cloned());
            wrong.push(format!(
                "{} {} in phase {}: {}",
                x.op,
                size_label(x.size_bytes),
                f.name,
                x.wrong_elements
            ));
        }
    }
    let rows: Vec<(&FabricPhaseSummary, &CollectiveSummary)> = phases
        .iter()
        .flat_map(|f| {
            f.collectives
                .iter()
                .filter(|x| x.op == "all-reduce" && x.size_bytes == size)
                .map(move |x| (*f, x))
        })
        .collect();
    let worst = rows
        .iter()
        .min_by(|a, b| a.1.busbw_gb_s.total_cmp(&b.1.busbw_gb_s));
    let mut status = Status::Incomplete;
    let mut value = None;
    match worst {
        Some((f, x)) => {
            (ev.from_ns, ev.to_ns) = window(f);
            ev.subjects = vec![x.slowest.clone()];
            ev.detail = format!(
                "all-reduce of {} on {} ranks in phase {} ({}, {} iterations): the slowest rank \
                 ({}) took {:.2} µs; algbw {:.3} GB/s, busbw = algbw × 2(n−1)/n = {:.3} GB/s",
                size_label(size),
                x.ranks,
                f.name,
                x.algorithm,
                x.iterations,
                x.slowest,
                x.time_us,
                x.algbw_gb_s,
                x.busbw_gb_s
            );
            if rows.len() > 1 {
                ev.detail.push_str(&format!(
                    " (the lowest of {} phases that measured it)",
                    rows.len()
                ));
            }
            value = Some(x.busbw_gb_s);
            status = at_least(x.busbw_gb_s, limit.unwrap_or(0.0), warn);
            note_warn(&mut ev, status, warn, unit);
            if !x.missing.is_empty() && status != Status::Fail {
                ev.detail = format!(
                    "{}; {} of {} ranks did not report it: {}",
                    ev.detail,
                    x.missing.len(),
                    x.ranks,
                    list(&x.missing, 5)
                );
                status = Status::Incomplete;
                value = None;
            }
        }
        None => {
            let mut sizes: Vec<u64> = phases
                .iter()
                .flat_map(|f| f.collectives.iter())
                .filter(|x| x.op == "all-reduce")
                .map(|x| x.size_bytes)
                .collect();
            sizes.sort_unstable();
            sizes.dedup();
            ev.detail = if sizes.is_empty() {
                format!(
                    "no all-reduce was measured {where_}; the criterion needs one at {}",
                    size_label(size)
                )
            } else {
                let labels: Vec<String> = sizes.iter().map(|s| size_label(*s)).collect();
                format!(
                    "the all-reduce was not measured at {} {where_}; it was measured at {}",
                    size_label(size),
                    list(&labels, 12)
                )
            };
        }
    }
    if wrong_total > 0 {
        status = Status::Fail;
        ev.subjects = wrong_nodes.into_iter().collect();
        ev.detail = format!(
            "{}; {wrong_total} wrong elements in collective results ({}) found by {}",
            ev.detail,
            list(&wrong, 5),
            list(&ev.subjects, 5)
        );
    }
    verdict(c, &d.hall, status, value, limit, cmp, unit, ev)
}
