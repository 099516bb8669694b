//! Sampling instants under a late sampler: every instant of a phase is either read within its own
//! period and stamped with the instant (on the coordinator's clock, inside the phase's window), or
//! recorded as a gap that says why; nothing is read late, stamped outside its phase, or lost silently.
//! Driven by hand with a controlled `now`.

mod common;

use common::{clock, test_gpu, MS, S};
use hallmark_probe::runner::PhaseRunner;
use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{ClockEstimate, DeviceInfo, PhaseStart, ProbeMessage, TelemetryBatch};
use hallmark_workloads::backend::{Backend, BackendError, NodeReading};

/// One device with constant readings; read number `fail` (0-based), if any, fails.
struct OneDevice(Vec<DeviceInfo>, Option<usize>, usize);

impl OneDevice {
    fn new() -> Self {
        OneDevice(vec![test_gpu()], None, 0)
    }
}

impl Backend for OneDevice {
    fn name(&self) -> &'static str {
        "test"
    }
    fn inventory(&self) -> &[DeviceInfo] {
        &self.0
    }
    fn set_level(&mut self, _device: u16, _level: f64) -> Result<(), BackendError> {
        Ok(())
    }
    fn sample(&mut self, _now_ns: i64) -> Result<NodeReading, BackendError> {
        self.2 += 1;
        if self.1 == Some(self.2 - 1) {
            return Err(BackendError::Unsupported("sensor bus timed out".into()));
        }
        Ok(common::one_device(500.0, 50.0, Some(1000.0)))
    }
    fn stop_all(&mut self) {}
}

fn phase(id: u32, start_at_ns: i64, duration_ms: u64) -> PhaseStart {
    common::burn(id, start_at_ns, duration_ms, Pattern::Steady { level: 1.0 })
}

/// Calls the runner at each of `instants` (probe clock) in turn, with the coordinator always heard,
/// and returns the telemetry batches it sent.
fn run_at(
    r: &mut PhaseRunner,
    b: &mut OneDevice,
    c: &ClockEstimate,
    instants: impl IntoIterator<Item = i64>,
) -> Vec<TelemetryBatch> {
    let mut out = Vec::new();
    for now in instants {
        // Bounded: a few calls per instant, as the shell does while work is due.
        for _ in 0..8 {
            if r.poll_timeout(Some(c)).is_none_or(|t| t > now) {
                break;
            }
            for m in r.handle_timeout(now, c, now, 2 * S, b) {
                if let ProbeMessage::Telemetry(batch) = m {
                    out.push(batch);
                }
            }
        }
    }
    out
}

/// The sampler runs on time for instants 0–4, then not until 330 ms after instant 5 (the task was
/// late): instants 5–7 are a gap naming the lateness, instant 8 is read and stamped at its instant.
#[test]
fn a_late_tick_is_a_gap_with_its_cause_and_the_next_instant_is_stamped_on_the_grid() {
    let (mut r, mut b) = (PhaseRunner::new(), OneDevice::new());
    let c = clock(0);
    r.schedule(phase(0, 10 * S, 2000));
    let start = 10 * S;
    let mut instants: Vec<i64> = (0..5).map(|k| start + k * 100 * MS).collect();
    instants.push(start + 830 * MS);
    instants.extend((9..20).map(|k| start + k * 100 * MS + MS));
    instants.push(start + 2 * S);
    let batches = run_at(&mut r, &mut b, &c, instants);

    let stamps: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.samples.iter().map(|s| s.t_ns))
        .collect();
    let expected: Vec<i64> = (0..20)
        .filter(|k| !(5..8).contains(k))
        .map(|k| start + k * 100 * MS)
        .collect();
    assert_eq!(
        stamps, expected,
        "each sample stamped with its instant, none read late"
    );
    let gaps: Vec<_> = batches.iter().flat_map(|b| b.gaps.iter()).collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].from_ns, start + 500 * MS);
    assert_eq!(gaps[0].to_ns, start + 800 * MS);
    assert_eq!(gaps[0].instants, 3);
    assert!(
        gaps[0].reason.contains("sampler late by 330 ms")
            && gaps[0].reason.contains("probe overloaded"),
        "{}",
        gaps[0].reason
    );
    // Every instant is accounted for: stored or in a gap.
    assert_eq!(stamps.len() as u64 + gaps[0].instants, 20);
}

/// The last instant's period passes before the sampler runs again: the phase ends, and the missed
/// instant is a gap; nothing is stamped at or after the phase's end (where the next phase begins).
#[test]
fn a_last_instant_missed_at_the_end_is_a_gap_not_a_sample_in_the_next_phase() {
    let (mut r, mut b) = (PhaseRunner::new(), OneDevice::new());
    let c = clock(3 * S);
    r.schedule(phase(0, 10 * S, 1000));
    r.schedule(phase(1, 11 * S, 1000));
    let start = 13 * S; // probe clock
    let mut instants: Vec<i64> = (0..9).map(|k| start + k * 100 * MS).collect();
    // Instant 9 (900 ms) is due; the sampler runs only 40 ms after the phase's end.
    instants.push(start + 1040 * MS);
    instants.extend((1..10).map(|k| start + S + k * 100 * MS));
    instants.push(start + 2 * S);
    let batches = run_at(&mut r, &mut b, &c, instants);

    let in_phase = |from: i64, to: i64| {
        batches
            .iter()
            .flat_map(|b| b.samples.iter())
            .filter(|s| (from..to).contains(&s.t_ns))
            .count()
    };
    assert_eq!(in_phase(10 * S, 11 * S), 9, "phase 0: instants 0–8");
    // Phase 1 started 40 ms late: its instant 0 was still read within its period.
    assert_eq!(in_phase(11 * S, 12 * S), 10, "phase 1: its own 10 instants");
    let gaps: Vec<_> = batches.iter().flat_map(|b| b.gaps.iter()).collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!((gaps[0].from_ns, gaps[0].to_ns), (10_900 * MS, 11 * S));
    assert!(
        gaps[0].reason.contains("sampler late by 140 ms") && gaps[0].reason.contains("p0"),
        "{}",
        gaps[0].reason
    );
}

/// A new clock estimate mid-phase (the coordinator sends one every 10 s) does not move samples out
/// of the phase's window on the coordinator's clock.
#[test]
fn a_new_clock_estimate_mid_phase_keeps_every_stamp_in_the_window() {
    let (mut r, mut b) = (PhaseRunner::new(), OneDevice::new());
    let c0 = clock(0);
    r.schedule(phase(0, 10 * S, 1000));
    let mut batches = run_at(&mut r, &mut b, &c0, (0..5).map(|k| 10 * S + k * 100 * MS));
    // The estimate moves by 70 ms: the probe's clock is now thought 70 ms ahead.
    let c1 = clock(70 * MS);
    batches.extend(run_at(
        &mut r,
        &mut b,
        &c1,
        (5..11).map(|k| 10 * S + k * 100 * MS + 60 * MS),
    ));
    let stamps: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.samples.iter().map(|s| s.t_ns))
        .collect();
    assert_eq!(
        stamps,
        (0..10).map(|k| 10 * S + k * 100 * MS).collect::<Vec<_>>()
    );
    assert!(batches.iter().all(|b| b.gaps.is_empty()));
}

/// A read that fails leaves its instant as a gap naming the failure, not a silent hole.
#[test]
fn a_failed_read_is_a_gap_naming_the_failure() {
    let (mut r, mut b) = (PhaseRunner::new(), OneDevice::new());
    b.1 = Some(3);
    let c = clock(0);
    r.schedule(phase(0, 10 * S, 1000));
    let batches = run_at(&mut r, &mut b, &c, (0..=10).map(|k| 10 * S + k * 100 * MS));
    let stamps: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.samples.iter().map(|s| s.t_ns))
        .collect();
    assert_eq!(stamps.len(), 9);
    assert!(!stamps.contains(&(10 * S + 300 * MS)));
    let gaps: Vec<_> = batches.iter().flat_map(|b| b.gaps.iter()).collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(
        (gaps[0].from_ns, gaps[0].to_ns, gaps[0].instants),
        (10 * S + 300 * MS, 10 * S + 400 * MS, 1)
    );
    assert!(
        gaps[0].reason.contains("sensor bus timed out"),
        "{}",
        gaps[0].reason
    );
}

/// A phase order whose instants lie at the ends of the clock's range (a coordinator's bug or a
/// hostile one) is run or ignored without an arithmetic overflow anywhere.
#[test]
fn phases_at_the_ends_of_the_clock_range_do_not_overflow() {
    let orders = [
        (i64::MIN, u64::MAX),
        (i64::MIN, 1_000),
        (i64::MAX - S, u64::MAX),
        (i64::MAX - S, 1_000),
        (-S, u64::MAX),
        (0, u64::MAX / 2),
        (0, (i64::MAX / 1_000_000) as u64 + 1),
    ];
    for (i, (start, duration_ms)) in orders.into_iter().enumerate() {
        for offset in [0, 5 * S, -5 * S] {
            let (mut r, mut b) = (PhaseRunner::new(), OneDevice::new());
            let c = clock(offset);
            r.schedule(phase(i as u32, start, duration_ms));
            for now in [0, S, 2 * S, 10 * S, i64::MAX - 1] {
                r.poll_timeout(Some(&c));
                r.next_transition(Some(&c));
                r.handle_timeout(now, &c, now, 2 * S, &mut b);
            }
            r.stop(i64::MAX, "test", &c, &mut b);
        }
    }
}
