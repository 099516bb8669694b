//! Change points in a series of runs: e-divisive with significance by a t-test, as Apache Otava
//! (formerly Hunter, MongoDB's signal-processing-algorithms) computes them in
//! `otava.analysis.compute_change_points` (Fleming et al., "Hunter: Using Change Point Detection
//! to Hunt for Performance Regressions", ICPE 2023). Reproduced from Otava 0.8.0's source, step
//! by step, and checked against it by `tests/otava_agreement.rs`:
//!
//! 1. **Split.** Windows of `window_len` points start at 0 and move on by `⌊window_len/2⌋`, or to
//!    the last change point the window found if that is further. In each window the divisive
//!    detector repeats: over the window's current segments (those of two or more points), take
//!    the candidate with the largest `q̂` (`edivisive`); t-test the two parts of its segment
//!    (`ttest`); keep it if `p ≤ first-pass p` and go on, else stop. The first-pass level is
//!    `10·max_pvalue` below 0.05, `2·max_pvalue` below 0.5, `max_pvalue` above. The union of
//!    every window's change points (the "weak" ones) is then sorted and each re-tested between
//!    its neighbours over the whole series.
//! 2. **Merge.** While any remain: take the weak change point with the largest p (the first on
//!    ties); if every p is below `max_pvalue`, take instead the one with the smallest magnitude
//!    (`max(|m₂/m₁ − 1|, |m₁/m₂ − 1|)`, a ratio taken as 0 where its denominator is 0) and stop
//!    if that magnitude exceeds `min_magnitude`. Remove the one taken and re-test the change point
//!    now at its position and the one after it. (Otava re-tests those two, not the one before the
//!    removed point, whose right-hand segment grew; that one keeps its earlier figures — p-value
//!    and means — until it is itself removed, and can survive on a p-value its segments no longer
//!    have. Reproduced as is by default, [`MergeRetest::Otava`], so that both give the same
//!    answer; [`MergeRetest::BothNeighbours`] re-tests the change points on both sides instead.)
//!
//! Differences from Otava, all at the edges: absent points are skipped (`change_points_sparse`)
//! or refused instead of forward-filled; non-finite values and values beyond ±1e100 (whose
//! squares could overflow the sums) are refused; Δ % is `None` where the mean before is 0
//! (Otava prints 0). Otava's incremental mode (`new_data`, `old_weak_cp`) is not reproduced:
//! callers recompute the whole series.

mod edivisive;
mod student;
mod ttest;

use serde::{Deserialize, Serialize};

use ttest::TTest;

/// Otava's `compute_change_points` defaults: a window of 50 points, p < 0.001, no magnitude floor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Points per analysis window (at least 2).
    pub window_len: usize,
    /// Largest p-value of a change point kept (in (0, 1]).
    pub max_pvalue: f64,
    /// A change point whose relative magnitude is not above this is dropped even when
    /// significant (≥ 0; 0 drops only changes of exactly 0).
    pub min_magnitude: f64,
    /// Which change points the merge re-tests after removing one.
    #[serde(default)]
    pub merge_retest: MergeRetest,
}

/// Which change points the merge step re-tests after removing one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeRetest {
    /// As Otava 0.8.0: the one now at the removed point's position and the one after it. The one
    /// before keeps figures from segments that have since grown (see apache/otava pull request
    /// 96, where its author suspects this code).
    #[default]
    Otava,
    /// The two whose segments changed: the ones just before and just after the removed point.
    BothNeighbours,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            window_len: 50,
            max_pvalue: 0.001,
            min_magnitude: 0.0,
            merge_retest: MergeRetest::Otava,
        }
    }
}

/// The largest magnitude accepted in a series: the t-test squares and sums values.
pub const MAX_ABS_VALUE: f64 = 1e100;

/// The longest analysis window: a window of n points takes a few n × n matrices of f64
/// (8 MB each at 1000; Otava's own default is 50).
pub const MAX_WINDOW_LEN: usize = 1000;

/// One change point: where the new level starts and how sure and how large the change is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChangePoint {
    /// Index of the first point of the new level (in the series given; for
    /// `change_points_sparse`, the index among all points, absent ones included).
    pub index: usize,
    /// Two-sided p-value of Student's t-test between the segments before and after.
    pub p_value: f64,
    /// Mean of the segment before (from the previous change point or the start).
    pub mean_before: f64,
    /// Mean of the segment after (up to the next change point or the end).
    pub mean_after: f64,
    /// Population standard deviation of the segment before (0 for a single point).
    pub stddev_before: f64,
    /// Population standard deviation of the segment after (0 for a single point).
    pub stddev_after: f64,
    /// `(mean_after / mean_before − 1) · 100`; `None` where `mean_before` is 0.
    pub delta_pct: Option<f64>,
}

/// What is wrong with a series or the parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangePointError {
    #[error(
        "point {index} of the series is {value}, not a number: give absent points as absent \
         (change_points_sparse skips them), never as NaN or infinity"
    )]
    NonFinite { index: usize, value: f64 },
    #[error(
        "point {index} of the series is {value}, beyond ±{MAX_ABS_VALUE:e}: rescale the series \
         (change points do not depend on the unit)"
    )]
    OutOfRange { index: usize, value: f64 },
    #[error("window_len is {0}: an analysis window needs at least 2 points")]
    WindowTooShort(usize),
    #[error(
        "window_len is {0}: at most {MAX_WINDOW_LEN} points per analysis window (50 is usual)"
    )]
    WindowTooLong(usize),
    #[error("max_pvalue is {0}: give a probability in (0, 1], such as 0.001")]
    MaxPvalue(f64),
    #[error("min_magnitude is {0}: give a relative change of 0 or more, such as 0.0 or 0.05")]
    MinMagnitude(f64),
}

impl Params {
    fn check(&self) -> Result<(), ChangePointError> {
        if self.window_len < 2 {
            return Err(ChangePointError::WindowTooShort(self.window_len));
        }
        if self.window_len > MAX_WINDOW_LEN {
            return Err(ChangePointError::WindowTooLong(self.window_len));
        }
        if !(self.max_pvalue > 0.0 && self.max_pvalue <= 1.0) {
            return Err(ChangePointError::MaxPvalue(self.max_pvalue));
        }
        if !(self.min_magnitude >= 0.0 && self.min_magnitude.is_finite()) {
            return Err(ChangePointError::MinMagnitude(self.min_magnitude));
        }
        Ok(())
    }

    /// Otava's first-pass (weak change point) level.
    fn first_pass_pvalue(&self) -> f64 {
        let p = self.max_pvalue;
        if p < 0.05 {
            p * 10.0
        } else if p < 0.5 {
            p * 2.0
        } else {
            p
        }
    }
}

/// The change points of `series`, oldest first. Empty, one-point and constant series have
/// none. Every value must be finite and within ±[`MAX_ABS_VALUE`].
pub fn change_points(
    series: &[f64],
    params: &Params,
) -> Result<Vec<ChangePoint>, ChangePointError> {
    params.check()?;
    for (index, &value) in series.iter().enumerate() {
        if !value.is_finite() {
            return Err(ChangePointError::NonFinite { index, value });
        }
        if value.abs() > MAX_ABS_VALUE {
            return Err(ChangePointError::OutOfRange { index, value });
        }
    }
    let weak = split(series, params.window_len, params.first_pass_pvalue());
    let kept = merge(weak, series, params);
    Ok(kept.into_iter().map(|cp| cp.public(cp.index)).collect())
}

/// The change points of a series with absent points (`None`: a run that did not measure the
/// metric), which are skipped, never read as 0. Each change point's `index` is the position in
/// `series` of the first present point of the new level.
pub fn change_points_sparse(
    series: &[Option<f64>],
    params: &Params,
) -> Result<Vec<ChangePoint>, ChangePointError> {
    let mut present = Vec::with_capacity(series.len());
    let mut positions = Vec::with_capacity(series.len());
    for (index, value) in series.iter().enumerate() {
        if let Some(v) = *value {
            present.push(v);
            positions.push(index);
        }
    }
    let found = change_points(&present, params).map_err(|e| match e {
        ChangePointError::NonFinite { index, value } => ChangePointError::NonFinite {
            index: positions[index],
            value,
        },
        ChangePointError::OutOfRange { index, value } => ChangePointError::OutOfRange {
            index: positions[index],
            value,
        },
        other => other,
    })?;
    Ok(found
        .into_iter()
        .map(|cp| ChangePoint {
            index: positions[cp.index],
            ..cp
        })
        .collect())
}

/// A change point being worked on: its index and its latest test.
#[derive(Debug, Clone, Copy)]
struct Weak {
    index: usize,
    stats: TTest,
}

impl Weak {
    fn public(&self, index: usize) -> ChangePoint {
        let s = &self.stats;
        ChangePoint {
            index,
            p_value: s.p_value,
            mean_before: s.mean_1,
            mean_after: s.mean_2,
            stddev_before: s.std_1,
            stddev_after: s.std_2,
            delta_pct: (s.mean_1 != 0.0).then(|| (s.mean_2 / s.mean_1 - 1.0) * 100.0),
        }
    }
}

/// The bounds of the segments between sorted, distinct change points over `len` points.
fn bounds(points: &[Weak], len: usize) -> Vec<usize> {
    let mut b = Vec::with_capacity(points.len() + 2);
    b.push(0);
    b.extend(points.iter().map(|p| p.index));
    b.push(len);
    b
}

/// Re-tests the change point at `pos` between its neighbours (Otava's "merge step" test).
fn retest(points: &[Weak], pos: usize, series: &[f64]) -> TTest {
    let b = bounds(points, series.len());
    let (lo, at, hi) = (b[pos], b[pos + 1], b[pos + 2]);
    ttest::compare(&series[lo..at], &series[at..hi])
}

/// The divisive detector on one window (Otava's `ChangePointDetector.get_change_points` with the
/// t-test), in window coordinates, sorted.
fn detect_window(z: &[f64], level: f64) -> Vec<Weak> {
    let window = edivisive::Window::new(z);
    let mut found: Vec<Weak> = Vec::new();
    // Each round adds a change point strictly inside a segment, so there are at most len − 1.
    for _ in 0..z.len() {
        let b = bounds(&found, z.len());
        let mut best: Option<(usize, f64, usize, usize)> = None;
        for w in b.windows(2) {
            let (s, e) = (w[0], w[1]);
            if e - s > 1 {
                let (tau, qhat) = window.candidate(s, e);
                // Python's max(): the first maximum stays.
                if best.is_none_or(|(_, q, _, _)| qhat > q) {
                    best = Some((tau, qhat, s, e));
                }
            }
        }
        let Some((tau, _, s, e)) = best else { break };
        let stats = ttest::compare(&z[s..tau], &z[tau..e]);
        if stats.p_value <= level {
            found.push(Weak { index: tau, stats });
            found.sort_by_key(|p| p.index);
        } else {
            break;
        }
    }
    found
}

/// Otava's `split`: the weak change points of every window, re-tested over the whole series.
fn split(series: &[f64], window_len: usize, level: f64) -> Vec<Weak> {
    let step = window_len / 2;
    let mut start = 0;
    let mut all: Vec<Weak> = Vec::new();
    while start < series.len() {
        let end = (start + window_len).min(series.len());
        let found = detect_window(&series[start..end], level);
        let last = found.last().map_or(0, |p| p.index + start);
        for p in found {
            let index = p.index + start;
            if !all.iter().any(|q| q.index == index) {
                all.push(Weak { index, ..p });
            }
        }
        start = last.max(start + step);
    }
    all.sort_by_key(|p| p.index);
    let retested: Vec<TTest> = (0..all.len()).map(|i| retest(&all, i, series)).collect();
    for (p, stats) in all.iter_mut().zip(retested) {
        p.stats = stats;
    }
    all
}

/// Otava's `merge`: drops the weakest change point until the rest pass both criteria.
fn merge(mut points: Vec<Weak>, series: &[f64], params: &Params) -> Vec<Weak> {
    let (max_pvalue, min_magnitude) = (params.max_pvalue, params.min_magnitude);
    // Each round removes one point or returns.
    while !points.is_empty() {
        let mut weakest = 0;
        for (i, p) in points.iter().enumerate() {
            if p.stats.p_value > points[weakest].stats.p_value {
                weakest = i;
            }
        }
        if points[weakest].stats.p_value < max_pvalue {
            weakest = 0;
            for (i, p) in points.iter().enumerate() {
                if p.stats.magnitude() < points[weakest].stats.magnitude() {
                    weakest = i;
                }
            }
            if points[weakest].stats.magnitude() > min_magnitude {
                return points;
            }
        }
        points.remove(weakest);
        let retest_at = match params.merge_retest {
            MergeRetest::Otava => [Some(weakest), Some(weakest + 1)],
            MergeRetest::BothNeighbours => [weakest.checked_sub(1), Some(weakest)],
        };
        for pos in retest_at.into_iter().flatten() {
            if pos < points.len() {
                points[pos].stats = retest(&points, pos, series);
            }
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        let bad = |p: Params| change_points(&[1.0, 2.0], &p).unwrap_err();
        let d = Params::default();
        assert_eq!(
            bad(Params { window_len: 1, ..d }),
            ChangePointError::WindowTooShort(1)
        );
        assert!(matches!(
            bad(Params {
                max_pvalue: 0.0,
                ..d
            }),
            ChangePointError::MaxPvalue(_)
        ));
        assert!(matches!(
            bad(Params {
                max_pvalue: f64::NAN,
                ..d
            }),
            ChangePointError::MaxPvalue(_)
        ));
        assert!(matches!(
            bad(Params {
                min_magnitude: -0.1,
                ..d
            }),
            ChangePointError::MinMagnitude(_)
        ));
    }

    #[test]
    fn first_pass_levels_are_otavas() {
        let level = |p| {
            Params {
                max_pvalue: p,
                ..Params::default()
            }
            .first_pass_pvalue()
        };
        assert_eq!(level(0.001), 0.01);
        assert_eq!(level(0.1), 0.2);
        assert_eq!(level(0.5), 0.5);
    }

    #[test]
    fn non_finite_and_huge_values_are_refused_where_they_are() {
        let d = Params::default();
        let e = change_points(&[1.0, f64::NAN, 2.0], &d).unwrap_err();
        assert!(matches!(e, ChangePointError::NonFinite { index: 1, .. }));
        assert!(e.to_string().contains("point 1"), "{e}");
        let e = change_points(&[1.0, 2.0, 1e101], &d).unwrap_err();
        assert!(matches!(e, ChangePointError::OutOfRange { index: 2, .. }));
        // In a sparse series the index is the position among all points.
        let e =
            change_points_sparse(&[None, Some(1.0), None, Some(f64::INFINITY)], &d).unwrap_err();
        assert!(matches!(e, ChangePointError::NonFinite { index: 3, .. }));
    }
}
