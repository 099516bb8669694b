//! `hallmark bench latency` and `hallmark bench collective`: quick single-machine checks of the
//! fabric workloads. Each starts N probes in this process ([`LocalCluster`]), each over its own
//! loopback QUIC control connection and with its own data plane, runs a plan of one fabric phase
//! through the coordinator into a run store, and prints what the store's summary says — the same
//! path a real hall's run takes, only on one machine.

use super::execute::{execute, RunRequest};
use super::local::{LocalCluster, LocalNode};
use super::results;
use anyhow::{bail, Context};
use clap::Args;
use hallmark_protocol::plan::{parse_plan, parse_size, COLLECTIVE_SIZE_RANGE, PACKET_BYTES_RANGE};
use hallmark_protocol::{CollectiveAlgorithm, CollectiveOp, Labels, NodeId};
use hallmark_results::fabric::FabricPhaseSummary;
use hallmark_store::location::Location;
use hallmark_workloads::sim::SimBackend;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Most probes one bench starts.
pub const MAX_BENCH_PROBES: usize = 64;

#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// Probes to start, each with its own data plane on 127.0.0.1 (2 to 64).
    #[arg(long, default_value_t = 4)]
    probes: usize,
    /// Length of the latency phase, s (every directed pair gets its share of it).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// UDP payload of one test packet, bytes.
    #[arg(long, default_value_t = 64)]
    packet_bytes: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Keep the run in this run store, a directory or a PostgreSQL database (see `hallmark run
    /// --help`; default: a temporary directory, removed afterwards).
    #[arg(long, value_name = results::VALUE_NAME, value_parser = results::LocationParser)]
    results: Option<Location>,
}

#[derive(Debug, Args)]
pub struct CollectiveArgs {
    /// The operation: all-reduce, all-gather, reduce-scatter, broadcast, all-to-all.
    #[arg(long, default_value = "all-reduce")]
    op: String,
    /// Ranks: probes started, one rank each (2 to 64).
    #[arg(long, default_value_t = 4)]
    ranks: usize,
    /// Message size (nccl-tests' meaning), e.g. 8, 64KiB, 64MiB.
    #[arg(long, default_value = "64MiB")]
    size: String,
    /// Sweep sizes doubling from --size up to this one.
    #[arg(long)]
    max_size: Option<String>,
    /// auto (latency-optimal below 64 KiB, ring above), ring or latency-optimal.
    #[arg(long, default_value = "auto")]
    algorithm: String,
    /// Timed iterations per size (default: as many as fit the per-size time budget).
    #[arg(long)]
    iterations: Option<u32>,
    /// Length of the collective phase, s: the sweep stops early when it would not fit.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Keep the run in this run store, a directory or a PostgreSQL database (see `hallmark run
    /// --help`; default: a temporary directory, removed afterwards).
    #[arg(long, value_name = results::VALUE_NAME, value_parser = results::LocationParser)]
    results: Option<Location>,
}

pub async fn latency(a: LatencyArgs) -> anyhow::Result<ExitCode> {
    check_count("--probes", a.probes)?;
    check_seconds(a.seconds)?;
    let (lo, hi) = PACKET_BYTES_RANGE;
    if !(lo..=hi).contains(&i64::from(a.packet_bytes)) {
        bail!("--packet-bytes {} is outside {lo}..={hi}", a.packet_bytes);
    }
    let workload = format!(
        "{{ kind = \"latency\", packet_bytes = {} }}",
        a.packet_bytes
    );
    let phase = run_bench("bench-latency", a.probes, &workload, a.seconds, a.results).await?;
    let Some(l) = &phase.latency else {
        bail!(
            "the latency phase stored no results; faults: {}",
            faults(&phase)
        );
    };
    let hall = l.hall;
    let healthy = l.missing.is_empty() && l.all_lost.is_empty() && phase.faults.is_empty();
    if a.json {
        let worst: Vec<_> = l
            .worst
            .iter()
            .map(|p| {
                json!({
                    "src": p.src, "dst": p.dst, "sent": p.sent, "lost": p.lost,
                    "p50_us": p.rtt.map(|r| r.p50_us), "p99_us": p.rtt.map(|r| r.p99_us),
                })
            })
            .collect();
        let out = json!({
            "probes": a.probes,
            "seconds": a.seconds,
            "packet_bytes": a.packet_bytes,
            "pairs_expected": l.pairs_expected,
            "pairs_reported": l.pairs_reported,
            "sent": l.sent,
            "lost": l.lost,
            "p50_us": hall.map(|h| h.p50_us),
            "p99_us": hall.map(|h| h.p99_us),
            "p999_us": hall.map(|h| h.p999_us),
            "max_us": hall.map(|h| h.max_us),
            "worst_pairs": worst,
            "slow_node": l.slow_node.as_ref().map(|s| &s.node),
            "faults": fault_list(&phase),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "latency mesh: {} probes, {} of {} directed pairs, {} round trips ({} lost), {} B packets",
            a.probes, l.pairs_reported, l.pairs_expected, l.sent, l.lost, a.packet_bytes
        );
        match hall {
            Some(h) => println!(
                "round trip: p50 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs",
                h.p50_us, h.p99_us, h.p999_us, h.max_us
            ),
            None => println!("round trip: no round trip came back"),
        }
        for p in &l.worst {
            if let Some(r) = p.rtt {
                println!(
                    "  {}→{}: p50 {:.1} µs, p99 {:.1} µs",
                    p.src, p.dst, r.p50_us, r.p99_us
                );
            }
        }
        if !phase.faults.is_empty() {
            println!("faults: {}", faults(&phase));
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn collective(a: CollectiveArgs) -> anyhow::Result<ExitCode> {
    check_count("--ranks", a.ranks)?;
    check_seconds(a.seconds)?;
    let Some(op) = CollectiveOp::from_name(&a.op) else {
        bail!(
            "--op {}: expected one of all-reduce, all-gather, reduce-scatter, broadcast, all-to-all",
            a.op
        );
    };
    let Some(algorithm) = CollectiveAlgorithm::from_name(&a.algorithm) else {
        bail!(
            "--algorithm {}: expected auto, ring or latency-optimal",
            a.algorithm
        );
    };
    let size = bench_size("--size", &a.size)?;
    let max_size = match &a.max_size {
        Some(m) => bench_size("--max-size", m)?,
        None => size,
    };
    if max_size < size {
        bail!("--max-size {max_size} is smaller than --size {size}");
    }
    let iterations = match a.iterations {
        Some(0) => bail!("--iterations must be at least 1"),
        Some(n) => format!(", iterations = {n}"),
        None => String::new(),
    };
    let workload = format!(
        "{{ kind = \"collective\", ops = [\"{}\"], min_size = {size}, max_size = {max_size}, algorithm = \"{}\"{iterations} }}",
        op.name(),
        algorithm.name()
    );
    let phase = run_bench("bench-collective", a.ranks, &workload, a.seconds, a.results).await?;
    let rows = &phase.collectives;
    let wrong: u64 = rows.iter().map(|r| r.wrong_elements).sum();
    let Some(last) = rows.iter().max_by_key(|r| r.size_bytes) else {
        bail!(
            "the collective phase stored no results; faults: {}",
            faults(&phase)
        );
    };
    if a.json {
        let sizes: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "size_bytes": r.size_bytes, "count": r.count, "algorithm": r.algorithm,
                    "iterations": r.iterations, "time_us": r.time_us, "algbw_gbps": r.algbw_gb_s,
                    "busbw_gbps": r.busbw_gb_s, "wrong_elements": r.wrong_elements,
                })
            })
            .collect();
        let out = json!({
            "op": op.name(),
            "ranks": a.ranks,
            "size_bytes": last.size_bytes,
            "algorithm": last.algorithm,
            "iterations": last.iterations,
            "time_us": last.time_us,
            "algbw_gbps": last.algbw_gb_s,
            "busbw_gbps": last.busbw_gb_s,
            "wrong_elements": wrong,
            "sizes": sizes,
            "faults": fault_list(&phase),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} on {} ranks (loopback, one probe per rank)",
            op.name(),
            a.ranks
        );
        println!(
            "{:>12} {:>12} {:>16} {:>6} {:>11} {:>9} {:>9} {:>7}",
            "size (B)", "count", "algorithm", "iters", "time (µs)", "algbw", "busbw", "#wrong"
        );
        for r in rows {
            println!(
                "{:>12} {:>12} {:>16} {:>6} {:>11.1} {:>9.3} {:>9.3} {:>7}",
                r.size_bytes,
                r.count,
                r.algorithm,
                r.iterations,
                r.time_us,
                r.algbw_gb_s,
                r.busbw_gb_s,
                r.wrong_elements
            );
        }
        println!(
            "(algbw and busbw in GB/s, nccl-tests' definitions; time: the slowest rank's mean)"
        );
        if !phase.faults.is_empty() {
            println!("faults: {}", faults(&phase));
        }
    }
    Ok(if wrong == 0 && phase.faults.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check_count(flag: &str, n: usize) -> anyhow::Result<()> {
    if !(2..=MAX_BENCH_PROBES).contains(&n) {
        bail!("{flag} {n}: give 2 to {MAX_BENCH_PROBES}");
    }
    Ok(())
}

fn check_seconds(s: f64) -> anyhow::Result<()> {
    if !(s.is_finite() && (0.5..=3600.0).contains(&s)) {
        bail!("--seconds {s}: give 0.5 to 3600");
    }
    Ok(())
}

fn bench_size(flag: &str, text: &str) -> anyhow::Result<u64> {
    let (lo, hi) = COLLECTIVE_SIZE_RANGE;
    match parse_size(text) {
        Some(b) if (lo..=hi).contains(&b) => Ok(b),
        _ => bail!("{flag} {text}: give a size from {lo} bytes to 4GiB, e.g. 8, 64KiB, 64MiB"),
    }
}

fn faults(p: &FabricPhaseSummary) -> String {
    if p.faults.is_empty() {
        return "none".into();
    }
    fault_list(p).join("; ")
}

fn fault_list(p: &FabricPhaseSummary) -> Vec<String> {
    p.faults
        .iter()
        .map(|f| match &f.peer {
            Some(peer) => format!("{} (peer {peer}): {}", f.node, f.message),
            None => format!("{}: {}", f.node, f.message),
        })
        .collect()
}

/// Runs a plan of one fabric phase on `n` local probes and returns the phase's summary.
async fn run_bench(
    name: &str,
    n: usize,
    workload: &str,
    seconds: f64,
    results: Option<Location>,
) -> anyhow::Result<FabricPhaseSummary> {
    let source = format!(
        "name = \"{name}\"\nsample_hz = 1.0\n\n[expect]\nnodes = {n}\ntimeout_s = 30\n\n\
         [[phase]]\nname = \"{name}\"\nworkload = {workload}\nduration_s = {seconds}\n"
    );
    let plan = parse_plan(&source, name).context("the bench's plan")?;
    let nodes = (0..n)
        .map(|i| -> anyhow::Result<LocalNode> {
            let node_id = NodeId::new(format!("bench-{:02}", i + 1))?;
            let backend = SimBackend::standalone(node_id.clone(), 1)
                .context("building a probe's (simulated, idle) device")?;
            Ok(LocalNode {
                node_id,
                labels: Labels {
                    hall: "bench".into(),
                    row: "row1".into(),
                    rack: "rack1".into(),
                },
                backend: Box::new(backend),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (store, temporary) = match results {
        Some(location) => (location, None),
        None => {
            let dir = temporary_store()?;
            (Location::Dir(dir.clone()), Some(dir))
        }
    };
    if temporary.is_none() {
        results::check_writable(&store)?;
    }
    let outcome = async {
        let cluster = LocalCluster::start(nodes, true, None).await?;
        let request = RunRequest {
            plan,
            plan_source: source,
            hall: None,
            results: &store,
            progress: false,
        };
        let summary = execute(cluster.server(), request).await;
        cluster.stop().await?;
        summary
    }
    .await;
    if let Some(dir) = temporary {
        remove_store(&dir);
    }
    let summary = outcome?;
    summary
        .fabric
        .into_iter()
        .next()
        .with_context(|| format!("run {} stored no fabric phase", summary.run_id))
}

fn temporary_store() -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("hallmark-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating a temporary run store in {}", dir.display()))?;
    Ok(dir)
}

fn remove_store(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(
            "could not remove the temporary store {}: {e}",
            dir.display()
        );
    }
}
