//! The coordinator's state machine: connections, registration, refusals and clock sync.
//!
//! Sans-IO in the manner of quinn-proto: the shell ([`crate::server`]) reports connections,
//! received frame payloads, frame errors and closed connections, each with `now` on the
//! coordinator's clock, and drives timers through [`Coordinator::poll_timeout`] /
//! [`Coordinator::handle_timeout`]. The machine answers through queues the shell drains:
//! [`Coordinator::poll_transmit`] (messages to send), [`Coordinator::poll_close`] (connections to
//! close, after their queued messages) and [`Coordinator::poll_event`] (what happened, for logs,
//! status and tests).

pub use crate::event::{close_code, Close, ConnId, CoordinatorConfig, Event, Outputs, ProbeRecord};
use crate::fabric::Candidate;
use crate::flow::Flow;
use crate::limits::MAX_DEVICES_PER_NODE;
use crate::run::Run;
use hallmark_protocol::clock::ClockSync;
use hallmark_protocol::codec::{decode_payload, peek_hello_version};
use hallmark_protocol::plan::Plan;
use hallmark_protocol::{
    ClockEstimate, CoordinatorMessage, DecodeError, ErrorCode, Hello, NodeId, ProbeMessage,
    ProbeRole, Refusal, RefusalReason, Welcome, PROTOCOL_VERSION,
};
use std::collections::BTreeMap;

mod facility;
mod register;
mod timers;

#[derive(Debug)]
enum ConnState {
    /// Until `deadline` (coordinator clock) for the Hello.
    AwaitingHello {
        deadline: i64,
    },
    Registered {
        node_id: NodeId,
        clock: ClockSync,
    },
    /// Refused or broken: everything more from it is ignored until the shell reports it closed.
    Closing,
}

#[derive(Debug)]
struct Conn {
    certificate_node: NodeId,
    remote: String,
    state: ConnState,
    /// When it was last handed a message (the latest input's instant then, never later than the
    /// truth): a heartbeat goes only to a probe that heard nothing since the last.
    last_sent: Option<i64>,
}

/// The coordinator's sans-IO state machine.
#[derive(Debug)]
pub struct Coordinator {
    config: CoordinatorConfig,
    conns: BTreeMap<ConnId, Conn>,
    probes: BTreeMap<NodeId, (ConnId, ProbeRecord)>,
    next_session: u64,
    out: Outputs,
    run: Option<Run>,
    /// Instance ids of the run's participants when it started.
    run_instances: BTreeMap<NodeId, u64>,
    /// The latest instant any input carried.
    now: i64,
    /// Unstored telemetry per node: back-pressure.
    flow: Flow,
    /// Error reports per node since the run started (or the coordinator, before any run).
    errors: BTreeMap<NodeId, u32>,
    /// See [`Coordinator::probe_frame_limit`].
    frame_limit: usize,
    /// Each connection's next timer (see [`timers`]).
    timers: timers::ConnTimers,
    /// Registered node probes (not facility collectors) with a clock estimate: while fewer than
    /// the run expects, it cannot start before its deadline, and nothing more is checked.
    clocked_nodes: usize,
}

/// Error reports of one probe recorded per run; more are dropped.
pub const MAX_PROBE_ERRORS: u32 = 200;
/// Characters of a probe's error report kept.
pub const MAX_ERROR_LEN: usize = 2048;

/// Cuts `s` to at most `max` characters, marking the cut.
pub(crate) fn truncate_chars(s: &mut String, max: usize) {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
        s.push_str(" [cut]");
    }
}

impl Coordinator {
    pub fn new(config: CoordinatorConfig) -> Self {
        Coordinator {
            flow: Flow::new(config.telemetry_budget),
            errors: BTreeMap::new(),
            frame_limit: crate::limits::MAX_PROBE_FRAME,
            config,
            conns: BTreeMap::new(),
            probes: BTreeMap::new(),
            next_session: 1,
            out: Outputs::default(),
            run: None,
            run_instances: BTreeMap::new(),
            now: 0,
            timers: timers::ConnTimers::default(),
            clocked_nodes: 0,
        }
    }

    /// Starts a run of `plan`: it waits for the plan's expected inventory (at most its timeout),
    /// then schedules every phase. One run at a time.
    pub fn start_run(&mut self, run_id: String, plan: Plan, now: i64) {
        self.begin(Run::new(run_id, plan, now));
        self.try_start_run(now);
    }

    /// Makes `run` the current one: what belonged to the last run (its participants' instances,
    /// telemetry its store never acknowledged, error reports counted) no longer counts, and every
    /// paused connection is read again.
    fn begin(&mut self, run: Run) {
        self.run = Some(run);
        self.run_instances.clear();
        self.flow.reset(&mut self.out);
        self.errors.clear();
    }

    /// Resumes the stored run `run_id`, whose coordinator was interrupted: collects what its
    /// participants still hold (see [`crate::run::ResumeFrom`]), then finishes it INCOMPLETE.
    pub fn resume_run(
        &mut self,
        run_id: String,
        plan: Plan,
        from: crate::run::ResumeFrom,
        now: i64,
    ) {
        self.begin(Run::resume(run_id, plan, from, now));
        // Probes already back (they reconnected before the run was resumed) rejoin now.
        let back: Vec<(NodeId, ConnId, u64)> = self
            .probes
            .iter()
            .map(|(n, (c, r))| (n.clone(), *c, r.instance_id))
            .collect();
        for (node, conn, instance) in back {
            self.rejoin_resumed(&node, conn, instance, now);
        }
    }

    /// In a resumed run the first process of a participant to come back is taken as the one
    /// that ran it (the interrupted coordinator's record of instances is gone).
    fn rejoin_resumed(&mut self, node: &NodeId, conn: ConnId, instance: u64, now: i64) {
        let devices = self.probes.get(node).map_or(0, |(_, r)| r.inventory.len());
        let Some(run) = self.run.as_mut() else { return };
        if run.is_collecting() && run.is_participant(node) && !self.run_instances.contains_key(node)
        {
            self.run_instances.insert(node.clone(), instance);
            run.set_resumed_devices(node, devices);
            run.on_registered(node, conn, now, &mut self.out);
        }
    }

    /// The current (or last) run.
    pub fn run(&self) -> Option<&Run> {
        self.run.as_ref()
    }

    /// Stops every probe's load and ends the run (Ctrl-C, a breach noticed by the shell).
    pub fn abort_run(&mut self, reason: &str, now: i64) {
        if let Some(run) = self.run.as_mut() {
            run.abort(reason, now, &mut self.out);
        }
    }

    /// The telemetry batch `seq` of `node` is stored: acknowledge it to the probe.
    pub fn telemetry_stored(&mut self, node: &NodeId, seq: u64) {
        self.flow.settled(node, seq, &mut self.out);
        if let Some((conn, _)) = self.probes.get(node) {
            self.out
                .transmits
                .push_back((*conn, CoordinatorMessage::Ack { seq }));
        }
    }

    /// The store refused the telemetry batch `seq` of `node` (the recorder noted why in the run's
    /// events): it no longer waits for the store. It is not acknowledged, so the probe keeps it.
    pub fn telemetry_refused(&mut self, node: &NodeId, seq: u64) {
        self.flow.settled(node, seq, &mut self.out);
    }

    fn try_start_run(&mut self, now: i64) {
        let Some(run) = self.run.as_mut() else { return };
        let Some(deadline) = run.start_deadline() else {
            return;
        };
        // Ready needs every expected node registered with a clock estimate: until as many are,
        // only the deadline can start the run (a storm of registrations is not quadratic).
        if now < deadline && self.clocked_nodes < run.plan.expect.node_count() {
            return;
        }
        // A facility collector is never a participant: it has no devices and runs no phase.
        let registered: Vec<_> = self
            .probes
            .iter()
            .filter(|(_, (_, r))| r.role == ProbeRole::Node)
            .map(|(n, (c, r))| Candidate {
                node: n.clone(),
                rack: r.labels.rack.clone(),
                devices: r.inventory.len(),
                conn: *c,
                clock_known: r.clock.is_some(),
                data_plane: r.data_plane,
                backend: r.backend.clone(),
            })
            .collect();
        run.try_start(&registered, now, &mut self.out);
        if !run.is_waiting() {
            let members = run
                .phases()
                .iter()
                .filter_map(|p| p.start.fabric.as_ref().map(|f| f.members.len()))
                .max()
                .unwrap_or(0);
            self.frame_limit = self
                .frame_limit
                .max(crate::limits::probe_frame_limit(members));
            for n in run.participants() {
                if let Some((_, r)) = self.probes.get(n) {
                    self.run_instances.insert(n.clone(), r.instance_id);
                }
            }
        }
    }

    /// Registered probes, by node id.
    pub fn probes(&self) -> impl Iterator<Item = &ProbeRecord> {
        self.probes.values().map(|(_, r)| r)
    }

    /// A registered probe.
    pub fn probe(&self, node: &NodeId) -> Option<&ProbeRecord> {
        self.probes.get(node).map(|(_, r)| r)
    }

    /// A TLS-authenticated connection whose certificate names `certificate_node` opened its
    /// control stream at `now`; it has until the Hello deadline to say Hello.
    pub fn on_connected(
        &mut self,
        conn: ConnId,
        certificate_node: NodeId,
        remote: String,
        now: i64,
    ) {
        self.now = self.now.max(now);
        let timeout = i64::from(self.config.hello_timeout_ms).saturating_mul(1_000_000);
        self.conns.insert(
            conn,
            Conn {
                certificate_node,
                remote,
                state: ConnState::AwaitingHello {
                    deadline: now.saturating_add(timeout),
                },
                last_sent: None,
            },
        );
        self.retime(conn);
    }

    /// The shell could not cut a frame out of the byte stream (oversized, truncated).
    pub fn on_frame_error(&mut self, conn: ConnId, error: &DecodeError) {
        self.protocol_error(conn, format!("invalid frame: {error}"));
    }

    /// One whole frame's payload arrived at `now`.
    pub fn on_payload(&mut self, conn: ConnId, payload: &[u8], now: i64) {
        self.now = self.now.max(now);
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        match decode_payload::<ProbeMessage>(payload) {
            Ok(msg) => self.on_message(conn, msg, now),
            Err(e) => {
                let awaiting = matches!(c.state, ConnState::AwaitingHello { .. });
                match peek_hello_version(payload) {
                    Some(v) if awaiting && v != PROTOCOL_VERSION => {
                        self.refuse_version(conn, v);
                    }
                    _ => self.protocol_error(conn, format!("undecodable message: {e}")),
                }
            }
        }
    }

    /// One decoded message arrived at `now`.
    pub fn on_message(&mut self, conn: ConnId, msg: ProbeMessage, now: i64) {
        self.now = self.now.max(now);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match (&mut c.state, msg) {
            (ConnState::Closing, _) => {}
            (ConnState::AwaitingHello { .. }, ProbeMessage::Hello(hello)) => {
                self.on_hello(conn, hello, now)
            }
            (ConnState::AwaitingHello { .. }, _) => self.refuse(
                conn,
                RefusalReason::ExpectedHello,
                "the first message on a control stream must be Hello".into(),
            ),
            (ConnState::Registered { node_id, clock }, ProbeMessage::ClockPong(pong)) => {
                let estimate = clock.on_pong(&pong, now).map(|e| (node_id.clone(), e));
                self.retime(conn);
                if let Some((node_id, estimate)) = estimate {
                    self.publish_clock(conn, node_id, estimate);
                    self.try_start_run(now);
                }
            }
            (ConnState::Registered { node_id, .. }, ProbeMessage::Error(report)) => {
                let node_id = node_id.clone();
                let safety = report.code == ErrorCode::Safety;
                let message = if safety {
                    report.message
                } else {
                    format!("{:?}: {}", report.code, report.message)
                };
                self.probe_error(node_id, safety, message);
            }
            (ConnState::Registered { node_id, .. }, ProbeMessage::Facility(batch)) => {
                let node_id = node_id.clone();
                self.on_facility(conn, node_id, batch, now)
            }
            (ConnState::Registered { node_id, .. }, ProbeMessage::Telemetry(batch)) => {
                let node_id = node_id.clone();
                // Only the probe process that joined the run feeds it: a restarted one numbers its
                // batches from 0 again.
                let same_process = self.probes.get(&node_id).map(|(_, r)| r.instance_id)
                    == self.run_instances.get(&node_id).copied();
                match self
                    .run
                    .as_mut()
                    .filter(|r| same_process && r.is_participant(&node_id))
                {
                    Some(run) => {
                        let (seq, size) = (batch.seq, batch_size(&batch));
                        match run.on_telemetry(&node_id, batch, now, &mut self.out) {
                            Ok(()) => self.flow.queued(&node_id, conn, seq, size, &mut self.out),
                            Err(e) => self.protocol_error(conn, e),
                        }
                    }
                    None => {
                        let message = format!(
                            "sent telemetry batch {} outside a run it takes part in; not stored",
                            batch.seq
                        );
                        self.probe_error(node_id, false, message);
                    }
                }
            }
            (
                ConnState::Registered { node_id, .. },
                ProbeMessage::PhaseStarted {
                    phase_id,
                    actual_start_ns,
                },
            ) => {
                let node_id = node_id.clone();
                if let Some(run) = self.run.as_mut() {
                    if let Err(e) = run.on_phase_started(
                        &node_id,
                        phase_id,
                        actual_start_ns,
                        now,
                        &mut self.out,
                    ) {
                        self.protocol_error(conn, e);
                    }
                }
            }
            (ConnState::Registered { node_id, .. }, ProbeMessage::PhaseReport(report)) => {
                let node_id = node_id.clone();
                if let Some(run) = self.run.as_mut() {
                    if let Err(e) = run.on_phase_report(&node_id, report, now, &mut self.out) {
                        self.protocol_error(conn, e);
                    }
                }
            }
            (
                ConnState::Registered { node_id, .. },
                ProbeMessage::FabricPrepared {
                    phase_id,
                    nccl_unique_id,
                },
            ) => {
                let node_id = node_id.clone();
                if let Some(run) = self.run.as_mut() {
                    run.on_fabric_prepared(&node_id, phase_id, nccl_unique_id, &mut self.out);
                }
            }
            (ConnState::Registered { .. }, ProbeMessage::Hello(_)) => {
                self.protocol_error(conn, "second Hello on a registered session".into())
            }
        }
    }

    /// The shell saw the connection end (closed by either side, timed out, reset).
    pub fn on_closed(&mut self, conn: ConnId, reason: &str, now: i64) {
        self.now = self.now.max(now);
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.timers.set(conn, None);
        if let ConnState::Registered { node_id, .. } = c.state {
            self.depart(conn, node_id, reason.to_string(), now);
        }
    }

    /// The one way a registered probe leaves, however its connection ended (closed, timed out,
    /// replaced, broke the protocol): it is unregistered and, during a run, marked lost at once
    /// with `reason`.
    fn depart(&mut self, conn: ConnId, node_id: NodeId, reason: String, now: i64) {
        if self.probes.get(&node_id).is_none_or(|(id, _)| *id != conn) {
            return;
        }
        if let Some((_, gone)) = self.probes.remove(&node_id) {
            self.clocked_nodes = self
                .clocked_nodes
                .saturating_sub(usize::from(counts_as_clocked(&gone)));
        }
        self.flow.departed(&node_id);
        if let Some(run) = self.run.as_mut() {
            run.on_departed(&node_id, &reason, now, &mut self.out);
        }
        self.out
            .events
            .push_back(Event::Departed { node_id, reason });
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<(ConnId, CoordinatorMessage)> {
        let next = self.out.transmits.pop_front();
        if let Some(c) = next.as_ref().and_then(|(conn, _)| self.conns.get_mut(conn)) {
            c.last_sent = Some(self.now);
        }
        next
    }

    /// Next connection to close (after the messages queued for it before this close).
    pub fn poll_close(&mut self) -> Option<(ConnId, Close)> {
        self.out.closes.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// Records an error of `node_id` (its report, or the coordinator's about it; `safety`: its
    /// safety interlock acted): cut to [`MAX_ERROR_LEN`] characters, at most
    /// [`MAX_PROBE_ERRORS`] per node per run.
    fn probe_error(&mut self, node_id: NodeId, safety: bool, mut message: String) {
        let n = self.errors.entry(node_id.clone()).or_insert(0);
        *n = n.saturating_add(1);
        if *n > MAX_PROBE_ERRORS {
            return;
        }
        truncate_chars(&mut message, MAX_ERROR_LEN);
        if *n == MAX_PROBE_ERRORS {
            message.push_str(&format!(
                " (error {MAX_PROBE_ERRORS} of this probe: further ones are not recorded)"
            ));
        }
        let ev = if safety {
            Event::SafetyStop { node_id, message }
        } else {
            Event::ProbeError { node_id, message }
        };
        self.out.events.push_back(ev);
    }

    fn publish_clock(&mut self, conn: ConnId, node_id: NodeId, estimate: ClockEstimate) {
        if let Some((_, record)) = self.probes.get_mut(&node_id) {
            let was = counts_as_clocked(record);
            record.clock = Some(estimate);
            self.clocked_nodes += usize::from(!was && counts_as_clocked(record));
        }
        self.out
            .transmits
            .push_back((conn, CoordinatorMessage::ClockEstimate(estimate)));
        self.out
            .events
            .push_back(Event::ClockUpdated { node_id, estimate });
    }

    fn protocol_error(&mut self, conn: ConnId, error: String) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if matches!(c.state, ConnState::Closing) {
            return;
        }
        let was_registered = matches!(c.state, ConnState::Registered { .. });
        c.state = ConnState::Closing;
        self.timers.set(conn, None);
        let (certificate_node, remote) = (c.certificate_node.clone(), c.remote.clone());
        if was_registered {
            let reason = format!("protocol error: {error}");
            self.depart(conn, certificate_node.clone(), reason, self.now);
        }
        self.out.closes.push_back((
            conn,
            Close {
                code: close_code::PROTOCOL_ERROR,
                reason: error.clone(),
            },
        ));
        self.out.events.push_back(Event::ProtocolError {
            conn,
            certificate_node,
            remote,
            error,
        });
    }
}

impl Coordinator {
    /// The node id a live connection's certificate names.
    pub fn connection_node(&self, conn: ConnId) -> Option<&NodeId> {
        self.conns.get(&conn).map(|c| &c.certificate_node)
    }

    /// Live connections, registered or not.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Next change to whether a connection is read: `false` to stop reading it (its probe has
    /// too much telemetry waiting for the store), `true` to resume.
    pub fn poll_read(&mut self) -> Option<(ConnId, bool)> {
        self.out.reads.pop_front()
    }

    /// The frame limit for what probes send now: [`crate::limits::MAX_PROBE_FRAME`], raised by a
    /// latency pair per peer of the largest fabric phase of any run so far (it never shrinks, so
    /// no frame being received is cut by a run's end).
    pub fn probe_frame_limit(&self) -> usize {
        self.frame_limit
    }

    /// Telemetry readings handed to the store and not yet acknowledged, all probes together.
    pub fn unstored_telemetry(&self) -> u64 {
        self.flow.unstored()
    }

    /// Telemetry readings of `node` handed to the store and not yet acknowledged.
    pub fn unstored_telemetry_of(&self, node: &NodeId) -> u64 {
        self.flow.unstored_of(node)
    }
}

/// Whether a registered probe counts in the coordinator's `clocked_nodes`.
fn counts_as_clocked(record: &ProbeRecord) -> bool {
    record.role == ProbeRole::Node && record.clock.is_some()
}

/// Readings in a batch (samples, node-power readings and gaps), what the telemetry budget counts;
/// at least 1, so that a flood of empty batches, each a record for the store, is held back too.
fn batch_size(batch: &hallmark_protocol::TelemetryBatch) -> u64 {
    (batch.samples.len() as u64)
        .saturating_add(batch.node_power_w.len() as u64)
        .saturating_add(batch.gaps.len() as u64)
        .max(1)
}
