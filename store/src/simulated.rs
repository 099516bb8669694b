//! Whether a run was (partly) simulated, from what the store knows about it: a node whose probe ran
//! the `sim` backend, or a device stored with kind `simulated_gpu`. A simulated device reports
//! modelled TFLOP/s and a result check that cannot fail, so every verdict, report, export and bundle
//! of such a run says SIMULATED ([`Simulation::banner`]), whatever its real devices measured.

use crate::error::StoreError;
use crate::store::Store;
use serde::{Deserialize, Serialize};

/// How much of a run was simulated. A run is simulated if any device or node is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Simulation {
    /// Devices of the run that are simulated (kind `simulated_gpu`, or on a `sim`-backend node).
    pub simulated_devices: u64,
    /// All devices of the run.
    pub devices: u64,
    /// Nodes whose probe ran the `sim` backend or has a simulated device.
    pub simulated_nodes: u64,
    /// All registered nodes of the run.
    pub nodes: u64,
}

impl Simulation {
    /// Whether any node or device of the run is simulated.
    pub fn is_simulated(&self) -> bool {
        self.simulated_devices > 0 || self.simulated_nodes > 0
    }

    /// The warning every output of a simulated run carries; `None` for a run of real devices only.
    pub fn banner(&self) -> Option<String> {
        self.is_simulated().then(|| {
            format!(
                "SIMULATED: {} of {} devices on {} of {} nodes are simulated (modelled TFLOP/s, \
                 result checks that cannot fail); these figures and verdicts do not certify hardware",
                self.simulated_devices, self.devices, self.simulated_nodes, self.nodes
            )
        })
    }
}

impl Store {
    /// How much of run `run_id` was simulated (all zero for an unknown run).
    pub fn simulation(&self, run_id: &str) -> Result<Simulation, StoreError> {
        let (devices, simulated_devices): (i64, i64) = self.sqlite()?
            .query_row(
                "SELECT count(*), coalesce(sum(d.kind = 'simulated_gpu' OR p.backend = 'sim'), 0) \
                 FROM devices d LEFT JOIN probes p ON p.run_id = d.run_id AND p.node_id = d.node_id \
                 WHERE d.run_id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.err("reading which devices were simulated"))?;
        let (nodes, simulated_nodes): (i64, i64) = self.sqlite()?
            .query_row(
                "SELECT count(*), coalesce(sum(p.backend = 'sim' OR EXISTS (SELECT 1 FROM devices d \
                 WHERE d.run_id = p.run_id AND d.node_id = p.node_id AND d.kind = 'simulated_gpu')), 0) \
                 FROM probes p WHERE p.run_id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.err("reading which nodes were simulated"))?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Simulation {
            simulated_devices: n(simulated_devices),
            devices: n(devices),
            simulated_nodes: n(simulated_nodes),
            nodes: n(nodes),
        })
    }
}
