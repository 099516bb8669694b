//! Whole runs of a simulated hall under a simulated clock: the coordinator's machine, one probe
//! machine per node with its simulated devices on shared rack loops, a simulated network, and the
//! real codec — deterministic, no sockets, no runtime. Covers scheduling and start skew, telemetry
//! accounting, the dead-man interlock, lost and reconnecting probes, and plan limits.

mod common;

use common::simnet::{Sim, MS};
use hallmark_coordinator::machine::Event;
use hallmark_coordinator::run::Outcome;
use hallmark_protocol::plan::parse_plan;
use hallmark_protocol::ProbeMessage;
use hallmark_workloads::sim::{parse_hall, HallSpec};

const S: i64 = 1_000_000_000;

/// 2 rows × 3 racks × 4 nodes × 8 GPUs; rack row2-rack02 has a third of the cooling it needs.
const HALL: &str = r#"
name = "test-hall"
seed = 3
rows = 2
racks_per_row = 3
nodes_per_rack = 4
gpus_per_node = 8

[coolant]
capacity_kw = 60

[faults]
undersized_cooling = { rack = "row2-rack02", capacity_kw = 14 }
"#;

fn plan(limits: &str) -> hallmark_protocol::plan::Plan {
    let text = format!(
        r#"
name = "sim-run"
sample_hz = 10
[expect]
nodes = 24
devices_per_node = 8
timeout_s = 30
[limits]
{limits}
[[phase]]
name = "ramp"
workload = "burn"
duration_s = 4
pattern = {{ kind = "ramp", from = 0.0, to = 1.0 }}
[[phase]]
name = "steady"
workload = "burn"
duration_s = 20
pattern = {{ kind = "steady", level = 1.0 }}
[[phase]]
name = "square"
workload = "burn"
duration_s = 4
pattern = {{ kind = "square", low = 0.2, high = 1.0, period_s = 1.0 }}
"#
    );
    parse_plan(&text, "sim-run.toml").unwrap()
}

/// A hall of probes, registered, with the run started.
fn hall_with_run(seed: u64, limits: &str) -> (Sim, HallSpec) {
    let hall = parse_hall(HALL, "test-hall.toml").unwrap();
    let mut sim = Sim::new(seed);
    let (_loops, backends) = hall.backends().unwrap();
    for (node, backend) in backends {
        let hello = hallmark_probe::hello(node.node_id.clone(), node.labels.clone(), &backend);
        sim.add_probe(node.node_id.as_str(), hello, Box::new(backend));
    }
    let now = sim.now;
    sim.coordinator.start_run("run-1".into(), plan(limits), now);
    (sim, hall)
}

fn phase_starts(sim: &Sim) -> Vec<hallmark_protocol::PhaseStart> {
    sim.events
        .iter()
        .find_map(|e| match e {
            Event::RunStarted { phases, .. } => Some(phases.clone()),
            _ => None,
        })
        .expect("the run started")
}

fn idx(sim: &Sim, node: &str) -> usize {
    sim.probes
        .iter()
        .position(|p| sim.coordinator.connection_node(p.conn).map(|n| n.as_str()) == Some(node))
        .unwrap()
}

#[test]
fn a_whole_run_is_scheduled_in_step_stored_in_full_and_the_undersized_rack_stands_out() {
    let (mut sim, _) = hall_with_run(0xfeed, "max_rack_kw = 130");
    let start = sim.now;
    sim.run_until(start + 60 * S);

    let (outcome, reason) = sim.finished().expect("the run finished");
    assert_eq!(outcome, Outcome::Complete, "{reason}");
    let phases = phase_starts(&sim);
    assert_eq!(phases.len(), 3);
    // Back to back, from a start instant in the future.
    assert_eq!(phases[1].start_at_ns, phases[0].start_at_ns + 4 * S);
    assert_eq!(phases[2].start_at_ns, phases[1].start_at_ns + 20 * S);

    // Every probe started every phase within its clock uncertainty of the scheduled instant (true
    // time), although probe clocks are up to ±10 s off.
    for p in &sim.probes {
        let unc = p.session.clock().unwrap().uncertainty_ns;
        for (at, m) in &p.sent {
            if let ProbeMessage::PhaseStarted {
                phase_id,
                actual_start_ns,
            } = m
            {
                let scheduled = phases[*phase_id as usize].start_at_ns;
                assert!(
                    (at - scheduled).abs() <= unc,
                    "started {} ns off, uncertainty {unc}",
                    at - scheduled
                );
                // Reported on the coordinator's clock through the probe's latest estimate.
                assert!(
                    (actual_start_ns - scheduled).abs() <= unc,
                    "reported {actual_start_ns} for {scheduled}"
                );
            }
        }
    }
    // 24 nodes × 8 devices × 28 s × 10 Hz, every one stored once.
    let total: usize = sim.stored.values().sum();
    assert_eq!(total, 24 * 8 * 280);
    assert_eq!(sim.duplicates, 0);
    assert!(!sim.events.iter().any(|e| matches!(e, Event::Gap { .. })));

    // Physics: the rack with a third of its cooling runs far hotter than every healthy rack.
    let hottest = |rack: &str| {
        sim.max_temp
            .iter()
            .filter(|(n, _)| n.starts_with(rack))
            .map(|(_, t)| *t)
            .fold(f32::MIN, f32::max)
    };
    let faulty = hottest("row2-rack02");
    for rack in [
        "row1-rack01",
        "row1-rack02",
        "row1-rack03",
        "row2-rack01",
        "row2-rack03",
    ] {
        assert!(
            faulty > hottest(rack) + 10.0,
            "{rack}: {} vs faulty {faulty}",
            hottest(rack)
        );
    }
}

#[test]
fn the_dead_man_stops_a_probe_whose_coordinator_falls_silent() {
    let (mut sim, _) = hall_with_run(0xdead, "");
    let start = sim.now;
    sim.run_until(start + 2 * S);
    let phases = phase_starts(&sim);
    let steady = phases[1].start_at_ns;
    sim.run_until(steady + 3 * S);
    let victim = idx(&sim, "row1-rack02-n03");
    // The coordinator falls silent for this probe (its packets stop arriving); the coordinator
    // itself only notices after the idle timeout.
    let silent_at = sim.now;
    sim.cut(victim, 10 * S);
    sim.run_until(silent_at + 2_500 * MS);

    let p = &mut sim.probes[victim];
    assert!(
        !p.session.in_phase(),
        "the phase is over for the silent probe"
    );
    // The load is really gone: the devices draw idle power.
    let probe_now = sim.now + p.offset;
    let reading = p.session.backend_mut().sample(probe_now).unwrap();
    for d in &reading.devices {
        assert!(
            d.power_w.unwrap() < 200.0,
            "device {} still draws {:?} W",
            d.device,
            d.power_w
        );
    }
    // Once it reaches the coordinator again, its report says why and when the load stopped: within
    // the dead-man interval (2 s) of the last heartbeat, which came at most 0.4 s before the silence.
    sim.reconnect(victim, "row1-rack02-n03");
    sim.run_until(silent_at + 4 * S);
    let report = sim.events.iter().find_map(|e| match e {
        Event::PhaseReport { node_id, report }
            if node_id.as_str() == "row1-rack02-n03" && report.stopped_early.is_some() =>
        {
            Some(report.clone())
        }
        _ => None,
    });
    let report = report.expect("the probe reported its phase ended early");
    assert!(
        report
            .stopped_early
            .as_deref()
            .unwrap()
            .contains("dead-man"),
        "{report:?}"
    );
    let stopped_after = report.ended_at_ns - silent_at;
    assert!(
        (1_500 * MS..=2_100 * MS).contains(&stopped_after),
        "load stopped {} ms after the silence",
        stopped_after / MS
    );
    // Everyone else is still loading.
    let other = idx(&sim, "row1-rack02-n01");
    assert!(sim.probes[other].session.in_phase());
}

#[test]
fn a_probe_killed_mid_run_is_marked_lost_and_the_run_goes_on() {
    let (mut sim, _) = hall_with_run(0xb0b, "");
    let start = sim.now;
    sim.run_until(start + 10 * S);
    let victim = idx(&sim, "row1-rack01-n02");
    sim.kill(victim, 3 * S);
    sim.run_until(start + 60 * S);

    let (outcome, reason) = sim.finished().expect("the run finished");
    assert_eq!(outcome, Outcome::Incomplete);
    assert!(reason.contains("row1-rack01-n02 was lost"), "{reason}");
    assert!(sim.events.iter().any(|e| matches!(e,
        Event::ProbeLost { node_id, .. } if node_id.as_str() == "row1-rack01-n02")));
    // The other 23 nodes ran every phase in full.
    for p in &sim.probes {
        let node = p.session.hello_node().to_string();
        if node != "row1-rack01-n02" {
            assert_eq!(sim.stored_samples(&node), 8 * 280, "{node}");
        }
    }
    assert!(sim.stored_samples("row1-rack01-n02") < 8 * 280);
}

#[test]
fn a_probe_that_reconnects_replays_what_was_not_acknowledged() {
    let (mut sim, _) = hall_with_run(0xcafe, "");
    let start = sim.now;
    sim.run_until(start + 8 * S);
    let victim = idx(&sim, "row2-rack03-n04");
    // A short outage, under the dead-man interval: the probe goes on and keeps its telemetry.
    let cut_at = sim.now;
    sim.cut(victim, 200 * MS);
    sim.run_until(cut_at + 1_200 * MS);
    sim.reconnect(victim, "row2-rack03-n04");
    sim.run_until(start + 60 * S);

    let (outcome, reason) = sim.finished().expect("the run finished");
    assert_eq!(outcome, Outcome::Complete, "{reason}");
    assert_eq!(
        sim.stored_samples("row2-rack03-n04"),
        8 * 280,
        "no sample lost"
    );
    assert!(sim
        .events
        .iter()
        .any(|e| matches!(e, Event::ProbeBack { .. })));
}

#[test]
fn a_breach_of_a_plan_limit_aborts_the_run_and_stops_every_load() {
    let (mut sim, _) = hall_with_run(0xabc, "max_rack_kw = 20");
    let start = sim.now;
    sim.run_until(start + 60 * S);
    let (outcome, reason) = sim.finished().expect("the run finished");
    assert_eq!(outcome, Outcome::Aborted);
    assert!(
        reason.contains("above the plan limit (breaker rating) of 20.0 kW"),
        "{reason}"
    );
    for p in &sim.probes {
        assert!(!p.session.in_phase());
        let aborted = p.sent.iter().any(|(_, m)| matches!(m,
            ProbeMessage::PhaseReport(r) if r.stopped_early.as_deref().is_some_and(|w| w.contains("aborted"))));
        assert!(
            aborted,
            "every probe reports its phase stopped by the abort"
        );
    }
}

#[test]
fn a_probe_away_when_a_phase_was_sent_gets_it_on_its_return() {
    let (mut sim, _) = hall_with_run(0x5a5a, "");
    let start = sim.now;
    sim.run_until(start + 3 * S);
    let square = phase_starts(&sim)[2].start_at_ns;
    let victim = idx(&sim, "row1-rack03-n01");
    // Away across the instant the coordinator sends the square wave (1.5 s before it starts), back
    // before the dead-man interval runs out.
    sim.run_until(square - 1_600 * MS);
    sim.cut(victim, 100 * MS);
    sim.run_until(square - 400 * MS);
    sim.reconnect(victim, "row1-rack03-n01");
    sim.run_until(start + 60 * S);

    let (outcome, reason) = sim.finished().expect("the run finished");
    assert_eq!(outcome, Outcome::Complete, "{reason}");
    assert_eq!(sim.stored_samples("row1-rack03-n01"), 8 * 280);
    let started: Vec<u32> = sim.probes[victim]
        .sent
        .iter()
        .filter_map(|(_, m)| match m {
            ProbeMessage::PhaseStarted { phase_id, .. } => Some(*phase_id),
            _ => None,
        })
        .collect();
    assert_eq!(started, [0, 1, 2], "every phase ran once");
}

/// Probes live across runs: their telemetry sequence goes on and they keep their latest phase
/// reports to re-send after a reconnect. A second run on the same probes, with a reconnect in it,
/// is complete: no sequence "hole" where the first run's batches were, and no report of the first
/// run taken for (or refused as) one of the second's.
#[test]
fn a_second_run_on_the_same_probes_with_a_reconnect_is_complete() {
    let (mut sim, _) = hall_with_run(0xbeef, "");
    let start = sim.now;
    sim.run_until(start + 60 * S);
    let (outcome, reason) = sim.finished().expect("the first run finished");
    assert_eq!(outcome, Outcome::Complete, "{reason}");

    let second = sim.now;
    sim.coordinator.start_run("run-2".into(), plan(""), second);
    sim.run_until(second + 8 * S);
    let victim = idx(&sim, "row2-rack03-n04");
    let cut_at = sim.now;
    sim.cut(victim, 200 * MS);
    sim.run_until(cut_at + 1_200 * MS);
    sim.reconnect(victim, "row2-rack03-n04");
    sim.run_until(second + 60 * S);

    let finished: Vec<(Outcome, String)> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::RunFinished {
                run_id,
                outcome,
                reason,
                ..
            } if run_id == "run-2" => Some((*outcome, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(finished.len(), 1, "{finished:?}");
    assert_eq!(finished[0].0, Outcome::Complete, "{}", finished[0].1);
    let lost: Vec<&Event> = sim
        .events
        .iter()
        .filter(|e| matches!(e, Event::ProbeLost { reason, .. } if reason.contains("protocol")))
        .collect();
    assert!(lost.is_empty(), "{lost:?}");
}
