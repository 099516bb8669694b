//! The size sweep: for each operation, sizes from `min_bytes` doubling up to `max_bytes`; per
//! size a barrier, one warm-up, a second barrier that carries the iteration count rank 0 chose,
//! the timed iterations, and the check of the last result.
//!
//! Rank 0 decides for everyone, so the ranks always agree: at the first barrier whether the
//! window still holds the size (estimated from the previous size: twice its time), at the second
//! how many timed iterations fit [`SIZE_BUDGET`] and the window, from its own warm-up (at most
//! [`MAX_ITERS`], at least one; or the plan's fixed `iterations`, as far as the window allows). A rank whose `stop` flag is set says so at the next barrier and
//! rank 0 ends the sweep for all. Buffers are allocated once for the largest size: input, output,
//! and a scratch buffer only as large as the latency-optimal all-reduce needs.
//!
//! The warm-up runs on the pattern of iteration 0; the timed iterations on that of iteration 1,
//! into an output first filled with NaN, so a result that is stale or partly unwritten shows.

use super::barrier::{Decision, StopReason};
use super::link::{CollError, Links};
use super::verify::{count_wrong, fill_input, Shape};
use super::xfer::{with_xfer, Buffers, Layout, Xfer, INLINE_MAX_BYTES, PIECE_BYTES, STAGE_BYTES};
use super::{direct, ring, size_name};
use crate::fabric::PhaseWindow;
use hallmark_protocol::fabric::MAX_COLLECTIVE_ITERATIONS;
use hallmark_protocol::{
    CollectiveAlgorithm, CollectiveOp, CollectiveParams, CollectiveResult, FabricFault,
    FabricMember,
};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Most timed iterations per size.
pub const MAX_ITERS: u32 = 20;
/// Time the timed iterations of one size aim for.
pub const SIZE_BUDGET: Duration = Duration::from_millis(200);
/// Largest message size run: the host buffers need about three times it.
pub const MAX_SIZE_BYTES: u64 = 4 << 30;
/// Time kept free before the window's end (the members' windows differ by the clock-sync
/// uncertainty).
const END_MARGIN: Duration = Duration::from_millis(50);

/// The per-size budget in effect (short under test, so the test sweeps stay fast).
fn size_budget() -> Duration {
    if cfg!(test) {
        Duration::from_millis(15)
    } else {
        SIZE_BUDGET
    }
}

/// Piece size of the output in effect (under test small and uneven, so that every segment is
/// cut into several pieces at the sizes the tests can afford).
fn piece_bytes() -> usize {
    if cfg!(test) {
        12 << 10
    } else {
        PIECE_BYTES
    }
}

/// Staging block in effect (under test not a divisor of the piece size).
fn stage_bytes() -> usize {
    if cfg!(test) {
        5 << 10
    } else {
        STAGE_BYTES
    }
}

/// The sizes of the sweep: `min` doubling while at most `max`.
pub fn sizes(min: u64, max: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut s = min.max(1);
    while s <= max {
        out.push(s);
        match s.checked_mul(2) {
            Some(t) => s = t,
            None => break,
        }
    }
    out
}

/// A test-only hook: (phase id, rank) that add 1 to the first element of their contribution.
#[cfg(test)]
pub(super) static CORRUPT: std::sync::Mutex<Vec<(u32, usize)>> = std::sync::Mutex::new(Vec::new());

/// A test-only hook: (phase id, rank, size) where a rank stops answering before the warm-up —
/// `true`: it closes its connections at once; `false`: it goes silent until the window's end.
#[cfg(test)]
pub(super) static VANISH: std::sync::Mutex<Vec<(u32, usize, u64, bool)>> =
    std::sync::Mutex::new(Vec::new());

fn corrupt(phase_id: u32, rank: usize) -> bool {
    #[cfg(test)]
    {
        CORRUPT
            .lock()
            .map(|v| v.contains(&(phase_id, rank)))
            .unwrap_or(false)
    }
    #[cfg(not(test))]
    {
        let _ = (phase_id, rank);
        false
    }
}

/// Runs one operation on the size's buffers.
fn run_op(x: &mut Xfer, shape: &Shape, algo: CollectiveAlgorithm) -> Result<(), CollError> {
    let (r, n) = (shape.rank, shape.ranks);
    let latency = algo == CollectiveAlgorithm::LatencyOptimal;
    match shape.op {
        CollectiveOp::AllReduce if latency => direct::all_reduce(x, r, n),
        CollectiveOp::AllReduce => ring::all_reduce(x, r, n),
        CollectiveOp::AllGather if latency => direct::all_gather(x, r, n),
        CollectiveOp::AllGather => ring::all_gather(x, r, n),
        CollectiveOp::ReduceScatter if latency => direct::reduce_scatter(x, r, n),
        CollectiveOp::ReduceScatter => ring::reduce_scatter(x, r, n),
        CollectiveOp::Broadcast if latency => direct::broadcast(x, r, n),
        CollectiveOp::Broadcast => ring::broadcast(x, r, n),
        CollectiveOp::AllToAll if latency => direct::all_to_all(x, shape, r, n),
        CollectiveOp::AllToAll => ring::all_to_all(x, shape, r, n),
    }
}

/// The previous size's times on this rank, to estimate the next.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    mean: Duration,
    fill: Duration,
}

/// The buffers of the whole sweep, allocated once.
struct Memory {
    input: Vec<u8>,
    out: Vec<u8>,
    scratch: Vec<u8>,
    stage: Vec<u8>,
}

impl Memory {
    fn alloc(input: usize, out: usize, scratch: usize) -> Result<Memory, String> {
        let one = |bytes: usize, what: &str| {
            let mut v = Vec::new();
            v.try_reserve_exact(bytes).map_err(|e| {
                format!(
                    "cannot allocate the collective {what} buffer ({}): {e}; lower the plan's max_bytes",
                    size_name(bytes as u64)
                )
            })?;
            v.resize(bytes, 0);
            Ok::<_, String>(v)
        };
        Ok(Memory {
            input: one(input, "input")?,
            out: one(out, "output")?,
            scratch: one(scratch, "scratch")?,
            stage: one(stage_bytes(), "staging")?,
        })
    }

    fn lend(&mut self) -> Buffers<'_> {
        Buffers {
            input: &self.input,
            out: &mut self.out,
            scratch: &mut self.scratch,
            stage: &mut self.stage,
        }
    }
}

/// How a size ended short of a result.
enum Cut {
    Stopped(StopReason),
    Failed(FabricFault),
}

/// Everything one rank's sweep works with.
pub(super) struct Sweep<'a> {
    pub links: &'a Links,
    pub rank: usize,
    pub members: &'a [FabricMember],
    pub params: &'a CollectiveParams,
    pub window: &'a PhaseWindow,
    pub stop: &'a AtomicBool,
}

impl Sweep<'_> {
    pub(super) fn n(&self) -> usize {
        self.members.len().max(1)
    }

    fn fault(&self, e: &CollError, what: &str) -> Cut {
        Cut::Failed(FabricFault {
            peer: e
                .peer()
                .and_then(|p| self.members.get(p))
                .map(|m| m.node_id.clone()),
            message: format!("{what}: {}", e.describe(self.members)),
        })
    }

    /// Runs the sweep; returns what was measured and what went wrong.
    pub fn run(&self) -> (Vec<CollectiveResult>, Vec<FabricFault>) {
        let mut results = Vec::new();
        let mut faults = Vec::new();
        let p = self.params;
        let (plan, skipped): (Vec<u64>, Vec<u64>) = sizes(p.min_bytes, p.max_bytes)
            .into_iter()
            .partition(|s| (4..=MAX_SIZE_BYTES).contains(s));
        if !skipped.is_empty() {
            let list: Vec<String> = skipped.iter().map(|&s| size_name(s)).collect();
            faults.push(FabricFault {
                peer: None,
                message: format!(
                    "collective sizes not run: {} (a size must hold at least one f32 element and be at most {})",
                    list.join(", "),
                    size_name(MAX_SIZE_BYTES)
                ),
            });
        }
        let (mut in_cap, mut out_cap, mut scratch_cap) = (0, 0, 0);
        for &op in &p.ops {
            for &s in &plan {
                let lay = Layout::new(&self.shape(op, s), piece_bytes());
                in_cap = in_cap.max(lay.in_bytes);
                out_cap = out_cap.max(lay.out_bytes);
                if op == CollectiveOp::AllReduce
                    && p.algorithm.resolve(s) == CollectiveAlgorithm::LatencyOptimal
                {
                    scratch_cap = scratch_cap.max(lay.out_bytes);
                }
            }
        }
        let mut mem = match Memory::alloc(in_cap, out_cap, scratch_cap) {
            Ok(m) => m,
            Err(message) => {
                faults.push(FabricFault {
                    peer: None,
                    message,
                });
                return (results, faults);
            }
        };

        let mut seq = 0u32;
        'ops: for (oi, &op) in p.ops.iter().enumerate() {
            let mut est: Option<Estimate> = None;
            for (si, &size) in plan.iter().enumerate() {
                match self.run_size(&mut mem, &mut seq, op, size, &mut est) {
                    Ok(r) => results.push(r),
                    Err(Cut::Stopped(why)) => {
                        faults.push(self.not_reached(&plan, oi, si, why));
                        break 'ops;
                    }
                    Err(Cut::Failed(f)) => {
                        faults.push(f);
                        // Peers blocked on this rank see the end of the stream at once.
                        self.links.shutdown_all();
                        break 'ops;
                    }
                }
            }
        }
        (results, faults)
    }

    fn shape(&self, op: CollectiveOp, size: u64) -> Shape {
        Shape::new(
            op,
            self.n(),
            self.rank,
            usize::try_from(size / 4).unwrap_or(usize::MAX),
        )
    }

    /// One size: barrier, warm-up, barrier, timed iterations, check.
    fn run_size(
        &self,
        mem: &mut Memory,
        seq: &mut u32,
        op: CollectiveOp,
        size: u64,
        est: &mut Option<Estimate>,
    ) -> Result<CollectiveResult, Cut> {
        let algo = self.params.algorithm.resolve(size);
        let what = format!("{} of {} ({})", op.name(), size_name(size), algo.name());
        let shape = self.shape(op, size);
        let layout = Layout::new(&shape, piece_bytes());
        let threaded = self.n() > 1 && size > INLINE_MAX_BYTES;
        let bad = corrupt(self.window.phase_id, self.rank);

        fill_input(&shape, 0, &mut mem.input, bad);
        let prev = *est;
        let go = self.barrier(seq, op, size, 0, |left| match prev {
            None => Decision::Go(0),
            // Twice the previous size, a warm-up and one timed iteration, fills and the check.
            Some(e) if (e.mean * 4).mul_f64(1.25) + e.fill * 6 + END_MARGIN <= left => {
                Decision::Go(0)
            }
            Some(_) => Decision::Stop(StopReason::Window),
        });
        match go {
            Ok(Decision::Go(_)) => {}
            Ok(Decision::Stop(why)) => return Err(Cut::Stopped(why)),
            Err(e) => return Err(self.fault(&e, &format!("{what}, barrier"))),
        }

        #[cfg(test)]
        self.test_vanish(size)?;

        let warm = self
            .iterate(&shape, &layout, algo, threaded, 1, mem.lend())
            .map_err(|(_, e)| self.fault(&e, &format!("{what}, warm-up")))?;

        let t = Instant::now();
        fill_input(&shape, 1, &mut mem.input, bad);
        if let Some(o) = mem.out.get_mut(..layout.out_bytes) {
            o.fill(0xFF); // NaN: whatever the timed iterations leave unwritten shows
        }
        let fill = t.elapsed();
        // A plan's fixed iteration count, or as many as fit the per-size budget; never more than
        // the window has room for.
        let fixed = self.params.iterations;
        let most = fixed
            .unwrap_or(MAX_ITERS)
            .clamp(1, MAX_COLLECTIVE_ITERATIONS);
        let go = self.barrier(seq, op, size, 1, |left| {
            let per = warm.max(Duration::from_micros(1)).mul_f64(1.25);
            let budget = match fixed {
                Some(n) => u64::from(n),
                None => (size_budget().as_secs_f64() / per.as_secs_f64()).floor() as u64,
            };
            let room = left.saturating_sub(fill * 3 + END_MARGIN);
            let fit = (room.as_secs_f64() / per.as_secs_f64()).floor() as u64;
            match budget.clamp(1, u64::from(most)).min(fit) {
                0 => Decision::Stop(StopReason::Window),
                k => Decision::Go(k as u32),
            }
        });
        let iters = match go {
            Ok(Decision::Go(k)) if (1..=most).contains(&k) => k,
            Ok(Decision::Go(k)) => {
                let e = CollError::OutOfStep {
                    peer: 0,
                    detail: format!("it asked for {k} timed iterations (1 to {most} are valid)"),
                };
                return Err(self.fault(&e, &format!("{what}, barrier")));
            }
            Ok(Decision::Stop(why)) => return Err(Cut::Stopped(why)),
            Err(e) => return Err(self.fault(&e, &format!("{what}, barrier"))),
        };

        let elapsed = self
            .iterate(&shape, &layout, algo, threaded, iters, mem.lend())
            .map_err(|(k, e)| {
                self.fault(&e, &format!("{what}, timed iteration {} of {iters}", k + 1))
            })?;
        let mean = elapsed / iters;
        let wrong = count_wrong(&shape, 1, mem.out.get(..layout.out_bytes).unwrap_or(&[]));
        *est = Some(Estimate { mean, fill });
        Ok(CollectiveResult {
            op,
            algorithm: algo,
            size_bytes: size,
            iterations: iters,
            world: u32::try_from(self.n()).unwrap_or(u32::MAX),
            mean_ns: u64::try_from(mean.as_nanos()).unwrap_or(u64::MAX),
            wrong_elements: wrong,
        })
    }

    /// The test hook [`VANISH`]: this rank stops answering at this size.
    #[cfg(test)]
    fn test_vanish(&self, size: u64) -> Result<(), Cut> {
        let hit = VANISH.lock().ok().and_then(|v| {
            v.iter()
                .find(|(p, r, s, _)| (*p, *r, *s) == (self.window.phase_id, self.rank, size))
                .map(|t| t.3)
        });
        let Some(close) = hit else {
            return Ok(());
        };
        if close {
            self.links.shutdown_all();
        } else {
            let left = self.window.end.saturating_duration_since(Instant::now());
            std::thread::sleep(left + Duration::from_millis(300));
        }
        Err(Cut::Failed(FabricFault {
            peer: None,
            message: "test hook: this rank stopped answering".into(),
        }))
    }

    /// `iters` operations back to back; their time (from the first operation's start to the last
    /// one's end, the sender thread's start and end left out), or the iteration that failed
    /// (from 0) and the error.
    fn iterate(
        &self,
        shape: &Shape,
        layout: &Layout,
        algo: CollectiveAlgorithm,
        threaded: bool,
        iters: u32,
        bufs: Buffers<'_>,
    ) -> Result<Duration, (u32, CollError)> {
        let mut at = 0;
        with_xfer(self.links, layout, bufs, threaded, self.window.end, |x| {
            let t = Instant::now();
            for k in 0..iters {
                at = k;
                run_op(x, shape, algo)?;
            }
            Ok(t.elapsed())
        })
        .map_err(|e| (at, e))
    }

    /// The fault listing what the sweep did not reach.
    fn not_reached(&self, plan: &[u64], oi: usize, si: usize, why: StopReason) -> FabricFault {
        let reason = match why {
            StopReason::Requested => "the phase was stopped",
            StopReason::Window => "the phase window was too short for the next size",
        };
        let mut parts = Vec::new();
        for (k, op) in self.params.ops.iter().enumerate().skip(oi) {
            let rest = plan.get(if k == oi { si } else { 0 }..).unwrap_or(&[]);
            match (rest.first(), rest.last()) {
                (Some(a), Some(b)) if a == b => {
                    parts.push(format!("{} {}", op.name(), size_name(*a)))
                }
                (Some(a), Some(b)) => parts.push(format!(
                    "{} {}–{} ({} sizes)",
                    op.name(),
                    size_name(*a),
                    size_name(*b),
                    rest.len()
                )),
                _ => {}
            }
        }
        FabricFault {
            peer: None,
            message: format!(
                "the collective sweep ended early ({reason}); not run: {}",
                parts.join("; ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_double_and_include_the_maximum_when_hit() {
        assert_eq!(sizes(8, 64), [8, 16, 32, 64]);
        assert_eq!(sizes(8, 100), [8, 16, 32, 64]);
        assert_eq!(sizes(0, 3), [1, 2]);
        assert!(sizes(16, 8).is_empty());
        assert_eq!(sizes(1 << 62, u64::MAX).len(), 2);
    }
}
