//! The probe's side of the control protocol, as a sans-IO state machine that lives as long as the
//! probe process, across reconnections.
//!
//! The shell ([`crate::client`]) calls [`ProbeSession::connected`] on every new control stream and
//! sends the Hello it returns, feeds every coordinator message with the instant it arrived to
//! [`ProbeSession::handle`], runs [`ProbeSession::handle_timeout`] when
//! [`ProbeSession::poll_timeout`] says, and sends what they return. Phases keep running while the
//! connection is down (until the dead-man interlock stops them); their telemetry is kept and
//! replayed after the next Welcome. Nothing here touches a socket or reads a clock.

use crate::facility::{FacilityFeed, NoDevices};
use crate::runner::PhaseRunner;
use hallmark_protocol::{
    ClockEstimate, ClockPong, CoordinatorMessage, ErrorCode, ErrorReport, FacilityReading, Hello,
    ProbeMessage, ProbeRole, Refusal, Welcome,
};
use hallmark_workloads::backend::Backend;

/// Phase reports kept to be sent again after a reconnect.
pub const RESENT_REPORTS: usize = 16;

/// Dead-man interval used until a Welcome says otherwise, ns.
pub const DEFAULT_DEAD_MAN_NS: i64 = 2_000_000_000;

/// Where a session stands.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionState {
    /// No control stream.
    Disconnected,
    /// Hello sent, no answer yet.
    AwaitingWelcome,
    /// The coordinator accepted the Hello.
    Registered(Welcome),
    /// The coordinator refused the Hello; the probe must stop.
    Refused(Refusal),
}

/// What a message did to the session, for the shell to act on and log.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    Registered(Welcome),
    Refused(Refusal),
    ClockUpdated(ClockEstimate),
    PhaseScheduled {
        phase_id: u32,
        name: String,
    },
    /// The coordinator ordered all load stopped.
    Aborted(String),
    /// The coordinator reported an error concerning this probe.
    CoordinatorError(ErrorReport),
}

/// The probe's state machine.
pub struct ProbeSession {
    hello: Hello,
    state: SessionState,
    clock: Option<ClockEstimate>,
    last_heard_ns: Option<i64>,
    dead_man_ns: i64,
    backend: Box<dyn Backend>,
    runner: PhaseRunner,
    /// Phase starts and reports produced while disconnected, sent after the next Welcome.
    held: Vec<ProbeMessage>,
    /// The latest phase reports sent ([`RESENT_REPORTS`] at most): sent again after every
    /// Welcome, because one written to a connection that was already dead (a coordinator killed
    /// outright is noticed only at the idle timeout) is lost otherwise. The coordinator ignores a
    /// report it has, and the store keeps one per phase and node.
    sent_reports: std::collections::VecDeque<ProbeMessage>,
    /// Safety actions and early phase ends since the shell last asked, for the local log.
    notices: Vec<String>,
    /// A facility collector's readings ([`ProbeSession::for_facility`]); `None` for a node's probe.
    facility: Option<FacilityFeed>,
}

impl std::fmt::Debug for ProbeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeSession")
            .field("node", &self.hello.node_id)
            .field("state", &self.state)
            .field("clock", &self.clock)
            .field("backend", &self.backend.name())
            .finish()
    }
}

impl ProbeSession {
    /// A session that introduces itself with `hello` and loads `backend`.
    pub fn new(hello: Hello, backend: Box<dyn Backend>) -> Self {
        let runner = PhaseRunner::for_node(hello.node_id.clone());
        ProbeSession {
            hello,
            state: SessionState::Disconnected,
            clock: None,
            last_heard_ns: None,
            dead_man_ns: DEFAULT_DEAD_MAN_NS,
            backend,
            runner,
            held: Vec::new(),
            sent_reports: std::collections::VecDeque::new(),
            notices: Vec::new(),
            facility: None,
        }
    }

    /// A facility collector's session: it registers with `hello` as [`ProbeRole::Facility`], loads
    /// nothing, and sends the readings given to [`ProbeSession::push_facility`].
    pub fn for_facility(mut hello: Hello) -> Self {
        hello.role = ProbeRole::Facility;
        hello.inventory.clear();
        hello.backend = NoDevices.name().to_string();
        hello.data_plane = None;
        let mut s = ProbeSession::new(hello, Box::new(NoDevices));
        s.facility = Some(FacilityFeed::default());
        s
    }

    /// Takes facility readings stamped on the probe's clock; returns the batches to send now
    /// (none while there is no clock estimate or no registration: they wait, and go after the
    /// next Welcome). A node's probe has no facility feed and ignores them.
    pub fn push_facility(&mut self, readings: Vec<FacilityReading>) -> Vec<ProbeMessage> {
        let Some(feed) = self.facility.as_mut() else {
            return Vec::new();
        };
        feed.push(readings);
        self.cut_facility()
    }

    /// Facility readings given up so far because a bound was reached (0 for a node's probe).
    pub fn facility_dropped(&self) -> u64 {
        self.facility.as_ref().map_or(0, FacilityFeed::dropped)
    }

    fn cut_facility(&mut self) -> Vec<ProbeMessage> {
        let registered = self.registered();
        let Some(feed) = self.facility.as_mut() else {
            return Vec::new();
        };
        let batches = feed.cut(self.clock.as_ref());
        if !registered {
            return Vec::new();
        }
        batches.into_iter().map(ProbeMessage::Facility).collect()
    }

    /// A session whose fabric phases run on `fabric`; the Hello announces its data-plane address.
    pub fn with_fabric(
        mut hello: Hello,
        backend: Box<dyn Backend>,
        fabric: Box<dyn crate::fabric::FabricDriver>,
    ) -> Self {
        hello.data_plane = fabric.addr();
        let mut s = ProbeSession::new(hello, backend);
        s.runner = PhaseRunner::with_fabric(s.hello.node_id.clone(), fabric);
        s
    }

    /// A new control stream is open: returns the Hello to send first.
    pub fn connected(&mut self) -> ProbeMessage {
        self.state = SessionState::AwaitingWelcome;
        ProbeMessage::Hello(self.hello.clone())
    }

    /// The control stream is gone. Running phases go on until the dead-man interlock stops them.
    pub fn disconnected(&mut self) {
        if !matches!(self.state, SessionState::Refused(_)) {
            self.state = SessionState::Disconnected;
        }
    }

    /// The node id this session introduces itself with.
    pub fn hello_node(&self) -> &hallmark_protocol::NodeId {
        &self.hello.node_id
    }

    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// Whether an ended phase's report waits for its fabric work (see
    /// [`PhaseRunner::finishing`]): a shell that leaves keeps running the timers until it is sent.
    pub fn reports_pending(&self) -> bool {
        self.runner.finishing()
    }

    /// The latest clock estimate the coordinator sent.
    pub fn clock(&self) -> Option<ClockEstimate> {
        self.clock
    }

    /// Probe-clock instant of the last message from the coordinator (the dead-man timer's input).
    pub fn last_heard_ns(&self) -> Option<i64> {
        self.last_heard_ns
    }

    /// Safety actions and early phase ends since the last call, for the probe's own log (they
    /// also go to the coordinator, later if it is unreachable now).
    pub fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    /// Whether a phase is loading the devices.
    pub fn in_phase(&self) -> bool {
        self.runner.in_phase()
    }

    /// The phase runner (telemetry buffer, replay state).
    pub fn runner(&self) -> &PhaseRunner {
        &self.runner
    }

    /// The backend, for inspection.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The backend, to read it (tests check that an interlock really removed the load).
    pub fn backend_mut(&mut self) -> &mut dyn Backend {
        self.backend.as_mut()
    }

    fn registered(&self) -> bool {
        matches!(self.state, SessionState::Registered(_))
    }

    /// Takes one coordinator message that arrived at `now` (probe clock). Returns the messages to
    /// send back, in order, and what happened.
    pub fn handle(
        &mut self,
        msg: CoordinatorMessage,
        now: i64,
    ) -> (Vec<ProbeMessage>, Option<SessionEvent>) {
        self.last_heard_ns = Some(now);
        match msg {
            CoordinatorMessage::Welcome(w) if !self.registered() => {
                self.dead_man_ns = i64::from(w.dead_man_ms.max(100)) * 1_000_000;
                self.state = SessionState::Registered(w.clone());
                // Whatever the coordinator has not acknowledged yet, and what happened meanwhile.
                let held = std::mem::take(&mut self.held);
                let mut out: Vec<ProbeMessage> = self.sent_reports.iter().cloned().collect();
                self.remember_reports(&held);
                out.extend(held);
                out.extend(self.runner.unacked().cloned().map(ProbeMessage::Telemetry));
                if let Some(feed) = self.facility.as_mut() {
                    feed.cut(self.clock.as_ref());
                    out.extend(feed.unacked().cloned().map(ProbeMessage::Facility));
                }
                (out, Some(SessionEvent::Registered(w)))
            }
            CoordinatorMessage::Refused(r) => {
                self.state = SessionState::Refused(r.clone());
                (Vec::new(), Some(SessionEvent::Refused(r)))
            }
            CoordinatorMessage::ClockPing(ping) => {
                // Receive and send instants are both `now`: the reply leaves as soon as the shell
                // writes it, and any delay there only widens the round trip (and so the stated
                // uncertainty), it does not bias the offset.
                let pong = ClockPong {
                    seq: ping.seq,
                    t1: ping.t1,
                    t2: now,
                    t3: now,
                };
                (vec![ProbeMessage::ClockPong(pong)], None)
            }
            CoordinatorMessage::ClockEstimate(e) => {
                self.clock = Some(e);
                (self.cut_facility(), Some(SessionEvent::ClockUpdated(e)))
            }
            CoordinatorMessage::PhaseStart(p) => {
                if let Err(e) = p.pattern.validate() {
                    let report = unexpected(format!("phase {} refused: {e}", p.name));
                    return (vec![report], None);
                }
                if !(p.sample_hz > 0.0 && p.sample_hz <= 1000.0) {
                    let report = unexpected(format!(
                        "phase {} refused: sample rate {} Hz is outside (0, 1000]",
                        p.name, p.sample_hz
                    ));
                    return (vec![report], None);
                }
                let event = SessionEvent::PhaseScheduled {
                    phase_id: p.phase_id,
                    name: p.name.clone(),
                };
                self.forget_reports_of_earlier_runs(p.phase_id, p.start_at_ns);
                self.runner.schedule(p);
                (Vec::new(), Some(event))
            }
            CoordinatorMessage::PhaseStop { .. } => {
                let out = self.stop_load(now, "stopped by the coordinator");
                (out, None)
            }
            CoordinatorMessage::Abort { reason } => {
                let out = self.stop_load(now, &format!("run aborted by the coordinator: {reason}"));
                (out, Some(SessionEvent::Aborted(reason)))
            }
            CoordinatorMessage::Ack { seq } => {
                self.runner.ack(seq);
                if let Some(feed) = self.facility.as_mut() {
                    feed.ack(seq);
                }
                (Vec::new(), None)
            }
            CoordinatorMessage::Error(e) => (Vec::new(), Some(SessionEvent::CoordinatorError(e))),
            CoordinatorMessage::Heartbeat { .. } => (Vec::new(), None),
            CoordinatorMessage::FabricPrepare { phase_id } => {
                let nccl_unique_id = self.backend.nccl_unique_id().map_err(|e| e.to_string());
                (
                    vec![ProbeMessage::FabricPrepared {
                        phase_id,
                        nccl_unique_id,
                    }],
                    None,
                )
            }
            CoordinatorMessage::Welcome(_) => (
                vec![unexpected(format!(
                    "probe {} received a second Welcome",
                    self.hello.node_id
                ))],
                None,
            ),
        }
    }

    /// Stops all load now (abort, signal); the running phase ends early with `reason`.
    pub fn stop_load(&mut self, now: i64, reason: &str) -> Vec<ProbeMessage> {
        let clock = self.clock.unwrap_or(ClockEstimate {
            offset_ns: 0,
            uncertainty_ns: i64::MAX,
            rtt_ns: 0,
            measured_at_ns: 0,
        });
        let out = self.runner.stop(now, reason, &clock, self.backend.as_mut());
        self.route(out)
    }

    /// When [`ProbeSession::handle_timeout`] next has work (probe clock).
    pub fn poll_timeout(&self) -> Option<i64> {
        let runner = self.runner.poll_timeout(self.clock.as_ref());
        let dead_man = if self.runner.in_phase() {
            self.last_heard_ns.map(|t| t + self.dead_man_ns + 1)
        } else {
            None
        };
        match (runner, dead_man) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next instant the load changes by the schedule, on the probe's clock (see
    /// [`PhaseRunner::next_transition`]).
    pub fn next_transition(&self) -> Option<i64> {
        self.runner.next_transition(self.clock.as_ref())
    }

    /// Runs everything due at `now` (probe clock).
    pub fn handle_timeout(&mut self, now: i64) -> Vec<ProbeMessage> {
        let Some(clock) = self.clock else {
            return Vec::new();
        };
        let last_heard = self.last_heard_ns.unwrap_or(now);
        let out = self.runner.handle_timeout(
            now,
            &clock,
            last_heard,
            self.dead_man_ns,
            self.backend.as_mut(),
        );
        self.route(out)
    }

    /// A run numbers its phases from 0 and sends each before the last one ends. An order for a
    /// phase id already reported, starting after every report kept here has ended, is a new run's
    /// (a re-sent order of this run starts before its own report ended): the new run's coordinator
    /// has no use for the last run's reports.
    fn forget_reports_of_earlier_runs(&mut self, phase_id: u32, start_at_ns: i64) {
        let reports = || {
            self.sent_reports.iter().filter_map(|m| match m {
                ProbeMessage::PhaseReport(r) => Some(r),
                _ => None,
            })
        };
        let id_reported = reports().any(|r| r.phase_id >= phase_id);
        let all_ended_before = reports().all(|r| r.ended_at_ns < start_at_ns);
        if id_reported && all_ended_before {
            self.sent_reports.clear();
        }
    }

    /// Keeps the phase reports among `sent` to be sent again after the next Welcome (the latest
    /// [`RESENT_REPORTS`]).
    fn remember_reports(&mut self, sent: &[ProbeMessage]) {
        for m in sent {
            if matches!(m, ProbeMessage::PhaseReport(_)) {
                if self.sent_reports.len() >= RESENT_REPORTS {
                    self.sent_reports.pop_front();
                }
                self.sent_reports.push_back(m.clone());
            }
        }
    }

    /// While disconnected, telemetry waits in the runner's replay buffer and everything else is
    /// held for the next Welcome.
    fn route(&mut self, out: Vec<ProbeMessage>) -> Vec<ProbeMessage> {
        // Whatever the probe did on its own authority is logged locally too, connected or not.
        for m in &out {
            match m {
                ProbeMessage::PhaseReport(r) => {
                    if let Some(why) = &r.stopped_early {
                        self.notices
                            .push(format!("phase {} ended early: {why}", r.phase_id));
                    }
                }
                ProbeMessage::Error(e) if e.code == ErrorCode::Safety => {
                    self.notices.push(e.message.clone())
                }
                _ => {}
            }
        }
        if self.registered() {
            self.remember_reports(&out);
            return out;
        }
        for m in out {
            if !matches!(m, ProbeMessage::Telemetry(_)) {
                self.held.push(m);
            }
        }
        Vec::new()
    }
}

fn unexpected(message: String) -> ProbeMessage {
    ProbeMessage::Error(ErrorReport {
        code: ErrorCode::UnexpectedMessage,
        message,
    })
}
