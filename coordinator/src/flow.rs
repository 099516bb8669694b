//! Back-pressure on telemetry, inside the state machine: how much of each probe's telemetry waits
//! for the store, and when its connection should stop (or resume) being read.
//!
//! Every batch handed to the store counts against the node's budget (samples plus node-power
//! readings) until the store acknowledges it. Past the budget the machine asks the shell to stop
//! reading the node's connection (QUIC flow control then holds the probe back); once the store has
//! caught up to half the budget, reading resumes. A batch the store refuses stops counting too
//! (it will never be acknowledged). Nothing is dropped: a probe keeps what is not acknowledged and
//! sends it again.

use crate::event::{ConnId, Outputs};
use hallmark_protocol::NodeId;
use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Default)]
struct NodeFlow {
    /// Batches handed to the store, not yet acknowledged: (seq, size).
    queued: VecDeque<(u64, u64)>,
    total: u64,
    /// The connection whose reading is paused, while it is.
    paused: Option<ConnId>,
}

/// Per-node accounting of unstored telemetry.
#[derive(Debug)]
pub(crate) struct Flow {
    budget: u64,
    nodes: BTreeMap<NodeId, NodeFlow>,
}

impl Flow {
    pub(crate) fn new(budget: u64) -> Self {
        Flow {
            budget: budget.max(1),
            nodes: BTreeMap::new(),
        }
    }

    /// A batch of `size` readings from `node` (on `conn`) went to the store.
    pub(crate) fn queued(
        &mut self,
        node: &NodeId,
        conn: ConnId,
        seq: u64,
        size: u64,
        out: &mut Outputs,
    ) {
        let f = self.nodes.entry(node.clone()).or_default();
        f.queued.push_back((seq, size));
        f.total = f.total.saturating_add(size);
        if f.total > self.budget && f.paused.is_none() {
            f.paused = Some(conn);
            out.reads.push_back((conn, false));
        }
    }

    /// The store is done with batch `seq` of `node`: stored (and acknowledged) or refused. A probe
    /// numbers its batches in the order it sends them and the recorder writes them in the order
    /// they were queued, so every batch numbered before `seq` is done with too (one the store
    /// refused gets no acknowledgement of its own): none of them counts any more. A replay of one
    /// of them, queued after a reconnect, stops counting a little early, which errs only towards
    /// reading.
    pub(crate) fn settled(&mut self, node: &NodeId, seq: u64, out: &mut Outputs) {
        let Some(f) = self.nodes.get_mut(node) else {
            return;
        };
        let mut freed = 0u64;
        f.queued.retain(|&(s, size)| {
            if s <= seq {
                freed = freed.saturating_add(size);
            }
            s > seq
        });
        f.total = f.total.saturating_sub(freed);
        if f.total <= self.budget / 2 {
            if let Some(conn) = f.paused.take() {
                out.reads.push_back((conn, true));
            }
        }
    }

    /// A new run: what an earlier run's store never acknowledged (it failed, or stopped) no longer
    /// counts, and every paused connection is read again.
    pub(crate) fn reset(&mut self, out: &mut Outputs) {
        for f in std::mem::take(&mut self.nodes).into_values() {
            if let Some(conn) = f.paused {
                out.reads.push_back((conn, true));
            }
        }
    }

    /// `node`'s connection is gone: a new one starts being read.
    pub(crate) fn departed(&mut self, node: &NodeId) {
        if let Some(f) = self.nodes.get_mut(node) {
            f.paused = None;
        }
    }

    /// Readings of every node waiting for the store.
    pub(crate) fn unstored(&self) -> u64 {
        self.nodes.values().map(|f| f.total).sum()
    }

    /// Readings of `node` waiting for the store.
    pub(crate) fn unstored_of(&self, node: &NodeId) -> u64 {
        self.nodes.get(node).map_or(0, |f| f.total)
    }
}
