//! Reading fabric phases back from the store's fabric records: [`fabric_summary`] and what
//! `RunSummary`, the spec evaluation and the report build on ([`fabric_phases`]).

use super::{
    CollectiveSummary, FabricPhaseSummary, FabricSummary, Fault, LatencySummary, Member,
    NodeLatency, PairLatency, PairRef, SlowNode, WORST_PAIRS,
};
use hallmark_protocol::fabric::bandwidths;
use hallmark_protocol::CollectiveOp;
use hallmark_store::hist::{
    add, decode, merged, recorded, NsPercentiles, Percentiles, RttHistogram,
};
use hallmark_store::{Store, StoreError};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A stored latency row.
struct LatencyRow {
    phase: u32,
    pair: PairLatency,
    count: i64,
    blob: Vec<u8>,
}

/// A stored collective row.
struct CollectiveRow {
    phase: u32,
    node: String,
    op: String,
    size: i64,
    algorithm: String,
    iterations: i64,
    world: i64,
    mean_ns: i64,
    wrong: i64,
}

/// The fabric phases of run `run_id` (see [`FabricSummary`]); an unknown id is
/// [`StoreError::UnknownRun`], a histogram blob that no longer decodes [`StoreError::Corrupt`].
pub fn fabric_summary(store: &Store, run_id: &str) -> Result<FabricSummary, StoreError> {
    if !store.has_run(run_id)? {
        return Err(StoreError::UnknownRun {
            path: store.path().to_path_buf(),
            run_id: run_id.to_string(),
        });
    }
    Ok(FabricSummary {
        phases: fabric_phases(store, run_id, true)?,
    })
}

/// The run's fabric phases. Without `merge`, the histograms are not read: per-node and hall
/// percentiles are left out (`None`), the rest is complete.
pub(crate) fn fabric_phases(
    store: &Store,
    run_id: &str,
    merge: bool,
) -> Result<Vec<FabricPhaseSummary>, StoreError> {
    let corrupt = |d: String| StoreError::Corrupt {
        path: store.path().to_path_buf(),
        detail: format!("fabric results of run {run_id}: {d}"),
    };
    let mut members: BTreeMap<u32, Vec<Member>> = BTreeMap::new();
    for m in store.fabric_members_of(run_id)? {
        members.entry(m.phase_id).or_default().push(Member {
            rank: m.rank,
            node: m.node,
            addr: m.addr,
        });
    }
    let latency = latency_rows(store, run_id, merge)?;
    let collectives: Vec<CollectiveRow> = store
        .fabric_collectives(run_id)?
        .into_iter()
        .map(|r| CollectiveRow {
            phase: r.phase_id,
            node: r.node,
            op: r.op,
            size: r.size_bytes,
            algorithm: r.algorithm,
            iterations: r.iterations,
            world: r.world,
            mean_ns: r.mean_ns,
            wrong: r.wrong_elements,
        })
        .collect();
    let mut faults: BTreeMap<u32, Vec<Fault>> = BTreeMap::new();
    for f in store.fabric_faults(run_id)? {
        faults.entry(f.phase_id).or_default().push(Fault {
            node: f.node,
            peer: f.peer,
            message: f.message,
        });
    }
    let mut reported: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for r in store.phase_reports(run_id)? {
        reported.entry(r.phase_id).or_default().push(r.node);
    }

    let mut out = Vec::new();
    for phase in store.phases(run_id)? {
        let (id, name, workload, start, duration_ms) = (
            phase.phase_id,
            phase.name,
            phase.workload,
            phase.scheduled_start_ns,
            phase.duration_ms,
        );
        let lat: Vec<&LatencyRow> = latency.iter().filter(|r| r.phase == id).collect();
        let col: Vec<&CollectiveRow> = collectives.iter().filter(|r| r.phase == id).collect();
        let fabric_workload = workload == "latency" || workload == "collective";
        if !fabric_workload
            && lat.is_empty()
            && col.is_empty()
            && !members.contains_key(&id)
            && !faults.contains_key(&id)
        {
            continue;
        }
        let reported = reported.remove(&id).unwrap_or_default();
        let (members, members_stored) = match members.remove(&id) {
            Some(m) if !m.is_empty() => (m, true),
            _ => (inferred_members(&reported, &lat, &col), false),
        };
        let latency = if !lat.is_empty() || workload == "latency" {
            Some(latency_summary(&members, &lat, merge).map_err(corrupt)?)
        } else {
            None
        };
        out.push(FabricPhaseSummary {
            phase_id: id,
            name,
            workload,
            scheduled_start_ns: start,
            duration_ms: duration_ms.max(0) as u64,
            collectives: collective_summary(&members, &col).map_err(corrupt)?,
            members,
            members_stored,
            reported,
            latency,
            faults: faults.remove(&id).unwrap_or_default(),
        });
    }
    Ok(out)
}

fn latency_rows(store: &Store, run_id: &str, blobs: bool) -> Result<Vec<LatencyRow>, StoreError> {
    let mut out = Vec::new();
    for r in store.fabric_latency(run_id, blobs)? {
        let count = r.rtt_count;
        let ps = (r.rtt_p50_ns, r.rtt_p99_ns, r.rtt_p999_ns, r.rtt_max_ns);
        let us = |ns: i64| ns as f64 / 1e3;
        let rtt = match ps {
            (Some(p50), Some(p99), Some(p999), Some(max)) if count > 0 => Some(Percentiles {
                count: count as u64,
                p50_us: us(p50),
                p99_us: us(p99),
                p999_us: us(p999),
                max_us: us(max),
            }),
            _ => None,
        };
        out.push(LatencyRow {
            phase: r.phase_id,
            pair: PairLatency {
                src: r.src,
                dst: r.dst,
                sent: r.sent.max(0) as u64,
                lost: r.lost.max(0) as u64,
                rtt,
            },
            count,
            blob: r.rtt_ns_hist,
        });
    }
    Ok(out)
}

fn latency_summary(
    members: &[Member],
    rows: &[&LatencyRow],
    merge: bool,
) -> Result<LatencySummary, String> {
    let n = members.len() as u64;
    let pos: HashMap<&str, usize> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.node.as_str(), i))
        .collect();
    let measured: BTreeSet<(&str, &str)> = rows
        .iter()
        .filter(|r| r.pair.sent > 0 || r.count > 0)
        .map(|r| (r.pair.src.as_str(), r.pair.dst.as_str()))
        .collect();
    let mut missing = Vec::new();
    for a in members {
        for b in members {
            if a.node != b.node && !measured.contains(&(a.node.as_str(), b.node.as_str())) {
                missing.push(PairRef {
                    src: a.node.clone(),
                    dst: b.node.clone(),
                });
            }
        }
    }
    let mut nodes: Vec<NodeLatency> = members
        .iter()
        .map(|m| NodeLatency {
            node: m.node.clone(),
            pairs: 0,
            sent: 0,
            lost: 0,
            rtt: None,
        })
        .collect();
    let mut node_hist: Vec<Option<RttHistogram>> = vec![None; members.len()];
    let mut hall_hist: Option<RttHistogram> = None;
    let (mut sent, mut lost) = (0u64, 0u64);
    let mut all_lost = Vec::new();
    for r in rows {
        let p = &r.pair;
        sent = sent.saturating_add(p.sent);
        lost = lost.saturating_add(p.lost);
        if p.sent > 0 && p.rtt.is_none() {
            all_lost.push(p.pair());
        }
        let ends = [pos.get(p.src.as_str()), pos.get(p.dst.as_str())];
        for &i in ends.iter().flatten() {
            let node = &mut nodes[*i];
            node.pairs += 1;
            node.sent = node.sent.saturating_add(p.sent);
            node.lost = node.lost.saturating_add(p.lost);
        }
        if !merge || r.count <= 0 {
            continue;
        }
        let values = recorded(&decode(&r.blob).map_err(|why| {
            format!(
                "the stored histogram of pair {}→{} does not decode: {why}",
                p.src, p.dst
            )
        })?);
        let into = |slot: &mut Option<RttHistogram>| -> Result<(), String> {
            let m = match slot {
                Some(m) => m,
                None => slot.insert(merged()?),
            };
            add(m, &values)
        };
        into(&mut hall_hist)?;
        for &i in ends.iter().flatten() {
            into(&mut node_hist[*i])?;
        }
    }
    for (node, h) in nodes.iter_mut().zip(&node_hist) {
        node.rtt = h
            .as_ref()
            .and_then(NsPercentiles::of)
            .map(NsPercentiles::micros);
    }
    let pairs: Vec<PairLatency> = rows.iter().map(|r| r.pair.clone()).collect();
    let mut ranked: Vec<&PairLatency> = pairs.iter().filter(|p| p.rtt.is_some()).collect();
    let key = |p: &PairLatency| p.rtt.map_or((0.0, 0.0), |r| (r.p99_us, r.max_us));
    ranked.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        kb.0.total_cmp(&ka.0)
            .then(kb.1.total_cmp(&ka.1))
            .then_with(|| a.pair().cmp(&b.pair()))
    });
    let worst: Vec<PairLatency> = ranked.into_iter().take(WORST_PAIRS).cloned().collect();
    Ok(LatencySummary {
        pairs_expected: n.saturating_mul(n.saturating_sub(1)),
        pairs_reported: measured.len() as u64,
        missing,
        all_lost,
        sent,
        lost,
        hall: hall_hist
            .as_ref()
            .and_then(NsPercentiles::of)
            .map(NsPercentiles::micros),
        nodes,
        slow_node: slow_node(&worst, &pairs),
        worst,
        pairs,
    })
}

fn collective_summary(
    members: &[Member],
    rows: &[&CollectiveRow],
) -> Result<Vec<CollectiveSummary>, String> {
    // (op order, size) → rows.
    let mut groups: BTreeMap<(usize, &str, i64), Vec<&CollectiveRow>> = BTreeMap::new();
    for r in rows {
        let op = CollectiveOp::from_name(&r.op)
            .ok_or_else(|| format!("collective operation {:?} is not known", r.op))?;
        let order = CollectiveOp::ALL.iter().position(|o| *o == op).unwrap_or(0);
        groups.entry((order, &r.op, r.size)).or_default().push(r);
    }
    let mut out = Vec::with_capacity(groups.len());
    for ((order, op_name, size), rs) in groups {
        let op = CollectiveOp::ALL[order.min(CollectiveOp::ALL.len() - 1)];
        let size_bytes = size.max(0) as u64;
        let Some(slowest) = rs.iter().max_by_key(|r| r.mean_ns) else {
            continue;
        };
        // The n of the bus factor: the ranks the operation ran on as the probes report it (the
        // members on the data plane, every GPU with NCCL); else the members, else who reported.
        let world = rs.iter().map(|r| r.world).max().unwrap_or(0);
        let ranks = if world > 0 {
            world as usize
        } else if members.is_empty() {
            rs.len()
        } else {
            members.len()
        };
        let time_ns = slowest.mean_ns.max(0) as f64;
        let (algbw, busbw) = bandwidths(op, ranks, size_bytes, time_ns);
        let mut algorithms: Vec<&str> = rs.iter().map(|r| r.algorithm.as_str()).collect();
        algorithms.sort_unstable();
        algorithms.dedup();
        let have: BTreeSet<&str> = rs.iter().map(|r| r.node.as_str()).collect();
        out.push(CollectiveSummary {
            op: op_name.to_string(),
            algorithm: algorithms.join("+"),
            size_bytes,
            count: size_bytes / 4,
            ranks,
            ranks_reported: rs.len(),
            iterations: rs
                .iter()
                .map(|r| r.iterations.clamp(0, i64::from(u32::MAX)) as u32)
                .min()
                .unwrap_or(0),
            time_us: time_ns / 1e3,
            slowest: slowest.node.clone(),
            algbw_gb_s: algbw,
            busbw_gb_s: busbw,
            wrong_elements: rs.iter().map(|r| r.wrong.max(0) as u64).sum(),
            wrong_nodes: rs
                .iter()
                .filter(|r| r.wrong > 0)
                .map(|r| r.node.clone())
                .collect(),
            missing: members
                .iter()
                .filter(|m| !have.contains(m.node.as_str()))
                .map(|m| m.node.clone())
                .collect(),
        });
    }
    Ok(out)
}

/// Without stored members: every node that reported the phase or appears in its data, by node id.
fn inferred_members(
    reported: &[String],
    latency: &[&LatencyRow],
    collectives: &[&CollectiveRow],
) -> Vec<Member> {
    let mut nodes: BTreeSet<&str> = reported.iter().map(String::as_str).collect();
    for r in latency {
        nodes.insert(&r.pair.src);
        nodes.insert(&r.pair.dst);
    }
    for r in collectives {
        nodes.insert(&r.node);
    }
    nodes
        .into_iter()
        .enumerate()
        .map(|(rank, node)| Member {
            rank: rank as u32,
            node: node.to_string(),
            addr: String::new(),
        })
        .collect()
}

/// How much slower than the typical pair a node's worst pairs must be for it to be named.
pub const SLOW_FACTOR: f64 = 2.0;

/// The node that most of the worst pairs share: in at least two of them and at least half, and in
/// more of them than any other node. Between nodes in equally many, the one whose worst pairs add
/// up to the higher p99 is named (a node whose inbound path alone is slow is in only the pairs
/// into it, which on a small mesh the pairs of two healthy nodes can equal in number, never in
/// time); an exact tie names nobody. And only when its pairs stand out: their mean p99 at least
/// [`SLOW_FACTOR`] × the median p99 of the pairs (of `pairs`) that do not involve it, so that the
/// ordinary spread of a healthy mesh names nobody.
pub(crate) fn slow_node(worst: &[PairLatency], pairs: &[PairLatency]) -> Option<SlowNode> {
    let mut count: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for p in worst {
        let p99 = p.rtt.map_or(f64::INFINITY, |r| r.p99_us);
        let dst = (p.dst != p.src).then_some(p.dst.as_str());
        for n in std::iter::once(p.src.as_str()).chain(dst) {
            let e = count.entry(n).or_default();
            e.0 += 1;
            e.1 += p99;
        }
    }
    let top = count.values().map(|c| c.0).max()?;
    let mut at_top: Vec<(&str, f64)> = count
        .iter()
        .filter(|(_, c)| c.0 == top)
        .map(|(n, c)| (*n, c.1))
        .collect();
    at_top.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (node, time) = *at_top.first()?;
    let tied = at_top.get(1).is_some_and(|(_, t)| *t == time);
    if tied || top < 2 || top * 2 < worst.len() {
        return None;
    }
    let mut others: Vec<f64> = pairs
        .iter()
        .filter(|p| p.src != node && p.dst != node)
        .filter_map(|p| p.rtt.map(|r| r.p99_us))
        .collect();
    others.sort_by(f64::total_cmp);
    let typical = others.get(others.len() / 2).copied();
    let stands_out = typical.is_some_and(|t| time / top as f64 >= SLOW_FACTOR * t);
    if !stands_out {
        return None;
    }
    Some(SlowNode {
        node: node.to_string(),
        in_worst: top,
        worst: worst.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(src: &str, dst: &str, p99: f64) -> PairLatency {
        PairLatency {
            src: src.into(),
            dst: dst.into(),
            sent: 10,
            lost: 0,
            rtt: Some(Percentiles {
                count: 10,
                p50_us: 1.0,
                p99_us: p99,
                p999_us: p99,
                max_us: p99,
            }),
        }
    }

    /// The worst pairs and ordinary pairs of 10 µs between the other nodes.
    fn with_rest(worst: &[PairLatency]) -> Vec<PairLatency> {
        let mut all = worst.to_vec();
        all.push(pair("r1n1", "r1n2", 10.0));
        all.push(pair("r1n2", "r1n1", 10.0));
        all.push(pair("r2n1", "r2n2", 10.0));
        all
    }

    #[test]
    fn the_node_the_worst_pairs_share_is_named() {
        let worst = [
            pair("r2n3", "r1n1", 90.0),
            pair("r1n2", "r2n3", 80.0),
            pair("r2n3", "r1n2", 70.0),
            pair("r2n2", "r2n1", 20.0),
            pair("r2n1", "r2n4", 10.0),
        ];
        let s = slow_node(&worst, &with_rest(&worst)).unwrap();
        assert_eq!((s.node.as_str(), s.in_worst, s.worst), ("r2n3", 3, 5));
        // A pair and its reverse: both nodes in both pairs, a tie: nobody is named.
        assert_eq!(
            slow_node(&[pair("a", "b", 5.0), pair("b", "a", 4.0)], &[]),
            None
        );
        assert_eq!(slow_node(&[pair("a", "b", 5.0)], &[]), None);
        assert_eq!(slow_node(&[], &[]), None);
        // The worst pairs of a healthy mesh share a node too, but are not far above the pairs
        // without it: nobody is named.
        let healthy: Vec<PairLatency> = worst
            .iter()
            .cloned()
            .chain([pair("r2n2", "r1n1", 60.0), pair("r1n1", "r1n2", 50.0)])
            .collect();
        assert_eq!(slow_node(&worst, &healthy), None);
        // Without pairs to compare with, nobody either.
        assert_eq!(slow_node(&worst, &worst[..3]), None);
    }

    /// Four nodes, only the path into p4 slow: the three pairs into p4 and two healthy pairs that
    /// share p3 put p3 and p4 in three worst pairs each; p4's add up to far more time.
    #[test]
    fn a_tie_in_count_goes_to_the_node_whose_worst_pairs_are_slower() {
        let worst = [
            pair("p3", "p4", 10_400.0),
            pair("p2", "p4", 10_300.0),
            pair("p1", "p4", 10_200.0),
            pair("p3", "p1", 90.0),
            pair("p2", "p3", 80.0),
        ];
        let s = slow_node(&worst, &worst).unwrap();
        assert_eq!((s.node.as_str(), s.in_worst, s.worst), ("p4", 3, 5));
        // Equal counts and equal time: nobody.
        let even = [pair("a", "b", 5.0), pair("c", "d", 5.0)];
        assert_eq!(slow_node(&even, &even), None);
    }

    /// Worked by hand: an all-reduce of 64 MiB on 4 ranks whose mean times are 10, 12, 11 and
    /// 12.5 ms. The slowest rank sets the time: 12.5 ms. algbw = 67 108 864 B / 12.5 ms =
    /// 5.368 709 12 GB/s; busbw = algbw × 2 × 3 / 4 = 8.053 063 68 GB/s.
    #[test]
    fn busbw_from_the_slowest_rank() {
        let members: Vec<Member> = (0..4)
            .map(|i| Member {
                rank: i,
                node: format!("n{i}"),
                addr: String::new(),
            })
            .collect();
        let rows: Vec<CollectiveRow> = [10_000_000, 12_000_000, 11_000_000, 12_500_000]
            .into_iter()
            .enumerate()
            .map(|(i, t)| CollectiveRow {
                phase: 1,
                node: format!("n{i}"),
                op: "all-reduce".into(),
                size: 64 << 20,
                algorithm: "ring".into(),
                iterations: 20 + i as i64,
                world: 4,
                mean_ns: t,
                wrong: i as i64 % 2,
            })
            .collect();
        let refs: Vec<&CollectiveRow> = rows.iter().collect();
        let s = collective_summary(&members, &refs).unwrap();
        assert_eq!(s.len(), 1);
        let c = &s[0];
        assert_eq!((c.ranks, c.ranks_reported, c.iterations), (4, 4, 20));
        assert_eq!(c.slowest, "n3");
        assert!((c.time_us - 12_500.0).abs() < 1e-9);
        assert!(
            (c.algbw_gb_s - 5.368_709_12).abs() < 1e-9,
            "{}",
            c.algbw_gb_s
        );
        assert!(
            (c.busbw_gb_s - 8.053_063_68).abs() < 1e-9,
            "{}",
            c.busbw_gb_s
        );
        assert_eq!((c.wrong_elements, c.count), (2, 16 << 20));
        assert_eq!(c.wrong_nodes, ["n1", "n3"]);
        assert!(c.missing.is_empty());
        // Rank n2 did not report: 3 of 4 ranks, n2 named, the bus factor still of 4 ranks.
        let three: Vec<&CollectiveRow> = rows.iter().filter(|r| r.node != "n2").collect();
        let s = collective_summary(&members, &three).unwrap();
        assert_eq!((s[0].ranks, s[0].ranks_reported), (4, 3));
        assert_eq!(s[0].missing, ["n2"]);
        assert!((s[0].busbw_gb_s - 8.053_063_68).abs() < 1e-9);
        // Through NCCL the ranks are the GPUs: 4 nodes of 8 report a world of 32, and the bus
        // factor is 2 × 31 / 32.
        let gpus: Vec<CollectiveRow> = rows
            .iter()
            .map(|r| CollectiveRow {
                world: 32,
                algorithm: "nccl".into(),
                node: r.node.clone(),
                op: r.op.clone(),
                ..*r
            })
            .collect();
        let refs: Vec<&CollectiveRow> = gpus.iter().collect();
        let s = collective_summary(&members, &refs).unwrap();
        assert_eq!((s[0].ranks, s[0].ranks_reported), (32, 4));
        assert!((s[0].busbw_gb_s - 5.368_709_12 * 62.0 / 32.0).abs() < 1e-9);
        assert_eq!(s[0].algorithm, "nccl");
    }
}
