//! The significance test between the two segments beside a change point: Student's two-sample
//! t-test with pooled variance, exactly as Otava's `TTestSignificanceTester.compare` calls it.
//!
//! Otava passes numpy's *population* standard deviations (`np.std`, ddof = 0; 0 for a segment of
//! one point) to `scipy.stats.ttest_ind_from_stats` (equal variances, two-sided), which treats
//! them as sample deviations:
//!
//! ```text
//! ν = n₁ + n₂ − 2,  s² = ((n₁ − 1)·σ₁² + (n₂ − 1)·σ₂²) / ν,  t = (x̄₁ − x̄₂) / √(s²·(1/n₁ + 1/n₂))
//! p = P(|T_ν| ≥ |t|)
//! ```
//!
//! and p = 1 when n₁ + n₂ ≤ 2. Means and deviations are summed the way numpy sums a contiguous
//! float64 array (`pairwise_sum`: plain below 8 elements, eight interleaved accumulators up to
//! 128, halves above, added to 0.0), so that the figures agree with Otava's to the last bits
//! rather than to a tolerance.

use super::student::two_sided_p;

/// numpy's `pairwise_sum_DOUBLE` (without the leading `0.0 +`).
fn pairwise(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for x in &a[whole..] {
            res += x;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise(&a[..n2]) + pairwise(&a[n2..])
    }
}

/// `np.sum` of a contiguous float64 array.
pub(crate) fn np_sum(a: &[f64]) -> f64 {
    0.0 + pairwise(a)
}

/// `np.mean` (NaN for an empty slice, which no caller passes).
pub(crate) fn np_mean(a: &[f64]) -> f64 {
    np_sum(a) / a.len() as f64
}

/// `np.std` with ddof = 0.
fn np_std(a: &[f64]) -> f64 {
    let mean = np_mean(a);
    let squares: Vec<f64> = a.iter().map(|x| (x - mean) * (x - mean)).collect();
    (np_sum(&squares) / a.len() as f64).sqrt()
}

/// The two segments' statistics and the p-value that they have the same mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TTest {
    pub mean_1: f64,
    pub mean_2: f64,
    pub std_1: f64,
    pub std_2: f64,
    pub p_value: f64,
}

impl TTest {
    /// Otava's `forward_rel_change`: `mean₂/mean₁ − 1`, 0 where `mean₁ = 0`.
    fn forward_rel_change(&self) -> f64 {
        if self.mean_1 == 0.0 {
            0.0
        } else {
            self.mean_2 / self.mean_1 - 1.0
        }
    }

    /// Otava's `backward_rel_change`: `mean₁/mean₂ − 1`, 0 where `mean₂ = 0`.
    fn backward_rel_change(&self) -> f64 {
        if self.mean_2 == 0.0 {
            0.0
        } else {
            self.mean_1 / self.mean_2 - 1.0
        }
    }

    /// Otava's `change_magnitude`: the larger of the two relative changes' absolute values.
    pub fn magnitude(&self) -> f64 {
        let (f, b) = (
            self.forward_rel_change().abs(),
            self.backward_rel_change().abs(),
        );
        // Python's max(f, b): b only if strictly greater.
        if b > f {
            b
        } else {
            f
        }
    }
}

/// Compares `left` and `right` (both non-empty).
pub(crate) fn compare(left: &[f64], right: &[f64]) -> TTest {
    let (n1, n2) = (left.len(), right.len());
    let mean_1 = np_mean(left);
    let mean_2 = np_mean(right);
    let std_1 = if n1 >= 2 { np_std(left) } else { 0.0 };
    let std_2 = if n2 >= 2 { np_std(right) } else { 0.0 };
    let p_value = if n1 + n2 > 2 {
        let v1 = if n1 == 1 { 0.0 } else { std_1 * std_1 };
        let v2 = if n2 == 1 { 0.0 } else { std_2 * std_2 };
        let df = (n1 + n2) as f64 - 2.0;
        let svar = ((n1 - 1) as f64 * v1 + (n2 - 1) as f64 * v2) / df;
        let denom = (svar * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
        let t = (mean_1 - mean_2) / denom;
        two_sided_p(t, df)
    } else {
        1.0
    };
    TTest {
        mean_1,
        mean_2,
        std_1,
        std_2,
        p_value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_is_numpys_order() {
        // Nine elements: accumulators r0..r7 = a0..a7, summed as ((r0+r1)+(r2+r3))+((r4+r5)+
        // (r6+r7)), then a8. The two ones meet each other before 1e16 and survive; added in
        // order, each is lost to rounding beside 1e16.
        let a = [1e16, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, -1e16];
        assert_eq!(np_sum(&a), 2.0);
        let mut sequential = 0.0;
        for x in a {
            sequential += x;
        }
        assert_eq!(sequential, 0.0);
    }

    #[test]
    fn hand_worked_t_test() {
        // left 1,2,3 (mean 2, σ² = 2/3), right 5,6,7 (mean 6, σ² = 2/3): ν = 4,
        // s² = (2·2/3 + 2·2/3)/4 = 2/3, t = −4/√(2/3 · 2/3) = −6, p = I_{4/40}(2, 1/2).
        let r = compare(&[1.0, 2.0, 3.0], &[5.0, 6.0, 7.0]);
        assert_eq!((r.mean_1, r.mean_2), (2.0, 6.0));
        // For ν = 4, P(|T| ≥ t) = 1 − (t/√(t²+4))·(1 + 2/(t²+4)) = 1 − (6/√40)(1 + 1/20).
        let want = 1.0 - 6.0 / 40f64.sqrt() * 1.05;
        assert!((r.p_value - want).abs() < 1e-14, "{} vs {want}", r.p_value);
        assert!((r.magnitude() - 2.0).abs() < 1e-15);
    }

    #[test]
    fn degenerate_segments() {
        // Two single points: no degrees of freedom, p = 1 as in Otava.
        assert_eq!(compare(&[1.0], &[2.0]).p_value, 1.0);
        // Constant and different: t = ∞, p = 0. Constant and equal: 0/0, p = NaN.
        assert_eq!(compare(&[1.0, 1.0], &[2.0, 2.0]).p_value, 0.0);
        assert!(compare(&[1.0, 1.0], &[1.0, 1.0]).p_value.is_nan());
        // Means of zero give relative changes of 0 (Otava's value_if_nan).
        let r = compare(&[0.0, 0.0], &[2.0, 2.0]);
        assert_eq!(r.magnitude(), 1.0);
    }
}
