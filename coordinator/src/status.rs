//! What the coordinator tells its operator: one log line per event that matters, and the status
//! file listing the registered probes.

use crate::machine::{Event, ProbeRecord};
use crate::server::ServerError;
use hallmark_transport::clock::WallClock;
use std::net::SocketAddr;
use std::path::Path;
use tracing::{debug, info, warn};

/// Logs one event; returns whether the set of registered probes (or their clocks) changed.
pub(crate) fn log_event(ev: &Event) -> bool {
    match ev {
        Event::Registered(p) if p.role == hallmark_protocol::ProbeRole::Facility => {
            info!(
                "registered facility collector {} (hall {}) from {}, session {}",
                p.node_id, p.labels.hall, p.remote, p.session_id
            );
            true
        }
        Event::Registered(p) => {
            let model = p
                .inventory
                .first()
                .map_or("no devices", |d| d.model.as_str());
            info!(
                "registered node {} (hall {}, row {}, rack {}) from {}: {} devices ({model}), backend {}, session {}",
                p.node_id, p.labels.hall, p.labels.row, p.labels.rack, p.remote,
                p.inventory.len(), p.backend, p.session_id
            );
            true
        }
        Event::Refused {
            certificate_node,
            remote,
            refusal,
            ..
        } => {
            warn!(
                "refused probe with certificate for node {certificate_node} from {remote}: {}",
                refusal.message
            );
            false
        }
        Event::ProtocolError {
            certificate_node,
            remote,
            error,
            ..
        } => {
            warn!("closed connection of node {certificate_node} from {remote}: {error}");
            false
        }
        Event::Departed { node_id, reason } => {
            info!("node {node_id} disconnected: {reason}");
            true
        }
        Event::ClockUpdated { node_id, estimate } => {
            debug!(
                "clock of node {node_id}: offset {:.3} ms ± {:.1} µs (round trip {:.1} µs)",
                estimate.offset_ns as f64 / 1e6,
                estimate.uncertainty_ns as f64 / 1e3,
                estimate.rtt_ns as f64 / 1e3
            );
            true
        }
        Event::ProbeError { node_id, message } => {
            warn!("node {node_id} reported: {message}");
            false
        }
        Event::SafetyStop { node_id, message } => {
            warn!("node {node_id} safety interlock: {message}");
            false
        }
        Event::RunNote { message } => {
            warn!("{message}");
            false
        }
        Event::RunStarted {
            run_id,
            nodes,
            phases,
        } => {
            let secs: u64 = phases.iter().map(|p| p.duration_ms).sum::<u64>() / 1000;
            info!(
                "run {run_id}: {} probes, {} phases ({secs} s) scheduled",
                nodes.len(),
                phases.len()
            );
            false
        }
        Event::PhaseStarted {
            node_id, phase_id, ..
        } => {
            debug!("node {node_id} started phase {phase_id}");
            false
        }
        Event::Telemetry { .. } | Event::Facility { .. } => false,
        // Logged through the shell's `GapLog`, bounded (a flood of gaps is summed up).
        Event::Gap { .. } => false,
        Event::PhaseReport { node_id, report } => {
            if let Some(why) = &report.stopped_early {
                warn!(
                    "node {node_id} ended phase {} early: {why}",
                    report.phase_id
                );
            }
            false
        }
        Event::ProbeLost {
            node_id, reason, ..
        } => {
            warn!("node {node_id} lost during the run: {reason}");
            false
        }
        Event::ProbeBack { node_id, .. } => {
            info!("node {node_id} is back");
            false
        }
        Event::RunFinished {
            run_id,
            outcome,
            reason,
            ..
        } => {
            if reason.is_empty() {
                info!("run {run_id} finished: {outcome:?}");
            } else {
                info!("run {run_id} finished: {outcome:?} ({reason})");
            }
            false
        }
    }
}

/// Writes the status file: who is connected, atomically (temp file + rename).
pub(crate) fn write_status(
    path: &Path,
    listen: SocketAddr,
    probes: &[ProbeRecord],
) -> Result<(), ServerError> {
    #[derive(serde::Serialize)]
    struct Status<'a> {
        listen: String,
        written_at_ns: i64,
        probes: &'a [ProbeRecord],
    }
    let status = Status {
        listen: listen.to_string(),
        written_at_ns: WallClock::new().now_ns(),
        probes,
    };
    let err = |source| ServerError::StatusFile {
        path: path.to_path_buf(),
        source,
    };
    let json = serde_json::to_vec_pretty(&status).map_err(|e| err(std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
