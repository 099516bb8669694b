//! Reader API: listing runs and finding a run by id.

use crate::db::{DbError, Row};
use crate::error::StoreError;
use crate::model::{RunId, RunRow, RunStatus};
use crate::store::{parse_col, Store};
use std::path::Path;

/// The columns of a [`RunRow`] of the run `r` (a query's first ten columns, read by
/// [`RawRunRow::read`]): its own, its probes counted and its stored samples summed.
pub(crate) const RUN_ROW_COLUMNS: &str =
    "r.run_id, r.name, r.plan_name, r.hall, r.started_at_ns, r.ended_at_ns, r.status, \
     r.status_reason, \
     (SELECT count(*) FROM probes p WHERE p.run_id = r.run_id), \
     (SELECT CAST(coalesce(sum(b.samples), 0) AS BIGINT) FROM telemetry_batches b \
        WHERE b.run_id = r.run_id)";

/// The [`RUN_ROW_COLUMNS`] of a row as read, before its status is checked.
pub(crate) struct RawRunRow {
    row: RunRow,
    status: String,
}

impl RawRunRow {
    /// Reads the first ten columns of `r` ([`RUN_ROW_COLUMNS`]).
    pub(crate) fn read(r: &Row<'_>) -> Result<RawRunRow, DbError> {
        Ok(RawRunRow {
            row: RunRow {
                run_id: RunId::new(r.text(0)?),
                name: r.text(1)?,
                plan_name: r.text(2)?,
                hall: r.opt_text(3)?,
                started_at_ns: r.i64(4)?,
                ended_at_ns: r.opt_i64(5)?,
                status: RunStatus::Running,
                status_reason: r.opt_text(7)?,
                probes: r.i64(8)?.max(0) as u64,
                samples: r.i64(9)?.max(0) as u64,
            },
            status: r.text(6)?,
        })
    }

    /// The row, its status checked ([`StoreError::Corrupt`] when it cannot be read).
    pub(crate) fn into_row(self, path: &Path) -> Result<RunRow, StoreError> {
        let mut row = self.row;
        row.status = parse_col::<RunStatus>(path, "run status", &self.status)?;
        Ok(row)
    }
}

impl Store {
    /// Every stored run, newest first, with its probe and sample counts.
    ///
    /// A run whose coordinator stopped without finishing it is listed with status `running` and no end.
    pub fn list_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let rows = self
            .db
            .query_map(
                &format!(
                    "SELECT {RUN_ROW_COLUMNS} FROM runs r ORDER BY r.started_at_ns DESC, r.run_id DESC"
                ),
                &[],
                RawRunRow::read,
            )
            .map_err(self.db_err("listing runs"))?;
        rows.into_iter()
            .map(|raw| raw.into_row(&self.path))
            .collect()
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
