//! Whole sessions of many probes against the coordinator's state machine, deterministically, under
//! a simulated clock and a simulated network with asymmetric, jittery links. No sockets, no tokio:
//! the sans-IO machines are driven directly, and every message goes through the real codec.

use hallmark_coordinator::machine::{close_code, ConnId, Coordinator, CoordinatorConfig, Event};
use hallmark_probe::{ProbeSession, SessionState};
use hallmark_protocol::codec::{decode_frame, encode_frame, HEADER_LEN};
use hallmark_protocol::{CoordinatorMessage, Labels, NodeId, ProbeMessage, RefusalReason};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

const MS: i64 = 1_000_000;

/// A deterministic xorshift generator.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as i64
    }
}

struct SimProbe {
    conn: ConnId,
    session: ProbeSession,
    /// probe clock = coordinator clock + offset.
    offset: i64,
    out_base: i64,
    back_base: i64,
    /// Last delivery instant per direction, so each link stays in order (like a QUIC stream).
    last_out: i64,
    last_back: i64,
    closed: bool,
}

enum Delivery {
    ToCoordinator(ConnId, Vec<u8>),
    ToProbe(usize, Vec<u8>),
    Closed(ConnId),
}

struct Sim {
    now: i64,
    coordinator: Coordinator,
    probes: Vec<SimProbe>,
    queue: BinaryHeap<Reverse<(i64, u64, usize)>>,
    deliveries: Vec<Option<Delivery>>,
    seq: u64,
    rng: Rng,
    events: Vec<Event>,
}

impl Sim {
    fn new() -> Self {
        Sim {
            now: 1_700_000_000_000_000_000,
            coordinator: Coordinator::new(CoordinatorConfig::default()),
            probes: Vec::new(),
            queue: BinaryHeap::new(),
            deliveries: Vec::new(),
            seq: 0,
            rng: Rng(0x5eed_1234_abcd_ef01),
            events: Vec::new(),
        }
    }

    fn schedule(&mut self, at: i64, d: Delivery) {
        self.deliveries.push(Some(d));
        self.seq += 1;
        self.queue
            .push(Reverse((at, self.seq, self.deliveries.len() - 1)));
    }

    /// Connects a probe whose certificate names `cert_node` and whose Hello says `hello_node`.
    fn connect(&mut self, cert_node: &str, hello_node: &str, rack: &str, version: u16) -> usize {
        let idx = self.probes.len();
        let conn = idx as ConnId + 100;
        let labels = Labels {
            hall: "h1".into(),
            row: "row1".into(),
            rack: rack.into(),
        };
        let mut hello = hallmark_probe::sim_hello(NodeId::new(hello_node).unwrap(), labels, 8);
        hello.protocol_version = version;
        let session = ProbeSession::new(hello);
        let offset = self.rng.below(20_000 * MS) - 10_000 * MS;
        let out_base = 50_000 + self.rng.below(2 * MS);
        let back_base = 50_000 + self.rng.below(2 * MS);
        self.coordinator
            .on_connected(conn, NodeId::new(cert_node).unwrap(), format!("sim:{idx}"));
        let hello = session.hello();
        self.probes.push(SimProbe {
            conn,
            session,
            offset,
            out_base,
            back_base,
            last_out: 0,
            last_back: 0,
            closed: false,
        });
        self.probe_send(idx, &hello);
        idx
    }

    fn probe_send(&mut self, idx: usize, msg: &ProbeMessage) {
        let jitter = self.rng.below(300_000);
        let p = &mut self.probes[idx];
        let at = (self.now + p.out_base + jitter).max(p.last_out + 1);
        p.last_out = at;
        let frame = encode_frame(msg).unwrap();
        let conn = p.conn;
        self.schedule(
            at,
            Delivery::ToCoordinator(conn, frame[HEADER_LEN..].to_vec()),
        );
    }

    fn pump(&mut self) {
        while let Some((conn, msg)) = self.coordinator.poll_transmit() {
            let idx = (conn - 100) as usize;
            let jitter = self.rng.below(300_000);
            let p = &mut self.probes[idx];
            let at = (self.now + p.back_base + jitter).max(p.last_back + 1);
            p.last_back = at;
            let frame = encode_frame(&msg).unwrap();
            self.schedule(at, Delivery::ToProbe(idx, frame));
        }
        while let Some((conn, close)) = self.coordinator.poll_close() {
            assert_ne!(close.code, close_code::DONE);
            let at = self.now + 1;
            self.schedule(at + 10 * MS, Delivery::Closed(conn));
        }
        while let Some(e) = self.coordinator.poll_event() {
            self.events.push(e);
        }
    }

    /// Runs the simulation until `until` (coordinator clock), bounded in steps.
    fn run_until(&mut self, until: i64) {
        for _ in 0..1_000_000 {
            let next_msg = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let next_timer = self.coordinator.poll_timeout();
            let next = match (next_msg, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if next_msg == Some(next) {
                let Some(Reverse((_, _, i))) = self.queue.pop() else {
                    break;
                };
                match self.deliveries[i].take() {
                    Some(Delivery::ToCoordinator(conn, payload)) => {
                        self.coordinator.on_payload(conn, &payload, self.now)
                    }
                    Some(Delivery::ToProbe(idx, frame)) => {
                        if self.probes[idx].closed {
                            continue;
                        }
                        let msg: CoordinatorMessage = decode_frame(&frame).unwrap();
                        let probe_now = self.now + self.probes[idx].offset;
                        let (replies, _) = self.probes[idx].session.handle(msg, probe_now);
                        for r in replies {
                            self.probe_send(idx, &r);
                        }
                    }
                    Some(Delivery::Closed(conn)) => {
                        self.probes[(conn - 100) as usize].closed = true;
                        self.coordinator.on_closed(conn, "closed by coordinator");
                    }
                    None => {}
                }
            } else {
                self.coordinator.handle_timeout(self.now);
            }
            self.pump();
        }
    }
}

#[test]
fn many_probes_register_and_agree_on_time() {
    let mut sim = Sim::new();
    let start = sim.now;
    let n = 200;
    for i in 0..n {
        let node = format!("r{:02}-n{:02}", i / 10, i % 10);
        sim.connect(
            &node,
            &node,
            &format!("rack{:02}", i / 10),
            hallmark_protocol::PROTOCOL_VERSION,
        );
    }
    sim.run_until(start + 2_000 * MS);

    let probes: Vec<_> = sim.coordinator.probes().cloned().collect();
    assert_eq!(probes.len(), n);
    for (i, p) in sim.probes.iter().enumerate() {
        let record = sim
            .coordinator
            .probe(&NodeId::new(format!("r{:02}-n{:02}", i / 10, i % 10)).unwrap())
            .unwrap();
        assert_eq!(record.labels.rack, format!("rack{:02}", i / 10));
        assert_eq!(record.inventory.len(), 8);
        let est = record.clock.expect("every probe has a clock estimate");
        let err = (est.offset_ns - p.offset).abs();
        assert!(
            err <= est.uncertainty_ns,
            "probe {i}: error {err} ns above the bound {} ns",
            est.uncertainty_ns
        );
        // The probe holds the same estimate the coordinator stored.
        assert_eq!(p.session.clock(), Some(est));
        assert!(matches!(p.session.state(), SessionState::Registered(_)));
    }
    let refused = sim
        .events
        .iter()
        .filter(|e| matches!(e, Event::Refused { .. }))
        .count();
    assert_eq!(refused, 0);
}

#[test]
fn refusals_close_only_the_offending_sessions() {
    let mut sim = Sim::new();
    let start = sim.now;
    let v = hallmark_protocol::PROTOCOL_VERSION;
    sim.connect("n1", "n1", "rack1", v);
    sim.run_until(start + 100 * MS);
    let dup = sim.connect("n1", "n1", "rack1", v);
    let liar = sim.connect("n2", "n3", "rack1", v);
    let old = sim.connect("n4", "n4", "rack1", v + 1);
    sim.connect("n5", "n5", "rack1", v);
    sim.run_until(start + 1_000 * MS);

    let reasons: Vec<_> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Refused { conn, refusal, .. } => Some((*conn, refusal.reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.contains(&(
        sim.probes[dup].conn,
        RefusalReason::DuplicateNode {
            node_id: "n1".into()
        }
    )));
    assert!(reasons.contains(&(
        sim.probes[liar].conn,
        RefusalReason::NodeIdMismatch {
            claimed: "n3".into(),
            certificate: "n2".into()
        }
    )));
    assert!(reasons.contains(&(
        sim.probes[old].conn,
        RefusalReason::ProtocolVersion {
            offered: v + 1,
            supported: v
        }
    )));
    for idx in [dup, liar, old] {
        assert!(matches!(
            sim.probes[idx].session.state(),
            SessionState::Refused(_)
        ));
        assert!(sim.probes[idx].closed);
    }
    let nodes: Vec<_> = sim
        .coordinator
        .probes()
        .map(|p| p.node_id.to_string())
        .collect();
    assert_eq!(nodes, ["n1", "n5"]);
    assert_eq!(sim.coordinator.connection_count(), 2);
}

#[test]
fn a_departed_node_can_register_again() {
    let mut sim = Sim::new();
    let start = sim.now;
    let v = hallmark_protocol::PROTOCOL_VERSION;
    let first = sim.connect("n1", "n1", "rack1", v);
    sim.run_until(start + 100 * MS);
    let conn = sim.probes[first].conn;
    sim.coordinator.on_closed(conn, "connection lost");
    sim.probes[first].closed = true;
    sim.pump();
    assert!(sim
        .events
        .iter()
        .any(|e| matches!(e, Event::Departed { node_id, .. } if node_id.as_str() == "n1")));
    assert_eq!(sim.coordinator.probes().count(), 0);
    sim.connect("n1", "n1", "rack1", v);
    sim.run_until(start + 500 * MS);
    assert_eq!(sim.coordinator.probes().count(), 1);
}

#[test]
fn garbage_and_out_of_order_messages_close_only_that_connection() {
    let mut sim = Sim::new();
    let start = sim.now;
    let v = hallmark_protocol::PROTOCOL_VERSION;
    sim.connect("good", "good", "rack1", v);
    sim.run_until(start + 100 * MS);
    // A registered peer sends garbage.
    sim.connect("bad", "bad", "rack1", v);
    sim.run_until(start + 200 * MS);
    let bad_conn = sim.probes[1].conn;
    sim.coordinator
        .on_payload(bad_conn, &[0xff, 0xff, 0xff, 0x01], sim.now);
    sim.pump();
    sim.run_until(start + 400 * MS);
    assert!(sim.events.iter().any(|e| matches!(e,
        Event::ProtocolError { conn, .. } if *conn == bad_conn)));
    let nodes: Vec<_> = sim
        .coordinator
        .probes()
        .map(|p| p.node_id.to_string())
        .collect();
    assert_eq!(nodes, ["good"]);
    // A peer whose first message is not a Hello is refused.
    sim.coordinator
        .on_connected(999, NodeId::new("early").unwrap(), "sim:early".into());
    let pong = encode_frame(&ProbeMessage::ClockPong(hallmark_protocol::ClockPong {
        seq: 0,
        t1: 0,
        t2: 0,
        t3: 0,
    }))
    .unwrap();
    sim.coordinator
        .on_payload(999, &pong[HEADER_LEN..], sim.now);
    let mut refused = false;
    while let Some(e) = sim.coordinator.poll_event() {
        refused |= matches!(e, Event::Refused { conn: 999, ref refusal, .. }
            if refusal.reason == RefusalReason::ExpectedHello);
    }
    assert!(refused);
}
