//! Fabric (interconnect) results: what the `latency` and `collective` phases measured, stored and
//! summarised (tables in `docs/SCHEMA.md`, schema version 3).
//!
//! * Writing is the store's (`hallmark-store`): [`crate::Store::fabric_members`] stores the members
//!   of a fabric phase in rank order (the coordinator calls it when it schedules the phase);
//!   [`crate::Store::phase_report`] stores a report's
//!   [`FabricReport`](hallmark_protocol::FabricReport) in the same transaction as the rest of the
//!   report, every histogram blob decoded first: a blob that does not decode is refused and nothing
//!   of that report is written.
//! * Reading: [`fabric_summary`] → [`FabricSummary`], one [`FabricPhaseSummary`] per
//!   fabric phase: latency per directed pair, per node (the histograms of the pairs it initiated and
//!   of those it answered, merged) and for the hall (all pairs merged), the worst pairs and the node
//!   they share, expected against reported pairs; collectives per op and size with algbw and busbw
//!   by the nccl-tests definitions from the slowest rank's time; faults. The same phases are in
//!   [`crate::RunSummary::fabric`], and [`render_fabric`] prints them as `hallmark runs show` does.
//!
//! Histograms (`hallmark_store::hist`) are decoded under size limits: they come from network peers.

mod read;
mod text;

pub use hallmark_store::hist::Percentiles;
pub(crate) use read::fabric_phases;
pub use read::fabric_summary;
pub use text::render_fabric;
pub use text::size_label;

use serde::{Deserialize, Serialize};

/// How many of the worst pairs a latency summary lists.
pub const WORST_PAIRS: usize = 5;

/// Every fabric phase of a run, in schedule order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FabricSummary {
    pub phases: Vec<FabricPhaseSummary>,
}

/// One fabric phase: a `latency` or `collective` phase, or any phase with fabric data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FabricPhaseSummary {
    pub phase_id: u32,
    pub name: String,
    /// `latency` or `collective`.
    pub workload: String,
    pub scheduled_start_ns: i64,
    pub duration_ms: u64,
    /// The members in rank order, as the coordinator stored them; without stored members, the nodes
    /// seen in the phase's reports and pairs, sorted by node id (`members_stored` false).
    pub members: Vec<Member>,
    pub members_stored: bool,
    /// Nodes that stored a report of the phase.
    pub reported: Vec<String>,
    /// The latency mesh's results; `None` when no pair was reported and the phase is not a
    /// latency phase.
    pub latency: Option<LatencySummary>,
    /// Collective results per op and size, ops in the order all-reduce, all-gather,
    /// reduce-scatter, broadcast, all-to-all, sizes ascending.
    pub collectives: Vec<CollectiveSummary>,
    pub faults: Vec<Fault>,
}

impl FabricPhaseSummary {
    /// Whether the phase ran the latency mesh (or stored latency pairs).
    pub fn is_latency(&self) -> bool {
        self.workload == "latency" || self.latency.as_ref().is_some_and(|l| !l.pairs.is_empty())
    }

    /// Whether the phase ran collectives (or stored collective results).
    pub fn is_collective(&self) -> bool {
        self.workload == "collective" || !self.collectives.is_empty()
    }
}

/// A member of a fabric phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub rank: u32,
    pub node: String,
    /// The data-plane address the coordinator gave the other members (empty when inferred).
    pub addr: String,
}

/// A directed node pair: `src` initiated the round trips, `dst` answered them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PairRef {
    pub src: String,
    pub dst: String,
}

impl std::fmt::Display for PairRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}→{}", self.src, self.dst)
    }
}

/// One directed pair's round trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairLatency {
    pub src: String,
    pub dst: String,
    /// Test packets sent, and those whose answer never came.
    pub sent: u64,
    pub lost: u64,
    /// `None`: no round trip came back.
    pub rtt: Option<Percentiles>,
}

impl PairLatency {
    pub fn pair(&self) -> PairRef {
        PairRef {
            src: self.src.clone(),
            dst: self.dst.clone(),
        }
    }
}

/// One node's round trips: the pairs it initiated and those it answered, merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeLatency {
    pub node: String,
    /// Reported pairs with this node at either end.
    pub pairs: usize,
    pub sent: u64,
    pub lost: u64,
    pub rtt: Option<Percentiles>,
}

/// The node most of the worst pairs share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowNode {
    pub node: String,
    /// In how many of the worst pairs it is, and how many worst pairs there are.
    pub in_worst: usize,
    pub worst: usize,
}

/// The latency mesh of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// members × (members − 1).
    pub pairs_expected: u64,
    /// Pairs stored with at least one packet sent.
    pub pairs_reported: u64,
    /// Expected pairs with no report, or reported with no packet sent, in (src, dst) order.
    pub missing: Vec<PairRef>,
    /// Pairs that sent packets and got no round trip back: every packet lost.
    pub all_lost: Vec<PairRef>,
    pub sent: u64,
    pub lost: u64,
    /// All pairs' round trips merged.
    pub hall: Option<Percentiles>,
    /// Per node, in member order.
    pub nodes: Vec<NodeLatency>,
    /// The [`WORST_PAIRS`] pairs with the highest p99 (ties: the higher maximum), worst first.
    pub worst: Vec<PairLatency>,
    /// The node at least two of the worst pairs (and at least half of them) share, when one node
    /// is in more of them than any other.
    pub slow_node: Option<SlowNode>,
    /// Every reported pair, in (src, dst) order.
    pub pairs: Vec<PairLatency>,
}

/// One collective operation at one size, over the ranks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectiveSummary {
    /// `all-reduce`, `all-gather`, `reduce-scatter`, `broadcast`, `all-to-all`.
    pub op: String,
    /// The algorithm the ranks used (`ring`, `latency-optimal`; several joined by `+` if the ranks
    /// disagree).
    pub algorithm: String,
    /// nccl-tests' message size, bytes.
    pub size_bytes: u64,
    /// Elements (f32) of the message: `size_bytes / 4`.
    pub count: u64,
    /// Ranks of the phase (its members), the n of the bus factor.
    pub ranks: usize,
    /// Ranks that reported this op at this size.
    pub ranks_reported: usize,
    /// Timed iterations, the fewest of any rank.
    pub iterations: u32,
    /// The slowest rank's mean time of one operation, µs.
    pub time_us: f64,
    /// The node of the slowest rank.
    pub slowest: String,
    /// size / time and algbw × bus factor, GB/s (nccl-tests' definitions,
    /// [`hallmark_protocol::fabric::bandwidths`]).
    pub algbw_gb_s: f64,
    pub busbw_gb_s: f64,
    /// Wrong output elements, summed over the ranks.
    pub wrong_elements: u64,
    /// The nodes whose rank found wrong elements.
    pub wrong_nodes: Vec<String>,
    /// Members that did not report this op at this size.
    pub missing: Vec<String>,
}

/// Something a fabric phase could not do on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub node: String,
    /// The peer to blame, if any.
    pub peer: Option<String>,
    pub message: String,
}
