//! Fabric phases for constructed runs: a latency phase `mesh` (id 3, 12–14 s after `T0`) and a
//! collective phase `allreduce` (id 4, 14–16 s) over the four nodes `r1n1`, `r1n2`, `r2n1`,
//! `r2n2` that the other support modules register. Round trips are HDR histograms built here (3
//! significant digits, V2 + deflate, as the probes send them). Each test changes what it needs
//! through the closures of [`Fabric`], then stores it with [`Fabric::store`].

#![allow(dead_code)]

use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{
    CollectiveAlgorithm, CollectiveOp, CollectiveResult, FabricFault, FabricMember, FabricReport,
    LatencyPair, NodeId, PhaseReport, Workload,
};
use hallmark_results::{PhaseRow, RunId, Store};
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

pub const T0: i64 = 1_795_918_500_000_000_000;
pub const MS: i64 = 1_000_000;
pub const IDS: [&str; 4] = ["r1n1", "r1n2", "r2n1", "r2n2"];
pub const MESH: u32 = 3;
pub const COLL: u32 = 4;
pub const MIB: u64 = 1 << 20;

pub fn nid(i: usize) -> NodeId {
    NodeId::new(IDS[i]).unwrap()
}

/// An HDR histogram of `values` (ns, count), V2 + deflate.
pub fn blob(values: &[(u64, u64)]) -> Vec<u8> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    for &(v, n) in values {
        h.record_n(v, n).unwrap();
    }
    let mut out = Vec::new();
    V2DeflateSerializer::new().serialize(&h, &mut out).unwrap();
    out
}

type PairFn<T> = Box<dyn Fn(usize, usize) -> T>;
/// (mean ns, wrong elements) of a rank for an op at a size.
type CollectiveFn = Box<dyn Fn(usize, CollectiveOp, u64) -> Option<(u64, u64)>>;

/// What the fabric phases hold; nodes by their position in [`IDS`].
pub struct Fabric {
    /// Round trips of pair (src, dst) as (ns, count); `None`: the pair is not in src's report.
    pub rtt: PairFn<Option<Vec<(u64, u64)>>>,
    /// Packets lost on the pair (sent = round trips + lost).
    pub lost: PairFn<u64>,
    /// Whether node `n` reports the mesh phase at all.
    pub mesh_report: Box<dyn Fn(usize) -> bool>,
    /// (mean ns, wrong elements) of node `n`'s rank for `op` at `size`; `None`: not reported.
    pub collective: CollectiveFn,
    pub ops: Vec<CollectiveOp>,
    pub sizes: Vec<u64>,
    /// (node, peer, message).
    pub faults: Vec<(usize, Option<usize>, &'static str)>,
    /// Whether the members are stored (as the coordinator does).
    pub members: bool,
}

/// Round trips of pair (s, d) by default: 100 of `(10 + 10 s + d) µs`.
pub fn default_rtt(s: usize, d: usize) -> u64 {
    (10 + 10 * s as u64 + d as u64) * 1000
}

impl Default for Fabric {
    fn default() -> Fabric {
        Fabric {
            rtt: Box::new(|s, d| Some(vec![(default_rtt(s, d), 100)])),
            lost: Box::new(|_, _| 0),
            mesh_report: Box::new(|_| true),
            // 10 ms per 64 MiB on every rank, scaled by size, rank 3 5 % slower.
            collective: Box::new(|n, _, size| {
                let base = size as f64 / (64 * MIB) as f64 * 10e6;
                Some((
                    (base * if n == 3 { 1.05 } else { 1.0 }).max(1000.0) as u64,
                    0,
                ))
            }),
            ops: vec![CollectiveOp::AllReduce, CollectiveOp::AllGather],
            sizes: vec![MIB, 16 * MIB, 64 * MIB],
            faults: Vec::new(),
            members: true,
        }
    }
}

impl Fabric {
    /// Adds the two fabric phases with their members and reports to `run`.
    pub fn store(&self, store: &mut Store, run: &RunId) {
        for (phase_id, name, workload, start_s) in [
            (MESH, "mesh", Workload::Latency, 12i64),
            (COLL, "allreduce", Workload::Collective, 14),
        ] {
            store
                .add_phase(
                    run,
                    &PhaseRow {
                        phase_id,
                        name: name.into(),
                        workload,
                        pattern: Pattern::Steady { level: 0.0 },
                        scheduled_start_ns: T0 + start_s * 1000 * MS,
                        duration_ms: 2000,
                    },
                )
                .unwrap();
            if self.members {
                let members: Vec<FabricMember> = (0..4)
                    .map(|i| FabricMember {
                        node_id: nid(i),
                        addr: format!("127.0.0.1:{}", 47000 + i).parse().unwrap(),
                    })
                    .collect();
                store.fabric_members(run, phase_id, &members).unwrap();
            }
        }
        for n in 0..4 {
            let faults: Vec<FabricFault> = self
                .faults
                .iter()
                .filter(|f| f.0 == n)
                .map(|f| FabricFault {
                    peer: f.1.map(nid),
                    message: f.2.to_string(),
                })
                .collect();
            if (self.mesh_report)(n) {
                let latency = (0..4)
                    .filter(|&d| d != n)
                    .filter_map(|d| {
                        let values = (self.rtt)(n, d)?;
                        let got: u64 = values.iter().map(|v| v.1).sum();
                        let lost = (self.lost)(n, d);
                        Some(LatencyPair {
                            src: nid(n),
                            dst: nid(d),
                            sent: got + lost,
                            lost,
                            rtt_ns_hist: blob(&values),
                        })
                    })
                    .collect();
                self.report(store, run, n, MESH, latency, Vec::new(), faults.clone());
            }
            let mut collectives = Vec::new();
            for &op in &self.ops {
                for &size in &self.sizes {
                    if let Some((mean_ns, wrong)) = (self.collective)(n, op, size) {
                        collectives.push(CollectiveResult {
                            op,
                            algorithm: CollectiveAlgorithm::Auto.resolve(size),
                            size_bytes: size,
                            iterations: 20,
                            world: 4,
                            mean_ns,
                            wrong_elements: wrong,
                        });
                    }
                }
            }
            self.report(store, run, n, COLL, Vec::new(), collectives, Vec::new());
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        store: &mut Store,
        run: &RunId,
        n: usize,
        phase_id: u32,
        latency: Vec<LatencyPair>,
        collectives: Vec<CollectiveResult>,
        faults: Vec<FabricFault>,
    ) {
        let start = if phase_id == MESH { 12_000 } else { 14_000 };
        store
            .phase_report(
                run,
                &nid(n),
                &PhaseReport {
                    phase_id,
                    ended_at_ns: T0 + (start + 2000) * MS,
                    stopped_early: None,
                    devices: Vec::new(),
                    fabric: Some(FabricReport {
                        latency,
                        collectives,
                        faults,
                    }),
                },
            )
            .unwrap();
    }
}
