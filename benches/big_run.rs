//! Writes one large run into a store, for timing what reads it: `hallmark certify` and `hallmark
//! report` on a 1 000-node × 8-GPU × 10 Hz × 10 min run (48 M samples), the reading goal of
//! `docs/PERFORMANCE.md`.
//!
//! ```text
//! HALLMARK_BIG_RESULTS=DIR cargo bench --bench big_run      # optional: HALLMARK_BIG_NODES (1000),
//!                                                          # HALLMARK_BIG_SECONDS (600)
//! HALLMARK_BIG_RESULTS=postgres://USER@HOST/DB cargo bench --bench big_run   # the same into PostgreSQL
//! ```
//!
//! The hall: racks of 10 nodes, rows of 10 racks, 8 simulated GPUs per node, one telemetry batch per
//! node per second (10 instants), written one second of the whole hall per transaction. Phase `idle`
//! takes the first 60 s, phase `steady` the rest at full load; every node reports both phases. The
//! numbers are deterministic (a hash of node, device and instant), with a little throttling and a few
//! hot GPUs so that the verdicts have something to find. Prints the run id and the ingest rate.

use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{
    DeviceInfo, DeviceKind, DeviceResult, Labels, NodeId, PhaseReport, Sample, TelemetryBatch,
    Workload,
};
use hallmark_store::location::Location;
use hallmark_store::{NewRun, PhaseRow, ProbeRow, RunId, RunStatus, Store};
use std::time::Instant;

const DEVICES: u16 = 8;
const HZ: i64 = 10;
const IDLE_S: i64 = 60;
const T0: i64 = 1_795_918_500_000_000_000;

fn env_or(name: &str, default: i64) -> i64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

/// A number in [0, 1) from a 64-bit mix of its inputs (splitmix64's finaliser).
fn unit(a: u64, b: u64, c: u64) -> f64 {
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(c.wrapping_mul(0x94D0_49BB_1331_11EB));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

fn node_id(n: usize) -> NodeId {
    NodeId::new(format!("r{:02}k{:02}n{:02}", n / 100, n / 10 % 10, n % 10)).expect("node id")
}

/// One node's batch for second `sec` of the run.
fn batch(n: usize, sec: i64) -> TelemetryBatch {
    let load = if sec < IDLE_S { 0.12 } else { 1.0 };
    let mut samples = Vec::with_capacity(DEVICES as usize * HZ as usize);
    let mut node_power = Vec::with_capacity(HZ as usize);
    for k in sec * HZ..(sec + 1) * HZ {
        let t = T0 + k * 1_000_000_000 / HZ + (n as i64 * 7_919) % 3_000_000;
        let mut sum = 0.0f32;
        for d in 0..DEVICES {
            let u = unit(n as u64, u64::from(d), k as u64);
            let hot = n % 97 == 3 && d == 5;
            let power = (1000.0 * load * (0.96 + 0.04 * u)) as f32;
            sum += power;
            let temp = 38.0 + 42.0 * load as f32 + 2.0 * u as f32 + if hot { 6.0 } else { 0.0 };
            samples.push(Sample {
                t_ns: t,
                device: d,
                power_w: Some(power),
                energy_j: Some(k as f64 * f64::from(power) / HZ as f64),
                gpu_temp_c: Some(temp),
                mem_temp_c: Some(temp - 4.0),
                sm_clock_mhz: Some(if load > 0.5 { 1980 } else { 345 }),
                util_pct: Some((100.0 * load) as f32),
                throttle_reasons: if hot && temp > 85.0 { 0x20 } else { 0 },
            });
        }
        node_power.push((t, sum + 800.0));
    }
    TelemetryBatch {
        seq: sec as u64,
        node_power_w: node_power,
        samples,
        gaps: Vec::new(),
    }
}

fn devices() -> Vec<DeviceInfo> {
    (0..DEVICES)
        .map(|i| DeviceInfo {
            index: i,
            kind: DeviceKind::SimulatedGpu,
            model: "sim-1000w".into(),
            uuid: format!("sim-{i}"),
            serial: None,
            memory_bytes: None,
            power_limit_w: Some(1000.0),
            idle_power_w: Some(120.0),
            slowdown_temp_c: Some(90.0),
            shutdown_temp_c: Some(97.0),
            max_operating_temp_c: Some(85.0),
        })
        .collect()
}

fn setup(store: &mut Store, nodes: usize, seconds: i64) -> (RunId, Vec<NodeId>) {
    let run = store
        .create_run(&NewRun {
            name: format!("big-run {nodes} nodes {seconds} s"),
            plan_name: "big-run".into(),
            plan_toml: String::new(),
            hall: Some("big-hall".into()),
            started_at_ns: T0,
            hallmark_version: env!("CARGO_PKG_VERSION").into(),
            sample_hz: HZ as f64,
        })
        .expect("create run");
    let ids: Vec<NodeId> = (0..nodes).map(node_id).collect();
    let devices = devices();
    for (n, id) in ids.iter().enumerate() {
        let probe = ProbeRow {
            node_id: id.clone(),
            labels: Labels {
                hall: "big-hall".into(),
                row: format!("row-{:02}", n / 100),
                rack: format!("rack-{:02}-{:02}", n / 100, n / 10 % 10),
            },
            backend: "sim".into(),
            hallmark_version: "big-run".into(),
            remote: None,
            registered_at_ns: T0 - 1,
            clock: None,
        };
        store.add_probe(&run, &probe).expect("add probe");
        store.add_devices(&run, id, &devices).expect("add devices");
    }
    let phases = [
        (1, "idle", Workload::Idle, 0, IDLE_S),
        (2, "steady", Workload::Burn, IDLE_S, seconds - IDLE_S),
    ];
    for (phase_id, name, workload, from_s, len_s) in phases {
        let start = T0 + from_s * 1_000_000_000;
        let row = PhaseRow {
            phase_id,
            name: name.into(),
            workload,
            pattern: Pattern::Steady { level: 1.0 },
            scheduled_start_ns: start,
            duration_ms: len_s as u64 * 1000,
        };
        store.add_phase(&run, &row).expect("add phase");
        for id in &ids {
            store
                .phase_started(&run, phase_id, id, start + 400_000)
                .expect("phase started");
        }
    }
    (run, ids)
}

fn reports(store: &mut Store, run: &RunId, ids: &[NodeId], seconds: i64) {
    for (n, id) in ids.iter().enumerate() {
        for (phase_id, end_s, gflops) in [(1, IDLE_S, None), (2, seconds, Some(900_000.0))] {
            let devices = (0..DEVICES)
                .map(|d| DeviceResult {
                    device: d,
                    gflops: gflops
                        .map(|g: f64| g * (0.97 + 0.03 * unit(n as u64, u64::from(d), 1))),
                    mem_bandwidth_gbps: None,
                    wrong_elements: 0,
                })
                .collect();
            let report = PhaseReport {
                phase_id,
                ended_at_ns: T0 + end_s * 1_000_000_000,
                stopped_early: None,
                devices,
                fabric: None,
            };
            store.phase_report(run, id, &report).expect("phase report");
        }
    }
}

fn main() {
    let Ok(target) = std::env::var("HALLMARK_BIG_RESULTS") else {
        println!(
            "big_run: set HALLMARK_BIG_RESULTS=DIR (or postgres://USER@HOST[:PORT]/DB) to write the \
             run (nothing done)"
        );
        return;
    };
    let location = Location::parse(&target).expect("HALLMARK_BIG_RESULTS");
    let nodes = env_or("HALLMARK_BIG_NODES", 1000) as usize;
    let seconds = env_or("HALLMARK_BIG_SECONDS", 600);
    assert!(
        seconds > IDLE_S,
        "HALLMARK_BIG_SECONDS must exceed {IDLE_S}"
    );
    let mut store = Store::open_location(&location).expect("open store");
    let (run, ids) = setup(&mut store, nodes, seconds);
    let start = Instant::now();
    let mut samples = 0usize;
    for sec in 0..seconds {
        let hall: Vec<TelemetryBatch> = (0..nodes).map(|n| batch(n, sec)).collect();
        samples += hall.iter().map(|b| b.samples.len()).sum::<usize>();
        let refs: Vec<(&NodeId, &TelemetryBatch, i64)> = hall
            .iter()
            .enumerate()
            .map(|(n, b)| (&ids[n], b, T0 + (sec + 1) * 1_000_000_000))
            .collect();
        store.insert_batches(&run, &refs).expect("insert batches");
    }
    let elapsed = start.elapsed().as_secs_f64();
    reports(&mut store, &run, &ids, seconds);
    store
        .finish_run(
            &run,
            T0 + seconds * 1_000_000_000,
            RunStatus::Complete,
            None,
        )
        .expect("finish run");
    println!(
        "big_run: {run} in {}: {nodes} nodes × {DEVICES} devices × {HZ} Hz × {seconds} s = \
         {samples} samples written in {elapsed:.1} s ({:.0} samples/s, generation included)",
        store.path().display(),
        samples as f64 / elapsed
    );
}
