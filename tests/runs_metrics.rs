//! `hallmark runs metrics RUN [--json]` and the outliers of `hallmark runs show`, end to end on
//! the simulated hall: a GPU on a weak cold plate is the one thermal-resistance outlier of its run,
//! and two healthy runs of one hall under different run seeds give per-device metrics within the
//! default noise thresholds of `compare/src/metric.rs` (read from that file itself).
//!
//! The hall is small and fast: 4 nodes × 8 GPUs, a 0.5 s thermal time constant so that 6 s of
//! full load reach a steady state, GPUs of 700 W so that the weak plate (1.6×) stays below its
//! slowdown temperature and only its thermal resistance moves.

mod common;

#[allow(dead_code)]
#[path = "../compare/src/metric.rs"]
mod metric;

use common::process::*;
use hallmark_results::metrics::METRIC_NAMES;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

const HALL: &str = r#"
name = "metrics-hall"
seed = 7
rows = 1
racks_per_row = 2
nodes_per_rack = 2
gpus_per_node = 8

[gpu]
power_limit_w = 700
thermal_time_constant_s = 0.5

[coolant]
setpoint_c = 25
capacity_kw = 40
"#;

const WEAK: &str = r#"
[[faults.weak_cold_plate]]
node = "row1-rack02-n01"
device = 5
factor = 1.6
"#;

const PLAN: &str = r#"
name = "metrics"
sample_hz = 10
[expect]
nodes = 4
devices_per_node = 8
timeout_s = 20
[[phase]]
name = "idle"
workload = "idle"
duration_s = 2
[[phase]]
name = "burn"
workload = "burn"
duration_s = 6
pattern = { kind = "steady", level = 1.0 }
"#;

const WEAK_GPU: &str = "row1-rack02-n01/5";

fn ok(args: &[&str]) -> Vec<u8> {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs the plan on `hall` with run seed `seed`; returns the run summary's JSON.
fn simulate(dir: &Path, hall: &str, seed: &str) -> Value {
    let (plan, results) = (dir.join("plan.toml"), dir.join("results"));
    let out = ok(&[
        "run",
        plan.to_str().unwrap(),
        "--simulate",
        dir.join(hall).to_str().unwrap(),
        "--seed",
        seed,
        "--json",
        "--results",
        results.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_slice(&out).expect("one JSON object");
    assert_eq!(v["status"], "complete", "{v}");
    v
}

/// `runs metrics RUN --json`: (kind, subject, metric) → (value, unit).
fn metrics(dir: &Path, run_id: &str) -> BTreeMap<(String, String, String), (Option<f64>, String)> {
    let results = dir.join("results");
    let out = ok(&[
        "runs",
        "metrics",
        run_id,
        "--json",
        "--results",
        results.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_slice(&out).expect("one JSON object");
    assert_eq!(v["run_id"], run_id);
    assert_eq!(
        v["source"], "stored",
        "a run's metrics are stored when it ends"
    );
    let list = v["metrics"].as_array().expect("metrics");
    let mut out = BTreeMap::new();
    for m in list {
        let key = (
            m["kind"].as_str().unwrap().to_string(),
            m["subject"].as_str().unwrap().to_string(),
            m["metric"].as_str().unwrap().to_string(),
        );
        let base = key.2.split('.').next().unwrap();
        assert!(METRIC_NAMES.contains(&base), "{key:?}");
        assert!(metric::known_metric(base).is_some(), "{base} has no policy");
        let value = m["value"].as_f64();
        assert!(value.is_some() || m["value"].is_null(), "{m}");
        let unit = m["unit"].as_str().unwrap().to_string();
        assert!(out.insert(key, (value, unit)).is_none(), "twice: {m}");
    }
    // Sorted by (kind, subject, metric) as emitted: the map's order is the list's.
    let keys: Vec<_> = out.keys().cloned().collect();
    let listed: Vec<_> = list
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_string(),
                m["subject"].as_str().unwrap().to_string(),
                m["metric"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let kinds = [
        "device",
        "node",
        "rack",
        "pair",
        "hall",
        "collective",
        "pdu",
        "cdu",
    ];
    let rank = |k: &(String, String, String)| kinds.iter().position(|x| *x == k.0).unwrap();
    let mut sorted = listed.clone();
    sorted.sort_by(|a, b| (rank(a), &a.1, &a.2).cmp(&(rank(b), &b.1, &b.2)));
    assert_eq!(listed, sorted);
    assert_eq!(keys.len(), listed.len());
    out
}

#[test]
fn a_weak_cold_plate_is_the_one_outlier_and_two_seeds_stay_within_the_defaults() {
    let dir = tempdir("metrics");
    std::fs::write(dir.join("plan.toml"), PLAN).unwrap();
    std::fs::write(dir.join("healthy.toml"), HALL).unwrap();
    std::fs::write(dir.join("weak.toml"), format!("{HALL}{WEAK}")).unwrap();

    // The weak plate: the one thermal-resistance outlier, named in the summary and its text.
    let weak = simulate(&dir, "weak.toml", "1");
    let run_id = weak["run_id"].as_str().unwrap().to_string();
    let outliers = weak["outliers"].as_array().expect("outliers");
    let thermal: Vec<&Value> = outliers
        .iter()
        .filter(|o| o["metric"] == "thermal_resistance_k_per_w")
        .collect();
    assert_eq!(thermal.len(), 1, "{outliers:?}");
    // And nothing else stands out: below its slowdown temperature the weak GPU draws and
    // computes as its neighbours do.
    assert_eq!(outliers.len(), 1, "{outliers:?}");
    assert_eq!(thermal[0]["subject"], WEAK_GPU);
    assert_eq!(thermal[0]["direction"], "high");
    assert!(thermal[0]["robust_z"].as_f64().unwrap() > 3.5);
    let m = metrics(&dir, &run_id);
    let r = |gpu: &str| {
        m[&(
            "device".to_string(),
            gpu.to_string(),
            "thermal_resistance_k_per_w".to_string(),
        )]
            .clone()
    };
    let (weak_r, unit) = r(WEAK_GPU);
    assert_eq!(unit, "K/W (over CDU supply)", "the simulated hall has CDUs");
    let others: Vec<f64> = m
        .iter()
        .filter(|(k, _)| k.2 == "thermal_resistance_k_per_w" && k.1 != WEAK_GPU)
        .map(|(_, v)| v.0.expect("every GPU measured"))
        .collect();
    assert_eq!(others.len(), 31);
    let weak_r = weak_r.unwrap();
    // The plate's own 0.045 K/W ± 10 % spread, × 1.6.
    assert!(
        (0.045 * 0.9 * 1.6 - 0.002..0.045 * 1.1 * 1.6 + 0.002).contains(&weak_r),
        "{weak_r}"
    );
    for x in &others {
        assert!(
            (0.045 * 0.9 - 0.002..0.045 * 1.1 + 0.002).contains(x),
            "{x}"
        );
    }
    // Below its slowdown temperature: the weak GPU did not throttle and lost no throughput.
    let thr = &m[&(
        "device".into(),
        WEAK_GPU.into(),
        "throttle_s.sw_thermal".into(),
    )];
    assert_eq!(thr.0, Some(0.0));
    let results = dir.join("results");
    let text = ok(&[
        "runs",
        "show",
        &run_id,
        "--results",
        results.to_str().unwrap(),
    ]);
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains(&format!("! device {WEAK_GPU} thermal_resistance_k_per_w: ")),
        "{text}"
    );
    let table = ok(&[
        "runs",
        "metrics",
        &run_id,
        "--results",
        results.to_str().unwrap(),
    ]);
    let table = String::from_utf8(table).unwrap();
    assert!(
        table.starts_with(&format!("Metrics of run {run_id}: ")),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("device")
        && l.contains(WEAK_GPU)
        && l.contains("thermal_resistance_k_per_w")));

    // The HTML report's outliers table names it.
    let report = dir.join("report");
    ok(&[
        "report",
        &run_id,
        "--results",
        results.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    let section = html
        .split("<section id=\"outliers\">")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .expect("an outliers section");
    assert!(
        section.contains("<h2>Outliers within the run</h2>"),
        "{section}"
    );
    assert!(
        section.contains(&format!(
            "<td>device {WEAK_GPU}</td><td>thermal_resistance_k_per_w</td>"
        )),
        "{section}"
    );
    assert_eq!(section.matches("<tr><td>").count(), 1, "{section}");

    // Two healthy runs: no outlier, and every metric within its default threshold.
    let a = simulate(&dir, "healthy.toml", "1");
    let b = simulate(&dir, "healthy.toml", "2");
    for v in [&a, &b] {
        assert_eq!(v["outliers"], serde_json::json!([]), "{}", v["outliers"]);
    }
    let (ma, mb) = (
        metrics(&dir, a["run_id"].as_str().unwrap()),
        metrics(&dir, b["run_id"].as_str().unwrap()),
    );
    assert_eq!(ma.keys().collect::<Vec<_>>(), mb.keys().collect::<Vec<_>>());
    let mut largest: BTreeMap<String, f64> = BTreeMap::new();
    for (k, (x, _)) in &ma {
        let (y, _) = &mb[k];
        let (Some(x), Some(y)) = (x, y) else {
            assert_eq!(x.is_some(), y.is_some(), "{k:?}: {x:?} vs {y:?}");
            continue;
        };
        let rel = if x == y {
            0.0
        } else {
            (y - x).abs() / x.abs() * 100.0
        };
        let e = largest.entry(k.2.clone()).or_insert(0.0);
        *e = e.max(rel);
    }
    let mut over = Vec::new();
    for (name, pct) in &largest {
        let base = name.split('.').next().unwrap();
        let default = metric::known_metric(base).unwrap().default_threshold_pct;
        println!(
            "largest relative difference, seed 1 vs 2: {name} {pct:.3} % (default {default} %)"
        );
        if *pct > default {
            over.push(format!("{name} {pct:.3} % > {default} %"));
        }
    }
    assert!(largest.contains_key("thermal_resistance_k_per_w"));
    assert!(over.is_empty(), "{over:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
