//! Tests of the NCCL phase's pure parts (no GPU, no NCCL needed): the job's rank arithmetic and
//! its refusals, each operation's buffer layout against NCCL's semantics and the host
//! collectives' exact check, the agreements' proposals, the merge of the GPUs' outcomes, the
//! communicator's config and id bytes, and the clear error where libnccl is missing.

use super::comm::{self, Failure};
use super::merge::{merge, who, Ended, GpuOutcome, SizeResult};
use super::plan::{
    self, geometry, mean_ns, moved_count, propose_go, propose_iterations, version_parts, Estimate,
    Halt, Plan, END_MARGIN,
};
use super::verify::{count_wrong, fill_input};
use super::*;
use crate::backend::{BackendError, NcclJob};
use crate::cuda::libs::{self, Library};
use hallmark_protocol::{
    CollectiveAlgorithm, CollectiveOp, CollectiveParams, CollectiveTransport, NcclSetup,
};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

fn params(min: u64, max: u64) -> CollectiveParams {
    CollectiveParams {
        ops: CollectiveOp::ALL.to_vec(),
        min_bytes: min,
        max_bytes: max,
        algorithm: CollectiveAlgorithm::Auto,
        transport: CollectiveTransport::Nccl,
        iterations: None,
    }
}

fn job(gpus: Vec<u32>, member: usize) -> NcclJob {
    let now = Instant::now();
    NcclJob {
        phase_id: 7,
        params: params(8, 64 * MIB),
        setup: NcclSetup {
            unique_id: vec![3; NcclSetup::ID_LEN],
            gpus,
        },
        member,
        start: now,
        end: now + Duration::from_secs(30),
    }
}

#[test]
fn each_member_gets_its_ranks_and_bad_jobs_are_refused() {
    let now = Instant::now();
    let r = check_job(&job(vec![8, 8, 4], 1), 8, now).unwrap();
    assert_eq!(
        r,
        Ranks {
            first: 8,
            count: 8,
            world: 20
        }
    );
    let r = check_job(&job(vec![8, 8, 4], 2), 4, now).unwrap();
    assert_eq!((r.first, r.count, r.world), (16, 4, 20));

    let err = |j: &NcclJob, local: usize| match check_job(j, local, now) {
        Err(BackendError::Config(m)) => m,
        other => panic!("expected a Config error, got {other:?}"),
    };
    let m = err(&job(vec![8, 8], 1), 4);
    assert!(
        m.contains("8 ranks") && m.contains("4 GPUs") && m.contains("phase 7"),
        "{m}"
    );
    let m = err(&job(vec![8, 8], 2), 8);
    assert!(m.contains("member 2") && m.contains("2 members"), "{m}");
    let mut j = job(vec![2], 0);
    j.setup.unique_id.truncate(100);
    let m = err(&j, 2);
    assert!(m.contains("100 bytes") && m.contains("128"), "{m}");
    let m = err(&job(vec![0], 0), 0);
    assert!(m.contains("world of 0"), "{m}");
    let mut j = job(vec![1], 0);
    j.end = j.start;
    assert!(err(&j, 1).contains("already over"));
    let j = job(vec![u32::MAX, 5], 1);
    assert!(err(&j, 5).contains("world"));
}

/// Every rank's output as NCCL computes it (its documented semantics) from every rank's input as
/// the sweep fills it; `corrupt` adds 1 to the first element of rank 1's input.
fn emulate(op: CollectiveOp, n: usize, size: u64, corrupt: bool) -> Vec<(plan::Geometry, Vec<u8>)> {
    let geos: Vec<plan::Geometry> = (0..n).map(|r| geometry(op, n, r, size).unwrap()).collect();
    let inputs: Vec<Vec<f32>> = geos
        .iter()
        .enumerate()
        .map(|(r, g)| {
            let mut b = vec![0u8; g.send_elems * 4];
            fill_input(&g.shape, 1, &mut b, false);
            let mut v: Vec<f32> = b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if corrupt && r == 1 && !v.is_empty() && op != CollectiveOp::Broadcast {
                v[0] += 1.0;
            }
            v
        })
        .collect();
    geos.into_iter()
        .enumerate()
        .map(|(r, g)| {
            let mut out = vec![f32::NAN; g.out_elems];
            let c = g.nccl_count;
            match op {
                CollectiveOp::AllReduce => {
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = inputs.iter().map(|x| x[i]).sum();
                    }
                }
                CollectiveOp::Broadcast => out.copy_from_slice(&inputs[0][..c]),
                CollectiveOp::AllGather => {
                    for (q, x) in inputs.iter().enumerate() {
                        out[q * c..(q + 1) * c].copy_from_slice(&x[..c]);
                    }
                }
                CollectiveOp::ReduceScatter => {
                    for j in 0..c {
                        out[g.recv_offset + j] = inputs.iter().map(|x| x[r * c + j]).sum();
                    }
                }
                CollectiveOp::AllToAll => {
                    for (q, x) in inputs.iter().enumerate() {
                        out[q * c..(q + 1) * c].copy_from_slice(&x[r * c..(r + 1) * c]);
                    }
                }
            }
            let bytes = out.iter().flat_map(|v| v.to_le_bytes()).collect();
            (g, bytes)
        })
        .collect()
}

#[test]
fn nccl_semantics_on_the_sweeps_layout_pass_the_host_check_exactly() {
    for op in CollectiveOp::ALL {
        for n in [1usize, 2, 3, 8, 20] {
            for size in [4u64 * 20, 1000, 4096, 12_345 * 4] {
                if geometry(op, n, 0, size).is_none() {
                    continue;
                }
                for (r, (g, out)) in emulate(op, n, size, false).into_iter().enumerate() {
                    assert_eq!(
                        count_wrong(&g.shape, 1, &out),
                        0,
                        "{} n={n} size={size} rank {r}",
                        op.name()
                    );
                    // Another iteration's pattern or a NaN-filled (unwritten) output fails.
                    let nan = vec![0xFFu8; out.len()];
                    let checked = match op {
                        CollectiveOp::ReduceScatter => g.nccl_count,
                        _ => g.out_elems,
                    };
                    assert_eq!(count_wrong(&g.shape, 1, &nan), checked as u64);
                }
            }
        }
    }
    // A rank's corrupted contribution shows where it lands.
    for (g, out) in emulate(CollectiveOp::AllReduce, 4, 4096, true) {
        assert_eq!(count_wrong(&g.shape, 1, &out), 1);
    }
    let wrong: u64 = emulate(CollectiveOp::AllGather, 4, 4096, true)
        .iter()
        .map(|(g, out)| count_wrong(&g.shape, 1, out))
        .sum();
    assert_eq!(wrong, 4, "every rank gathers rank 1's bad element");
}

#[test]
fn block_operations_round_the_count_to_the_world_and_skip_tiny_sizes() {
    use CollectiveOp::*;
    assert_eq!(moved_count(AllReduce, 3, 10), 10);
    assert_eq!(moved_count(Broadcast, 3, 10), 10);
    for op in [AllGather, ReduceScatter, AllToAll] {
        assert_eq!(moved_count(op, 3, 10), 9);
        assert_eq!(moved_count(op, 16, 8), 0);
    }
    // 1000 bytes = 250 elements on 8 ranks: blocks of 31, 248 elements moved.
    let g = geometry(AllGather, 8, 5, 1000).unwrap();
    assert_eq!((g.send_elems, g.out_elems, g.nccl_count), (31, 248, 31));
    let g = geometry(ReduceScatter, 8, 5, 1000).unwrap();
    assert_eq!((g.send_elems, g.out_elems, g.nccl_count), (248, 248, 31));
    assert_eq!(g.recv_offset, 5 * 31);
    let g = geometry(AllToAll, 8, 5, 1000).unwrap();
    assert_eq!((g.send_elems, g.out_elems, g.nccl_count), (248, 248, 31));
    let g = geometry(AllReduce, 8, 5, 1000).unwrap();
    assert_eq!((g.send_elems, g.out_elems, g.nccl_count), (250, 250, 250));
    assert_eq!(g.recv_offset, 0);
    assert!(geometry(AllReduce, 8, 0, 3).is_none());

    let plan = Plan::new(&params(1, 8 << 30));
    assert_eq!(plan.out_of_range, vec![1, 2, 8 << 30]);
    assert_eq!(plan.sizes.first(), Some(&4));
    assert_eq!(plan.sizes.last(), Some(&(4 << 30)));
    // On 16 ranks the block operations need 64 bytes (16 elements).
    assert_eq!(plan.too_small(AllToAll, 16), vec![4, 8, 16, 32]);
    assert!(plan.too_small(AllReduce, 16).is_empty());
}

#[test]
fn memory_decides_how_many_sizes_a_rank_holds() {
    let ops = CollectiveOp::ALL;
    let plan = Plan::new(&params(8, 256 * MIB));
    // The send and output buffers both reach the largest size.
    assert_eq!(
        plan.buffers(&ops, 8, 3, plan.sizes.len()),
        (256 * MIB, 256 * MIB)
    );
    assert_eq!(plan.buffers(&ops, 8, 3, 0), (0, 0));
    let all = plan.sizes.len();
    let reserve = plan::NCCL_RESERVE_BYTES;
    assert_eq!(plan.holdable(&ops, 8, 3, 14 << 30, reserve), all);
    // 900 MiB free: 512 MiB kept for NCCL, 2 × 128 MiB fits, 2 × 256 MiB does not.
    assert_eq!(plan.holdable(&ops, 8, 3, 900 * MIB, reserve), all - 1);
    assert_eq!(plan.holdable(&ops, 8, 3, 1 << 30, reserve), all);
    assert_eq!(plan.holdable(&ops, 8, 3, 100 * MIB, reserve), 0);
    let m = super::sweep::memory_message(&plan, &ops, 8, 3, all - 1, 1 << 30, 141 << 30);
    assert!(
        m.contains("sizes from 256 MiB") && m.contains("max_bytes to 128 MiB"),
        "{m}"
    );
    let m = super::sweep::memory_message(&plan, &ops, 8, 3, 0, 100 * MIB, 141 << 30);
    assert!(m.contains("no size fits"), "{m}");
}

#[test]
fn agreements_take_the_most_serious_halt_and_fit_the_window() {
    // The agreement is a minimum: a failure beats a stop beats the window beats go.
    let codes = [Halt::Failed, Halt::Stopped, Halt::Window].map(Halt::code);
    assert!(codes[0] < codes[1] && codes[1] < codes[2] && codes[2] < 1);
    for h in [Halt::Failed, Halt::Stopped, Halt::Window] {
        assert_eq!(Halt::from_agreed(h.code()), Some(h));
    }
    assert_eq!(Halt::from_agreed(1), None);
    assert_eq!(Halt::from_agreed(1000), None);
    assert_eq!(Halt::from_agreed(-7), Some(Halt::Failed));

    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    // The first size of an operation needs only the margin.
    assert_eq!(propose_go(None, s(1)), 1);
    assert_eq!(propose_go(None, END_MARGIN), Halt::Window.code());
    // Next: 4 × 1.25 × 100 ms + 2 × 50 ms + 250 ms = 850 ms.
    let e = Some(Estimate {
        mean: ms(100),
        aux: ms(50),
    });
    assert_eq!(propose_go(e, ms(900)), 1);
    assert_eq!(propose_go(e, ms(800)), 0);
    let huge = Some(Estimate {
        mean: Duration::MAX,
        aux: Duration::MAX,
    });
    assert_eq!(propose_go(huge, s(3600)), 0);

    // The plan's fixed count, as far as the window allows.
    assert_eq!(propose_iterations(Some(50), ms(1), ms(0), s(10)), 50);
    // 1.25 ms per iteration, (1.0006 s − 250 ms) / 1.25 ms = 600.48.
    let left = ms(1000) + Duration::from_micros(600);
    assert_eq!(propose_iterations(Some(1000), ms(1), ms(0), left), 600);
    // Without a count: SIZE_BUDGET (200 ms) / 1.25 ms = 160, capped at 20.
    assert_eq!(propose_iterations(None, ms(1), ms(0), s(10)), 20);
    // 200 ms / 22.5 ms = 8.9; at least one.
    assert_eq!(propose_iterations(None, ms(18), ms(0), s(10)), 8);
    assert_eq!(propose_iterations(None, s(1), ms(0), s(10)), 1);
    // Not even one fits.
    assert_eq!(propose_iterations(None, s(1), ms(0), s(1)), 0);
    assert_eq!(propose_iterations(Some(5), ms(1), s(1), s(2)), 0);
    // The same inputs give the same count on every rank (deterministic).
    assert_eq!(
        propose_iterations(None, ms(3), ms(2), s(5)),
        propose_iterations(None, ms(3), ms(2), s(5))
    );
}

fn outcome(gpu: usize, rank: u32, results: &[(CollectiveOp, u64, u32, u64, u64)]) -> GpuOutcome {
    let mut o = GpuOutcome::new(gpu, rank);
    o.results = results
        .iter()
        .map(
            |&(op, size_bytes, iterations, mean_ns, wrong_elements)| SizeResult {
                op,
                size_bytes,
                iterations,
                mean_ns,
                wrong_elements,
            },
        )
        .collect();
    o.ended = Ended::Complete;
    o.agreed_sizes = Some(usize::MAX);
    o
}

#[test]
fn the_node_reports_its_slowest_gpu_and_every_wrong_element() {
    use CollectiveOp::*;
    let mut p = params(1024, 4096);
    p.ops = vec![AllReduce, Broadcast];
    let plan = Plan::new(&p);
    let outcomes = vec![
        outcome(
            0,
            8,
            &[
                (AllReduce, 1024, 20, 5_000, 0),
                (AllReduce, 2048, 20, 7_000, 1),
                (AllReduce, 4096, 18, 9_000, 0),
                (Broadcast, 1024, 20, 4_000, 0),
                (Broadcast, 2048, 20, 4_500, 0),
                (Broadcast, 4096, 20, 5_000, 0),
            ],
        ),
        outcome(
            1,
            9,
            &[
                (AllReduce, 1024, 20, 6_000, 2),
                (AllReduce, 2048, 19, 6_500, 0),
                (AllReduce, 4096, 20, 9_500, 0),
                (Broadcast, 1024, 20, 3_000, 0),
                (Broadcast, 2048, 20, 4_400, 0),
                (Broadcast, 4096, 20, 5_100, 0),
            ],
        ),
    ];
    let r = merge(&outcomes, &plan, &p.ops, 16, &[], Duration::from_secs(1));
    assert!(r.faults.is_empty(), "{:?}", r.faults);
    assert!(r.latency.is_empty());
    assert_eq!(r.collectives.len(), 6);
    let first = &r.collectives[0];
    assert_eq!(
        (
            first.op,
            first.size_bytes,
            first.mean_ns,
            first.wrong_elements
        ),
        (AllReduce, 1024, 6_000, 2)
    );
    let second = &r.collectives[1];
    assert_eq!(
        (second.iterations, second.mean_ns, second.wrong_elements),
        (19, 7_000, 1)
    );
    assert_eq!(r.collectives[2].iterations, 18);
    for c in &r.collectives {
        assert_eq!(c.algorithm, CollectiveAlgorithm::Nccl);
        assert_eq!(c.world, 16);
    }
    assert_eq!(r.collectives[5].mean_ns, 5_100);
}

#[test]
fn sizes_not_reached_and_failures_are_faults_said_once() {
    use CollectiveOp::*;
    let mut p = params(1024, 8192);
    p.ops = vec![AllReduce, AllGather];
    let plan = Plan::new(&p);
    let mut a = outcome(
        0,
        4,
        &[
            (AllReduce, 1024, 20, 5_000, 0),
            (AllReduce, 2048, 20, 6_000, 0),
        ],
    );
    let mut b = outcome(
        1,
        5,
        &[
            (AllReduce, 1024, 20, 5_000, 0),
            (AllReduce, 2048, 20, 6_000, 0),
        ],
    );
    // Both GPUs' all-reduce of 4 KiB hung until the phase's end.
    let msg = format!(
        "{}; communicators aborted",
        Failure::Deadline.describe("all-reduce of 4 KiB (waiting for the 20 timed iterations)")
    );
    for o in [&mut a, &mut b] {
        o.faults.push(msg.clone());
        o.ended = Ended::Halted(Halt::Failed);
    }
    let r = merge(&[a, b], &plan, &p.ops, 8, &[], Duration::from_secs(1));
    assert_eq!(r.collectives.len(), 2);
    let texts: Vec<&str> = r.faults.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(
        texts[0],
        "ranks 4–5 (GPUs 0–1): all-reduce of 4 KiB (waiting for the 20 timed iterations) did not \
         complete before the phase's end; communicators aborted"
    );
    assert!(
        texts[1].contains("ended early (after the failure reported above)")
            && texts[1].contains("all-reduce 4 KiB–8 KiB (2 sizes)")
            && texts[1].contains("all-gather 1 KiB–8 KiB (4 sizes)"),
        "{}",
        texts[1]
    );

    // One GPU measured a size the other did not: left out, with a fault; a stop is the reason.
    let mut a = outcome(0, 0, &[(AllReduce, 1024, 20, 5_000, 0)]);
    let mut b = outcome(1, 1, &[]);
    a.ended = Ended::Halted(Halt::Stopped);
    b.ended = Ended::Halted(Halt::Stopped);
    let r = merge(&[a, b], &plan, &p.ops, 2, &[1], Duration::from_millis(500));
    assert!(r.collectives.is_empty());
    let all: String = r.faults.iter().map(|f| f.message.clone() + "\n").collect();
    assert!(
        all.contains("all-reduce 1 KiB (not measured on rank 1 (GPU 1))"),
        "{all}"
    );
    assert!(all.contains("ended early (the phase was stopped)"), "{all}");
    assert!(all.contains("all-reduce 2 KiB–8 KiB (3 sizes)"), "{all}");
    assert!(
        all.contains("rank 1 (GPU 1): the NCCL thread had not ended 500 ms"),
        "{all}"
    );
}

#[test]
fn memory_caps_small_sizes_and_a_sweep_that_never_started_are_reported() {
    use CollectiveOp::*;
    let mut p = params(4, 4096);
    p.ops = vec![AllReduce, AllToAll];
    let plan = Plan::new(&p);
    // All agreed to run the sizes up to 1 KiB (9 of 11); everything there ran.
    let mut results = Vec::new();
    for &s in plan.sizes.iter().take(9) {
        results.push((AllReduce, s, 20, 1_000, 0));
        if s >= 16 {
            results.push((AllToAll, s, 20, 1_000, 0));
        }
    }
    let mut o = outcome(0, 0, &results);
    o.agreed_sizes = Some(9);
    let r = merge(&[o], &plan, &p.ops, 4, &[], Duration::from_secs(1));
    let all: String = r.faults.iter().map(|f| f.message.clone() + "\n").collect();
    assert_eq!(r.faults.len(), 2, "{all}");
    assert!(
        all.contains("all-to-all 4 B–8 B (2 sizes)") && all.contains("than the 4 ranks"),
        "{all}"
    );
    assert!(
        all.contains(
            "(for any operation): 2 KiB–4 KiB (2 sizes): a rank had too little free GPU memory"
        ),
        "{all}"
    );

    // Init failed everywhere: nothing agreed, nothing ran.
    let mut o = GpuOutcome::new(0, 3);
    o.faults.push("NCCL init failed: NCCL remote error".into());
    o.ended = Ended::Halted(Halt::Failed);
    let r = merge(&[o], &plan, &p.ops, 4, &[], Duration::from_secs(1));
    let all: String = r.faults.iter().map(|f| f.message.clone() + "\n").collect();
    assert!(all.contains("rank 3 (GPU 0): NCCL init failed"), "{all}");
    assert!(
        all.contains("ended early (after the failure reported above); no size ran"),
        "{all}"
    );
}

#[test]
fn ranks_and_gpus_are_named_as_ranges() {
    assert_eq!(who(vec![(9, 1)]), "rank 9 (GPU 1)");
    assert_eq!(who(vec![(10, 2), (8, 0), (9, 1)]), "ranks 8–10 (GPUs 0–2)");
    assert_eq!(
        who(vec![(8, 0), (11, 3), (12, 4)]),
        "ranks 8, 11–12 (GPUs 0, 3–4)"
    );
}

#[test]
fn failures_say_what_was_in_progress() {
    let what = "all-reduce of 64 MiB (warm-up)";
    let m = Failure::Deadline.describe(what);
    assert_eq!(
        m,
        "all-reduce of 64 MiB (warm-up) did not complete before the phase's end"
    );
    assert!(Failure::Stopped
        .describe(what)
        .contains("phase was stopped"));
    let m = Failure::Nccl {
        code: 6,
        detail: "socket closed".into(),
    }
    .describe("NCCL init");
    assert_eq!(
        m,
        "NCCL init failed: NCCL remote error (a peer failed or its connection broke) (socket closed)"
    );
    assert_eq!(comm::result_name(42), "error 42");
}

#[test]
fn the_communicator_is_non_blocking_and_ids_keep_their_bytes() {
    let c = comm::nonblocking_config();
    assert_eq!(c.blocking, 0);
    assert_eq!(c.magic, 0xcafe_beef);
    assert_eq!(
        c.size,
        std::mem::size_of::<cudarc::nccl::sys::ncclConfig_t>()
    );
    assert!(c.version >= 21400);
    assert_eq!(c.cgaClusterSize, i32::MIN);
    assert!(c.netName.is_null() && c.commName.is_null());
    let bytes: [u8; 128] = std::array::from_fn(|i| (i * 2 + 1) as u8);
    let id = comm::unique_id(&bytes);
    assert_eq!(comm::id_bytes(&id), bytes.to_vec());
    assert_eq!(version_parts(22703), (2, 27, 3));
    assert_eq!(version_parts(2708), (2, 7, 8));
    assert_eq!(mean_ns(1.5, 3), 500_000);
    assert_eq!(mean_ns(f32::NAN, 3), 0);
    assert_eq!(mean_ns(f32::MAX, 1), u64::MAX);
}

/// On a host without libnccl (like the machines these tests run on) the id and the phase are a
/// clear error naming the library and what to install, not a panic; the job is checked first.
#[test]
fn without_libnccl_ids_and_phases_are_a_clear_error() {
    if libs::cuda_library_present(Library::Nccl) {
        return; // an NCCL host: the GPU check exercises it there.
    }
    let mut state = NcclState::default();
    let check = |e: BackendError| match e {
        BackendError::Unsupported(m) => {
            assert!(
                m.contains("libnccl.so") && m.contains("libnccl.so.2"),
                "{m}"
            );
            assert!(
                m.contains("libnccl-dev") && m.contains("LD_LIBRARY_PATH"),
                "{m}"
            );
            assert!(m.contains("data-plane"), "{m}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    };
    check(state.unique_id().unwrap_err());
    check(state.start(job(vec![2, 2], 1), &[0, 1]).unwrap_err());
    // A bad job is refused before the library is looked at.
    assert!(matches!(
        state.start(job(vec![2, 2], 1), &[0]),
        Err(BackendError::Config(_))
    ));
    // Nothing ran: finishing gives an empty report.
    assert_eq!(state.finish(Duration::from_millis(10)), Default::default());
    state.stop();
    state.shutdown(Instant::now());
    assert!(Library::Nccl.candidates().iter().any(|c| c == "libnccl.so"));
}
