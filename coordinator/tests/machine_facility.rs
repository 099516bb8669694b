//! Facility collectors in the coordinator's state machine (sans-IO, simulated clock): a collector
//! registers beside the nodes without taking part in the run, its readings go to the store with
//! the run and are acknowledged once stored, between runs they are acknowledged and not kept, and
//! a node's probe sending readings or a collector sending too much is a protocol error.

mod common;

use common::node;
use common::sim::*;
use hallmark_coordinator::{CoordinatorConfig, Event};
use hallmark_protocol::facility::{MAX_FACILITY_READINGS, MAX_FACILITY_TEXT_BYTES};
use hallmark_protocol::plan::parse_plan;
use hallmark_protocol::{
    FacilityBatch, FacilityQuantity, FacilityReading, FacilitySubject, Hello, ProbeMessage,
    ProbeRole, SourceKind,
};

fn collector(id: &str) -> Hello {
    Hello {
        role: ProbeRole::Facility,
        inventory: Vec::new(),
        backend: "facility".into(),
        data_plane: None,
        ..common::hello(id, "mgmt", 0)
    }
}

fn reading(t_ns: i64, value: Option<f64>) -> FacilityReading {
    FacilityReading {
        source: "pdu-k1".into(),
        kind: SourceKind::Pdu,
        subject: FacilitySubject::Rack("k1".into()),
        point: String::new(),
        quantity: FacilityQuantity::PowerW,
        uri: "/redfish/v1/PowerEquipment/RackPDUs/k1/Metrics#/PowerWatts/Reading".into(),
        t_ns,
        value,
        device_time_ns: None,
        latency_us: Some(900),
        note: value
            .is_none()
            .then(|| "the PDU did not answer".to_string()),
    }
}

fn facility(seq: u64, readings: Vec<FacilityReading>) -> ProbeMessage {
    ProbeMessage::Facility(FacilityBatch { seq, readings })
}

fn facility_events(sim: &Sim) -> Vec<u64> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            Event::Facility { node_id, batch, .. } if node_id.as_str() == "fac" => Some(batch.seq),
            _ => None,
        })
        .collect()
}

/// The two nodes of [`PLAN`] and a collector registered; a run started.
fn run_with_collector() -> Sim {
    let mut sim = Sim::new(CoordinatorConfig::default());
    sim.connect(1, hello("a", "k1", 7001));
    sim.connect(2, hello("b", "k1", 7002));
    sim.connect(3, collector("fac"));
    sim.advance(100 * MS);
    sim.c
        .start_run("run".into(), parse_plan(PLAN, "sim.toml").unwrap(), sim.now);
    sim.pump();
    sim.advance(100 * MS);
    sim
}

#[test]
fn a_collector_registers_but_never_takes_part_in_a_run() {
    let sim = run_with_collector();
    let started = sim.events.iter().find_map(|e| match e {
        Event::RunStarted { nodes, .. } => Some(nodes.clone()),
        _ => None,
    });
    assert_eq!(
        started,
        Some(vec![node("a"), node("b")]),
        "the plan expects 2 nodes: the collector is not one of them"
    );
    let role = sim.c.probe(&node("fac")).map(|p| p.role);
    assert_eq!(role, Some(ProbeRole::Facility));
    assert!(
        sim.sent
            .iter()
            .all(|(c, m)| *c != 3
                || !matches!(m, hallmark_protocol::CoordinatorMessage::PhaseStart(_))),
        "no phase goes to the collector"
    );
}

#[test]
fn readings_during_a_run_go_to_the_store_and_are_acknowledged_once_stored() {
    let mut sim = run_with_collector();
    let t = sim.now;
    sim.send(
        3,
        facility(0, vec![reading(t, Some(40_000.0)), reading(t, None)]),
    );
    sim.send(
        3,
        facility(1, vec![reading(t + 1_000 * MS, Some(41_000.0))]),
    );
    assert_eq!(facility_events(&sim), vec![0, 1]);
    let first = sim.events.iter().find_map(|e| match e {
        Event::Facility { batch, .. } => Some(batch.clone()),
        _ => None,
    });
    assert_eq!(
        first.map(|b| b.readings[1].value),
        Some(None),
        "an absent reading stays absent"
    );
    assert!(sim.acks(3).is_empty(), "not acknowledged before stored");
    assert_eq!(sim.c.unstored_telemetry_of(&node("fac")), 3);
    sim.c.telemetry_stored(&node("fac"), 1);
    sim.pump();
    assert_eq!(sim.acks(3), vec![1]);
    assert_eq!(sim.c.unstored_telemetry_of(&node("fac")), 0);
    assert!(sim.closed.is_empty(), "nobody closed: {:?}", sim.closed);
}

#[test]
fn between_runs_readings_are_acknowledged_and_not_kept() {
    let mut sim = Sim::new(CoordinatorConfig::default());
    sim.connect(3, collector("fac"));
    sim.advance(100 * MS);
    let t = sim.now;
    sim.send(3, facility(0, vec![reading(t, Some(1.0))]));
    assert!(facility_events(&sim).is_empty());
    assert_eq!(sim.acks(3), vec![0]);
}

#[test]
fn a_nodes_probe_sending_readings_is_a_protocol_error() {
    let mut sim = run_with_collector();
    let t = sim.now;
    sim.send(1, facility(0, vec![reading(t, Some(1.0))]));
    assert!(facility_events(&sim).is_empty());
    let closed: Vec<_> = sim.closed.iter().filter(|(c, ..)| *c == 1).collect();
    assert_eq!(closed.len(), 1, "{:?}", sim.closed);
    assert!(
        closed[0].2.contains("registered as a node's probe"),
        "{}",
        closed[0].2
    );
    assert_eq!(sim.lost("a").len(), 1, "a is lost to the run");
}

#[test]
fn oversized_batches_and_texts_are_protocol_errors() {
    let mut sim = run_with_collector();
    let t = sim.now;
    let many = (0..=MAX_FACILITY_READINGS)
        .map(|_| reading(t, Some(1.0)))
        .collect();
    sim.send(3, facility(0, many));
    assert!(facility_events(&sim).is_empty());
    assert!(
        sim.closed
            .iter()
            .any(|(c, _, why)| *c == 3 && why.contains("readings; at most")),
        "{:?}",
        sim.closed
    );

    let mut sim = run_with_collector();
    let mut long = reading(t, Some(1.0));
    long.uri = "u".repeat(MAX_FACILITY_TEXT_BYTES + 1);
    sim.send(3, facility(0, vec![long]));
    assert!(facility_events(&sim).is_empty());
    assert!(
        sim.closed
            .iter()
            .any(|(c, _, why)| *c == 3 && why.contains("its uri has")),
        "{:?}",
        sim.closed
    );
    assert!(sim.lost("a").is_empty(), "the nodes go on");
}
