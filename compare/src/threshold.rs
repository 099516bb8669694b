//! Noise thresholds and the judgement of one change, the way rustc-perf judges a benchmark
//! result (its docs/comparison-analysis.md): a relative change is significant when it lies
//! above the upper fence of the subject's historic relative changes.
//!
//! - **History.** The values of one subject and metric in earlier runs, oldest first, ending at
//!   BASE (NEW is not part of it). Absent runs (`None`) are skipped — the delta is taken between
//!   consecutive *present* values — and a pair whose earlier value is 0 gives no delta (a
//!   relative change from 0 is undefined). Deltas are absolute relative changes
//!   `|vᵢ − vᵢ₋₁| / |vᵢ₋₁|`.
//! - **Quartiles.** Tukey's hinges as rustc-perf states them: sort the K deltas; Q1 is the
//!   median of the lower half and Q3 the median of the upper half, each half holding ⌊K/2⌋
//!   values (the middle value is in neither when K is odd); the median of an even count is the
//!   mean of its two middle values.
//! - **Threshold.** `100 · (Q3 + 3 · (Q3 − Q1))` percent, from at least
//!   [`MIN_HISTORY_DELTAS`] deltas; with fewer, the metric's stated default
//!   ([`crate::metric::KNOWN_METRICS`]). The result says which.
//! - **Judgement.** `Δ % = 100 · (NEW − BASE) / BASE`; significant when `|Δ %| > threshold`
//!   (strictly). Direction by the sign of NEW − BASE and the metric's [`Better`]; `none` when not
//!   significant. An absent side gives no Δ and is not significant, but is listed. BASE = 0 with
//!   NEW ≠ 0 is an unbounded relative change: Δ % is absent (not representable) and the change is
//!   significant; 0 → 0 is Δ 0 %.

use serde::{Deserialize, Serialize};

use crate::metric::{Better, MetricPolicy};

/// Fewer deltas than this (that is, fewer than 11 runs with the metric present and non-zero
/// predecessors) and the metric's default threshold is used.
pub const MIN_HISTORY_DELTAS: usize = 10;

/// rustc-perf's fence: Q3 plus this many interquartile ranges.
pub const IQR_MULTIPLIER: f64 = 3.0;

/// Where a threshold came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ThresholdSource {
    /// From the history: `runs` present values gave `deltas` relative changes.
    History { runs: usize, deltas: usize },
    /// The metric's default; the history had only `deltas` relative changes.
    Default { metric: String, deltas: usize },
}

impl std::fmt::Display for ThresholdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ThresholdSource::History { runs, .. } => write!(f, "history of {runs} runs"),
            ThresholdSource::Default { metric, .. } => write!(f, "default for {metric}"),
        }
    }
}

/// A noise threshold in percent and its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub pct: f64,
    pub source: ThresholdSource,
}

/// Which way a change went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Regression,
    Improvement,
    /// Not significant, or a side absent.
    None,
}

/// One subject and metric from BASE to NEW: the flat record `hallmark compare --json` lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub subject: String,
    pub metric: String,
    /// The value in BASE; `null` when BASE did not measure it.
    pub base: Option<f64>,
    /// The value in NEW; `null` when NEW did not measure it.
    pub new: Option<f64>,
    /// `100 · (new − base) / base`; `null` when a side is absent or base is 0.
    pub delta_pct: Option<f64>,
    pub threshold_pct: f64,
    /// "history of K runs" or "default for METRIC".
    pub threshold_from: String,
    pub significant: bool,
    pub direction: Direction,
}

/// Bad input to a threshold or a judgement.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    #[error(
        "run {index} of the history of {metric} is {value}: a measured value must be finite \
         (give an unmeasured run as absent)"
    )]
    NonFiniteHistory {
        metric: String,
        index: usize,
        value: f64,
    },
    #[error(
        "the {side} value of {metric} for {subject} is {value}: a measured value must be finite \
         (give an unmeasured one as absent)"
    )]
    NonFiniteValue {
        subject: String,
        metric: String,
        side: &'static str,
        value: f64,
    },
    #[error(
        "the default threshold of {metric} is {value} %: give a finite percentage of 0 or more"
    )]
    BadDefault { metric: String, value: f64 },
}

/// The median of sorted, non-empty `v`.
fn median(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Q1 and Q3 of sorted `v` (at least 2 values) as Tukey's hinges without the middle value.
pub fn quartiles(sorted: &[f64]) -> (f64, f64) {
    let half = sorted.len() / 2;
    (
        median(&sorted[..half]),
        median(&sorted[sorted.len() - half..]),
    )
}

/// The absolute relative changes between consecutive present, non-zero-predecessor values.
fn relative_deltas(
    metric: &str,
    history: &[Option<f64>],
) -> Result<(usize, Vec<f64>), ThresholdError> {
    let mut runs = 0;
    let mut prev: Option<f64> = None;
    let mut deltas = Vec::new();
    for (index, value) in history.iter().enumerate() {
        let Some(v) = *value else { continue };
        if !v.is_finite() {
            return Err(ThresholdError::NonFiniteHistory {
                metric: metric.to_string(),
                index,
                value: v,
            });
        }
        runs += 1;
        if let Some(p) = prev {
            if p != 0.0 {
                deltas.push(((v - p) / p).abs());
            }
        }
        prev = Some(v);
    }
    Ok((runs, deltas))
}

/// The noise threshold of `metric` from `history` (oldest first, ending at BASE).
pub fn noise_threshold(
    metric: &str,
    policy: &MetricPolicy,
    history: &[Option<f64>],
) -> Result<Threshold, ThresholdError> {
    let d = policy.default_threshold_pct;
    if !(d >= 0.0 && d.is_finite()) {
        return Err(ThresholdError::BadDefault {
            metric: metric.to_string(),
            value: d,
        });
    }
    let (runs, mut deltas) = relative_deltas(metric, history)?;
    if deltas.len() < MIN_HISTORY_DELTAS {
        return Ok(Threshold {
            pct: d,
            source: ThresholdSource::Default {
                metric: metric.to_string(),
                deltas: deltas.len(),
            },
        });
    }
    deltas.sort_by(f64::total_cmp);
    let (q1, q3) = quartiles(&deltas);
    Ok(Threshold {
        pct: 100.0 * (q3 + IQR_MULTIPLIER * (q3 - q1)),
        source: ThresholdSource::History {
            runs,
            deltas: deltas.len(),
        },
    })
}

/// Judges `subject`'s `metric` from `base` to `new` against `threshold`.
pub fn judge(
    subject: &str,
    metric: &str,
    policy: &MetricPolicy,
    base: Option<f64>,
    new: Option<f64>,
    threshold: &Threshold,
) -> Result<Change, ThresholdError> {
    for (side, value) in [("base", base), ("new", new)] {
        if let Some(v) = value.filter(|v| !v.is_finite()) {
            return Err(ThresholdError::NonFiniteValue {
                subject: subject.to_string(),
                metric: metric.to_string(),
                side,
                value: v,
            });
        }
    }
    let (delta_pct, significant, up) = match (base, new) {
        (Some(b), Some(n)) if b == 0.0 => ((n == 0.0).then_some(0.0), n != 0.0, n > b),
        (Some(b), Some(n)) => {
            let pct = 100.0 * (n - b) / b;
            (Some(pct), pct.abs() > threshold.pct, n > b)
        }
        _ => (None, false, false),
    };
    let direction = match (significant, up, policy.better) {
        (false, _, _) => Direction::None,
        (true, true, Better::Higher) | (true, false, Better::Lower) => Direction::Improvement,
        (true, true, Better::Lower) | (true, false, Better::Higher) => Direction::Regression,
    };
    Ok(Change {
        subject: subject.to_string(),
        metric: metric.to_string(),
        base,
        new,
        delta_pct,
        threshold_pct: threshold.pct,
        threshold_from: threshold.source.to_string(),
        significant,
        direction,
    })
}
