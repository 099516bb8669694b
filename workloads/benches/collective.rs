//! Collectives between probe data planes on loopback: every rank a thread with its own
//! `DataPlane`, the real mesh, handshake and sweep; prints time, algbw and busbw (nccl-tests'
//! definitions) per operation and size (the slowest rank's mean). Compare with Open MPI's
//! `MPI_Allreduce` over its TCP transport on the same cores: a C program timing one
//! `MPI_Allreduce(MPI_FLOAT, MPI_SUM)` of 64 MiB per repeat (after a warm-up and a barrier,
//! the slowest rank's time), run with
//! `mpirun --oversubscribe -np 4 --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo`.
//!
//! `cargo bench -p hallmark-workloads --bench collective [-- RANKS MIN MAX OPS ALGORITHM REPEATS]`
//! — defaults: 4 ranks, all-reduce, 64 MiB to 64 MiB, ring, 5 repeats. OPS is a comma-separated
//! list of plan names (`all-reduce,all-gather`), ALGORITHM `ring`, `latency-optimal` or `auto`;
//! sizes take a `K`, `M` or `G` suffix (binary). The whole phase (mesh and sweep) runs REPEATS
//! times; each line shows the best and the median of the repeats, a shared machine's noise
//! being mostly one-sided.

use hallmark_protocol::fabric::bandwidths;
use hallmark_protocol::{
    CollectiveAlgorithm, CollectiveOp, CollectiveParams, CollectiveResult, FabricMember,
    FabricParams, FabricReport, NodeId,
};
use hallmark_workloads::fabric::auth::{random_mesh_orders, PhaseMac};
use hallmark_workloads::fabric::{collective, DataPlane, PhaseWindow};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// A size as plans write it (`8`, `64K`, `64MiB`): the plan parser's reading.
fn parse_size(s: &str) -> Result<u64, String> {
    hallmark_protocol::plan::parse_size(s)
        .ok_or_else(|| format!("size {s:?}: write e.g. 8, 64K, 64MiB"))
}

struct Args {
    ranks: usize,
    params: CollectiveParams,
    repeats: usize,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let ranks = match args.first() {
        Some(a) => a
            .parse::<usize>()
            .map_err(|e| format!("ranks {a:?}: {e}"))?,
        None => 4,
    };
    let min = args.get(1).map_or(Ok(64 << 20), |a| parse_size(a))?;
    let max = args.get(2).map_or(Ok(min), |a| parse_size(a))?;
    let ops = match args.get(3) {
        Some(list) => list
            .split(',')
            .map(|o| CollectiveOp::from_name(o).ok_or_else(|| format!("unknown operation {o:?}")))
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![CollectiveOp::AllReduce],
    };
    let algorithm = match args.get(4) {
        Some(a) => {
            CollectiveAlgorithm::from_name(a).ok_or_else(|| format!("unknown algorithm {a:?}"))?
        }
        None => CollectiveAlgorithm::Ring,
    };
    let repeats = match args.get(5) {
        Some(a) => a
            .parse::<usize>()
            .map_err(|e| format!("repeats {a:?}: {e}"))?,
        None => 5,
    };
    if ranks == 0 || repeats == 0 {
        return Err("at least one rank and one repeat".into());
    }
    Ok(Args {
        ranks,
        params: CollectiveParams {
            ops,
            min_bytes: min,
            max_bytes: max,
            algorithm,
            transport: hallmark_protocol::CollectiveTransport::DataPlane,
            iterations: None,
        },
        repeats,
    })
}

/// One phase on `ranks` loopback data planes; every rank's report.
fn phase(ranks: usize, p: &CollectiveParams, phase_id: u32) -> Result<Vec<FabricReport>, String> {
    let dps = (0..ranks)
        .map(|_| DataPlane::bind(([127, 0, 0, 1], 0).into()).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let members: Vec<FabricMember> = dps
        .iter()
        .enumerate()
        .map(|(r, dp)| {
            Ok(FabricMember {
                node_id: NodeId::new(format!("bench-{r}")).map_err(|e| e.to_string())?,
                addr: dp.local_addr().map_err(|e| e.to_string())?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let phases = random_mesh_orders(&members, &FabricParams::Collective(p.clone()))
        .map_err(|e| e.to_string())?;
    let macs = (0..ranks)
        .map(|r| PhaseMac::new(&phases[r], r, phase_id))
        .collect::<Result<Vec<_>, String>>()?;
    let start = Instant::now() + Duration::from_millis(20);
    let window = PhaseWindow {
        phase_id,
        start,
        end: start + Duration::from_secs(600),
    };
    let stop = AtomicBool::new(false);
    Ok(std::thread::scope(|s| {
        let hs: Vec<_> = (0..ranks)
            .map(|r| {
                let (dps, phase, mac, window, stop) = (&dps, &phases[r], &macs[r], &window, &stop);
                s.spawn(move || collective::run(&dps[r], r, phase, p, mac, window, stop))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    }))
}

fn main() -> Result<(), String> {
    // `cargo bench` passes `--bench`; keep only our positional arguments.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let Args {
        ranks,
        params: p,
        repeats,
    } = parse_args(&args)?;
    // Per result line: the slowest rank's mean of each repeat, and the wrong elements.
    let mut lines: Vec<(CollectiveResult, Vec<u64>, u64)> = Vec::new();
    let t = Instant::now();
    for rep in 0..repeats {
        let reports = phase(ranks, &p, rep as u32 + 1)?;
        for (r, report) in reports.iter().enumerate() {
            for f in &report.faults {
                println!("repeat {rep}, rank {r} fault: {}", f.message);
            }
        }
        let first = reports
            .first()
            .map(|r| r.collectives.as_slice())
            .unwrap_or(&[]);
        for (k, c) in first.iter().enumerate() {
            let slowest = reports
                .iter()
                .filter_map(|r| r.collectives.get(k))
                .map(|c| c.mean_ns)
                .max()
                .unwrap_or(c.mean_ns);
            let wrong: u64 = reports
                .iter()
                .filter_map(|r| r.collectives.get(k))
                .map(|c| c.wrong_elements)
                .sum();
            match lines.get_mut(k) {
                Some(l) => {
                    l.1.push(slowest);
                    l.2 += wrong;
                }
                None => lines.push((c.clone(), vec![slowest], wrong)),
            }
        }
    }
    println!(
        "{ranks} ranks on loopback, {}, {repeats} repeats ({:.1} s in all)",
        p.algorithm.name(),
        t.elapsed().as_secs_f64()
    );
    println!(
        "{:>15} {:>15} {:>11} {:>6} {:>11} {:>11} {:>9} {:>9} {:>7}",
        "op", "algorithm", "size", "iters", "best (µs)", "median", "algbw", "busbw", "wrong"
    );
    for (c, mut times, wrong) in lines {
        times.sort_unstable();
        let best = times.first().copied().unwrap_or(0);
        let median = times.get(times.len() / 2).copied().unwrap_or(0);
        let (alg, bus) = bandwidths(c.op, ranks, c.size_bytes, best as f64);
        println!(
            "{:>15} {:>15} {:>11} {:>6} {:>11.1} {:>11.1} {:>9.3} {:>9.3} {:>7}",
            c.op.name(),
            c.algorithm.name(),
            c.size_bytes,
            c.iterations,
            best as f64 / 1e3,
            median as f64 / 1e3,
            alg,
            bus,
            wrong
        );
    }
    println!("(time: the slowest rank's mean per repeat; bandwidths of the best, GB/s)");
    Ok(())
}
