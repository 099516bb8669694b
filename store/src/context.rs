//! What makes two runs comparable ([`Store::run_context`]): the plan as run (its SHA-256), the
//! versions of hallmark that ran it, its halls, the spec it was last certified against, and the
//! inventory (probes and devices), as one flat record for `hallmark compare` to judge and to show
//! as a diff. Each probe carries the driver and library versions its Hello listed (CUDA driver,
//! NVML, cuBLAS, kernel; `crate::software`), so that the diff shows when they changed.

use crate::error::StoreError;
use crate::model::RunRow;
use crate::runs::{RawRunRow, RUN_ROW_COLUMNS};
use crate::store::Store;
use serde::{Deserialize, Serialize};

/// A run's context (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunContext {
    pub run: RunRow,
    /// SHA-256 of the plan file as run, lowercase hex.
    pub plan_sha256: String,
    /// The coordinator's hallmark version.
    pub hallmark_version: String,
    /// The run's halls, sorted, each once: `runs.hall` and its probes' hall labels.
    pub halls: Vec<String>,
    /// The spec of the run's latest certification (the latest `certified_at_ns`), if it has one.
    pub spec_name: Option<String>,
    /// SHA-256 of that spec file, lowercase hex.
    pub spec_sha256: Option<String>,
    /// The registered probes, in hall, row, rack, node order.
    pub probes: Vec<ContextProbe>,
    /// The device inventory, in node, device order.
    pub devices: Vec<ContextDevice>,
}

/// A registered probe of a run's context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextProbe {
    pub node_id: String,
    /// `sim`, `cpu`, `cuda`.
    pub backend: String,
    /// The probe's hallmark version.
    pub hallmark_version: String,
    pub hall: String,
    pub row: String,
    pub rack: String,
    /// The versions of the software under its load as (name, version), sorted by name: what its
    /// Hello listed (empty for a probe that listed none, or one from before schema version 8).
    #[serde(default)]
    pub software: Vec<(String, String)>,
}

/// A device of a run's context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextDevice {
    pub node_id: String,
    /// Index on the node, as the backend numbers it.
    pub device: u16,
    /// `gpu`, `simulated_gpu`, `cpu_socket`.
    pub kind: String,
    pub model: String,
    /// GPU UUID, or a derived id for simulated devices.
    pub uuid: String,
    pub serial: Option<String>,
    /// Enforced power limit, W.
    pub power_limit_w: Option<f64>,
}

impl Store {
    /// The context of run `run_id`; an unknown run is [`StoreError::UnknownRun`].
    pub fn run_context(&self, run_id: &str) -> Result<RunContext, StoreError> {
        let head = self
            .db
            .query_opt(
                &format!(
                    "SELECT {RUN_ROW_COLUMNS}, r.plan_sha256, r.hallmark_version FROM runs r \
                     WHERE r.run_id = ?1"
                ),
                &[run_id.into()],
                |r| Ok((RawRunRow::read(r)?, r.text(10)?, r.text(11)?)),
            )
            .map_err(self.db_err("reading a run's context"))?;
        let Some((raw, plan_sha256, hallmark_version)) = head else {
            return Err(StoreError::UnknownRun {
                path: self.path.clone(),
                run_id: run_id.to_string(),
            });
        };
        let run = raw.into_row(&self.path)?;
        let halls = self.run_halls(run_id, run.hall.as_deref())?;
        let spec = self
            .db
            .query_opt(
                "SELECT spec_name, spec_sha256 FROM certifications WHERE run_id = ?1 \
                 ORDER BY certified_at_ns DESC, certification_id DESC LIMIT 1",
                &[run_id.into()],
                |r| Ok((r.text(0)?, r.text(1)?)),
            )
            .map_err(self.db_err("reading a run's latest certification"))?;
        let (spec_name, spec_sha256) = spec.unzip();
        Ok(RunContext {
            run,
            plan_sha256,
            hallmark_version,
            halls,
            spec_name,
            spec_sha256,
            probes: self.context_probes(run_id)?,
            devices: self.context_devices(run_id)?,
        })
    }

    fn context_probes(&self, run_id: &str) -> Result<Vec<ContextProbe>, StoreError> {
        let mut software = self.probe_software(run_id)?;
        let mut probes = self
            .db
            .query_map(
                "SELECT node_id, backend, hallmark_version, hall, row, rack FROM probes \
                 WHERE run_id = ?1 ORDER BY hall, row, rack, node_id",
                &[run_id.into()],
                |r| {
                    Ok(ContextProbe {
                        node_id: r.text(0)?,
                        backend: r.text(1)?,
                        hallmark_version: r.text(2)?,
                        hall: r.text(3)?,
                        row: r.text(4)?,
                        rack: r.text(5)?,
                        software: Vec::new(),
                    })
                },
            )
            .map_err(self.db_err("reading a run's probes"))?;
        for p in &mut probes {
            p.software = software.remove(&p.node_id).unwrap_or_default();
        }
        Ok(probes)
    }

    fn context_devices(&self, run_id: &str) -> Result<Vec<ContextDevice>, StoreError> {
        self.db
            .query_map(
                "SELECT node_id, device, kind, model, uuid, serial, power_limit_w FROM devices \
                 WHERE run_id = ?1 ORDER BY node_id, device",
                &[run_id.into()],
                |r| {
                    Ok(ContextDevice {
                        node_id: r.text(0)?,
                        device: r.int(1)?,
                        kind: r.text(2)?,
                        model: r.text(3)?,
                        uuid: r.text(4)?,
                        serial: r.opt_text(5)?,
                        power_limit_w: r.opt_f64(6)?,
                    })
                },
            )
            .map_err(self.db_err("reading a run's devices"))
    }
}
