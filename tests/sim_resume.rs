//! A coordinator that dies mid-phase and a new one that resumes the run, under the simulated clock
//! and network of `common::simnet`: the probes stop their load by the dead-man, reconnect to the new
//! coordinator, are told to stop, and replay what it had not stored; every batch each probe cut is
//! then stored exactly once, every phase report (the dead-man's early end) arrives, and the run
//! finishes INCOMPLETE saying how much was recovered.

mod common;

use common::simnet::Sim;
use hallmark_coordinator::machine::Event;
use hallmark_coordinator::run::{Outcome, ResumeFrom, ResumeNode};
use hallmark_coordinator::{Coordinator, CoordinatorConfig};
use hallmark_protocol::plan::parse_plan;
use std::collections::BTreeMap;

const S: i64 = 1_000_000_000;

const HALL: &str = r#"
name = "resume-hall"
seed = 5
rows = 1
racks_per_row = 2
nodes_per_rack = 2
gpus_per_node = 4
"#;

const PLAN: &str = r#"
name = "long"
sample_hz = 10
[expect]
nodes = 4
timeout_s = 30
[[phase]]
name = "steady"
workload = "burn"
duration_s = 60
pattern = { kind = "steady", level = 1.0 }
"#;

#[test]
fn a_resumed_run_stores_everything_the_probes_held_and_is_never_complete() {
    let hall = hallmark_workloads::sim::parse_hall(HALL, "resume-hall.toml").unwrap();
    let mut sim = Sim::new(11);
    let (_loops, backends) = hall.backends().unwrap();
    let mut racks = BTreeMap::new();
    for (node, backend) in backends {
        let hello = hallmark_probe::hello(node.node_id.clone(), node.labels.clone(), &backend);
        racks.insert(node.node_id.clone(), node.labels.rack.clone());
        sim.add_probe(node.node_id.as_str(), hello, Box::new(backend));
    }
    let plan = parse_plan(PLAN, "long.toml").unwrap();
    let t0 = sim.now;
    sim.coordinator.start_run("run-1".into(), plan.clone(), t0);
    // Well into the phase (it starts about 2 s after the probes are in).
    sim.run_until(t0 + 8 * S);
    assert!(sim.finished().is_none());
    let stored_before: usize = sim.stored.values().sum();
    assert!(stored_before > 0);

    // The coordinator dies: what was in flight to it is gone with it, and nothing is acknowledged.
    sim.coordinator = Coordinator::new(CoordinatorConfig::default());
    for i in 0..sim.probes.len() {
        sim.cut(i, 0);
    }
    sim.run_until(sim.now + 3 * S);

    // The new coordinator resumes from what the store holds.
    let mut next: BTreeMap<String, u64> = BTreeMap::new();
    for (node, seq) in sim.stored.keys() {
        let n = next.entry(node.clone()).or_default();
        *n = (*n).max(seq + 1);
    }
    let from = ResumeFrom {
        nodes: racks
            .iter()
            .map(|(node, rack)| ResumeNode {
                node: node.clone(),
                rack: rack.clone(),
                next_seq: next.get(node.as_str()).copied().unwrap_or(0),
            })
            .collect(),
    };
    let now = sim.now;
    sim.coordinator.resume_run("run-1".into(), plan, from, now);
    let nodes: Vec<String> = racks.keys().map(|n| n.to_string()).collect();
    for (i, node) in nodes.iter().enumerate() {
        sim.reconnect(i, node);
    }
    sim.run_until(now + 30 * S);

    let (outcome, reason) = sim.finished().expect("the resumed run finished");
    assert_eq!(outcome, Outcome::Incomplete, "{reason}");
    assert!(reason.contains("interrupted"), "{reason}");
    assert!(reason.contains("from 4 of 4 probes"), "{reason}");
    let recovered: u64 = reason
        .split("recovered ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{reason}"));
    assert!(recovered > 0, "{reason}");
    // Nothing measured is lost: every batch each probe cut, 0..=its last, is stored once.
    for node in &nodes {
        let seqs: Vec<u64> = sim
            .stored
            .keys()
            .filter(|(n, _)| n == node)
            .map(|(_, s)| *s)
            .collect();
        let last = *seqs.last().unwrap();
        assert_eq!(seqs, (0..=last).collect::<Vec<_>>(), "{node}");
    }
    let stored_after: usize = sim.stored.values().sum();
    assert!(stored_after > stored_before);
    // Every probe's early end (the dead-man, while it was cut off) reached the new coordinator.
    let ended_early = sim
        .events
        .iter()
        .filter(|e| {
            matches!(e, Event::PhaseReport { report, .. }
                if report.stopped_early.as_deref().is_some_and(|w| w.contains("dead-man")))
        })
        .count();
    assert_eq!(ended_early, 4);
}
