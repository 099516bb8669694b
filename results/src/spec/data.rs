//! The run as the evaluation needs it, loaded in one pass: nodes, the device inventory, phases with
//! their starts, each node's power readings, per-device sample aggregates for the whole run and for
//! each phase window, and the devices' phase results.
//!
//! Telemetry rows are found through the batch index and read by row-id ranges, as
//! [`crate::RunSummary`] reads them; the aggregates are [`DeviceAgg`]s from [`crate::aggregate`]
//! with the instants the evidence names (the hottest reading, the first and last throttled sample).

use std::collections::HashMap;

use rusqlite::OptionalExtension;

use crate::aggregate::{throttle, DeviceAgg, PhaseWindows};
use crate::error::StoreError;
use crate::store::Store;

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

impl Store {
    /// Loads a run for evaluation; an unknown id is [`StoreError::UnknownRun`].
    pub(super) fn spec_data(&self, run_id: &str) -> Result<RunData, StoreError> {
        let e = |op| self.err(op);
        type Head = (f64, i64, Option<i64>, String, Option<String>);
        let head: Option<Head> = self
            .conn
            .query_row(
                "SELECT sample_hz, started_at_ns, ended_at_ns, plan_toml, hall FROM runs WHERE run_id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(e("reading a run"))?;
        let (sample_hz, started_at_ns, ended_at_ns, plan_toml, run_hall) =
            head.ok_or_else(|| StoreError::UnknownRun {
                path: self.path.clone(),
                run_id: run_id.to_string(),
            })?;
        if !(sample_hz.is_finite() && sample_hz > 0.0) {
            return Err(StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("run {run_id} has sample_hz {sample_hz}"),
            });
        }

        let probes = self.probes(run_id)?;
        let counts = self.device_counts(run_id)?;
        let node_pos: HashMap<String, usize> = probes
            .iter()
            .enumerate()
            .map(|(i, p)| (p.node.clone(), i))
            .collect();
        let key_pos: HashMap<i64, usize> =
            probes.iter().enumerate().map(|(i, p)| (p.key, i)).collect();
        let phase_rows = self.phases(run_id, &probes, &counts, sample_hz)?;

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
        let mut stmt = self
            .conn
            .prepare(
                "SELECT node_id, device, kind, max_operating_temp_c FROM devices WHERE run_id = ?1 \
                 ORDER BY node_id, device",
            )
            .map_err(e("reading devices"))?;
        let rows: Vec<(String, u16, String, Option<f64>)> = stmt
            .query_map([run_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(e("reading devices"))?;
        for (node, index, kind, max_op) in rows {
            let Some(&n) = node_pos.get(&node) else {
                continue;
            };
            slot(&mut slots[n], index, &mut devices, n, Some(kind), max_op);
        }

        let windows = PhaseWindows::new(phases.iter().map(|p| (p.start_ns, p.end_ns)));
        let mut total: Vec<Acc> = vec![Acc::default(); devices.len()];
        let mut per_phase: Vec<Vec<Acc>> = vec![vec![Acc::default(); phases.len()]; devices.len()];
        let (sample_ranges, power_ranges) = self.row_ranges(run_id)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT node_key, device, t_ns, gpu_temp_c, throttle_reasons FROM sample_rows \
                 WHERE sample_row >= ?1 AND sample_row < ?2",
            )
            .map_err(e("reading samples"))?;
        for (from, to) in sample_ranges {
            let mut rows = stmt.query([from, to]).map_err(e("reading samples"))?;
            while let Some(r) = rows.next().map_err(e("reading samples"))? {
                let key: i64 = r.get(0).map_err(e("reading samples"))?;
                let index: u16 = r.get(1).map_err(e("reading samples"))?;
                let t: i64 = r.get(2).map_err(e("reading samples"))?;
                let temp: Option<f64> = r.get(3).map_err(e("reading samples"))?;
                let reasons: i64 = r.get(4).map_err(e("reading samples"))?;
                let Some(&n) = key_pos.get(&key) else {
                    continue;
                };
                let d = match slots[n].get(usize::from(index)).copied().flatten() {
                    Some(d) => d,
                    None => {
                        let d = slot(&mut slots[n], index, &mut devices, n, None, None);
                        total.push(Acc::default());
                        per_phase.push(vec![Acc::default(); phases.len()]);
                        d
                    }
                };
                let reasons = reasons as u64;
                total[d].add(t, temp, reasons);
                let dp = &mut per_phase[d];
                windows.each(t, |i| dp[i].add(t, temp, reasons));
            }
        }

        let mut power: Vec<Vec<(i64, f64)>> = vec![Vec::new(); nodes.len()];
        self.for_each_node_power(&power_ranges, |key, t, w| {
            if let Some(&n) = key_pos.get(&key) {
                power[n].push((t, w));
            }
        })?;

        let phase_pos: HashMap<u32, usize> =
            phases.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        let mut stmt = self
            .conn
            .prepare("SELECT phase_id, node_id, device, gflops, wrong_elements FROM phase_results WHERE run_id = ?1")
            .map_err(e("reading phase results"))?;
        type Row = (u32, String, u16, Option<f64>, Option<i64>);
        let rows: Vec<Row> = stmt
            .query_map([run_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(e("reading phase results"))?;
        let mut results = Vec::with_capacity(rows.len());
        for (phase_id, node, index, gflops, wrong) in rows {
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
