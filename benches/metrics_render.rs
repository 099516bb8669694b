//! The live metrics of a coordinator at fleet scale: what one scrape of `GET /metrics` costs to
//! render, and what following one telemetry batch costs the core task, for N nodes × D devices
//! (every node registered, each with one fresh batch).
//!
//! The HTTP server renders under the metrics' lock, which the core task takes for each event, so
//! the render time is also the longest a scrape can hold up the core task.
//!
//! ```text
//! cargo bench --bench metrics_render [-- --nodes 10000 --devices 8 --renders 20 --out FILE]
//! ```
//!
//! `--out FILE` writes the last Prometheus-format render, for `promtool check metrics < FILE`.

use hallmark_coordinator::metrics::{Format, Metrics};
use hallmark_coordinator::{Event, ProbeRecord};
use hallmark_protocol::{Labels, NodeId, ProbeRole, Sample, TelemetryBatch};
use hallmark_workloads::backend::Backend;
use hallmark_workloads::sim::SimBackend;
use std::time::Instant;

/// Nodes per rack, racks per row (labels only).
const NODES_PER_RACK: usize = 40;
const RACKS_PER_ROW: usize = 10;
const T0: i64 = 1_796_000_000_000_000_000;

fn arg(name: &str, default: usize) -> usize {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn registered(i: usize, devices: u16) -> Event {
    let node = format!("node{i:05}");
    Event::Registered(ProbeRecord {
        node_id: NodeId::new(&node).unwrap(),
        labels: Labels {
            hall: "hall-a".into(),
            row: format!("row{}", i / NODES_PER_RACK / RACKS_PER_ROW + 1),
            rack: format!("rack{:04}", i / NODES_PER_RACK + 1),
        },
        // The simulated devices' real inventory (model, limits, uuids), as a probe sends it.
        inventory: SimBackend::standalone(NodeId::new(&node).unwrap(), devices)
            .expect("a simulated node")
            .inventory()
            .to_vec(),
        backend: "sim".into(),
        hallmark_version: env!("CARGO_PKG_VERSION").into(),
        instance_id: i as u64,
        session_id: i as u64,
        remote: "127.0.0.1:1".into(),
        registered_at_ns: T0,
        clock: None,
        data_plane: None,
        role: ProbeRole::Node,
        software: Vec::new(),
    })
}

/// One second of a node at 10 Hz: 10 instants of every device and of node power.
fn telemetry(i: usize, devices: u16, seq: u64, t: i64) -> Event {
    let instants: Vec<i64> = (0..10).map(|k| t - (9 - k) * 100_000_000).collect();
    Event::Telemetry {
        node_id: NodeId::new(format!("node{i:05}")).unwrap(),
        received_at_ns: t,
        batch: TelemetryBatch {
            seq,
            node_power_w: instants.iter().map(|&t| (t, 5_600.0)).collect(),
            samples: instants
                .iter()
                .flat_map(|&t| {
                    (0..devices).map(move |d| Sample {
                        t_ns: t,
                        device: d,
                        power_w: Some(650.0 + f32::from(d)),
                        energy_j: Some(1.0e6),
                        gpu_temp_c: Some(61.0),
                        mem_temp_c: Some(70.0),
                        sm_clock_mhz: Some(1_980),
                        util_pct: Some(100.0),
                        throttle_reasons: 0,
                    })
                })
                .collect(),
            gaps: Vec::new(),
        },
    }
}

fn main() {
    let nodes = arg("--nodes", 10_000);
    let devices = u16::try_from(arg("--devices", 8)).expect("--devices fits in 16 bits");
    let renders = arg("--renders", 20).max(1);
    let argv: Vec<String> = std::env::args().collect();
    let out = argv
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| argv.get(i + 1))
        .cloned();
    let mut m = Metrics::new();
    for i in 0..nodes {
        m.on_event(&registered(i, devices));
    }
    // Telemetry: each node's batch built beforehand, only following it is timed.
    let batches: Vec<Event> = (0..nodes)
        .map(|i| telemetry(i, devices, 0, T0 + 1_000_000_000))
        .collect();
    let start = Instant::now();
    for ev in &batches {
        m.on_event(ev);
    }
    let per_batch_us = start.elapsed().as_secs_f64() * 1e6 / nodes as f64;
    let now = T0 + 1_500_000_000;
    for format in [Format::Prometheus, Format::OpenMetrics] {
        let mut times = Vec::with_capacity(renders);
        let mut text = String::new();
        for _ in 0..renders {
            let start = Instant::now();
            text = m.render(now, format);
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        if let (Format::Prometheus, Some(out)) = (format, out.as_ref()) {
            std::fs::write(out, &text).expect("writing --out");
        }
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        println!(
            "{nodes} nodes × {devices} devices, {format:?}: {} series, {:.2} MiB; render median {:.1} ms, max {:.1} ms ({renders} renders)",
            series,
            text.len() as f64 / (1024.0 * 1024.0),
            times[times.len() / 2],
            times[times.len() - 1],
        );
    }
    println!(
        "following one telemetry batch ({devices} devices × 10 instants): {per_batch_us:.2} µs"
    );
}
