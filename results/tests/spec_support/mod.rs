//! A configurable constructed run for the spec tests: hall `hall-t`, row `row-a`, racks `rack-01`
//! (nodes r1n1, r1n2) and `rack-02` (r2n1, r2n2), 2 GPUs per node, 12 s at 10 Hz from `T0`, phases
//! `burn` (0–8 s, burn) and `idle` (8–12 s, idle). Each test changes what it needs through the
//! closures, then stores the run with [`Run::store`].

#![allow(dead_code)]

use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{
    DeviceInfo, DeviceKind, DeviceResult, Labels, NodeId, PhaseReport, Sample, TelemetryBatch,
    Workload,
};
use hallmark_results::{NewRun, PhaseRow, ProbeRow, RunId, RunStatus, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// 2026-11-29 02:15:00 UTC.
pub const T0: i64 = 1_795_918_500_000_000_000;
pub const MS: i64 = 1_000_000;
pub const NODES: [(&str, &str); 4] = [
    ("r1n1", "rack-01"),
    ("r1n2", "rack-01"),
    ("r2n1", "rack-02"),
    ("r2n2", "rack-02"),
];
/// A plan that expects the four nodes with two devices each.
pub const PLAN: &str = "name = \"t\"\n[expect]\nnodes = 4\ndevices_per_node = 2\n\
    [[phase]]\nname = \"burn\"\nworkload = \"burn\"\nduration_s = 8\npattern = { kind = \"steady\", level = 1.0 }\n\
    [[phase]]\nname = \"idle\"\nworkload = \"idle\"\nduration_s = 4\n";

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hallmark-spec-{name}-{}-{}",
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

type F<T> = Box<dyn Fn(usize, u16, i64) -> T>;
/// (gflops, wrong elements) of a device in a phase.
type Outcome = Option<(Option<f64>, u64)>;

/// What the constructed run holds; `n` is the node's position in [`NODES`], `d` the device, `k`
/// the sample instant (T0 + k × 100 ms, k in 0..120).
pub struct Run {
    pub plan_toml: String,
    /// Node power of node `n` at instant `k`, W (`None`: no reading).
    pub node_power: Box<dyn Fn(usize, i64) -> Option<f32>>,
    pub temp: F<Option<f32>>,
    pub reasons: F<u64>,
    /// Whether the sample of (n, d, k) is stored.
    pub sample: F<bool>,
    /// Actual start of phase `p` (1 or 2) on node `n`, ns after its scheduled start (`None`: never).
    pub start: Box<dyn Fn(usize, u32) -> Option<i64>>,
    /// Result of device `d` of node `n` in phase `p`: (gflops, wrong elements); `None`: no report.
    pub result: Box<dyn Fn(usize, u16, u32) -> Outcome>,
    /// Max-operating temperature of device `d` of node `n`.
    pub max_op: Box<dyn Fn(usize, u16) -> Option<f64>>,
    pub phases: bool,
}

impl Default for Run {
    fn default() -> Run {
        Run {
            plan_toml: PLAN.to_string(),
            node_power: Box::new(|_, k| Some(if k < 80 { 5000.0 } else { 1000.0 })),
            temp: Box::new(|_, _, _| Some(60.0)),
            reasons: Box::new(|_, _, _| 0),
            sample: Box::new(|_, _, _| true),
            start: Box::new(|n, _| Some(n as i64 * MS)),
            result: Box::new(|_, _, p| (p == 1).then_some((Some(100_000.0), 0))),
            max_op: Box::new(|_, _| Some(85.0)),
            phases: true,
        }
    }
}

impl Run {
    /// Stores the run in `store` and returns its id.
    pub fn store(&self, store: &mut Store) -> RunId {
        let run = store
            .create_run(&NewRun {
                name: "spec-test".into(),
                plan_name: "t".into(),
                plan_toml: self.plan_toml.clone(),
                hall: Some("hall-t".into()),
                started_at_ns: T0,
                hallmark_version: "0.1.0".into(),
                sample_hz: 10.0,
            })
            .unwrap();
        for (n, (id, rack)) in NODES.iter().enumerate() {
            store
                .add_probe(
                    &run,
                    &ProbeRow {
                        node_id: node(id),
                        labels: Labels {
                            hall: "hall-t".into(),
                            row: "row-a".into(),
                            rack: rack.to_string(),
                        },
                        backend: "sim".into(),
                        hallmark_version: "0.1.0".into(),
                        remote: None,
                        registered_at_ns: T0 - 2_000 * MS,
                        clock: None,
                    },
                )
                .unwrap();
            let devices: Vec<DeviceInfo> = (0..2)
                .map(|d| DeviceInfo {
                    index: d,
                    kind: DeviceKind::SimulatedGpu,
                    model: "SimH200".into(),
                    uuid: format!("GPU-{id}-{d}"),
                    serial: None,
                    memory_bytes: None,
                    power_limit_w: Some(700.0),
                    idle_power_w: Some(75.0),
                    slowdown_temp_c: Some(87.0),
                    shutdown_temp_c: Some(95.0),
                    max_operating_temp_c: (self.max_op)(n, d),
                })
                .collect();
            store.add_devices(&run, &node(id), &devices).unwrap();
        }
        if self.phases {
            self.store_phases(store, &run);
        }
        for sec in 0..12i64 {
            let batches: Vec<(usize, TelemetryBatch)> =
                (0..4).map(|n| (n, self.batch(n, sec))).collect();
            let ids: Vec<NodeId> = NODES.iter().map(|(id, _)| node(id)).collect();
            let refs: Vec<(&NodeId, &TelemetryBatch, i64)> = batches
                .iter()
                .map(|(n, b)| (&ids[*n], b, T0 + (sec + 1) * 1000 * MS))
                .collect();
            store.insert_batches(&run, &refs).unwrap();
        }
        store
            .finish_run(&run, T0 + 12_500 * MS, RunStatus::Complete, None)
            .unwrap();
        run
    }

    fn store_phases(&self, store: &mut Store, run: &RunId) {
        for (phase_id, name, workload, start_s, ms) in [
            (1u32, "burn", Workload::Burn, 0i64, 8000u64),
            (2, "idle", Workload::Idle, 8, 4000),
        ] {
            let start = T0 + start_s * 1000 * MS;
            store
                .add_phase(
                    run,
                    &PhaseRow {
                        phase_id,
                        name: name.into(),
                        workload,
                        pattern: Pattern::Steady { level: 1.0 },
                        scheduled_start_ns: start,
                        duration_ms: ms,
                    },
                )
                .unwrap();
            for (n, (id, _)) in NODES.iter().enumerate() {
                if let Some(offset) = (self.start)(n, phase_id) {
                    store
                        .phase_started(run, phase_id, &node(id), start + offset)
                        .unwrap();
                }
                let devices: Vec<DeviceResult> = (0..2)
                    .filter_map(|d| {
                        (self.result)(n, d, phase_id).map(|(gflops, wrong)| DeviceResult {
                            device: d,
                            gflops,
                            mem_bandwidth_gbps: None,
                            wrong_elements: wrong,
                        })
                    })
                    .collect();
                if devices.is_empty() {
                    continue;
                }
                store
                    .phase_report(
                        run,
                        &node(id),
                        &PhaseReport {
                            phase_id,
                            ended_at_ns: start + ms as i64 * MS,
                            stopped_early: None,
                            devices,
                            fabric: None,
                        },
                    )
                    .unwrap();
            }
        }
    }

    fn batch(&self, n: usize, sec: i64) -> TelemetryBatch {
        let ks = sec * 10..sec * 10 + 10;
        TelemetryBatch {
            gaps: Vec::new(),
            seq: sec as u64,
            node_power_w: ks
                .clone()
                .filter_map(|k| (self.node_power)(n, k).map(|w| (T0 + k * 100 * MS, w)))
                .collect(),
            samples: ks
                .flat_map(|k| (0..2u16).map(move |d| (d, k)))
                .filter(|&(d, k)| (self.sample)(n, d, k))
                .map(|(d, k)| Sample {
                    t_ns: T0 + k * 100 * MS,
                    device: d,
                    power_w: Some(600.0),
                    energy_j: None,
                    gpu_temp_c: (self.temp)(n, d, k),
                    mem_temp_c: None,
                    sm_clock_mhz: Some(1980),
                    util_pct: None,
                    throttle_reasons: (self.reasons)(n, d, k),
                })
                .collect(),
        }
    }
}

/// Stores `run` in a fresh store under `dir` and returns the store and the run id.
pub fn stored(dir: &TempDir, run: &Run) -> (Store, RunId) {
    let mut store = Store::open(dir.path()).unwrap();
    let id = run.store(&mut store);
    (store, id)
}
