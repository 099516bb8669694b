//! [`RunSummary`]: what a run measured, per rack and per phase — the JSON of `hallmark runs show RUN
//! --json` and `hallmark demo --json`, and the source of the text summary ([`crate::render_text`]).
//!
//! Computed in one pass over the run's telemetry (the store's [`Store::scan_telemetry`]) with the
//! aggregates of [`crate::aggregate`]; the definitions are there and in `docs/SCHEMA.md`.

use crate::aggregate::{node_bins, throttle, Bins, DeviceAgg, GroupBins, PhaseWindows};
use crate::fabric::FabricPhaseSummary;
use crate::facility::{facility_summary, FacilitySummary, Frame, RackInput};
use crate::load::{checked_run, device_counts, phases};
use crate::metrics::{Context as MetricsContext, MetricsAcc};
use crate::outliers::{find_outliers, Outlier};
use hallmark_store::{RunStatus, ScanOptions, Simulation, Store, StoreError, Telemetry};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Length of the window of `sustained_kw`, unless the run's data is shorter.
pub const SUSTAINED_WINDOW_S: f64 = 10.0;

/// One device, named by node and index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRef {
    pub node: String,
    pub device: u16,
}

/// One rack's power, temperatures and throttling over the whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RackSummary {
    pub hall: String,
    pub row: String,
    pub rack: String,
    /// Node ids of the rack's registered probes.
    pub nodes: Vec<String>,
    /// Largest rack power of any bin, kW (`None`: no node power reported).
    pub peak_kw: Option<f64>,
    /// Mean rack power over the bins in which all of its reporting nodes have data, kW.
    pub mean_kw: Option<f64>,
    /// Highest mean over `sustained_window_s` of consecutive complete bins, kW.
    pub sustained_kw: Option<f64>,
    pub sustained_window_s: f64,
    pub max_gpu_temp_c: Option<f64>,
    pub hottest_device: Option<DeviceRef>,
    /// Device-seconds with a slowdown bit set (thermal, hardware slowdown, power brake; not the
    /// power cap alone), summed over the rack's devices.
    pub throttle_s: f64,
    /// Device-seconds per reason (`sw_power_cap`, `hw_slowdown`, `sw_thermal`, `hw_thermal`,
    /// `hw_power_brake`); reasons never seen are left out.
    pub throttle_s_by_reason: BTreeMap<String, f64>,
    /// The rack's PDU power (the sum of its PDUs), as `peak_kw` and `sustained_kw` but measured by
    /// the facility ([`crate::facility`]); `None` without PDU readings.
    #[serde(default)]
    pub pdu_peak_kw: Option<f64>,
    #[serde(default)]
    pub pdu_sustained_kw: Option<f64>,
    /// The highest mean over `sustained_window_s`-long stretches of the heat the rack's CDU
    /// reports removed, kW; `None` without CDU readings.
    #[serde(default)]
    pub cdu_heat_removed_kw: Option<f64>,
}

/// A node's note about a phase (e.g. why it stopped early).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeNote {
    pub node: String,
    pub message: String,
}

/// One phase: how well its start lined up, what it drew, what it achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseSummary {
    pub phase_id: u32,
    pub name: String,
    pub workload: String,
    pub scheduled_start_ns: i64,
    pub duration_ms: u64,
    pub nodes_started: usize,
    /// Latest minus earliest actual start over the nodes that started, ms (`None`: none started).
    pub start_skew_ms: Option<f64>,
    /// Hall energy in the phase window from node power, kWh (`None`: no node reported power in the
    /// window, e.g. a CPU node without a power sensor; never shown as 0).
    pub energy_kwh: Option<f64>,
    /// `energy_kwh` over the phase's duration, kW (`None` as for `energy_kwh`, or a zero duration).
    pub mean_kw: Option<f64>,
    pub samples_expected: u64,
    /// Samples stored with `t_ns` in the phase window.
    pub samples_stored: u64,
    /// Sum of the devices' reported GFLOP/s (`None`: no device reported a rate).
    pub gflops: Option<f64>,
    /// Wrong elements found by result checks, summed over devices (silent data corruption).
    pub wrong_elements: u64,
    pub stopped_early: Vec<NodeNote>,
}

/// A stretch of missing telemetry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapSummary {
    pub node: String,
    pub from_ns: i64,
    pub to_ns: i64,
    pub reason: String,
    /// Sampling instants the probe missed in the gap; `null` when nobody counted them (batches
    /// that never arrived, or a run stored before schema 6).
    pub instants: Option<u64>,
}

/// A probe whose connection was lost and not re-established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostProbe {
    pub node: String,
    pub at_ns: i64,
    pub reason: String,
}

/// Something recorded in `events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSummary {
    pub t_ns: i64,
    pub node: Option<String>,
    pub kind: String,
    pub message: String,
}

/// Everything a commissioning engineer reads about one run, in one serialisable struct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub name: String,
    pub plan_name: String,
    pub plan_sha256: String,
    pub hall: Option<String>,
    pub status: RunStatus,
    pub status_reason: Option<String>,
    pub started_at_ns: i64,
    pub ended_at_ns: Option<i64>,
    pub hallmark_version: String,
    pub sample_hz: f64,
    pub probes: usize,
    /// Σ over phases of nodes registered for the phase × their devices × duration × sample rate.
    pub samples_expected: u64,
    /// Rows in `samples` for the run (also those outside any phase).
    pub samples_stored: u64,
    /// Largest hall power (sum over all nodes) of any bin, kW.
    pub peak_kw: Option<f64>,
    pub max_gpu_temp_c: Option<f64>,
    pub hottest_device: Option<DeviceRef>,
    /// Device-seconds of throttling over the hall.
    pub throttle_s: f64,
    pub racks: Vec<RackSummary>,
    pub phases: Vec<PhaseSummary>,
    pub gaps: Vec<GapSummary>,
    pub lost_probes: Vec<LostProbe>,
    pub events: Vec<EventSummary>,
    /// The fabric (`latency`, `collective`) phases: latency per pair, node and hall, collectives
    /// with algbw and busbw, faults ([`crate::fabric`]).
    #[serde(default)]
    pub fabric: Vec<FabricPhaseSummary>,
    /// How many of the run's devices and nodes were simulated ([`Simulation::banner`]: what every
    /// output of a simulated run says).
    #[serde(default)]
    pub simulation: Simulation,
    /// The hall's own meters (rack PDUs, CDUs, BMC chassis) per rack, with the energy and heat
    /// balances ([`crate::facility::FacilitySummary`]); `None` when the run has no facility
    /// readings.
    #[serde(default)]
    pub facility: Option<FacilitySummary>,
    /// Subjects far from their like subjects' median in this run ([`crate::outliers`]): robust
    /// z-scores over devices of one model, over nodes, over racks, over pairs.
    #[serde(default)]
    pub outliers: Vec<Outlier>,
}

/// A rack's data while its nodes are streamed.
#[derive(Default)]
struct RackAcc {
    nodes: Vec<String>,
    power: GroupBins,
    devices: Vec<(String, u16, DeviceAgg)>,
}

/// Summarises a run (see [`RunSummary`]); an unknown id is [`StoreError::UnknownRun`].
pub fn run_summary(store: &Store, run_id: &str) -> Result<RunSummary, StoreError> {
    run_summary_with_metrics(store, run_id).map(|(s, _)| s)
}

/// [`run_summary`] and the run's per-subject metrics ([`crate::compute_metrics`]'s values), from
/// the same pass over its telemetry: what a finished run stores, without scanning it twice.
pub fn run_summary_with_metrics(
    store: &Store,
    run_id: &str,
) -> Result<(RunSummary, Vec<crate::metrics::MetricValue>), StoreError> {
    let run = checked_run(store, run_id)?;
    let mut s = RunSummary {
        run_id: run.run_id,
        name: run.name,
        plan_name: run.plan_name,
        plan_sha256: run.plan_sha256,
        hall: run.hall,
        status: run.status,
        status_reason: run.status_reason,
        started_at_ns: run.started_at_ns,
        ended_at_ns: run.ended_at_ns,
        hallmark_version: run.hallmark_version,
        sample_hz: run.sample_hz,
        probes: 0,
        samples_expected: 0,
        samples_stored: 0,
        peak_kw: None,
        max_gpu_temp_c: None,
        hottest_device: None,
        throttle_s: 0.0,
        racks: Vec::new(),
        phases: Vec::new(),
        gaps: Vec::new(),
        lost_probes: Vec::new(),
        events: Vec::new(),
        fabric: Vec::new(),
        simulation: Simulation::default(),
        facility: None,
        outliers: Vec::new(),
    };

    let probes = store.probes(run_id)?;
    let devices = device_counts(&store.devices(run_id)?);
    let mut phases = phases(store, run_id, &probes, &devices, s.sample_hz)?;
    let windows = PhaseWindows::new(phases.iter().map(|p| {
        let start = p.summary.scheduled_start_ns;
        (
            start,
            start.saturating_add((p.summary.duration_ms as i64).saturating_mul(1_000_000)),
        )
    }));

    // Node power → rack and hall bins, phase energy.
    let bins = Bins::new(s.started_at_ns, s.sample_hz);
    let mut racks: BTreeMap<(String, String, String), RackAcc> = BTreeMap::new();
    let mut rack_inputs: Vec<RackInput> = Vec::new();
    let mut hall = GroupBins::default();
    // Σ of node-power readings (W) per phase; each reading stands for one sample interval.
    let mut watt_samples = vec![0.0f64; phases.len()];
    // Node-power readings per phase: none means nobody measured the phase's power.
    let mut power_readings = vec![0u64; phases.len()];
    let mut stored_in_phase = vec![0u64; phases.len()];
    let slot: HashMap<i64, usize> = probes.iter().enumerate().map(|(i, p)| (p.key, i)).collect();

    let mut readings: Vec<Vec<(i64, f64)>> = vec![Vec::new(); probes.len()];
    let mut per_device: Vec<Vec<DeviceAgg>> = vec![Vec::new(); probes.len()];
    let mut last = (i64::MIN, 0usize);
    // The metrics behind the outliers, fed from the same pass.
    let mcx = MetricsContext::load(store, run_id)?;
    let mut macc = MetricsAcc::new(&mcx);
    store.scan_telemetry::<StoreError>(run_id, ScanOptions::ALL, |rec| {
        match rec {
            Telemetry::NodePower(r) => {
                macc.node_power(&mcx, &r);
                if let (Some(&i), Some(w)) = (slot.get(&r.node_key), r.power_w) {
                    windows.each(r.t_ns, |i| {
                        watt_samples[i] += w;
                        power_readings[i] += 1;
                    });
                    readings[i].push((r.t_ns, w));
                }
            }
            Telemetry::Sample(r) => {
                macc.sample(&mcx, &r);
                // Rows come batch by batch: remember the last node's slot.
                if r.node_key != last.0 {
                    match slot.get(&r.node_key) {
                        Some(&i) => last = (r.node_key, i),
                        None => return Ok(()),
                    }
                }
                let devices = &mut per_device[last.1];
                let d = usize::from(r.device);
                if devices.len() <= d {
                    devices.resize(d + 1, DeviceAgg::default());
                }
                devices[d].add(r.gpu_temp_c, r.throttle_reasons);
                windows.each(r.t_ns, |i| stored_in_phase[i] += 1);
            }
        }
        Ok(())
    })?;

    for ((p, node_readings), devices) in probes.iter().zip(readings).zip(per_device) {
        let nb = node_bins(bins, node_readings);
        hall.add_node(&nb);
        let rack = racks
            .entry((p.hall.clone(), p.row.clone(), p.rack.clone()))
            .or_default();
        rack.nodes.push(p.node.clone());
        rack.power.add_node(&nb);
        for (d, agg) in devices.into_iter().enumerate() {
            if agg.samples > 0 {
                rack.devices.push((p.node.clone(), d as u16, agg));
            }
        }
    }

    for ((hall_name, row, rack), acc) in racks {
        let RackAcc {
            nodes,
            power,
            devices: devs,
        } = acc;
        rack_inputs.push(RackInput {
            hall: hall_name.clone(),
            row: row.clone(),
            rack: rack.clone(),
            nodes: nodes.clone(),
            gpu_kw: power.complete_kw(),
        });
        let power = power.power(s.sample_hz, SUSTAINED_WINDOW_S);
        let mut rs = RackSummary {
            hall: hall_name,
            row,
            rack,
            nodes,
            peak_kw: power.peak_kw,
            mean_kw: power.mean_kw,
            sustained_kw: power.sustained_kw,
            sustained_window_s: power.sustained_window_s,
            max_gpu_temp_c: None,
            hottest_device: None,
            throttle_s: 0.0,
            throttle_s_by_reason: BTreeMap::new(),
            pdu_peak_kw: None,
            pdu_sustained_kw: None,
            cdu_heat_removed_kw: None,
        };
        let mut by_reason = [0u64; throttle::REASONS.len()];
        let mut throttled = 0u64;
        for (node, device, agg) in devs {
            s.samples_stored += agg.samples;
            throttled += agg.throttled;
            for (acc, n) in by_reason.iter_mut().zip(agg.by_reason) {
                *acc += n;
            }
            if let Some(t) = agg.max_gpu_temp_c {
                if rs.max_gpu_temp_c.is_none_or(|m| t > m) {
                    rs.max_gpu_temp_c = Some(t);
                    rs.hottest_device = Some(DeviceRef { node, device });
                }
            }
        }
        rs.throttle_s = throttled as f64 / s.sample_hz;
        for ((_, name), n) in throttle::REASONS.iter().zip(by_reason) {
            if n > 0 {
                rs.throttle_s_by_reason
                    .insert(name.to_string(), n as f64 / s.sample_hz);
            }
        }
        s.throttle_s += rs.throttle_s;
        if let Some(t) = rs.max_gpu_temp_c {
            if s.max_gpu_temp_c.is_none_or(|m| t > m) {
                s.max_gpu_temp_c = Some(t);
                s.hottest_device = rs.hottest_device.clone();
            }
        }
        s.racks.push(rs);
    }
    s.peak_kw = hall.peak_kw();

    for (i, p) in phases.iter_mut().enumerate() {
        let ps = &mut p.summary;
        let energy_j = (power_readings[i] > 0).then(|| watt_samples[i] / s.sample_hz);
        ps.energy_kwh = energy_j.map(|j| j / 3.6e6);
        ps.mean_kw = energy_j
            .filter(|_| ps.duration_ms > 0)
            .map(|j| j / ps.duration_ms as f64);
        ps.samples_stored = stored_in_phase[i];
        ps.nodes_started = p.starts.len();
        let first = p.starts.iter().map(|x| x.1).min();
        let last = p.starts.iter().map(|x| x.1).max();
        ps.start_skew_ms = first
            .zip(last)
            .map(|(a, b)| b.saturating_sub(a) as f64 / 1e6);
        s.samples_expected = s.samples_expected.saturating_add(ps.samples_expected);
    }
    s.phases = phases.into_iter().map(|p| p.summary).collect();
    s.probes = probes.len();
    s.lost_probes = probes
        .iter()
        .filter_map(|p| {
            p.lost.as_ref().map(|(at, reason)| LostProbe {
                node: p.node.clone(),
                at_ns: *at,
                reason: reason.clone(),
            })
        })
        .collect();
    s.gaps = store
        .gaps(run_id)?
        .into_iter()
        .map(|g| GapSummary {
            node: g.node,
            from_ns: g.from_ns,
            to_ns: g.to_ns,
            reason: g.reason,
            instants: g.instants,
        })
        .collect();
    s.events = store
        .events(run_id)?
        .into_iter()
        .map(|e| EventSummary {
            t_ns: e.t_ns,
            node: e.node,
            kind: e.kind,
            message: e.message,
        })
        .collect();
    s.fabric = crate::fabric::fabric_phases(store, run_id, true)?;
    s.simulation = store.simulation(run_id)?;
    let readings = crate::load::facility_readings(store, run_id)?;
    if !readings.is_empty() {
        let load = crate::load::load_windows(s.phases.iter().map(|p| {
            let start = p.scheduled_start_ns;
            let end = start.saturating_add((p.duration_ms as i64).saturating_mul(1_000_000));
            (p.workload.as_str(), start, end)
        }));
        let frame = Frame::new(s.started_at_ns, s.sample_hz, load);
        let fac = facility_summary(&frame, &readings, rack_inputs);
        for (rs, rf) in s.racks.iter_mut().zip(&fac.racks) {
            rs.pdu_peak_kw = rf.pdu_peak_kw;
            rs.pdu_sustained_kw = rf.pdu_sustained_kw;
            rs.cdu_heat_removed_kw = rf.cdu_heat_removed_kw;
        }
        s.facility = Some(fac);
    }
    let metrics = crate::metrics::finish(
        store,
        run_id,
        &mcx,
        &macc,
        &s.fabric,
        &readings,
        s.facility.as_ref(),
    )?;
    s.outliers = find_outliers(&metrics, &mcx.device_models());
    Ok((s, metrics))
}
