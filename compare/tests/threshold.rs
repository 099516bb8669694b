//! Noise thresholds on hand-computed histories and the judgement of BASE → NEW changes.

use hallmark_compare::threshold::{quartiles, MIN_HISTORY_DELTAS};
use hallmark_compare::{
    judge, known_metric, noise_threshold, Direction, Threshold, ThresholdError, ThresholdSource,
};

/// Relative run-to-run changes, chosen so that the quartiles are easy to work by hand.
const STEPS: [f64; 11] = [
    0.01, -0.02, 0.005, 0.03, -0.01, 0.0, 0.015, -0.005, 0.02, -0.04, 0.01,
];

/// A history starting at 100 and moving by `steps`, one run per value.
fn history(steps: &[f64]) -> Vec<Option<f64>> {
    let mut v = 100.0;
    let mut out = vec![Some(v)];
    for r in steps {
        v *= 1.0 + r;
        out.push(Some(v));
    }
    out
}

#[test]
fn quartiles_are_tukeys_hinges() {
    assert_eq!(quartiles(&[1.0, 2.0, 3.0, 4.0]), (1.5, 3.5));
    // Odd counts leave the median out of both halves.
    assert_eq!(quartiles(&[1.0, 2.0, 3.0, 4.0, 5.0]), (1.5, 4.5));
    assert_eq!(quartiles(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]), (2.0, 6.0));
}

#[test]
fn threshold_from_a_hand_computed_history() {
    // |deltas| sorted: 0, .005, .005, .01, .01, [.01], .015, .02, .02, .03, .04 (11 values).
    // Lower half 0 … .01 → Q1 = .005; upper half .015 … .04 → Q3 = .02; IQR = .015.
    // Threshold = .02 + 3 · .015 = .065 → 6.5 %.
    let policy = known_metric("sustained_tflops").unwrap();
    let t = noise_threshold("sustained_tflops", &policy, &history(&STEPS)).unwrap();
    assert!((t.pct - 6.5).abs() < 1e-9, "{}", t.pct);
    assert_eq!(
        t.source,
        ThresholdSource::History {
            runs: 12,
            deltas: 11
        }
    );
    assert_eq!(t.source.to_string(), "history of 12 runs");
}

#[test]
fn absent_runs_are_skipped_and_zero_predecessors_give_no_delta() {
    let policy = known_metric("sustained_tflops").unwrap();
    let mut h = history(&STEPS);
    h.insert(3, None);
    h.insert(8, None);
    h.push(None);
    let t = noise_threshold("sustained_tflops", &policy, &h).unwrap();
    assert!((t.pct - 6.5).abs() < 1e-9, "{}", t.pct);
    assert_eq!(
        t.source,
        ThresholdSource::History {
            runs: 12,
            deltas: 11
        }
    );
    // A run at 0 ends one delta (0 → next is undefined) but still counts as a run.
    let mut h = history(&STEPS);
    h.push(Some(0.0));
    h.push(Some(5.0));
    let t = noise_threshold("sustained_tflops", &policy, &h).unwrap();
    // One more delta, |0 − v|/v = 1: sorted … .03, .04, 1 (12 values): Q1 = median of
    // 0, .005, .005, .01, .01, .01 = .0075; Q3 = median of .015, .02, .02, .03, .04, 1 = .025.
    assert!(
        (t.pct - 100.0 * (0.025 + 3.0 * 0.0175)).abs() < 1e-9,
        "{}",
        t.pct
    );
    assert_eq!(
        t.source,
        ThresholdSource::History {
            runs: 14,
            deltas: 12
        }
    );
}

#[test]
fn short_history_uses_the_stated_default() {
    let policy = known_metric("thermal_resistance_k_per_w").unwrap();
    let h = history(&STEPS[..MIN_HISTORY_DELTAS - 1]);
    let t = noise_threshold("thermal_resistance_k_per_w", &policy, &h).unwrap();
    assert_eq!(t.pct, policy.default_threshold_pct);
    assert_eq!(
        t.to_owned().source.to_string(),
        "default for thermal_resistance_k_per_w"
    );
    assert_eq!(
        t.source,
        ThresholdSource::Default {
            metric: "thermal_resistance_k_per_w".into(),
            deltas: MIN_HISTORY_DELTAS - 1
        }
    );
    // Exactly MIN_HISTORY_DELTAS is enough.
    let h = history(&STEPS[..MIN_HISTORY_DELTAS]);
    let t = noise_threshold("thermal_resistance_k_per_w", &policy, &h).unwrap();
    assert!(matches!(
        t.source,
        ThresholdSource::History { deltas: 10, .. }
    ));
    // No history at all.
    let t = noise_threshold("thermal_resistance_k_per_w", &policy, &[]).unwrap();
    assert!(matches!(
        t.source,
        ThresholdSource::Default { deltas: 0, .. }
    ));
}

#[test]
fn non_finite_history_is_refused() {
    let policy = known_metric("sustained_tflops").unwrap();
    let mut h = history(&STEPS);
    h[4] = Some(f64::NAN);
    let e = noise_threshold("sustained_tflops", &policy, &h).unwrap_err();
    assert!(
        matches!(e, ThresholdError::NonFiniteHistory { index: 4, .. }),
        "{e}"
    );
}

fn hist(pct: f64) -> Threshold {
    Threshold {
        pct,
        source: ThresholdSource::History {
            runs: 12,
            deltas: 11,
        },
    }
}

#[test]
fn direction_follows_the_metric() {
    let tflops = known_metric("sustained_tflops").unwrap();
    let rth = known_metric("thermal_resistance_k_per_w").unwrap();
    let c = judge(
        "gpu3",
        "sustained_tflops",
        &tflops,
        Some(100.0),
        Some(93.0),
        &hist(6.5),
    )
    .unwrap();
    assert!(c.significant);
    assert_eq!(c.direction, Direction::Regression);
    assert!((c.delta_pct.unwrap() + 7.0).abs() < 1e-12);
    let c = judge(
        "gpu3",
        "sustained_tflops",
        &tflops,
        Some(100.0),
        Some(94.0),
        &hist(6.5),
    )
    .unwrap();
    assert!(!c.significant);
    assert_eq!(c.direction, Direction::None);
    let c = judge(
        "gpu3",
        "sustained_tflops",
        &tflops,
        Some(100.0),
        Some(107.0),
        &hist(6.5),
    )
    .unwrap();
    assert_eq!(c.direction, Direction::Improvement);
    // Thermal resistance up is the clogged cold plate: a regression; down is an improvement.
    let c = judge(
        "gpu3",
        "thermal_resistance_k_per_w",
        &rth,
        Some(0.10),
        Some(0.12),
        &hist(6.5),
    )
    .unwrap();
    assert_eq!(c.direction, Direction::Regression);
    let c = judge(
        "gpu3",
        "thermal_resistance_k_per_w",
        &rth,
        Some(0.12),
        Some(0.10),
        &hist(6.5),
    )
    .unwrap();
    assert_eq!(c.direction, Direction::Improvement);
    // At the threshold exactly: not significant (strictly above, as rustc-perf).
    let c = judge(
        "gpu3",
        "sustained_tflops",
        &tflops,
        Some(100.0),
        Some(102.0),
        &hist(2.0),
    )
    .unwrap();
    assert_eq!(c.delta_pct, Some(2.0));
    assert!(!c.significant);
}

#[test]
fn absent_and_zero_sides() {
    let tflops = known_metric("sustained_tflops").unwrap();
    let wrong = known_metric("wrong_elements").unwrap();
    for (base, new) in [(Some(100.0), None), (None, Some(100.0)), (None, None)] {
        let c = judge("gpu0", "sustained_tflops", &tflops, base, new, &hist(6.5)).unwrap();
        assert_eq!(
            (c.delta_pct, c.significant, c.direction),
            (None, false, Direction::None)
        );
        assert_eq!((c.base, c.new), (base, new));
    }
    // From 0 wrong elements to 3: unbounded relative change, significant, no percentage.
    let c = judge(
        "gpu0",
        "wrong_elements",
        &wrong,
        Some(0.0),
        Some(3.0),
        &hist(0.0),
    )
    .unwrap();
    assert_eq!(
        (c.delta_pct, c.significant, c.direction),
        (None, true, Direction::Regression)
    );
    let c = judge(
        "gpu0",
        "wrong_elements",
        &wrong,
        Some(0.0),
        Some(0.0),
        &hist(0.0),
    )
    .unwrap();
    assert_eq!(
        (c.delta_pct, c.significant, c.direction),
        (Some(0.0), false, Direction::None)
    );
    let e = judge(
        "gpu0",
        "wrong_elements",
        &wrong,
        Some(f64::INFINITY),
        Some(0.0),
        &hist(0.0),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("base value of wrong_elements for gpu0"),
        "{e}"
    );
}

#[test]
fn json_has_the_fields_of_issue_11() {
    let tflops = known_metric("sustained_tflops").unwrap();
    let c = judge(
        "node1/gpu2",
        "sustained_tflops",
        &tflops,
        Some(100.0),
        None,
        &hist(6.5),
    )
    .unwrap();
    let v = serde_json::to_value(&c).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    for k in [
        "subject",
        "metric",
        "base",
        "new",
        "delta_pct",
        "threshold_pct",
        "significant",
        "direction",
    ] {
        assert!(keys.contains(&k), "{k} missing from {v}");
    }
    assert_eq!(v["new"], serde_json::Value::Null);
    assert_eq!(v["delta_pct"], serde_json::Value::Null);
    assert_eq!(v["direction"], "none");
    assert_eq!(v["threshold_from"], "history of 12 runs");
    let back: hallmark_compare::Change = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);
}
