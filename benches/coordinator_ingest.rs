//! Coordinator ingest: telemetry samples per second from N probes over loopback QUIC into the SQLite
//! run store, and the CPU it costs, by thread.
//!
//! N senders (one QUIC connection, mutual TLS and a node certificate each) register like probes,
//! answer clock sync, and once the run's phase starts stream pre-built telemetry batches (8 devices
//! × 10 samples, every sensor present) as fast as the coordinator acknowledges them, keeping a window
//! of unacknowledged batches each. A batch is acknowledged only after the recorder thread stored it,
//! so the acknowledged rate is the stored rate. The coordinator runs on its own tokio runtime
//! (threads `coord-*`), the senders on another (`send-*`); CPU time is read per thread from
//! /proc/self/task, so the coordinator's cost is measured apart from the senders' (which share the
//! same 2 cores and so bound the rate too).
//!
//! `cargo bench --bench coordinator_ingest [-- --probes N --seconds S --window W]`

use hallmark_coordinator::{ServerHandle, ServerOptions, StoreRecorder};
use hallmark_probe::ProbeSession;
use hallmark_protocol::plan::parse_plan;
use hallmark_protocol::{CoordinatorMessage, ProbeMessage, Sample, TelemetryBatch};
use hallmark_results::StoreExt;
use hallmark_store::{NewRun, Store};
use hallmark_transport::clock::WallClock;
use hallmark_transport::framed::{FramedRecv, FramedSend};
use hallmark_transport::pki::Ca;
use hallmark_transport::tls::{client_config, Identity, TransportOptions};
use hallmark_workloads::sim::SimBackend;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    probes: usize,
    seconds: u64,
    window: u64,
}

fn args() -> Args {
    let mut a = Args {
        probes: 40,
        seconds: 15,
        window: 32,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let v = argv.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (argv[i].as_str(), v) {
            ("--probes", Some(v)) => a.probes = v as usize,
            ("--seconds", Some(v)) => a.seconds = v,
            ("--window", Some(v)) => a.window = v,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

/// CPU seconds per thread-name prefix, from /proc/self/task/*/{comm,stat}.
fn cpu_by_thread() -> BTreeMap<String, f64> {
    let tick = 100.0; // USER_HZ on Linux
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the ")" of the command: state is field 3; utime 14, stime 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (Some(u), Some(s)) = (f.get(11), f.get(12)) else {
            continue;
        };
        let secs = (u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0)) / tick;
        let name = comm.trim();
        let group = name.split('-').next().unwrap_or(name).to_string();
        let group = if name.starts_with("hallmark-record") {
            "recorder".into()
        } else {
            group
        };
        *out.entry(group).or_insert(0.0) += secs;
    }
    out
}

fn batch(seq: u64, t0: i64) -> TelemetryBatch {
    let mut samples = Vec::with_capacity(80);
    for k in 0..10i64 {
        for d in 0..8u16 {
            samples.push(Sample {
                t_ns: t0 + k * 100_000_000,
                device: d,
                power_w: Some(697.5 + f32::from(d)),
                energy_j: Some(123_456.7 + k as f64),
                gpu_temp_c: Some(71.25),
                mem_temp_c: Some(66.5),
                sm_clock_mhz: Some(1980),
                util_pct: Some(100.0),
                throttle_reasons: 0x4,
            });
        }
    }
    TelemetryBatch {
        gaps: Vec::new(),
        seq,
        node_power_w: (0..10i64)
            .map(|k| (t0 + k * 100_000_000, 10_050.0))
            .collect(),
        samples,
    }
}

/// One sender: register, answer clock sync, wait for the phase, then stream batches.
async fn sender(
    id: Identity,
    addr: std::net::SocketAddr,
    node: String,
    window: u64,
    acked: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
) -> Result<(), String> {
    let cfg = client_config(&id, &TransportOptions::default()).map_err(|e| e.to_string())?;
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().map_err(|_| "addr")?)
        .map_err(|e| e.to_string())?;
    ep.set_default_client_config(cfg);
    let conn = ep
        .connect(addr, "localhost")
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    let (send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let (mut send, mut recv) = (FramedSend::new(send), FramedRecv::new(recv));
    let node_id = hallmark_protocol::NodeId::new(node).map_err(|e| e.to_string())?;
    let backend = SimBackend::standalone(node_id.clone(), 8).map_err(|e| e.to_string())?;
    let labels = hallmark_protocol::Labels {
        hall: "bench".into(),
        row: "row1".into(),
        rack: "rack01".into(),
    };
    let hello = hallmark_probe::hello(node_id, labels, &backend);
    let mut session = ProbeSession::new(hello, Box::new(backend));
    let clock = WallClock::new();
    send.send(&session.connected())
        .await
        .map_err(|e| e.to_string())?;
    let (mut next_seq, mut acked_to, mut phase_end) = (0u64, None::<u64>, None::<i64>);
    let t0 = clock.now_ns();
    loop {
        // Stream while the phase runs and the window allows.
        if let Some(end) = phase_end {
            if clock.now_ns() >= end {
                // Stay connected (a probe that leaves is lost, which ends the run early) until
                // the measurement is taken.
                while !done.load(Ordering::Relaxed) {
                    let _ = tokio::time::timeout(
                        Duration::from_millis(50),
                        recv.recv::<CoordinatorMessage>(),
                    )
                    .await;
                }
                break;
            }
            while next_seq < acked_to.map_or(0, |a| a + 1) + window {
                let b = batch(next_seq, t0 + next_seq as i64 * 1_000_000_000);
                send.send(&ProbeMessage::Telemetry(b))
                    .await
                    .map_err(|e| e.to_string())?;
                next_seq += 1;
            }
        }
        let msg = match recv.recv::<CoordinatorMessage>().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => return Err(e.to_string()),
        };
        match &msg {
            CoordinatorMessage::Ack { seq } => {
                let newly = seq + 1 - acked_to.map_or(0, |a| a + 1);
                acked.fetch_add(newly * 80, Ordering::Relaxed);
                acked_to = Some(*seq);
            }
            CoordinatorMessage::PhaseStart(p) => {
                let c = session
                    .clock()
                    .ok_or("no clock estimate before the phase")?;
                let start = c.to_probe(p.start_at_ns);
                tokio::time::sleep_until(clock.instant_at(start).into()).await;
                phase_end = Some(start + p.duration_ms as i64 * 1_000_000);
            }
            _ => {}
        }
        let (replies, _) = session.handle(msg, clock.now_ns());
        for r in replies {
            if !matches!(r, ProbeMessage::Telemetry(_)) {
                send.send(&r).await.map_err(|e| e.to_string())?;
            }
        }
    }
    conn.close(0u32.into(), b"done");
    ep.wait_idle().await;
    Ok(())
}

fn main() {
    let a = args();
    let dir = std::env::temp_dir().join(format!("hallmark-ingest-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ca = Ca::generate().expect("CA");
    let server_cert = ca.issue_coordinator(&[]).expect("coordinator cert");
    let server_id = Identity::from_pem(ca.cert_pem(), &server_cert.cert_pem, &server_cert.key_pem)
        .expect("identity");
    let plan_text = format!(
        "name = \"ingest-bench\"\nsample_hz = 10\n[expect]\nnodes = {}\ntimeout_s = 60\n\
         [[phase]]\nname = \"stream\"\nworkload = \"idle\"\nduration_s = {}\n",
        a.probes, a.seconds
    );
    let plan = parse_plan(&plan_text, "ingest-bench.toml").expect("plan");

    let coord_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("coord-worker")
        .enable_all()
        .build()
        .expect("runtime");
    let send_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("send-worker")
        .enable_all()
        .build()
        .expect("runtime");

    let server = coord_rt
        .block_on(ServerHandle::start(
            &server_id,
            ServerOptions::new("127.0.0.1:0".parse().unwrap()),
        ))
        .expect("coordinator");
    let addr = server.local_addr();
    let mut store = Store::open(&dir).expect("store");
    let run = store
        .create_run(&NewRun {
            name: "ingest-bench".into(),
            plan_name: plan.name.clone(),
            plan_toml: plan_text.clone(),
            hall: None,
            started_at_ns: WallClock::new().now_ns(),
            hallmark_version: env!("CARGO_PKG_VERSION").into(),
            sample_hz: plan.sample_hz,
        })
        .expect("run");
    coord_rt
        .block_on(server.start_run(
            run.as_str().to_string(),
            plan,
            Box::new(StoreRecorder::new(store, run.clone())),
        ))
        .expect("start run");

    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for i in 0..a.probes {
        let node = format!("ingest-n{i:04}");
        let c = ca.issue_node(&node.parse().unwrap()).expect("node cert");
        let id = Identity::from_pem(ca.cert_pem(), &c.cert_pem, &c.key_pem).expect("identity");
        senders.push(send_rt.spawn(sender(
            id,
            addr,
            node,
            a.window,
            acked.clone(),
            done.clone(),
        )));
    }
    // Measure from the first acknowledged sample to the end of the phase.
    let wait_start = Instant::now();
    while acked.load(Ordering::Relaxed) == 0 && wait_start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let cpu0 = cpu_by_thread();
    let t0 = Instant::now();
    let n0 = acked.load(Ordering::Relaxed);
    // The window ends when acknowledgements stop (the phase is over), measured before the run's
    // grace period ends and its recorder thread goes away with its CPU counters.
    let (mut last_n, mut last_change) = (n0, Instant::now());
    let limit = Instant::now() + Duration::from_secs(a.seconds + 120);
    while Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(50));
        let n = acked.load(Ordering::Relaxed);
        if n != last_n {
            (last_n, last_change) = (n, Instant::now());
        } else if last_change.elapsed() > Duration::from_millis(400) {
            break;
        }
    }
    let cpu1 = cpu_by_thread();
    done.store(true, Ordering::Relaxed);
    let elapsed = (last_change - t0).as_secs_f64();
    let n = last_n - n0;
    let mut errors = 0;
    for s in senders {
        match send_rt.block_on(s) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                errors += 1;
                eprintln!("sender: {e}");
            }
            Err(e) => {
                errors += 1;
                eprintln!("sender task: {e}");
            }
        }
    }
    let _ = coord_rt.block_on(server.wait_run_finished(Duration::from_secs(30)));
    coord_rt.block_on(server.shutdown()).expect("shutdown");
    let stored = Store::open_read_only(&dir)
        .and_then(|s| s.run_summary(run.as_str()))
        .map(|s| s.samples_stored)
        .unwrap_or(0);
    let db = std::fs::metadata(dir.join(hallmark_store::DB_FILE))
        .map(|m| m.len())
        .unwrap_or(0);

    let rate = n as f64 / elapsed;
    println!("coordinator ingest over loopback QUIC into SQLite ({} probes, window {} batches, {} s phase)", a.probes, a.window, a.seconds);
    println!("  acknowledged (stored) samples : {n} in {elapsed:.2} s = {rate:.0} samples/s ({:.0} batches/s)", rate / 80.0);
    println!(
        "  samples in the store          : {stored}  ({:.1} MiB database)",
        db as f64 / 1048576.0
    );
    println!("  sender errors                 : {errors}");
    println!(
        "  CPU seconds by thread group over the measured window (2 cores = {:.2} CPU-s available):",
        2.0 * elapsed
    );
    let mut coord_cpu = 0.0;
    for (group, c1) in &cpu1 {
        let d = c1 - cpu0.get(group).copied().unwrap_or(0.0);
        if d > 0.005 {
            println!(
                "    {group:<12} {d:7.2} s  ({:5.1} % of one core)",
                100.0 * d / elapsed
            );
        }
        if group == "coord" || group == "recorder" {
            coord_cpu += d;
        }
    }
    if n > 0 {
        println!(
            "  coordinator (coord + recorder): {:.2} CPU-µs per sample → at most {:.0} samples/s on 2 cores if it had them to itself",
            coord_cpu * 1e6 / n as f64,
            2.0 * n as f64 / coord_cpu.max(1e-9)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
