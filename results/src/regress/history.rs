//! `hallmark history`: the series of a metric over the runs of a plan, oldest first, with the
//! change points `hallmark_compare::change_points_sparse` finds (e-divisive with a t-test, as
//! Apache Otava does it; deterministic).
//!
//! A series is one plan, hall, subject and metric: runs of different plans or halls are never
//! mixed in one series. Every run of the series' plan and hall with stored metrics is a point;
//! a run that did not measure the metric is a point with `value: null`, skipped by the change-point
//! search (absent is never 0).

use super::{MetricKey, RegressError};
use hallmark_compare::{change_points_sparse, Params};
use hallmark_store::{HistoryQuery, RunMetrics, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One run of a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRun {
    pub run_id: String,
    pub name: String,
    pub plan_name: String,
    pub plan_sha256: String,
    pub halls: Vec<String>,
    pub started_at_ns: i64,
}

/// One point of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub run_id: String,
    pub started_at_ns: i64,
    pub value: Option<f64>,
}

/// A change in the level of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesChange {
    /// The run where the new level starts.
    pub run_id: String,
    /// Its position in `points`.
    pub index: usize,
    /// `100 · (mean_after − mean_before) / mean_before`; `null` when `mean_before` is 0.
    pub delta_pct: Option<f64>,
    pub p_value: f64,
    pub mean_before: f64,
    pub mean_after: f64,
}

/// A series: one plan, hall, subject and metric over its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub plan_name: String,
    /// The halls of the series' runs, joined with ", ".
    pub hall: String,
    pub kind: String,
    pub subject: String,
    pub metric: String,
    pub unit: String,
    pub points: Vec<Point>,
    pub change_points: Vec<SeriesChange>,
}

/// What `hallmark history --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The runs read, oldest first.
    pub runs: Vec<HistoryRun>,
    /// Plans whose text changed within the history (more than one SHA-256 for one plan name):
    /// their series span the change, which is worth knowing when a change point sits there.
    pub plans_edited: Vec<String>,
    /// Series with change points first, then the rest, each by plan, hall, kind, subject, metric.
    pub series: Vec<Series>,
}

/// Reads the history `query` selects and finds each series' change points.
pub fn history(
    store: &Store,
    query: &HistoryQuery,
    params: &Params,
) -> Result<History, RegressError> {
    let runs = store.metric_history(query)?;
    let mut groups: BTreeMap<(String, String), Vec<&RunMetrics>> = BTreeMap::new();
    for r in &runs {
        groups
            .entry((r.run.plan_name.clone(), r.halls.join(", ")))
            .or_default()
            .push(r);
    }
    let mut series = Vec::new();
    for ((plan, hall), group) in &groups {
        series.extend(group_series(plan, hall, group, params)?);
    }
    series.sort_by(|a, b| {
        let key = |s: &Series| {
            (
                s.change_points.is_empty(),
                s.plan_name.clone(),
                s.hall.clone(),
                s.kind.clone(),
                s.subject.clone(),
                s.metric.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(History {
        runs: runs.iter().map(history_run).collect(),
        plans_edited: plans_edited(&runs),
        series,
    })
}

fn history_run(r: &RunMetrics) -> HistoryRun {
    HistoryRun {
        run_id: r.run.run_id.as_str().to_string(),
        name: r.run.name.clone(),
        plan_name: r.run.plan_name.clone(),
        plan_sha256: r.plan_sha256.clone(),
        halls: r.halls.clone(),
        started_at_ns: r.run.started_at_ns,
    }
}

fn plans_edited(runs: &[RunMetrics]) -> Vec<String> {
    let mut shas: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for r in runs {
        shas.entry(&r.run.plan_name)
            .or_default()
            .insert(&r.plan_sha256);
    }
    shas.into_iter()
        .filter(|(_, s)| s.len() > 1)
        .map(|(p, _)| p.to_string())
        .collect()
}

/// The series of one plan and hall: a point per run for every subject and metric seen in any.
fn group_series(
    plan: &str,
    hall: &str,
    runs: &[&RunMetrics],
    params: &Params,
) -> Result<Vec<Series>, RegressError> {
    let mut values: BTreeMap<MetricKey, (String, Vec<Option<f64>>)> = BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        for row in &run.rows {
            let (_, v) = values
                .entry(MetricKey::of(row))
                .or_insert_with(|| (row.unit.clone(), Vec::new()));
            v.resize(i, None);
            v.push(row.value);
        }
    }
    let mut out = Vec::with_capacity(values.len());
    for (key, (unit, mut v)) in values {
        v.resize(runs.len(), None);
        let found = change_points_sparse(&v, params).map_err(|e| RegressError::Series {
            subject: key.subject.clone(),
            metric: key.metric.clone(),
            source: e,
        })?;
        let points: Vec<Point> = runs
            .iter()
            .zip(&v)
            .map(|(r, value)| Point {
                run_id: r.run.run_id.as_str().to_string(),
                started_at_ns: r.run.started_at_ns,
                value: *value,
            })
            .collect();
        let change_points = found
            .into_iter()
            .map(|cp| SeriesChange {
                run_id: points[cp.index].run_id.clone(),
                index: cp.index,
                delta_pct: cp.delta_pct,
                p_value: cp.p_value,
                mean_before: cp.mean_before,
                mean_after: cp.mean_after,
            })
            .collect();
        out.push(Series {
            plan_name: plan.to_string(),
            hall: hall.to_string(),
            kind: key.kind,
            subject: key.subject,
            metric: key.metric,
            unit,
            points,
            change_points,
        });
    }
    Ok(out)
}
