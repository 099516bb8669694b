//! `hallmark publish`: two simulated runs of `examples/hall-small.toml` (run seeds 1 and 2, one
//! certified) published side by side, without a key (the store's data file cited) and with one
//! (each run's signed bundle written, verified and cited); an earlier publication is replaced and
//! a directory of other files is refused.

mod common;

use common::process::{run, tempdir};
use std::path::Path;

const HALL_SMALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hall-small.toml");

/// Idle, full load, the latency mesh and a short collective sweep on the 4 nodes of hall-small.
const PLAN: &str = r#"
name = "publish"
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
name = "steady"
workload = "burn"
duration_s = 4
pattern = { kind = "steady", level = 1.0 }
[[phase]]
name = "latency"
workload = "latency"
duration_s = 2
[[phase]]
name = "collectives"
workload = { kind = "collective", min_size = "8B", max_size = "64KiB" }
duration_s = 3
"#;

const SPEC: &str = r#"
name = "small-publish"
[[criterion]]
id = "rack-sustained-power"
title = "Sustained rack power"
kind = "sustained_power"
scope = "rack"
phase = "steady"
min = "10 kW"
window = "2 s"
"#;

fn ok(args: &[&str]) -> std::process::Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "hallmark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn two_simulated_runs_side_by_side() {
    let dir = tempdir("publish");
    let plan = dir.join("plan.toml");
    let spec = dir.join("spec.toml");
    std::fs::write(&plan, PLAN).unwrap();
    std::fs::write(&spec, SPEC).unwrap();
    let results = dir.join("results");
    let r = results.to_str().unwrap();
    let ids: Vec<String> = ["1", "2"]
        .iter()
        .map(|seed| {
            let out = ok(&[
                "run",
                plan.to_str().unwrap(),
                "--simulate",
                HALL_SMALL,
                "--seed",
                seed,
                "--json",
                "--results",
                r,
            ]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            v["run_id"].as_str().unwrap().to_string()
        })
        .collect();
    // Only the first run is judged: the page flags the difference.
    let out = run(&[
        "certify",
        &ids[0],
        "--spec",
        spec.to_str().unwrap(),
        "--results",
        r,
    ]);
    assert!(matches!(out.status.code(), Some(0..=2)), "{out:?}");

    let plain = dir.join("plain");
    let out = ok(&[
        "publish",
        &ids[0],
        &ids[1],
        "--out",
        plain.to_str().unwrap(),
        "--results",
        r,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 runs side by side"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Judged against different specs"),
        "{stderr}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&read(&plain, "data/publication.json")).unwrap();
    let charts: Vec<&str> = json["charts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for want in [
        "gpu-tflops",
        "gpu-power",
        "gpu-gflops-per-w",
        "rack-kw",
        "rack-design-pct",
        "gpu-throttle",
        "latency-p50",
        "latency-p99",
    ] {
        assert!(charts.contains(&want), "{want} missing from {charts:?}");
    }
    assert!(charts.iter().any(|c| c.starts_with("busbw-")), "{charts:?}");
    for c in &charts {
        let svg = read(&plain, &format!("charts/{c}.svg"));
        assert!(
            svg.contains("SIMULATED: every run in this chart is simulated"),
            "{c}"
        );
        for id in &ids {
            assert!(svg.contains(id.as_str()), "{c} does not cite {id}");
        }
        assert!(
            svg.contains("bundle not written; store data file hallmark.sqlite"),
            "{c}"
        );
    }
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for (v, id) in runs.iter().zip(&ids) {
        assert_eq!(v["run_id"], id.as_str());
        assert!(v["simulated"].as_str().unwrap().starts_with("SIMULATED"));
        assert_eq!(v["figures"]["gpus"].as_array().unwrap().len(), 32, "{id}");
        assert_eq!(v["method"]["devices_total"], 32);
        assert_eq!(v["data"]["sha256"].as_str().unwrap().len(), 64);
    }
    assert_eq!(runs[0]["spec"]["name"], "small-publish");
    assert!(runs[1]["spec"].is_null());
    // The judged run's racks carry the spec's 10 kW as their design power.
    let racks = read(&plain, "data/racks.csv");
    assert!(
        racks
            .lines()
            .filter(|l| l.starts_with(ids[0].as_str()))
            .all(|l| l.contains(",10,")),
        "{racks}"
    );
    // Two seeds: the same hall, figures that differ a little.
    let gpus = read(&plain, "data/gpus.csv");
    assert_eq!(gpus.lines().count(), 1 + 64);
    assert_ne!(
        runs[0]["figures"]["gpus"][0]["power_w"],
        runs[1]["figures"]["gpus"][0]["power_w"]
    );

    // Again into the same directory: an earlier publication is replaced.
    ok(&[
        "publish",
        &ids[0],
        &ids[1],
        "--out",
        plain.to_str().unwrap(),
        "--results",
        r,
    ]);
    // A directory of other files is refused, and nothing in it is touched.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let out = run(&[
        "publish",
        &ids[0],
        "--out",
        other.to_str().unwrap(),
        "--results",
        r,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("notes.txt") && stderr.contains("not empty"),
        "{stderr}"
    );
    assert_eq!(read(&other, "notes.txt"), "mine");

    // With a key: each run's bundle is written, verifies, and is cited by its SHA-256.
    let keys = dir.join("keys");
    ok(&["keygen", "--out", keys.to_str().unwrap()]);
    let signed = dir.join("signed");
    let key = keys.join("signing.key");
    ok(&[
        "publish",
        &ids[0],
        &ids[1],
        "--out",
        signed.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--results",
        r,
    ]);
    let json: serde_json::Value =
        serde_json::from_str(&read(&signed, "data/publication.json")).unwrap();
    for (v, id) in json["runs"].as_array().unwrap().iter().zip(&ids) {
        let file = format!("{id}.hallmark");
        assert_eq!(v["bundle"]["file"], file.as_str());
        let sha = v["bundle"]["sha256"].as_str().unwrap();
        let path = signed.join("bundles").join(&file);
        let out = ok(&[
            "verify",
            path.to_str().unwrap(),
            "--pubkey",
            keys.join("signing.pub").to_str().unwrap(),
        ]);
        assert!(String::from_utf8_lossy(&out.stdout).contains(id.as_str()));
        let svg = read(&signed, "charts/gpu-tflops.svg");
        assert!(svg.contains(&format!("bundle {file} sha256 {sha}")), "{id}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
