//! Resuming a run whose coordinator was interrupted (`hallmark run --resume RUN`): a new
//! coordinator on the same address and CA takes the stored run's participants back, each probe that
//! reconnects replays the telemetry it still holds (unacknowledged batches) and its held phase
//! reports, and the run collects them for a bounded time, then finishes INCOMPLETE (an interrupted
//! run is never complete) with what was recovered in its reason and a note.

use super::{Outcome, Participant, Run, Stage};
use crate::fabric::NcclWaits;
use crate::machine::{Event, Outputs};
use hallmark_protocol::plan::Plan;
use hallmark_protocol::{NodeId, PhaseReport};
use std::collections::BTreeMap;

/// Longest a resumed run collects, ns (probes reconnect within their 5 s backoff cap).
pub const COLLECT_NS: i64 = 20_000_000_000;
/// After the last participant is back, how long its replay may take, ns.
pub const COLLECT_QUIET_NS: i64 = 2_000_000_000;

/// A participant of the interrupted run, as the store has it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeNode {
    pub node: NodeId,
    pub rack: String,
    /// The sequence number after the last batch stored from it (0: none).
    pub next_seq: u64,
}

/// What the store knows of the interrupted run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResumeFrom {
    pub nodes: Vec<ResumeNode>,
}

impl Run {
    /// A run resumed at `now` to collect what the participants of `from` still hold.
    pub fn resume(run_id: String, plan: Plan, from: ResumeFrom, now: i64) -> Run {
        let participants: BTreeMap<NodeId, Participant> = from
            .nodes
            .into_iter()
            .map(|n| {
                // Its devices are known when it comes back (its Hello lists them); the store knows
                // where the interrupted run's sequence stood.
                let mut p = Participant::new(None, n.rack, 0, Some(n.next_seq));
                p.lost = Some("the run's coordinator was interrupted".into());
                (n.node, p)
            })
            .collect();
        Run {
            run_id,
            plan,
            stage: Stage::Collecting {
                deadline: now.saturating_add(COLLECT_NS),
                all_back: None,
            },
            phases: Vec::new(),
            participants,
            created_ns: now,
            shortfalls_more: 0,
            shortfalls: vec![
                "interrupted: the run's coordinator ended before the run did".to_string(),
            ],
            nccl: NcclWaits::default(),
            recovered: (0, 0),
        }
    }

    /// The devices a participant taken back lists in its Hello: they bound its replayed batches.
    pub fn set_resumed_devices(&mut self, node: &NodeId, devices: usize) {
        if !self.is_collecting() {
            return;
        }
        if let Some(p) = self.participants.get_mut(node) {
            p.devices = devices;
        }
    }

    /// A phase report re-sent to the resumed run: its phase must be one of the plan's (the
    /// interrupted coordinator's schedule is gone, so when it was sent cannot be checked). Its
    /// fabric results are left out with a note: the members and pair keys of that phase died with
    /// the interrupted coordinator, so nothing can tell them from forgeries.
    pub(super) fn check_resumed_report(
        &self,
        node: &NodeId,
        report: &mut PhaseReport,
        out: &mut Outputs,
    ) -> Result<(), String> {
        let phases = self.plan.phases.len();
        if report.phase_id as usize >= phases {
            return Err(format!(
                "PhaseReport: phase {} is not in this run's plan ({phases} phases)",
                report.phase_id
            ));
        }
        let Some(f) = report.fabric.take() else {
            return Ok(());
        };
        if !(f.latency.is_empty() && f.collectives.is_empty() && f.faults.is_empty()) {
            out.events.push_back(Event::RunNote {
                message: format!(
                    "node {node}: the fabric results of phase {} it re-sent after the resume are \
                     not stored (the interrupted coordinator's members and pair keys are gone, so \
                     they cannot be checked)",
                    report.phase_id
                ),
            });
        }
        Ok(())
    }

    /// Whether the run is collecting after a resume.
    pub fn is_collecting(&self) -> bool {
        matches!(self.stage, Stage::Collecting { .. })
    }

    /// Telemetry batches and samples recovered since the resume.
    pub fn recovered(&self) -> (u64, u64) {
        self.recovered
    }

    /// A participant is back: once all are, the run waits a while for their replays.
    pub(super) fn note_back(&mut self, now: i64) {
        let all = self.participants.values().all(|p| p.conn.is_some());
        if let Stage::Collecting { all_back, .. } = &mut self.stage {
            if all && all_back.is_none() {
                *all_back = Some(now);
            }
        }
    }

    pub(super) fn collect_timeout(&mut self, now: i64, out: &mut Outputs) {
        let Stage::Collecting { deadline, all_back } = self.stage else {
            return;
        };
        let quiet = all_back.is_some_and(|t| now >= t + COLLECT_QUIET_NS);
        if now < deadline && !quiet {
            return;
        }
        let back = self
            .participants
            .values()
            .filter(|p| p.conn.is_some())
            .count();
        let (batches, samples) = self.recovered;
        let message = format!(
            "resumed after the coordinator was interrupted: recovered {batches} telemetry batches \
             ({samples} samples) from {back} of {} probes",
            self.participants.len()
        );
        out.events.push_back(Event::RunNote {
            message: message.clone(),
        });
        let missing: Vec<String> = self
            .participants
            .iter()
            .filter(|(_, p)| p.conn.is_none())
            .map(|(n, _)| n.to_string())
            .collect();
        self.shortfalls.push(message);
        if !missing.is_empty() {
            self.shortfalls.push(format!(
                "not back after the resume (what they held is lost): {}",
                missing.join(", ")
            ));
        }
        self.finish(Outcome::Incomplete, now, out);
    }
}
