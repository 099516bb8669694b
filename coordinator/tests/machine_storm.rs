//! A registration storm against the coordinator's state machine (sans-IO, simulated clock): a
//! run that expects hundreds of nodes waits while they connect, say Hello and sync their clocks
//! in any order, and starts exactly once, when the last one has a clock estimate; one that loses a
//! node before it starts waits for its deadline and starts with the rest. The machine keeps its
//! timers indexed and counts the probes with a clock instead of re-reading every probe on each
//! input (see `machine/timers.rs`): these tests hold that bookkeeping to the behaviour a scan had,
//! through replacements and departures.

mod common;

use common::sim::*;
use hallmark_coordinator::{CoordinatorConfig, Event};
use hallmark_protocol::plan::parse_plan;

const NODES: usize = 400;

fn plan(nodes: usize, timeout_s: u32) -> String {
    format!(
        "name = \"storm\"\nsample_hz = 10\n[expect]\nnodes = {nodes}\ntimeout_s = {timeout_s}\n\
         [[phase]]\nname = \"burn\"\nworkload = \"burn\"\nduration_s = 2\n\
         pattern = {{ kind = \"steady\", level = 1.0 }}\n"
    )
}

fn started(sim: &Sim) -> Vec<(usize, usize)> {
    sim.events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::RunStarted { nodes, .. } => Some((i, nodes.len())),
            _ => None,
        })
        .collect()
}

fn registered(sim: &Sim) -> usize {
    sim.events
        .iter()
        .filter(|e| matches!(e, Event::Registered(_)))
        .count()
}

/// A run of `NODES` nodes waiting at most `timeout_s`, and then the [`storm`].
fn stormed(timeout_s: u32) -> Sim {
    let mut sim = Sim::new(CoordinatorConfig::default());
    let plan = parse_plan(&plan(NODES, timeout_s), "storm.toml").unwrap();
    sim.c.start_run("storm".into(), plan, sim.now);
    sim.pump();
    storm(&mut sim, NODES);
    sim
}

/// A storm of `NODES` probes, every fourth one reconnecting once (the same process on a new
/// connection, which replaces the old one), against a run that is already waiting for them.
fn storm(sim: &mut Sim, nodes: usize) {
    for i in 0..nodes {
        let port = 7000 + i as u16;
        sim.connect(i as u64 + 1, hello(&format!("n{i:04}"), "k1", port));
        if i % 4 == 0 {
            // Its clock burst is under way; the new connection starts it over.
            sim.advance(MS);
            sim.connect(100_000 + i as u64, hello(&format!("n{i:04}"), "k1", port));
        }
    }
}

#[test]
fn a_run_waiting_for_a_storm_starts_once_when_the_last_clock_is_known() {
    let mut sim = stormed(60);
    assert_eq!(registered(&sim), NODES + NODES / 4);
    let protocol_errors = sim
        .events
        .iter()
        .filter(|e| matches!(e, Event::ProtocolError { .. }))
        .count();
    assert_eq!(protocol_errors, 0, "{:?}", sim.closed);
    // Clock bursts run on timers; the run must start within them, long before its deadline.
    sim.advance(5_000 * MS);
    let runs = started(&sim);
    assert_eq!(runs.len(), 1, "started once: {runs:?}");
    assert_eq!(runs[0].1, NODES, "with every node");
    let first_clock_of_all = {
        let mut seen = std::collections::BTreeSet::new();
        sim.events
            .iter()
            .position(|e| match e {
                Event::ClockUpdated { node_id, .. } => {
                    seen.insert(node_id.clone());
                    seen.len() == NODES
                }
                _ => false,
            })
            .unwrap()
    };
    assert!(
        runs[0].0 > first_clock_of_all,
        "the run started at event {} before every node had a clock (event {first_clock_of_all})",
        runs[0].0
    );
}

#[test]
fn a_node_that_leaves_before_the_start_leaves_the_run_to_its_deadline() {
    let mut sim = stormed(20);
    // Node n0001 (connection 2, never replaced) goes away.
    sim.c.on_closed(2, "probe stopped", sim.now);
    sim.pump();
    sim.advance(10_000 * MS);
    assert!(started(&sim).is_empty(), "started without n0001");
    sim.advance(11_000 * MS);
    let runs = started(&sim);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        runs[0].1,
        NODES - 1,
        "started at its deadline with the rest"
    );
}

/// A heartbeat goes only to a probe that was sent nothing since the last one: a probe whose
/// telemetry is acknowledged every 300 ms gets (almost) none, one that sends nothing gets one every
/// `HEARTBEAT_NS`, and neither goes longer than two beats without a message — far inside the
/// dead-man interval the probes enforce.
#[test]
fn heartbeats_go_only_to_probes_that_heard_nothing_else() {
    use hallmark_coordinator::run::HEARTBEAT_NS;
    use hallmark_protocol::{CoordinatorMessage, ProbeMessage};
    let mut sim = Sim::in_first_phase(CoordinatorConfig::default(), PLAN);
    let t0 = sim.now;
    let mut seq = 0;
    let mut heard: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
    let mut beats = [0usize; 2];
    let mut seen = sim.sent.len();
    for step in 0..40 {
        if step % 6 == 0 {
            // a's telemetry, stored at once: an ack goes back.
            let at = sim.now;
            sim.send(1, ProbeMessage::Telemetry(batch(seq, at, 2, 3)));
            sim.c.telemetry_stored(&common::node("a"), seq);
            sim.pump();
            seq += 1;
        }
        sim.advance(50 * MS);
        for (c, m) in &sim.sent[seen..] {
            let i = (*c as usize).wrapping_sub(1);
            if i < 2 {
                heard[i].push(sim.now);
                beats[i] += usize::from(matches!(m, CoordinatorMessage::Heartbeat { .. }));
            }
        }
        seen = sim.sent.len();
    }
    for (i, times) in heard.iter().enumerate() {
        let mut last = t0;
        for &t in times {
            assert!(
                t - last <= 2 * HEARTBEAT_NS + 50 * MS,
                "probe {i} silent from {last} to {t}"
            );
            last = t;
        }
        assert!(
            sim.now - last <= 2 * HEARTBEAT_NS + 50 * MS,
            "probe {i} silent at the end"
        );
    }
    assert!(
        beats[1] >= 4,
        "b, which sends nothing, gets its beats: {beats:?}"
    );
    assert!(
        beats[0] < beats[1],
        "a, acknowledged every 300 ms, needs fewer: {beats:?}"
    );
}
