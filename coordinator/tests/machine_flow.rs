//! Back-pressure on telemetry in the coordinator's state machine (sans-IO, simulated clock): a
//! probe whose telemetry waits for the store past its budget stops being read until the store
//! catches up, whatever the batches hold and whether the store keeps or refuses them, and a new or
//! resumed run holds nobody back for what the last one left.

mod common;

use common::node;
use common::sim::*;
use hallmark_coordinator::CoordinatorConfig;
use hallmark_protocol::plan::parse_plan;
use hallmark_protocol::{CoordinatorMessage, ProbeMessage};

/// A run of [`PLAN`] with a telemetry budget of 200 readings, in which a sent batches 0..7 from
/// `t` (returned with the run): reading a has stopped, once, at the batch past the budget.
fn flooded() -> (Sim, i64) {
    let config = CoordinatorConfig {
        telemetry_budget: 200,
        ..CoordinatorConfig::default()
    };
    let mut sim = Sim::started(config);
    sim.advance(2100 * MS);
    let t = sim.now;
    let mut reads = Vec::new();
    // Each batch is 2 devices × 10 ticks + 10 readings = 30: the 7th passes the budget of 200.
    for seq in 0..7 {
        sim.send(
            1,
            ProbeMessage::Telemetry(batch(seq, t + seq as i64 * 1000 * MS, 2, 10)),
        );
        while let Some(r) = sim.c.poll_read() {
            reads.push((seq, r));
        }
    }
    assert_eq!(
        reads,
        vec![(6, (1, false))],
        "reading a stops once, past its budget"
    );
    assert_eq!(sim.c.unstored_telemetry_of(&node("a")), 210);
    (sim, t)
}

/// 15.2: a probe whose unstored telemetry exceeds its budget stops being read until the store
/// catches up; the other probe's heartbeats keep flowing meanwhile.
#[test]
fn a_flood_of_unstored_telemetry_stops_reading_that_probe_only() {
    let (mut sim, t) = flooded();
    let before = sim.sent.len();
    sim.advance(1000 * MS);
    let beats_b = sim.sent[before..]
        .iter()
        .filter(|(c, m)| *c == 2 && matches!(m, CoordinatorMessage::Heartbeat { .. }))
        .count();
    assert!(beats_b >= 2, "b's heartbeats go on: {beats_b}");
    for seq in 0..3 {
        sim.c.telemetry_stored(&node("a"), seq);
    }
    assert_eq!(sim.c.poll_read(), None, "still above half the budget");
    sim.c.telemetry_stored(&node("a"), 3);
    assert_eq!(
        sim.c.poll_read(),
        Some((1, true)),
        "read again at half the budget"
    );
    assert_eq!(sim.c.unstored_telemetry_of(&node("a")), 90);
    // A store that never acknowledges (it failed) holds nobody back in the next run.
    for seq in 7..14 {
        sim.send(
            1,
            ProbeMessage::Telemetry(batch(seq, t + seq as i64 * 1000 * MS, 2, 10)),
        );
    }
    assert_eq!(sim.c.poll_read(), Some((1, false)));
    sim.c.abort_run("the store failed", sim.now);
    sim.advance(3000 * MS);
    sim.c.start_run(
        "next".into(),
        parse_plan(PLAN, "hostile.toml").unwrap(),
        sim.now,
    );
    assert_eq!(
        sim.c.poll_read(),
        Some((1, true)),
        "read again in the next run"
    );
    assert_eq!(sim.c.unstored_telemetry(), 0);
}

/// Empty batches count against the budget too: each is a record for the store.
#[test]
fn a_flood_of_empty_batches_is_held_back() {
    let config = CoordinatorConfig {
        telemetry_budget: 200,
        ..CoordinatorConfig::default()
    };
    let mut sim = Sim::started(config);
    sim.advance(2100 * MS);
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
    let (mut sim, _) = flooded();
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
    let (mut sim, _) = flooded();
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
    let (mut sim, _) = flooded();
    for seq in 0..6 {
        sim.c.telemetry_stored(&node("a"), seq);
    }
    assert_eq!(sim.c.poll_read(), Some((1, true)));
    sim.c.telemetry_refused(&node("a"), 6);
    assert_eq!(sim.c.unstored_telemetry(), 0);
    sim.pump();
    assert_eq!(sim.acks(1), vec![0, 1, 2, 3, 4, 5], "6 is not acknowledged");
}
