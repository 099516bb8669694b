//! [`Store`]: opening the database and the writer API the coordinator calls as a run goes on.
//!
//! The coordinator drives one `Store` from one task. Every call is one transaction. Telemetry ingest
//! (`insert_batch`, `insert_batches`) is in [`crate::telemetry`].

use crate::error::{to_i64, StoreError};
use crate::fabric_write as fabric;
use crate::model::{event_kind, label_of, NewRun, PhaseRow, ProbeRow, RunId, RunStatus};
use crate::schema;
use hallmark_protocol::{ClockEstimate, DeviceInfo, NodeId, PhaseReport};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// File name of the database inside the results directory.
pub const DB_FILE: &str = "hallmark.sqlite";

/// How many times `create_run` draws a new random suffix when an id is taken.
const RUN_ID_TRIES: usize = 16;

/// An open run store.
pub struct Store {
    pub(crate) conn: Connection,
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
    /// Opens `dir/hallmark.sqlite` for writing, creating the directory and the database if needed and
    /// bringing the schema up to date.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let conn = schema::open_write(&path)?;
        Ok(Store {
            conn,
            path,
            node_keys: HashMap::new(),
        })
    }

    /// Opens an existing `dir/hallmark.sqlite` for reading only (`hallmark runs list/show` while a
    /// coordinator writes). Creates nothing; writer calls fail.
    pub fn open_read_only(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(DB_FILE);
        let conn = schema::open_read(&path)?;
        Ok(Store {
            conn,
            path,
            node_keys: HashMap::new(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long a statement waits for another process's lock before failing with
    /// [`StoreError::Locked`] (default [`crate::BUSY_TIMEOUT`], 5 s).
    pub fn set_busy_timeout(&self, timeout: std::time::Duration) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(timeout)
            .map_err(self.err("setting the busy timeout"))
    }

    pub(crate) fn err(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| StoreError::sql(&self.path, op, e)
    }

    fn unknown_run(&self, run: &str) -> StoreError {
        StoreError::UnknownRun {
            path: self.path.clone(),
            run_id: run.to_string(),
        }
    }

    /// Fails with [`StoreError::UnknownRun`] unless `run` is stored.
    fn ensure_run(&mut self, run: &RunId) -> Result<(), StoreError> {
        if self.node_keys.contains_key(run) {
            return Ok(());
        }
        let found = self
            .conn
            .query_row(
                "SELECT 1 FROM runs WHERE run_id = ?1",
                [run.as_str()],
                |_| Ok(()),
            )
            .optional()
            .map_err(self.err("looking up a run"))?;
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
            .conn
            .query_row(
                "SELECT node_key FROM probes WHERE run_id = ?1 AND node_id = ?2",
                [run.as_str(), node.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("looking up a probe"))?;
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
                .conn
                .execute(
                    "INSERT INTO runs (run_id, name, plan_name, plan_toml, plan_sha256, hall, started_at_ns, \
                     status, hallmark_version, sample_hz) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9) \
                     ON CONFLICT (run_id) DO NOTHING",
                    params![
                        id,
                        run.name,
                        run.plan_name,
                        run.plan_toml,
                        sha_hex,
                        run.hall,
                        run.started_at_ns,
                        run.hallmark_version,
                        run.sample_hz
                    ],
                )
                .map_err(self.err("storing a new run"))?;
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
        let key: i64 = self
            .conn
            .query_row(
                "INSERT INTO probes (run_id, node_id, hall, row, rack, backend, hallmark_version, remote, \
                 registered_at_ns, clock_offset_ns, clock_uncertainty_ns, clock_rtt_ns, clock_measured_at_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                 ON CONFLICT (run_id, node_id) DO UPDATE SET hall = excluded.hall, row = excluded.row, \
                 rack = excluded.rack, backend = excluded.backend, hallmark_version = excluded.hallmark_version, \
                 remote = excluded.remote, \
                 clock_offset_ns = coalesce(excluded.clock_offset_ns, clock_offset_ns), \
                 clock_uncertainty_ns = coalesce(excluded.clock_uncertainty_ns, clock_uncertainty_ns), \
                 clock_rtt_ns = coalesce(excluded.clock_rtt_ns, clock_rtt_ns), \
                 clock_measured_at_ns = coalesce(excluded.clock_measured_at_ns, clock_measured_at_ns), \
                 lost_at_ns = NULL, lost_reason = NULL \
                 RETURNING node_key",
                params![
                    run.as_str(),
                    probe.node_id.as_str(),
                    probe.labels.hall,
                    probe.labels.row,
                    probe.labels.rack,
                    probe.backend,
                    probe.hallmark_version,
                    probe.remote,
                    probe.registered_at_ns,
                    c.map(|c| c.offset_ns),
                    c.map(|c| c.uncertainty_ns),
                    c.map(|c| c.rtt_ns),
                    c.map(|c| c.measured_at_ns),
                ],
                |r| r.get(0),
            )
            .map_err(self.err("storing a probe"))?;
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
        self.conn
            .execute(
                "UPDATE probes SET clock_offset_ns = ?2, clock_uncertainty_ns = ?3, clock_rtt_ns = ?4, \
                 clock_measured_at_ns = ?5 WHERE node_key = ?1",
                params![key, clock.offset_ns, clock.uncertainty_ns, clock.rtt_ns, clock.measured_at_ns],
            )
            .map_err(self.err("updating a clock estimate"))?;
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
        let path = &self.path.clone();
        let err = |op| move |e| StoreError::sql(path, op, e);
        let tx = self.conn.transaction().map_err(err("storing devices"))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO devices (run_id, node_id, device, kind, model, uuid, serial, \
                     memory_bytes, power_limit_w, idle_power_w, slowdown_temp_c, shutdown_temp_c, \
                     max_operating_temp_c) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .map_err(err("storing devices"))?;
            for (d, kind, memory) in &rows {
                stmt.execute(params![
                    run.as_str(),
                    node.as_str(),
                    d.index,
                    kind,
                    d.model,
                    d.uuid,
                    d.serial,
                    memory,
                    d.power_limit_w,
                    d.idle_power_w,
                    d.slowdown_temp_c,
                    d.shutdown_temp_c,
                    d.max_operating_temp_c
                ])
                .map_err(err("storing devices"))?;
            }
        }
        tx.commit().map_err(err("storing devices"))
    }

    /// Stores a scheduled phase (or replaces it if the id is stored already).
    pub fn add_phase(&mut self, run: &RunId, phase: &PhaseRow) -> Result<(), StoreError> {
        self.ensure_run(run)?;
        let workload = label_of("workload", &phase.workload)?;
        let pattern = serde_json::to_string(&phase.pattern)
            .map_err(|e| StoreError::invalid("pattern", e.to_string()))?;
        let duration = to_i64("duration_ms", phase.duration_ms)?;
        self.conn
            .execute(
                "INSERT INTO phases (run_id, phase_id, name, workload, pattern_json, scheduled_start_ns, \
                 duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (run_id, phase_id) DO UPDATE \
                 SET name = excluded.name, workload = excluded.workload, pattern_json = excluded.pattern_json, \
                 scheduled_start_ns = excluded.scheduled_start_ns, duration_ms = excluded.duration_ms",
                params![
                    run.as_str(),
                    phase.phase_id,
                    phase.name,
                    workload,
                    pattern,
                    phase.scheduled_start_ns,
                    duration
                ],
            )
            .map_err(self.err("storing a phase"))?;
        Ok(())
    }

    fn unknown_phase(&self, run: &RunId, phase_id: u32, e: rusqlite::Error) -> StoreError {
        if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) {
            StoreError::invalid(
                "phase id",
                format!(
                    "phase {phase_id} of run {run} is not stored; store it with add_phase first"
                ),
            )
        } else {
            StoreError::sql(&self.path, "storing phase data", e)
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
        self.conn
            .execute(
                "INSERT OR REPLACE INTO phase_starts (run_id, phase_id, node_id, actual_start_ns) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![run.as_str(), phase_id, node.as_str(), actual_start_ns],
            )
            .map_err(|e| self.unknown_phase(run, phase_id, e))?;
        Ok(())
    }

    /// Records a stretch `[from_ns, to_ns]` in which a node's telemetry is missing, and why.
    pub fn record_gap(
        &mut self,
        run: &RunId,
        node: &NodeId,
        from_ns: i64,
        to_ns: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        if to_ns < from_ns {
            return Err(StoreError::invalid(
                "gap",
                format!("it ends ({to_ns}) before it starts ({from_ns})"),
            ));
        }
        self.node_key(run, node)?;
        self.conn
            .execute(
                "INSERT INTO gaps (run_id, node_id, from_ns, to_ns, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run.as_str(), node.as_str(), from_ns, to_ns, reason],
            )
            .map_err(self.err("storing a gap"))?;
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
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StoreError::sql(&self.path, "storing a phase report", e))?;
        let res = write_report(&tx, run, node, report, &wrong)
            .and_then(|()| fabric::write_report_fabric(&tx, run, phase_id, node, fabric.as_ref()));
        match res.and_then(|()| tx.commit()) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.unknown_phase(run, phase_id, e)),
        }
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
        let path = self.path.clone();
        let err = |e| StoreError::sql(&path, "recording a lost probe", e);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "UPDATE probes SET lost_at_ns = ?2, lost_reason = ?3 WHERE node_key = ?1",
            params![key, at_ns, reason],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO events (run_id, t_ns, node_id, kind, message) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                run.as_str(),
                at_ns,
                node.as_str(),
                event_kind::PROBE_LOST,
                reason
            ],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
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
        self.conn
            .execute(
                "INSERT INTO events (run_id, t_ns, node_id, kind, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run.as_str(), t_ns, node.map(|n| n.as_str()), kind, message],
            )
            .map_err(self.err("storing an event"))?;
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
            .conn
            .execute(
                "UPDATE runs SET ended_at_ns = ?2, status = ?3, status_reason = ?4 WHERE run_id = ?1",
                params![run.as_str(), ended_at_ns, status.as_str(), reason],
            )
            .map_err(self.err("finishing a run"))?;
        if n == 0 {
            return Err(self.unknown_run(run.as_str()));
        }
        Ok(())
    }

    /// Writes the WAL into the database file and truncates it (e.g. before copying the file).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(self.err("checkpointing"))
    }
}

fn write_report(
    tx: &Transaction<'_>,
    run: &RunId,
    node: &NodeId,
    report: &PhaseReport,
    wrong: &[i64],
) -> Result<(), rusqlite::Error> {
    tx.execute(
        "INSERT INTO phase_reports (run_id, phase_id, node_id, ended_at_ns, stopped_early) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (run_id, phase_id, node_id) DO UPDATE SET \
         ended_at_ns = excluded.ended_at_ns, stopped_early = excluded.stopped_early",
        params![
            run.as_str(),
            report.phase_id,
            node.as_str(),
            report.ended_at_ns,
            report.stopped_early
        ],
    )?;
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO phase_results (run_id, phase_id, node_id, device, gflops, wrong_elements) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (d, wrong) in report.devices.iter().zip(wrong) {
        stmt.execute(params![
            run.as_str(),
            report.phase_id,
            node.as_str(),
            d.device,
            d.gflops,
            wrong
        ])?;
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
