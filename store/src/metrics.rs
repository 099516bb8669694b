//! Per-subject metrics of a run (schema 8): the figures computed once per run for each subject —
//! a device's sustained TFLOP/s, a rack's power, a node pair's latency… — stored
//! ([`Store::store_run_metrics`]) so that comparing two runs and following a subject's history
//! across the runs of a plan read them instead of recomputing them ([`Store::run_metrics`],
//! [`Store::metric_history`]). What makes two runs comparable is in `context.rs`.
//!
//! A run has at most one stored set (`metric_sets`); storing again replaces it, in one
//! transaction. A value is one row of `metric_values`, keyed by the set, the metric and the
//! subject, the last two as integer keys into the dictionaries `metric_names` (name, base, unit)
//! and `metric_subjects` (kind, name), which all runs share: a hall's 10 000 devices are named
//! once, not once per run. The key `(set_id, metric_id, subject_id)` is the index a history
//! searches: the run's set, then the metrics asked for, then the subjects.
//!
//! Absent is never 0: a value nobody measured is stored NULL. A value that is not a finite
//! number is refused (nothing of the call is stored), as are an empty kind, a metric without a
//! base name, a subject's metric given twice, and text with a NUL character (which PostgreSQL's
//! `TEXT` cannot hold).
//!
//! Writing, on both backends in one transaction: the old set deleted, the set row inserted, the
//! dictionary entries the rows name looked up and the missing ones inserted (multi-row
//! `INSERT … ON CONFLICT DO NOTHING`: an entry another writer added meanwhile is no error), then
//! the values in one bulk insert ([`Db::insert_rows`]: binary `COPY` on PostgreSQL, multi-row
//! `INSERT`s on SQLite), in key order.

use crate::db::{Db, DbError, Value};
use crate::error::StoreError;
use crate::model::{RunId, RunRow};
use crate::runs::{RawRunRow, RUN_ROW_COLUMNS};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// One metric of one subject of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// What the subject is: `device`, `node`, `rack`, `pair`, `hall`, `collective`, `pdu`, `cdu`
    /// (free text, stored as is; never empty).
    pub kind: String,
    /// The subject's name within its kind (e.g. `r01n01/3` for a device).
    pub subject: String,
    /// A base name (`sustained_tflops`) or `base.qualifier` (`throttle_s.sw_thermal`).
    pub metric: String,
    /// `None`: not measured (stored NULL, never 0).
    pub value: Option<f64>,
    pub unit: String,
}

/// The metrics stored for one run; `rows` sorted by (kind, subject, metric).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSet {
    pub run_id: RunId,
    /// When they were computed, ns since the UNIX epoch.
    pub computed_at_ns: i64,
    /// The hallmark version that computed them.
    pub hallmark_version: String,
    pub rows: Vec<MetricRow>,
}

/// Filter of [`Store::metric_history`]; every field `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryQuery {
    /// Runs of this plan (`runs.plan_name`).
    pub plan_name: Option<String>,
    /// Runs in this hall: the run's simulated hall (`runs.hall`) or any of its probes' hall labels.
    pub hall: Option<String>,
    /// An exact metric name, or a base name that also matches every `base.qualifier`.
    pub metric: Option<String>,
    /// An exact subject, or a prefix that matches `subject/…`.
    pub subject: Option<String>,
    /// Only runs started at or before this instant, ns.
    pub until_ns: Option<i64>,
}

/// One run's matching metrics in a history, with what makes runs comparable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    pub run: RunRow,
    /// SHA-256 of the plan file as run.
    pub plan_sha256: String,
    /// The run's halls, sorted, each once: `runs.hall` and its probes' hall labels.
    pub halls: Vec<String>,
    /// The matching metrics, sorted by (kind, subject, metric); empty when the run's set has none.
    pub rows: Vec<MetricRow>,
}

/// Most entries per multi-row `INSERT` into a dictionary table.
const DICT_ROWS_PER_INSERT: usize = 500;

/// The columns of a value, in the order [`value_rows`] gives them.
const VALUE_COLUMNS: [&str; 4] = ["set_id", "metric_id", "subject_id", "value"];

/// A metric's base name: what comes before its first `.`.
fn base_of(metric: &str) -> &str {
    metric.split('.').next().unwrap_or(metric)
}

impl Store {
    /// Stores the metrics of run `run_id`, computed at `computed_at_ns` by `hallmark_version`,
    /// replacing any set stored for it before, in one transaction: on error nothing of the call is
    /// stored and an earlier set stays. An unknown run is [`StoreError::UnknownRun`]; a value that is
    /// not a finite number, an empty kind, a metric without a base name, the same (kind, subject,
    /// metric) twice or text with a NUL character is [`StoreError::Invalid`] naming the run, the
    /// subject and the metric.
    pub fn store_run_metrics(
        &mut self,
        run_id: &str,
        computed_at_ns: i64,
        hallmark_version: &str,
        rows: &[MetricRow],
    ) -> Result<(), StoreError> {
        self.ensure_run(&RunId::new(run_id))?;
        check_rows(run_id, hallmark_version, rows)?;
        let path = self.path.clone();
        self.db
            .transaction_immediate(|db| {
                write_set(db, run_id, computed_at_ns, hallmark_version, rows)
            })
            .map_err(|e| StoreError::db(&path, "storing a run's metrics", e))
    }

    /// The metrics stored for run `run_id`, rows sorted by (kind, subject, metric); `None` when
    /// they were never stored (also for an unknown run).
    pub fn run_metrics(&self, run_id: &str) -> Result<Option<MetricSet>, StoreError> {
        let head = self
            .db
            .query_opt(
                "SELECT set_id, computed_at_ns, hallmark_version FROM metric_sets WHERE run_id = ?1",
                &[run_id.into()],
                |r| Ok((r.i64(0)?, r.i64(1)?, r.text(2)?)),
            )
            .map_err(self.db_err("reading a run's metric set"))?;
        let Some((set_id, computed_at_ns, hallmark_version)) = head else {
            return Ok(None);
        };
        Ok(Some(MetricSet {
            run_id: RunId::new(run_id),
            computed_at_ns,
            hallmark_version,
            rows: self.set_rows(set_id, None, None)?,
        }))
    }

    /// The runs with stored metrics that match `q`, oldest first (started_at_ns, then run_id),
    /// each with its matching metrics sorted by (kind, subject, metric). A run whose set has no
    /// matching metric is listed with no rows: a point of the history where the metric was absent.
    /// Runs without a stored set are not listed. The filters run in SQL, through the keys of the
    /// metric tables (see the module's documentation).
    pub fn metric_history(&self, q: &HistoryQuery) -> Result<Vec<RunMetrics>, StoreError> {
        let mut sql = format!(
            "SELECT {RUN_ROW_COLUMNS}, m.set_id, r.plan_sha256 FROM metric_sets m \
             JOIN runs r ON r.run_id = m.run_id WHERE 1 = 1"
        );
        let mut params: Vec<Value> = Vec::new();
        if let Some(plan) = &q.plan_name {
            params.push(plan.as_str().into());
            sql.push_str(&format!(" AND r.plan_name = ?{}", params.len()));
        }
        if let Some(hall) = &q.hall {
            params.push(hall.as_str().into());
            let n = params.len();
            sql.push_str(&format!(
                " AND (r.hall = ?{n} OR EXISTS (SELECT 1 FROM probes ph \
                 WHERE ph.run_id = r.run_id AND ph.hall = ?{n}))"
            ));
        }
        if let Some(until) = q.until_ns {
            params.push(Value::I64(until));
            sql.push_str(&format!(" AND r.started_at_ns <= ?{}", params.len()));
        }
        sql.push_str(" ORDER BY r.started_at_ns, r.run_id");
        let runs = self
            .db
            .query_map(&sql, &params, |r| {
                Ok((RawRunRow::read(r)?, r.i64(10)?, r.text(11)?))
            })
            .map_err(self.db_err("finding the runs of a metric history"))?;
        let mut out = Vec::with_capacity(runs.len());
        for (raw, set_id, plan_sha256) in runs {
            let run = raw.into_row(&self.path)?;
            let halls = self.run_halls(run.run_id.as_str(), run.hall.as_deref())?;
            let rows = self.set_rows(set_id, q.metric.as_deref(), q.subject.as_deref())?;
            out.push(RunMetrics {
                run,
                plan_sha256,
                halls,
                rows,
            });
        }
        Ok(out)
    }

    /// The halls of a run, sorted and each once: its simulated hall and its probes' hall labels.
    pub(crate) fn run_halls(
        &self,
        run_id: &str,
        hall: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let mut halls = self
            .db
            .query_map(
                "SELECT DISTINCT hall FROM probes WHERE run_id = ?1",
                &[run_id.into()],
                |r| r.text(0),
            )
            .map_err(self.db_err("reading a run's halls"))?;
        halls.extend(hall.map(str::to_owned));
        halls.sort();
        halls.dedup();
        Ok(halls)
    }

    /// The values of set `set_id`, only the metrics `metric` names (exactly, or as their base) and
    /// the subjects `subject` names (exactly, or as a prefix before `/`), sorted by (kind,
    /// subject, metric).
    fn set_rows(
        &self,
        set_id: i64,
        metric: Option<&str>,
        subject: Option<&str>,
    ) -> Result<Vec<MetricRow>, StoreError> {
        let (sql, params) = set_rows_query(set_id, metric, subject);
        let mut rows = self
            .db
            .query_map(&sql, &params, |r| {
                Ok(MetricRow {
                    kind: r.text(0)?,
                    subject: r.text(1)?,
                    metric: r.text(2)?,
                    value: r.opt_f64(3)?,
                    unit: r.text(4)?,
                })
            })
            .map_err(self.db_err("reading metric values"))?;
        rows.sort_by(|a, b| {
            (&a.kind, &a.subject, &a.metric).cmp(&(&b.kind, &b.subject, &b.metric))
        });
        Ok(rows)
    }
}

/// The statement of [`Store::set_rows`] and its parameters: the set's values through its key
/// `(set_id, metric_id, subject_id)`, the metrics and subjects asked for found in their
/// dictionaries first.
fn set_rows_query(
    set_id: i64,
    metric: Option<&str>,
    subject: Option<&str>,
) -> (String, Vec<Value>) {
    let mut sql = String::from(
        "SELECT s.kind, s.subject, n.metric, v.value, n.unit FROM metric_values v \
         JOIN metric_subjects s ON s.subject_id = v.subject_id \
         JOIN metric_names n ON n.metric_id = v.metric_id WHERE v.set_id = ?1",
    );
    let mut params: Vec<Value> = vec![Value::I64(set_id)];
    if let Some(metric) = metric {
        params.push(metric.into());
        let n = params.len();
        sql.push_str(&format!(
            " AND v.metric_id IN (SELECT metric_id FROM metric_names \
             WHERE metric = ?{n} OR base = ?{n})"
        ));
    }
    if let Some(subject) = subject {
        // `subject/…` is the byte range [subject + "/", subject + "0"): '0' follows '/'. Both
        // backends compare text byte by byte (PostgreSQL's columns are `COLLATE "C"`).
        params.push(subject.into());
        params.push(format!("{subject}/").into());
        params.push(format!("{subject}0").into());
        let n = params.len();
        sql.push_str(&format!(
            " AND v.subject_id IN (SELECT subject_id FROM metric_subjects \
             WHERE subject = ?{} OR (subject >= ?{} AND subject < ?{n}))",
            n - 2,
            n - 1
        ));
    }
    (sql, params)
}

/// Refuses what the store would not hold as given, naming the run, the subject and the metric.
fn check_rows(run_id: &str, hallmark_version: &str, rows: &[MetricRow]) -> Result<(), StoreError> {
    let invalid = |detail: String| StoreError::invalid("metric", format!("run {run_id}: {detail}"));
    if hallmark_version.contains('\0') {
        return Err(invalid(
            "the hallmark version has a NUL character, which the store cannot hold".into(),
        ));
    }
    let mut seen: HashSet<(&str, &str, &str)> = HashSet::with_capacity(rows.len());
    for r in rows {
        let what = || format!("{} {:?}, metric {:?}", r.kind, r.subject, r.metric);
        if r.kind.is_empty() {
            return Err(invalid(format!(
                "subject {:?}, metric {:?} has no kind",
                r.subject, r.metric
            )));
        }
        if base_of(&r.metric).is_empty() {
            return Err(invalid(format!(
                "{}: a metric is a base name or base.qualifier",
                what()
            )));
        }
        if [&r.kind, &r.subject, &r.metric, &r.unit]
            .iter()
            .any(|t| t.contains('\0'))
        {
            return Err(invalid(format!(
                "{}: a NUL character, which the store cannot hold",
                what()
            )));
        }
        if let Some(v) = r.value.filter(|v| !v.is_finite()) {
            return Err(invalid(format!(
                "{}: the value {v} is not a finite number; a value nobody measured is None",
                what()
            )));
        }
        if !seen.insert((&r.kind, &r.subject, &r.metric)) {
            return Err(invalid(format!("{}: given twice", what())));
        }
    }
    Ok(())
}

/// The old set of the run out, the new one in (inside the caller's transaction).
fn write_set(
    db: &mut Db,
    run_id: &str,
    computed_at_ns: i64,
    hallmark_version: &str,
    rows: &[MetricRow],
) -> Result<(), DbError> {
    db.execute(
        "DELETE FROM metric_values WHERE set_id IN \
         (SELECT set_id FROM metric_sets WHERE run_id = ?1)",
        &[run_id.into()],
    )?;
    db.execute(
        "DELETE FROM metric_sets WHERE run_id = ?1",
        &[run_id.into()],
    )?;
    let insert = "INSERT INTO metric_sets (run_id, computed_at_ns, hallmark_version, metrics) \
                  VALUES (?1, ?2, ?3, ?4) RETURNING set_id";
    let set_id = db
        .query_opt(
            insert,
            &[
                run_id.into(),
                Value::I64(computed_at_ns),
                hallmark_version.into(),
                Value::I64(rows.len() as i64),
            ],
            |r| r.i64(0),
        )?
        .ok_or_else(|| DbError::Usage {
            store: db.store().to_owned(),
            statement: insert.to_owned(),
            what: "the insert returned no set_id".into(),
        })?;
    if rows.is_empty() {
        return Ok(());
    }
    let subjects = dictionary(db, &SUBJECTS, rows.iter().map(|r| [&*r.kind, &*r.subject]))?;
    let metrics = dictionary(db, &NAMES, rows.iter().map(|r| [&*r.metric, &*r.unit]))?;
    let values = value_rows(db, set_id, rows, &subjects, &metrics)?;
    db.insert_rows("metric_values", &VALUE_COLUMNS, values)?;
    Ok(())
}

/// The rows of `metric_values` in key order, each `[set_id, metric_id, subject_id, value]`; −0
/// is stored as 0, as SQLite does with any zero (both backends read the same).
fn value_rows(
    db: &Db,
    set_id: i64,
    rows: &[MetricRow],
    subjects: &Ids,
    metrics: &Ids,
) -> Result<Vec<Vec<Value>>, DbError> {
    let missing = |what: &str, a: &str, b: &str| DbError::Usage {
        store: db.store().to_owned(),
        statement: "INSERT INTO metric_values".into(),
        what: format!("no id for the {what} ({a:?}, {b:?}) after inserting it"),
    };
    let mut keyed = Vec::with_capacity(rows.len());
    for r in rows {
        let metric_id = metrics
            .get(&r.metric)
            .and_then(|m| m.get(&r.unit))
            .ok_or_else(|| missing("metric", &r.metric, &r.unit))?;
        let subject_id = subjects
            .get(&r.kind)
            .and_then(|m| m.get(&r.subject))
            .ok_or_else(|| missing("subject", &r.kind, &r.subject))?;
        let value = r.value.map(|v| if v == 0.0 { 0.0 } else { v });
        keyed.push((*metric_id, *subject_id, value));
    }
    keyed.sort_by_key(|k| (k.0, k.1));
    Ok(keyed
        .into_iter()
        .map(|(metric_id, subject_id, value)| {
            vec![
                Value::I64(set_id),
                Value::I64(metric_id),
                Value::I64(subject_id),
                value.into(),
            ]
        })
        .collect())
}

/// A dictionary table: its id column and the two text columns that key an entry.
struct Dictionary {
    table: &'static str,
    id: &'static str,
    key: [&'static str; 2],
    /// A column derived from the key (the base of a metric name), written with each new entry.
    derived: Option<Derived>,
}

/// A column of a dictionary computed from the first part of an entry's key: its name, and how.
type Derived = (&'static str, fn(&str) -> &str);

const SUBJECTS: Dictionary = Dictionary {
    table: "metric_subjects",
    id: "subject_id",
    key: ["kind", "subject"],
    derived: None,
};

const NAMES: Dictionary = Dictionary {
    table: "metric_names",
    id: "metric_id",
    key: ["metric", "unit"],
    derived: Some(("base", base_of)),
};

/// Ids of a dictionary's entries by the two parts of their key.
type Ids = HashMap<String, HashMap<String, i64>>;

/// The ids of every entry `wanted` names, inserting the missing ones.
fn dictionary<'a>(
    db: &mut Db,
    dict: &Dictionary,
    wanted: impl Iterator<Item = [&'a str; 2]>,
) -> Result<Ids, DbError> {
    let mut ids = read_ids(db, dict)?;
    let mut missing: Vec<[&str; 2]> = wanted
        .filter(|[a, b]| !ids.get(*a).is_some_and(|m| m.contains_key(*b)))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(ids);
    }
    let mut columns = vec![dict.key[0], dict.key[1]];
    columns.extend(dict.derived.map(|d| d.0));
    for chunk in missing.chunks(DICT_ROWS_PER_INSERT) {
        let mut params = Vec::with_capacity(chunk.len() * columns.len());
        for [a, b] in chunk {
            params.push(Value::from(*a));
            params.push(Value::from(*b));
            if let Some((_, derive)) = dict.derived {
                params.push(Value::from(derive(a)));
            }
        }
        let sql = insert_entries(dict, &columns, chunk.len());
        db.execute(&sql, &params)?;
    }
    ids = read_ids(db, dict)?;
    Ok(ids)
}

/// `INSERT INTO table (columns) VALUES (…), (…) ON CONFLICT (key) DO NOTHING` for `rows` rows.
fn insert_entries(dict: &Dictionary, columns: &[&str], rows: usize) -> String {
    let width = columns.len();
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=width).map(|c| format!("?{}", r * width + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}, {}) DO NOTHING",
        dict.table,
        columns.join(", "),
        values.join(", "),
        dict.key[0],
        dict.key[1]
    )
}

/// Every entry of a dictionary table.
fn read_ids(db: &Db, dict: &Dictionary) -> Result<Ids, DbError> {
    let sql = format!(
        "SELECT {}, {}, {} FROM {}",
        dict.id, dict.key[0], dict.key[1], dict.table
    );
    let mut ids = Ids::new();
    db.for_each(&sql, &[], |r| {
        ids.entry(r.text(1)?)
            .or_default()
            .insert(r.text(2)?, r.i64(0)?);
        Ok(())
    })?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_is_what_comes_before_the_first_dot() {
        assert_eq!(base_of("sustained_tflops"), "sustained_tflops");
        assert_eq!(base_of("throttle_s.sw_thermal"), "throttle_s");
        assert_eq!(base_of("a.b.c"), "a");
        assert_eq!(base_of(".x"), "");
    }

    /// SQLite's plan of a history's search with both filters: the set's values through their
    /// key, metric and subject ids from the dictionaries' indexes, no table scanned.
    #[test]
    fn a_history_searches_through_the_keys() {
        let dir =
            std::env::temp_dir().join(format!("hallmark-metrics-plan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let (sql, params) = set_rows_query(1, Some("m"), Some("s"));
        let conn = store.db.sqlite().expect("a SQLite store");
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(&params), |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        drop(stmt);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(plan.iter().all(|p| !p.starts_with("SCAN")), "{plan:?}");
        let values = plan.iter().find(|p| p.contains(" v ")).unwrap();
        assert!(
            values.contains("PRIMARY KEY")
                && values.contains("metric_id=?")
                && values.contains("subject_id=?"),
            "{plan:?}"
        );
    }

    #[test]
    fn dictionary_entries_are_numbered_row_by_row() {
        assert_eq!(
            insert_entries(&NAMES, &["metric", "unit", "base"], 2),
            "INSERT INTO metric_names (metric, unit, base) VALUES (?1, ?2, ?3), (?4, ?5, ?6) \
             ON CONFLICT (metric, unit) DO NOTHING"
        );
    }
}
