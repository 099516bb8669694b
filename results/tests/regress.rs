//! `hallmark_results::regress` over a real store: a weekly series of stored metrics with a step
//! shows one change point at the step; `compare_runs` takes its thresholds from the history of the
//! plan when it is long enough and says so; runs of another plan are not in the history.

mod common;

use common::TempDir;
use hallmark_compare::{Direction, Params};
use hallmark_results::regress::{compare_runs, history};
use hallmark_results::{NewRun, Store};
use hallmark_store::{HistoryQuery, MetricRow};

const WEEK_NS: i64 = 7 * 24 * 3600 * 1_000_000_000;
const T0: i64 = 1_795_918_500_000_000_000;

fn plan_run(plan: &str, week: i64) -> NewRun {
    NewRun {
        name: format!("{plan} week {week}"),
        plan_name: plan.into(),
        plan_toml: format!("name = \"{plan}\"\n"),
        hall: Some("hall-a".into()),
        started_at_ns: T0 + week * WEEK_NS,
        hallmark_version: "test".into(),
        sample_hz: 10.0,
    }
}

/// A small deterministic wobble of ±0.4 % around 1.
fn wobble(i: i64) -> f64 {
    1.0 + 0.004 * (((i * 7919) % 11) as f64 - 5.0) / 5.0
}

fn rows(resistance: f64, tflops: f64) -> Vec<MetricRow> {
    vec![
        MetricRow {
            kind: "device".into(),
            subject: "n1/0".into(),
            metric: "sustained_tflops".into(),
            value: Some(tflops),
            unit: "TFLOP/s".into(),
        },
        MetricRow {
            kind: "device".into(),
            subject: "n1/0".into(),
            metric: "thermal_resistance_k_per_w".into(),
            value: Some(resistance),
            unit: "K/W".into(),
        },
    ]
}

/// 24 weekly runs of plan `weekly`; the cold plate of n1/0 degrades by 20 % from week 12.
fn weekly_store(dir: &TempDir) -> (Store, Vec<String>) {
    let mut store = Store::open(dir.path()).unwrap();
    let mut ids = Vec::new();
    for week in 0..24 {
        let id = store.create_run(&plan_run("weekly", week)).unwrap();
        let step = if week >= 12 { 1.2 } else { 1.0 };
        let r = rows(0.045 * step * wobble(week), 100.0 * wobble(week + 3));
        store
            .store_run_metrics(id.as_str(), T0 + week * WEEK_NS + 1, "test", &r)
            .unwrap();
        ids.push(id.as_str().to_string());
    }
    // Another plan in the same store: never part of the weekly series.
    let other = store.create_run(&plan_run("other", 5)).unwrap();
    store
        .store_run_metrics(other.as_str(), T0, "test", &rows(1.0, 1.0))
        .unwrap();
    (store, ids)
}

#[test]
fn a_step_in_a_weekly_series_is_one_change_point_at_the_step() {
    let dir = TempDir::new("regress-step");
    let (store, ids) = weekly_store(&dir);
    let q = HistoryQuery {
        plan_name: Some("weekly".into()),
        metric: Some("thermal_resistance_k_per_w".into()),
        ..HistoryQuery::default()
    };
    let h = history(&store, &q, &Params::default()).unwrap();
    assert_eq!(h.runs.len(), 24);
    assert_eq!(h.series.len(), 1);
    let s = &h.series[0];
    assert_eq!(s.points.len(), 24);
    assert_eq!(s.change_points.len(), 1, "{:#?}", s.change_points);
    let cp = &s.change_points[0];
    assert_eq!(cp.index, 12);
    assert_eq!(cp.run_id, ids[12]);
    let d = cp.delta_pct.unwrap();
    assert!((d - 20.0).abs() < 1.5, "{d}");
    assert!(cp.p_value < 0.001);

    // TFLOP/s only wobbles: no change point.
    let q = HistoryQuery {
        plan_name: Some("weekly".into()),
        metric: Some("sustained_tflops".into()),
        ..HistoryQuery::default()
    };
    let h = history(&store, &q, &Params::default()).unwrap();
    assert!(h.series[0].change_points.is_empty());
}

#[test]
fn compare_takes_thresholds_from_a_long_enough_history() {
    let dir = TempDir::new("regress-compare");
    let (mut store, ids) = weekly_store(&dir);
    // Week 10 → week 11: both before the step; 11 runs of history end at week 10.
    let c = compare_runs(&mut store, &ids[10], &ids[11], false, T0).unwrap();
    assert!(c.comparable, "{:?}", c.differences);
    assert_eq!(c.history_runs, 11);
    assert_eq!(c.changes.len(), 2);
    for ch in &c.changes {
        assert_eq!(ch.threshold_from, "history of 11 runs", "{ch:?}");
        assert!(!ch.significant, "{ch:?}");
    }
    // Week 11 → week 12: the step, a regression of the thermal resistance only.
    let c = compare_runs(&mut store, &ids[11], &ids[12], false, T0).unwrap();
    let sig: Vec<_> = c.changes.iter().filter(|x| x.significant).collect();
    assert_eq!(sig.len(), 1, "{sig:?}");
    assert_eq!(sig[0].metric, "thermal_resistance_k_per_w");
    assert_eq!(sig[0].direction, Direction::Regression);
    assert!(c.has_regression());
}

#[test]
fn a_run_of_another_plan_is_not_comparable() {
    let dir = TempDir::new("regress-refuse");
    let (mut store, ids) = weekly_store(&dir);
    let other = store.list_runs().unwrap();
    let other = other
        .iter()
        .find(|r| r.plan_name == "other")
        .unwrap()
        .run_id
        .as_str()
        .to_string();
    let c = compare_runs(&mut store, &ids[3], &other, false, T0).unwrap();
    assert!(!c.comparable);
    assert!(c.changes.is_empty());
    assert!(c.differences.iter().any(|d| d.what.starts_with("plan")));
    let forced = compare_runs(&mut store, &ids[3], &other, true, T0).unwrap();
    assert!(forced.forced);
    assert_eq!(forced.changes.len(), 2);
}
