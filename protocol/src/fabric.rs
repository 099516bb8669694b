//! The interconnect (fabric) part of the protocol: what a `latency` or `collective` phase asks of
//! the probes, who their peers are, and what each probe reports back.
//!
//! For a fabric phase the coordinator hands every member probe a [`FabricPhase`] inside the
//! `PhaseStart`: the members in rank order (node id and data-plane address), the phase's parameters
//! and **this member's pair keys**: one [`PairKey`] per other member. The coordinator draws one
//! random phase key per phase, which never leaves it, and derives from it the key of every
//! unordered pair of members; member `i` receives the keys of the pairs
//! `{i, j}` for every `j ≠ i` and no others. Both ends of a pair hold its key and nobody else does,
//! so on the data plane (every UDP test packet and every TCP handshake is tagged with HMAC-SHA256
//! under the pair's key) a member can neither forge traffic between two others nor claim another
//! member's rank. The keys travel only over the mutually authenticated control connections.
//!
//! Latency round trips are reported as HDR histograms of nanoseconds (3 significant digits), V2 +
//! deflate; collectives as the mean time of one operation per size on each rank, from which the
//! coordinator's side derives algbw and busbw by the nccl-tests definitions.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Where a probe's data plane listens (UDP and TCP on the same port). Without `ip` the coordinator
/// uses the address the probe's control connection came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPlaneAddr {
    pub ip: Option<IpAddr>,
    pub port: u16,
}

/// The secret two members of a phase share (32 bytes). Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairKey(pub [u8; 32]);

impl fmt::Debug for PairKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairKey(..)")
    }
}

/// The key a member shares with the member of rank `rank`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerKey {
    pub rank: u32,
    pub key: PairKey,
}

/// One member of a fabric phase; its rank is its position in [`FabricPhase::members`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FabricMember {
    pub node_id: NodeId,
    pub addr: SocketAddr,
}

/// What a fabric phase runs, as the plan gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FabricParams {
    Latency(LatencyParams),
    Collective(CollectiveParams),
}

/// The latency mesh: every directed pair ping-pongs for its share of the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyParams {
    /// UDP payload of one test packet, bytes (header and tag included).
    pub packet_bytes: u32,
}

impl Default for LatencyParams {
    fn default() -> Self {
        LatencyParams { packet_bytes: 64 }
    }
}

/// A sweep of collective operations over message sizes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectiveParams {
    /// Operations, run in this order, each over the whole size sweep.
    pub ops: Vec<CollectiveOp>,
    /// Smallest and largest message size, bytes; sizes double from `min_bytes` up to `max_bytes`.
    pub min_bytes: u64,
    pub max_bytes: u64,
    pub algorithm: CollectiveAlgorithm,
    /// Where the data moves: between host buffers over the data plane, or between the GPUs'
    /// memories through NCCL.
    pub transport: CollectiveTransport,
    /// Timed iterations per size (1 to [`MAX_COLLECTIVE_ITERATIONS`]); `None`: as many as fit a
    /// short per-size budget (at most 20). Either way never more than the phase's time allows.
    pub iterations: Option<u32>,
}

/// The most timed iterations per size a plan may ask for.
pub const MAX_COLLECTIVE_ITERATIONS: u32 = 1000;

impl Default for CollectiveParams {
    fn default() -> Self {
        CollectiveParams {
            ops: CollectiveOp::ALL.to_vec(),
            min_bytes: 8,
            max_bytes: 256 << 20,
            algorithm: CollectiveAlgorithm::Auto,
            transport: CollectiveTransport::Auto,
            iterations: None,
        }
    }
}

/// Collective operations, with nccl-tests' meaning of the message size (`size` below):
/// all-reduce and broadcast: the buffer each rank holds; all-gather: the gathered output;
/// reduce-scatter: the input of each rank; all-to-all: what each rank sends in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CollectiveOp {
    AllReduce,
    AllGather,
    ReduceScatter,
    Broadcast,
    AllToAll,
}

impl CollectiveOp {
    pub const ALL: [CollectiveOp; 5] = [
        CollectiveOp::AllReduce,
        CollectiveOp::AllGather,
        CollectiveOp::ReduceScatter,
        CollectiveOp::Broadcast,
        CollectiveOp::AllToAll,
    ];

    /// The name used in plans, stores and reports: `all-reduce`, `all-gather`, ...
    pub fn name(self) -> &'static str {
        match self {
            CollectiveOp::AllReduce => "all-reduce",
            CollectiveOp::AllGather => "all-gather",
            CollectiveOp::ReduceScatter => "reduce-scatter",
            CollectiveOp::Broadcast => "broadcast",
            CollectiveOp::AllToAll => "all-to-all",
        }
    }

    pub fn from_name(s: &str) -> Option<CollectiveOp> {
        CollectiveOp::ALL.into_iter().find(|o| o.name() == s)
    }

    /// nccl-tests' bus-bandwidth factor for `ranks` ranks: busbw = algbw × factor.
    /// all-reduce 2(n−1)/n; all-gather, reduce-scatter, all-to-all (n−1)/n; broadcast 1.
    pub fn bus_factor(self, ranks: usize) -> f64 {
        let n = ranks.max(1) as f64;
        match self {
            CollectiveOp::AllReduce => 2.0 * (n - 1.0) / n,
            CollectiveOp::AllGather | CollectiveOp::ReduceScatter | CollectiveOp::AllToAll => {
                (n - 1.0) / n
            }
            CollectiveOp::Broadcast => 1.0,
        }
    }
}

/// Where a collective phase moves its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CollectiveTransport {
    /// NCCL when every member runs the cuda backend, the data plane otherwise.
    Auto,
    /// Host buffers over the probes' data plane (TCP), one rank per probe.
    DataPlane,
    /// GPU buffers through NCCL, one rank per GPU; the phase fails where a member has no GPUs.
    Nccl,
}

impl CollectiveTransport {
    pub fn name(self) -> &'static str {
        match self {
            CollectiveTransport::Auto => "auto",
            CollectiveTransport::DataPlane => "data-plane",
            CollectiveTransport::Nccl => "nccl",
        }
    }

    pub fn from_name(s: &str) -> Option<CollectiveTransport> {
        [
            CollectiveTransport::Auto,
            CollectiveTransport::DataPlane,
            CollectiveTransport::Nccl,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }
}

/// Which algorithm moves the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CollectiveAlgorithm {
    /// Latency-optimal below [`AUTO_RING_THRESHOLD_BYTES`], ring from there.
    Auto,
    /// Bandwidth-optimal ring (pipelined chunks around the ranks).
    Ring,
    /// Fewest sequential steps: recursive doubling / direct exchange.
    LatencyOptimal,
    /// NCCL's own choice (ring, tree, …) between GPUs; reported by NCCL phases only.
    Nccl,
}

/// Message size from which `Auto` uses the ring.
pub const AUTO_RING_THRESHOLD_BYTES: u64 = 64 << 10;

impl CollectiveAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            CollectiveAlgorithm::Auto => "auto",
            CollectiveAlgorithm::Ring => "ring",
            CollectiveAlgorithm::LatencyOptimal => "latency-optimal",
            CollectiveAlgorithm::Nccl => "nccl",
        }
    }

    pub fn from_name(s: &str) -> Option<CollectiveAlgorithm> {
        [
            CollectiveAlgorithm::Auto,
            CollectiveAlgorithm::Ring,
            CollectiveAlgorithm::LatencyOptimal,
        ]
        .into_iter()
        .find(|a| a.name() == s)
    }

    /// The algorithm used for one message size (never `Auto`).
    pub fn resolve(self, size_bytes: u64) -> CollectiveAlgorithm {
        match self {
            CollectiveAlgorithm::Auto if size_bytes < AUTO_RING_THRESHOLD_BYTES => {
                CollectiveAlgorithm::LatencyOptimal
            }
            CollectiveAlgorithm::Auto => CollectiveAlgorithm::Ring,
            other => other,
        }
    }
}

/// A fabric phase as each member receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FabricPhase {
    /// This member's pair keys, one per other member; empty in the
    /// coordinator's own copy of the phase (it fills them per member when it sends the order).
    pub keys: Vec<PeerKey>,
    /// Every member in rank order (sorted by node id); a probe finds its rank by its node id.
    pub members: Vec<FabricMember>,
    pub params: FabricParams,
    /// Set when the collectives run through NCCL between the members' GPUs.
    pub nccl: Option<NcclSetup>,
}

/// NCCL between the GPUs of a collective phase: one rank per GPU, the ranks of member `m` (in
/// member order) starting at the sum of `gpus[..m]`. `unique_id` is the 128-byte `ncclUniqueId`
/// the first member made (`FabricPrepared`), passed to every member by the coordinator.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NcclSetup {
    pub unique_id: Vec<u8>,
    /// GPUs (ranks) of each member, in member order.
    pub gpus: Vec<u32>,
}

impl fmt::Debug for NcclSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NcclSetup {{ unique_id: {} bytes, gpus: {:?} }}",
            self.unique_id.len(),
            self.gpus
        )
    }
}

impl NcclSetup {
    /// Bytes of an `ncclUniqueId`.
    pub const ID_LEN: usize = 128;

    /// All ranks: the GPUs of every member.
    pub fn world(&self) -> u32 {
        self.gpus.iter().fold(0u32, |a, g| a.saturating_add(*g))
    }

    /// The first rank of member `member` and how many it has.
    pub fn ranks_of(&self, member: usize) -> Option<(u32, u32)> {
        let n = *self.gpus.get(member)?;
        let first = self.gpus[..member]
            .iter()
            .fold(0u32, |a, g| a.saturating_add(*g));
        Some((first, n))
    }
}

impl FabricPhase {
    /// The rank of `node`, if it is a member.
    pub fn rank_of(&self, node: &NodeId) -> Option<usize> {
        self.members.iter().position(|m| &m.node_id == node)
    }
}

/// Round trips from this node (`src`, the initiator) to `dst`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyPair {
    pub src: NodeId,
    pub dst: NodeId,
    /// Test packets sent and those whose answer never came by the end of the pair's half-slot (an
    /// answer after the 50 ms ping timeout is late, not lost: its round trip is in the histogram).
    pub sent: u64,
    pub lost: u64,
    /// Round-trip times in nanoseconds: an HDR histogram (3 significant digits), V2 + deflate.
    pub rtt_ns_hist: Vec<u8>,
}

/// One collective operation at one size, as one rank measured it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectiveResult {
    pub op: CollectiveOp,
    /// The algorithm used (never `Auto`).
    pub algorithm: CollectiveAlgorithm,
    /// nccl-tests' message size, bytes (see [`CollectiveOp`]); elements are f32.
    pub size_bytes: u64,
    /// Timed iterations (after one warm-up).
    pub iterations: u32,
    /// Ranks of the operation (the n of the bus factor): the members on the data plane, all the
    /// GPUs with NCCL.
    pub world: u32,
    /// Mean time of one operation on this rank, ns.
    pub mean_ns: u64,
    /// Output elements that differed from the expected value (any NaN counts).
    pub wrong_elements: u64,
}

/// Something a fabric phase could not do, naming the peer where one is to blame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FabricFault {
    pub peer: Option<NodeId>,
    pub message: String,
}

/// What a fabric phase produced on one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FabricReport {
    pub latency: Vec<LatencyPair>,
    pub collectives: Vec<CollectiveResult>,
    pub faults: Vec<FabricFault>,
}

/// algbw and busbw in GB/s (10⁹ bytes per second) of `op` on `ranks` ranks moving `size_bytes` in
/// `time_ns`, by the nccl-tests definitions: algbw = size / time, busbw = algbw × bus factor.
pub fn bandwidths(op: CollectiveOp, ranks: usize, size_bytes: u64, time_ns: f64) -> (f64, f64) {
    if time_ns <= 0.0 || !time_ns.is_finite() {
        return (0.0, 0.0);
    }
    let algbw = size_bytes as f64 / time_ns; // bytes per ns = GB/s
    (algbw, algbw * op.bus_factor(ranks))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked by hand from nccl-tests' doc/PERFORMANCE.md (algbw = S / t; all-reduce busbw =
    /// algbw × 2(n−1)/n): an all-reduce of 10⁹ bytes in 0.1 s is 10 GB/s algbw, and on 8 ranks
    /// 10 × 2 × 7 / 8 = 17.5 GB/s busbw.
    #[test]
    fn bandwidths_follow_the_nccl_tests_definitions() {
        let (alg, bus) = bandwidths(CollectiveOp::AllReduce, 8, 1_000_000_000, 1e8);
        assert!((alg - 10.0).abs() < 1e-9, "{alg}");
        assert!((bus - 17.5).abs() < 1e-9, "{bus}");
        let (alg, bus) = bandwidths(CollectiveOp::AllGather, 4, 64 << 20, 50e6);
        assert!((alg - 1.342_177_28).abs() < 1e-9, "{alg}");
        assert!((bus - alg * 0.75).abs() < 1e-12);
        let (alg, bus) = bandwidths(CollectiveOp::Broadcast, 4, 1000, 1000.0);
        assert_eq!((alg, bus), (1.0, 1.0));
        assert_eq!(bandwidths(CollectiveOp::AllToAll, 4, 10, 0.0), (0.0, 0.0));
    }

    #[test]
    fn auto_picks_latency_optimal_for_small_messages() {
        let a = CollectiveAlgorithm::Auto;
        assert_eq!(a.resolve(8), CollectiveAlgorithm::LatencyOptimal);
        assert_eq!(
            a.resolve(AUTO_RING_THRESHOLD_BYTES),
            CollectiveAlgorithm::Ring
        );
        assert_eq!(
            CollectiveAlgorithm::Ring.resolve(8),
            CollectiveAlgorithm::Ring
        );
        for op in CollectiveOp::ALL {
            assert_eq!(CollectiveOp::from_name(op.name()), Some(op));
        }
    }

    #[test]
    fn nccl_ranks_follow_the_members_gpus() {
        let s = NcclSetup {
            unique_id: vec![0; NcclSetup::ID_LEN],
            gpus: vec![8, 8, 4],
        };
        assert_eq!(s.world(), 20);
        assert_eq!(s.ranks_of(0), Some((0, 8)));
        assert_eq!(s.ranks_of(2), Some((16, 4)));
        assert_eq!(s.ranks_of(3), None);
        assert!(format!("{s:?}").contains("128 bytes"));
        for t in ["auto", "data-plane", "nccl"] {
            assert_eq!(CollectiveTransport::from_name(t).map(|t| t.name()), Some(t));
        }
    }

    #[test]
    fn keys_do_not_show_in_logs() {
        assert_eq!(format!("{:?}", PairKey([7; 32])), "PairKey(..)");
    }
}
