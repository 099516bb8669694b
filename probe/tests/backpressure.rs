//! Back-pressure holds back only telemetry: a stand-in coordinator over loopback QUIC stops reading
//! the probe's control stream (as the real one does while its store catches up, with a receive
//! window small enough that the probe's writes stall within the first second of the phase) for
//! longer than the dead-man interval and past the phase's end, while it keeps sending heartbeats.
//! The probe must still hear them (no dead-man stop), answer a clock ping when it comes, end the
//! phase's load on time, and, once the coordinator reads again, deliver every batch without a
//! hole and the phase report.

mod common;

use common::{clock, hello, test_gpu, welcome, MS};
use hallmark_probe::{ProbeHandle, ProbeOptions};
use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{
    ClockPing, CoordinatorMessage, DeviceInfo, PhaseReport, PhaseStart, ProbeMessage,
    TelemetryBatch, Workload,
};
use hallmark_transport::clock::WallClock;
use hallmark_transport::framed::{FramedRecv, FramedSend};
use hallmark_transport::pki::Ca;
use hallmark_transport::tls::{self, Identity, TransportOptions};
use hallmark_workloads::backend::{Backend, BackendError, NodeReading};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEAD_MAN_MS: u32 = 2000;
const PHASE_MS: u64 = 3000;
const SAMPLE_HZ: f64 = 50.0;
/// The coordinator reads nothing from the probe for this long after the phase's end (more than
/// the dead-man interval after the probe's writes stalled).
const HOLD_AFTER_END: Duration = Duration::from_millis(1500);

/// Load changes as the probe made them: (when, level; `None` for "all load stopped").
type LoadLog = Arc<Mutex<Vec<(Instant, Option<f64>)>>>;

/// One device that records every load change.
struct Recording {
    inventory: Vec<DeviceInfo>,
    log: LoadLog,
}

impl Backend for Recording {
    fn name(&self) -> &'static str {
        "recording"
    }
    fn inventory(&self) -> &[DeviceInfo] {
        &self.inventory
    }
    fn set_level(&mut self, _: u16, level: f64) -> Result<(), BackendError> {
        self.log.lock().unwrap().push((Instant::now(), Some(level)));
        Ok(())
    }
    fn sample(&mut self, _: i64) -> Result<NodeReading, BackendError> {
        Ok(common::one_device(500.0, 50.0, None))
    }
    fn stop_all(&mut self) {
        self.log.lock().unwrap().push((Instant::now(), None));
    }
}

/// When the load last went from on to off (level 0 or all stopped) after it was on.
fn load_off_at(log: &LoadLog) -> Option<Instant> {
    let log = log.lock().unwrap();
    let on = log.iter().position(|(_, l)| l.is_some_and(|l| l > 0.0))?;
    log.iter()
        .skip(on)
        .find(|(_, l)| l.is_none_or(|l| l == 0.0))
        .map(|(t, _)| *t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_held_back_by_back_pressure_keeps_its_phase_and_interlocks_on_time() {
    let ca = Ca::generate().unwrap();
    let c = ca.issue_coordinator(&[]).unwrap();
    let coordinator = Identity::from_pem(ca.cert_pem(), &c.cert_pem, &c.key_pem).unwrap();
    let n = ca.issue_node(&common::node("n1")).unwrap();
    let node_id = Identity::from_pem(ca.cert_pem(), &n.cert_pem, &n.key_pem).unwrap();
    // A receive window of 2 KiB: one second of telemetry (50 samples) does not fit.
    let transport = TransportOptions {
        stream_receive_window: 2048,
        receive_window: 4096,
        max_bidi_streams: 1,
        max_uni_streams: 0,
        ..TransportOptions::default()
    };
    let server = tls::server_config(&coordinator, &transport).unwrap();
    let endpoint = quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();

    let log = LoadLog::default();
    let backend = Box::new(Recording {
        inventory: vec![test_gpu()],
        log: log.clone(),
    });
    let opts = ProbeOptions::new(addr.to_string(), hello("n1", backend.as_ref()));
    let wall = WallClock::new();
    let probe = ProbeHandle::spawn(&node_id, opts, backend).unwrap();

    let limit = Duration::from_secs(10);
    let conn = tokio::time::timeout(limit, endpoint.accept())
        .await
        .unwrap()
        .unwrap()
        .await
        .unwrap();
    let (send, recv) = tokio::time::timeout(limit, conn.accept_bi())
        .await
        .unwrap()
        .unwrap();
    let (mut send, mut recv) = (FramedSend::new(send), FramedRecv::new(recv));
    let first: Option<ProbeMessage> = recv.recv().await.unwrap();
    assert!(matches!(first, Some(ProbeMessage::Hello(_))), "{first:?}");

    let start_at = wall.now_ns() + 500 * MS;
    let phase_end = Instant::now() + Duration::from_millis(500 + PHASE_MS);
    let phase = PhaseStart {
        phase_id: 0,
        name: "held".into(),
        workload: Workload::Burn,
        pattern: Pattern::Steady { level: 1.0 },
        start_at_ns: start_at,
        duration_ms: PHASE_MS,
        sample_hz: SAMPLE_HZ,
        fabric: None,
        target_power_w: None,
    };
    for m in [
        welcome(1, DEAD_MAN_MS),
        CoordinatorMessage::ClockEstimate(clock(0)),
        CoordinatorMessage::PhaseStart(phase),
    ] {
        send.send(&m).await.unwrap();
    }

    // Heartbeats every 250 ms for as long as the test runs (bounded: 60 of them), and 3 s in
    // (2.5 s into the phase, the probe's writes long stalled) a clock ping.
    let heartbeats = tokio::spawn(async move {
        for i in 0..60 {
            let now_ns = WallClock::new().now_ns();
            let beat = CoordinatorMessage::Heartbeat { now_ns };
            if send.send(&beat).await.is_err() {
                break;
            }
            if i == 12 {
                let ping = CoordinatorMessage::ClockPing(ClockPing { seq: 1, t1: now_ns });
                if send.send(&ping).await.is_err() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        send
    });

    // Read nothing until well after the phase's end: the probe's writes are held.
    tokio::time::sleep_until((phase_end + HOLD_AFTER_END).into()).await;
    let off = load_off_at(&log).unwrap_or_else(|| {
        let log = log.lock().unwrap();
        panic!(
            "the load was still on {:?} after the phase's end while the probe was held back ({} \
             level changes, the last {:?} before the end)",
            HOLD_AFTER_END,
            log.len(),
            log.last()
                .map(|(t, _)| phase_end.saturating_duration_since(*t))
        )
    });
    assert!(
        off <= phase_end + Duration::from_millis(500),
        "the load went off {:?} after the phase's end",
        off.saturating_duration_since(phase_end)
    );

    // Read again: every batch arrives in order and the report says the phase ran to its end.
    let (mut batches, mut report): (Vec<TelemetryBatch>, Option<PhaseReport>) = (Vec::new(), None);
    let mut pong = None;
    let until = tokio::time::Instant::now() + limit;
    let expected = (PHASE_MS as f64 / 1000.0 * SAMPLE_HZ) as u64;
    let covered = |b: &[TelemetryBatch]| -> u64 {
        b.iter()
            .map(|b| b.samples.len() as u64 + b.gaps.iter().map(|g| g.instants).sum::<u64>())
            .sum()
    };
    // Bounded by `until`.
    while report.is_none() || pong.is_none() || covered(&batches) < expected {
        let m = tokio::time::timeout_at(until, recv.recv::<ProbeMessage>())
            .await
            .expect("the held messages arrive once the coordinator reads again")
            .unwrap()
            .unwrap();
        match m {
            ProbeMessage::Telemetry(b) => batches.push(b),
            ProbeMessage::PhaseReport(r) => report = Some(r),
            ProbeMessage::ClockPong(p) => pong = Some(p),
            _ => {}
        }
    }
    let report = report.unwrap();
    assert_eq!(report.stopped_early, None, "the heartbeats were heard");
    // The ping was answered when it came, not when the coordinator read again (seconds later).
    let pong = pong.unwrap();
    assert_eq!(pong.seq, 1);
    assert!(
        (pong.t2 - pong.t1).abs() < 500 * MS,
        "answered {} ms after it was sent",
        (pong.t2 - pong.t1) / MS
    );
    assert_eq!(covered(&batches), expected, "every sampling instant once");
    let seqs: Vec<u64> = batches.iter().map(|b| b.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no hole: {seqs:?}"
    );

    heartbeats.abort();
    conn.close(0u32.into(), b"done");
    tokio::time::timeout(limit, probe.shutdown())
        .await
        .unwrap()
        .unwrap();
    endpoint.close(0u32.into(), b"done");
}
