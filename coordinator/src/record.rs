//! Where a run's data goes: the [`Recorder`] trait and the thread that feeds it.
//!
//! The core task turns the machine's run events into [`Record`]s and sends them, in order, to a
//! dedicated writer thread, which hands them to the recorder in batches (one store transaction per
//! batch). Telemetry is acknowledged to a probe only after the recorder has stored it, so a probe
//! replays anything the coordinator did not keep.

use crate::machine::ProbeRecord;
use crate::run::Outcome;
use hallmark_protocol::{FacilityBatch, NodeId, PhaseReport, PhaseStart, TelemetryBatch};
use tokio::sync::mpsc;
use tracing::error;

/// One thing to store.
#[derive(Debug, Clone)]
pub enum Record {
    RunStarted {
        run_id: String,
        probes: Vec<ProbeRecord>,
        phases: Vec<PhaseStart>,
    },
    PhaseStarted {
        node_id: NodeId,
        phase_id: u32,
        actual_start_ns: i64,
    },
    Telemetry {
        node_id: NodeId,
        batch: TelemetryBatch,
        received_at_ns: i64,
    },
    /// A facility collector's readings, acknowledged like telemetry once stored.
    Facility {
        node_id: NodeId,
        batch: FacilityBatch,
        received_at_ns: i64,
    },
    Gap {
        node_id: NodeId,
        from_ns: i64,
        to_ns: i64,
        /// Sampling instants missed (`None`: not counted).
        instants: Option<u64>,
        reason: String,
    },
    PhaseReport {
        node_id: NodeId,
        report: PhaseReport,
    },
    ProbeLost {
        node_id: NodeId,
        at_ns: i64,
        reason: String,
    },
    /// Anything else worth keeping with the run (safety stops, probe errors, reconnections).
    Note {
        at_ns: i64,
        node_id: Option<NodeId>,
        kind: &'static str,
        message: String,
    },
    RunFinished {
        outcome: Outcome,
        reason: String,
        at_ns: i64,
    },
}

/// Why records could not be stored.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RecordError(pub String);

/// What one call of a [`Recorder`] did with the telemetry and facility batches it was given, each
/// as (node, seq).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Batches now stored, to be acknowledged — a replayed batch that was already stored counts
    /// as stored.
    pub stored: Vec<(NodeId, u64)>,
    /// Batches the store refused (the recorder notes why in the run's events): never
    /// acknowledged, and no longer waiting for the store.
    pub refused: Vec<(NodeId, u64)>,
}

/// Stores a run's records.
pub trait Recorder: Send + 'static {
    /// Stores `records` in order, and says which telemetry batches were stored or refused.
    fn record(&mut self, records: Vec<Record>) -> Result<Written, RecordError>;
}

/// What the writer thread tells the core task.
#[derive(Debug)]
pub(crate) enum Recorded {
    Stored(Written),
    Failed(String),
}

/// Most records written in one call of the recorder.
const MAX_BATCH: usize = 4096;

/// Starts the writer thread. It ends when the sender is dropped, after writing what is queued.
pub(crate) fn spawn_writer(
    mut recorder: Box<dyn Recorder>,
    done: mpsc::UnboundedSender<Recorded>,
) -> Result<(mpsc::UnboundedSender<Record>, std::thread::JoinHandle<()>), RecordError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Record>();
    let handle = std::thread::Builder::new()
        .name("hallmark-recorder".into())
        .spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                let report = match recorder.record(batch) {
                    Ok(written) => Recorded::Stored(written),
                    Err(e) => {
                        error!("storing run data failed: {e}");
                        Recorded::Failed(e.to_string())
                    }
                };
                // If the core task is gone, keep writing what is queued.
                let _ = done.send(report);
            }
        })
        .map_err(|e| RecordError(format!("cannot start the recorder thread: {e}")))?;
    Ok((tx, handle))
}
