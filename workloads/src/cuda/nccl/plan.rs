//! The pure arithmetic of the NCCL sweep, the same on every rank: which sizes run, how each
//! operation lays out its buffers at a size, how much device memory the sweep needs, and what a
//! rank proposes at the agreements (go or stop, how many timed iterations).
//!
//! Sizes mean what they mean for the host collectives and nccl-tests ([`CollectiveOp`]); elements
//! are f32. NCCL's all-gather, reduce-scatter and all-to-all move equal blocks per rank, so there
//! the element count is rounded down to a multiple of the world size (at most `world − 1`
//! elements fewer than the size says; the result keeps the plan's size), and a size with fewer
//! elements than ranks is not run.

use super::verify::Shape;
use crate::fabric::collective::{sizes, MAX_ITERS, MAX_SIZE_BYTES, SIZE_BUDGET};
use hallmark_protocol::fabric::MAX_COLLECTIVE_ITERATIONS;
use hallmark_protocol::{CollectiveOp, CollectiveParams};
use std::time::Duration;

/// Time kept free before the phase's end: the members' ends differ by the clock-sync
/// uncertainty, and the communicators are finalised in it.
pub const END_MARGIN: Duration = Duration::from_millis(250);
/// Device memory left free beside the sweep's buffers for what NCCL allocates when it first
/// connects an algorithm (its per-peer buffers).
pub const NCCL_RESERVE_BYTES: u64 = 512 << 20;
/// The oldest NCCL used: non-blocking communicators, `ncclCommFinalize`, `ncclGetLastError`.
pub const MIN_VERSION: (i32, i32) = (2, 14);

/// Why the sweep stops, as a rank proposes it at an agreement. The agreement is the minimum over
/// all ranks, so the most serious reason wins: a failed rank, then a stop, then the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Halt {
    /// A rank could not go on (its memory, a CUDA error).
    Failed,
    /// The phase was stopped.
    Stopped,
    /// The window has no room for the next size.
    Window,
}

impl Halt {
    /// The proposal that carries it (go and iteration counts are ≥ 1).
    pub fn code(self) -> i32 {
        match self {
            Halt::Failed => -2,
            Halt::Stopped => -1,
            Halt::Window => 0,
        }
    }

    /// The halt an agreed value means, or `None` for go.
    pub fn from_agreed(v: i32) -> Option<Halt> {
        match v {
            v if v >= 1 => None,
            0 => Some(Halt::Window),
            -1 => Some(Halt::Stopped),
            _ => Some(Halt::Failed),
        }
    }

    /// Why the sweep ended, in words.
    pub fn reason(self) -> &'static str {
        match self {
            Halt::Failed => "a rank failed",
            Halt::Stopped => "the phase was stopped",
            Halt::Window => "the phase window was too short for the next size",
        }
    }
}

/// The element count NCCL moves for `op` at nccl-tests count `count` on `world` ranks.
pub fn moved_count(op: CollectiveOp, world: usize, count: usize) -> usize {
    let n = world.max(1);
    match op {
        CollectiveOp::AllReduce | CollectiveOp::Broadcast => count,
        CollectiveOp::AllGather | CollectiveOp::ReduceScatter | CollectiveOp::AllToAll => {
            count / n * n
        }
    }
}

/// One operation at one size on one rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// The host collectives' shape of the moved count: the pattern and the check.
    pub shape: Shape,
    /// Elements of the send buffer the operation reads (and the host fills).
    pub send_elems: usize,
    /// Elements of the output copied back and checked (NaN-filled before the timed iterations).
    pub out_elems: usize,
    /// The count NCCL is given: all elements for all-reduce and broadcast; the block per rank for
    /// all-gather (sent), reduce-scatter (received) and all-to-all (to and from each peer).
    pub nccl_count: usize,
    /// Where this rank's received block starts in the output, in elements (reduce-scatter
    /// writes it where the host check expects it; 0 otherwise).
    pub recv_offset: usize,
}

/// The geometry of `op` at `size_bytes` on `rank` of `world`, or `None` where the size holds no
/// element (per rank, for the block-wise operations).
pub fn geometry(op: CollectiveOp, world: usize, rank: usize, size_bytes: u64) -> Option<Geometry> {
    let n = world.max(1);
    let count = usize::try_from(size_bytes / 4).ok()?;
    let moved = moved_count(op, n, count);
    if moved == 0 {
        return None;
    }
    let block = moved / n;
    let shape = Shape::new(op, n, rank, moved);
    let (nccl_count, recv_offset) = match op {
        CollectiveOp::AllReduce | CollectiveOp::Broadcast => (moved, 0),
        CollectiveOp::AllGather | CollectiveOp::AllToAll => (block, 0),
        CollectiveOp::ReduceScatter => (block, rank.min(n - 1) * block),
    };
    Some(Geometry {
        send_elems: shape.in_elems,
        out_elems: moved,
        nccl_count,
        recv_offset,
        shape,
    })
}

/// The sizes of a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Sizes run, in order (from `min_bytes` doubling up to `max_bytes`).
    pub sizes: Vec<u64>,
    /// Sizes of the doubling left out: below one f32 or above [`MAX_SIZE_BYTES`].
    pub out_of_range: Vec<u64>,
}

impl Plan {
    pub fn new(params: &CollectiveParams) -> Plan {
        let (sizes, out_of_range) = sizes(params.min_bytes, params.max_bytes)
            .into_iter()
            .partition(|s| (4..=MAX_SIZE_BYTES).contains(s));
        Plan {
            sizes,
            out_of_range,
        }
    }

    /// The sizes of `op` with fewer elements than ranks (not run; the same on every rank).
    pub fn too_small(&self, op: CollectiveOp, world: usize) -> Vec<u64> {
        self.sizes
            .iter()
            .copied()
            .filter(|&s| geometry(op, world, 0, s).is_none())
            .collect()
    }

    /// Bytes of the send and of the output buffer for the first `k` sizes of every op in `ops`.
    pub fn buffers(&self, ops: &[CollectiveOp], world: usize, rank: usize, k: usize) -> (u64, u64) {
        let (mut send, mut out) = (0u64, 0u64);
        for &op in ops {
            for &s in self.sizes.iter().take(k) {
                if let Some(g) = geometry(op, world, rank, s) {
                    send = send.max(g.send_elems as u64 * 4);
                    out = out.max(g.out_elems as u64 * 4);
                }
            }
        }
        (send, out)
    }

    /// How many of the sizes (from the smallest) fit `free` bytes of device memory, keeping
    /// `reserve` free.
    pub fn holdable(
        &self,
        ops: &[CollectiveOp],
        world: usize,
        rank: usize,
        free: u64,
        reserve: u64,
    ) -> usize {
        let budget = free.saturating_sub(reserve);
        (0..=self.sizes.len())
            .take_while(|&k| {
                let (s, o) = self.buffers(ops, world, rank, k);
                s.saturating_add(o) <= budget
            })
            .last()
            .unwrap_or(0)
    }
}

/// A size's times on this rank, to estimate the next (twice as large).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Mean time of one operation.
    pub mean: Duration,
    /// Filling, copying and checking the buffers around it.
    pub aux: Duration,
}

/// Whether this rank proposes to run the next size with `left` of the window: the first size of
/// an operation whenever the margin is left; a next one when twice the previous size's warm-up
/// and one timed iteration (with a quarter to spare), its buffer work and the margin fit.
pub fn propose_go(prev: Option<Estimate>, left: Duration) -> i32 {
    let need = match prev {
        None => END_MARGIN,
        Some(e) => {
            let op = e.mean.as_secs_f64() * 4.0 * 1.25;
            let aux = e.aux.as_secs_f64() * 2.0;
            secs(op + aux).saturating_add(END_MARGIN)
        }
    };
    if need < left {
        1
    } else {
        Halt::Window.code()
    }
}

/// The timed iterations this rank proposes after a warm-up of `warm`: the plan's fixed count, or
/// as many as fit [`SIZE_BUDGET`] (at most [`MAX_ITERS`]), at least one; never more than fit the
/// window (`left`, keeping the buffer work `aux` and the margin); 0 ([`Halt::Window`]) when not
/// even one fits.
pub fn propose_iterations(
    fixed: Option<u32>,
    warm: Duration,
    aux: Duration,
    left: Duration,
) -> i32 {
    let per = warm.max(Duration::from_micros(1)).as_secs_f64() * 1.25;
    let most = fixed
        .unwrap_or(MAX_ITERS)
        .clamp(1, MAX_COLLECTIVE_ITERATIONS);
    let budget = match fixed {
        Some(n) => f64::from(n),
        None => (SIZE_BUDGET.as_secs_f64() / per).floor(),
    };
    let room = left
        .saturating_sub(aux.saturating_mul(2))
        .saturating_sub(END_MARGIN);
    let fit = (room.as_secs_f64() / per).floor();
    let k = budget.clamp(1.0, f64::from(most)).min(fit);
    if k >= 1.0 {
        k as i32
    } else {
        Halt::Window.code()
    }
}

/// A duration from seconds, saturating (never a panic on a huge or odd value).
fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(if s > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

/// The mean of `iters` operations that took `elapsed_ms` (CUDA events), in ns.
pub fn mean_ns(elapsed_ms: f32, iters: u32) -> u64 {
    let ns = f64::from(elapsed_ms) * 1e6 / f64::from(iters.max(1));
    if ns.is_finite() && ns > 0.0 {
        ns.round() as u64 // `as` saturates
    } else {
        0
    }
}

/// (major, minor, patch) of an `ncclGetVersion` code (2.9 and later: major×10000 + minor×100 +
/// patch; before: major×1000 + minor×100 + patch).
pub fn version_parts(code: i32) -> (i32, i32, i32) {
    if code >= 10000 {
        (code / 10000, code % 10000 / 100, code % 100)
    } else {
        (code / 1000, code % 1000 / 100, code % 100)
    }
}
