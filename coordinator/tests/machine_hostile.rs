//! The coordinator's state machine against a hostile or broken probe that holds a valid node
//! certificate (sans-IO, simulated clock): a bad frame mid-run, a stalled connection that never
//! says Hello, a Hello over its bounds, reports that do not fit the run, floods of reports and errors, a stranger in a plan
//! that names its nodes. Each is refused, recorded as that probe's protocol error (the probe is
//! marked lost at once with it), and nobody else is affected; a flood of telemetry is held back.
//! More on back-pressure: `machine_flow.rs`.

mod common;

use common::node;
use common::sim::*;
use hallmark_coordinator::machine::{close_code, ConnId};
use hallmark_coordinator::run::{Outcome, ABORT_GRACE_NS, REPORT_GRACE_NS};
use hallmark_coordinator::{CoordinatorConfig, Event};
use hallmark_protocol::fabric::{CollectiveAlgorithm, CollectiveOp, CollectiveResult};
use hallmark_protocol::plan::parse_plan;
use hallmark_protocol::{CoordinatorMessage, FabricReport, LatencyPair, PhaseReport, ProbeMessage};

/// 14.3: a bad frame mid-run marks the probe lost at once with the protocol error as the reason,
/// and the run ends when the others have reported, not after the report grace.
#[test]
fn a_bad_frame_mid_run_marks_the_probe_lost_at_once() {
    let mut sim = Sim::running();
    let at = sim.now;
    sim.c.on_payload(2, &[0xff, 0xff, 0xff], at);
    sim.pump();
    let lost = sim.lost("b");
    assert_eq!(lost.len(), 1, "b is marked lost: {:?}", sim.events);
    assert_eq!(lost[0].0, at, "at once");
    assert!(lost[0].1.contains("protocol error"), "{lost:?}");
    assert!(sim
        .closed
        .iter()
        .any(|(c, code, _)| *c == 2 && *code == close_code::PROTOCOL_ERROR));
    // a reports every phase; the run finishes at its end, well before the grace runs out.
    let end = sim.end_ns();
    sim.advance(end - sim.now);
    sim.send(1, report(0, end, None));
    sim.send(1, report(1, end, Some(FabricReport::default())));
    sim.send(1, report(2, end, Some(FabricReport::default())));
    sim.advance(10 * MS);
    let finished = sim.events.iter().find_map(|e| match e {
        Event::RunFinished {
            outcome,
            reason,
            at_ns,
            ..
        } => Some((*outcome, reason.clone(), *at_ns)),
        _ => None,
    });
    let (outcome, reason, at_ns) = finished.expect("the run finished without the grace");
    assert!(at_ns < end + REPORT_GRACE_NS, "waited out the grace");
    assert_eq!(outcome, Outcome::Incomplete);
    assert!(
        reason.contains("node b was lost: protocol error"),
        "{reason}"
    );
}

/// 14.4: a connection that never says Hello is closed at the Hello deadline, with one event.
#[test]
fn a_connection_without_hello_is_closed_at_the_deadline() {
    let mut sim = Sim::new(CoordinatorConfig::default());
    sim.c
        .on_connected(9, node("mute"), "127.0.0.1:999".into(), sim.now);
    sim.advance(4900 * MS);
    assert!(sim.closed.is_empty(), "closed early: {:?}", sim.closed);
    sim.advance(200 * MS);
    assert_eq!(sim.closed.len(), 1, "{:?}", sim.closed);
    assert_eq!(sim.closed[0].1, close_code::PROTOCOL_ERROR);
    assert!(
        sim.closed[0].2.contains("no Hello within 5 s"),
        "{:?}",
        sim.closed
    );
    let errors: Vec<_> = sim
        .events
        .iter()
        .filter(|e| matches!(e, Event::ProtocolError { conn: 9, .. }))
        .collect();
    assert_eq!(errors.len(), 1, "one log line: {:?}", sim.events);
    // The closed connection is gone once the shell says so; nothing is due for it any more.
    sim.c.on_closed(9, "closed by the coordinator", sim.now);
    assert_eq!(sim.c.connection_count(), 0);
    assert_eq!(sim.c.poll_timeout(), None);
}

/// 15.3: each bad report is refused and recorded as the sender's protocol error; the other
/// probe's telemetry is stored and acknowledged as before.
#[test]
fn each_bad_report_is_that_probes_protocol_error_and_nobody_elses() {
    let t = T0 + 3000 * MS;
    let member_pair = |dst: &str| LatencyPair {
        src: node("b"),
        dst: node(dst),
        sent: 10,
        lost: 0,
        rtt_ns_hist: vec![0; 16],
    };
    let collective = |world| CollectiveResult {
        op: CollectiveOp::AllReduce,
        algorithm: CollectiveAlgorithm::Ring,
        size_bytes: 1024,
        iterations: 5,
        world,
        mean_ns: 1000,
        wrong_elements: 0,
    };
    let cases: Vec<(&str, Vec<ProbeMessage>, &str)> = vec![
        (
            "PhaseStarted of a phase not in the run",
            vec![ProbeMessage::PhaseStarted {
                phase_id: 7,
                actual_start_ns: t,
            }],
            "phase 7 is not in this run",
        ),
        (
            "PhaseReport of a phase not in the run",
            vec![report(u32::MAX, t, None)],
            "is not in this run",
        ),
        (
            "telemetry numbered near u64::MAX",
            vec![ProbeMessage::Telemetry(batch(u64::MAX, t, 2, 1))],
            "sequence number",
        ),
        (
            "a gap whose end precedes its start",
            vec![
                ProbeMessage::Telemetry(batch(0, t, 2, 10)),
                ProbeMessage::Telemetry(batch(5, t - 5000 * MS, 2, 10)),
            ],
            "before the last stored sample",
        ),
        (
            "more samples than devices × rate × interval",
            vec![ProbeMessage::Telemetry(batch(0, t, 2, 40))],
            "give at most",
        ),
        (
            "a fabric report with an inflated world",
            vec![report(
                2,
                t,
                Some(FabricReport {
                    collectives: vec![collective(99)],
                    ..FabricReport::default()
                }),
            )],
            "over 99 ranks",
        ),
        (
            "latency pairs to a non-member",
            vec![report(
                1,
                t,
                Some(FabricReport {
                    latency: vec![member_pair("a"), member_pair("stranger")],
                    ..FabricReport::default()
                }),
            )],
            "not a peer of phase mesh",
        ),
        (
            "fabric results for a phase that is not a fabric phase",
            vec![report(
                0,
                t,
                Some(FabricReport {
                    latency: vec![member_pair("a")],
                    ..FabricReport::default()
                }),
            )],
            "not a fabric phase",
        ),
    ];
    for (what, msgs, expect) in cases {
        let mut sim = Sim::running();
        // a's first batch is queued for the store before b misbehaves.
        sim.send(1, ProbeMessage::Telemetry(batch(0, t, 2, 10)));
        for m in msgs {
            sim.send(2, m);
        }
        let errors: Vec<String> = sim
            .events
            .iter()
            .filter_map(|e| match e {
                Event::ProtocolError { conn: 2, error, .. } => Some(error.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(errors.len(), 1, "{what}: refused once: {:?}", sim.events);
        assert!(errors[0].contains(expect), "{what}: {errors:?}");
        let lost = sim.lost("b");
        assert_eq!(lost.len(), 1, "{what}: b marked lost");
        assert!(lost[0].1.contains(expect), "{what}: {lost:?}");
        assert!(
            !sim.events
                .iter()
                .any(|e| matches!(e, Event::Gap { from_ns, to_ns, .. } if to_ns < from_ns)),
            "{what}: an inverted gap reached the store"
        );
        // a is untouched: its batches are stored and acknowledged, before and after.
        sim.send(1, ProbeMessage::Telemetry(batch(1, t + 1000 * MS, 2, 10)));
        sim.c.telemetry_stored(&node("a"), 0);
        sim.c.telemetry_stored(&node("a"), 1);
        sim.pump();
        assert_eq!(sim.stored("a"), vec![0, 1], "{what}");
        assert_eq!(sim.acks(1), vec![0, 1], "{what}");
        assert!(sim.lost("a").is_empty(), "{what}");
        assert!(
            !sim.events
                .iter()
                .any(|e| matches!(e, Event::RunFinished { .. })),
            "{what}: the run goes on"
        );
    }
}

/// 15.2: a probe whose unstored telemetry exceeds its budget stops being read until the store
/// catches up; the other probe keeps hearing from the coordinator (heartbeats) meanwhile.
#[test]
fn a_flood_of_unstored_telemetry_stops_reading_that_probe_only() {
    let (mut sim, t) = Sim::flooded();
    let before = sim.sent.len();
    sim.advance(1000 * MS);
    // A heartbeat goes to b unless it was sent something else since the last one (here a
    // PhaseStart): b keeps hearing from the coordinator either way.
    let to_b: Vec<_> = sim.sent[before..].iter().filter(|(c, _)| *c == 2).collect();
    assert!(
        to_b.len() >= 2,
        "b keeps hearing from the coordinator: {to_b:?}"
    );
    assert!(
        to_b.iter()
            .any(|(_, m)| matches!(m, CoordinatorMessage::Heartbeat { .. })),
        "{to_b:?}"
    );
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

/// Two probes in a run of [`PLAN`] with `limits`, its first phase running.
fn limited(limits: &str) -> Sim {
    let plan = format!("{PLAN}\n[limits]\n{limits}\n");
    Sim::in_first_phase(CoordinatorConfig::default(), &plan)
}

fn aborted(sim: &Sim) -> Option<String> {
    sim.events.iter().find_map(|e| match e {
        Event::RunFinished { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

/// A broken sensor's NaN (no reading, as the store keeps it) hides neither a hot device beside it
/// nor its rack's load, and its infinity trips no limit.
#[test]
fn readings_that_are_not_numbers_neither_hide_nor_trip_a_limit() {
    // A NaN device temperature after a hot one in the same batch.
    let mut sim = limited("max_gpu_temp_c = 90");
    let t = sim.now;
    let mut b = batch(0, t, 2, 1);
    b.samples[0].gpu_temp_c = Some(95.0);
    b.samples[1].gpu_temp_c = Some(f32::NAN);
    sim.send(1, ProbeMessage::Telemetry(b));
    sim.advance(ABORT_GRACE_NS + 10 * MS);
    let reason = aborted(&sim).expect("the hot device stops the run");
    assert!(
        reason.contains("device 0 of node a reached 95.0 °C"),
        "{reason}"
    );
    // A node's latest power a NaN: its rack still counts the reading before it.
    let mut sim = limited("max_rack_kw = 1.5");
    let t = sim.now;
    sim.send(2, ProbeMessage::Telemetry(batch(0, t, 2, 1)));
    let mut b = batch(0, t, 2, 2);
    b.node_power_w[1].1 = f32::NAN;
    sim.send(1, ProbeMessage::Telemetry(b));
    sim.advance(ABORT_GRACE_NS + 10 * MS);
    let reason = aborted(&sim).expect("the rack's load stops the run");
    assert!(reason.contains("rack k1 drew 1.8 kW"), "{reason}");
    // Infinite readings are no readings: the run goes on.
    let mut sim = limited("max_gpu_temp_c = 90\nmax_node_kw = 5\nmax_rack_kw = 5");
    let t = sim.now;
    let mut b = batch(0, t, 2, 1);
    b.samples[0].gpu_temp_c = Some(f32::INFINITY);
    b.node_power_w[0].1 = f32::INFINITY;
    sim.send(1, ProbeMessage::Telemetry(b));
    sim.advance(ABORT_GRACE_NS + 10 * MS);
    assert_eq!(aborted(&sim), None);
}

/// A Hello that lists more devices than a node may have is a protocol error.
#[test]
fn a_hello_with_too_many_devices_is_refused() {
    let mut sim = Sim::new(CoordinatorConfig::default());
    let mut h = hello("wide", "k1", 7009);
    let d = h.inventory[0].clone();
    h.inventory = vec![d; hallmark_coordinator::limits::MAX_DEVICES_PER_NODE + 1];
    sim.connect(4, h);
    assert!(sim.c.probe(&node("wide")).is_none());
    assert_eq!(sim.closed.len(), 1, "{:?}", sim.closed);
    assert_eq!(sim.closed[0].1, close_code::PROTOCOL_ERROR);
    assert!(sim.closed[0].2.contains("65 devices"), "{:?}", sim.closed);
}

/// A Hello whose software list is over its bounds is a protocol error that names the bound; one
/// within them registers with its list.
#[test]
fn a_hello_with_too_much_software_is_refused() {
    use hallmark_protocol::{SoftwareVersion, MAX_SOFTWARE_ENTRIES, MAX_SOFTWARE_TEXT_BYTES};
    let sw = |name: String, version: String| SoftwareVersion { name, version };
    let mut sim = Sim::new(CoordinatorConfig::default());
    let mut many = hello("many", "k1", 7010);
    many.software = (0..=MAX_SOFTWARE_ENTRIES)
        .map(|i| sw(format!("lib{i}"), "1".into()))
        .collect();
    sim.connect(5, many);
    let mut long = hello("long", "k1", 7011);
    long.software = vec![sw("cublas".into(), "9".repeat(MAX_SOFTWARE_TEXT_BYTES + 1))];
    sim.connect(6, long);
    let mut fine = hello("fine", "k1", 7012);
    fine.software = vec![sw("cuda_driver".into(), "13.0".into())];
    sim.connect(7, fine.clone());
    assert!(sim.c.probe(&node("many")).is_none());
    assert!(sim.c.probe(&node("long")).is_none());
    assert_eq!(sim.closed.len(), 2, "{:?}", sim.closed);
    assert!(sim.closed.iter().all(|c| c.1 == close_code::PROTOCOL_ERROR));
    assert!(
        sim.closed[0].2.contains("33 software versions; at most 32"),
        "{:?}",
        sim.closed
    );
    assert!(
        sim.closed[1].2.contains("version of 129 bytes"),
        "{:?}",
        sim.closed
    );
    let registered = sim.c.probe(&node("fine")).expect("within the bounds");
    assert_eq!(registered.software, fine.software);
}

/// 15.1: a plan that names its nodes runs only those; a registered stranger is no participant and
/// gets no phase and no fabric key.
#[test]
fn a_stranger_is_not_in_a_plan_that_names_its_nodes() {
    let plan = PLAN.replace(
        "nodes = 2\ntimeout_s = 10\n",
        "timeout_s = 10\n[expect.racks]\nk1 = [\"a\", \"b\"]\n",
    );
    let plan = parse_plan(&plan, "named.toml").unwrap();
    let mut sim = Sim::new(CoordinatorConfig::default());
    sim.connect(1, hello("a", "k1", 7001));
    sim.connect(2, hello("b", "k1", 7002));
    sim.connect(3, hello("stranger", "k1", 7003));
    sim.advance(100 * MS);
    sim.c.start_run("run".into(), plan, sim.now);
    sim.advance(8000 * MS);
    let nodes = sim.events.iter().find_map(|e| match e {
        Event::RunStarted { nodes, .. } => Some(nodes.clone()),
        _ => None,
    });
    assert_eq!(nodes, Some(vec![node("a"), node("b")]));
    for p in &sim.phases {
        if let Some(f) = &p.fabric {
            assert!(f.rank_of(&node("stranger")).is_none(), "{:?}", f.members);
        }
    }
    assert!(
        !sim.sent.iter().any(|(c, m)| *c == 3
            && matches!(
                m,
                CoordinatorMessage::PhaseStart(_) | CoordinatorMessage::Heartbeat { .. }
            )),
        "the stranger got orders"
    );
    assert!(sim
        .sent
        .iter()
        .any(|(c, m)| *c == 1 && matches!(m, CoordinatorMessage::PhaseStart(_))));
}

/// A probe that repeats its reports or floods error reports cannot fill the store's queue: a
/// phase's PhaseStarted and PhaseReport count at most `MAX_REPEATS` each (more is a protocol
/// error); error reports are cut to `MAX_ERROR_LEN` characters and `MAX_PROBE_ERRORS` per run.
#[test]
fn repeated_reports_and_error_floods_are_bounded() {
    use hallmark_coordinator::machine::{MAX_ERROR_LEN, MAX_PROBE_ERRORS};
    use hallmark_coordinator::run::MAX_REPEATS;
    use hallmark_protocol::{ErrorCode, ErrorReport};
    let mut sim = Sim::running();
    let t = sim.now;
    for _ in 0..1000 {
        sim.send(
            1,
            ProbeMessage::Error(ErrorReport {
                code: ErrorCode::Device,
                message: "x".repeat(10_000),
            }),
        );
    }
    let errors: Vec<usize> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::ProbeError { node_id, message } if node_id.as_str() == "a" => {
                Some(message.chars().count())
            }
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), MAX_PROBE_ERRORS as usize);
    assert!(
        errors.iter().all(|n| *n <= MAX_ERROR_LEN + 100),
        "{errors:?}"
    );
    for _ in 0..MAX_REPEATS {
        sim.send(2, report(0, t, None));
    }
    assert!(sim.lost("b").is_empty());
    sim.send(2, report(0, t, None));
    let lost = sim.lost("b");
    assert_eq!(
        lost.len(),
        1,
        "the 4th report of one phase is a protocol error"
    );
    assert!(lost[0].1.contains("more than 3 times"), "{lost:?}");
    let reports = sim
        .events
        .iter()
        .filter(|e| matches!(e, Event::PhaseReport { node_id, .. } if node_id.as_str() == "b"))
        .count();
    // Recorded once: a repeat (a probe re-sends its reports after every reconnect) is known.
    assert_eq!(reports, 1);
}

/// Why a probe says it stopped a phase early is cut to `MAX_ERROR_LEN` characters before it
/// reaches the run's reason (a frame may carry megabytes of it).
#[test]
fn a_long_early_stop_is_cut_in_the_runs_reason() {
    use hallmark_coordinator::machine::MAX_ERROR_LEN;
    let mut sim = Sim::running();
    let t = sim.now;
    sim.send(
        2,
        ProbeMessage::PhaseReport(PhaseReport {
            phase_id: 0,
            ended_at_ns: t,
            stopped_early: Some("x".repeat(100_000)),
            devices: Vec::new(),
            fabric: None,
        }),
    );
    let end = sim.end_ns();
    sim.advance(end + REPORT_GRACE_NS - sim.now + MS);
    let reason = sim.events.iter().find_map(|e| match e {
        Event::RunFinished { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    let reason = reason.expect("the run finished");
    assert!(
        reason.contains("node b ended phase burn early: xxx"),
        "{reason}"
    );
    assert!(
        reason.len() < MAX_ERROR_LEN + 1000,
        "{} bytes",
        reason.len()
    );
}

/// A probe that keeps coming back as a new process during the run is recorded at most
/// `MAX_PROBE_ERRORS` times, like its error reports.
#[test]
fn new_processes_coming_back_are_bounded_like_error_reports() {
    use hallmark_coordinator::machine::MAX_PROBE_ERRORS;
    let mut sim = Sim::running();
    let mut conn = 2;
    for i in 0..(MAX_PROBE_ERRORS + 50) {
        sim.c.on_closed(conn, "restarted", sim.now);
        conn = 1000 + ConnId::from(i);
        let mut h = hello("b", "k1", 7002);
        h.instance_id = 1_000_000 + u64::from(i);
        sim.connect(conn, h);
    }
    let errors = sim
        .events
        .iter()
        .filter(|e| matches!(e, Event::ProbeError { node_id, .. } if node_id.as_str() == "b"))
        .count();
    assert_eq!(errors, MAX_PROBE_ERRORS as usize);
}

/// The probe frame limit grows with the largest fabric phase of a run (a latency pair per peer)
/// and never shrinks.
#[test]
fn the_frame_limit_makes_room_for_a_latency_pair_per_peer() {
    use hallmark_coordinator::limits::{MAX_PROBE_FRAME, PAIR_WIRE_MAX};
    let mut sim = Sim::new(CoordinatorConfig::default());
    assert_eq!(sim.c.probe_frame_limit(), MAX_PROBE_FRAME);
    sim.connect(1, hello("a", "k1", 7001));
    sim.connect(2, hello("b", "k1", 7002));
    sim.connect(3, hello("c", "k1", 7003));
    sim.advance(100 * MS);
    let plan = PLAN.replace("nodes = 2", "nodes = 3");
    sim.c.start_run(
        "run".into(),
        parse_plan(&plan, "three.toml").unwrap(),
        sim.now,
    );
    sim.pump();
    assert_eq!(
        sim.c.probe_frame_limit(),
        MAX_PROBE_FRAME + 2 * PAIR_WIRE_MAX
    );
    sim.c.abort_run("over", sim.now);
    sim.advance(3000 * MS);
    assert_eq!(
        sim.c.probe_frame_limit(),
        MAX_PROBE_FRAME + 2 * PAIR_WIRE_MAX
    );
}

/// A probe re-sends its latest phase reports after every reconnect (it cannot know which arrived):
/// repeats are bounded per connection, so a flaky link never turns them into a protocol error.
#[test]
fn reports_re_sent_after_reconnects_are_not_a_flood() {
    use hallmark_coordinator::run::MAX_REPEATS;
    let mut sim = Sim::running();
    let t = sim.now;
    let mut conn = 2;
    for round in 0..3 {
        for _ in 0..MAX_REPEATS {
            sim.send(conn, report(0, t, None));
        }
        // The link drops; the same probe process (same instance id) comes back.
        sim.c.on_closed(conn, "connection lost", sim.now);
        sim.pump();
        conn = 100 + round;
        sim.connect(conn, hello("b", "k1", 7002));
    }
    sim.send(conn, report(0, t, None));
    let lost = sim.lost("b");
    assert!(
        lost.iter().all(|(_, why)| !why.contains("protocol error")),
        "{lost:?}"
    );
    let reports = sim
        .events
        .iter()
        .filter(|e| matches!(e, Event::PhaseReport { node_id, .. } if node_id.as_str() == "b"))
        .count();
    assert_eq!(reports, 1, "recorded once");
}
