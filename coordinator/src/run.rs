//! The run engine inside the coordinator's state machine: wait for the plan's expected inventory,
//! schedule every phase at a future instant on the coordinator's clock, ingest telemetry, enforce
//! the plan's limits, and finish the run.
//!
//! Phases are scheduled back to back from a start instant `t0` a little in the future, so that every
//! probe has its PhaseStart (sent [`SEND_AHEAD_NS`] before each phase) well before the phase begins
//! and starts it through its own clock offset at the same coordinator instant. During a run every
//! participant gets a Heartbeat every [`HEARTBEAT_NS`], which feeds its dead-man interlock.

mod nccl;
mod reports;
mod resume;

pub use resume::{ResumeFrom, ResumeNode, COLLECT_NS, COLLECT_QUIET_NS};

use crate::fabric::{assign, order_for, Candidate, NcclWaits};
use crate::machine::{ConnId, Event, Outputs};
use crate::validate::{check_batch, check_fabric, instants, sent_phase};
use hallmark_protocol::plan::{ExpectedNodes, Plan};
use hallmark_protocol::{CoordinatorMessage, NodeId, PhaseReport, PhaseStart, TelemetryBatch};
use nccl::apply_nccl;
use std::collections::BTreeMap;

/// First phase starts this long after the run is scheduled.
pub const START_LEAD_NS: i64 = 2_000_000_000;
/// Each PhaseStart is sent this long before its phase.
pub const SEND_AHEAD_NS: i64 = 1_500_000_000;
/// Heartbeat period during a run (well under the dead-man interval).
pub const HEARTBEAT_NS: i64 = 400_000_000;
/// How long after the last phase's end the coordinator waits for reports and late telemetry.
pub const REPORT_GRACE_NS: i64 = 3_000_000_000;
/// How long after an abort the coordinator waits for the probes' last telemetry and reports.
pub const ABORT_GRACE_NS: i64 = 2_000_000_000;

/// How often a probe may send PhaseStarted, and PhaseReport, for one phase.
pub const MAX_REPEATS: u32 = 3;
/// Shortfalls kept in full (the run's reason shows the first few and counts the rest).
const MAX_SHORTFALLS: usize = 64;

/// How a run ended, as far as its data is concerned (verdicts judge the hall itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every expected probe ran every phase and reported.
    Complete,
    /// Something expected is missing: inventory, a lost probe, a missing report.
    Incomplete,
    /// Stopped before its end: an operator or a breached limit.
    Aborted,
}

/// A phase as scheduled.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledPhase {
    pub start: PhaseStart,
    /// A fabric phase's key, from which each member's pair keys are derived; never sent.
    pub key: Option<crate::fabric::PhaseKey>,
}

/// A probe taking part in the run.
#[derive(Debug, Clone)]
struct Participant {
    conn: Option<ConnId>,
    rack: String,
    /// Devices it registered: bounds its telemetry batches.
    devices: usize,
    /// Next telemetry sequence number expected (`None` until known: a probe numbers its batches
    /// for its whole life, so in a new run its first batch sets where the run's sequence starts),
    /// and the last sample instant seen.
    next_seq: Option<u64>,
    last_t_ns: Option<i64>,
    /// Latest node power, W.
    power: Option<f64>,
    reported: Vec<u32>,
    /// PhaseStarted and PhaseReport messages per phase, to bound repeats.
    repeats: BTreeMap<(u32, bool), u32>,
    /// Why it is lost, while it is.
    lost: Option<String>,
}

impl Participant {
    /// A participant on `conn` (`None`: not back yet) with `devices` devices, whose telemetry
    /// sequence goes on from `next_seq`, before anything of it arrived.
    fn new(conn: Option<ConnId>, rack: String, devices: usize, next_seq: Option<u64>) -> Self {
        Participant {
            conn,
            rack,
            devices,
            next_seq,
            last_t_ns: None,
            power: None,
            reported: Vec::new(),
            repeats: BTreeMap::new(),
            lost: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    /// Waiting for the expected inventory until the deadline.
    Waiting {
        deadline: i64,
    },
    /// Phases scheduled; `sent` of them have been sent.
    Running {
        sent: usize,
        next_heartbeat: i64,
    },
    /// Aborted: every probe was told to stop; waiting until the deadline for their last
    /// telemetry and the reports of the phases they had started, so that nothing measured is lost.
    Stopping {
        deadline: i64,
    },
    /// A resumed run (its coordinator was interrupted): collecting what the probes still hold
    /// until the deadline, or until a while after every participant is back.
    Collecting {
        deadline: i64,
        all_back: Option<i64>,
    },
    Done,
}

/// One run of a plan.
#[derive(Debug)]
pub struct Run {
    pub run_id: String,
    pub plan: Plan,
    stage: Stage,
    phases: Vec<ScheduledPhase>,
    participants: BTreeMap<NodeId, Participant>,
    /// When the run was created: a phase start or report from before it is a re-send, after a
    /// reconnect, of an earlier run's.
    created_ns: i64,
    /// Why the run is not complete, in words.
    shortfalls: Vec<String>,
    /// Shortfalls past [`MAX_SHORTFALLS`], counted only.
    shortfalls_more: u64,
    /// Collective phases through NCCL waiting for their unique id.
    nccl: NcclWaits,
    /// Of a resumed run: telemetry batches and samples recovered from the probes.
    recovered: (u64, u64),
}

impl Run {
    /// A run that starts waiting for the plan's inventory at `now`.
    pub fn new(run_id: String, plan: Plan, now: i64) -> Self {
        let deadline = now.saturating_add(
            i64::try_from(plan.expect.timeout_ms)
                .unwrap_or(i64::MAX / 4)
                .saturating_mul(1_000_000),
        );
        Run {
            run_id,
            plan,
            stage: Stage::Waiting { deadline },
            phases: Vec::new(),
            participants: BTreeMap::new(),
            created_ns: now,
            shortfalls: Vec::new(),
            shortfalls_more: 0,
            nccl: NcclWaits::default(),
            recovered: (0, 0),
        }
    }

    /// When the run was created here (coordinator clock): what a probe measured before belongs
    /// to no run of this coordinator (but in a resumed run, which collects the interrupted one's).
    pub fn created_ns(&self) -> i64 {
        self.created_ns
    }

    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    pub fn is_waiting(&self) -> bool {
        matches!(self.stage, Stage::Waiting { .. })
    }

    /// While waiting for its probes: the instant it starts with whoever is there.
    pub fn start_deadline(&self) -> Option<i64> {
        match self.stage {
            Stage::Waiting { deadline } => Some(deadline),
            _ => None,
        }
    }

    /// Scheduled phases (empty while waiting).
    pub fn phases(&self) -> &[ScheduledPhase] {
        &self.phases
    }

    /// The nodes taking part (empty while waiting).
    pub fn participants(&self) -> impl Iterator<Item = &NodeId> {
        self.participants.keys()
    }

    /// Whether `node` takes part.
    pub fn is_participant(&self, node: &NodeId) -> bool {
        self.participants.contains_key(node)
    }

    /// Live power per rack, kW: the sum of each node's latest node power.
    pub fn rack_power_kw(&self) -> BTreeMap<String, f64> {
        let mut racks = BTreeMap::new();
        for p in self.participants.values() {
            let entry = racks.entry(p.rack.clone()).or_insert(0.0);
            if let Some(w) = p.power {
                *entry += w / 1000.0;
            }
        }
        racks
    }

    /// When the run next needs [`Run::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<i64> {
        match &self.stage {
            Stage::Waiting { deadline } => Some(*deadline),
            Stage::Running {
                sent,
                next_heartbeat,
            } => {
                let next_send = self
                    .phases
                    .get(*sent)
                    .map(|p| p.start.start_at_ns - SEND_AHEAD_NS);
                let end = self.end_ns() + REPORT_GRACE_NS;
                Some(next_send.unwrap_or(end).min(*next_heartbeat).min(end))
            }
            Stage::Stopping { deadline } => Some(*deadline),
            Stage::Collecting { deadline, all_back } => {
                Some(all_back.map_or(*deadline, |t| (*deadline).min(t + COLLECT_QUIET_NS)))
            }
            Stage::Done => None,
        }
    }

    fn end_ns(&self) -> i64 {
        self.phases
            .last()
            .map(|p| p.start.start_at_ns + p.start.duration_ms as i64 * 1_000_000)
            .unwrap_or(0)
    }

    /// Checks the registered probes against the plan; starts the run when they are all there and
    /// have clock estimates.
    pub fn try_start(&mut self, registered: &[Candidate], now: i64, out: &mut Outputs) {
        let Stage::Waiting { deadline } = self.stage else {
            return;
        };
        // A plan that names its nodes runs only those: a registered stranger is not a participant
        // (and gets no fabric key).
        let named: Option<std::collections::BTreeSet<&NodeId>> = match &self.plan.expect.nodes {
            ExpectedNodes::Count(_) => None,
            ExpectedNodes::Racks(racks) => Some(racks.values().flatten().collect()),
        };
        let registered: Vec<Candidate> = registered
            .iter()
            .filter(|c| named.as_ref().is_none_or(|n| n.contains(&c.node)))
            .cloned()
            .collect();
        let registered = &registered[..];
        let inventory: Vec<(NodeId, String, usize)> = registered
            .iter()
            .map(|c| (c.node.clone(), c.rack.clone(), c.devices))
            .collect();
        let missing = self.plan.expect.missing(&inventory);
        let clocks_ready = registered.iter().all(|r| r.clock_known);
        let timed_out = now >= deadline;
        let ready = missing.is_empty() && clocks_ready;
        if !(timed_out || ready) {
            return;
        }
        if timed_out && !missing.is_empty() {
            self.shortfalls.push(format!(
                "expected inventory incomplete: {}",
                missing.join("; ")
            ));
        }
        let unsynced: Vec<String> = registered
            .iter()
            .filter(|r| !r.clock_known)
            .map(|r| r.node.to_string())
            .collect();
        if !unsynced.is_empty() {
            self.shortfalls.push(format!(
                "left out, no clock estimate in time: {}",
                unsynced.join(", ")
            ));
        }
        let ready: Vec<_> = registered.iter().filter(|r| r.clock_known).collect();
        if ready.is_empty() {
            self.shortfalls
                .push("no probe registered with a clock estimate".into());
            self.finish(Outcome::Incomplete, now, out);
            return;
        }
        for c in &ready {
            self.participants.insert(
                c.node.clone(),
                Participant::new(Some(c.conn), c.rack.clone(), c.devices, None),
            );
        }
        let mut at = now + START_LEAD_NS;
        for (i, spec) in self.plan.phases.iter().enumerate() {
            let mut key = None;
            let fabric = match &spec.fabric {
                None => None,
                Some(params) => match assign(&spec.name, params, &ready) {
                    Ok(a) => {
                        self.shortfalls.extend(a.shortfall);
                        if let Some(plan) = a.nccl {
                            // Ask the first member for the NCCL unique id now; the phase is sent
                            // SEND_AHEAD_NS before it starts, at least START_LEAD_NS − that away.
                            if let Some(conn) =
                                ready.iter().find(|c| c.node == plan.first).map(|c| c.conn)
                            {
                                out.transmits.push_back((
                                    conn,
                                    CoordinatorMessage::FabricPrepare { phase_id: i as u32 },
                                ));
                            }
                            self.nccl.insert(i as u32, plan);
                        }
                        key = Some(a.key);
                        Some(a.phase)
                    }
                    Err(e) => {
                        self.shortfalls.push(e);
                        self.finish(Outcome::Aborted, now, out);
                        return;
                    }
                },
            };
            let start = PhaseStart {
                phase_id: i as u32,
                name: spec.name.clone(),
                workload: spec.workload.clone(),
                pattern: spec.pattern.clone(),
                start_at_ns: at,
                duration_ms: spec.duration_ms,
                sample_hz: self.plan.sample_hz,
                fabric,
                target_power_w: spec.target_power_w,
            };
            at += spec.duration_ms as i64 * 1_000_000;
            self.phases.push(ScheduledPhase { start, key });
        }
        self.stage = Stage::Running {
            sent: 0,
            next_heartbeat: now,
        };
        out.events.push_back(Event::RunStarted {
            run_id: self.run_id.clone(),
            nodes: self.participants.keys().cloned().collect(),
            phases: self.phases.iter().map(|p| p.start.clone()).collect(),
        });
        // The first beat goes to every participant.
        self.handle_timeout(now, |_| None, out);
    }

    /// Sends due PhaseStarts and heartbeats; finishes the run after its last phase. `last_sent`
    /// tells when a connection was last sent anything (a heartbeat goes only to those that were
    /// not, since the last one).
    pub fn handle_timeout(
        &mut self,
        now: i64,
        last_sent: impl Fn(ConnId) -> Option<i64>,
        out: &mut Outputs,
    ) {
        if matches!(self.stage, Stage::Collecting { .. }) {
            return self.collect_timeout(now, out);
        }
        if let Stage::Stopping { deadline } = self.stage {
            if now >= deadline || self.stopped_reports_in(now) {
                self.finish(Outcome::Aborted, now, out);
            }
            return;
        }
        let Stage::Running {
            sent,
            next_heartbeat,
        } = &mut self.stage
        else {
            return;
        };
        while let Some(p) = self.phases.get(*sent) {
            if p.start.start_at_ns - SEND_AHEAD_NS > now {
                break;
            }
            let phase_id = p.start.phase_id;
            if let Some(outcome) = self.nccl.due(phase_id) {
                apply_nccl(
                    &mut self.phases,
                    &mut self.shortfalls,
                    phase_id,
                    outcome,
                    out,
                );
            }
            let Some(p) = self.phases.get(*sent) else {
                break;
            };
            for (node, part) in &self.participants {
                if let Some(conn) = part.conn {
                    out.transmits
                        .push_back((conn, order_for(&p.start, p.key.as_ref(), node)));
                }
            }
            *sent += 1;
        }
        if *next_heartbeat <= now {
            *next_heartbeat = now + HEARTBEAT_NS;
            for part in self.participants.values() {
                let Some(conn) = part.conn else { continue };
                // A probe that was sent anything since the last beat (a telemetry ack, most
                // often) needs none now: it still hears from the coordinator at least every two
                // beats, well inside its dead-man interval, and a hall of 10 000 probes is spared
                // 25 000 packets a second.
                if last_sent(conn).is_some_and(|t| t > now - HEARTBEAT_NS) {
                    continue;
                }
                out.transmits
                    .push_back((conn, CoordinatorMessage::Heartbeat { now_ns: now }));
            }
        }
        let all_reported = !self.phases.is_empty()
            && self
                .participants
                .values()
                .all(|p| p.lost.is_some() || p.reported.len() >= self.phases.len());
        if now >= self.end_ns() + REPORT_GRACE_NS || (all_reported && now >= self.end_ns()) {
            for (node, p) in &self.participants {
                let missing = self.phases.len().saturating_sub(p.reported.len());
                match &p.lost {
                    Some(reason) => self
                        .shortfalls
                        .push(format!("node {node} was lost: {reason}")),
                    None if missing > 0 => self
                        .shortfalls
                        .push(format!("node {node} did not report {missing} phase(s)")),
                    None => {}
                }
            }
            let outcome = if self.shortfalls.is_empty() {
                Outcome::Complete
            } else {
                Outcome::Incomplete
            };
            self.finish(outcome, now, out);
        }
    }

    /// Whether every connected participant has reported every phase that had started by `now`.
    fn stopped_reports_in(&self, now: i64) -> bool {
        let started: Vec<u32> = self
            .phases
            .iter()
            .filter(|p| p.start.start_at_ns <= now)
            .map(|p| p.start.phase_id)
            .collect();
        self.participants
            .values()
            .filter(|p| p.lost.is_none() && p.conn.is_some())
            .all(|p| started.iter().all(|id| p.reported.contains(id)))
    }

    /// Stops every probe's load and ends the run once their last telemetry and reports are in
    /// (at most [`ABORT_GRACE_NS`]).
    pub fn abort(&mut self, reason: &str, now: i64, out: &mut Outputs) {
        if matches!(self.stage, Stage::Done | Stage::Stopping { .. }) {
            return;
        }
        let was_running = matches!(self.stage, Stage::Running { .. });
        for p in self.participants.values() {
            if let Some(conn) = p.conn {
                out.transmits.push_back((
                    conn,
                    CoordinatorMessage::Abort {
                        reason: reason.to_string(),
                    },
                ));
            }
        }
        self.shortfalls.push(format!("aborted: {reason}"));
        if was_running {
            self.stage = Stage::Stopping {
                deadline: now + ABORT_GRACE_NS,
            };
            if self.stopped_reports_in(now) {
                self.finish(Outcome::Aborted, now, out);
            }
        } else {
            self.finish(Outcome::Aborted, now, out);
        }
    }

    fn finish(&mut self, outcome: Outcome, now: i64, out: &mut Outputs) {
        self.stage = Stage::Done;
        // The first few shortfalls in full, then a count: a hall of lost nodes is one story.
        const SHOWN: usize = 6;
        let mut reason = self
            .shortfalls
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        let more = (self.shortfalls.len().saturating_sub(SHOWN) as u64)
            .saturating_add(self.shortfalls_more);
        if more > 0 {
            reason.push_str(&format!("; and {more} more"));
        }
        out.events.push_back(Event::RunFinished {
            run_id: self.run_id.clone(),
            outcome,
            reason,
            at_ns: now,
        });
    }

    /// A participant's connection is back (or new) after registration.
    pub fn on_registered(&mut self, node: &NodeId, conn: ConnId, now: i64, out: &mut Outputs) {
        let Some(p) = self.participants.get_mut(node) else {
            return;
        };
        p.conn = Some(conn);
        // A probe re-sends its latest phase reports after every Welcome (it cannot know which
        // arrived): repeats are bounded per connection, so a flaky link never turns into a
        // protocol error.
        p.repeats.clear();
        if p.lost.take().is_some() {
            out.events.push_back(Event::ProbeBack {
                node_id: node.clone(),
                at_ns: now,
            });
        }
        if matches!(self.stage, Stage::Collecting { .. }) {
            // The interrupted run does not go on: a phase still running on the probe stops now
            // and its report, like its telemetry, comes back to be stored.
            out.transmits.push_back((
                conn,
                CoordinatorMessage::Abort {
                    reason: "the run's coordinator was interrupted; the run is being resumed only to collect what \
                     was measured"
                        .into(),
                },
            ));
        }
        self.note_back(now);
        // Phases sent while it was away: send every phase already sent that has not ended (the
        // probe ignores the ones it already has); later ones come with the schedule.
        let sent = match self.stage {
            Stage::Running { sent, .. } => sent,
            _ => 0,
        };
        for ph in self.phases.iter().take(sent) {
            let end = ph.start.start_at_ns + ph.start.duration_ms as i64 * 1_000_000;
            if end > now {
                out.transmits
                    .push_back((conn, order_for(&ph.start, ph.key.as_ref(), node)));
            }
        }
    }

    /// A participant's connection is gone: it is lost until it comes back.
    pub fn on_departed(&mut self, node: &NodeId, reason: &str, now: i64, out: &mut Outputs) {
        let Some(p) = self.participants.get_mut(node) else {
            return;
        };
        p.conn = None;
        if let Stage::Collecting { all_back, .. } = &mut self.stage {
            // Not all back any more: its replay comes after it reconnects.
            *all_back = None;
        }
        if self.stage != Stage::Done && p.lost.is_none() {
            p.lost = Some(reason.to_string());
            out.events.push_back(Event::ProbeLost {
                node_id: node.clone(),
                at_ns: now,
                reason: reason.to_string(),
            });
        }
    }
}

/// Notes why the run is not complete in `kept`, or only counts it in `more` past
/// [`MAX_SHORTFALLS`]: what a probe's telemetry says (holes, missed instants) can come every second
/// from every node.
fn note_shortfall(kept: &mut Vec<String>, more: &mut u64, why: String) {
    if kept.len() < MAX_SHORTFALLS {
        kept.push(why);
    } else {
        *more = more.saturating_add(1);
    }
}
