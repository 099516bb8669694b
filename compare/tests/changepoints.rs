//! Change points on hand-made series, degenerate input, and properties: no panic on any input,
//! the same answer twice, and the same answer after a change of unit or origin.

mod support;

use hallmark_compare::{
    change_points, change_points_sparse, ChangePointError, MergeRetest, Params,
};
use proptest::prelude::*;
use support::steps;

#[test]
fn a_step_of_40_points_has_one_change_point_at_20() {
    let s = steps(1, &[(20, 100.0), (20, 110.0)], 1.0);
    let cps = change_points(&s, &Params::default()).unwrap();
    assert_eq!(cps.len(), 1, "{cps:?}");
    let cp = cps[0];
    assert_eq!(cp.index, 20);
    assert!(cp.p_value < 1e-15, "p = {}", cp.p_value);
    assert!((cp.mean_before - 100.0).abs() < 1.0 && (cp.mean_after - 110.0).abs() < 1.0);
    let delta = cp.delta_pct.unwrap();
    assert!((delta - 10.0).abs() < 1.5, "Δ = {delta} %");
    assert_eq!(delta, (cp.mean_after / cp.mean_before - 1.0) * 100.0);
}

#[test]
fn flat_noisy_series_have_none() {
    for seed in 0..10 {
        let s = steps(seed, &[(80, 100.0)], 1.0);
        let cps = change_points(&s, &Params::default()).unwrap();
        assert!(cps.is_empty(), "seed {seed}: {cps:?}");
    }
}

#[test]
fn two_steps_give_two() {
    let s = steps(3, &[(30, 50.0), (30, 55.0), (30, 48.0)], 1.0);
    let cps = change_points(&s, &Params::default()).unwrap();
    let idx: Vec<usize> = cps.iter().map(|c| c.index).collect();
    assert_eq!(idx, [30, 60]);
    assert!(cps.iter().all(|c| c.p_value < 1e-6));
    // Up then down; the second's "before" is the middle level only.
    assert!(cps[0].delta_pct.unwrap() > 0.0 && cps[1].delta_pct.unwrap() < 0.0);
    assert_eq!(cps[0].mean_after, cps[1].mean_before);
}

#[test]
fn a_noiseless_step_is_certain() {
    let s: Vec<f64> = (0..40).map(|i| if i < 20 { 1.0 } else { 2.0 }).collect();
    let cps = change_points(&s, &Params::default()).unwrap();
    assert_eq!(cps.len(), 1);
    assert_eq!((cps[0].index, cps[0].p_value), (20, 0.0));
    assert_eq!(cps[0].delta_pct, Some(100.0));
}

#[test]
fn degenerate_series_have_none() {
    let p = Params::default();
    assert!(change_points(&[], &p).unwrap().is_empty());
    assert!(change_points(&[1.0], &p).unwrap().is_empty());
    assert!(change_points(&[1.0, 2.0], &p).unwrap().is_empty());
    assert!(change_points(&[7.0; 100], &p).unwrap().is_empty());
    assert!(change_points_sparse(&[None, None], &p).unwrap().is_empty());
}

#[test]
fn a_step_from_zero_has_no_percentage() {
    let s: Vec<f64> = (0..30).map(|i| if i < 15 { 0.0 } else { 4.0 }).collect();
    let cps = change_points(&s, &Params::default()).unwrap();
    assert_eq!(cps.len(), 1);
    assert_eq!(cps[0].mean_before, 0.0);
    assert_eq!(cps[0].delta_pct, None);
}

#[test]
fn absent_points_are_skipped_not_zero() {
    let s = steps(1, &[(20, 100.0), (20, 110.0)], 1.0);
    // Every fourth run did not measure the metric; the first run of the new level (20) is
    // among them, so the change point is at the next present run, 21.
    let sparse: Vec<Option<f64>> = s
        .iter()
        .enumerate()
        .map(|(i, &v)| (i % 4 != 0).then_some(v))
        .collect();
    let cps = change_points_sparse(&sparse, &Params::default()).unwrap();
    assert_eq!(cps.len(), 1);
    assert_eq!(cps[0].index, 21);
    // As if the absent runs were not there at all.
    let present: Vec<f64> = sparse.iter().flatten().copied().collect();
    let dense = change_points(&present, &Params::default()).unwrap();
    assert_eq!(dense[0].p_value, cps[0].p_value);
    // Zeros instead of absences would be a different series with another answer.
    let zeros: Vec<f64> = sparse.iter().map(|v| v.unwrap_or(0.0)).collect();
    assert_ne!(change_points(&zeros, &Params::default()).unwrap(), cps);
}

#[test]
fn nan_is_refused_with_its_position() {
    let mut s = steps(1, &[(20, 100.0), (20, 110.0)], 1.0);
    s[7] = f64::NAN;
    let e = change_points(&s, &Params::default()).unwrap_err();
    assert!(
        matches!(e, ChangePointError::NonFinite { index: 7, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("absent"), "{e}");
}

fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -1e3..1e3f64,
        1 => any::<f64>(),
        1 => Just(0.0),
    ]
}

fn any_params() -> impl Strategy<Value = Params> {
    (
        prop_oneof![0usize..70, Just(1001)],
        prop_oneof![Just(0.001), 1e-6..1.0f64, any::<f64>()],
        prop_oneof![Just(0.0), 0.0..0.5f64, any::<f64>()],
        any::<bool>(),
    )
        .prop_map(|(window_len, max_pvalue, min_magnitude, both)| Params {
            window_len,
            max_pvalue,
            min_magnitude,
            merge_retest: if both {
                MergeRetest::BothNeighbours
            } else {
                MergeRetest::Otava
            },
        })
}

/// A step series from proptest's values: levels `a` then `b` at `at`, plus noise.
fn stepped(noise: &[f64], at: usize, jump: f64) -> Vec<f64> {
    noise
        .iter()
        .enumerate()
        .map(|(i, n)| n + if i >= at { jump } else { 0.0 })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) || (a < 1e-300 && b < 1e-300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn never_panics_and_is_deterministic(
        s in prop::collection::vec(any_value(), 0..90),
        p in any_params(),
    ) {
        let first = change_points(&s, &p);
        let second = change_points(&s, &p);
        prop_assert_eq!(format!("{first:?}"), format!("{second:?}"));
        if let Ok(cps) = first {
            for w in cps.windows(2) {
                prop_assert!(w[0].index < w[1].index);
            }
            for c in &cps {
                prop_assert!(c.index > 0 && c.index < s.len());
                prop_assert!((0.0..=1.0).contains(&c.p_value));
            }
        }
    }

    /// With both neighbours re-tested, every change point's figures are those of the segments
    /// around it in the final answer.
    #[test]
    fn both_neighbours_leaves_no_stale_figures(
        noise in prop::collection::vec(-1.0..1.0f64, 2..200),
        jumps in prop::collection::vec((0usize..200, -3.0..3.0f64), 0..5),
    ) {
        let mut s = noise;
        for (at, jump) in jumps {
            for v in s.iter_mut().skip(at) {
                *v += jump;
            }
        }
        let p = Params { merge_retest: MergeRetest::BothNeighbours, ..Params::default() };
        let cps = change_points(&s, &p).unwrap();
        for w in cps.windows(2) {
            prop_assert_eq!(w[0].mean_after, w[1].mean_before);
        }
    }

    #[test]
    fn sparse_never_panics(
        s in prop::collection::vec(prop::option::of(any_value()), 0..90),
        p in any_params(),
    ) {
        if let Ok(cps) = change_points_sparse(&s, &p) {
            for c in &cps {
                prop_assert!(s[c.index].is_some());
            }
        }
    }

    /// Distances, t statistics and relative magnitudes ignore the unit (a scale by a power of
    /// two, either sign, is exact in floating point, so the answer is identical) and, up to
    /// rounding, the origin (with min_magnitude 0 the magnitudes only matter when exactly 0).
    #[test]
    fn independent_of_unit_and_origin(
        noise in prop::collection::vec(-1.0..1.0f64, 2..120),
        at in 0usize..120,
        jump in -4.0..4.0f64,
        offset in -1e3..1e3f64,
        exp in -6i32..6,
        negative in any::<bool>(),
    ) {
        let p = Params::default();
        let s = stepped(&noise, at, jump);
        let base = change_points(&s, &p).unwrap();
        let k = if negative { -(2f64.powi(exp)) } else { 2f64.powi(exp) };
        let scaled: Vec<f64> = s.iter().map(|v| v * k).collect();
        let scaled = change_points(&scaled, &p).unwrap();
        let idx = |v: &[hallmark_compare::ChangePoint]| v.iter().map(|c| c.index).collect::<Vec<_>>();
        prop_assert_eq!(idx(&base), idx(&scaled));
        for (a, b) in base.iter().zip(&scaled) {
            prop_assert_eq!(a.p_value, b.p_value);
            prop_assert_eq!(a.mean_before * k, b.mean_before);
        }
        let shifted: Vec<f64> = s.iter().map(|v| v + offset).collect();
        let shifted = change_points(&shifted, &p).unwrap();
        prop_assert_eq!(idx(&base), idx(&shifted));
        for (a, b) in base.iter().zip(&shifted) {
            prop_assert!(close(a.p_value, b.p_value), "{} vs {}", a.p_value, b.p_value);
        }
    }
}

#[test]
fn ten_years_of_weekly_runs() {
    // 520 runs, windows of 50: the steps at 100, 260 and 400 are found across window bounds.
    let s = steps(
        12,
        &[(100, 40.0), (160, 42.0), (140, 39.0), (120, 39.8)],
        0.3,
    );
    let both = Params {
        merge_retest: MergeRetest::BothNeighbours,
        ..Params::default()
    };
    let cps = change_points(&s, &both).unwrap();
    let idx: Vec<usize> = cps.iter().map(|c| c.index).collect();
    assert_eq!(idx, [100, 260, 400]);
    for w in cps.windows(2) {
        assert_eq!(w[0].mean_after, w[1].mean_before);
    }
    // Otava's merge (the default, which tests/otava_agreement.rs checks) keeps a change point
    // at 124 on a p-value from before a weak point after it was removed: its "after" mean is
    // not the mean of the segment that now follows it (which the change point at 260 has).
    let cps = change_points(&s, &Params::default()).unwrap();
    let idx: Vec<usize> = cps.iter().map(|c| c.index).collect();
    assert_eq!(idx, [100, 124, 260, 400]);
    assert_ne!(cps[1].mean_after, cps[2].mean_before);
    assert!(cps[1].p_value < 0.001);
}
