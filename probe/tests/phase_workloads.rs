//! What the phase runner does beside load levels: the backend's kernel for a memory-bandwidth
//! phase, power targets for a target-power phase, and the fabric work of latency and collective
//! phases (started at the phase's start with the right window, stopped on an abort, its report in
//! the phase report; a probe without a data plane says so instead of measuring nothing silently).

mod common;

use common::{node, phase_report, test_gpu, two_member_fabric, MS, S};
use hallmark_probe::fabric::FabricDriver;
use hallmark_probe::runner::PhaseRunner;
use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{
    ClockEstimate, DataPlaneAddr, DeviceInfo, FabricPhase, FabricReport, NcclSetup, PhaseStart,
    ProbeMessage, Workload,
};
use hallmark_workloads::backend::{
    Backend, BackendError, DeviceReading, Kernel, NcclJob, NodeReading,
};
use std::sync::{Arc, Mutex};

/// What the fake backend and driver were asked to do, in order.
#[derive(Debug, Default)]
struct Log(Vec<String>);

type Shared = Arc<Mutex<Log>>;

fn log(l: &Shared, s: String) {
    l.lock().unwrap().0.push(s);
}

struct RecordingBackend {
    inventory: Vec<DeviceInfo>,
    log: Shared,
}

impl RecordingBackend {
    fn new(log: Shared) -> Self {
        RecordingBackend {
            inventory: vec![test_gpu()],
            log,
        }
    }
}

impl Backend for RecordingBackend {
    fn name(&self) -> &'static str {
        "test"
    }
    fn inventory(&self) -> &[DeviceInfo] {
        &self.inventory
    }
    fn set_level(&mut self, device: u16, level: f64) -> Result<(), BackendError> {
        log(&self.log, format!("level {device} {level:.2}"));
        Ok(())
    }
    fn sample(&mut self, _now_ns: i64) -> Result<NodeReading, BackendError> {
        Ok(NodeReading {
            devices: vec![DeviceReading {
                device: 0,
                power_w: None,
                energy_j: None,
                gpu_temp_c: None,
                mem_temp_c: None,
                sm_clock_mhz: None,
                util_pct: None,
                throttle_reasons: 0,
                shut_down: false,
            }],
            node_power_w: None,
        })
    }
    fn stop_all(&mut self) {
        log(&self.log, "stop_all".into());
    }
    fn set_kernel(&mut self, kernel: Kernel) -> Result<(), BackendError> {
        log(&self.log, format!("kernel {kernel:?}"));
        Ok(())
    }
    fn set_power_target(&mut self, device: u16, watts: Option<f64>) -> Result<(), BackendError> {
        log(&self.log, format!("target {device} {watts:?}"));
        Ok(())
    }
    fn start_nccl(&mut self, job: NcclJob) -> Result<(), BackendError> {
        let window = job.end.duration_since(job.start);
        let (first, count) = job.setup.ranks_of(job.member).unwrap_or((0, 0));
        log(
            &self.log,
            format!(
                "nccl start member={} ranks={first}+{count} world={} window={}ms",
                job.member,
                job.setup.world(),
                window.as_millis()
            ),
        );
        Ok(())
    }
    fn stop_nccl(&mut self) {
        log(&self.log, "nccl stop".into());
    }
    fn finish_nccl(&mut self, _wait: std::time::Duration) -> FabricReport {
        log(&self.log, "nccl finish".into());
        FabricReport {
            faults: vec![hallmark_protocol::FabricFault {
                peer: None,
                message: "from the backend's NCCL".into(),
            }],
            ..FabricReport::default()
        }
    }
}

#[derive(Debug)]
struct FakeDriver {
    log: Shared,
}

impl FabricDriver for FakeDriver {
    fn addr(&self) -> Option<DataPlaneAddr> {
        None
    }
    fn begin(
        &mut self,
        phase_id: u32,
        phase: &FabricPhase,
        late_ns: i64,
        duration_ns: i64,
    ) -> Result<(), String> {
        log(
            &self.log,
            format!(
                "begin {phase_id} members={} late={}ms duration={}ms",
                phase.members.len(),
                late_ns / MS,
                duration_ns / MS
            ),
        );
        Ok(())
    }
    fn stop(&mut self) {
        log(&self.log, "fabric stop".into());
    }
    fn try_finish(&mut self) -> Option<FabricReport> {
        log(&self.log, "finish".into());
        Some(FabricReport {
            faults: vec![hallmark_protocol::FabricFault {
                peer: None,
                message: "from the fake driver".into(),
            }],
            ..FabricReport::default()
        })
    }
}

fn clock() -> ClockEstimate {
    common::clock(0)
}

fn phase(workload: Workload, duration_ms: u64) -> PhaseStart {
    let fabric = matches!(workload, Workload::Latency | Workload::Collective)
        .then(|| two_member_fabric(["a", "b"], 9));
    PhaseStart {
        phase_id: 7,
        name: "p".into(),
        target_power_w: (workload == Workload::TargetPower).then_some(600.0),
        workload,
        pattern: Pattern::Steady { level: 0.5 },
        start_at_ns: S,
        duration_ms,
        sample_hz: 10.0,
        fabric,
    }
}

/// Drives the runner from 0 to `until`, with the coordinator heard from all along.
fn drive(r: &mut PhaseRunner, b: &mut dyn Backend, until: i64) -> Vec<ProbeMessage> {
    let c = clock();
    let mut out = Vec::new();
    let mut now = 0;
    for _ in 0..10_000 {
        let Some(t) = r.poll_timeout(Some(&c)) else {
            break;
        };
        if t > until {
            break;
        }
        now = now.max(t);
        out.extend(r.handle_timeout(now, &c, now, 2 * S, b));
    }
    out
}

fn report(out: &[ProbeMessage]) -> &hallmark_protocol::PhaseReport {
    phase_report(out).expect("a phase report")
}

#[test]
fn a_fabric_phase_runs_on_the_driver_from_its_start_to_its_end() {
    let l = Shared::default();
    let mut r = PhaseRunner::with_fabric(node("a"), Box::new(FakeDriver { log: l.clone() }));
    let mut b = RecordingBackend::new(l.clone());
    r.schedule(phase(Workload::Collective, 1000));
    let out = drive(&mut r, &mut b, 3 * S);
    let rep = report(&out);
    let fabric = rep.fabric.as_ref().expect("the fabric report");
    assert_eq!(fabric.faults[0].message, "from the fake driver");
    let log = l.lock().unwrap().0.clone();
    let begin = log
        .iter()
        .position(|s| s.starts_with("begin 7 members=2 late=0ms duration=1000ms"));
    let finish = log.iter().position(|s| s == "finish");
    assert!(begin.is_some() && finish > begin, "{log:?}");
    // The devices carry the pattern's level meanwhile (fabric under load).
    assert!(log.contains(&"level 0 0.50".to_string()), "{log:?}");
}

#[test]
fn an_abort_stops_the_fabric_work_and_still_reports_it() {
    let l = Shared::default();
    let mut r = PhaseRunner::with_fabric(node("a"), Box::new(FakeDriver { log: l.clone() }));
    let mut b = RecordingBackend::new(l.clone());
    r.schedule(phase(Workload::Latency, 10_000));
    drive(&mut r, &mut b, 2 * S);
    let out = r.stop(2 * S, "run aborted", &clock(), &mut b);
    let rep = report(&out);
    assert_eq!(rep.stopped_early.as_deref(), Some("run aborted"));
    assert!(rep.fabric.is_some());
    let log = l.lock().unwrap().0.clone();
    let stop = log.iter().position(|s| s == "fabric stop");
    let finish = log.iter().position(|s| s == "finish");
    assert!(stop.is_some() && finish > stop, "{log:?}");
}

#[test]
fn a_probe_without_a_data_plane_reports_why_it_measured_nothing() {
    let l = Shared::default();
    let mut r = PhaseRunner::new();
    let mut b = RecordingBackend::new(l);
    r.schedule(phase(Workload::Latency, 500));
    let out = drive(&mut r, &mut b, 3 * S);
    let fabric = report(&out).fabric.as_ref().expect("a fabric report");
    assert!(fabric.latency.is_empty());
    assert!(
        fabric.faults[0].message.contains("no data plane"),
        "{:?}",
        fabric.faults
    );
}

#[test]
fn memory_bandwidth_and_target_power_phases_set_up_the_backend_and_restore_it() {
    let l = Shared::default();
    let mut r = PhaseRunner::new();
    let mut b = RecordingBackend::new(l.clone());
    r.schedule(phase(Workload::MemoryBandwidth, 300));
    let out = drive(&mut r, &mut b, 2 * S);
    assert!(report(&out).fabric.is_none());
    let log = std::mem::take(&mut l.lock().unwrap().0);
    assert_eq!(
        log.first().map(String::as_str),
        Some("kernel MemoryBandwidth")
    );
    assert_eq!(
        log.last().map(String::as_str),
        Some("kernel Gemm"),
        "{log:?}"
    );

    let mut p = phase(Workload::TargetPower, 300);
    p.phase_id = 8;
    p.start_at_ns = 3 * S;
    r.schedule(p);
    drive(&mut r, &mut b, 5 * S);
    let log = std::mem::take(&mut l.lock().unwrap().0);
    // Level 0.5 of a 600 W target, then the target released at the end.
    assert!(log.contains(&"target 0 Some(300.0)".to_string()), "{log:?}");
    assert!(!log.iter().any(|s| s.starts_with("level 0 0.5")), "{log:?}");
    assert_eq!(
        log.last().map(String::as_str),
        Some("target 0 None"),
        "{log:?}"
    );
}

/// A backend with only the GEMM burn and no power control (the trait's defaults).
struct PlainBackend(RecordingBackend);

impl Backend for PlainBackend {
    fn name(&self) -> &'static str {
        "plain"
    }
    fn inventory(&self) -> &[DeviceInfo] {
        self.0.inventory()
    }
    fn set_level(&mut self, device: u16, level: f64) -> Result<(), BackendError> {
        self.0.set_level(device, level)
    }
    fn sample(&mut self, now_ns: i64) -> Result<NodeReading, BackendError> {
        self.0.sample(now_ns)
    }
    fn stop_all(&mut self) {
        self.0.stop_all()
    }
}

#[test]
fn a_workload_the_backend_cannot_run_leaves_the_devices_unloaded_and_says_why_once() {
    for workload in [Workload::MemoryBandwidth, Workload::TargetPower] {
        let l = Shared::default();
        let mut r = PhaseRunner::new();
        let mut b = PlainBackend(RecordingBackend::new(l.clone()));
        r.schedule(phase(workload.clone(), 1000));
        let c = clock();
        let mut out = Vec::new();
        for k in 0..40 {
            out.extend(r.handle_timeout(k * 100 * MS, &c, k * 100 * MS, 2 * S, &mut b));
        }
        let errors: Vec<_> = out
            .iter()
            .filter_map(|m| match m {
                ProbeMessage::Error(e) => Some(e.message.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(errors.len(), 1, "{workload:?}: {errors:?}");
        assert!(
            errors[0].contains("the plain backend cannot run phase p"),
            "{errors:?}"
        );
        let rep = report(&out);
        assert!(rep
            .stopped_early
            .as_deref()
            .unwrap_or("")
            .contains("cannot run"));
        let log = l.lock().unwrap().0.clone();
        assert!(
            log.iter()
                .filter(|s| s.starts_with("level"))
                .all(|s| s == "level 0 0.00"),
            "{workload:?}: {log:?}"
        );
    }
}

#[test]
fn an_nccl_phase_runs_on_the_backends_gpus_not_on_the_data_plane() {
    let l = Shared::default();
    // This probe is member "b", the second of two: its ranks follow the first member's 8.
    let mut r = PhaseRunner::with_fabric(node("b"), Box::new(FakeDriver { log: l.clone() }));
    let mut b = RecordingBackend::new(l.clone());
    let mut p = phase(Workload::Collective, 1000);
    if let Some(f) = p.fabric.as_mut() {
        f.nccl = Some(NcclSetup {
            unique_id: vec![1; NcclSetup::ID_LEN],
            gpus: vec![8, 4],
        });
    }
    r.schedule(p);
    let out = drive(&mut r, &mut b, 3 * S);
    let fabric = report(&out).fabric.as_ref().expect("a fabric report");
    assert_eq!(fabric.faults[0].message, "from the backend's NCCL");
    let log = l.lock().unwrap().0.clone();
    assert!(
        log.contains(&"nccl start member=1 ranks=8+4 world=12 window=1000ms".to_string()),
        "{log:?}"
    );
    assert!(log.contains(&"nccl finish".to_string()), "{log:?}");
    assert!(
        !log.iter().any(|s| s.starts_with("begin")),
        "not on the data plane: {log:?}"
    );

    // An abort stops the NCCL work before the report is collected.
    let mut p = phase(Workload::Collective, 10_000);
    p.phase_id = 9;
    p.start_at_ns = 4 * S;
    if let Some(f) = p.fabric.as_mut() {
        f.nccl = Some(NcclSetup {
            unique_id: vec![1; NcclSetup::ID_LEN],
            gpus: vec![8, 4],
        });
    }
    r.schedule(p);
    drive(&mut r, &mut b, 5 * S);
    l.lock().unwrap().0.clear();
    r.stop(5 * S, "aborted", &clock(), &mut b);
    let log = l.lock().unwrap().0.clone();
    let stop = log.iter().position(|s| s == "nccl stop");
    let finish = log.iter().position(|s| s == "nccl finish");
    assert!(stop.is_some() && finish > stop, "{log:?}");
}

#[test]
fn a_backend_without_gpus_answers_a_request_for_an_nccl_id_with_the_reason() {
    use hallmark_probe::ProbeSession;
    use hallmark_protocol::{CoordinatorMessage, Labels, PROTOCOL_VERSION};
    let l = Shared::default();
    let hello = hallmark_protocol::Hello {
        protocol_version: PROTOCOL_VERSION,
        node_id: node("a"),
        labels: Labels {
            hall: "h".into(),
            row: "r".into(),
            rack: "k".into(),
        },
        inventory: Vec::new(),
        backend: "plain".into(),
        hallmark_version: "0".into(),
        instance_id: 1,
        data_plane: None,
        role: hallmark_protocol::ProbeRole::Node,
        software: Vec::new(),
    };
    let mut s = ProbeSession::new(hello, Box::new(PlainBackend(RecordingBackend::new(l))));
    let (out, _) = s.handle(CoordinatorMessage::FabricPrepare { phase_id: 2 }, 0);
    match out.as_slice() {
        [ProbeMessage::FabricPrepared {
            phase_id: 2,
            nccl_unique_id: Err(why),
        }] => assert!(why.contains("no GPUs for NCCL"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// A fabric driver whose work never ends.
#[derive(Debug)]
struct StuckDriver(Shared);

impl FabricDriver for StuckDriver {
    fn addr(&self) -> Option<DataPlaneAddr> {
        None
    }
    fn begin(&mut self, _: u32, _: &FabricPhase, _: i64, _: i64) -> Result<(), String> {
        Ok(())
    }
    fn stop(&mut self) {
        log(&self.0, "fabric stop".into());
    }
    fn try_finish(&mut self) -> Option<FabricReport> {
        None
    }
}

/// NCCL threads that never end.
struct StuckNccl(RecordingBackend);

impl Backend for StuckNccl {
    fn name(&self) -> &'static str {
        "stuck"
    }
    fn inventory(&self) -> &[DeviceInfo] {
        self.0.inventory()
    }
    fn set_level(&mut self, device: u16, level: f64) -> Result<(), BackendError> {
        self.0.set_level(device, level)
    }
    fn sample(&mut self, now_ns: i64) -> Result<NodeReading, BackendError> {
        self.0.sample(now_ns)
    }
    fn stop_all(&mut self) {}
    fn start_nccl(&mut self, job: NcclJob) -> Result<(), BackendError> {
        self.0.start_nccl(job)
    }
    fn stop_nccl(&mut self) {
        self.0.stop_nccl()
    }
    fn nccl_done(&self) -> bool {
        false
    }
    fn finish_nccl(&mut self, wait: std::time::Duration) -> FabricReport {
        self.0.finish_nccl(wait)
    }
}

/// Fabric work (on the driver or on NCCL threads) that outlives its phase is asked to stop 1.5 s
/// after the phase's end, and the phase is reported without it 2 s after its end.
#[test]
fn fabric_work_that_never_ends_is_stopped_and_then_given_up() {
    for nccl in [false, true] {
        let l = Shared::default();
        let mut r = PhaseRunner::with_fabric(node("a"), Box::new(StuckDriver(l.clone())));
        let mut b = StuckNccl(RecordingBackend::new(l.clone()));
        let mut p = phase(Workload::Collective, 1000);
        if nccl {
            if let Some(f) = p.fabric.as_mut() {
                f.nccl = Some(NcclSetup {
                    unique_id: vec![1; NcclSetup::ID_LEN],
                    gpus: vec![1, 1],
                });
            }
        }
        r.schedule(p);
        // The phase runs from 1 s to 2 s.
        let stop = if nccl { "nccl stop" } else { "fabric stop" };
        let stopped = |l: &Shared| l.lock().unwrap().0.iter().any(|s| s == stop);
        let out = drive(&mut r, &mut b, 3_400 * MS);
        assert!(phase_report(&out).is_none() && r.finishing(), "nccl {nccl}");
        assert!(!stopped(&l), "nccl {nccl}: not asked to stop before 3.5 s");
        let out = drive(&mut r, &mut b, 3_600 * MS);
        assert!(phase_report(&out).is_none(), "nccl {nccl}");
        assert!(stopped(&l), "nccl {nccl}: asked to stop from 3.5 s");
        let out = drive(&mut r, &mut b, 4_100 * MS);
        let fabric = report(&out).fabric.as_ref().expect("a fabric report");
        let expected = if nccl {
            "from the backend's NCCL"
        } else {
            "the fabric thread did not end within 2 s of the phase's end; its results are lost"
        };
        assert_eq!(fabric.faults[0].message, expected, "nccl {nccl}");
        assert!(!r.finishing());
    }
}
