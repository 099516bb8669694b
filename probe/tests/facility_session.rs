//! A facility collector's session (sans-IO): it says Hello as a collector with no devices, its
//! readings wait for registration and a clock estimate, go out on the coordinator's clock in
//! numbered batches, stay until acknowledged and are sent again after a reconnect.

mod common;

use common::*;
use hallmark_probe::facility::NoDevices;
use hallmark_probe::ProbeSession;
use hallmark_protocol::{
    CoordinatorMessage, FacilityBatch, FacilityQuantity, FacilityReading, FacilitySubject,
    ProbeMessage, ProbeRole, SourceKind,
};

fn reading(t_ns: i64) -> FacilityReading {
    FacilityReading {
        source: "cdu-k".into(),
        kind: SourceKind::Cdu,
        subject: FacilitySubject::Rack("k".into()),
        point: "secondary".into(),
        quantity: FacilityQuantity::SupplyTempC,
        uri: "/redfish/v1/ThermalEquipment/CDUs/1#/SecondaryCoolantConnectors/0".into(),
        t_ns,
        value: Some(30.5),
        device_time_ns: None,
        latency_us: Some(1_200),
        note: None,
    }
}

fn batches(out: &[ProbeMessage]) -> Vec<&FacilityBatch> {
    out.iter()
        .filter_map(|m| match m {
            ProbeMessage::Facility(b) => Some(b),
            _ => None,
        })
        .collect()
}

#[test]
fn a_collector_says_hello_as_one_and_sends_its_readings_on_the_coordinators_clock() {
    let mut s = ProbeSession::for_facility(hello("fac", &NoDevices));
    let ProbeMessage::Hello(h) = s.connected() else {
        panic!("the first message is a Hello")
    };
    assert_eq!(h.role, ProbeRole::Facility);
    assert!(h.inventory.is_empty() && h.data_plane.is_none());
    assert_eq!(h.backend, "facility");

    // Before the Welcome and a clock estimate, readings wait.
    assert!(s.push_facility(vec![reading(10 * S)]).is_empty());
    let (out, _) = s.handle(welcome(1, 2000), 10 * S);
    assert!(batches(&out).is_empty(), "no clock estimate yet");
    // The probe's clock is 2 s ahead of the coordinator's.
    let (out, _) = s.handle(CoordinatorMessage::ClockEstimate(clock(2 * S)), 11 * S);
    let sent = batches(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].seq, 0);
    assert_eq!(sent[0].readings[0].t_ns, 8 * S);
    let out = s.push_facility(vec![reading(12 * S), reading(12 * S + MS)]);
    let sent = batches(&out);
    assert_eq!((sent[0].seq, sent[0].readings.len()), (1, 2));
    assert_eq!(s.facility_dropped(), 0);
}

#[test]
fn unacknowledged_batches_are_sent_again_after_a_reconnect() {
    let mut s = ProbeSession::for_facility(hello("fac", &NoDevices));
    s.connected();
    s.handle(welcome(1, 2000), S);
    s.handle(CoordinatorMessage::ClockEstimate(clock(0)), S);
    for k in 0..3 {
        s.push_facility(vec![reading(2 * S + k)]);
    }
    s.handle(CoordinatorMessage::Ack { seq: 0 }, 3 * S);
    s.disconnected();
    // Made while disconnected: kept, not sent.
    assert!(s.push_facility(vec![reading(4 * S)]).is_empty());
    s.connected();
    let (out, _) = s.handle(welcome(2, 2000), 5 * S);
    let seqs: Vec<u64> = batches(&out).iter().map(|b| b.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3], "batch 0 was acknowledged");
}

#[test]
fn a_nodes_probe_ignores_facility_readings() {
    let mut s = ProbeSession::new(hello("n1", &NoDevices), Box::new(NoDevices));
    s.connected();
    s.handle(welcome(1, 2000), S);
    s.handle(CoordinatorMessage::ClockEstimate(clock(0)), S);
    assert!(s.push_facility(vec![reading(2 * S)]).is_empty());
}
