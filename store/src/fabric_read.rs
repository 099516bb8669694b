//! Reading fabric phases back as flat records: the members of each phase, the latency of each
//! directed node pair (with or without its HDR histogram), collective results per node, and faults.
//! Summarising them (percentiles over pairs, slow nodes, bandwidths) is `hallmark-results`' work.

use crate::error::StoreError;
use crate::store::Store;

/// A member of a fabric phase, in phase, rank order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FabricMemberRecord {
    pub phase_id: u32,
    pub rank: u32,
    pub node: String,
    /// The data-plane address the coordinator gave the other members.
    pub addr: String,
}

/// One directed pair's round trips in one phase, in phase, src, dst order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyRecord {
    pub phase_id: u32,
    pub src: String,
    pub dst: String,
    pub sent: i64,
    pub lost: i64,
    /// Round trips recorded in the histogram.
    pub rtt_count: i64,
    /// Percentiles of the round trip, ns (`None` when none was recorded).
    pub rtt_p50_ns: Option<i64>,
    pub rtt_p99_ns: Option<i64>,
    pub rtt_p999_ns: Option<i64>,
    pub rtt_max_ns: Option<i64>,
    /// The HDR histogram as the probe sent it (V2 or V2 + deflate); empty when not asked for.
    pub rtt_ns_hist: Vec<u8>,
}

/// One node's result of one collective, in phase, op, size, node order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectiveRecord {
    pub phase_id: u32,
    pub node: String,
    pub op: String,
    pub size_bytes: i64,
    pub algorithm: String,
    pub iterations: i64,
    pub world: i64,
    pub mean_ns: i64,
    pub wrong_elements: i64,
}

/// Something a fabric phase could not do on a node, in phase, node, logging order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRecord {
    pub phase_id: u32,
    pub node: String,
    /// The peer to blame, if any.
    pub peer: Option<String>,
    pub message: String,
}

impl Store {
    /// The members of the run's fabric phases, in phase, rank order.
    pub fn fabric_members_of(&self, run_id: &str) -> Result<Vec<FabricMemberRecord>, StoreError> {
        self.db
            .query_map(
                "SELECT phase_id, rank, node_id, addr FROM fabric_members WHERE run_id = ?1 \
                 ORDER BY phase_id, rank",
                &[run_id.into()],
                |r| {
                    Ok(FabricMemberRecord {
                        phase_id: r.int(0)?,
                        rank: r.int(1)?,
                        node: r.text(2)?,
                        addr: r.text(3)?,
                    })
                },
            )
            .map_err(self.db_err("reading fabric members"))
    }

    /// The run's latency pairs, in phase, src, dst order; with `histograms` false the blobs are not
    /// read (left empty).
    pub fn fabric_latency(
        &self,
        run_id: &str,
        histograms: bool,
    ) -> Result<Vec<LatencyRecord>, StoreError> {
        let sql = if histograms {
            "SELECT phase_id, src, dst, sent, lost, rtt_count, rtt_p50_ns, rtt_p99_ns, rtt_p999_ns, \
             rtt_max_ns, rtt_ns_hist FROM fabric_latency WHERE run_id = ?1 \
             ORDER BY phase_id, src, dst"
        } else {
            "SELECT phase_id, src, dst, sent, lost, rtt_count, rtt_p50_ns, rtt_p99_ns, rtt_p999_ns, \
             rtt_max_ns FROM fabric_latency WHERE run_id = ?1 ORDER BY phase_id, src, dst"
        };
        self.db
            .query_map(sql, &[run_id.into()], |r| {
                Ok(LatencyRecord {
                    phase_id: r.int(0)?,
                    src: r.text(1)?,
                    dst: r.text(2)?,
                    sent: r.i64(3)?,
                    lost: r.i64(4)?,
                    rtt_count: r.i64(5)?,
                    rtt_p50_ns: r.opt_i64(6)?,
                    rtt_p99_ns: r.opt_i64(7)?,
                    rtt_p999_ns: r.opt_i64(8)?,
                    rtt_max_ns: r.opt_i64(9)?,
                    rtt_ns_hist: if histograms { r.blob(10)? } else { Vec::new() },
                })
            })
            .map_err(self.db_err("reading latency pairs"))
    }

    /// The run's collective results, in phase, op, size, node order.
    pub fn fabric_collectives(&self, run_id: &str) -> Result<Vec<CollectiveRecord>, StoreError> {
        self.db
            .query_map(
                "SELECT phase_id, node_id, op, size_bytes, algorithm, iterations, mean_ns, \
                 wrong_elements, world FROM fabric_collectives WHERE run_id = ?1 \
                 ORDER BY phase_id, op, size_bytes, node_id",
                &[run_id.into()],
                |r| {
                    Ok(CollectiveRecord {
                        phase_id: r.int(0)?,
                        node: r.text(1)?,
                        op: r.text(2)?,
                        size_bytes: r.i64(3)?,
                        algorithm: r.text(4)?,
                        iterations: r.i64(5)?,
                        mean_ns: r.i64(6)?,
                        wrong_elements: r.i64(7)?,
                        world: r.i64(8)?,
                    })
                },
            )
            .map_err(self.db_err("reading collective results"))
    }

    /// The run's fabric faults, in phase, node, logging order.
    pub fn fabric_faults(&self, run_id: &str) -> Result<Vec<FaultRecord>, StoreError> {
        self.db
            .query_map(
                "SELECT phase_id, node_id, peer, message FROM fabric_faults WHERE run_id = ?1 \
                 ORDER BY phase_id, node_id, fault_id",
                &[run_id.into()],
                |r| {
                    Ok(FaultRecord {
                        phase_id: r.int(0)?,
                        node: r.text(1)?,
                        peer: r.opt_text(2)?,
                        message: r.text(3)?,
                    })
                },
            )
            .map_err(self.db_err("reading fabric faults"))
    }
}
