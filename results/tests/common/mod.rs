//! The constructed run shared by the integration tests: 2 racks × 2 nodes × 2 devices, 12 s at 10 Hz,
//! two phases, one lost batch (a recorded gap), a thermal throttle, a lost probe.

#![allow(dead_code)]

use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{
    ClockEstimate, DeviceInfo, DeviceKind, DeviceResult, Labels, NodeId, PhaseReport, Sample,
    TelemetryBatch, Workload,
};
use hallmark_results::{throttle, NewRun, PhaseRow, ProbeRow, RunId, RunStatus, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// 2026-11-29 02:15:00 UTC.
pub const T0: i64 = 1_795_918_500_000_000_000;
pub const MS: i64 = 1_000_000;
pub const HZ: f64 = 10.0;
/// Sample instants: T0 + k × 100 ms, k in 0..120 (12 s).
pub const K: i64 = 120;
pub const NODES: [(&str, &str); 4] = [
    ("r1n1", "rack-01"),
    ("r1n2", "rack-01"),
    ("r2n1", "rack-02"),
    ("r2n2", "rack-02"),
];

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hallmark-results-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn node(id: &str) -> NodeId {
    NodeId::new(id).unwrap()
}

pub fn new_run() -> NewRun {
    NewRun {
        name: "acceptance".into(),
        plan_name: "burn-then-idle".into(),
        plan_toml: "[plan]\nname = \"burn-then-idle\"\n".into(),
        hall: Some("sim-hall-a".into()),
        started_at_ns: T0,
        hallmark_version: "0.1.0".into(),
        sample_hz: HZ,
    }
}

pub fn device_info(index: u16) -> DeviceInfo {
    DeviceInfo {
        index,
        kind: DeviceKind::SimulatedGpu,
        model: "SimH200".into(),
        uuid: format!("GPU-sim-{index}"),
        serial: None,
        memory_bytes: Some(141 << 30),
        power_limit_w: Some(700.0),
        idle_power_w: Some(75.0),
        slowdown_temp_c: Some(87.0),
        shutdown_temp_c: Some(95.0),
        max_operating_temp_c: Some(85.0),
    }
}

/// Node power of node `n` at instant `k`, W (see the expected numbers in `round_trip_summary`).
pub fn node_power(n: usize, k: i64) -> f32 {
    match n {
        0 => 1000.0,
        1 if k < 80 => 2000.0,
        1 => 500.0,
        2 if k == 100 => 2500.0,
        _ => 1500.0,
    }
}

pub fn sample(n: usize, device: u16, k: i64) -> Sample {
    let mut temp = 50.0;
    let mut reasons = 0;
    if (n, device, k) == (1, 0, 10) {
        temp = 65.5;
    }
    if (n, device, k) == (2, 1, 70) {
        temp = 91.0;
    }
    if n == 2 && device == 1 && (70..85).contains(&k) {
        reasons |= throttle::HW_THERMAL | throttle::SW_THERMAL;
    }
    if n == 3 && device == 0 && k < 5 {
        reasons |= throttle::SW_POWER_CAP;
    }
    if k >= 80 {
        reasons |= throttle::GPU_IDLE; // idle is not throttling
    }
    Sample {
        t_ns: T0 + k * 100 * MS,
        device,
        power_w: Some(300.0),
        energy_j: Some(k as f64 * 30.0),
        gpu_temp_c: Some(temp),
        mem_temp_c: None,
        sm_clock_mhz: Some(1980),
        util_pct: None,
        throttle_reasons: reasons,
    }
}

/// Node `n`'s batch for second `sec` (seq = sec): 10 instants × 2 devices, 10 node-power readings.
pub fn batch(n: usize, sec: i64) -> TelemetryBatch {
    let ks = sec * 10..sec * 10 + 10;
    TelemetryBatch {
        gaps: Vec::new(),
        seq: sec as u64,
        node_power_w: ks
            .clone()
            .map(|k| (T0 + k * 100 * MS, node_power(n, k)))
            .collect(),
        samples: ks
            .flat_map(|k| (0..2).map(move |d| sample(n, d, k)))
            .collect(),
    }
}

/// Stores the constructed run; r2n2's batch 5 never arrives (a recorded gap) and r2n2 is lost at the end.
pub fn build(store: &mut Store) -> RunId {
    build_with_backends(store, true, NODES.len())
}

/// The constructed run as nodes without a power sensor report it: no node-power readings at all.
pub fn build_without_node_power(store: &mut Store) -> RunId {
    build_with_backends(store, false, NODES.len())
}

/// The constructed run on real devices: `cuda` probes with GPUs, except r2n2, a `sim` probe with
/// simulated GPUs (`simulated_nodes`: 0 or 1 of them simulated).
pub fn build_on_real_devices(store: &mut Store, simulated_nodes: usize) -> RunId {
    build_with_backends(store, true, simulated_nodes)
}

/// A `sim` probe registered at [`T0`] in `hall`/`row`/`rack`, no address, no clock estimate: what
/// tests that build their own small run register (struct update for anything else).
pub fn probe_row(id: &str, hall: &str, row: &str, rack: &str) -> ProbeRow {
    ProbeRow {
        node_id: node(id),
        labels: Labels {
            hall: hall.into(),
            row: row.into(),
            rack: rack.into(),
        },
        backend: "sim".into(),
        hallmark_version: "0.1.0".into(),
        remote: None,
        registered_at_ns: T0,
        clock: None,
    }
}

/// The last `simulated` nodes run the `sim` backend with simulated GPUs; the others `cuda`.
fn build_with_backends(store: &mut Store, node_power: bool, simulated: usize) -> RunId {
    let run = store.create_run(&new_run()).unwrap();
    for (i, (id, rack)) in NODES.iter().enumerate() {
        let probe = ProbeRow {
            node_id: node(id),
            labels: Labels {
                hall: "sim-hall-a".into(),
                row: "row-a".into(),
                rack: rack.to_string(),
            },
            backend: if i + simulated >= NODES.len() {
                "sim"
            } else {
                "cuda"
            }
            .into(),
            hallmark_version: "0.1.0".into(),
            remote: Some(format!("127.0.0.1:{}", 40000 + i)),
            registered_at_ns: T0 - 2_000 * MS,
            clock: Some(ClockEstimate {
                offset_ns: 1_000 * i as i64,
                uncertainty_ns: 50_000,
                rtt_ns: 100_000,
                measured_at_ns: T0 - 1_000 * MS,
            }),
        };
        store.add_probe(&run, &probe).unwrap();
        store
            .add_devices(&run, &node(id), &{
                let mut d = [device_info(0), device_info(1)];
                if i + simulated < NODES.len() {
                    d.iter_mut().for_each(|d| d.kind = DeviceKind::Gpu);
                }
                d
            })
            .unwrap();
    }
    for (phase_id, name, workload, start_s, ms) in [
        (1, "burn", Workload::Burn, 0, 8000),
        (2, "idle", Workload::Idle, 8, 4000),
    ] {
        store
            .add_phase(
                &run,
                &PhaseRow {
                    phase_id,
                    name: name.into(),
                    workload,
                    pattern: Pattern::Steady { level: 1.0 },
                    scheduled_start_ns: T0 + start_s * 1000 * MS,
                    duration_ms: ms,
                },
            )
            .unwrap();
    }
    for (id, offset_ns) in [
        ("r1n1", 0),
        ("r1n2", 1_500_000),
        ("r2n1", 250_000),
        ("r2n2", 750_000),
    ] {
        store
            .phase_started(&run, 1, &node(id), T0 + offset_ns)
            .unwrap();
    }
    for (id, offset_ns) in [("r1n1", 100_000), ("r1n2", 200_000), ("r2n1", 300_000)] {
        store
            .phase_started(&run, 2, &node(id), T0 + 8000 * MS + offset_ns)
            .unwrap();
    }
    // One insert_batches call per second, all nodes together.
    for sec in 0..K / 10 {
        let batches: Vec<(usize, TelemetryBatch)> = (0..4)
            .filter(|&n| !(n == 3 && sec == 5))
            .map(|n| {
                let mut b = batch(n, sec);
                if !node_power {
                    b.node_power_w.clear();
                }
                (n, b)
            })
            .collect();
        let nodes: Vec<NodeId> = NODES.iter().map(|(id, _)| node(id)).collect();
        let refs: Vec<(&NodeId, &TelemetryBatch, i64)> = batches
            .iter()
            .map(|(n, b)| (&nodes[*n], b, T0 + (sec + 1) * 1000 * MS))
            .collect();
        let done = store.insert_batches(&run, &refs).unwrap();
        assert!(done.iter().all(|d| d.new && d.samples == 20));
    }
    store
        .record_gap(
            &run,
            &node("r2n2"),
            T0 + 5000 * MS,
            T0 + 5900 * MS,
            None,
            "batch 5 never arrived",
        )
        .unwrap();
    store
        .phase_report(
            &run,
            &node("r2n1"),
            &PhaseReport {
                phase_id: 1,
                ended_at_ns: T0 + 8000 * MS,
                stopped_early: Some("hw thermal interlock on device 1".into()),
                devices: vec![
                    DeviceResult {
                        device: 0,
                        gflops: Some(100.0),
                        mem_bandwidth_gbps: None,
                        wrong_elements: 0,
                    },
                    DeviceResult {
                        device: 1,
                        gflops: Some(50.0),
                        mem_bandwidth_gbps: None,
                        wrong_elements: 3,
                    },
                ],
                fabric: None,
            },
        )
        .unwrap();
    store
        .probe_lost(
            &run,
            &node("r2n2"),
            T0 + 12_500 * MS,
            "connection lost: idle timeout",
        )
        .unwrap();
    store
        .finish_run(
            &run,
            T0 + 13_000 * MS,
            RunStatus::Incomplete,
            Some("probe r2n2 lost"),
        )
        .unwrap();
    run
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

#[macro_export]
macro_rules! assert_close {
    ($a:expr, $b:expr) => {{
        let (a, b): (f64, f64) = ($a, $b);
        assert!(
            $crate::common::close(a, b),
            "{} = {a}, expected {b}",
            stringify!($a)
        );
    }};
}
