//! Reader API: listing runs and finding a run by id.

use crate::error::StoreError;
use crate::model::{RunId, RunRow, RunStatus};
use crate::store::{parse_col, Store};

impl Store {
    /// Every stored run, newest first, with its probe and sample counts.
    ///
    /// A run whose coordinator stopped without finishing it is listed with status `running` and no end.
    pub fn list_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let rows = self
            .db
            .query_map(
                "SELECT r.run_id, r.name, r.plan_name, r.hall, r.started_at_ns, r.ended_at_ns, r.status, \
                 r.status_reason, \
                 (SELECT count(*) FROM probes p WHERE p.run_id = r.run_id), \
                 (SELECT CAST(coalesce(sum(b.samples), 0) AS BIGINT) FROM telemetry_batches b \
                    WHERE b.run_id = r.run_id) \
                 FROM runs r ORDER BY r.started_at_ns DESC, r.run_id DESC",
                &[],
                |r| {
                    Ok((
                        r.text(0)?,
                        r.text(1)?,
                        r.text(2)?,
                        r.opt_text(3)?,
                        r.i64(4)?,
                        r.opt_i64(5)?,
                        r.text(6)?,
                        r.opt_text(7)?,
                        r.i64(8)?,
                        r.i64(9)?,
                    ))
                },
            )
            .map_err(self.db_err("listing runs"))?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, name, plan_name, hall, started, ended, status, reason, probes, samples) in rows {
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
            let id = self
                .db
                .query_opt(
                    "SELECT run_id FROM runs ORDER BY started_at_ns DESC, run_id DESC LIMIT 1",
                    &[],
                    |r| r.text(0),
                )
                .map_err(self.db_err("finding the latest run"))?;
            return id.map(RunId::new).ok_or_else(unknown);
        }
        if query.is_empty() {
            return Err(unknown());
        }
        // The parameter is cast to text so that PostgreSQL knows its type (`length` is overloaded).
        let ids = self
            .db
            .query_map(
                "SELECT run_id FROM runs \
                 WHERE substr(run_id, 1, length(CAST(?1 AS TEXT))) = CAST(?1 AS TEXT) LIMIT 50",
                &[query.into()],
                |r| r.text(0),
            )
            .map_err(self.db_err("finding a run"))?;
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
