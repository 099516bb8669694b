//! Checks of what a run's participant reports, before anything reaches the run or the store.
//!
//! One probe's bad report must not sink a run: a phase it was never sent, telemetry that does not
//! fit its devices and the run's rate, sequence numbers the store cannot hold, sample times that
//! go backwards across a gap, fabric results that claim another world or pairs with non-members.
//! Each check says what is wrong; the machine records it as that probe's protocol error. `world`
//! and membership are the coordinator's facts (the phase it sent), never the reporter's.

use crate::limits::{max_batch_gaps, max_batch_samples, max_batch_ticks, MAX_HIST_BLOB};
use crate::run::{ScheduledPhase, SEND_AHEAD_NS};
use hallmark_protocol::fabric::CollectiveAlgorithm;
use hallmark_protocol::facility::{
    MAX_FACILITY_NOTE_BYTES, MAX_FACILITY_READINGS, MAX_FACILITY_TEXT_BYTES,
};
use hallmark_protocol::{
    FabricReport, FacilityBatch, NodeId, PhaseStart, TelemetryBatch, MAX_GAP_REASON_BYTES,
};
use std::collections::BTreeSet;

/// Checks a facility collector's batch: a sequence number the store can hold, at most
/// [`MAX_FACILITY_READINGS`] readings, names and URIs of at most [`MAX_FACILITY_TEXT_BYTES`] and
/// notes of at most [`MAX_FACILITY_NOTE_BYTES`] bytes.
pub(crate) fn check_facility_batch(batch: &FacilityBatch) -> Result<(), String> {
    if i64::try_from(batch.seq).is_err() {
        return Err(format!(
            "facility batch number {} is beyond what the store holds",
            batch.seq
        ));
    }
    if batch.readings.len() > MAX_FACILITY_READINGS {
        return Err(format!(
            "facility batch {} has {} readings; at most {MAX_FACILITY_READINGS} are allowed",
            batch.seq,
            batch.readings.len()
        ));
    }
    for (i, r) in batch.readings.iter().enumerate() {
        let texts = [
            ("source", r.source.as_str()),
            ("point", r.point.as_str()),
            ("uri", r.uri.as_str()),
            ("subject", r.subject.name()),
        ];
        for (what, text) in texts {
            if text.len() > MAX_FACILITY_TEXT_BYTES {
                return Err(format!(
                    "facility batch {} reading {i}: its {what} has {} bytes; at most \
                     {MAX_FACILITY_TEXT_BYTES} are allowed",
                    batch.seq,
                    text.len()
                ));
            }
        }
        if r.note
            .as_ref()
            .is_some_and(|n| n.len() > MAX_FACILITY_NOTE_BYTES)
        {
            return Err(format!(
                "facility batch {} reading {i}: its note is longer than {MAX_FACILITY_NOTE_BYTES} bytes",
                batch.seq
            ));
        }
    }
    Ok(())
}

/// The phase `phase_id`, if it was scheduled and its order has gone out by `now`.
pub(crate) fn sent_phase(
    phases: &[ScheduledPhase],
    phase_id: u32,
    now: i64,
) -> Result<&PhaseStart, String> {
    let p = phases.get(phase_id as usize).ok_or_else(|| {
        format!(
            "phase {phase_id} is not in this run ({} phases)",
            phases.len()
        )
    })?;
    if p.start.start_at_ns.saturating_sub(SEND_AHEAD_NS) > now {
        return Err(format!(
            "phase {phase_id} ({}) has not been sent to any probe yet",
            p.start.name
        ));
    }
    Ok(&p.start)
}

/// The earliest and latest instants of a batch's samples and node-power readings (`None`: it has
/// neither).
pub(crate) fn instants(batch: &TelemetryBatch) -> Option<(i64, i64)> {
    batch
        .samples
        .iter()
        .map(|s| s.t_ns)
        .chain(batch.node_power_w.iter().map(|(t, _)| *t))
        .fold(None, |span, t| match span {
            None => Some((t, t)),
            Some((lo, hi)) => Some((t.min(lo), t.max(hi))),
        })
}

/// Checks a telemetry batch of a node with `devices` devices against the run's rate and the
/// node's sequence so far (`next_seq`, `last_t_ns`).
pub(crate) fn check_batch(
    batch: &TelemetryBatch,
    devices: usize,
    sample_hz: f64,
    next_seq: u64,
    last_t_ns: Option<i64>,
) -> Result<(), String> {
    if i64::try_from(batch.seq).is_err() {
        return Err(format!(
            "telemetry batch sequence number {} is beyond {} (sequence numbers count batches from 0)",
            batch.seq,
            i64::MAX
        ));
    }
    let max_samples = max_batch_samples(devices, sample_hz);
    if batch.samples.len() > max_samples {
        return Err(format!(
            "telemetry batch {} holds {} samples; {devices} devices at {sample_hz} Hz give at most {max_samples}",
            batch.seq,
            batch.samples.len()
        ));
    }
    let max_ticks = max_batch_ticks(sample_hz);
    if batch.node_power_w.len() > max_ticks {
        return Err(format!(
            "telemetry batch {} holds {} node-power readings; at {sample_hz} Hz at most {max_ticks}",
            batch.seq,
            batch.node_power_w.len()
        ));
    }
    check_gaps(batch, sample_hz)?;
    if let (Some((first, _)), Some(last)) = (instants(batch), last_t_ns) {
        if batch.seq > next_seq && first < last {
            return Err(format!(
                "telemetry batch {} skips to after batch {} but its samples start at {first} ns, \
                 before the last stored sample at {last} ns",
                batch.seq,
                next_seq.saturating_sub(1)
            ));
        }
    }
    Ok(())
}

/// Checks the missed-instant gaps a batch carries: bounded in count and cause, each a window
/// whose end does not precede its start.
fn check_gaps(batch: &TelemetryBatch, sample_hz: f64) -> Result<(), String> {
    let max_gaps = max_batch_gaps(sample_hz);
    if batch.gaps.len() > max_gaps {
        return Err(format!(
            "telemetry batch {} holds {} gaps; at {sample_hz} Hz at most {max_gaps}",
            batch.seq,
            batch.gaps.len()
        ));
    }
    for g in &batch.gaps {
        if g.to_ns < g.from_ns {
            return Err(format!(
                "telemetry batch {} holds a gap ending at {} ns, before its start at {} ns",
                batch.seq, g.to_ns, g.from_ns
            ));
        }
        if g.reason.len() > MAX_GAP_REASON_BYTES {
            return Err(format!(
                "telemetry batch {} holds a gap cause of {} bytes; at most {MAX_GAP_REASON_BYTES}",
                batch.seq,
                g.reason.len()
            ));
        }
    }
    Ok(())
}

/// Checks the fabric part of `node`'s report of `phase` against the phase the coordinator sent.
pub(crate) fn check_fabric(
    phase: &PhaseStart,
    node: &NodeId,
    report: &FabricReport,
) -> Result<(), String> {
    let name = &phase.name;
    let Some(f) = &phase.fabric else {
        if report.latency.is_empty() && report.collectives.is_empty() {
            return Ok(());
        }
        return Err(format!(
            "sent fabric results for phase {name}, which is not a fabric phase"
        ));
    };
    let members: BTreeSet<&NodeId> = f.members.iter().map(|m| &m.node_id).collect();
    let has_results = !(report.latency.is_empty() && report.collectives.is_empty());
    if has_results && !members.contains(node) {
        return Err(format!(
            "sent fabric results for phase {name} but is not one of its members"
        ));
    }
    let mut seen = BTreeSet::new();
    for p in &report.latency {
        if &p.src != node {
            return Err(format!(
                "reported a latency pair from {} in phase {name}; a probe reports only its own",
                p.src
            ));
        }
        if &p.dst == node || !members.contains(&p.dst) {
            return Err(format!(
                "reported a latency pair to {}, not a peer of phase {name}",
                p.dst
            ));
        }
        if !seen.insert(&p.dst) {
            return Err(format!(
                "reported the pair to {} twice in phase {name}",
                p.dst
            ));
        }
        if p.lost > p.sent {
            return Err(format!(
                "reported {} of {} packets to {} lost in phase {name}",
                p.lost, p.sent, p.dst
            ));
        }
        if p.rtt_ns_hist.len() > MAX_HIST_BLOB {
            return Err(format!(
                "sent a {}-byte latency histogram for {} in phase {name}; at most {MAX_HIST_BLOB} bytes",
                p.rtt_ns_hist.len(),
                p.dst
            ));
        }
    }
    let members_n = u32::try_from(f.members.len()).unwrap_or(u32::MAX);
    for c in &report.collectives {
        let world = match (&f.nccl, c.algorithm) {
            (Some(setup), CollectiveAlgorithm::Nccl) => setup.world(),
            (None, CollectiveAlgorithm::Nccl) => {
                return Err(format!(
                    "reported NCCL results for phase {name}, which did not run through NCCL"
                ))
            }
            _ => members_n,
        };
        if c.world != world {
            return Err(format!(
                "reported {} {} B over {} ranks in phase {name}; the phase has {world}",
                c.op.name(),
                c.size_bytes,
                c.world
            ));
        }
    }
    for fault in &report.faults {
        if let Some(peer) = &fault.peer {
            if !members.contains(peer) {
                return Err(format!(
                    "blamed {peer} for a fault in phase {name}, not one of its members"
                ));
            }
        }
    }
    Ok(())
}
