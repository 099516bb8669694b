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
        // A comparison is summed through CASE: PostgreSQL does not add booleans. A NULL condition
        // (a device without its probe) counts 0, as SQLite's sum skips the NULL.
        let (devices, simulated_devices) = self
            .db
            .query_opt(
                "SELECT count(*), CAST(coalesce(sum(CASE WHEN d.kind = 'simulated_gpu' OR p.backend = 'sim' \
                 THEN 1 ELSE 0 END), 0) AS BIGINT) \
                 FROM devices d LEFT JOIN probes p ON p.run_id = d.run_id AND p.node_id = d.node_id \
                 WHERE d.run_id = ?1",
                &[run_id.into()],
                |r| Ok((r.i64(0)?, r.i64(1)?)),
            )
            .map_err(self.db_err("reading which devices were simulated"))?
            .unwrap_or((0, 0));
        let (nodes, simulated_nodes) = self
            .db
            .query_opt(
                "SELECT count(*), CAST(coalesce(sum(CASE WHEN p.backend = 'sim' OR EXISTS (SELECT 1 \
                 FROM devices d WHERE d.run_id = p.run_id AND d.node_id = p.node_id \
                 AND d.kind = 'simulated_gpu') THEN 1 ELSE 0 END), 0) AS BIGINT) \
                 FROM probes p WHERE p.run_id = ?1",
                &[run_id.into()],
                |r| Ok((r.i64(0)?, r.i64(1)?)),
            )
            .map_err(self.db_err("reading which nodes were simulated"))?
            .unwrap_or((0, 0));
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Simulation {
            simulated_devices: n(simulated_devices),
            devices: n(devices),
            simulated_nodes: n(simulated_nodes),
            nodes: n(nodes),
        })
    }
}
