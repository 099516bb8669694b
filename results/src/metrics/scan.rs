//! What the metrics are computed from: the run's [`Context`] (nodes and their racks, the device
//! inventory, the idle and full-load phases) and the [`MetricsAcc`] one telemetry pass fills —
//! per device its throttle counts and, per slice of each idle and full-load phase, sums of GPU
//! temperature and power; per node the sums of its power readings in idle and full-load phases.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::plan::parse_plan;
use hallmark_store::{NodePowerRecord, PhaseRecord, SampleRecord, Store, StoreError};

use super::{FULL_LOAD_LEVEL, SEGMENTS};
use crate::aggregate::{DeviceAgg, PhaseWindows};
use crate::load::checked_run;

/// Which kind of phase a window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    Idle,
    Full,
}

/// An idle or full-load phase as scheduled.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub start_ns: i64,
    pub end_ns: i64,
    pub load: Load,
}

impl Window {
    /// The slice of the window that holds `t_ns` (`t_ns` inside the window).
    fn segment(&self, t_ns: i64) -> usize {
        let len = (self.end_ns - self.start_ns).max(1) as i128;
        let k = (i128::from(t_ns - self.start_ns) * SEGMENTS as i128) / len;
        (k.max(0) as usize).min(SEGMENTS - 1)
    }

    /// The time span of slice `k`, ns.
    pub fn segment_span(&self, k: usize) -> (i64, i64) {
        let len = i128::from(self.end_ns - self.start_ns);
        let at = |k: usize| self.start_ns + (len * k as i128 / SEGMENTS as i128) as i64;
        (at(k), at(k + 1))
    }
}

/// A registered node.
#[derive(Debug, Clone)]
pub(crate) struct NodeInfo {
    pub id: String,
    pub hall: String,
    pub row: String,
    /// The rack's label.
    pub rack_label: String,
    /// The rack's subject name: its label, or `row/rack` where the label is used in two rows.
    pub rack: String,
}

/// The run as the metrics need it.
pub(crate) struct Context {
    pub sample_hz: f64,
    pub started_at_ns: i64,
    pub hall: String,
    pub nodes: Vec<NodeInfo>,
    slot_of_key: HashMap<i64, usize>,
    pub node_slot: HashMap<String, usize>,
    /// (node, index) → (kind, model) from the inventory.
    pub inventory: HashMap<(String, u16), (String, String)>,
    /// The idle and full-load phases, in schedule order.
    pub windows: Vec<Window>,
    lookup: PhaseWindows,
    /// Phase id → its duration, ms, for every phase with full load.
    pub full_load_ms: HashMap<u32, u64>,
    /// Every phase as (workload, start, end), ns.
    pub phase_spans: Vec<(String, i64, i64)>,
}

impl Context {
    /// Reads the run's record, probes, inventory, phases and plan.
    pub fn load(store: &Store, run_id: &str) -> Result<Context, StoreError> {
        let run = checked_run(store, run_id)?;
        let probes = store.probes(run_id)?;
        let mut rows_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for p in &probes {
            rows_of.entry(&p.rack).or_default().insert(&p.row);
        }
        let nodes: Vec<NodeInfo> = probes
            .iter()
            .map(|p| NodeInfo {
                id: p.node.clone(),
                hall: p.hall.clone(),
                row: p.row.clone(),
                rack_label: p.rack.clone(),
                rack: if rows_of.get(p.rack.as_str()).is_some_and(|r| r.len() > 1) {
                    format!("{}/{}", p.row, p.rack)
                } else {
                    p.rack.clone()
                },
            })
            .collect();
        // The hall: the label most nodes carry, else the run's hall (as the verdicts name it).
        let mut halls: HashMap<&str, usize> = HashMap::new();
        for p in &probes {
            *halls.entry(p.hall.as_str()).or_default() += 1;
        }
        let hall = halls
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map(|h| h.0.to_string())
            .or(run.hall.clone())
            .unwrap_or_else(|| "hall".to_string());
        let inventory = store
            .devices(run_id)?
            .into_iter()
            .map(|d| ((d.node, d.device), (d.kind, d.model)))
            .collect();
        let phases = store.phases(run_id)?;
        let (windows, full_load_ms) = windows(&phases, &run.plan_toml);
        let phase_spans = phases
            .iter()
            .map(|p| {
                let end = p
                    .scheduled_start_ns
                    .saturating_add(p.duration_ms.max(0).saturating_mul(1_000_000));
                (p.workload.clone(), p.scheduled_start_ns, end)
            })
            .collect();
        let lookup = PhaseWindows::new(windows.iter().map(|w| (w.start_ns, w.end_ns)));
        Ok(Context {
            sample_hz: run.sample_hz,
            started_at_ns: run.started_at_ns,
            hall,
            slot_of_key: probes.iter().enumerate().map(|(i, p)| (p.key, i)).collect(),
            node_slot: nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.id.clone(), i))
                .collect(),
            nodes,
            inventory,
            windows,
            lookup,
            full_load_ms,
            phase_spans,
        })
    }

    pub fn has(&self, load: Load) -> bool {
        self.windows.iter().any(|w| w.load == load)
    }

    /// Whether device `index` of node `node` is a GPU (a CPU socket is not; a device missing from
    /// the inventory counts as one, as the verdicts count it).
    pub fn is_gpu(&self, node: &str, index: u16) -> bool {
        self.inventory
            .get(&(node.to_string(), index))
            .is_none_or(|(kind, _)| kind != "cpu_socket")
    }

    /// Device subject (`node/index`) → model, for the inventory's devices.
    pub fn device_models(&self) -> HashMap<String, String> {
        self.inventory
            .iter()
            .map(|((node, index), (_, model))| (format!("{node}/{index}"), model.clone()))
            .collect()
    }
}

/// The run's idle and full-load phases, and the durations of the full-load ones by phase id.
fn windows(phases: &[PhaseRecord], plan_toml: &str) -> (Vec<Window>, HashMap<u32, u64>) {
    // The burn phases at a steady full level; `None` when the plan does not parse (a store
    // written without its plan text): then every burn phase counts.
    let full: Option<BTreeSet<String>> = parse_plan(plan_toml, "the run's plan").ok().map(|plan| {
        plan.phases
            .into_iter()
            .filter(|p| {
                p.workload == hallmark_protocol::Workload::Burn
                    && matches!(p.pattern, Pattern::Steady { level } if level >= FULL_LOAD_LEVEL)
            })
            .map(|p| p.name)
            .collect()
    });
    let mut out = Vec::new();
    let mut durations = HashMap::new();
    for p in phases {
        let load = if p.workload == "idle" {
            Load::Idle
        } else if p.workload == "burn" && full.as_ref().is_none_or(|f| f.contains(&p.name)) {
            durations.insert(p.phase_id, p.duration_ms.max(0) as u64);
            Load::Full
        } else {
            continue;
        };
        let end = p
            .scheduled_start_ns
            .saturating_add(p.duration_ms.max(0).saturating_mul(1_000_000));
        if end > p.scheduled_start_ns {
            out.push(Window {
                start_ns: p.scheduled_start_ns,
                end_ns: end,
                load,
            });
        }
    }
    (out, durations)
}

/// Sums over one slice of one phase for one device.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Seg {
    pub n_temp: u32,
    pub sum_temp: f64,
    pub n_power: u32,
    pub sum_power: f64,
}

/// One device's accumulators.
#[derive(Debug, Clone)]
pub(crate) struct DevAcc {
    pub agg: DeviceAgg,
    /// Per window of [`Context::windows`], its slices.
    pub segs: Vec<[Seg; SEGMENTS]>,
}

/// One node's power readings: (Σ W, readings) in idle and in full-load phases, and every reading
/// when the facility balances need the rack's binned power.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeAcc {
    pub idle: (f64, u64),
    pub full: (f64, u64),
    pub readings: Vec<(i64, f64)>,
}

/// What one telemetry pass collects for the metrics.
pub(crate) struct MetricsAcc {
    /// Per node slot, per device index.
    pub devices: Vec<Vec<Option<DevAcc>>>,
    pub nodes: Vec<NodeAcc>,
    keep_readings: bool,
    last: (i64, usize),
}

impl MetricsAcc {
    pub fn new(cx: &Context) -> MetricsAcc {
        MetricsAcc {
            devices: vec![Vec::new(); cx.nodes.len()],
            nodes: vec![NodeAcc::default(); cx.nodes.len()],
            keep_readings: false,
            last: (i64::MIN, 0),
        }
    }

    /// Keeps every node-power reading (for the facility's energy balance).
    pub fn keeping_readings(mut self) -> MetricsAcc {
        self.keep_readings = true;
        self
    }

    pub fn sample(&mut self, cx: &Context, r: &SampleRecord) {
        if r.node_key != self.last.0 {
            match cx.slot_of_key.get(&r.node_key) {
                Some(&i) => self.last = (r.node_key, i),
                None => return,
            }
        }
        let devices = &mut self.devices[self.last.1];
        let d = usize::from(r.device);
        if devices.len() <= d {
            devices.resize(d + 1, None);
        }
        let dev = devices[d].get_or_insert_with(|| DevAcc {
            agg: DeviceAgg::default(),
            segs: vec![[Seg::default(); SEGMENTS]; cx.windows.len()],
        });
        dev.agg.add(r.gpu_temp_c, r.throttle_reasons);
        let (temp, power) = (
            r.gpu_temp_c.filter(|x| x.is_finite()),
            r.power_w.filter(|x| x.is_finite()),
        );
        if temp.is_none() && power.is_none() {
            return;
        }
        cx.lookup.each(r.t_ns, |i| {
            let s = &mut dev.segs[i][cx.windows[i].segment(r.t_ns)];
            if let Some(t) = temp {
                s.n_temp += 1;
                s.sum_temp += t;
            }
            if let Some(p) = power {
                s.n_power += 1;
                s.sum_power += p;
            }
        });
    }

    pub fn node_power(&mut self, cx: &Context, r: &NodePowerRecord) {
        let (Some(&i), Some(w)) = (
            cx.slot_of_key.get(&r.node_key),
            r.power_w.filter(|w| w.is_finite()),
        ) else {
            return;
        };
        let node = &mut self.nodes[i];
        cx.lookup.each(r.t_ns, |k| {
            let acc = match cx.windows[k].load {
                Load::Idle => &mut node.idle,
                Load::Full => &mut node.full,
            };
            acc.0 += w;
            acc.1 += 1;
        });
        if self.keep_readings {
            node.readings.push((r.t_ns, w));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_window_in_equal_parts() {
        let w = Window {
            start_ns: 1_000,
            end_ns: 1_000 + 10_000,
            load: Load::Full,
        };
        assert_eq!(w.segment(1_000), 0);
        assert_eq!(w.segment(1_999), 0);
        assert_eq!(w.segment(2_000), 1);
        assert_eq!(w.segment(10_999), SEGMENTS - 1);
        assert_eq!(w.segment_span(0), (1_000, 2_000));
        assert_eq!(w.segment_span(SEGMENTS - 1), (10_000, 11_000));
    }
}
