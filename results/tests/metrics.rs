//! `compute_metrics` on a run written here with known figures: 3 nodes × 2 GPUs in two racks, an
//! idle phase and a full-load burn at 10 Hz, temperatures that follow T = supply + P·R exactly, so
//! that every metric has one right answer; what is absent stays absent; the outliers of the
//! summary name the subjects that stand out.

mod common;

use common::*;
use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{DeviceResult, PhaseReport, Sample, TelemetryBatch, Workload};
use hallmark_results::metrics::{UNIT_K_PER_W_DIFFERENTIAL, UNIT_K_PER_W_SUPPLY};
use hallmark_results::{
    compute_metrics, throttle, MetricValue, PhaseRow, RunId, Side, Store, StoreError, StoreExt,
    SubjectKind,
};

const PLAN: &str = r#"
name = "metrics"
sample_hz = 10
[expect]
nodes = 3
[[phase]]
name = "idle"
workload = "idle"
duration_s = 10
[[phase]]
name = "burn"
workload = "burn"
duration_s = 10
pattern = { kind = "steady", level = 1.0 }
"#;

/// (node, rack); n3 has no node-power sensor.
const NODES3: [(&str, &str); 3] = [("n1", "rack-a"), ("n2", "rack-a"), ("n3", "rack-b")];
const SUPPLY_C: f64 = 30.0;
const P_IDLE: f64 = 100.0;
const P_LOAD: f64 = 500.0;

/// The plate of device `d` of node `n`, K/W: n2/1 is 1.6× worse.
fn resistance(n: usize, d: u16) -> f64 {
    if (n, d) == (1, 1) {
        0.08
    } else {
        0.05
    }
}

/// Instant `k` (0.1 s each): idle for k < 100, full load after. `settled`: the temperature is at
/// its steady value from the start of each phase; otherwise it rises through the whole burn.
fn sample(n: usize, d: u16, k: i64, settled: bool) -> Sample {
    let (p, mut t) = if k < 100 {
        (P_IDLE, SUPPLY_C + P_IDLE * resistance(n, d))
    } else {
        (P_LOAD, SUPPLY_C + P_LOAD * resistance(n, d))
    };
    if !settled && k >= 100 {
        // A linear rise of 2 K per second, never settling.
        t = SUPPLY_C + P_IDLE * resistance(n, d) + 0.2 * (k - 100) as f64;
    }
    let mut reasons = 0;
    if (n, d) == (0, 0) && (150..155).contains(&k) {
        reasons = throttle::SW_THERMAL;
    }
    Sample {
        t_ns: T0 + k * 100 * MS,
        device: d,
        power_w: Some(p as f32),
        energy_j: None,
        gpu_temp_c: Some(t as f32),
        mem_temp_c: None,
        sm_clock_mhz: None,
        util_pct: None,
        throttle_reasons: reasons,
    }
}

fn build_run(store: &mut Store, plan: &str, settled: bool) -> RunId {
    let mut new = new_run();
    new.plan_toml = plan.into();
    let run = store.create_run(&new).unwrap();
    for (id, rack) in NODES3 {
        store
            .add_probe(&run, &probe_row(id, "hall-m", "row-1", rack))
            .unwrap();
        store
            .add_devices(&run, &node(id), &[device_info(0), device_info(1)])
            .unwrap();
    }
    for (phase_id, name, workload, level, start_s) in [
        (1, "idle", Workload::Idle, 0.0, 0),
        (2, "burn", Workload::Burn, 1.0, 10),
    ] {
        let row = PhaseRow {
            phase_id,
            name: name.into(),
            workload,
            pattern: Pattern::Steady { level },
            scheduled_start_ns: T0 + start_s * 1000 * MS,
            duration_ms: 10_000,
        };
        store.add_phase(&run, &row).unwrap();
    }
    let ids: Vec<_> = NODES3.iter().map(|(id, _)| node(id)).collect();
    for sec in 0..20i64 {
        let batches: Vec<TelemetryBatch> = (0..3)
            .map(|n| {
                let ks = sec * 10..sec * 10 + 10;
                let watts = |k: i64| if k < 100 { 1000.0 } else { 3000.0 };
                TelemetryBatch {
                    gaps: Vec::new(),
                    seq: sec as u64,
                    node_power_w: if n == 2 {
                        Vec::new()
                    } else {
                        ks.clone().map(|k| (T0 + k * 100 * MS, watts(k))).collect()
                    },
                    samples: ks
                        .flat_map(|k| (0..2).map(move |d| sample(n, d, k, settled)))
                        .collect(),
                }
            })
            .collect();
        let refs: Vec<_> = ids
            .iter()
            .zip(&batches)
            .map(|(id, b)| (id, b, T0 + (sec + 1) * 1000 * MS))
            .collect();
        store.insert_batches(&run, &refs).unwrap();
    }
    for (n, id) in ids.iter().enumerate() {
        let devices = (0..2)
            .map(|d| DeviceResult {
                device: d,
                gflops: Some(1000.0 * (n as f64 + 1.0) + f64::from(d)),
                mem_bandwidth_gbps: None,
                wrong_elements: if (n, d) == (1, 1) { 2 } else { 0 },
            })
            .collect();
        let report = PhaseReport {
            phase_id: 2,
            ended_at_ns: T0 + 20_000 * MS,
            stopped_early: None,
            devices,
            fabric: None,
        };
        store.phase_report(&run, id, &report).unwrap();
    }
    run
}

fn get<'a>(
    m: &'a [MetricValue],
    kind: SubjectKind,
    subject: &str,
    metric: &str,
) -> &'a MetricValue {
    m.iter()
        .find(|x| x.kind == kind && x.subject == subject && x.metric == metric)
        .unwrap_or_else(|| panic!("no {kind} {subject} {metric}"))
}

#[test]
fn every_metric_of_a_known_run() {
    let dir = TempDir::new("metrics");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build_run(&mut store, PLAN, true);
    let m = compute_metrics(&store, run.as_str()).unwrap();
    let dev = |s: &str, metric: &str| get(&m, SubjectKind::Device, s, metric);

    for (n, id) in ["n1", "n2", "n3"].iter().enumerate() {
        for d in 0..2u16 {
            let s = format!("{id}/{d}");
            let r = dev(&s, "thermal_resistance_k_per_w");
            // No facility readings: the differential, exact here.
            assert_eq!(r.unit, UNIT_K_PER_W_DIFFERENTIAL);
            assert_close!(r.value.unwrap(), resistance(n, d));
            assert_close!(dev(&s, "mean_power_w").value.unwrap(), P_LOAD);
            assert_close!(dev(&s, "idle_power_w").value.unwrap(), P_IDLE);
            let g = 1000.0 * (n as f64 + 1.0) + f64::from(d);
            assert_close!(dev(&s, "sustained_tflops").value.unwrap(), g / 1e3);
            assert_close!(dev(&s, "gflops_per_w").value.unwrap(), g / P_LOAD);
            let wrong = if (n, d) == (1, 1) { 2.0 } else { 0.0 };
            assert_eq!(dev(&s, "wrong_elements").value, Some(wrong));
        }
    }
    assert_close!(dev("n1/0", "throttle_s").value.unwrap(), 0.5);
    assert_close!(dev("n1/0", "throttle_s.sw_thermal").value.unwrap(), 0.5);
    assert_eq!(dev("n1/0", "throttle_s.sw_power_cap").value, Some(0.0));
    assert_eq!(dev("n2/0", "throttle_s").value, Some(0.0));

    let node = |s: &str, metric: &str| get(&m, SubjectKind::Node, s, metric).value;
    assert_close!(node("n1", "idle_power_w").unwrap(), 1000.0);
    assert_close!(node("n2", "full_load_power_w").unwrap(), 3000.0);
    // No node-power sensor: unknown, not 0; and so its rack.
    assert_eq!(node("n3", "idle_power_w"), None);
    let rack = |s: &str, metric: &str| get(&m, SubjectKind::Rack, s, metric).value;
    assert_close!(rack("rack-a", "idle_power_w").unwrap(), 2000.0);
    assert_close!(rack("rack-a", "full_load_power_w").unwrap(), 6000.0);
    assert_eq!(rack("rack-b", "full_load_power_w"), None);

    // What the run could not measure is not there: no fabric phase, no facility readings.
    assert!(m.iter().all(|x| matches!(
        x.kind,
        SubjectKind::Device | SubjectKind::Node | SubjectKind::Rack
    )));
    assert!(!m.iter().any(|x| x.metric.starts_with("latency")
        || x.metric == "busbw_gbps"
        || x.metric.starts_with("pdu_")
        || x.unit == UNIT_K_PER_W_SUPPLY));
    // Sorted by (kind, subject, metric), each once.
    let keys: Vec<_> = m.iter().map(|x| (x.kind, &x.subject, &x.metric)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted);
    // Deterministic.
    assert_eq!(compute_metrics(&store, run.as_str()).unwrap(), m);
    // The summary's pass gives the same metrics (what a finished run stores).
    let (_, from_summary) =
        hallmark_results::run_summary_with_metrics(&store, run.as_str()).unwrap();
    assert_eq!(from_summary, m);
}

#[test]
fn the_summary_lists_the_outliers_of_its_metrics() {
    let dir = TempDir::new("metrics-outliers");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build_run(&mut store, PLAN, true);
    let s = store.run_summary(run.as_str()).unwrap();
    let found: Vec<(&str, &str, Side)> = s
        .outliers
        .iter()
        .map(|o| (o.subject.as_str(), o.metric.as_str(), o.direction))
        .collect();
    // The weak plate, the one GPU that throttled, the one with wrong elements; not the spread of
    // throughput (n1 1 TFLOP/s … n3 3 TFLOP/s is no tight group) and no node (three are too few).
    assert!(
        found.contains(&("n2/1", "thermal_resistance_k_per_w", Side::High)),
        "{found:?}"
    );
    assert!(
        found.contains(&("n1/0", "throttle_s", Side::High)),
        "{found:?}"
    );
    assert!(
        found.contains(&("n2/1", "wrong_elements", Side::High)),
        "{found:?}"
    );
    assert!(
        !found.iter().any(|f| f.1 == "sustained_tflops"),
        "{found:?}"
    );
    let thermal: Vec<_> = s
        .outliers
        .iter()
        .filter(|o| o.metric == "thermal_resistance_k_per_w")
        .collect();
    assert_eq!(thermal.len(), 1);
    assert_close!(thermal[0].median, 0.05);
    assert_eq!(thermal[0].group, "device SimH200");
    assert_eq!(thermal[0].group_size, 6);
    assert!(s
        .to_string()
        .contains("! device n2/1 thermal_resistance_k_per_w: 0.08000 "));
    // The JSON keeps them; a summary stored before they existed reads as none.
    let mut json: serde_json::Value = serde_json::to_value(&s).unwrap();
    assert!(json["outliers"]
        .as_array()
        .is_some_and(|a| a.len() == s.outliers.len()));
    json.as_object_mut().unwrap().remove("outliers");
    let old: hallmark_results::RunSummary = serde_json::from_value(json).unwrap();
    assert!(old.outliers.is_empty());
}

#[test]
fn a_burn_that_never_settles_has_no_thermal_resistance() {
    let dir = TempDir::new("metrics-rising");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build_run(&mut store, PLAN, false);
    let m = compute_metrics(&store, run.as_str()).unwrap();
    let r = get(
        &m,
        SubjectKind::Device,
        "n1/0",
        "thermal_resistance_k_per_w",
    );
    assert_eq!(
        r.value, None,
        "emitted, unknown: the run should have measured it"
    );
    // The rest of the device's figures do not need a steady state.
    let p = get(&m, SubjectKind::Device, "n1/0", "mean_power_w");
    assert_close!(p.value.unwrap(), P_LOAD);
}

#[test]
fn without_a_parsable_plan_every_burn_counts_and_an_unknown_run_is_refused() {
    let dir = TempDir::new("metrics-noplan");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build_run(&mut store, "", true);
    let m = compute_metrics(&store, run.as_str()).unwrap();
    let r = get(
        &m,
        SubjectKind::Device,
        "n2/1",
        "thermal_resistance_k_per_w",
    );
    assert_close!(r.value.unwrap(), 0.08);
    let err = compute_metrics(&store, "20990101T000000Z-000000").unwrap_err();
    assert!(matches!(err, StoreError::UnknownRun { .. }), "{err}");
}
