//! Hall criteria: `start_skew` per phase, `inventory`, `coverage`. (The interconnect criteria,
//! `latency_p99` and `collective_busbw`, are judged in `eval_fabric` on the fabric phases.)
//!
//! * **start_skew**: latest − earliest `actual_start_ns` of a phase over the nodes that started it.
//!   A node registered for the phase (at or before its scheduled start) that reported no start
//!   leaves the skew unknown: INCOMPLETE unless it already FAILs.
//! * **inventory**: the run's plan (`runs.plan_toml`) is parsed and its `[expect]` held against the
//!   registered nodes and their devices (`Expect::missing`), with the criterion's own `nodes` and
//!   `devices_per_node` if given.
//! * **coverage**: samples stored ÷ samples expected. Per node and phase, expected = the node's
//!   devices × `round(duration_s × sample_hz)` when the node was registered for the phase; stored =
//!   its samples in the phase window, at most the expected count.

use hallmark_protocol::plan::{parse_plan, Expect, ExpectedNodes};
use hallmark_protocol::NodeId;

use super::data::RunData;
use super::eval::{at_least, at_most, limit_of, list, note_warn, subjects, verdict, Sel};
use super::{Criterion, CriterionKind};
use crate::verdict::{Evidence, Scope, Status, Verdict};

/// Judges a hall criterion.
pub(super) fn judge(d: &RunData, c: &Criterion, sel: &Sel, out: &mut Vec<Verdict>) {
    match &c.kind {
        CriterionKind::StartSkew { warn_max_s, .. } => {
            start_skew(d, c, sel, warn_max_s.map(|w| w * 1e3), out)
        }
        CriterionKind::Inventory {
            nodes,
            devices_per_node,
        } => out.push(inventory(d, c, *nodes, *devices_per_node)),
        _ => coverage(d, c, sel, out),
    }
}

fn phases_of(d: &RunData, sel: &Sel) -> Vec<usize> {
    sel.phases
        .clone()
        .unwrap_or_else(|| (0..d.phases.len()).collect())
}

/// Was node `n` registered for phase `p` (registered at or before its start, or started it)?
fn registered_for(d: &RunData, n: usize, p: usize) -> bool {
    let ph = &d.phases[p];
    d.nodes[n].registered_at_ns <= ph.start_ns || ph.starts.iter().any(|s| s.0 == n)
}

fn start_skew(d: &RunData, c: &Criterion, sel: &Sel, warn_ms: Option<f64>, out: &mut Vec<Verdict>) {
    let (cmp, unit, limit) = limit_of(c);
    let max_ms = limit.unwrap_or(0.0);
    let phases = phases_of(d, sel);
    if phases.is_empty() {
        let ev = Evidence {
            detail: "the run has no phases".into(),
            ..Evidence::default()
        };
        out.push(verdict(
            c,
            &d.hall,
            Status::Incomplete,
            None,
            limit,
            cmp,
            unit,
            ev,
        ));
        return;
    }
    for p in phases {
        let ph = &d.phases[p];
        let name = format!("{}/{}", d.hall, ph.name);
        let mut ev = Evidence::default();
        let first = ph.starts.iter().min_by_key(|s| s.1);
        let last = ph.starts.iter().max_by_key(|s| s.1);
        let (Some(&(fnode, ft)), Some(&(lnode, lt))) = (first, last) else {
            ev.from_ns = Some(ph.start_ns);
            ev.to_ns = Some(ph.end_ns);
            ev.detail = format!("no node reported starting phase {}", ph.name);
            out.push(verdict(
                c,
                &name,
                Status::Incomplete,
                None,
                limit,
                cmp,
                unit,
                ev,
            ));
            continue;
        };
        let skew_ms = lt.saturating_sub(ft) as f64 / 1e6;
        ev.from_ns = Some(ft);
        ev.to_ns = Some(lt);
        ev.subjects = vec![d.nodes[fnode].id.clone(), d.nodes[lnode].id.clone()];
        ev.detail = format!(
            "latest − earliest actual start of phase {} over {} nodes (earliest {}, latest {})",
            ph.name,
            ph.starts.len(),
            d.nodes[fnode].id,
            d.nodes[lnode].id
        );
        let status = at_most(skew_ms, max_ms, warn_ms);
        note_warn(&mut ev, status, warn_ms, unit);
        let missing: Vec<String> = (0..d.nodes.len())
            .filter(|&n| registered_for(d, n, p) && !ph.starts.iter().any(|s| s.0 == n))
            .map(|n| d.nodes[n].id.clone())
            .collect();
        if status != Status::Fail && !missing.is_empty() {
            ev.detail = format!(
                "{}; {} registered node(s) reported no start: {}",
                ev.detail,
                missing.len(),
                list(&missing, 5)
            );
            out.push(verdict(
                c,
                &name,
                Status::Incomplete,
                None,
                limit,
                cmp,
                unit,
                ev,
            ));
            continue;
        }
        out.push(verdict(
            c,
            &name,
            status,
            Some(skew_ms),
            limit,
            cmp,
            unit,
            ev,
        ));
    }
}

fn inventory(
    d: &RunData,
    c: &Criterion,
    nodes: Option<usize>,
    devices_per_node: Option<u32>,
) -> Verdict {
    let (cmp, unit, _) = limit_of(c);
    let mut devices = vec![0usize; d.nodes.len()];
    for dev in d.devices.iter().filter(|dev| dev.kind.is_some()) {
        devices[dev.node] += 1;
    }
    let registered: Vec<(NodeId, String, usize)> = d
        .nodes
        .iter()
        .zip(&devices)
        .filter_map(|(n, &k)| {
            NodeId::new(n.id.as_str())
                .ok()
                .map(|id| (id, n.rack.clone(), k))
        })
        .collect();
    let mut missing = Vec::new();
    let mut expected: Option<usize> = None;
    let mut wants = Vec::new();
    let plan = parse_plan(&d.plan_toml, "the run's plan");
    if let Ok(plan) = &plan {
        missing.extend(plan.expect.missing(&registered));
        expected = Some(plan.expect.node_count());
        wants.push(format!(
            "the plan expects {} nodes{}",
            plan.expect.node_count(),
            plan.expect
                .devices_per_node
                .map(|k| format!(" of {k} devices"))
                .unwrap_or_default()
        ));
    }
    if nodes.is_some() || devices_per_node.is_some() {
        let own = Expect {
            nodes: ExpectedNodes::Count(nodes.unwrap_or(0)),
            devices_per_node,
            timeout_ms: 0,
        };
        for m in own.missing(&registered) {
            if !missing.contains(&m) {
                missing.push(m);
            }
        }
        expected = expected.max(nodes);
        wants.push(format!(
            "the spec expects {} nodes{}",
            nodes.unwrap_or(0),
            devices_per_node
                .map(|k| format!(" of {k} devices"))
                .unwrap_or_default()
        ));
    }
    let total: usize = devices.iter().sum();
    let mut ev = Evidence::default();
    let limit = expected.map(|n| n as f64);
    if let (Err(e), None, None) = (&plan, nodes, devices_per_node) {
        ev.detail = format!(
            "the run's stored plan cannot be read, so its expected inventory is unknown ({e})"
        );
        return verdict(c, &d.hall, Status::Incomplete, None, limit, cmp, unit, ev);
    }
    let status = if missing.is_empty() {
        Status::Pass
    } else {
        Status::Fail
    };
    ev.detail = format!(
        "{} nodes registered with {total} devices; {}",
        d.nodes.len(),
        wants.join("; ")
    );
    if !missing.is_empty() {
        ev.detail = format!("{}; missing: {}", ev.detail, list(&missing, 10));
    }
    verdict(
        c,
        &d.hall,
        status,
        Some(d.nodes.len() as f64),
        limit,
        cmp,
        unit,
        ev,
    )
}

fn coverage(d: &RunData, c: &Criterion, sel: &Sel, out: &mut Vec<Verdict>) {
    let (cmp, unit, limit) = limit_of(c);
    let warn = match c.kind {
        CriterionKind::Coverage {
            warn_min_fraction, ..
        } => warn_min_fraction.map(|w| w * 100.0),
        _ => None,
    };
    let phases = phases_of(d, sel);
    let mut node_devices: Vec<Vec<usize>> = vec![Vec::new(); d.nodes.len()];
    let mut inventory = vec![0u64; d.nodes.len()];
    for (i, dev) in d.devices.iter().enumerate() {
        node_devices[dev.node].push(i);
        inventory[dev.node] += u64::from(dev.kind.is_some());
    }
    // Per node: (stored, expected).
    let per_node: Vec<(u64, u64)> = (0..d.nodes.len())
        .map(|n| {
            let mut acc = (0u64, 0u64);
            for &p in &phases {
                if !registered_for(d, n, p) {
                    continue;
                }
                let ph = &d.phases[p];
                let per_device = (ph.duration_ms as f64 * d.sample_hz / 1000.0)
                    .round()
                    .max(0.0) as u64;
                let expected = inventory[n].saturating_mul(per_device);
                let stored: u64 = node_devices[n]
                    .iter()
                    .map(|&i| d.per_phase[i][p].agg.samples)
                    .sum();
                acc.0 += stored.min(expected);
                acc.1 += expected;
            }
            acc
        })
        .collect();
    let where_ = sel.describe(d);
    for s in subjects(d, c.scope, false) {
        let (stored, expected) = s.nodes.iter().fold((0u64, 0u64), |a, &n| {
            (a.0 + per_node[n].0, a.1 + per_node[n].1)
        });
        let short: Vec<String> = s
            .nodes
            .iter()
            .filter(|&&n| per_node[n].0 < per_node[n].1)
            .map(|&n| d.nodes[n].id.clone())
            .collect();
        let mut ev = Evidence {
            subjects: if c.scope == Scope::Node {
                vec![s.name.clone()]
            } else {
                short.clone()
            },
            ..Evidence::default()
        };
        (ev.from_ns, ev.to_ns) = sel.span(d);
        if expected == 0 {
            ev.detail =
                format!("no samples were expected {where_} (no phase, or no registered devices)");
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
        let pct = stored as f64 * 100.0 / expected as f64;
        ev.detail = format!(
            "{stored} of {expected} expected samples {where_} (devices × phase duration × {} Hz per node and phase)",
            d.sample_hz
        );
        if !short.is_empty() {
            ev.detail = format!("{}; short: {}", ev.detail, list(&short, 5));
        }
        let status = at_least(pct, limit.unwrap_or(100.0), warn);
        note_warn(&mut ev, status, warn, unit);
        out.push(verdict(c, &s.name, status, Some(pct), limit, cmp, unit, ev));
    }
}
