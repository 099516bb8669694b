//! Ingest benchmark of the run store: 80 nodes × 8 devices × 10 Hz for 60 s (384 000 samples), one
//! telemetry batch per node per second, written with `insert_batches` (one transaction per second of
//! hall data) and, for comparison, with `insert_batch` (one transaction per batch). Then the run is
//! summarised (`hallmark-results`, a dev-dependency, over the store's telemetry scan). Prints
//! samples/s, the summary time and the database size per million samples. Last, the demo's sensor
//! mix (the simulated demo hall running the demo plan, `src/columnar/demo_data.rs`: 80 nodes × 8
//! devices, 60 s at 10 Hz) is stored the same way, for its rate and its size per million samples.
//!
//! Then the same ingest into PostgreSQL (a throw-away server of the bench's own, started as the
//! `postgres` user with PostgreSQL's durable defaults), with the client's and the server's CPU per
//! sample and the table's size.
//!
//! `cargo bench -p hallmark-store --bench ingest` (release). Baseline to beat: the ingest target of
//! 800 000 samples/s.

#[path = "../src/columnar/demo_data.rs"]
mod demo_data;

use hallmark_protocol::{DeviceInfo, DeviceKind, Labels, NodeId, Sample, TelemetryBatch};
use hallmark_results::StoreExt;
use hallmark_store::db::pg::Timeouts;
use hallmark_store::testing::pg::{ClusterOptions, PgServer};
use hallmark_store::{NewRun, ProbeRow, RunId, RunStatus, Store, DB_FILE};
use std::path::Path;
use std::time::Instant;

const NODES: usize = 80;
const DEVICES: u16 = 8;
const HZ: i64 = 10;
const SECONDS: i64 = 60;
const T0: i64 = 1_795_918_500_000_000_000;

fn batches() -> Vec<Vec<TelemetryBatch>> {
    (0..SECONDS)
        .map(|sec| {
            (0..NODES)
                .map(|n| {
                    let ks = sec * HZ..(sec + 1) * HZ;
                    let t = |k: i64| T0 + k * 1_000_000_000 / HZ + (n as i64 * 7_919) % 3_000_000;
                    TelemetryBatch {
                        gaps: Vec::new(),
                        seq: sec as u64,
                        node_power_w: ks
                            .clone()
                            .map(|k| (t(k), 5_000.0 + (k % 13) as f32))
                            .collect(),
                        samples: ks
                            .flat_map(|k| {
                                (0..DEVICES).map(move |d| Sample {
                                    t_ns: t(k),
                                    device: d,
                                    power_w: Some(650.0 + (k % 17) as f32),
                                    energy_j: Some(k as f64 * 65.0),
                                    gpu_temp_c: Some(60.0 + ((k + i64::from(d)) % 23) as f32),
                                    mem_temp_c: Some(55.0),
                                    sm_clock_mhz: Some(1980),
                                    util_pct: Some(100.0),
                                    throttle_reasons: if k % 50 == 0 { 0x40 } else { 0 },
                                })
                            })
                            .collect(),
                    }
                })
                .collect()
        })
        .collect()
}

fn setup(store: &mut Store, name: &str) -> (RunId, Vec<NodeId>) {
    let run = store
        .create_run(&NewRun {
            name: name.into(),
            plan_name: "bench".into(),
            plan_toml: String::new(),
            hall: Some("bench-hall".into()),
            started_at_ns: T0,
            hallmark_version: env!("CARGO_PKG_VERSION").into(),
            sample_hz: HZ as f64,
        })
        .expect("create run");
    let nodes: Vec<NodeId> = (0..NODES)
        .map(|n| NodeId::new(format!("r{:02}n{:02}", n / 8, n % 8)).expect("node id"))
        .collect();
    let devices: Vec<DeviceInfo> = (0..DEVICES)
        .map(|i| DeviceInfo {
            index: i,
            kind: DeviceKind::SimulatedGpu,
            model: "sim".into(),
            uuid: format!("sim-{i}"),
            serial: None,
            memory_bytes: None,
            power_limit_w: Some(700.0),
            idle_power_w: Some(75.0),
            slowdown_temp_c: Some(87.0),
            shutdown_temp_c: Some(95.0),
            max_operating_temp_c: Some(85.0),
        })
        .collect();
    for (n, id) in nodes.iter().enumerate() {
        let probe = ProbeRow {
            node_id: id.clone(),
            labels: Labels {
                hall: "bench-hall".into(),
                row: format!("row-{}", n / 40),
                rack: format!("rack-{:02}", n / 8),
            },
            backend: "sim".into(),
            hallmark_version: "bench".into(),
            remote: None,
            registered_at_ns: T0 - 1,
            clock: None,
        };
        store.add_probe(&run, &probe).expect("add probe");
        store.add_devices(&run, id, &devices).expect("add devices");
    }
    store
        .add_phase(
            &run,
            &hallmark_store::PhaseRow {
                phase_id: 1,
                name: "burn".into(),
                workload: hallmark_protocol::Workload::Burn,
                pattern: hallmark_protocol::pattern::Pattern::Steady { level: 1.0 },
                scheduled_start_ns: T0,
                duration_ms: SECONDS as u64 * 1000,
            },
        )
        .expect("add phase");
    (run, nodes)
}

/// CPU seconds this process has used (user + system), from /proc on Linux; `None` elsewhere. On a
/// shared machine samples per CPU-second is steadier than samples per wall-second.
fn cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) (utime, stime), counted from after the command name; clock ticks
    // (100 per second on Linux).
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn size(dir: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::metadata(dir.join(format!("{DB_FILE}{s}"))).ok())
        .map(|m| m.len())
        .sum()
}

fn main() {
    let dir = std::env::temp_dir().join(format!("hallmark-ingest-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = batches();
    let total: usize = data.iter().flatten().map(|b| b.samples.len()).sum();
    println!(
        "ingest: {NODES} nodes × {DEVICES} devices × {HZ} Hz × {SECONDS} s = {total} samples, \
         {} batches",
        data.iter().map(Vec::len).sum::<usize>()
    );

    // 1. insert_batches: one transaction per second of hall data (80 batches). Three fresh databases;
    //    the machine is shared, so the best and the median are printed.
    let mut rates = Vec::new();
    let mut last = None;
    for attempt in 0..3 {
        let attempt_dir = dir.join(format!("many-{attempt}"));
        let mut store = Store::open(&attempt_dir).expect("open store");
        let (run, nodes) = setup(&mut store, "bench-many");
        let cpu0 = cpu_s();
        let start = Instant::now();
        for second in &data {
            let refs: Vec<(&NodeId, &TelemetryBatch, i64)> = second
                .iter()
                .enumerate()
                .map(|(n, b)| (&nodes[n], b, T0))
                .collect();
            store.insert_batches(&run, &refs).expect("insert batches");
        }
        let elapsed = start.elapsed().as_secs_f64();
        let cpu = cpu_s().zip(cpu0).map(|(b, a)| b - a);
        rates.push(total as f64 / elapsed);
        println!(
            "insert_batches (80 batches / transaction): {:>8.0} samples/s ({elapsed:.3} s wall{})",
            total as f64 / elapsed,
            cpu.map_or(String::new(), |c| format!(
                ", {c:.2} s CPU = {:.0} samples per CPU-second, {:.2} µs CPU per sample",
                total as f64 / c.max(0.01),
                c * 1e6 / total as f64
            ))
        );
        last = Some((store, run, attempt_dir));
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "insert_batches: best {:.0} samples/s, median {:.0} samples/s",
        rates[rates.len() - 1],
        rates[rates.len() / 2]
    );
    let (mut store, run, db_dir) = last.expect("three attempts");
    store
        .finish_run(
            &run,
            T0 + SECONDS * 1_000_000_000,
            RunStatus::Complete,
            None,
        )
        .expect("finish");
    store.checkpoint().expect("checkpoint");
    let bytes = size(&db_dir);
    println!(
        "database size: {:.1} MiB for {total} samples = {:.1} MiB per million samples \
         (node power and batch index included)",
        bytes as f64 / 1048576.0,
        bytes as f64 / 1048576.0 / (total as f64 / 1e6)
    );

    // 2. Summary of that run (results' `run_summary`, built on the store's telemetry scan).
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let s = store.run_summary(run.as_str()).expect("summary");
        best = best.min(start.elapsed().as_secs_f64());
        assert_eq!(s.samples_stored as usize, total);
    }
    println!("run_summary: {:.1} ms (best of 3)", best * 1e3);
    let start = Instant::now();
    let runs = store.list_runs().expect("list");
    println!(
        "list_runs: {:.2} ms ({} runs)",
        start.elapsed().as_secs_f64() * 1e3,
        runs.len()
    );

    // 3. insert_batch: one transaction per batch.
    let (run2, nodes2) = setup(&mut store, "bench-one");
    let start = Instant::now();
    for second in &data {
        for (n, b) in second.iter().enumerate() {
            store
                .insert_batch(&run2, &nodes2[n], b, T0)
                .expect("insert batch");
        }
    }
    let one = start.elapsed();
    println!(
        "insert_batch (1 batch / transaction):      {:>8.0} samples/s ({:.3} s)",
        total as f64 / one.as_secs_f64(),
        one.as_secs_f64()
    );
    drop(store);
    demo_mix(&dir.join("demo"));
    let _ = std::fs::remove_dir_all(&dir);
    postgres(&data, total);
}

/// The same ingest into PostgreSQL: a throw-away server of the bench's own
/// (`hallmark_store::testing::pg`, started as the `postgres` user) with PostgreSQL's durable
/// defaults (`fsync`, `full_page_writes`, `synchronous_commit` on: a commit returns once its WAL is
/// flushed), three fresh databases. CPU is counted on both sides: this process, and every process of
/// the server (`postgres` in /proc: the backend, the WAL writer, the checkpointer).
fn postgres(data: &[Vec<TelemetryBatch>], total: usize) {
    let options = ClusterOptions {
        durable: true,
        ..ClusterOptions::default()
    };
    let server = match PgServer::start(&options) {
        Ok(server) => server,
        Err(e) => {
            println!("postgres: skipped ({e:?})");
            return;
        }
    };
    let mut rates = Vec::new();
    for attempt in 0..3 {
        let db = server.database().expect("a database of the bench server");
        if attempt == 0 {
            let mut settings = Vec::new();
            for name in [
                "fsync",
                "synchronous_commit",
                "full_page_writes",
                "server_version",
            ] {
                let v = db
                    .connect()
                    .query_opt(&format!("SELECT current_setting('{name}')"), &[], |r| {
                        r.text(0)
                    })
                    .expect("a setting")
                    .unwrap_or_default();
                settings.push(format!("{name}={v}"));
            }
            println!("postgres: {}", settings.join(", "));
        }
        let mut store = Store::open_postgres(&db.target, &Timeouts::default()).expect("open");
        let (run, nodes) = setup(&mut store, "bench-pg");
        let (cpu0, server0) = (cpu_s(), server_cpu_s());
        let start = Instant::now();
        for second in data {
            let refs: Vec<(&NodeId, &TelemetryBatch, i64)> = second
                .iter()
                .enumerate()
                .map(|(n, b)| (&nodes[n], b, T0))
                .collect();
            store.insert_batches(&run, &refs).expect("insert batches");
        }
        let elapsed = start.elapsed().as_secs_f64();
        let (cpu, server) = (cpu_s(), server_cpu_s());
        rates.push(total as f64 / elapsed);
        let per = |a: Option<f64>, b: Option<f64>| {
            a.zip(b).map_or("-".into(), |(before, after)| {
                format!("{:.2}", (after - before) * 1e6 / total as f64)
            })
        };
        let bytes = db
            .connect()
            .query_opt(
                "SELECT CAST(pg_total_relation_size('telemetry_batches') AS BIGINT)",
                &[],
                |r| r.i64(0),
            )
            .expect("table size")
            .unwrap_or(0);
        println!(
            "postgres insert_batches (80 batches / transaction): {:>8.0} samples/s ({elapsed:.3} s \
             wall; CPU µs per sample: client {}, server {}); telemetry_batches {:.1} MiB = {:.1} \
             MiB per million samples",
            total as f64 / elapsed,
            per(cpu0, cpu),
            per(server0, server),
            bytes as f64 / 1048576.0,
            bytes as f64 / 1048576.0 / (total as f64 / 1e6)
        );
        if attempt == 2 {
            let start = Instant::now();
            let s = store.run_summary(run.as_str()).expect("summary");
            assert_eq!(s.samples_stored as usize, total);
            println!(
                "postgres run_summary: {:.1} ms",
                start.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "postgres insert_batches: best {:.0} samples/s, median {:.0} samples/s",
        rates[rates.len() - 1],
        rates[rates.len() / 2]
    );
}

/// CPU seconds of every process named `postgres` (the test server's), summed.
fn server_cpu_s() -> Option<f64> {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, after)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        total += (ticks(11) + ticks(12)) / 100.0;
    }
    Some(total)
}

/// The demo's sensor mix, one `insert_batches` transaction per second of hall data.
fn demo_mix(dir: &Path) {
    let data = demo_data::demo_batches(None);
    let total: usize = data.iter().map(|b| b.samples.len()).sum();
    let mut store = Store::open(dir).expect("open store");
    let (run, nodes) = setup(&mut store, "bench-demo");
    let cpu0 = cpu_s();
    let start = Instant::now();
    // demo_batches lists each second's batches node after node.
    for second in data.chunks(nodes.len()) {
        let refs: Vec<(&NodeId, &TelemetryBatch, i64)> = second
            .iter()
            .enumerate()
            .map(|(n, b)| (&nodes[n], b, T0))
            .collect();
        let done = store.insert_batches(&run, &refs).expect("insert batches");
        assert!(done.iter().all(|d| d.new), "every demo batch is new");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_s().zip(cpu0).map(|(b, a)| b - a);
    store.checkpoint().expect("checkpoint");
    let bytes = size(dir);
    println!(
        "demo mix: {total} samples: {:.0} samples/s ({elapsed:.3} s wall{}); database {:.1} MiB = \
         {:.1} MiB per million samples",
        total as f64 / elapsed,
        cpu.map_or(String::new(), |c| format!(
            ", {:.2} µs CPU per sample",
            c * 1e6 / total as f64
        )),
        bytes as f64 / 1048576.0,
        bytes as f64 / 1048576.0 / (total as f64 / 1e6)
    );
}
