//! The e-divisive candidate of one window (Matteson and James's energy statistic, Otava's
//! `PairDistanceCalculator` with power 1 and `ChangePointDetector`).
//!
//! For a segment `Z[s..e)` split at `τ` and cut at `κ` (`s < τ < κ ≤ e`), with
//! `X = Z[s..τ)` (n points) and `Y = Z[τ..κ)` (m points):
//!
//! ```text
//! Q(τ, κ) = 2/(m+n) · Σᵢ Σⱼ |Xᵢ − Yⱼ|
//!         − 2m/((m+n)(n−1)) · Σ_{i<k} |Xᵢ − X_k|     (0 when n = 1)
//!         − 2n/((m+n)(m−1)) · Σ_{j<k} |Yⱼ − Y_k|     (0 when m = 1)
//! ```
//!
//! The candidate is the `τ` of the `(τ, κ)` that maximises `Q`, and `q̂` that maximum. Otava
//! evaluates `Q` as an `(e−s−1)²` matrix `A − B − C` (rows `τ = s+1…e−1`, columns
//! `κ = s+2…e`) built from running sums of the distance matrix, whose lower triangle (`τ ≥ κ`,
//! no split) holds 0, and takes numpy's `argmax`: the first maximum in row-major order. (Those
//! zeros never win: the first row, `n = 1`, precedes them and is never negative, since
//! `Σ_{j<k} |Yⱼ − Y_k| ≤ (m − 1) · Σⱼ |x − Yⱼ|` by the triangle inequality.) This module builds
//! the same matrix with the same sums in the same order, so its argmax is Otava's, ties
//! included.

/// The pairwise distances of one window and their running sums, as Otava precomputes them.
pub(crate) struct Window {
    n: usize,
    /// `colpre[c*n + k] = Σ_{r<k} d(r, c)` added in order of `r`, for `k ≤ c`.
    colpre: Vec<f64>,
    /// `hrow[t*n + c] = Σ_{t<c'≤c} d(t, c')` added in order of `c'`, for `c > t` (0 for `c ≤ t`).
    hrow: Vec<f64>,
}

impl Window {
    pub(crate) fn new(z: &[f64]) -> Self {
        let n = z.len();
        // d[i*n + j] = |z_i − z_j| (numpy's `np.power(…, 1.0)` is the identity).
        let mut d = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                d[i * n + j] = (z[i] - z[j]).abs();
            }
        }
        let mut colpre = vec![0.0; n * n];
        for c in 0..n {
            let mut acc = 0.0;
            for k in 0..c {
                acc += d[k * n + c];
                colpre[c * n + k + 1] = acc;
            }
        }
        let mut hrow = vec![0.0; n * n];
        for t in 0..n {
            let mut acc = 0.0;
            for c in t + 1..n {
                acc += d[t * n + c];
                hrow[t * n + c] = acc;
            }
        }
        Window { n, colpre, hrow }
    }

    /// `H(t, κ)`: the distances from `t` to `t+1 … κ−1`.
    fn h(&self, t: usize, kappa: usize) -> f64 {
        if kappa < 1 || kappa - 1 <= t {
            0.0
        } else {
            self.hrow[t * self.n + kappa - 1]
        }
    }

    /// The candidate of the interval `[s, e)` (`e − s ≥ 2`): `(τ, q̂)` in window coordinates.
    pub(crate) fn candidate(&self, s: usize, e: usize) -> (usize, f64) {
        let l = e - 1 - s;
        // V(s, c) = Σ_{s≤r<c} d(r, c), as numpy gets it: the column sum from 0 less the sum
        // of the rows above s. Then its running sum over c = s+1 … e−1.
        let mut cum_v = Vec::with_capacity(l);
        let mut acc = 0.0;
        for c in s + 1..e {
            let v = self.colpre[c * self.n + c] - self.colpre[c * self.n + s];
            acc = if c == s + 1 { v } else { acc + v };
            cum_v.push(acc);
        }
        let mut q = vec![0.0; l * l];
        let mut col_h = vec![0.0; l];
        let mut rev_h = vec![0.0; l];
        for j in 0..l {
            let kappa = s + 2 + j;
            // Σ_{t=s}^{τ−1} H(t, κ), running down the rows.
            let mut acc = 0.0;
            for (i, slot) in col_h.iter_mut().enumerate() {
                let h = self.h(s + i, kappa);
                acc = if i == 0 { h } else { acc + h };
                *slot = acc;
            }
            // Σ_{t=τ}^{e−2} H(t, κ), running up the rows from the bottom (numpy's
            // flipud-cumsum-flipud over rows s+1 … e−2).
            let mut acc = 0.0;
            for i in (0..l.saturating_sub(1)).rev() {
                let h = self.h(s + 1 + i, kappa);
                acc = if i == l - 2 { h } else { acc + h };
                rev_h[i] = acc;
            }
            let span = (kappa - s) as f64;
            for i in 0..=j {
                let tau = s + 1 + i;
                let sub = if i == 0 { 0.0 } else { cum_v[i - 1] };
                let a = (2.0 / span) * (col_h[i] - sub);
                let b = if i >= 1 && j >= 1 {
                    let num = (2 * (kappa - tau)) as f64;
                    let den = ((kappa - s) * (tau - s - 1)) as f64;
                    (num / den) * cum_v[i - 1]
                } else {
                    0.0
                };
                let c = if i < j {
                    let num = (2 * (tau - s)) as f64;
                    let den = ((kappa - s) * (kappa - tau - 1)) as f64;
                    (num / den) * rev_h[i]
                } else {
                    0.0
                };
                q[i * l + j] = a - b - c;
            }
        }
        // numpy's argmax: the first maximum in row-major order; a NaN, if any, wins.
        let mut best = 0;
        for (k, &v) in q.iter().enumerate() {
            let cur = q[best];
            if cur.is_nan() {
                break;
            }
            if v.is_nan() || v > cur {
                best = k;
            }
        }
        (s + best / l + 1, q[best])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Q(τ, κ)` straight from its definition.
    fn q_direct(z: &[f64], s: usize, tau: usize, kappa: usize) -> f64 {
        let (x, y) = (&z[s..tau], &z[tau..kappa]);
        let (n, m) = (x.len() as f64, y.len() as f64);
        let mut cross = 0.0;
        for a in x {
            for b in y {
                cross += (a - b).abs();
            }
        }
        let within = |v: &[f64]| {
            let mut w = 0.0;
            for i in 0..v.len() {
                for k in i + 1..v.len() {
                    w += (v[i] - v[k]).abs();
                }
            }
            w
        };
        let wx = if x.len() > 1 {
            2.0 * m / ((m + n) * (n - 1.0)) * within(x)
        } else {
            0.0
        };
        let wy = if y.len() > 1 {
            2.0 * n / ((m + n) * (m - 1.0)) * within(y)
        } else {
            0.0
        };
        2.0 / (m + n) * cross - wx - wy
    }

    #[test]
    fn candidate_maximises_the_definition() {
        let z = [1.0, 1.2, 0.9, 1.1, 5.0, 5.2, 4.9, 5.1, 5.0, 2.0, 2.1];
        for s in [0, 2, 4] {
            let e = z.len();
            let (tau, qhat) = Window::new(&z).candidate(s, e);
            let mut best = (0, f64::NEG_INFINITY);
            for t in s + 1..e {
                for k in t + 1..=e {
                    let q = q_direct(&z, s, t, k);
                    if q > best.1 {
                        best = (t, q);
                    }
                }
            }
            assert_eq!(tau, best.0, "s={s}");
            assert!((qhat - best.1).abs() < 1e-12, "s={s}: {qhat} vs {}", best.1);
        }
    }

    #[test]
    fn a_step_is_its_own_candidate() {
        let z: Vec<f64> = (0..20).map(|i| if i < 12 { 3.0 } else { 7.0 }).collect();
        assert_eq!(Window::new(&z).candidate(0, 20).0, 12);
    }

    #[test]
    fn constant_segment_takes_the_first_zero() {
        // Every Q is 0: numpy's argmax returns the first element, τ = s + 1.
        let z = [4.0; 6];
        assert_eq!(Window::new(&z).candidate(0, 6), (1, 0.0));
        assert_eq!(Window::new(&z).candidate(2, 6), (3, 0.0));
    }
}
