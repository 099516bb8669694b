//! Reader API: listing runs and finding a run by id.

use crate::error::StoreError;
use crate::model::{RunId, RunRow, RunStatus};
use crate::store::{parse_col, Store};
use rusqlite::OptionalExtension;

impl Store {
    /// Every stored run, newest first, with its probe and sample counts.
    ///
    /// A run whose coordinator stopped without finishing it is listed with status `running` and no end.
    pub fn list_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let mut stmt = self.sqlite()?
            .prepare(
                "SELECT r.run_id, r.name, r.plan_name, r.hall, r.started_at_ns, r.ended_at_ns, r.status, \
                 r.status_reason, \
                 (SELECT count(*) FROM probes p WHERE p.run_id = r.run_id), \
                 (SELECT coalesce(sum(b.samples), 0) FROM telemetry_batches b WHERE b.run_id = r.run_id) \
                 FROM runs r ORDER BY r.started_at_ns DESC, r.run_id DESC",
            )
            .map_err(self.err("listing runs"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, i64>(9)?,
                ))
            })
            .map_err(self.err("listing runs"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, plan_name, hall, started, ended, status, reason, probes, samples) =
                row.map_err(self.err("listing runs"))?;
            out.push(RunRow {
                status: parse_col::<RunStatus>(&self.path, "run status", &status)?,
                run_id: RunId::new(id),
                name,
                plan_name,
                hall,
                started_at_ns: started,
                ended_at_ns: ended,
                status_reason: reason,
                probes: probes.max(0) as u64,
                samples: samples.max(0) as u64,
            });
        }
        Ok(out)
    }

    /// Finds a run from what a user typed: a full id, a unique prefix of one, or `latest`.
    pub fn resolve_run(&self, query: &str) -> Result<RunId, StoreError> {
        let unknown = || StoreError::UnknownRun {
            path: self.path.clone(),
            run_id: query.to_string(),
        };
        if query == "latest" {
            let id: Option<String> = self
                .sqlite()?
                .query_row(
                    "SELECT run_id FROM runs ORDER BY started_at_ns DESC, run_id DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(self.err("finding the latest run"))?;
            return id.map(RunId::new).ok_or_else(unknown);
        }
        if query.is_empty() {
            return Err(unknown());
        }
        let mut stmt = self
            .sqlite()?
            .prepare("SELECT run_id FROM runs WHERE substr(run_id, 1, length(?1)) = ?1 LIMIT 50")
            .map_err(self.err("finding a run"))?;
        let ids: Vec<String> = stmt
            .query_map([query], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(self.err("finding a run"))?;
        if ids.iter().any(|id| id == query) {
            return Ok(RunId::new(query));
        }
        match ids.len() {
            0 => Err(unknown()),
            1 => Ok(RunId::new(ids.into_iter().next().unwrap_or_default())),
            count => Err(StoreError::AmbiguousRun {
                path: self.path.clone(),
                query: query.to_string(),
                count,
            }),
        }
    }
}
