//! [`StoreRecorder`]: the [`Recorder`] that writes a run into the results crate's SQLite store.
//!
//! Telemetry batches of one call go into one transaction; a batch the store already holds (a
//! replay after a reconnect) is acknowledged again without being written twice.

use crate::record::{Record, RecordError, Recorder};
use crate::run::Outcome;
use hallmark_protocol::{NodeId, TelemetryBatch};
use hallmark_results::{event_kind, PhaseRow, ProbeRow, RunId, RunStatus, Store, StoreError};

/// Writes one run into a [`Store`].
pub struct StoreRecorder {
    store: Store,
    run: RunId,
}

impl StoreRecorder {
    /// Records into `run`, which `store.create_run` made.
    pub fn new(store: Store, run: RunId) -> Self {
        StoreRecorder { store, run }
    }

    fn flush(
        &mut self,
        telemetry: &mut Vec<(NodeId, TelemetryBatch, i64)>,
        acks: &mut Vec<(NodeId, u64)>,
    ) -> Result<(), StoreError> {
        if telemetry.is_empty() {
            return Ok(());
        }
        let refs: Vec<(&NodeId, &TelemetryBatch, i64)> =
            telemetry.iter().map(|(n, b, t)| (n, b, *t)).collect();
        self.store.insert_batches(&self.run, &refs)?;
        acks.extend(telemetry.drain(..).map(|(n, b, _)| (n, b.seq)));
        Ok(())
    }

    fn write(&mut self, records: Vec<Record>) -> Result<Vec<(NodeId, u64)>, StoreError> {
        let mut acks = Vec::new();
        let mut telemetry = Vec::new();
        for r in records {
            if let Record::Telemetry {
                node_id,
                batch,
                received_at_ns,
            } = r
            {
                telemetry.push((node_id, batch, received_at_ns));
                continue;
            }
            // Keep the order: telemetry before the record that follows it.
            self.flush(&mut telemetry, &mut acks)?;
            let run = &self.run;
            match r {
                Record::Telemetry { .. } => {}
                Record::RunStarted { probes, phases, .. } => {
                    for p in &probes {
                        let row = ProbeRow {
                            node_id: p.node_id.clone(),
                            labels: p.labels.clone(),
                            backend: p.backend.clone(),
                            hallmark_version: p.hallmark_version.clone(),
                            remote: Some(p.remote.clone()),
                            registered_at_ns: p.registered_at_ns,
                            clock: p.clock,
                        };
                        self.store.add_probe(run, &row)?;
                        self.store.add_devices(run, &p.node_id, &p.inventory)?;
                    }
                    for ph in &phases {
                        self.store.add_phase(run, &PhaseRow::from(ph))?;
                        if let Some(f) = &ph.fabric {
                            self.store.fabric_members(run, ph.phase_id, &f.members)?;
                        }
                    }
                }
                Record::PhaseStarted {
                    node_id,
                    phase_id,
                    actual_start_ns,
                } => self
                    .store
                    .phase_started(run, phase_id, &node_id, actual_start_ns)?,
                Record::Gap {
                    node_id,
                    from_ns,
                    to_ns,
                    reason,
                } => self
                    .store
                    .record_gap(run, &node_id, from_ns, to_ns, &reason)?,
                Record::PhaseReport { node_id, report } => {
                    match self.store.phase_report(run, &node_id, &report) {
                        // A fabric report the store refuses (a histogram that does not decode, a
                        // pair twice) comes from one probe: keep the rest of its report and say
                        // why its fabric results are missing, rather than abort the run.
                        Err(StoreError::Invalid { detail, .. }) if report.fabric.is_some() => {
                            let mut rest = report.clone();
                            rest.fabric = None;
                            self.store.phase_report(run, &node_id, &rest)?;
                            self.store.event(
                                run,
                                report.ended_at_ns,
                                Some(&node_id),
                                event_kind::ERROR,
                                &format!(
                                    "fabric results of phase {} refused: {detail}",
                                    report.phase_id
                                ),
                            )?;
                        }
                        other => other?,
                    }
                }
                Record::ProbeLost {
                    node_id,
                    at_ns,
                    reason,
                } => self.store.probe_lost(run, &node_id, at_ns, &reason)?,
                Record::Note {
                    at_ns,
                    node_id,
                    kind,
                    message,
                } => self
                    .store
                    .event(run, at_ns, node_id.as_ref(), kind, &message)?,
                Record::RunFinished {
                    outcome,
                    reason,
                    at_ns,
                } => {
                    let status = match outcome {
                        Outcome::Complete => RunStatus::Complete,
                        Outcome::Incomplete => RunStatus::Incomplete,
                        Outcome::Aborted => RunStatus::Aborted,
                    };
                    let reason = (!reason.is_empty()).then_some(reason.as_str());
                    self.store.finish_run(run, at_ns, status, reason)?;
                    self.store.checkpoint()?;
                }
            }
        }
        self.flush(&mut telemetry, &mut acks)?;
        Ok(acks)
    }
}

impl Recorder for StoreRecorder {
    fn record(&mut self, records: Vec<Record>) -> Result<Vec<(NodeId, u64)>, RecordError> {
        self.write(records).map_err(|e| RecordError(e.to_string()))
    }
}
