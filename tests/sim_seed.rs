//! The run seed of a simulated hall (docs/HALL.md, "The run seed"): the hall file's `seed` fixes the
//! hardware, the run seed varies what differs between two runs of it, within stated bounds.
//!
//! Most tests drive the simulated nodes of `examples/hall-small.toml` directly (no network, the
//! same instants every time): the same hall and run seed give the same physics and readings,
//! different run seeds give figures that differ a little and stay within the bounds, the GPUs'
//! spread is the hall's alone, and the hall's fault shows under every run seed. One test runs
//! `hallmark run --simulate` end to end with two seeds.

mod common;

use common::process::{run, tempdir};
use hallmark_workloads::backend::{throttle, Backend, NodeReading};
use hallmark_workloads::sim::conditions::{
    BASE_LOAD_VARIATION, POWER_NOISE_FRACTION, SUPPLY_DRIFT_MAX_K, SUPPLY_OFFSET_MAX_K,
    TEMP_NOISE_K,
};
use hallmark_workloads::sim::{load_hall, HallSpec, RunConditions, SimBackend};
use std::path::Path;

const S: i64 = 1_000_000_000;
/// Largest departure of a rack's supply from its setpoint in a run, K.
const SUPPLY_BOUND_K: f64 = SUPPLY_OFFSET_MAX_K + SUPPLY_DRIFT_MAX_K;
const HALL_SMALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hall-small.toml");

fn hall() -> HallSpec {
    load_hall(Path::new(HALL_SMALL)).expect("examples/hall-small.toml loads")
}

/// What a run of full load did, per node in hall order.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// Each device's true temperature at the end, °C.
    truth: Vec<Vec<f64>>,
    /// The last readings.
    read: Vec<NodeReading>,
    /// Each node's rack supply at the end, °C.
    supply: Vec<f64>,
    /// (node, device) that read a thermal throttle reason at any instant.
    thermal: Vec<(String, u16)>,
}

/// Full load on every node of `hall` under `run` for `seconds`, sampled at 10 Hz from instant 0.
fn full_load(hall: &HallSpec, run: RunConditions, seconds: i64) -> Outcome {
    let (_loops, nodes) = hall.backends_for_run(run).unwrap();
    let mut backends: Vec<SimBackend> = nodes.into_iter().map(|(_, b)| b).collect();
    for b in &mut backends {
        for d in 0..hall.gpus_per_node {
            b.set_level(d, 1.0).unwrap();
        }
    }
    let mut read = Vec::new();
    let mut thermal = Vec::new();
    for k in 0..=seconds * 10 {
        read.clear();
        for b in &mut backends {
            let r = b.sample(k * S / 10).unwrap();
            for d in &r.devices {
                let at = (b.node_id().to_string(), d.device);
                if d.throttle_reasons & throttle::THERMAL != 0 && !thermal.contains(&at) {
                    thermal.push(at);
                }
            }
            read.push(r);
        }
    }
    Outcome {
        truth: backends
            .iter()
            .map(|b| {
                (0..hall.gpus_per_node)
                    .map(|d| b.gpu(d).unwrap().temp_c())
                    .collect()
            })
            .collect(),
        read,
        supply: backends.iter().map(SimBackend::supply_c).collect(),
        thermal,
    }
}

#[test]
fn the_same_hall_and_run_seed_give_the_same_physics_and_readings() {
    let hall = hall();
    let a = full_load(&hall, RunConditions::Seeded(7), 60);
    let b = full_load(&hall, RunConditions::Seeded(7), 60);
    assert_eq!(a, b);
    // Not trivially: the run's draws are in there (another seed reads otherwise).
    let c = full_load(&hall, RunConditions::Seeded(8), 60);
    assert_ne!(a.truth, c.truth);
    assert_ne!(a.read, c.read);
}

#[test]
fn different_run_seeds_differ_a_little_within_the_stated_bounds() {
    let hall = hall();
    let nominal = full_load(&hall, RunConditions::Nominal, 120);
    let mut hottest = Vec::new();
    for seed in [0, 1, 2, 3] {
        let o = full_load(&hall, RunConditions::Seeded(seed), 120);
        // The supply: within the stated bound of the setpoint (30 °C), within capacity.
        for s in &o.supply {
            assert!(
                (s - 30.0).abs() <= SUPPLY_BOUND_K,
                "seed {seed}: supply {s}"
            );
        }
        assert_ne!(o.supply, nominal.supply, "seed {seed}");
        let mut largest = 0.0f64;
        for (n, (truth, base)) in o.truth.iter().zip(&nominal.truth).enumerate() {
            for (d, (t, b)) in truth.iter().zip(base).enumerate() {
                // Steady T = supply + P·R: the devices move with their rack's supply only.
                assert!(
                    (t - b).abs() <= SUPPLY_BOUND_K + 0.05,
                    "seed {seed} node {n} device {d}: {t} vs {b}"
                );
                let read = o.read[n].devices[d].gpu_temp_c.unwrap();
                let nominal_read = nominal.read[n].devices[d].gpu_temp_c.unwrap();
                assert!(
                    (read - nominal_read).abs() <= SUPPLY_BOUND_K + TEMP_NOISE_K + 0.05,
                    "seed {seed} node {n} device {d}: read {read} vs {nominal_read}"
                );
                largest = largest.max((t - b).abs());
            }
            // Node power: the base load (×1 ± 1 %) and the reading's noise (± 0.5 %).
            let p = o.read[n].node_power_w.unwrap();
            let q = nominal.read[n].node_power_w.unwrap();
            let most = hall.base_load_w * BASE_LOAD_VARIATION + q * 2.0 * POWER_NOISE_FRACTION;
            assert!(
                (p - q).abs() <= most,
                "seed {seed} node {n}: {p} W vs {q} W"
            );
            assert_ne!(p, q);
        }
        let max = o.truth.iter().flatten().copied().fold(f64::MIN, f64::max);
        println!(
            "run seed {seed}: supplies {:?} °C, hottest GPU {max:.2} °C, largest shift from nominal {largest:.2} K",
            o.supply.iter().map(|s| (s * 100.0).round() / 100.0).collect::<Vec<_>>()
        );
        hottest.push(max);
    }
    hottest.dedup();
    assert_eq!(hottest.len(), 4, "each seed its own figures: {hottest:?}");
}

#[test]
fn the_hall_seed_alone_fixes_the_gpu_spread() {
    let hall = hall();
    let params = |hall: &HallSpec, run: RunConditions| {
        let (_, nodes) = hall.backends_for_run(run).unwrap();
        nodes
            .iter()
            .flat_map(|(_, b)| (0..hall.gpus_per_node).map(|d| b.gpu(d).unwrap().params().clone()))
            .collect::<Vec<_>>()
    };
    let one = params(&hall, RunConditions::Seeded(1));
    assert_eq!(one, params(&hall, RunConditions::Seeded(2)));
    assert_eq!(one, params(&hall, RunConditions::Nominal));
    // A probe simulating only its own node draws the same devices.
    let id = &hall.nodes()[3].node_id;
    let alone = hall
        .backend_scaled_for_run(id, RunConditions::Seeded(9))
        .unwrap();
    let first = 3 * usize::from(hall.gpus_per_node);
    assert_eq!(alone.gpu(5).unwrap().params(), &one[first + 5]);
    // The hall's seed is what fixes them.
    let other = HallSpec {
        seed: hall.seed + 1,
        ..hall.clone()
    };
    let moved = params(&other, RunConditions::Seeded(1));
    assert!(one
        .iter()
        .zip(&moved)
        .all(|(a, b)| a.efficiency != b.efficiency));
}

#[test]
fn the_weak_cold_plate_shows_under_every_run_seed() {
    let hall = hall();
    let weak = ("row1-rack02-n01".to_string(), 5u16);
    for run in [
        RunConditions::Nominal,
        RunConditions::Seeded(0),
        RunConditions::Seeded(1),
        RunConditions::Seeded(2),
        RunConditions::Seeded(u64::MAX),
    ] {
        let o = full_load(&hall, run, 120);
        assert_eq!(o.thermal, vec![weak.clone()], "{run:?}");
    }
}

/// A probe simulating only its own node (`probe --sim-hall --seed N`) sees its rack's supply as
/// the shared loop of the in-process hall does under the same run seed.
#[test]
fn a_probe_alone_sees_the_same_run_as_the_whole_hall() {
    let hall = hall();
    let run = RunConditions::Seeded(4);
    let whole = full_load(&hall, run, 60);
    for (n, node) in hall.nodes().iter().enumerate() {
        let mut alone = hall.backend_scaled_for_run(&node.node_id, run).unwrap();
        for d in 0..hall.gpus_per_node {
            alone.set_level(d, 1.0).unwrap();
        }
        for k in 0..=600 {
            alone.sample(k * S / 10).unwrap();
        }
        let supply = alone.supply_c();
        assert!(
            (supply - whole.supply[n]).abs() < 1e-9,
            "{}: {supply} vs {}",
            node.node_id,
            whole.supply[n]
        );
        // The same devices and the same noise; the temperatures as close as the order in which
        // the shared loop's nodes step allows.
        let read = alone.sample(60 * S).unwrap();
        assert_eq!(read.node_power_w, whole.read[n].node_power_w);
        for (x, y) in read.devices.iter().zip(&whole.read[n].devices) {
            assert_eq!(
                (x.power_w, x.energy_j),
                (y.power_w, y.energy_j),
                "{}",
                node.node_id
            );
            let (tx, ty) = (x.gpu_temp_c.unwrap(), y.gpu_temp_c.unwrap());
            assert!((tx - ty).abs() < 1e-3, "{}: {tx} vs {ty}", node.node_id);
        }
    }
}

/// A short plan for the 4 nodes of hall-small.
const PLAN: &str = r#"
name = "seeded"
sample_hz = 10
[expect]
nodes = 4
devices_per_node = 8
timeout_s = 20
[[phase]]
name = "ramp"
workload = "burn"
duration_s = 1
pattern = { kind = "ramp", from = 0.0, to = 1.0 }
[[phase]]
name = "steady"
workload = "burn"
duration_s = 3
pattern = { kind = "steady", level = 1.0 }
"#;

#[test]
fn run_simulate_records_its_run_seed_and_two_seeds_differ_a_little() {
    let dir = tempdir("seed");
    let plan = dir.join("plan.toml");
    std::fs::write(&plan, PLAN).unwrap();
    let results = dir.join("results");
    let simulate = |seed: &str| -> serde_json::Value {
        let out = run(&[
            "run",
            plan.to_str().unwrap(),
            "--simulate",
            HALL_SMALL,
            "--seed",
            seed,
            "--json",
            "--results",
            results.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
    };
    let (a, b) = (simulate("1"), simulate("2"));
    for (v, seed) in [(&a, 1), (&b, 2)] {
        assert_eq!(v["status"], "complete", "{v}");
        let notes: Vec<&str> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "note")
            .map(|e| e["message"].as_str().unwrap())
            .collect();
        let want = format!("hall seed 7 (the hardware: each GPU's spread), run seed {seed} ");
        assert!(notes.iter().any(|n| n.contains(&want)), "{notes:?}");
    }
    // Each rack: the figures differ between the seeds, by no more than the bounds allow (the
    // supply, the temperature reading's noise, and some slack for the two runs' own timing).
    let racks = |v: &serde_json::Value| v["racks"].as_array().unwrap().clone();
    for (x, y) in racks(&a).iter().zip(&racks(&b)) {
        assert_eq!(x["rack"], y["rack"]);
        let (tx, ty) = (
            x["max_gpu_temp_c"].as_f64().unwrap(),
            y["max_gpu_temp_c"].as_f64().unwrap(),
        );
        assert!(
            tx != ty && (tx - ty).abs() < 2.0 * SUPPLY_BOUND_K + 2.0 * TEMP_NOISE_K + 0.5,
            "{x} vs {y}"
        );
        let (px, py) = (
            x["peak_kw"].as_f64().unwrap(),
            y["peak_kw"].as_f64().unwrap(),
        );
        assert!((px - py).abs() < 0.03 * px, "{px} vs {py}");
    }
    // The run seed is for simulated halls only.
    let out = run(&[
        "run",
        plan.to_str().unwrap(),
        "--seed",
        "3",
        "--listen",
        "127.0.0.1:1",
        "--ca",
        "a",
        "--cert",
        "b",
        "--key",
        "c",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'--seed <N>' cannot be used with '--listen"),
        "{err}"
    );
    let out = run(&["run", plan.to_str().unwrap(), "--seed", "3"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--simulate <HALL.toml>"), "{err}");
    let out = run(&["probe", "--list-devices", "--backend", "sim", "--seed", "3"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--sim-hall <HALL.toml>"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
