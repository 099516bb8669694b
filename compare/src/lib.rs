//! hallmark-compare: the statistics behind `hallmark compare` and `hallmark history`, as a pure
//! library — no I/O, no clock, no entropy; the same input gives the same output, bit for bit.
//!
//! - [`threshold`]: the noise threshold of a subject and metric from the history of its relative
//!   run-to-run changes (rustc-perf's Q3 + 3·IQR), a stated per-metric default when the history
//!   is short, and the judgement of one BASE → NEW change (Δ %, significant, direction).
//! - [`metric`]: per metric, which way is better and the default threshold, as data.
//! - [`changepoint`]: change points in a series of runs, e-divisive with a t-test, reproducing
//!   Apache Otava's `compute_change_points`.
//!
//! Reading the values out of the run store and the commands that print them are not here; see
//! docs/COMPARE.md for the methods and what is not built yet.

pub mod changepoint;
pub mod metric;
pub mod threshold;

pub use changepoint::{
    change_points, change_points_sparse, ChangePoint, ChangePointError, MergeRetest, Params,
};
pub use metric::{known_metric, policy_of, Better, MetricPolicy, KNOWN_METRICS};
pub use threshold::{
    judge, noise_threshold, Change, Direction, Threshold, ThresholdError, ThresholdSource,
};
