//! Storing fabric phases: the members ([`Store::fabric_members`]) and the fabric part of a phase
//! report ([`prepare`] checks and decodes it before the report's transaction, [`write_report_fabric`]
//! writes it inside that transaction).

use crate::db::{Db, DbError, Value};
use crate::error::{to_i64, StoreError};
use crate::hist::{decode, NsPercentiles};
use crate::model::RunId;
use crate::store::Store;
use hallmark_protocol::{FabricMember, FabricReport, NodeId};
use std::collections::BTreeSet;

/// One latency pair, checked, with its percentiles.
pub(crate) struct PreparedPair {
    dst: String,
    sent: i64,
    lost: i64,
    rtt: Option<NsPercentiles>,
    blob: Vec<u8>,
}

/// One collective result, checked.
pub(crate) struct PreparedCollective {
    op: &'static str,
    algorithm: &'static str,
    size_bytes: i64,
    iterations: u32,
    world: u32,
    mean_ns: i64,
    wrong_elements: i64,
}

/// The fabric part of a phase report, checked and ready to write.
pub(crate) struct PreparedFabric {
    latency: Vec<PreparedPair>,
    collectives: Vec<PreparedCollective>,
    faults: Vec<(Option<String>, String)>,
}

fn invalid(what: &'static str, detail: String) -> StoreError {
    StoreError::Invalid { what, detail }
}

fn count(v: u64) -> Result<i64, StoreError> {
    to_i64("fabric report count", v)
}

/// Checks the fabric report `f` of node `node` and decodes its histograms; nothing is written. A
/// pair whose source is not `node`, a pair or collective given twice, more packets lost than sent,
/// and a histogram that does not decode are refused, naming the pair and what is wrong.
pub(crate) fn prepare(
    run: &RunId,
    phase_id: u32,
    node: &NodeId,
    f: &FabricReport,
) -> Result<PreparedFabric, StoreError> {
    let at =
        |what: &str| format!("{what} in node {node}'s report of phase {phase_id} of run {run}");
    let mut latency = Vec::with_capacity(f.latency.len());
    let mut seen = BTreeSet::new();
    for p in &f.latency {
        let pair = format!("pair {}→{}", p.src, p.dst);
        if &p.src != node {
            return Err(invalid(
                "latency pair",
                format!(
                    "{}: a node reports only the pairs it initiated (source {node}); the probe sent \
                     another node's pair, so the report is not stored",
                    at(&pair)
                ),
            ));
        }
        if !seen.insert(p.dst.as_str()) {
            return Err(invalid(
                "latency pair",
                format!("{} is given twice; the report is not stored", at(&pair)),
            ));
        }
        if p.lost > p.sent {
            return Err(invalid(
                "latency pair",
                format!(
                    "{}: {} packets lost of {} sent; the report is not stored",
                    at(&pair),
                    p.lost,
                    p.sent
                ),
            ));
        }
        let hist = decode(&p.rtt_ns_hist).map_err(|why| {
            invalid(
                "latency histogram",
                format!(
                    "the round-trip histogram of {} does not decode as an HDR histogram (V2 + \
                     deflate): {why}; nothing of the report is stored — check that the probe runs \
                     this hallmark version",
                    at(&pair)
                ),
            )
        })?;
        latency.push(PreparedPair {
            dst: p.dst.to_string(),
            sent: count(p.sent)?,
            lost: count(p.lost)?,
            rtt: NsPercentiles::of(&hist),
            blob: p.rtt_ns_hist.clone(),
        });
    }
    let mut collectives = Vec::with_capacity(f.collectives.len());
    let mut seen = BTreeSet::new();
    for c in &f.collectives {
        if !seen.insert((c.op, c.size_bytes)) {
            return Err(invalid(
                "collective result",
                format!(
                    "{} at {} bytes is given twice; the report is not stored",
                    at(c.op.name()),
                    c.size_bytes
                ),
            ));
        }
        collectives.push(PreparedCollective {
            op: c.op.name(),
            algorithm: c.algorithm.name(),
            size_bytes: count(c.size_bytes)?,
            iterations: c.iterations,
            world: c.world,
            mean_ns: count(c.mean_ns)?,
            wrong_elements: count(c.wrong_elements)?,
        });
    }
    let faults = f
        .faults
        .iter()
        .map(|x| (x.peer.as_ref().map(|p| p.to_string()), x.message.clone()))
        .collect();
    Ok(PreparedFabric {
        latency,
        collectives,
        faults,
    })
}

/// Replaces node `node`'s fabric rows of the phase with `fabric` (none: just removes them). Runs in
/// the report's transaction, after its `phase_reports` row.
pub(crate) fn write_report_fabric(
    db: &mut Db,
    run: &RunId,
    phase_id: u32,
    node: &NodeId,
    fabric: Option<&PreparedFabric>,
) -> Result<(), DbError> {
    let key: [Value; 3] = [run.as_str().into(), phase_id.into(), node.as_str().into()];
    for table in ["fabric_latency", "fabric_collectives", "fabric_faults"] {
        let column = if table == "fabric_latency" {
            "src"
        } else {
            "node_id"
        };
        db.execute(
            &format!("DELETE FROM {table} WHERE run_id = ?1 AND phase_id = ?2 AND {column} = ?3"),
            &key,
        )?;
    }
    let Some(f) = fabric else {
        return Ok(());
    };
    // Histogram values are at most u64::MAX; SQLite integers are i64: clamp (no RTT comes near).
    let ns = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for p in &f.latency {
        let r = p.rtt;
        db.execute(
            "INSERT INTO fabric_latency (run_id, phase_id, src, dst, sent, lost, rtt_count, rtt_p50_ns, \
             rtt_p99_ns, rtt_p999_ns, rtt_max_ns, rtt_ns_hist) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            &[
                run.as_str().into(),
                phase_id.into(),
                node.as_str().into(),
                p.dst.as_str().into(),
                p.sent.into(),
                p.lost.into(),
                r.map_or(0, |r| ns(r.count)).into(),
                r.map(|r| ns(r.p50)).into(),
                r.map(|r| ns(r.p99)).into(),
                r.map(|r| ns(r.p999)).into(),
                r.map(|r| ns(r.max)).into(),
                p.blob.clone().into(),
            ],
        )?;
    }
    for c in &f.collectives {
        db.execute(
            "INSERT INTO fabric_collectives (run_id, phase_id, node_id, op, size_bytes, algorithm, \
             iterations, world, mean_ns, wrong_elements) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            &[
                run.as_str().into(),
                phase_id.into(),
                node.as_str().into(),
                c.op.into(),
                c.size_bytes.into(),
                c.algorithm.into(),
                c.iterations.into(),
                c.world.into(),
                c.mean_ns.into(),
                c.wrong_elements.into(),
            ],
        )?;
    }
    for (peer, message) in &f.faults {
        db.execute(
            "INSERT INTO fabric_faults (run_id, phase_id, node_id, peer, message) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            &[
                run.as_str().into(),
                phase_id.into(),
                node.as_str().into(),
                peer.clone().into(),
                message.clone().into(),
            ],
        )?;
    }
    Ok(())
}

impl Store {
    /// Stores the members of fabric phase `phase_id` in rank order (rank = position in `members`),
    /// replacing any stored before: calling it again with the same members changes nothing. The
    /// phase must be stored ([`Store::add_phase`]) and every member registered
    /// ([`Store::add_probe`]); a node listed twice is refused.
    pub fn fabric_members(
        &mut self,
        run: &RunId,
        phase_id: u32,
        members: &[FabricMember],
    ) -> Result<(), StoreError> {
        let mut seen = BTreeSet::new();
        for m in members {
            self.node_key(run, &m.node_id)?;
            if !seen.insert(&m.node_id) {
                return Err(invalid(
                    "fabric members",
                    format!(
                        "node {} is listed twice among the members of phase {phase_id} of run {run}",
                        m.node_id
                    ),
                ));
            }
        }
        let res = self.db.transaction(|db| {
            db.execute(
                "DELETE FROM fabric_members WHERE run_id = ?1 AND phase_id = ?2",
                &[run.as_str().into(), phase_id.into()],
            )?;
            for (rank, m) in members.iter().enumerate() {
                db.execute(
                    "INSERT INTO fabric_members (run_id, phase_id, rank, node_id, addr) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    &[
                        run.as_str().into(),
                        phase_id.into(),
                        (rank as i64).into(),
                        m.node_id.as_str().into(),
                        m.addr.to_string().into(),
                    ],
                )?;
            }
            Ok::<_, DbError>(())
        });
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.is_constraint_violation() => Err(invalid(
                "phase id",
                format!(
                    "phase {phase_id} of run {run} is not stored; store it with add_phase before \
                     its fabric members"
                ),
            )),
            Err(e) => Err(StoreError::db(&self.path, "storing fabric members", e)),
        }
    }
}
