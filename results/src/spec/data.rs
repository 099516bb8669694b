//! The run as the evaluation needs it, loaded in one pass: nodes, the device inventory, phases with
//! their starts, each node's power readings, per-device sample aggregates for the whole run and for
//! each phase window, and the devices' phase results.
//!
//! Telemetry comes from the store's one streaming scan ([`Store::scan_telemetry`]), as
//! [`crate::RunSummary`] reads it; the aggregates are [`DeviceAgg`]s from [`crate::aggregate`]
//! with the instants the evidence names (the hottest reading, the first and last throttled sample).

use std::collections::HashMap;

use hallmark_store::{ScanOptions, Store, StoreError, Telemetry};

use crate::aggregate::{throttle, DeviceAgg, PhaseWindows};
use crate::load::{checked_run, device_counts, phases};

/// A registered node.
pub(super) struct Node {
    pub id: String,
    pub row: String,
    pub rack: String,
    pub registered_at_ns: i64,
}

/// A device of the inventory, or one that sent samples without being in it (`kind` `None`).
pub(super) struct Device {
    pub node: usize,
    pub index: u16,
    pub kind: Option<String>,
    pub max_operating_temp_c: Option<f64>,
}

impl Device {
    /// GPUs (and simulated GPUs, and devices of unknown kind); not CPU sockets.
    pub fn is_gpu(&self) -> bool {
        self.kind.as_deref() != Some("cpu_socket")
    }
}

/// A phase as scheduled, with each node's actual start.
pub(super) struct Phase {
    pub id: u32,
    pub name: String,
    pub workload: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub duration_ms: u64,
    /// (node position, actual start ns).
    pub starts: Vec<(usize, i64)>,
}

/// A device's samples in one stretch of time.
#[derive(Debug, Clone, Default)]
pub(super) struct Acc {
    pub agg: DeviceAgg,
    /// Instant of the hottest reading.
    pub hottest_at: i64,
    /// First and last instant with each reason's bit, in the order of `throttle::REASONS`.
    pub reason_span: [Option<(i64, i64)>; throttle::REASONS.len()],
}

impl Acc {
    fn add(&mut self, t: i64, temp: Option<f64>, reasons: u64) {
        if let Some(x) = temp {
            if self.agg.max_gpu_temp_c.is_none_or(|m| x > m) {
                self.hottest_at = t;
            }
        }
        self.agg.add(temp, reasons);
        for (i, (bit, _)) in throttle::REASONS.iter().enumerate() {
            if reasons & bit != 0 {
                let s = self.reason_span[i].get_or_insert((t, t));
                s.0 = s.0.min(t);
                s.1 = s.1.max(t);
            }
        }
    }

    /// Adds another stretch's aggregate.
    pub fn merge(&mut self, o: &Acc) {
        if let Some(t) = o.agg.max_gpu_temp_c {
            if self.agg.max_gpu_temp_c.is_none_or(|m| t > m) {
                self.agg.max_gpu_temp_c = Some(t);
                self.hottest_at = o.hottest_at;
            }
        }
        self.agg.samples += o.agg.samples;
        self.agg.throttled += o.agg.throttled;
        for i in 0..throttle::REASONS.len() {
            self.agg.by_reason[i] += o.agg.by_reason[i];
            self.reason_span[i] = match (self.reason_span[i], o.reason_span[i]) {
                (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
                (a, b) => a.or(b),
            };
        }
    }
}

/// One device's result in one phase.
pub(super) struct PhaseResult {
    pub phase: usize,
    pub device: usize,
    pub gflops: Option<f64>,
    pub wrong_elements: Option<i64>,
}

/// Everything the criteria are judged on.
pub(super) struct RunData {
    pub hall: String,
    pub sample_hz: f64,
    pub started_at_ns: i64,
    pub ended_at_ns: Option<i64>,
    pub plan_toml: String,
    pub nodes: Vec<Node>,
    pub devices: Vec<Device>,
    /// Per device (parallel to `devices`): the whole run, and each phase window.
    pub total: Vec<Acc>,
    pub per_phase: Vec<Vec<Acc>>,
    pub phases: Vec<Phase>,
    /// Per node: node-power readings (t ns, W) in stored order.
    pub power: Vec<Vec<(i64, f64)>>,
    pub results: Vec<PhaseResult>,
}

impl RunData {
    /// `node/index`.
    pub fn device_name(&self, d: usize) -> String {
        let dev = &self.devices[d];
        format!("{}/{}", self.nodes[dev.node].id, dev.index)
    }
}

/// Loads a run for evaluation; an unknown id is [`StoreError::UnknownRun`].
pub(super) fn spec_data(store: &Store, run_id: &str) -> Result<RunData, StoreError> {
    let run = checked_run(store, run_id)?;
    let (sample_hz, started_at_ns, ended_at_ns, plan_toml, run_hall) = (
        run.sample_hz,
        run.started_at_ns,
        run.ended_at_ns,
        run.plan_toml,
        run.hall,
    );

    let probes = store.probes(run_id)?;
    let inventory = store.devices(run_id)?;
    let counts = device_counts(&inventory);
    let node_pos: HashMap<String, usize> = probes
        .iter()
        .enumerate()
        .map(|(i, p)| (p.node.clone(), i))
        .collect();
    let key_pos: HashMap<i64, usize> = probes.iter().enumerate().map(|(i, p)| (p.key, i)).collect();
    let phase_rows = phases(store, run_id, &probes, &counts, sample_hz)?;

    // The hall's name: the label most nodes carry, else the run's simulated hall.
    let mut halls: HashMap<&str, usize> = HashMap::new();
    for p in &probes {
        *halls.entry(p.hall.as_str()).or_default() += 1;
    }
    let hall = halls
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|h| h.0.to_string())
        .or(run_hall)
        .unwrap_or_else(|| "hall".to_string());

    let nodes: Vec<Node> = probes
        .iter()
        .map(|p| Node {
            id: p.node.clone(),
            row: p.row.clone(),
            rack: p.rack.clone(),
            registered_at_ns: p.registered_at_ns,
        })
        .collect();
    let phases: Vec<Phase> = phase_rows
        .into_iter()
        .map(|p| {
            let s = p.summary;
            let start = s.scheduled_start_ns;
            Phase {
                id: s.phase_id,
                end_ns: start.saturating_add((s.duration_ms as i64).saturating_mul(1_000_000)),
                start_ns: start,
                duration_ms: s.duration_ms,
                name: s.name,
                workload: s.workload,
                starts: p
                    .starts
                    .iter()
                    .filter_map(|(n, t)| node_pos.get(n).map(|&i| (i, *t)))
                    .collect(),
            }
        })
        .collect();

    // The inventory; `slots[node][index]` is the device's position.
    let mut devices: Vec<Device> = Vec::new();
    let mut slots: Vec<Vec<Option<usize>>> = vec![Vec::new(); nodes.len()];
    for d in inventory {
        let Some(&n) = node_pos.get(&d.node) else {
            continue;
        };
        let (index, kind, max_op) = (d.device, d.kind, d.max_operating_temp_c);
        slot(&mut slots[n], index, &mut devices, n, Some(kind), max_op);
    }

    let windows = PhaseWindows::new(phases.iter().map(|p| (p.start_ns, p.end_ns)));
    let mut total: Vec<Acc> = vec![Acc::default(); devices.len()];
    let mut per_phase: Vec<Vec<Acc>> = vec![vec![Acc::default(); phases.len()]; devices.len()];
    let mut power: Vec<Vec<(i64, f64)>> = vec![Vec::new(); nodes.len()];
    store.scan_telemetry::<StoreError>(run_id, ScanOptions::ALL, |rec| {
        match rec {
            Telemetry::Sample(r) => {
                let Some(&n) = key_pos.get(&r.node_key) else {
                    return Ok(());
                };
                let index = r.device;
                let d = match slots[n].get(usize::from(index)).copied().flatten() {
                    Some(d) => d,
                    None => {
                        let d = slot(&mut slots[n], index, &mut devices, n, None, None);
                        total.push(Acc::default());
                        per_phase.push(vec![Acc::default(); phases.len()]);
                        d
                    }
                };
                let (t, temp, reasons) = (r.t_ns, r.gpu_temp_c, r.throttle_reasons);
                total[d].add(t, temp, reasons);
                let dp = &mut per_phase[d];
                windows.each(t, |i| dp[i].add(t, temp, reasons));
            }
            Telemetry::NodePower(r) => {
                if let (Some(&n), Some(w)) = (key_pos.get(&r.node_key), r.power_w) {
                    power[n].push((r.t_ns, w));
                }
            }
        }
        Ok(())
    })?;

    let phase_pos: HashMap<u32, usize> =
        phases.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
    let rows = store.phase_results(run_id)?;
    let mut results = Vec::with_capacity(rows.len());
    for r in rows {
        let (phase_id, node, index, gflops, wrong) =
            (r.phase_id, r.node, r.device, r.gflops, r.wrong_elements);
        let (Some(&phase), Some(&n)) = (phase_pos.get(&phase_id), node_pos.get(&node)) else {
            continue;
        };
        let device = match slots[n].get(usize::from(index)).copied().flatten() {
            Some(d) => d,
            None => {
                total.push(Acc::default());
                per_phase.push(vec![Acc::default(); phases.len()]);
                slot(&mut slots[n], index, &mut devices, n, None, None)
            }
        };
        results.push(PhaseResult {
            phase,
            device,
            gflops: gflops.filter(|g| g.is_finite()),
            wrong_elements: wrong,
        });
    }

    Ok(RunData {
        hall,
        sample_hz,
        started_at_ns,
        ended_at_ns,
        plan_toml,
        nodes,
        devices,
        total,
        per_phase,
        phases,
        power,
        results,
    })
}

/// Adds a device at `index` of node `n` and returns its position.
fn slot(
    slots: &mut Vec<Option<usize>>,
    index: u16,
    devices: &mut Vec<Device>,
    n: usize,
    kind: Option<String>,
    max_operating_temp_c: Option<f64>,
) -> usize {
    let i = usize::from(index);
    if slots.len() <= i {
        slots.resize(i + 1, None);
    }
    let pos = devices.len();
    devices.push(Device {
        node: n,
        index,
        kind,
        max_operating_temp_c: max_operating_temp_c.filter(|t| t.is_finite()),
    });
    slots[i] = Some(pos);
    pos
}
