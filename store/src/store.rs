//! [`Store`]: opening the database and the writer API the coordinator calls as a run goes on.
//!
//! The coordinator drives one `Store` from one task. Every call is one transaction. Telemetry ingest
//! (`insert_batch`, `insert_batches`) is in [`crate::telemetry`].

use crate::db::{Db, DbError};
use crate::error::{to_i64, StoreError};
use crate::fabric_write as fabric;
use crate::model::{event_kind, label_of, NewRun, PhaseRow, ProbeRow, RunId, RunStatus};
use hallmark_protocol::{ClockEstimate, DeviceInfo, NodeId, PhaseReport};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How many times `create_run` draws a new random suffix when an id is taken.
const RUN_ID_TRIES: usize = 16;

/// An open run store.
pub struct Store {
    pub(crate) db: Db,
    pub(crate) path: PathBuf,
    /// Runs known to exist, and the `node_key` of each of their registered probes.
    node_keys: HashMap<RunId, HashMap<NodeId, i64>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// A store over `db`, whose errors name `path` (a file, or a URL without password).
    pub(crate) fn from_db(db: Db, path: PathBuf) -> Store {
        Store {
            db,
            path,
            node_keys: HashMap::new(),
        }
    }

    /// The database file (for a PostgreSQL store: its URL without password).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long a statement waits for another process's lock before failing (SQLite: with
    /// [`StoreError::Locked`], default [`crate::BUSY_TIMEOUT`], 5 s; PostgreSQL: its
    /// `lock_timeout`, default none).
    pub fn set_busy_timeout(&mut self, timeout: std::time::Duration) -> Result<(), StoreError> {
        match self.db.sqlite() {
            Some(conn) => conn
                .busy_timeout(timeout)
                .map_err(self.err("setting the busy timeout")),
            None => {
                let ms = timeout.as_millis().max(1);
                let path = self.path.clone();
                self.db
                    .execute_batch(&format!("SET lock_timeout = {ms}"))
                    .map_err(|e| StoreError::db(&path, "setting the lock timeout", e))
            }
        }
    }

    /// Turns a rusqlite error of the code still written against rusqlite into a [`StoreError`].
    pub(crate) fn err(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| StoreError::sql(&self.path, op, e)
    }

    /// Turns an error of the connection interface into a [`StoreError`] naming the store and `op`.
    pub(crate) fn db_err(&self, op: &'static str) -> impl Fn(DbError) -> StoreError + '_ {
        move |e| StoreError::db(&self.path, op, e)
    }

    fn unknown_run(&self, run: &str) -> StoreError {
        StoreError::UnknownRun {
            path: self.path.clone(),
            run_id: run.to_string(),
        }
    }

    /// Fails with [`StoreError::UnknownRun`] unless `run` is stored.
    pub(crate) fn ensure_run(&mut self, run: &RunId) -> Result<(), StoreError> {
        if self.node_keys.contains_key(run) {
            return Ok(());
        }
        let found = self
            .db
            .query_opt(
                "SELECT 1 FROM runs WHERE run_id = ?1",
                &[run.as_str().into()],
                |_| Ok(()),
            )
            .map_err(self.db_err("looking up a run"))?;
        if found.is_none() {
            return Err(self.unknown_run(run.as_str()));
        }
        self.node_keys.insert(run.clone(), HashMap::new());
        Ok(())
    }

    /// The `node_key` of a registered probe.
    pub(crate) fn node_key(&mut self, run: &RunId, node: &NodeId) -> Result<i64, StoreError> {
        if let Some(key) = self.node_keys.get(run).and_then(|m| m.get(node)) {
            return Ok(*key);
        }
        self.ensure_run(run)?;
        let key: Option<i64> = self
            .db
            .query_opt(
                "SELECT node_key FROM probes WHERE run_id = ?1 AND node_id = ?2",
                &[run.as_str().into(), node.as_str().into()],
                |r| r.i64(0),
            )
            .map_err(self.db_err("looking up a probe"))?;
        let key = key.ok_or_else(|| StoreError::UnknownNode {
            run_id: run.to_string(),
            node_id: node.to_string(),
        })?;
        self.node_keys
            .entry(run.clone())
            .or_default()
            .insert(node.clone(), key);
        Ok(key)
    }

    /// Stores a new run with status `running` and returns its id.
    pub fn create_run(&mut self, run: &NewRun) -> Result<RunId, StoreError> {
        if !(run.sample_hz.is_finite() && run.sample_hz > 0.0) {
            return Err(StoreError::invalid(
                "sample_hz",
                format!(
                    "{} (must be a positive number of samples per second)",
                    run.sample_hz
                ),
            ));
        }
        let sha = Sha256::digest(run.plan_toml.as_bytes());
        let sha_hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        for _ in 0..RUN_ID_TRIES {
            let id = crate::time::new_run_id(run.started_at_ns);
            let inserted = self
                .db
                .execute(
                    "INSERT INTO runs (run_id, name, plan_name, plan_toml, plan_sha256, hall, started_at_ns, \
                     status, hallmark_version, sample_hz) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9) \
                     ON CONFLICT (run_id) DO NOTHING",
                    &[
                        id.as_str().into(),
                        run.name.as_str().into(),
                        run.plan_name.as_str().into(),
                        run.plan_toml.as_str().into(),
                        sha_hex.as_str().into(),
                        run.hall.as_deref().into(),
                        run.started_at_ns.into(),
                        run.hallmark_version.as_str().into(),
                        run.sample_hz.into(),
                    ],
                )
                .map_err(self.db_err("storing a new run"))?;
            if inserted == 1 {
                let id = RunId::new(id);
                self.node_keys.insert(id.clone(), HashMap::new());
                return Ok(id);
            }
        }
        Err(StoreError::invalid(
            "run id",
            format!("no free run id after {RUN_ID_TRIES} tries"),
        ))
    }

    /// Stores a registered probe. A probe that registers again in the same run (a reconnect) updates its
    /// row: labels, backend, version, address and clock are replaced, `lost_at_ns`/`lost_reason` are
    /// cleared (the loss stays in `events`), and the first `registered_at_ns` is kept.
    pub fn add_probe(&mut self, run: &RunId, probe: &ProbeRow) -> Result<(), StoreError> {
        self.ensure_run(run)?;
        let c = probe.clock;
        let key: Option<i64> = self
            .db
            .query_opt(
                "INSERT INTO probes (run_id, node_id, hall, row, rack, backend, hallmark_version, remote, \
                 registered_at_ns, clock_offset_ns, clock_uncertainty_ns, clock_rtt_ns, clock_measured_at_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                 ON CONFLICT (run_id, node_id) DO UPDATE SET hall = excluded.hall, row = excluded.row, \
                 rack = excluded.rack, backend = excluded.backend, hallmark_version = excluded.hallmark_version, \
                 remote = excluded.remote, \
                 clock_offset_ns = coalesce(excluded.clock_offset_ns, probes.clock_offset_ns), \
                 clock_uncertainty_ns = coalesce(excluded.clock_uncertainty_ns, probes.clock_uncertainty_ns), \
                 clock_rtt_ns = coalesce(excluded.clock_rtt_ns, probes.clock_rtt_ns), \
                 clock_measured_at_ns = coalesce(excluded.clock_measured_at_ns, probes.clock_measured_at_ns), \
                 lost_at_ns = NULL, lost_reason = NULL \
                 RETURNING node_key",
                &[
                    run.as_str().into(),
                    probe.node_id.as_str().into(),
                    probe.labels.hall.clone().into(),
                    probe.labels.row.clone().into(),
                    probe.labels.rack.clone().into(),
                    probe.backend.clone().into(),
                    probe.hallmark_version.clone().into(),
                    probe.remote.clone().into(),
                    probe.registered_at_ns.into(),
                    c.map(|c| c.offset_ns).into(),
                    c.map(|c| c.uncertainty_ns).into(),
                    c.map(|c| c.rtt_ns).into(),
                    c.map(|c| c.measured_at_ns).into(),
                ],
                |r| r.i64(0),
            )
            .map_err(self.db_err("storing a probe"))?;
        let key = key.ok_or_else(|| StoreError::Corrupt {
            path: self.path.clone(),
            detail: "storing a probe returned no node_key".into(),
        })?;
        self.node_keys
            .entry(run.clone())
            .or_default()
            .insert(probe.node_id.clone(), key);
        Ok(())
    }

    /// Replaces a probe's clock estimate with a newer one.
    pub fn update_clock(
        &mut self,
        run: &RunId,
        node: &NodeId,
        clock: &ClockEstimate,
    ) -> Result<(), StoreError> {
        let key = self.node_key(run, node)?;
        self.db
            .execute(
                "UPDATE probes SET clock_offset_ns = ?2, clock_uncertainty_ns = ?3, clock_rtt_ns = ?4, \
                 clock_measured_at_ns = ?5 WHERE node_key = ?1",
                &[
                    key.into(),
                    clock.offset_ns.into(),
                    clock.uncertainty_ns.into(),
                    clock.rtt_ns.into(),
                    clock.measured_at_ns.into(),
                ],
            )
            .map_err(self.db_err("updating a clock estimate"))?;
        Ok(())
    }

    /// Stores (or replaces) the inventory of a node.
    pub fn add_devices(
        &mut self,
        run: &RunId,
        node: &NodeId,
        devices: &[DeviceInfo],
    ) -> Result<(), StoreError> {
        self.node_key(run, node)?;
        let mut rows = Vec::with_capacity(devices.len());
        for d in devices {
            let memory = d
                .memory_bytes
                .map(|m| to_i64("memory_bytes", m))
                .transpose()?;
            rows.push((d, label_of("device kind", &d.kind)?, memory));
        }
        self.db
            .transaction(|db| {
                for (d, kind, memory) in &rows {
                    db.execute(
                        "INSERT INTO devices (run_id, node_id, device, kind, model, uuid, serial, \
                         memory_bytes, power_limit_w, idle_power_w, slowdown_temp_c, shutdown_temp_c, \
                         max_operating_temp_c) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                         ON CONFLICT (run_id, node_id, device) DO UPDATE SET kind = excluded.kind, \
                         model = excluded.model, uuid = excluded.uuid, serial = excluded.serial, \
                         memory_bytes = excluded.memory_bytes, power_limit_w = excluded.power_limit_w, \
                         idle_power_w = excluded.idle_power_w, slowdown_temp_c = excluded.slowdown_temp_c, \
                         shutdown_temp_c = excluded.shutdown_temp_c, \
                         max_operating_temp_c = excluded.max_operating_temp_c",
                        &[
                            run.as_str().into(),
                            node.as_str().into(),
                            d.index.into(),
                            kind.as_str().into(),
                            d.model.as_str().into(),
                            d.uuid.as_str().into(),
                            d.serial.as_deref().into(),
                            (*memory).into(),
                            d.power_limit_w.into(),
                            d.idle_power_w.into(),
                            d.slowdown_temp_c.into(),
                            d.shutdown_temp_c.into(),
                            d.max_operating_temp_c.into(),
                        ],
                    )?;
                }
                Ok(())
            })
            .map_err(self.db_err("storing devices"))
    }

    /// Stores a scheduled phase (or replaces it if the id is stored already).
    pub fn add_phase(&mut self, run: &RunId, phase: &PhaseRow) -> Result<(), StoreError> {
        self.ensure_run(run)?;
        let workload = label_of("workload", &phase.workload)?;
        let pattern = serde_json::to_string(&phase.pattern)
            .map_err(|e| StoreError::invalid("pattern", e.to_string()))?;
        let duration = to_i64("duration_ms", phase.duration_ms)?;
        self.db
            .execute(
                "INSERT INTO phases (run_id, phase_id, name, workload, pattern_json, scheduled_start_ns, \
                 duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (run_id, phase_id) DO UPDATE \
                 SET name = excluded.name, workload = excluded.workload, pattern_json = excluded.pattern_json, \
                 scheduled_start_ns = excluded.scheduled_start_ns, duration_ms = excluded.duration_ms",
                &[
                    run.as_str().into(),
                    phase.phase_id.into(),
                    phase.name.as_str().into(),
                    workload.into(),
                    pattern.into(),
                    phase.scheduled_start_ns.into(),
                    duration.into(),
                ],
            )
            .map_err(self.db_err("storing a phase"))?;
        Ok(())
    }

    fn unknown_phase(&self, run: &RunId, phase_id: u32, e: DbError) -> StoreError {
        if e.is_constraint_violation() {
            StoreError::invalid(
                "phase id",
                format!(
                    "phase {phase_id} of run {run} is not stored; store it with add_phase first"
                ),
            )
        } else {
            StoreError::db(&self.path, "storing phase data", e)
        }
    }

    /// Records the instant at which a node actually started a phase.
    pub fn phase_started(
        &mut self,
        run: &RunId,
        phase_id: u32,
        node: &NodeId,
        actual_start_ns: i64,
    ) -> Result<(), StoreError> {
        self.node_key(run, node)?;
        self.db
            .execute(
                "INSERT INTO phase_starts (run_id, phase_id, node_id, actual_start_ns) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (run_id, phase_id, node_id) DO UPDATE SET \
                 actual_start_ns = excluded.actual_start_ns",
                &[
                    run.as_str().into(),
                    phase_id.into(),
                    node.as_str().into(),
                    actual_start_ns.into(),
                ],
            )
            .map_err(|e| self.unknown_phase(run, phase_id, e))?;
        Ok(())
    }

    /// Stores what a phase achieved on a node, in one transaction: the report, each device's result
    /// and, for a fabric phase, its latency pairs, collective results and faults (`fabric_write.rs`;
    /// tables in `docs/SCHEMA.md`). A second report for the same phase and node replaces the first. A
    /// fabric report that does not check out (a histogram that does not decode, another node's
    /// pair) is refused with [`StoreError::Invalid`] and nothing of the report is written.
    pub fn phase_report(
        &mut self,
        run: &RunId,
        node: &NodeId,
        report: &PhaseReport,
    ) -> Result<(), StoreError> {
        self.node_key(run, node)?;
        let mut wrong = Vec::with_capacity(report.devices.len());
        for d in &report.devices {
            wrong.push(to_i64("wrong_elements", d.wrong_elements)?);
        }
        let phase_id = report.phase_id;
        let fabric = match &report.fabric {
            Some(f) => Some(fabric::prepare(run, phase_id, node, f)?),
            None => None,
        };
        let res = self.db.transaction(|db| {
            write_report(db, run, node, report, &wrong)?;
            fabric::write_report_fabric(db, run, phase_id, node, fabric.as_ref())
        });
        res.map_err(|e| self.unknown_phase(run, phase_id, e))
    }

    /// Records that a probe's connection was lost: sets `lost_at_ns`/`lost_reason` and writes a
    /// `probe_lost` event.
    pub fn probe_lost(
        &mut self,
        run: &RunId,
        node: &NodeId,
        at_ns: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let key = self.node_key(run, node)?;
        self.db
            .transaction(|db| {
                db.execute(
                    "UPDATE probes SET lost_at_ns = ?2, lost_reason = ?3 WHERE node_key = ?1",
                    &[key.into(), at_ns.into(), reason.into()],
                )?;
                db.execute(
                    "INSERT INTO events (run_id, t_ns, node_id, kind, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                    &[
                        run.as_str().into(),
                        at_ns.into(),
                        node.as_str().into(),
                        event_kind::PROBE_LOST.into(),
                        reason.into(),
                    ],
                )?;
                Ok(())
            })
            .map_err(self.db_err("recording a lost probe"))
    }

    /// Records something that happened in the run (see [`event_kind`] for the kinds the store knows).
    pub fn event(
        &mut self,
        run: &RunId,
        t_ns: i64,
        node: Option<&NodeId>,
        kind: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        match node {
            Some(n) => {
                self.node_key(run, n)?;
            }
            None => self.ensure_run(run)?,
        }
        self.db
            .execute(
                "INSERT INTO events (run_id, t_ns, node_id, kind, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                &[
                    run.as_str().into(),
                    t_ns.into(),
                    node.map(|n| n.as_str()).into(),
                    kind.into(),
                    message.into(),
                ],
            )
            .map_err(self.db_err("storing an event"))?;
        Ok(())
    }

    /// Ends a run: sets `ended_at_ns`, the final status and why.
    pub fn finish_run(
        &mut self,
        run: &RunId,
        ended_at_ns: i64,
        status: RunStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = self
            .db
            .execute(
                "UPDATE runs SET ended_at_ns = ?2, status = ?3, status_reason = ?4 WHERE run_id = ?1",
                &[
                    run.as_str().into(),
                    ended_at_ns.into(),
                    status.as_str().into(),
                    reason.into(),
                ],
            )
            .map_err(self.db_err("finishing a run"))?;
        if n == 0 {
            return Err(self.unknown_run(run.as_str()));
        }
        Ok(())
    }

    /// Writes the WAL into the database file and truncates it (e.g. before copying the file). SQLite
    /// only: a store on another backend has no file to checkpoint, and nothing is done.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let Some(conn) = self.db.sqlite() else {
            return Ok(());
        };
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(self.err("checkpointing"))
    }
}

fn write_report(
    db: &mut Db,
    run: &RunId,
    node: &NodeId,
    report: &PhaseReport,
    wrong: &[i64],
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO phase_reports (run_id, phase_id, node_id, ended_at_ns, stopped_early) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (run_id, phase_id, node_id) DO UPDATE SET \
         ended_at_ns = excluded.ended_at_ns, stopped_early = excluded.stopped_early",
        &[
            run.as_str().into(),
            report.phase_id.into(),
            node.as_str().into(),
            report.ended_at_ns.into(),
            report.stopped_early.as_deref().into(),
        ],
    )?;
    for (d, wrong) in report.devices.iter().zip(wrong) {
        db.execute(
            "INSERT INTO phase_results (run_id, phase_id, node_id, device, gflops, wrong_elements) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (run_id, phase_id, node_id, device) DO UPDATE \
             SET gflops = excluded.gflops, wrong_elements = excluded.wrong_elements",
            &[
                run.as_str().into(),
                report.phase_id.into(),
                node.as_str().into(),
                d.device.into(),
                d.gflops.into(),
                (*wrong).into(),
            ],
        )?;
    }
    Ok(())
}

/// Converts a stored text column back into a value, or reports the record as corrupt.
pub(crate) fn parse_col<T: std::str::FromStr>(
    path: &Path,
    what: &str,
    s: &str,
) -> Result<T, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("{what} {s:?} cannot be read"),
    })
}
