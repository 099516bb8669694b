//! [`StoreRecorder`]: the [`Recorder`] that writes a run into the run store (`hallmark-store`).
//!
//! Telemetry batches of one call go into one transaction, and so do its gaps (an overloaded hall
//! declares thousands a second); a batch the store already holds (a replay after a reconnect) is
//! acknowledged again without being written twice.
//!
//! A record the store refuses (a value it cannot hold, a node or phase it does not know: one
//! probe's doing) is left out and said so in the run's events; the records around it, other nodes'
//! telemetry and their acknowledgements go on. A refused telemetry batch is returned as refused,
//! so that it stops counting against its node's telemetry budget. Only an I/O or SQL failure fails
//! the call, which aborts the run rather than lose measurements silently.

use crate::record::{Record, RecordError, Recorder, Written};
use crate::run::Outcome;
use hallmark_protocol::{FacilityBatch, NodeId, TelemetryBatch};
use hallmark_store::{event_kind, NewGap, PhaseRow, ProbeRow, RunId, RunStatus, Store, StoreError};

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

    /// Stores the records in `queue` (telemetry or facility batches, gaps) in one write; when one
    /// of them spoils it, one by one, leaving out and noting the refused. Numbered batches go to
    /// `written` as stored or refused.
    fn flush<T: Bulk>(
        &mut self,
        queue: &mut Vec<T>,
        written: &mut Written,
    ) -> Result<(), StoreError> {
        if queue.is_empty() {
            return Ok(());
        }
        match T::insert(&mut self.store, &self.run, queue) {
            Ok(()) => {
                written
                    .stored
                    .extend(queue.drain(..).filter_map(Bulk::into_ack));
                return Ok(());
            }
            Err(e) if !refused(&e) => return Err(e),
            Err(_) => {}
        }
        for item in queue.drain(..) {
            match T::insert(&mut self.store, &self.run, std::slice::from_ref(&item)) {
                Ok(()) => written.stored.extend(item.into_ack()),
                Err(e) if refused(&e) => {
                    let (node, at) = item.origin();
                    let message = format!("{} refused by the store: {e}", item.describe());
                    self.note_refused(at, node, &message)?;
                    written.refused.extend(item.into_ack());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Records in the run's events that the store refused something of `node`.
    fn note_refused(&mut self, at_ns: i64, node: &NodeId, message: &str) -> Result<(), StoreError> {
        tracing::warn!("node {node}: {message}");
        match self
            .store
            .event(&self.run, at_ns, Some(node), event_kind::ERROR, message)
        {
            Err(e) if refused(&e) => {
                let message = format!("node {node}: {message}");
                self.store
                    .event(&self.run, at_ns, None, event_kind::ERROR, &message)
            }
            other => other,
        }
    }

    fn write(&mut self, records: Vec<Record>) -> Result<Written, StoreError> {
        let mut written = Written::default();
        let mut telemetry = Vec::new();
        let mut facility = Vec::new();
        let mut gaps = Vec::new();
        for r in records {
            match r {
                Record::Telemetry {
                    node_id,
                    batch,
                    received_at_ns,
                } => {
                    telemetry.push((node_id, batch, received_at_ns));
                    continue;
                }
                Record::Facility {
                    node_id,
                    batch,
                    received_at_ns,
                } => {
                    facility.push((node_id, batch, received_at_ns));
                    continue;
                }
                Record::Gap {
                    node_id,
                    from_ns,
                    to_ns,
                    instants,
                    reason,
                } => {
                    gaps.push(NewGap {
                        node_id,
                        from_ns,
                        to_ns,
                        instants,
                        reason,
                    });
                    continue;
                }
                _ => {}
            }
            // Keep the order: batches and gaps before the record that follows them.
            self.flush(&mut telemetry, &mut written)?;
            self.flush(&mut facility, &mut written)?;
            self.flush(&mut gaps, &mut written)?;
            let (node, at_ns) = about(&r);
            let what = kind(&r);
            match self.write_one(r) {
                Err(e) if refused(&e) => match node {
                    Some(node) => self.note_refused(
                        at_ns,
                        &node,
                        &format!("{what} refused by the store: {e}"),
                    )?,
                    None => return Err(e),
                },
                other => other?,
            }
        }
        self.flush(&mut telemetry, &mut written)?;
        self.flush(&mut facility, &mut written)?;
        self.flush(&mut gaps, &mut written)?;
        Ok(written)
    }

    fn write_one(&mut self, r: Record) -> Result<(), StoreError> {
        {
            let run = &self.run;
            match r {
                Record::Telemetry { .. } | Record::Facility { .. } | Record::Gap { .. } => {}
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
                        self.store
                            .add_probe_software(run, &p.node_id, &p.software)?;
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
        Ok(())
    }
}

/// Whether the store refused a record (its content), as opposed to failing to write.
fn refused(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Invalid { .. } | StoreError::UnknownNode { .. }
    )
}

/// The node a record concerns and its instant, for a note when the store refuses it.
fn about(r: &Record) -> (Option<NodeId>, i64) {
    match r {
        Record::PhaseStarted {
            node_id,
            actual_start_ns,
            ..
        } => (Some(node_id.clone()), *actual_start_ns),
        Record::Telemetry {
            node_id,
            received_at_ns,
            ..
        }
        | Record::Facility {
            node_id,
            received_at_ns,
            ..
        } => (Some(node_id.clone()), *received_at_ns),
        Record::Gap {
            node_id, from_ns, ..
        } => (Some(node_id.clone()), *from_ns),
        Record::PhaseReport { node_id, report } => (Some(node_id.clone()), report.ended_at_ns),
        Record::ProbeLost { node_id, at_ns, .. } => (Some(node_id.clone()), *at_ns),
        Record::Note { node_id, at_ns, .. } => (node_id.clone(), *at_ns),
        Record::RunStarted { .. } | Record::RunFinished { .. } => (None, 0),
    }
}

/// What a record is, in words.
fn kind(r: &Record) -> &'static str {
    match r {
        Record::RunStarted { .. } => "the run's start",
        Record::PhaseStarted { .. } => "a phase start",
        Record::Telemetry { .. } => "a telemetry batch",
        Record::Facility { .. } => "a facility batch",
        Record::Gap { .. } => "a gap",
        Record::PhaseReport { .. } => "a phase report",
        Record::ProbeLost { .. } => "a lost probe",
        Record::Note { .. } => "a note",
        Record::RunFinished { .. } => "the run's end",
    }
}

/// What the store takes many of in one write: telemetry and facility batches (with the node that
/// sent each and when it arrived), gaps.
trait Bulk: Sized {
    fn insert(store: &mut Store, run: &RunId, items: &[Self]) -> Result<(), StoreError>;
    /// The node it concerns and its instant, for a note when the store refuses it.
    fn origin(&self) -> (&NodeId, i64);
    /// What it is, in words.
    fn describe(&self) -> String;
    /// The acknowledgement it earns, stored or refused: a numbered batch's node and number.
    fn into_ack(self) -> Option<(NodeId, u64)>;
}

impl<B: Batch> Bulk for (NodeId, B, i64) {
    fn insert(store: &mut Store, run: &RunId, items: &[Self]) -> Result<(), StoreError> {
        let refs: Vec<(&NodeId, &B, i64)> = items.iter().map(|(n, b, t)| (n, b, *t)).collect();
        B::insert(store, run, &refs)
    }
    fn origin(&self) -> (&NodeId, i64) {
        (&self.0, self.2)
    }
    fn describe(&self) -> String {
        format!("{} {}", B::WHAT, self.1.seq())
    }
    fn into_ack(self) -> Option<(NodeId, u64)> {
        let seq = self.1.seq();
        Some((self.0, seq))
    }
}

impl Bulk for NewGap {
    fn insert(store: &mut Store, run: &RunId, items: &[Self]) -> Result<(), StoreError> {
        store.record_gaps(run, items)
    }
    fn origin(&self) -> (&NodeId, i64) {
        (&self.node_id, self.from_ns)
    }
    fn describe(&self) -> String {
        "a gap".into()
    }
    fn into_ack(self) -> Option<(NodeId, u64)> {
        None
    }
}

/// A numbered batch the store takes many of in one transaction.
trait Batch {
    /// What it is, in words.
    const WHAT: &'static str;
    fn seq(&self) -> u64;
    fn insert(
        store: &mut Store,
        run: &RunId,
        batches: &[(&NodeId, &Self, i64)],
    ) -> Result<(), StoreError>;
}

impl Batch for TelemetryBatch {
    const WHAT: &'static str = "telemetry batch";
    fn seq(&self) -> u64 {
        self.seq
    }
    fn insert(
        store: &mut Store,
        run: &RunId,
        batches: &[(&NodeId, &Self, i64)],
    ) -> Result<(), StoreError> {
        store.insert_batches(run, batches).map(drop)
    }
}

impl Batch for FacilityBatch {
    const WHAT: &'static str = "facility batch";
    fn seq(&self) -> u64 {
        self.seq
    }
    fn insert(
        store: &mut Store,
        run: &RunId,
        batches: &[(&NodeId, &Self, i64)],
    ) -> Result<(), StoreError> {
        store.insert_facility_batches(run, batches).map(drop)
    }
}

impl Recorder for StoreRecorder {
    fn record(&mut self, records: Vec<Record>) -> Result<Written, RecordError> {
        self.write(records).map_err(|e| RecordError(e.to_string()))
    }
}
