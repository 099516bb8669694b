//! `hallmark compare` and `hallmark history` end to end, on runs of a small simulated hall
//! (`run --simulate`, loopback only): two healthy runs with different run seeds compare without a
//! significant regression; a weak cold plate on one GPU is that device's thermal-resistance
//! regression and nothing else is; runs of another plan are refused unless `--force`; the history
//! lists every run with its points.

mod common;

use common::process::{run, tempdir};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The small hall of examples/hall-small.toml without its fault, its GPUs and loop quick to
/// settle so that a short run reaches steady state.
const HALL: &str = r#"
name = "compare-hall"
seed = 7
rows = 1
racks_per_row = 2
nodes_per_rack = 2
gpus_per_node = 8

[gpu]
thermal_time_constant_s = 1.5

[coolant]
setpoint_c = 30
capacity_kw = 40
lag_s = 2
"#;

/// The same hall with GPU 5 of row1-rack02-n01 on a cold plate 1.25× worse than its own: hotter
/// under load, still below its slowdown temperature.
const WEAK: &str = r#"
[[faults.weak_cold_plate]]
node = "row1-rack02-n01"
device = 5
factor = 1.25
"#;

const PLAN: &str = r#"
name = "weekly-small"
sample_hz = 10
[expect]
nodes = 4
devices_per_node = 8
timeout_s = 20
[[phase]]
name = "idle"
workload = "idle"
duration_s = 3
[[phase]]
name = "full-load"
workload = "burn"
duration_s = 12
pattern = { kind = "steady", level = 1.0 }
"#;

struct Setup {
    dir: PathBuf,
    results: String,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = tempdir(name);
        std::fs::write(dir.join("hall.toml"), HALL).unwrap();
        std::fs::write(dir.join("weak.toml"), format!("{HALL}{WEAK}")).unwrap();
        std::fs::write(dir.join("plan.toml"), PLAN).unwrap();
        let other = PLAN.replace("duration_s = 12", "duration_s = 11");
        std::fs::write(dir.join("other-plan.toml"), other).unwrap();
        let results = dir.join("results").to_str().unwrap().to_string();
        Setup { dir, results }
    }

    fn path(&self, f: &str) -> String {
        self.dir.join(f).to_str().unwrap().to_string()
    }

    /// Runs `plan` on `hall` with run seed `seed`; returns the run id. One simulated hall at a
    /// time in this test binary: three at once on two cores make samplers late.
    fn simulate(&self, plan: &str, hall: &str, seed: &str) -> String {
        static ONE_HALL: Mutex<()> = Mutex::new(());
        let _one = ONE_HALL.lock().unwrap_or_else(|e| e.into_inner());
        let out = run(&[
            "run",
            &self.path(plan),
            "--simulate",
            &self.path(hall),
            "--seed",
            seed,
            "--json",
            "--results",
            &self.results,
        ]);
        // Exit 2, incomplete, when a loaded machine made a sampler late: what is compared is
        // there all the same (the gap is counted, the other samples stored).
        assert!(
            matches!(out.status.code(), Some(0 | 2)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        let (stored, expected) = (v["samples_stored"].as_u64(), v["samples_expected"].as_u64());
        assert!(
            stored.unwrap() * 100 >= expected.unwrap() * 98,
            "{stored:?} of {expected:?} samples: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        v["run_id"].as_str().unwrap().to_string()
    }

    /// `hallmark compare BASE NEW --json [extra]`: the exit code and the object.
    fn compare(&self, base: &str, new: &str, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["compare", base, new, "--json", "--results", &self.results];
        args.extend_from_slice(extra);
        let out = run(&args);
        let code = out.status.code().expect("an exit code");
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "compare printed no JSON ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, v)
    }
}

fn significant(v: &Value) -> Vec<&Value> {
    v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["significant"] == true)
        .collect()
}

#[test]
fn healthy_runs_compare_clean_and_a_weak_cold_plate_is_that_devices_regression() {
    let s = Setup::new("compare");
    let base = s.simulate("plan.toml", "hall.toml", "1");
    let healthy = s.simulate("plan.toml", "hall.toml", "2");
    let weak = s.simulate("plan.toml", "weak.toml", "3");

    let (code, v) = s.compare(&base, &healthy, &[]);
    assert_eq!(v["comparable"], true, "{v}");
    let changes = v["changes"].as_array().unwrap();
    let resistances = changes
        .iter()
        .filter(|c| c["metric"] == "thermal_resistance_k_per_w" && c["new"].is_f64())
        .count();
    assert_eq!(
        resistances, 32,
        "every GPU's thermal resistance is compared"
    );
    for c in changes {
        for key in [
            "subject",
            "metric",
            "base",
            "new",
            "delta_pct",
            "threshold_pct",
            "significant",
            "direction",
        ] {
            assert!(c.get(key).is_some(), "{key} missing in {c}");
        }
    }
    assert!(
        significant(&v).is_empty(),
        "two healthy seeds: {:#?}",
        significant(&v)
    );
    assert_eq!(code, 0);

    // Each probe's Hello listed its software, which the run's context reads back.
    let store = hallmark_store::Store::open_read_only(Path::new(&s.results)).unwrap();
    let probes = store.run_context(&base).unwrap().probes;
    assert!(!probes.is_empty());
    let simulator = [(
        "simulator".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )];
    for p in &probes {
        assert_eq!(p.software, simulator, "{}", p.node_id);
    }

    let (code, v) = s.compare(&base, &weak, &[]);
    let sig = significant(&v);
    assert_eq!(sig.len(), 1, "only the weak plate moves: {sig:#?}");
    assert_eq!(sig[0]["metric"], "thermal_resistance_k_per_w");
    assert_eq!(sig[0]["direction"], "regression");
    let subject = sig[0]["subject"].as_str().unwrap();
    assert!(
        subject.contains("row1-rack02-n01") && subject.ends_with('5'),
        "{subject}"
    );
    let delta = sig[0]["delta_pct"].as_f64().unwrap();
    assert!(delta > 15.0 && delta < 35.0, "a 1.25× plate: {delta} %");
    assert_eq!(code, 1, "a significant regression exits 1");

    // What a weekly job runs: the plan's latest run against the one before it.
    let (code, v) = s.compare("previous", "latest", &["--plan", "weekly-small"]);
    assert_eq!(v["base"]["run_id"], healthy.as_str());
    assert_eq!(v["new"]["run_id"], weak.as_str());
    assert_eq!(significant(&v).len(), 1, "{v}");
    assert_eq!(code, 1);

    // The history of the plan: three runs, a point each for that device.
    let out = run(&[
        "history",
        "--plan",
        "weekly-small",
        "--metric",
        "thermal_resistance_k_per_w",
        "--subject",
        subject,
        "--json",
        "--html",
        &s.path("history.html"),
        "--results",
        &s.results,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    let series = h["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{h}");
    let points = series[0]["points"].as_array().unwrap();
    let ids: Vec<&str> = points
        .iter()
        .map(|p| p["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [base.as_str(), healthy.as_str(), weak.as_str()]);
    assert!(points.iter().all(|p| p["value"].is_f64()));
    let page = std::fs::read_to_string(s.dir.join("history.html")).unwrap();
    assert!(
        page.contains("<svg") && page.contains(subject),
        "the page charts the series"
    );

    // The run's report carries the plan's history up to the run: the hall's and racks' series.
    let report = s.dir.join("report");
    let out = run(&[
        "report",
        &weak,
        "--out",
        report.to_str().unwrap(),
        "--results",
        &s.results,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(report.join("index.html")).unwrap();
    let at = page.find("id=\"history\"").expect("a history section");
    let section = &page[at..page[at..].find("</section>").map_or(page.len(), |e| at + e)];
    assert!(section.contains("3 runs of plan weekly-small"), "{section}");
    assert!(section.contains("<svg"), "charts in the history section");
}

#[test]
fn runs_of_another_plan_are_refused_unless_forced_and_bad_input_exits_3() {
    let s = Setup::new("compare-refuse");
    let base = s.simulate("plan.toml", "hall.toml", "1");
    let other = s.simulate("other-plan.toml", "hall.toml", "2");
    let (code, v) = s.compare(&base, &other, &[]);
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["comparable"], false);
    let what: Vec<&str> = v["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["what"].as_str().unwrap())
        .collect();
    assert!(what.iter().any(|w| w.starts_with("plan")), "{what:?}");
    assert!(v["changes"].as_array().unwrap().is_empty());

    let (code, v) = s.compare(&base, &other, &["--force"]);
    assert!(code == 0 || code == 1, "forced: {code} {v}");
    assert_eq!(v["forced"], true);
    assert!(!v["changes"].as_array().unwrap().is_empty());

    // Bad input: a clear error, exit 3.
    for (args, says) in [
        (vec!["compare", base.as_str(), "no-such-run"], "NEW"),
        (vec!["compare", base.as_str(), base.as_str()], "same run"),
        (vec!["compare", "previous", base.as_str()], "BASE previous"),
    ] {
        let mut a = args.clone();
        a.extend(["--results", s.results.as_str()]);
        let out = run(&a);
        assert_eq!(out.status.code(), Some(3), "{a:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{a:?}: {err}");
    }
    // A location without a store: refused, and nothing created there.
    let nowhere = s.dir.join("no-store-here");
    let out = run(&["compare", "a", "b", "--results", nowhere.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(!nowhere.exists(), "compare created a store");
    let out = run(&[
        "history",
        "--plan",
        "no-such-plan",
        "--results",
        s.results.as_str(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no stored run matches"));
}
