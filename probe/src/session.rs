//! The probe's side of a control session, as a sans-IO state machine.
//!
//! The shell ([`crate::client`]) opens the control stream, sends [`ProbeSession::hello`], and then
//! feeds every coordinator message with the instant it arrived; the session answers with the
//! messages to send back and keeps what the coordinator told it (registration, clock estimate).
//! Nothing here touches a socket or reads a clock, so whole sessions can be tested under a
//! simulated clock.

use hallmark_protocol::{
    ClockEstimate, ClockPong, CoordinatorMessage, ErrorCode, ErrorReport, Hello, ProbeMessage,
    Refusal, Welcome,
};

/// Where a session stands.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionState {
    /// Hello sent, no answer yet.
    AwaitingWelcome,
    /// The coordinator accepted the Hello.
    Registered(Welcome),
    /// The coordinator refused the Hello; the session is over.
    Refused(Refusal),
}

/// What a message did to the session, for the shell to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    Registered(Welcome),
    Refused(Refusal),
    ClockUpdated(ClockEstimate),
    /// The coordinator ordered all load stopped.
    Aborted(String),
    /// The coordinator reported an error concerning this probe.
    CoordinatorError(ErrorReport),
}

/// The probe's control-session state machine.
#[derive(Debug)]
pub struct ProbeSession {
    hello: Hello,
    state: SessionState,
    clock: Option<ClockEstimate>,
    /// Probe-clock instant of the last message from the coordinator (the dead-man timer's input).
    last_heard_ns: Option<i64>,
}

impl ProbeSession {
    /// A new session that will introduce itself with `hello`.
    pub fn new(hello: Hello) -> Self {
        ProbeSession {
            hello,
            state: SessionState::AwaitingWelcome,
            clock: None,
            last_heard_ns: None,
        }
    }

    /// The first message to send on a new control stream.
    pub fn hello(&self) -> ProbeMessage {
        ProbeMessage::Hello(self.hello.clone())
    }

    /// Where the session stands.
    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// The latest clock estimate the coordinator sent.
    pub fn clock(&self) -> Option<ClockEstimate> {
        self.clock
    }

    /// Probe-clock instant of the last message from the coordinator.
    pub fn last_heard_ns(&self) -> Option<i64> {
        self.last_heard_ns
    }

    /// Takes one coordinator message that arrived at `now` (probe clock). Returns the messages to
    /// send back, in order, and what happened.
    pub fn handle(
        &mut self,
        msg: CoordinatorMessage,
        now: i64,
    ) -> (Vec<ProbeMessage>, Option<SessionEvent>) {
        self.last_heard_ns = Some(now);
        let registered = matches!(self.state, SessionState::Registered(_));
        match msg {
            CoordinatorMessage::Welcome(w) if !registered => {
                self.state = SessionState::Registered(w.clone());
                (Vec::new(), Some(SessionEvent::Registered(w)))
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
                (Vec::new(), Some(SessionEvent::ClockUpdated(e)))
            }
            CoordinatorMessage::Abort { reason } => {
                (Vec::new(), Some(SessionEvent::Aborted(reason)))
            }
            CoordinatorMessage::Error(e) => (Vec::new(), Some(SessionEvent::CoordinatorError(e))),
            CoordinatorMessage::Heartbeat { .. } | CoordinatorMessage::Ack { .. } => {
                (Vec::new(), None)
            }
            other => {
                let what = match other {
                    CoordinatorMessage::Welcome(_) => "a second Welcome",
                    CoordinatorMessage::PhaseStart(_) => {
                        "PhaseStart: this probe version runs no phases yet"
                    }
                    CoordinatorMessage::PhaseStop { .. } => {
                        "PhaseStop: this probe version runs no phases yet"
                    }
                    _ => "an unexpected message",
                };
                let report = ErrorReport {
                    code: ErrorCode::UnexpectedMessage,
                    message: format!("probe {} received {what}", self.hello.node_id),
                };
                (vec![ProbeMessage::Error(report)], None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallmark_protocol::{ClockPing, Labels, NodeId, RefusalReason, PROTOCOL_VERSION};

    fn hello() -> Hello {
        Hello {
            protocol_version: PROTOCOL_VERSION,
            node_id: NodeId::new("n1").unwrap(),
            labels: Labels {
                hall: "h".into(),
                row: "r".into(),
                rack: "k".into(),
            },
            inventory: vec![],
            backend: "sim".into(),
            hallmark_version: "0".into(),
        }
    }

    #[test]
    fn registers_answers_pings_and_keeps_the_estimate() {
        let mut s = ProbeSession::new(hello());
        assert!(matches!(s.hello(), ProbeMessage::Hello(_)));
        let w = Welcome {
            protocol_version: PROTOCOL_VERSION,
            coordinator_version: "0".into(),
            session_id: 9,
            dead_man_ms: 2000,
        };
        let (out, ev) = s.handle(CoordinatorMessage::Welcome(w.clone()), 10);
        assert!(out.is_empty());
        assert_eq!(ev, Some(SessionEvent::Registered(w.clone())));
        assert_eq!(s.state(), &SessionState::Registered(w));

        let (out, _) = s.handle(
            CoordinatorMessage::ClockPing(ClockPing { seq: 4, t1: 100 }),
            500,
        );
        assert_eq!(
            out,
            vec![ProbeMessage::ClockPong(ClockPong {
                seq: 4,
                t1: 100,
                t2: 500,
                t3: 500
            })]
        );
        let e = ClockEstimate {
            offset_ns: 399,
            uncertainty_ns: 1,
            rtt_ns: 2,
            measured_at_ns: 100,
        };
        s.handle(CoordinatorMessage::ClockEstimate(e), 600);
        assert_eq!(s.clock(), Some(e));
        assert_eq!(s.last_heard_ns(), Some(600));
    }

    #[test]
    fn a_refusal_ends_the_session() {
        let mut s = ProbeSession::new(hello());
        let r = Refusal {
            reason: RefusalReason::DuplicateNode {
                node_id: "n1".into(),
            },
            message: "already connected".into(),
        };
        let (_, ev) = s.handle(CoordinatorMessage::Refused(r.clone()), 1);
        assert_eq!(ev, Some(SessionEvent::Refused(r.clone())));
        assert_eq!(s.state(), &SessionState::Refused(r));
    }

    #[test]
    fn unexpected_messages_are_reported_back() {
        let mut s = ProbeSession::new(hello());
        let (out, _) = s.handle(CoordinatorMessage::PhaseStop { phase_id: 1 }, 1);
        match out.as_slice() {
            [ProbeMessage::Error(e)] => {
                assert_eq!(e.code, ErrorCode::UnexpectedMessage);
                assert!(e.message.contains("PhaseStop"), "{}", e.message);
            }
            other => panic!("expected one error report, got {other:?}"),
        }
    }
}
