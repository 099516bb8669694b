//! The phase runner and the probe session on their own: sampling instants, batches, replay, and the
//! interlocks, driven by hand with a test backend whose readings the test sets.

mod common;

use common::{burn as phase, clock, test_gpu, MS, S};
use hallmark_probe::runner::{PhaseRunner, MAX_UNACKED_BATCHES, SHUTDOWN_MARGIN_C};
use hallmark_probe::{ProbeSession, SessionEvent, SessionState};
use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{ClockEstimate, CoordinatorMessage, DeviceInfo, ErrorCode, ProbeMessage};
use hallmark_workloads::backend::{Backend, BackendError, DeviceReading, NodeReading};

/// Two devices whose temperature the test sets; records the levels it is given.
struct TestBackend {
    inventory: Vec<DeviceInfo>,
    levels: Vec<f64>,
    temp_c: f64,
    stopped: usize,
}

impl TestBackend {
    fn new() -> Self {
        let dev = |index| DeviceInfo {
            index,
            uuid: format!("GPU-{index}"),
            power_limit_w: Some(1000.0),
            idle_power_w: Some(100.0),
            slowdown_temp_c: Some(88.0),
            shutdown_temp_c: Some(95.0),
            max_operating_temp_c: Some(85.0),
            ..test_gpu()
        };
        TestBackend {
            inventory: vec![dev(0), dev(1)],
            levels: vec![0.0; 2],
            temp_c: 40.0,
            stopped: 0,
        }
    }
}

impl Backend for TestBackend {
    fn name(&self) -> &'static str {
        "test"
    }
    fn inventory(&self) -> &[DeviceInfo] {
        &self.inventory
    }
    fn set_level(&mut self, device: u16, level: f64) -> Result<(), BackendError> {
        self.levels[device as usize] = level;
        Ok(())
    }
    fn sample(&mut self, _now_ns: i64) -> Result<NodeReading, BackendError> {
        let devices = self
            .levels
            .iter()
            .enumerate()
            .map(|(i, l)| DeviceReading {
                device: i as u16,
                power_w: Some(100.0 + 900.0 * l),
                energy_j: None,
                gpu_temp_c: Some(if i == 1 { self.temp_c } else { 40.0 }),
                mem_temp_c: None,
                sm_clock_mhz: Some(1980),
                util_pct: Some(l * 100.0),
                throttle_reasons: 0,
                shut_down: false,
            })
            .collect();
        Ok(NodeReading {
            devices,
            node_power_w: Some(3000.0),
        })
    }
    fn stop_all(&mut self) {
        self.stopped += 1;
        self.levels.iter_mut().for_each(|l| *l = 0.0);
    }
}

/// Runs the runner to `until` (probe clock), returning every message with the instant it came.
fn drive(
    r: &mut PhaseRunner,
    b: &mut TestBackend,
    c: &ClockEstimate,
    mut now: i64,
    until: i64,
    last_heard: impl Fn(i64) -> i64,
) -> Vec<(i64, ProbeMessage)> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let Some(t) = r.poll_timeout(Some(c)) else {
            break;
        };
        if t > until {
            break;
        }
        now = now.max(t);
        for m in r.handle_timeout(now, c, last_heard(now), 2 * S, b) {
            out.push((now, m));
        }
    }
    out
}

#[test]
fn a_phase_samples_on_its_grid_batches_every_second_and_reports() {
    let (mut r, mut b) = (PhaseRunner::new(), TestBackend::new());
    let c = clock(5 * S); // probe clock 5 s ahead of the coordinator's
    r.schedule(phase(
        0,
        100 * S,
        3000,
        Pattern::Ramp { from: 0.0, to: 1.0 },
    ));
    let out = drive(&mut r, &mut b, &c, 0, 200 * S, |now| now);

    let started: Vec<_> = out
        .iter()
        .filter_map(|(at, m)| match m {
            ProbeMessage::PhaseStarted {
                actual_start_ns, ..
            } => Some((*at, *actual_start_ns)),
            _ => None,
        })
        .collect();
    // Started at the coordinator's instant, on the probe's own clock.
    assert_eq!(started, [(105 * S, 100 * S)]);
    let batches: Vec<_> = out
        .iter()
        .filter_map(|(_, m)| match m {
            ProbeMessage::Telemetry(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(batches.len(), 3, "one batch per second of samples");
    assert_eq!(batches.iter().map(|b| b.seq).collect::<Vec<_>>(), [0, 1, 2]);
    let instants: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.samples.iter().filter(|s| s.device == 0).map(|s| s.t_ns))
        .collect();
    // 30 instants: start + k × 100 ms on the coordinator's clock, the end instant excluded.
    assert_eq!(instants.len(), 30);
    for (k, t) in instants.iter().enumerate() {
        assert_eq!(*t, 100 * S + k as i64 * 100 * MS);
    }
    // The ramp's level reached the devices.
    let last = batches[2].samples.iter().rfind(|s| s.device == 1).unwrap();
    assert!(last.util_pct.unwrap() > 90.0);
    match out.last() {
        Some((at, ProbeMessage::PhaseReport(rep))) => {
            assert_eq!(*at, 108 * S);
            assert_eq!(rep.ended_at_ns, 103 * S);
            assert_eq!(rep.stopped_early, None);
        }
        other => panic!("expected the phase report last, got {other:?}"),
    }
    assert!(!r.in_phase());
    assert_eq!(r.unacked().count(), 3);
    r.ack(1);
    assert_eq!(r.unacked().map(|b| b.seq).collect::<Vec<_>>(), [2]);
}

/// The shell wakes precisely only for the load's transitions (a phase's start and end), not for
/// every sampling instant.
#[test]
fn the_next_transition_is_a_phase_start_or_end_never_a_sampling_instant() {
    let (mut r, mut b) = (PhaseRunner::new(), TestBackend::new());
    let c = clock(5 * S);
    assert_eq!(r.next_transition(Some(&c)), None);
    r.schedule(phase(0, S, 1000, Pattern::Steady { level: 1.0 }));
    r.schedule(phase(1, 3 * S, 1000, Pattern::Steady { level: 1.0 }));
    assert_eq!(r.next_transition(None), None, "no clock: no instant");
    assert_eq!(r.next_transition(Some(&c)), Some(6 * S));
    assert_eq!(r.poll_timeout(Some(&c)), Some(6 * S));
    r.handle_timeout(6 * S, &c, 6 * S, 2 * S, &mut b);
    assert!(r.in_phase());
    // The next timer is the second sampling instant; the next transition the phase's end.
    assert_eq!(r.poll_timeout(Some(&c)), Some(6 * S + 100 * MS));
    assert_eq!(r.next_transition(Some(&c)), Some(7 * S));
    drive(&mut r, &mut b, &c, 6 * S, 7 * S, |now| now);
    assert!(!r.in_phase());
    assert_eq!(r.next_transition(Some(&c)), Some(8 * S), "the next start");
}

#[test]
fn a_phase_sent_twice_runs_once() {
    let (mut r, mut b) = (PhaseRunner::new(), TestBackend::new());
    let c = clock(0);
    r.schedule(phase(0, S, 1000, Pattern::Steady { level: 1.0 }));
    r.schedule(phase(0, S, 1000, Pattern::Steady { level: 1.0 }));
    let out = drive(&mut r, &mut b, &c, 0, 5 * S, |now| now);
    let reports = out
        .iter()
        .filter(|(_, m)| matches!(m, ProbeMessage::PhaseReport(_)))
        .count();
    assert_eq!(reports, 1);
    // Sent again after it ran (a reconnect): still not run again.
    r.schedule(phase(0, S, 1000, Pattern::Steady { level: 1.0 }));
    assert_eq!(r.poll_timeout(Some(&c)), None);
}

#[test]
fn a_hot_device_loses_its_load_and_the_others_carry_on() {
    let (mut r, mut b) = (PhaseRunner::new(), TestBackend::new());
    let c = clock(0);
    b.temp_c = 95.0 - SHUTDOWN_MARGIN_C + 0.1;
    r.schedule(phase(0, S, 1000, Pattern::Steady { level: 1.0 }));
    let out = drive(&mut r, &mut b, &c, 0, S + 500 * MS, |now| now);
    let safety: Vec<_> = out
        .iter()
        .filter_map(|(_, m)| match m {
            ProbeMessage::Error(e) if e.code == ErrorCode::Safety => Some(e.message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(safety.len(), 1, "reported once: {safety:?}");
    assert!(safety[0].contains("device 1"), "{}", safety[0]);
    assert_eq!(
        b.levels,
        [1.0, 0.0],
        "device 1 unloaded, device 0 still at full load"
    );
}

#[test]
fn the_dead_man_stops_everything_when_the_coordinator_is_silent() {
    let (mut r, mut b) = (PhaseRunner::new(), TestBackend::new());
    let c = clock(0);
    r.schedule(phase(0, S, 60_000, Pattern::Steady { level: 1.0 }));
    // The coordinator's last word came at 3 s.
    let out = drive(&mut r, &mut b, &c, 0, 20 * S, |now| now.min(3 * S));
    let (at, report) = out
        .iter()
        .find_map(|(at, m)| match m {
            ProbeMessage::PhaseReport(rep) => Some((*at, rep.clone())),
            _ => None,
        })
        .expect("the phase ends");
    assert!(report.stopped_early.unwrap().contains("dead-man"));
    // At the first sample instant after 2 s of silence.
    assert!((5 * S..=5 * S + 100 * MS).contains(&at), "stopped at {at}");
    assert_eq!(b.stopped, 1);
    assert_eq!(b.levels, [0.0, 0.0]);
}

#[test]
fn the_load_ends_with_its_phase_and_a_next_phase_sets_its_own() {
    let (mut r, mut b) = (PhaseRunner::new(), TestBackend::new());
    let c = clock(0);
    r.schedule(phase(0, S, 1000, Pattern::Steady { level: 1.0 }));
    drive(&mut r, &mut b, &c, 0, S + 500 * MS, |now| now);
    assert_eq!(b.levels, [1.0, 1.0], "loaded during the phase");
    drive(&mut r, &mut b, &c, S + 500 * MS, 10 * S, |now| now);
    assert_eq!(b.levels, [0.0, 0.0], "no load after the phase's end");
    assert_eq!(b.stopped, 0, "a normal end, no stop");

    // Back to back: the second phase's level holds from its start.
    r.schedule(phase(1, 20 * S, 1000, Pattern::Steady { level: 1.0 }));
    r.schedule(phase(2, 21 * S, 1000, Pattern::Steady { level: 0.5 }));
    drive(&mut r, &mut b, &c, 10 * S, 21 * S + 500 * MS, |now| now);
    assert_eq!(b.levels, [0.5, 0.5]);
    drive(&mut r, &mut b, &c, 21 * S + 500 * MS, 30 * S, |now| now);
    assert_eq!(b.levels, [0.0, 0.0]);
}

#[test]
fn the_replay_buffer_is_bounded_and_counts_what_it_drops() {
    let (mut r, mut b) = (PhaseRunner::new(), TestBackend::new());
    let c = clock(0);
    let seconds = MAX_UNACKED_BATCHES as u64 + 5;
    r.schedule(phase(0, S, seconds * 1000, Pattern::Steady { level: 0.5 }));
    drive(&mut r, &mut b, &c, 0, (seconds as i64 + 2) * S, |now| now);
    assert_eq!(r.unacked().count(), MAX_UNACKED_BATCHES);
    assert_eq!(r.dropped_batches(), 5);
    assert_eq!(r.unacked().next().unwrap().seq, 5, "the oldest went first");
}

fn session() -> ProbeSession {
    let backend = Box::new(TestBackend::new());
    let hello = common::hello("n1", backend.as_ref());
    ProbeSession::new(hello, backend)
}

fn welcome() -> CoordinatorMessage {
    common::welcome(1, 2000)
}

#[test]
fn a_session_keeps_its_phase_and_telemetry_across_a_reconnect() {
    let mut s = session();
    assert!(
        matches!(s.connected(), ProbeMessage::Hello(h) if h.backend == "test" && h.inventory.len() == 2)
    );
    let (_, ev) = s.handle(welcome(), 0);
    assert!(matches!(ev, Some(SessionEvent::Registered(_))));
    s.handle(CoordinatorMessage::ClockEstimate(clock(0)), 0);
    s.handle(
        CoordinatorMessage::PhaseStart(phase(0, S, 10_000, Pattern::Steady { level: 1.0 })),
        10,
    );
    // Heartbeats keep it going for 2.5 s, then the connection drops.
    let mut now = 0;
    let mut sent = 0;
    for hb in 0..6 {
        let until = hb * 500 * MS;
        while let Some(t) = s.poll_timeout().filter(|t| *t <= until) {
            now = t;
            sent += s.handle_timeout(now).len();
        }
        s.handle(CoordinatorMessage::Heartbeat { now_ns: until }, until);
    }
    assert!(s.in_phase());
    assert!(sent > 0);
    s.disconnected();
    assert_eq!(s.state(), &SessionState::Disconnected);
    // While disconnected nothing is returned for sending, but the phase goes on until the dead-man.
    let mut quiet = 0;
    while let Some(t) = s.poll_timeout().filter(|t| *t <= 6 * S) {
        now = t;
        quiet += s.handle_timeout(now).len();
    }
    assert_eq!(quiet, 0);
    assert!(!s.in_phase(), "the dead-man ended the phase");
    // After the next Welcome: what happened meanwhile, then every unacknowledged batch.
    s.connected();
    let (replay, _) = s.handle(welcome(), now);
    assert!(
        matches!(replay.first(), Some(ProbeMessage::PhaseReport(r)) if r.stopped_early.is_some())
    );
    let seqs: Vec<u64> = replay
        .iter()
        .filter_map(|m| match m {
            ProbeMessage::Telemetry(b) => Some(b.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert!(seqs.len() >= 4, "{seqs:?}");
}

#[test]
fn a_phase_with_a_bad_pattern_is_refused_with_a_report() {
    let mut s = session();
    s.connected();
    s.handle(welcome(), 0);
    let (out, ev) = s.handle(
        CoordinatorMessage::PhaseStart(phase(0, S, 1000, Pattern::Steady { level: 2.0 })),
        0,
    );
    assert!(ev.is_none());
    assert!(matches!(&out[..], [ProbeMessage::Error(e)] if e.message.contains("refused")));
}
