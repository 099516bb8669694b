//! The five-number summary of a distribution as the charts draw it: quartiles by linear
//! interpolation between order statistics (Hyndman and Fan's type 7, numpy's and R's default),
//! whiskers at the most extreme values within 1.5 × IQR of the box (Tukey), the rest outliers.

use serde::Serialize;

/// A distribution's summary; built only from at least one finite value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoxStats {
    /// Values summarised (finite ones).
    pub n: usize,
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub max: f64,
    pub mean: f64,
    /// The whiskers' ends: the most extreme values within 1.5 × IQR of the box.
    pub whisker_lo: f64,
    pub whisker_hi: f64,
}

/// The type-7 quantile `p` of sorted, non-empty `v`.
fn quantile(v: &[f64], p: f64) -> f64 {
    let h = (v.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + (h - lo as f64) * (v[hi] - v[lo])
}

impl BoxStats {
    /// The summary of the finite values of `values`; `None` when there is none.
    pub fn of(values: &[f64]) -> Option<BoxStats> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let (q1, q3) = (quantile(&v, 0.25), quantile(&v, 0.75));
        let iqr = q3 - q1;
        let (fence_lo, fence_hi) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
        let whisker_lo = v.iter().copied().find(|x| *x >= fence_lo).unwrap_or(q1);
        let whisker_hi = v
            .iter()
            .rev()
            .copied()
            .find(|x| *x <= fence_hi)
            .unwrap_or(q3);
        Some(BoxStats {
            n: v.len(),
            min: v[0],
            q1,
            median: quantile(&v, 0.5),
            q3,
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
            whisker_lo,
            whisker_hi,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type7_quartiles_and_tukey_whiskers() {
        // numpy.percentile([1..=9, 100], [25, 50, 75]) = 3.25, 5.5, 7.75
        let mut v: Vec<f64> = (1..=9).map(f64::from).collect();
        v.push(100.0);
        let b = BoxStats::of(&v).unwrap();
        assert_eq!((b.q1, b.median, b.q3), (3.25, 5.5, 7.75));
        assert_eq!((b.min, b.max, b.n), (1.0, 100.0, 10));
        assert_eq!((b.whisker_lo, b.whisker_hi), (1.0, 9.0));
        assert_eq!(b.mean, 14.5);
        let one = BoxStats::of(&[f64::NAN, 2.0]).unwrap();
        assert_eq!((one.n, one.q1, one.q3, one.whisker_hi), (1, 2.0, 2.0, 2.0));
        assert_eq!(BoxStats::of(&[f64::INFINITY]), None);
        assert_eq!(BoxStats::of(&[]), None);
    }
}
