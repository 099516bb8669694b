//! hallmark's change points against Apache Otava's on the same series.
//!
//! A fixed set of series (steps of sizes from half the noise to fifty times it, at several
//! positions and lengths, two-, three- and five-level series longer than a window, a ramp, spikes,
//! integer-valued noise, a noiseless step, a constant and very short series; noise from a
//! splitmix64 with fixed seeds) goes to Otava through `otava_changepoints.py`, under two parameter
//! sets: Otava's defaults (window 50, p < 0.001, no magnitude floor) and a short window with a
//! looser level and a 5 % magnitude floor (window 20, p < 0.01, min_magnitude 0.05). The test
//! asserts, on every series: the same number of change points at the same indices; p-values
//! within 1e-9 relative (or both below 1e-300); means before and after within 1e-12 relative.
//!
//! The Python is `HALLMARK_OTAVA_PYTHON` (`.ci/run` sets it to a virtual environment with
//! `apache-otava` installed), else `python3`. Without Otava the test skips and says why; in CI
//! (`CI=true`) it fails instead.

#[path = "../../tests/common/prereq.rs"]
mod prereq;
mod support;

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hallmark_compare::{change_points, Params};
use serde_json::{json, Value};
use support::{steps, SplitMix64};

const P_REL_TOL: f64 = 1e-9;
const MEAN_REL_TOL: f64 = 1e-12;
/// Otava takes a few seconds for both parameter sets on two cores.
const OTAVA_TIMEOUT: Duration = Duration::from_secs(300);
/// Random series beside the hand-picked ones.
const RANDOM_SERIES: u64 = 400;

fn python() -> String {
    std::env::var("HALLMARK_OTAVA_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Why Otava cannot be run, if it cannot.
fn otava_missing(py: &str) -> Option<String> {
    match Command::new(py)
        .args(["-c", "import otava.analysis"])
        .output()
    {
        Err(e) => Some(format!(
            "cannot run {py} ({e}); set HALLMARK_OTAVA_PYTHON to a Python with apache-otava"
        )),
        Ok(o) if !o.status.success() => {
            Some(format!(
            "{py} cannot import otava ({}); pip install apache-otava in a virtual environment and \
             set HALLMARK_OTAVA_PYTHON to its python",
            String::from_utf8_lossy(&o.stderr).trim().lines().last().unwrap_or("")
        ))
        }
        Ok(_) => None,
    }
}

/// The series both sides analyse, with names for the failure messages.
fn corpus() -> Vec<(String, Vec<f64>)> {
    let mut out: Vec<(String, Vec<f64>)> = Vec::new();
    out.push((
        "step 40 at 20".into(),
        steps(1, &[(20, 100.0), (20, 110.0)], 1.0),
    ));
    out.push(("flat 60".into(), steps(2, &[(60, 100.0)], 1.0)));
    out.push((
        "two steps".into(),
        steps(3, &[(30, 50.0), (30, 55.0), (30, 48.0)], 1.0),
    ));
    // Step sizes from half the noise to fifty times it, at several positions and lengths.
    let mut seed = 100;
    for &size in &[0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 50.0] {
        for &(len, at) in &[(30usize, 10usize), (50, 25), (80, 60), (120, 45)] {
            seed += 1;
            out.push((
                format!("step {size}σ, {len} points at {at}"),
                steps(seed, &[(at, 200.0), (len - at, 200.0 + size)], 1.0),
            ));
        }
    }
    out.push((
        "five levels over 300".into(),
        steps(
            7,
            &[(70, 10.0), (50, 10.6), (60, 9.8), (40, 11.5), (80, 11.0)],
            0.2,
        ),
    ));
    // A slow ramp: many weak change points for the merge to work through.
    let mut rng = SplitMix64::new(8);
    out.push((
        "ramp 150".into(),
        (0..150)
            .map(|i| 20.0 + 0.05 * i as f64 + rng.noise(0.5))
            .collect(),
    ));
    // Spikes on a flat series.
    let mut spiky = steps(9, &[(100, 30.0)], 0.3);
    for i in [13, 47, 48, 81] {
        spiky[i] += 6.0;
    }
    out.push(("spikes".into(), spiky));
    // Integer-valued noise (equal distances everywhere: ties in q̂).
    let mut rng = SplitMix64::new(10);
    out.push((
        "integers".into(),
        (0..70)
            .map(|i| (rng.next_u64() % 4) as f64 + if i >= 35 { 3.0 } else { 0.0 })
            .collect(),
    ));
    out.push((
        "noiseless step".into(),
        (0..40).map(|i| if i < 20 { 1.0 } else { 2.0 }).collect(),
    ));
    out.push(("constant".into(), vec![5.0; 30]));
    out.push(("empty".into(), vec![]));
    out.push(("one point".into(), vec![3.0]));
    out.push(("two points".into(), vec![3.0, 4.0]));
    out.push(("five points".into(), steps(11, &[(2, 1.0), (3, 9.0)], 0.1)));
    // And a random assortment: 3 to 160 points, 1 to 5 levels, noise of 0, 0.1 or 1, some
    // rounded to integers.
    for k in 0..RANDOM_SERIES {
        let mut rng = SplitMix64::new(1000 + k);
        let len = 3 + (rng.next_u64() % 158) as usize;
        let levels = 1 + (rng.next_u64() % 5) as usize;
        let sigma = [0.0, 0.1, 1.0][(rng.next_u64() % 3) as usize];
        let round = rng.next_u64().is_multiple_of(4);
        let mut level = 10.0 + 10.0 * rng.uniform();
        let mut s = Vec::with_capacity(len);
        for i in 0..len {
            if i > 0 && (i * levels) % len < levels {
                level += 4.0 * (rng.uniform() - 0.5);
            }
            let v = level + rng.noise(sigma);
            s.push(if round { v.round() } else { v });
        }
        out.push((format!("random {k}"), s));
    }
    out
}

fn otava(py: &str, params: &Params, series: &[Vec<f64>], tag: &str) -> (String, Vec<Value>) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("otava-agreement-{}-{tag}.json", std::process::id()));
    let job = json!({
        "window_len": params.window_len,
        "max_pvalue": params.max_pvalue,
        "min_magnitude": params.min_magnitude,
        "series": series,
    });
    std::fs::write(&path, job.to_string()).expect("write the series for Otava");
    let out_path = path.with_extension("out.json");
    let err_path = path.with_extension("err.txt");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otava_changepoints.py");
    let mut child = Command::new(py)
        .arg(script)
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create Otava's output file"))
        .stderr(File::create(&err_path).expect("create Otava's error file"))
        .spawn()
        .expect("run Otava");
    let deadline = Instant::now() + OTAVA_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for Otava") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{py} {script} ran past {OTAVA_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read(&out_path).expect("read Otava's output");
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    for f in [&path, &out_path, &err_path] {
        let _ = std::fs::remove_file(f);
    }
    assert!(status.success(), "{py} {script} failed: {stderr}");
    let v: Value = serde_json::from_slice(&stdout).expect("Otava's answer is JSON");
    let version = v["otava_version"].as_str().unwrap_or("?").to_string();
    let results = v["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), series.len());
    (version, results)
}

fn rel_diff(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / a.abs().max(b.abs())
    }
}

#[test]
fn change_points_agree_with_otava() {
    let py = python();
    if let Some(why) = otava_missing(&py) {
        prereq::missing(&why);
        return;
    }
    let corpus = corpus();
    let series: Vec<Vec<f64>> = corpus.iter().map(|(_, s)| s.clone()).collect();
    let param_sets = [
        ("defaults", Params::default()),
        (
            "short",
            Params {
                window_len: 20,
                max_pvalue: 0.01,
                min_magnitude: 0.05,
                ..Params::default()
            },
        ),
    ];
    for (tag, params) in param_sets {
        let (version, theirs) = otava(&py, &params, &series, tag);
        let (mut points, mut worst_p, mut worst_mean) = (0, 0.0f64, 0.0f64);
        for ((name, s), their) in corpus.iter().zip(&theirs) {
            let ours = change_points(s, &params).expect("valid series");
            let their = their.as_array().expect("a list per series");
            let our_idx: Vec<usize> = ours.iter().map(|c| c.index).collect();
            let their_idx: Vec<usize> = their
                .iter()
                .map(|c| c["index"].as_u64().expect("index") as usize)
                .collect();
            assert_eq!(
                our_idx, their_idx,
                "{tag}: {name}: change points differ from Otava {version}'s"
            );
            for (o, t) in ours.iter().zip(their) {
                let tp = t["pvalue"].as_f64().expect("pvalue");
                if !(o.p_value < 1e-300 && tp < 1e-300) {
                    let d = rel_diff(o.p_value, tp);
                    worst_p = worst_p.max(d);
                    assert!(
                        d <= P_REL_TOL,
                        "{tag}: {name}: at {}: p {} vs Otava's {tp}",
                        o.index,
                        o.p_value
                    );
                }
                for (ours, key) in [(o.mean_before, "mean_before"), (o.mean_after, "mean_after")] {
                    let d = rel_diff(ours, t[key].as_f64().expect("mean"));
                    worst_mean = worst_mean.max(d);
                    assert!(d <= MEAN_REL_TOL, "{tag}: {name}: at {}: {key}", o.index);
                }
                points += 1;
            }
        }
        assert!(points > 0, "{tag}: no change point compared");
        eprintln!(
            "{tag}: {} series, {points} change points agree with Otava {version}; largest \
             relative difference: p-value {worst_p:e}, means {worst_mean:e}",
            corpus.len()
        );
    }
}
