//! The typed read API: a run's head, probes, devices, phases with their starts, reports and
//! results, gaps, events, and the report's provenance figures, each as flat records in a stable
//! order. The summaries, the spec evaluation and the report (`hallmark-results`,
//! `hallmark-report`) are built from these and from the telemetry scan ([`Store::scan_telemetry`]); none of
//! them sees a table.
//!
//! An unknown run gives empty lists here; [`Store::run`] says whether a run exists.

use crate::db::Backend;
use crate::error::StoreError;
use crate::model::RunStatus;
use crate::store::{parse_col, Store};
use std::collections::HashMap;

/// A stored run's own record (the table `runs`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub run_id: String,
    pub name: String,
    pub plan_name: String,
    pub plan_sha256: String,
    /// The plan file as run.
    pub plan_toml: String,
    /// The simulated hall's name, for a simulated run.
    pub hall: Option<String>,
    pub status: RunStatus,
    pub status_reason: Option<String>,
    pub started_at_ns: i64,
    pub ended_at_ns: Option<i64>,
    pub hallmark_version: String,
    /// Telemetry rate of the plan, Hz, as stored (checked by the reader).
    pub sample_hz: f64,
}

/// A registered probe, in hall, row, rack, node order.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRecord {
    /// The store's key of the node within the run (what [`crate::SampleRecord::node_key`] names).
    pub key: i64,
    pub node: String,
    pub hall: String,
    pub row: String,
    pub rack: String,
    pub backend: String,
    pub hallmark_version: String,
    pub registered_at_ns: i64,
    /// When the probe was declared lost, and why (`None`: never lost).
    pub lost: Option<(i64, String)>,
    /// Probe clock − coordinator clock, ns, with its ± uncertainty and round trip.
    pub clock_offset_ns: Option<i64>,
    pub clock_uncertainty_ns: Option<i64>,
    pub clock_rtt_ns: Option<i64>,
}

/// One device of the inventory, in node, device order.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    pub node: String,
    pub device: u16,
    /// `gpu`, `simulated_gpu`, `cpu_socket`.
    pub kind: String,
    pub model: String,
    pub power_limit_w: Option<f64>,
    pub slowdown_temp_c: Option<f64>,
    pub max_operating_temp_c: Option<f64>,
}

/// A phase as scheduled, in start order.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseRecord {
    pub phase_id: u32,
    pub name: String,
    pub workload: String,
    pub scheduled_start_ns: i64,
    /// As stored (a negative value is the reader's to judge).
    pub duration_ms: i64,
}

/// A node's actual start of a phase.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseStartRecord {
    pub phase_id: u32,
    pub node: String,
    pub actual_start_ns: i64,
}

/// A node's report of a phase, with the sums of its devices' results, in phase, node order.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseReportRecord {
    pub phase_id: u32,
    pub node: String,
    /// Why the node stopped the phase early, if it did.
    pub stopped_early: Option<String>,
    /// Σ GFLOP/s of the node's devices (`None`: no device reported any).
    pub gflops: Option<f64>,
    /// Σ wrong elements of the node's devices (0 when none reported any).
    pub wrong_elements: i64,
}

/// One device's result in one phase (the table `phase_results`).
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseResultRecord {
    pub phase_id: u32,
    pub node: String,
    pub device: u16,
    pub gflops: Option<f64>,
    pub wrong_elements: Option<i64>,
}

/// A stretch of time a node's telemetry is missing, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct GapRecord {
    pub node: String,
    pub from_ns: i64,
    pub to_ns: i64,
    pub reason: String,
    /// Sampling instants missed, as the probe counted them; `None` when not counted (batches that
    /// never arrived, or a gap stored before schema 6).
    pub instants: Option<u64>,
}

/// A logged event, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub t_ns: i64,
    pub node: Option<String>,
    pub kind: String,
    pub message: String,
}

impl Store {
    /// The run's own record, or `None` for an unknown id. A stored status that cannot be read is
    /// [`StoreError::Corrupt`].
    pub fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        type Head = (
            RunRecord,
            String, // status
        );
        let head: Option<Head> = self
            .db
            .query_opt(
                "SELECT run_id, name, plan_name, plan_sha256, plan_toml, hall, status, status_reason, \
                 started_at_ns, ended_at_ns, hallmark_version, sample_hz FROM runs WHERE run_id = ?1",
                &[run_id.into()],
                |r| {
                    Ok((
                        RunRecord {
                            run_id: r.text(0)?,
                            name: r.text(1)?,
                            plan_name: r.text(2)?,
                            plan_sha256: r.text(3)?,
                            plan_toml: r.text(4)?,
                            hall: r.opt_text(5)?,
                            status: RunStatus::Running,
                            status_reason: r.opt_text(7)?,
                            started_at_ns: r.i64(8)?,
                            ended_at_ns: r.opt_i64(9)?,
                            hallmark_version: r.text(10)?,
                            sample_hz: r.f64(11)?,
                        },
                        r.text(6)?,
                    ))
                },
            )
            .map_err(self.db_err("reading a run"))?;
        let Some((mut run, status)) = head else {
            return Ok(None);
        };
        run.status = parse_col(&self.path, "run status", &status)?;
        Ok(Some(run))
    }

    /// Whether run `run_id` is stored (its record is not read).
    pub fn has_run(&self, run_id: &str) -> Result<bool, StoreError> {
        let found = self
            .db
            .query_opt(
                "SELECT 1 FROM runs WHERE run_id = ?1",
                &[run_id.into()],
                |_| Ok(()),
            )
            .map_err(self.db_err("looking up a run"))?;
        Ok(found.is_some())
    }

    /// The run's record; an unknown id is [`StoreError::UnknownRun`].
    pub fn run_known(&self, run_id: &str) -> Result<RunRecord, StoreError> {
        self.run(run_id)?.ok_or_else(|| StoreError::UnknownRun {
            path: self.path.clone(),
            run_id: run_id.to_string(),
        })
    }

    /// The run's probes, in hall, row, rack, node order.
    pub fn probes(&self, run_id: &str) -> Result<Vec<ProbeRecord>, StoreError> {
        self.db
            .query_map(
                "SELECT node_key, node_id, hall, row, rack, backend, hallmark_version, registered_at_ns, \
                 lost_at_ns, lost_reason, clock_offset_ns, clock_uncertainty_ns, clock_rtt_ns \
                 FROM probes WHERE run_id = ?1 ORDER BY hall, row, rack, node_id",
                &[run_id.into()],
                |r| {
                    let lost_at = r.opt_i64(8)?;
                    let lost_reason = r.opt_text(9)?;
                    Ok(ProbeRecord {
                        key: r.i64(0)?,
                        node: r.text(1)?,
                        hall: r.text(2)?,
                        row: r.text(3)?,
                        rack: r.text(4)?,
                        backend: r.text(5)?,
                        hallmark_version: r.text(6)?,
                        registered_at_ns: r.i64(7)?,
                        lost: lost_at.map(|at| (at, lost_reason.unwrap_or_default())),
                        clock_offset_ns: r.opt_i64(10)?,
                        clock_uncertainty_ns: r.opt_i64(11)?,
                        clock_rtt_ns: r.opt_i64(12)?,
                    })
                },
            )
            .map_err(self.db_err("reading probes"))
    }

    /// The run's device inventory, in node, device order.
    pub fn devices(&self, run_id: &str) -> Result<Vec<DeviceRecord>, StoreError> {
        self.db
            .query_map(
                "SELECT node_id, device, kind, model, power_limit_w, slowdown_temp_c, max_operating_temp_c \
                 FROM devices WHERE run_id = ?1 ORDER BY node_id, device",
                &[run_id.into()],
                |r| {
                    Ok(DeviceRecord {
                        node: r.text(0)?,
                        device: r.int(1)?,
                        kind: r.text(2)?,
                        model: r.text(3)?,
                        power_limit_w: r.opt_f64(4)?,
                        slowdown_temp_c: r.opt_f64(5)?,
                        max_operating_temp_c: r.opt_f64(6)?,
                    })
                },
            )
            .map_err(self.db_err("reading devices"))
    }

    /// The run's phases, in scheduled start order (then id).
    pub fn phases(&self, run_id: &str) -> Result<Vec<PhaseRecord>, StoreError> {
        self.db
            .query_map(
                "SELECT phase_id, name, workload, scheduled_start_ns, duration_ms FROM phases \
                 WHERE run_id = ?1 ORDER BY scheduled_start_ns, phase_id",
                &[run_id.into()],
                |r| {
                    Ok(PhaseRecord {
                        phase_id: r.int(0)?,
                        name: r.text(1)?,
                        workload: r.text(2)?,
                        scheduled_start_ns: r.i64(3)?,
                        duration_ms: r.i64(4)?,
                    })
                },
            )
            .map_err(self.db_err("reading phases"))
    }

    /// Each node's actual start of each phase, in stored order.
    pub fn phase_starts(&self, run_id: &str) -> Result<Vec<PhaseStartRecord>, StoreError> {
        self.db
            .query_map(
                "SELECT phase_id, node_id, actual_start_ns FROM phase_starts WHERE run_id = ?1",
                &[run_id.into()],
                |r| {
                    Ok(PhaseStartRecord {
                        phase_id: r.int(0)?,
                        node: r.text(1)?,
                        actual_start_ns: r.i64(2)?,
                    })
                },
            )
            .map_err(self.db_err("reading phase starts"))
    }

    /// The nodes' phase reports with their devices' summed results, in phase, node order.
    ///
    /// GFLOP/s are summed here, in device order, not by SQL's `sum`: SQLite's sums floats with
    /// compensation (Kahan–Babuška–Neumaier) and PostgreSQL's does not, so the same rows would give
    /// sums a last bit apart on the two backends.
    pub fn phase_reports(&self, run_id: &str) -> Result<Vec<PhaseReportRecord>, StoreError> {
        let mut gflops: HashMap<(u32, String), f64> = HashMap::new();
        self.db
            .for_each(
                "SELECT phase_id, node_id, gflops FROM phase_results \
                 WHERE run_id = ?1 AND gflops IS NOT NULL ORDER BY phase_id, node_id, device",
                &[run_id.into()],
                |r| {
                    *gflops.entry((r.int(0)?, r.text(1)?)).or_insert(0.0) += r.f64(2)?;
                    Ok(())
                },
            )
            .map_err(self.db_err("reading phase results"))?;
        self.db
            .query_map(
                "SELECT r.phase_id, r.node_id, r.stopped_early, \
                 (SELECT CAST(coalesce(sum(x.wrong_elements), 0) AS BIGINT) FROM phase_results x \
                    WHERE x.run_id = r.run_id AND x.phase_id = r.phase_id AND x.node_id = r.node_id) \
                 FROM phase_reports r WHERE r.run_id = ?1 ORDER BY r.phase_id, r.node_id",
                &[run_id.into()],
                |r| {
                    let (phase_id, node) = (r.int(0)?, r.text(1)?);
                    Ok(PhaseReportRecord {
                        gflops: gflops.get(&(phase_id, node.clone())).copied(),
                        phase_id,
                        node,
                        stopped_early: r.opt_text(2)?,
                        wrong_elements: r.i64(3)?,
                    })
                },
            )
            .map_err(self.db_err("reading phase reports"))
    }

    /// Every device's result in every phase, in stored order.
    pub fn phase_results(&self, run_id: &str) -> Result<Vec<PhaseResultRecord>, StoreError> {
        self.db
            .query_map(
                "SELECT phase_id, node_id, device, gflops, wrong_elements FROM phase_results \
                 WHERE run_id = ?1",
                &[run_id.into()],
                |r| {
                    Ok(PhaseResultRecord {
                        phase_id: r.int(0)?,
                        node: r.text(1)?,
                        device: r.int(2)?,
                        gflops: r.opt_f64(3)?,
                        wrong_elements: r.opt_i64(4)?,
                    })
                },
            )
            .map_err(self.db_err("reading phase results"))
    }

    /// The run's telemetry gaps, in time, node order.
    pub fn gaps(&self, run_id: &str) -> Result<Vec<GapRecord>, StoreError> {
        self.db
            .query_map(
                "SELECT node_id, from_ns, to_ns, reason, instants FROM gaps WHERE run_id = ?1 \
                 ORDER BY from_ns, node_id",
                &[run_id.into()],
                |r| {
                    Ok(GapRecord {
                        node: r.text(0)?,
                        from_ns: r.i64(1)?,
                        to_ns: r.i64(2)?,
                        reason: r.text(3)?,
                        instants: r.opt_int(4)?,
                    })
                },
            )
            .map_err(self.db_err("reading gaps"))
    }

    /// The run's events, in time order (then logging order).
    pub fn events(&self, run_id: &str) -> Result<Vec<EventRecord>, StoreError> {
        self.db
            .query_map(
                "SELECT t_ns, node_id, kind, message FROM events WHERE run_id = ?1 ORDER BY t_ns, event_id",
                &[run_id.into()],
                |r| {
                    Ok(EventRecord {
                        t_ns: r.i64(0)?,
                        node: r.opt_text(1)?,
                        kind: r.text(2)?,
                        message: r.text(3)?,
                    })
                },
            )
            .map_err(self.db_err("reading events"))
    }

    /// Rows of the version 1 table `phase_histograms` for the run, which the schema upgrade keeps
    /// only when it is not empty (hallmark never wrote it; fabric data is in the `fabric_*` tables).
    /// Whether the table exists is asked of each backend's own catalog.
    pub fn legacy_histograms(&self, run_id: &str) -> Result<u64, StoreError> {
        let e = |op| self.db_err(op);
        let catalog = match self.db.backend() {
            Backend::Sqlite => {
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'phase_histograms'"
            }
            Backend::Postgres => {
                "SELECT count(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = 'phase_histograms'"
            }
        };
        let legacy = self
            .db
            .query_opt(catalog, &[], |r| r.i64(0))
            .map_err(e("looking for legacy histograms"))?;
        if legacy.unwrap_or(0) == 0 {
            return Ok(0);
        }
        let n = self
            .db
            .query_opt(
                "SELECT count(*) FROM phase_histograms WHERE run_id = ?1",
                &[run_id.into()],
                |r| r.i64(0),
            )
            .map_err(e("reading legacy histograms"))?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// The latest instant any stored telemetry batch of the run reaches, ns (`None`: no batch).
    pub fn last_data_ns(&self, run_id: &str) -> Result<Option<i64>, StoreError> {
        let max = self
            .db
            .query_opt(
                "SELECT max(to_ns) FROM telemetry_batches WHERE run_id = ?1",
                &[run_id.into()],
                |r| r.opt_i64(0),
            )
            .map_err(self.db_err("reading the batch index"))?;
        Ok(max.flatten())
    }
}
