//! Gaps in a run's telemetry: stretches in which a node's samples are missing, and why. One at a
//! time ([`Store::record_gap`]) or many in one write ([`Store::record_gaps`]): an overloaded hall
//! declares thousands a second, and a transaction for each would cost the store more than the
//! telemetry around them.

use crate::db::Value;
use crate::error::{to_i64, StoreError};
use crate::model::RunId;
use crate::store::Store;
use hallmark_protocol::NodeId;

/// A gap to store: node `node_id` has no telemetry in `[from_ns, to_ns]`, `instants` sampling
/// instants (when counted), for `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGap {
    pub node_id: NodeId,
    pub from_ns: i64,
    pub to_ns: i64,
    pub instants: Option<u64>,
    pub reason: String,
}

impl Store {
    /// Records a stretch `[from_ns, to_ns]` in which a node's telemetry is missing, and why.
    pub fn record_gap(
        &mut self,
        run: &RunId,
        node: &NodeId,
        from_ns: i64,
        to_ns: i64,
        instants: Option<u64>,
        reason: &str,
    ) -> Result<(), StoreError> {
        let gap = NewGap {
            node_id: node.clone(),
            from_ns,
            to_ns,
            instants,
            reason: reason.to_string(),
        };
        self.record_gaps(run, std::slice::from_ref(&gap))
    }

    /// Records `gaps` in one write, all or none: one transaction on SQLite, one `COPY` on
    /// PostgreSQL. A gap that ends before it starts ([`StoreError::Invalid`]) or names a node that
    /// is not in the run ([`StoreError::UnknownNode`]) refuses the whole call before anything is
    /// written; the caller may then store the others one by one.
    pub fn record_gaps(&mut self, run: &RunId, gaps: &[NewGap]) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(gaps.len());
        for g in gaps {
            if g.to_ns < g.from_ns {
                return Err(StoreError::invalid(
                    "gap",
                    format!("it ends ({}) before it starts ({})", g.to_ns, g.from_ns),
                ));
            }
            self.node_key(run, &g.node_id)?;
            let instants = g.instants.map_or(Ok(Value::Null), |n| {
                to_i64("gap instants", n).map(Value::I64)
            })?;
            rows.push(vec![
                run.as_str().into(),
                g.node_id.as_str().into(),
                g.from_ns.into(),
                g.to_ns.into(),
                g.reason.as_str().into(),
                instants,
            ]);
        }
        if rows.is_empty() {
            return Ok(());
        }
        self.db
            .insert_rows(
                "gaps",
                &[
                    "run_id", "node_id", "from_ns", "to_ns", "reason", "instants",
                ],
                rows,
            )
            .map_err(self.db_err("storing gaps"))?;
        Ok(())
    }
}
