//! Back-pressure on telemetry in the coordinator's state machine (sans-IO, simulated clock),
//! beyond the flood of `machine_hostile.rs`: empty batches count against the budget, batches the
//! store refuses stop counting, and a resumed run holds nobody back for what the last one left.

mod common;

use common::node;
use common::sim::*;
use hallmark_protocol::plan::parse_plan;
use hallmark_protocol::ProbeMessage;

/// Empty batches count against the budget too: each is a record for the store.
#[test]
fn a_flood_of_empty_batches_is_held_back() {
    let mut sim = Sim::budgeted(200);
    let t = sim.now;
    for seq in 0..201 {
        sim.send(1, ProbeMessage::Telemetry(batch(seq, t, 0, 0)));
    }
    assert_eq!(sim.c.poll_read(), Some((1, false)), "reading a stops");
    assert_eq!(sim.c.unstored_telemetry_of(&node("a")), 201);
}

/// A resumed run starts afresh like a new one: the last run's unacknowledged telemetry holds
/// nobody back.
#[test]
fn a_resumed_run_reads_a_probe_the_last_run_held_back() {
    use hallmark_coordinator::run::{ResumeFrom, ResumeNode};
    let (mut sim, _) = Sim::flooded();
    sim.c.abort_run("the store failed", sim.now);
    sim.advance(3000 * MS);
    let from = ResumeFrom {
        nodes: vec![ResumeNode {
            node: node("a"),
            rack: "k1".into(),
            next_seq: 7,
        }],
    };
    let plan = parse_plan(PLAN, "hostile.toml").unwrap();
    sim.c.resume_run("earlier".into(), plan, from, sim.now);
    assert_eq!(sim.c.poll_read(), Some((1, true)), "read again");
    assert_eq!(sim.c.unstored_telemetry(), 0);
}

/// Batches the store refused before one it stored (they get no acknowledgement) stop counting
/// against the node's budget with it, and reading resumes.
#[test]
fn batches_refused_before_a_stored_one_stop_counting() {
    let (mut sim, _) = Sim::flooded();
    // The store refused 0..=4 and stored 5.
    sim.c.telemetry_stored(&node("a"), 5);
    assert_eq!(sim.c.unstored_telemetry_of(&node("a")), 30, "only 6 waits");
    assert_eq!(sim.c.poll_read(), Some((1, true)), "read again");
    sim.pump();
    assert_eq!(
        sim.acks(1),
        vec![5],
        "only the stored batch is acknowledged"
    );
}

/// A refused batch with nothing stored after it stops counting too, unacknowledged.
#[test]
fn a_refused_last_batch_stops_counting() {
    let (mut sim, _) = Sim::flooded();
    for seq in 0..6 {
        sim.c.telemetry_stored(&node("a"), seq);
    }
    assert_eq!(sim.c.poll_read(), Some((1, true)));
    sim.c.telemetry_refused(&node("a"), 6);
    assert_eq!(sim.c.unstored_telemetry(), 0);
    sim.pump();
    assert_eq!(sim.acks(1), vec![0, 1, 2, 3, 4, 5], "6 is not acknowledged");
}
