//! Whole sessions of many probes against the coordinator's state machine, deterministically, under
//! a simulated clock and a simulated network with asymmetric, jittery links. No sockets, no tokio:
//! the sans-IO machines are driven directly, and every message goes through the real codec.

mod common;

use common::simnet::{Sim, MS};
use common::{labels, sim_backend};
use hallmark_coordinator::machine::Event;
use hallmark_probe::SessionState;
use hallmark_protocol::codec::{encode_frame, HEADER_LEN};
use hallmark_protocol::{NodeId, ProbeMessage, RefusalReason, PROTOCOL_VERSION};

/// Connects a standalone simulated probe whose certificate names `cert` and whose Hello says `node`.
fn connect(sim: &mut Sim, cert: &str, node: &str, rack: &str, version: u16) -> usize {
    let backend = sim_backend(node);
    let mut hello =
        hallmark_probe::hello(NodeId::new(node).unwrap(), labels(rack), backend.as_ref());
    hello.protocol_version = version;
    sim.add_probe(cert, hello, backend)
}

#[test]
fn many_probes_register_and_agree_on_time() {
    let mut sim = Sim::new(0x5eed_1234_abcd_ef01);
    let start = sim.now;
    let n = 200;
    for i in 0..n {
        let node = format!("r{:02}-n{:02}", i / 10, i % 10);
        connect(
            &mut sim,
            &node,
            &node,
            &format!("rack{:02}", i / 10),
            PROTOCOL_VERSION,
        );
    }
    sim.run_until(start + 2_000 * MS);

    assert_eq!(sim.coordinator.probes().count(), n);
    for (i, p) in sim.probes.iter().enumerate() {
        let node = NodeId::new(format!("r{:02}-n{:02}", i / 10, i % 10)).unwrap();
        let record = sim.coordinator.probe(&node).unwrap();
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
    let mut sim = Sim::new(7);
    let start = sim.now;
    let v = PROTOCOL_VERSION;
    connect(&mut sim, "n1", "n1", "rack1", v);
    sim.run_until(start + 100 * MS);
    let dup = connect(&mut sim, "n1", "n1", "rack1", v);
    let liar = connect(&mut sim, "n2", "n3", "rack1", v);
    let old = connect(&mut sim, "n4", "n4", "rack1", v + 1);
    connect(&mut sim, "n5", "n5", "rack1", v);
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
    let mut sim = Sim::new(11);
    let start = sim.now;
    let first = connect(&mut sim, "n1", "n1", "rack1", PROTOCOL_VERSION);
    sim.run_until(start + 100 * MS);
    sim.cut(first, 10 * MS);
    sim.run_until(start + 200 * MS);
    assert!(sim
        .events
        .iter()
        .any(|e| matches!(e, Event::Departed { node_id, .. } if node_id.as_str() == "n1")));
    assert_eq!(sim.coordinator.probes().count(), 0);
    sim.reconnect(first, "n1");
    sim.run_until(start + 500 * MS);
    assert_eq!(sim.coordinator.probes().count(), 1);
}

#[test]
fn garbage_and_out_of_order_messages_close_only_that_connection() {
    let mut sim = Sim::new(13);
    let start = sim.now;
    connect(&mut sim, "good", "good", "rack1", PROTOCOL_VERSION);
    sim.run_until(start + 100 * MS);
    let bad = connect(&mut sim, "bad", "bad", "rack1", PROTOCOL_VERSION);
    sim.run_until(start + 200 * MS);
    let bad_conn = sim.probes[bad].conn;
    let now = sim.now;
    sim.coordinator
        .on_payload(bad_conn, &[0xff, 0xff, 0xff, 0x01], now);
    sim.pump();
    sim.run_until(start + 400 * MS);
    assert!(sim
        .events
        .iter()
        .any(|e| matches!(e, Event::ProtocolError { conn, .. } if *conn == bad_conn)));
    let nodes: Vec<_> = sim
        .coordinator
        .probes()
        .map(|p| p.node_id.to_string())
        .collect();
    assert_eq!(nodes, ["good"]);
    // A peer whose first message is not a Hello is refused.
    sim.coordinator
        .on_connected(999, NodeId::new("early").unwrap(), "sim:early".into(), now);
    let pong = encode_frame(&ProbeMessage::ClockPong(hallmark_protocol::ClockPong {
        seq: 0,
        t1: 0,
        t2: 0,
        t3: 0,
    }))
    .unwrap();
    sim.coordinator.on_payload(999, &pong[HEADER_LEN..], now);
    let mut refused = false;
    while let Some(e) = sim.coordinator.poll_event() {
        refused |= matches!(e, Event::Refused { conn: 999, ref refusal, .. }
            if refusal.reason == RefusalReason::ExpectedHello);
    }
    assert!(refused);
}
