//! Loading the parts of a run that [`crate::RunSummary`] and the spec evaluation are built from,
//! through the store's typed reads: the run's record (checked), its phases with each node's actual
//! start and the nodes' reports, and the samples each phase should have.

use crate::summary::{NodeNote, PhaseSummary};
use hallmark_store::{DeviceRecord, ProbeRecord, RunRecord, Store, StoreError};
use std::collections::HashMap;

/// A phase being summarised, with each node's actual start.
pub(crate) struct PhaseData {
    pub summary: PhaseSummary,
    pub starts: Vec<(String, i64)>,
}

/// The run's record; an unknown id is [`StoreError::UnknownRun`], a sample rate that is not a
/// positive number [`StoreError::Corrupt`].
pub(crate) fn checked_run(store: &Store, run_id: &str) -> Result<RunRecord, StoreError> {
    let run = store.run_known(run_id)?;
    if !(run.sample_hz.is_finite() && run.sample_hz > 0.0) {
        return Err(StoreError::Corrupt {
            path: store.path().to_path_buf(),
            detail: format!("run {run_id} has sample_hz {}", run.sample_hz),
        });
    }
    Ok(run)
}

/// Devices of the inventory per node.
pub(crate) fn device_counts(devices: &[DeviceRecord]) -> HashMap<String, u64> {
    let mut out: HashMap<String, u64> = HashMap::new();
    for d in devices {
        *out.entry(d.node.clone()).or_default() += 1;
    }
    out
}

/// The run's phases in start order, with starts, the nodes' reports (GFLOP/s, wrong elements,
/// early stops) and the samples expected from the devices taking part; the measured figures are
/// left for the caller.
pub(crate) fn phases(
    store: &Store,
    run_id: &str,
    probes: &[ProbeRecord],
    devices: &HashMap<String, u64>,
    sample_hz: f64,
) -> Result<Vec<PhaseData>, StoreError> {
    let mut phases: Vec<PhaseData> = store
        .phases(run_id)?
        .into_iter()
        .map(|p| PhaseData {
            summary: PhaseSummary {
                phase_id: p.phase_id,
                name: p.name,
                workload: p.workload,
                scheduled_start_ns: p.scheduled_start_ns,
                duration_ms: p.duration_ms.max(0) as u64,
                nodes_started: 0,
                start_skew_ms: None,
                energy_kwh: None,
                mean_kw: None,
                samples_expected: 0,
                samples_stored: 0,
                gflops: None,
                wrong_elements: 0,
                stopped_early: Vec::new(),
            },
            starts: Vec::new(),
        })
        .collect();
    let pos: HashMap<u32, usize> = phases
        .iter()
        .enumerate()
        .map(|(i, p)| (p.summary.phase_id, i))
        .collect();
    for s in store.phase_starts(run_id)? {
        if let Some(&i) = pos.get(&s.phase_id) {
            phases[i].starts.push((s.node, s.actual_start_ns));
        }
    }
    for r in store.phase_reports(run_id)? {
        let Some(&i) = pos.get(&r.phase_id) else {
            continue;
        };
        let ps = &mut phases[i].summary;
        if let Some(g) = r.gflops {
            ps.gflops = Some(ps.gflops.unwrap_or(0.0) + g);
        }
        ps.wrong_elements += r.wrong_elements.max(0) as u64;
        if let Some(message) = r.stopped_early {
            ps.stopped_early.push(NodeNote {
                node: r.node,
                message,
            });
        }
    }
    for p in &mut phases {
        let per_device = (p.summary.duration_ms as f64 * sample_hz / 1000.0)
            .round()
            .max(0.0) as u64;
        let start = p.summary.scheduled_start_ns;
        let devices_in_phase: u64 = probes
            .iter()
            .filter(|pr| pr.registered_at_ns <= start || p.starts.iter().any(|s| s.0 == pr.node))
            .map(|pr| devices.get(&pr.node).copied().unwrap_or(0))
            .fold(0u64, u64::saturating_add);
        p.summary.samples_expected = devices_in_phase.saturating_mul(per_device);
    }
    Ok(phases)
}

/// The run's facility readings in time order (`docs/FACILITY.md`), as the collectors sent them.
pub(crate) fn facility_readings(
    store: &Store,
    run_id: &str,
) -> Result<Vec<hallmark_protocol::facility::FacilityReading>, StoreError> {
    Ok(store
        .facility_readings(run_id)?
        .into_iter()
        .map(|r| r.reading)
        .collect())
}

/// The windows `[start, end)` of the phases with load: every phase whose workload is not `idle`.
pub(crate) fn load_windows<'a>(
    phases: impl IntoIterator<Item = (&'a str, i64, i64)>,
) -> Vec<(i64, i64)> {
    phases
        .into_iter()
        .filter(|(workload, s, e)| *workload != "idle" && e > s)
        .map(|(_, s, e)| (s, e))
        .collect()
}
