//! Device and fabric work never blocks the probe's session: a fabric driver and an NCCL backend
//! stand-in whose work goes on for 1.5 s after the phase's end (and whose NCCL `finish` blocks
//! while it does) leave every `handle`/`handle_timeout` call quick, so clock-sync pings are
//! answered and heartbeats heard meanwhile; the phase report follows once the work has ended.
//! The test is the shell: it reads the wall clock and feeds it to the machine.

mod common;

use common::{clock, node, phase_report, test_gpu, two_member_fabric, welcome, MS};
use hallmark_probe::fabric::FabricDriver;
use hallmark_probe::runner::PhaseRunner;
use hallmark_probe::ProbeSession;
use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{
    ClockPing, CoordinatorMessage, DataPlaneAddr, DeviceInfo, FabricFault, FabricPhase,
    FabricReport, NcclSetup, PhaseStart, ProbeMessage, Workload,
};
use hallmark_workloads::backend::{Backend, BackendError, NcclJob, NodeReading};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
/// How long the stand-ins' work goes on after it was started.
const WORK: Duration = Duration::from_millis(1500);
/// Longest any call into the machine may take (generous for a loaded machine; the work is 1.5 s).
const QUICK: Duration = Duration::from_millis(250);

fn report(message: &str) -> FabricReport {
    FabricReport {
        faults: vec![FabricFault {
            peer: None,
            message: message.into(),
        }],
        ..FabricReport::default()
    }
}

/// A data-plane driver whose phase thread runs [`WORK`] whatever the phase's window.
#[derive(Debug, Default)]
struct SlowDriver {
    done: Option<Arc<AtomicBool>>,
}

impl FabricDriver for SlowDriver {
    fn addr(&self) -> Option<DataPlaneAddr> {
        Some(DataPlaneAddr { ip: None, port: 1 })
    }
    fn begin(&mut self, _: u32, _: &FabricPhase, _: i64, _: i64) -> Result<(), String> {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(WORK);
            flag.store(true, Ordering::SeqCst);
        });
        self.done = Some(done);
        Ok(())
    }
    fn stop(&mut self) {}
    fn try_finish(&mut self) -> Option<FabricReport> {
        let done = self.done.as_ref()?.load(Ordering::SeqCst);
        done.then(|| {
            self.done = None;
            report("the slow driver's results")
        })
    }
}

/// One device; NCCL work that runs [`WORK`] from its start, and a `finish_nccl` that blocks until
/// then (as a real backend's does).
struct SlowNccl {
    inventory: Vec<DeviceInfo>,
    started: Option<Instant>,
}

impl SlowNccl {
    fn new() -> Self {
        SlowNccl {
            inventory: vec![test_gpu()],
            started: None,
        }
    }
}

impl Backend for SlowNccl {
    fn name(&self) -> &'static str {
        "slow"
    }
    fn inventory(&self) -> &[DeviceInfo] {
        &self.inventory
    }
    fn set_level(&mut self, _: u16, _: f64) -> Result<(), BackendError> {
        Ok(())
    }
    fn sample(&mut self, _: i64) -> Result<NodeReading, BackendError> {
        Ok(common::one_device(100.0, 40.0, None))
    }
    fn stop_all(&mut self) {}
    fn start_nccl(&mut self, _job: NcclJob) -> Result<(), BackendError> {
        self.started = Some(Instant::now());
        Ok(())
    }
    fn nccl_done(&self) -> bool {
        self.started.is_none_or(|t| t.elapsed() >= WORK)
    }
    fn finish_nccl(&mut self, wait: Duration) -> FabricReport {
        let Some(t) = self.started.take() else {
            return FabricReport::default();
        };
        let left = WORK.saturating_sub(t.elapsed());
        std::thread::sleep(left.min(wait));
        if left <= wait {
            report("the slow NCCL results")
        } else {
            report("NCCL threads still running")
        }
    }
}

/// A collective phase of `n1` and `n2` from 200 ms for 300 ms (coordinator clock = probe clock).
fn collective(nccl: bool) -> PhaseStart {
    PhaseStart {
        phase_id: 0,
        name: "allreduce".into(),
        workload: Workload::Collective,
        pattern: Pattern::Steady { level: 0.5 },
        start_at_ns: 200 * MS,
        duration_ms: 300,
        sample_hz: 10.0,
        fabric: Some(FabricPhase {
            nccl: nccl.then(|| NcclSetup {
                unique_id: vec![1; NcclSetup::ID_LEN],
                gpus: vec![1, 1],
            }),
            ..two_member_fabric(["n1", "n2"], 3)
        }),
        target_power_w: None,
    }
}

/// Times one call into the machine.
fn timed<T>(slowest: &mut Duration, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    *slowest = (*slowest).max(t.elapsed());
    r
}

#[test]
fn a_fabric_phase_whose_work_lingers_does_not_stall_clock_replies_or_heartbeats() {
    let backend = Box::new(SlowNccl::new());
    let hello = common::hello("n1", backend.as_ref());
    let mut s = ProbeSession::with_fabric(hello, backend, Box::new(SlowDriver::default()));
    s.connected();
    let wall = Instant::now();
    let now = || wall.elapsed().as_nanos() as i64;
    s.handle(welcome(1, 2000), now());
    s.handle(CoordinatorMessage::ClockEstimate(clock(0)), now());
    s.handle(CoordinatorMessage::PhaseStart(collective(false)), now());

    let mut slowest = Duration::ZERO;
    let (mut pongs_while_pending, mut report, mut seq) = (0, None, 0u32);
    let (mut next_ping, mut next_heartbeat) = (0i64, 0i64);
    // Bounded: 5 s of wall time in 1 ms turns.
    while wall.elapsed() < Duration::from_secs(5) && report.is_none() {
        let t = now();
        if t >= next_heartbeat {
            timed(&mut slowest, || {
                s.handle(CoordinatorMessage::Heartbeat { now_ns: t }, t)
            });
            next_heartbeat = t + 300 * MS;
        }
        if t >= next_ping {
            seq += 1;
            let pending = s.reports_pending();
            let (out, _) = timed(&mut slowest, || {
                s.handle(CoordinatorMessage::ClockPing(ClockPing { seq, t1: t }), t)
            });
            let pong = out
                .iter()
                .any(|m| matches!(m, ProbeMessage::ClockPong(p) if p.seq == seq));
            assert!(pong, "ping {seq} answered at once: {out:?}");
            if pending {
                pongs_while_pending += 1;
            }
            next_ping = t + 100 * MS;
        }
        if s.poll_timeout().is_some_and(|due| due <= now()) {
            let out = timed(&mut slowest, || s.handle_timeout(now()));
            report = phase_report(&out).cloned();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let report = report.expect("the phase report came once the driver's work ended");
    // The work began at 200 ms and runs 1.5 s: the report cannot have come before.
    assert!(wall.elapsed() >= WORK, "{:?}", wall.elapsed());
    assert_eq!(report.stopped_early, None, "no dead-man, no early end");
    assert_eq!(
        report.fabric.unwrap().faults[0].message,
        "the slow driver's results"
    );
    assert!(
        pongs_while_pending >= 5,
        "clock pings answered while the report waited: {pongs_while_pending}"
    );
    assert!(slowest < QUICK, "a call into the session took {slowest:?}");
}

#[test]
fn an_nccl_phase_whose_threads_linger_is_reported_without_blocking_the_runner() {
    let mut r = PhaseRunner::for_node(node("n1"));
    let mut b = SlowNccl::new();
    r.schedule(collective(true));
    let c = clock(0);
    let wall = Instant::now();
    let mut slowest = Duration::ZERO;
    let (mut report, mut calls_while_pending) = (None, 0);
    // Bounded: 5 s of wall time in 1 ms turns.
    while wall.elapsed() < Duration::from_secs(5) && report.is_none() {
        let t = wall.elapsed().as_nanos() as i64;
        if r.poll_timeout(Some(&c)).is_some_and(|due| due <= t) {
            let pending = r.finishing();
            let out = timed(&mut slowest, || {
                r.handle_timeout(t, &c, t, 2_000 * MS, &mut b)
            });
            if pending {
                calls_while_pending += 1;
            }
            report = phase_report(&out).cloned();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let report = report.expect("the phase report came once the NCCL threads ended");
    assert_eq!(
        report.fabric.unwrap().faults[0].message,
        "the slow NCCL results"
    );
    assert!(slowest < QUICK, "a runner call took {slowest:?}");
    assert!(calls_while_pending > 10, "{calls_while_pending}");
}
