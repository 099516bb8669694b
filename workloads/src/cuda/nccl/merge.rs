//! What each local GPU's thread measured ([`GpuOutcome`]) and its merge into the node's
//! [`FabricReport`]: one result per operation and size (the slowest local GPU's mean, the wrong
//! elements of all of them, the fewest iterations), and faults that say what was not done and
//! why, each said once for all the GPUs it concerns.

use super::plan::{Halt, Plan};
use crate::fabric::collective::size_name;
use hallmark_protocol::{
    CollectiveAlgorithm, CollectiveOp, CollectiveResult, FabricFault, FabricReport,
};
use std::time::Duration;

/// One operation at one size on one GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeResult {
    pub op: CollectiveOp,
    pub size_bytes: u64,
    pub iterations: u32,
    pub mean_ns: u64,
    pub wrong_elements: u64,
}

/// Where a GPU's thread is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Running,
    /// Every agreed size of every operation was run.
    Complete,
    /// The sweep stopped early for this reason.
    Halted(Halt),
}

/// What one local GPU's thread has done so far (it updates this as it goes).
#[derive(Debug, Clone, PartialEq)]
pub struct GpuOutcome {
    /// The GPU's index in the backend, and its rank.
    pub gpu: usize,
    pub rank: u32,
    pub results: Vec<SizeResult>,
    /// What went wrong, without naming the GPU (the merge names it).
    pub faults: Vec<String>,
    pub ended: Ended,
    /// How many of the plan's sizes all ranks agreed to run (their memory), once agreed.
    pub agreed_sizes: Option<usize>,
}

impl GpuOutcome {
    pub fn new(gpu: usize, rank: u32) -> GpuOutcome {
        GpuOutcome {
            gpu,
            rank,
            results: Vec::new(),
            faults: Vec::new(),
            ended: Ended::Running,
            agreed_sizes: None,
        }
    }
}

/// `ranks 8–11 (GPUs 0–3)`, `rank 9 (GPU 1)`.
pub fn who(mut pairs: Vec<(u32, usize)>) -> String {
    pairs.sort_unstable();
    pairs.dedup();
    let ranks = ranges(pairs.iter().map(|p| u64::from(p.0)).collect());
    let gpus = ranges(pairs.iter().map(|p| p.1 as u64).collect());
    if pairs.len() == 1 {
        format!("rank {ranks} (GPU {gpus})")
    } else {
        format!("ranks {ranks} (GPUs {gpus})")
    }
}

/// Sorted numbers as ranges: `0–3, 5`.
fn ranges(mut v: Vec<u64>) -> String {
    v.sort_unstable();
    v.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(&a) = v.get(i) {
        let mut j = i;
        while v.get(j + 1).is_some_and(|&b| b == v[j] + 1) {
            j += 1;
        }
        parts.push(if j == i {
            a.to_string()
        } else {
            format!("{a}–{}", v[j])
        });
        i = j + 1;
    }
    parts.join(", ")
}

/// Sizes of the plan for people: a run of consecutive plan sizes as `a–b (n sizes)`, else a list.
fn describe(plan: &Plan, sizes: &[u64]) -> String {
    let (Some(&a), Some(&b)) = (sizes.first(), sizes.last()) else {
        return String::new();
    };
    if sizes.len() == 1 {
        return size_name(a);
    }
    let consecutive = plan
        .sizes
        .iter()
        .position(|&s| s == a)
        .and_then(|i| plan.sizes.get(i..i + sizes.len()))
        .is_some_and(|run| run == sizes);
    if consecutive {
        format!("{}–{} ({} sizes)", size_name(a), size_name(b), sizes.len())
    } else {
        let names: Vec<String> = sizes.iter().map(|&s| size_name(s)).collect();
        names.join(", ")
    }
}

fn fault(message: String) -> FabricFault {
    FabricFault {
        peer: None,
        message,
    }
}

/// The node's report from its GPUs' outcomes. `unfinished` lists the GPUs whose thread had not
/// ended after `waited`; their outcomes hold what they had done.
pub fn merge(
    outcomes: &[GpuOutcome],
    plan: &Plan,
    ops: &[CollectiveOp],
    world: u32,
    unfinished: &[usize],
    waited: Duration,
) -> FabricReport {
    let mut faults = Vec::new();
    if !plan.out_of_range.is_empty() {
        let list: Vec<String> = plan.out_of_range.iter().map(|&s| size_name(s)).collect();
        faults.push(fault(format!(
            "collective sizes not run: {} (a size must hold at least one f32 element and be at most {})",
            list.join(", "),
            size_name(crate::fabric::collective::MAX_SIZE_BYTES)
        )));
    }
    let n = world as usize;
    let small: Vec<String> = ops
        .iter()
        .filter_map(|&op| {
            let s = plan.too_small(op, n);
            (!s.is_empty()).then(|| format!("{} {}", op.name(), describe(plan, &s)))
        })
        .collect();
    if !small.is_empty() {
        faults.push(fault(format!(
            "NCCL collective sizes not run: {} (these operations move one block of f32 elements per rank, and such a size has fewer elements than the {world} ranks)",
            small.join("; ")
        )));
    }

    // The GPUs' own faults, each message once with every GPU that had it.
    let mut grouped: Vec<(String, Vec<(u32, usize)>)> = Vec::new();
    for o in outcomes {
        for m in &o.faults {
            match grouped.iter_mut().find(|(g, _)| g == m) {
                Some((_, who)) => who.push((o.rank, o.gpu)),
                None => grouped.push((m.clone(), vec![(o.rank, o.gpu)])),
            }
        }
    }
    faults.extend(
        grouped
            .into_iter()
            .map(|(m, pairs)| fault(format!("{}: {m}", who(pairs)))),
    );

    // One result per op and size that every local GPU measured.
    let mut collectives = Vec::new();
    let mut partial: Vec<String> = Vec::new();
    for &op in ops {
        for &size in &plan.sizes {
            let found: Vec<(&GpuOutcome, &SizeResult)> = outcomes
                .iter()
                .filter_map(|o| {
                    o.results
                        .iter()
                        .find(|r| r.op == op && r.size_bytes == size)
                        .map(|r| (o, r))
                })
                .collect();
            if found.is_empty() {
                continue;
            }
            if found.len() < outcomes.len() {
                let missing: Vec<(u32, usize)> = outcomes
                    .iter()
                    .filter(|o| !found.iter().any(|(f, _)| f.gpu == o.gpu))
                    .map(|o| (o.rank, o.gpu))
                    .collect();
                partial.push(format!(
                    "{} {} (not measured on {})",
                    op.name(),
                    size_name(size),
                    who(missing)
                ));
                continue;
            }
            collectives.push(CollectiveResult {
                op,
                algorithm: CollectiveAlgorithm::Nccl,
                size_bytes: size,
                iterations: found.iter().map(|(_, r)| r.iterations).min().unwrap_or(0),
                world,
                mean_ns: found.iter().map(|(_, r)| r.mean_ns).max().unwrap_or(0),
                wrong_elements: found
                    .iter()
                    .fold(0u64, |a, (_, r)| a.saturating_add(r.wrong_elements)),
            });
        }
    }
    if !partial.is_empty() {
        faults.push(fault(format!(
            "NCCL results left out because not every GPU of this node measured them: {}",
            partial.join("; ")
        )));
    }

    // Sizes no rank could hold.
    let cap = outcomes
        .iter()
        .filter_map(|o| o.agreed_sizes)
        .min()
        .map(|k| k.min(plan.sizes.len()));
    if let Some(k) = cap {
        if let Some(rest) = plan.sizes.get(k..).filter(|r| !r.is_empty()) {
            faults.push(fault(format!(
                "NCCL collective sizes not run (for any operation): {}: a rank had too little free GPU memory for their buffers",
                describe(plan, rest)
            )));
        }
    }

    // Sizes the sweep did not reach.
    let agreed = cap.unwrap_or(0);
    let mut missed: Vec<String> = Vec::new();
    for &op in ops {
        let small = plan.too_small(op, n);
        let left: Vec<u64> = plan
            .sizes
            .iter()
            .take(agreed)
            .copied()
            .filter(|s| !small.contains(s))
            .filter(|&s| {
                !outcomes
                    .iter()
                    .any(|o| o.results.iter().any(|r| r.op == op && r.size_bytes == s))
            })
            .collect();
        if !left.is_empty() {
            missed.push(format!("{} {}", op.name(), describe(plan, &left)));
        }
    }
    let not_started = cap.is_none() && !plan.sizes.is_empty() && !ops.is_empty();
    if !missed.is_empty() || not_started {
        let reason = end_reason(outcomes, unfinished);
        let what = if not_started {
            "no size ran".to_string()
        } else {
            format!("not run: {}", missed.join("; "))
        };
        faults.push(fault(format!(
            "the NCCL sweep ended early ({reason}); {what}"
        )));
    }

    if !unfinished.is_empty() {
        let pairs: Vec<(u32, usize)> = outcomes
            .iter()
            .filter(|o| unfinished.contains(&o.gpu))
            .map(|o| (o.rank, o.gpu))
            .collect();
        faults.push(fault(format!(
            "{}: the NCCL thread had not ended {} ms after it was asked for the results; it is left to end on its own",
            who(pairs),
            waited.as_millis()
        )));
    }

    FabricReport {
        latency: Vec::new(),
        collectives,
        faults,
    }
}

/// Why the local GPUs' sweeps ended, the most serious first.
fn end_reason(outcomes: &[GpuOutcome], unfinished: &[usize]) -> &'static str {
    let halts: Vec<Halt> = outcomes
        .iter()
        .filter_map(|o| match o.ended {
            Ended::Halted(h) => Some(h),
            _ => None,
        })
        .collect();
    if let Some(h) = halts.iter().min() {
        match h {
            Halt::Failed if outcomes.iter().any(|o| !o.faults.is_empty()) => {
                "after the failure reported above"
            }
            Halt::Failed => "a rank on another node could not go on",
            other => other.reason(),
        }
    } else if !unfinished.is_empty() || outcomes.iter().any(|o| o.ended == Ended::Running) {
        "its threads had not ended when the results were collected"
    } else {
        "for a reason no GPU recorded"
    }
}
