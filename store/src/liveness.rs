//! The coordinator's liveness per run (`run_coordinators`, schema v4): the coordinator of a running
//! run records its host and process id when the run starts and refreshes a heartbeat every
//! [`HEARTBEAT_NS`]; a reader shows a run still `running` in the store as
//! [`RunStatus::Interrupted`] once that coordinator is gone — its process no longer exists on this
//! host, or its heartbeat is older than [`STALE_NS`]. The store reads no clock and no process
//! table: the reader passes the instant, its host name and how to tell a live process.

use crate::error::StoreError;
use crate::model::{RunId, RunStatus};
use crate::store::{parse_col, Store};

/// How often a running coordinator refreshes its heartbeat, ns.
pub const HEARTBEAT_NS: i64 = 2_000_000_000;

/// A heartbeat older than this means the coordinator is gone, whatever host it ran on, ns.
pub const STALE_NS: i64 = 10_000_000_000;

/// Who coordinates a run, and when it was last heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    pub host: String,
    pub pid: u32,
    pub started_ns: i64,
    pub heartbeat_ns: i64,
}

impl Coordinator {
    /// Why this coordinator is gone at `now_ns`, seen from host `this_host` (`None`: it may
    /// still run). `pid_alive` says whether a process id is alive on this host.
    pub fn gone(
        &self,
        now_ns: i64,
        this_host: &str,
        pid_alive: impl Fn(u32) -> bool,
    ) -> Option<String> {
        let silent_s = now_ns.saturating_sub(self.heartbeat_ns) as f64 / 1e9;
        if self.host == this_host && !pid_alive(self.pid) {
            return Some(format!(
                "interrupted: its coordinator (process {} on {}) ended without finishing the run; \
                 last heard {silent_s:.1} s ago",
                self.pid, self.host
            ));
        }
        (now_ns.saturating_sub(self.heartbeat_ns) > STALE_NS).then(|| {
            format!(
                "interrupted: its coordinator (process {} on {}) has been silent for {silent_s:.0} s",
                self.pid, self.host
            )
        })
    }
}

impl Store {
    /// Records that process `pid` on `host` coordinates `run` from `now_ns` (again, after a
    /// resume: the previous coordinator's entry is replaced).
    pub fn set_coordinator(
        &mut self,
        run: &RunId,
        host: &str,
        pid: u32,
        now_ns: i64,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO run_coordinators (run_id, host, pid, started_ns, heartbeat_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (run_id) DO UPDATE SET host = excluded.host, \
                 pid = excluded.pid, started_ns = excluded.started_ns, heartbeat_ns = excluded.heartbeat_ns",
                &[run.as_str().into(), host.into(), pid.into(), now_ns.into()],
            )
            .map_err(self.db_err("recording the run's coordinator"))?;
        Ok(())
    }

    /// The coordinator of `run` is alive at `now_ns`.
    pub fn coordinator_heartbeat(&mut self, run: &RunId, now_ns: i64) -> Result<(), StoreError> {
        // The later of the stored and the new heartbeat (SQLite's two-argument `max` is
        // PostgreSQL's `greatest`: CASE is both's; the column is NOT NULL).
        self.db
            .execute(
                "UPDATE run_coordinators SET heartbeat_ns = \
                 CASE WHEN heartbeat_ns >= ?2 THEN heartbeat_ns ELSE ?2 END WHERE run_id = ?1",
                &[run.as_str().into(), now_ns.into()],
            )
            .map_err(self.db_err("refreshing the coordinator's heartbeat"))?;
        Ok(())
    }

    /// Who coordinates (or coordinated) `run`; `None` for runs stored before schema v4.
    pub fn coordinator_of(&self, run: &str) -> Result<Option<Coordinator>, StoreError> {
        self.db
            .query_opt(
                "SELECT host, pid, started_ns, heartbeat_ns FROM run_coordinators WHERE run_id = ?1",
                &[run.into()],
                |r| {
                    Ok(Coordinator {
                        host: r.text(0)?,
                        pid: r.int(1)?,
                        started_ns: r.i64(2)?,
                        heartbeat_ns: r.i64(3)?,
                    })
                },
            )
            .map_err(self.db_err("reading the run's coordinator"))
    }

    /// The status a reader shows for a run stored as `status`: [`RunStatus::Interrupted`] with
    /// the reason when it is still running and its coordinator is gone (see [`Coordinator::gone`]).
    pub fn live_status(
        &self,
        run: &str,
        status: RunStatus,
        now_ns: i64,
        this_host: &str,
        pid_alive: impl Fn(u32) -> bool,
    ) -> Result<Option<(RunStatus, String)>, StoreError> {
        if status != RunStatus::Running {
            return Ok(None);
        }
        Ok(self
            .coordinator_of(run)?
            .and_then(|c| c.gone(now_ns, this_host, pid_alive))
            .map(|why| (RunStatus::Interrupted, why)))
    }
}

/// A participant of a stored run, for resuming it: its rack and the sequence number after the
/// last telemetry batch stored from it (0: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    pub node_id: String,
    pub rack: String,
    pub next_seq: u64,
}

impl Store {
    /// The status run `run` is stored with (never [`RunStatus::Interrupted`]: see
    /// [`Store::live_status`]), without summarising it.
    pub fn run_status(&self, run: &str) -> Result<RunStatus, StoreError> {
        let status: String = self
            .db
            .query_opt(
                "SELECT status FROM runs WHERE run_id = ?1",
                &[run.into()],
                |r| r.text(0),
            )
            .map_err(self.db_err("reading the run's status"))?
            .ok_or_else(|| StoreError::UnknownRun {
                path: self.path.clone(),
                run_id: run.to_string(),
            })?;
        parse_col(&self.path, "run status", &status)
    }

    /// The plan text a run was started with.
    pub fn run_plan_toml(&self, run: &str) -> Result<String, StoreError> {
        self.db
            .query_opt(
                "SELECT plan_toml FROM runs WHERE run_id = ?1",
                &[run.into()],
                |r| r.text(0),
            )
            .map_err(self.db_err("reading the run's plan"))?
            .ok_or_else(|| StoreError::UnknownRun {
                path: self.path.clone(),
                run_id: run.to_string(),
            })
    }

    /// Where each participant of `run` stands, to resume it.
    pub fn resume_points(&self, run: &str) -> Result<Vec<ResumePoint>, StoreError> {
        self.db
            .query_map(
                "SELECT p.node_id, p.rack, (SELECT max(b.seq) + 1 FROM telemetry_batches b \
                 WHERE b.run_id = p.run_id AND b.node_id = p.node_id) \
                 FROM probes p WHERE p.run_id = ?1 ORDER BY p.node_id",
                &[run.into()],
                |r| {
                    Ok(ResumePoint {
                        node_id: r.text(0)?,
                        rack: r.text(1)?,
                        next_seq: r.opt_i64(2)?.unwrap_or(0).max(0) as u64,
                    })
                },
            )
            .map_err(self.db_err("reading the run's probes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn c() -> Coordinator {
        Coordinator {
            host: "h1".into(),
            pid: 42,
            started_ns: 0,
            heartbeat_ns: 100 * S,
        }
    }

    #[test]
    fn a_coordinator_is_gone_when_its_process_ended_or_its_heartbeat_is_stale() {
        // Alive on this host, heard 1 s ago.
        assert_eq!(c().gone(101 * S, "h1", |_| true), None);
        // Its process ended: gone at once.
        let why = c().gone(101 * S, "h1", |p| p != 42).unwrap();
        assert!(why.contains("(process 42 on h1) ended"), "{why}");
        // Another host: only the heartbeat tells.
        assert_eq!(c().gone(105 * S, "h2", |_| false), None);
        let why = c().gone(111 * S, "h2", |_| true).unwrap();
        assert!(why.contains("silent for 11 s"), "{why}");
    }
}
