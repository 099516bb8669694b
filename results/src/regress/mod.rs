//! Regression across runs, above the store: the per-subject metrics of a run stored once
//! ([`store_metrics`], [`ensure_metrics`]), `hallmark compare` ([`compare_runs`]: two runs judged
//! subject by subject against noise thresholds from their history, with the comparability check
//! and context diff of [`context`]) and `hallmark history` ([`history()`]: series over the runs of
//! a plan with their change points). The statistics are `hallmark-compare`'s; the metrics are
//! [`crate::metrics`]'; this module reads and writes the store and joins them. docs/COMPARE.md.

mod compare;
pub mod context;
mod history;

pub use compare::{compare_runs, ChangeRow, RunComparison, RunRef};
pub use context::Difference;
pub use history::{history, History, HistoryRun, Point, Series, SeriesChange};

use crate::metrics::{compute_metrics, MetricValue, SubjectKind};
use hallmark_compare::{ChangePointError, ThresholdError};
use hallmark_store::{MetricRow, Store, StoreError};

/// What can go wrong comparing runs or reading a history.
#[derive(Debug, thiserror::Error)]
pub enum RegressError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Threshold(#[from] ThresholdError),
    #[error("the series of {metric} for {subject}: {source}")]
    Series {
        subject: String,
        metric: String,
        source: ChangePointError,
    },
    #[error("BASE and NEW are the same run {0}: give two different runs")]
    SameRun(String),
    #[error(
        "the stored metric {metric} of {subject} has the unknown subject kind {kind:?} (stored by \
         a newer hallmark? read it with that version)"
    )]
    UnknownKind {
        kind: String,
        subject: String,
        metric: String,
    },
}

/// A subject's metric, the key of a series and of a change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MetricKey {
    pub kind: String,
    pub subject: String,
    pub metric: String,
}

impl MetricKey {
    pub(crate) fn of(r: &MetricRow) -> MetricKey {
        MetricKey {
            kind: r.kind.clone(),
            subject: r.subject.clone(),
            metric: r.metric.clone(),
        }
    }
}

/// The store's rows of computed metrics.
pub fn metric_rows(values: &[MetricValue]) -> Vec<MetricRow> {
    values
        .iter()
        .map(|v| MetricRow {
            kind: v.kind.as_str().to_string(),
            subject: v.subject.clone(),
            metric: v.metric.clone(),
            value: v.value,
            unit: v.unit.clone(),
        })
        .collect()
}

/// Computes run `run_id`'s metrics and stores them (replacing an earlier set), stamped with
/// `now_ns` and this hallmark's version; returns the rows stored.
pub fn store_metrics(
    store: &mut Store,
    run_id: &str,
    now_ns: i64,
) -> Result<Vec<MetricRow>, StoreError> {
    let values = compute_metrics(store, run_id)?;
    store_metric_values(store, run_id, &values, now_ns)
}

/// Stores metrics already computed for run `run_id` (as [`crate::run_summary_with_metrics`] gives
/// them), replacing an earlier set, stamped with `now_ns` and this hallmark's version.
pub fn store_metric_values(
    store: &mut Store,
    run_id: &str,
    values: &[MetricValue],
    now_ns: i64,
) -> Result<Vec<MetricRow>, StoreError> {
    let rows = metric_rows(values);
    store.store_run_metrics(run_id, now_ns, env!("CARGO_PKG_VERSION"), &rows)?;
    Ok(rows)
}

/// The run's stored metrics; a run stored before its metrics were (an older hallmark's, or one
/// whose end was not recorded) has them computed and stored now, stamped `now_ns`.
pub fn ensure_metrics(
    store: &mut Store,
    run_id: &str,
    now_ns: i64,
) -> Result<Vec<MetricRow>, StoreError> {
    if let Some(set) = store.run_metrics(run_id)? {
        return Ok(set.rows);
    }
    store_metrics(store, run_id, now_ns)
}

/// Where a run's metrics came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricSource {
    /// Stored with the run (what `compare` and `history` read).
    Stored,
    /// Computed now from the run's telemetry, not stored: the run has no stored set.
    Computed,
}

/// The run's metrics as values: the stored set, or computed now (not stored) for a run without one.
pub fn metric_values(
    store: &Store,
    run_id: &str,
) -> Result<(Vec<MetricValue>, MetricSource), RegressError> {
    let Some(set) = store.run_metrics(run_id)? else {
        return Ok((compute_metrics(store, run_id)?, MetricSource::Computed));
    };
    let values = set
        .rows
        .into_iter()
        .map(|r| match SubjectKind::parse(&r.kind) {
            Some(kind) => Ok(MetricValue {
                kind,
                subject: r.subject,
                metric: r.metric,
                value: r.value,
                unit: r.unit,
            }),
            None => Err(RegressError::UnknownKind {
                kind: r.kind,
                subject: r.subject,
                metric: r.metric,
            }),
        })
        .collect::<Result<_, _>>()?;
    Ok((values, MetricSource::Stored))
}
