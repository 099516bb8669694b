//! Collective operations between the probes of a `collective` phase, over TCP: all-reduce (sum),
//! all-gather, reduce-scatter (sum), broadcast (root 0) and all-to-all on f32 host buffers, swept
//! over message sizes with nccl-tests' meaning of the size, every result checked exactly.
//!
//! * `mesh` — every pair of members connected once (the lower rank dials the higher), each
//!   connection authenticated by a challenge–response on the phase's MAC before any data.
//! * `link` — the connections and their reads and writes, bounded by the phase window.
//! * `xfer` — the transfer engine: a sender thread beside the receiving thread for full
//!   duplex, the output lent piece by piece for pipelining, fused receive-and-reduce.
//! * `ring` — bandwidth-optimal algorithms (ring, chain, pairwise exchange for all-to-all).
//! * `direct` — latency-optimal algorithms (recursive doubling, binomial tree, direct exchange).
//! * `sweep` — sizes, warm-up and timed iterations, early ends.
//! * `barrier` — the barriers before each stage of a size, where rank 0 decides for all
//!   (go or stop, the iteration count).
//! * `verify` — buffer shapes (uneven segments), the input pattern and the exact check.
//!
//! `CollectiveAlgorithm::resolve` picks the algorithm per size (`auto`: latency-optimal below
//! 64 KiB, ring from there) and each result names the one used.
//!
//! **The payload is not encrypted.** The peers are authenticated (a handshake completes only
//! between the two members holding their pair's key), but the data after the handshake travels in
//! clear TCP and is not integrity-protected against an active attacker on the path. This was
//! decided: TLS on one QUIC stream moved only ~0.31 GB/s on the reference machine, far below what
//! the links under test carry, and the data is a synthetic pattern. What is required is that a
//! probe talks only to the members the coordinator named; the exact check of every result catches
//! corruption on the path as wrong elements.
//!
//! A member that cannot be connected, fails authentication, or stops answering ends the sweep
//! with a [`FabricFault`] naming it and the operation and size in progress; every blocking call
//! ends by the window's end (or after 10 s without progress), so a bad node or link shows as a
//! named fault, not as a hang. A rank that gives up shuts its connections, so the ranks waiting
//! on it end at once too; their faults name it as having closed the connection, while the rank
//! next to the culprit names the culprit with the cause (silent, reset, refused).
//!
//! Sockets: `TCP_NODELAY` on every connection; buffer sizes are left to the kernel's autotuning
//! (on Linux an explicit `SO_SNDBUF`/`SO_RCVBUF` would switch autotuning off and be capped by
//! `net.core.{w,r}mem_max`, usually below what autotuning reaches).

mod barrier;
mod direct;
mod link;
mod mesh;
mod ring;
mod sweep;
/// Shapes, the input pattern and the exact check (also used by the cuda backend's NCCL sweep).
pub(crate) mod verify;
mod xfer;

#[cfg(test)]
mod tests;

use super::{auth::PhaseMac, DataPlane, PhaseWindow};
use hallmark_protocol::{CollectiveParams, FabricFault, FabricPhase, FabricReport};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use sweep::{sizes, MAX_ITERS, MAX_SIZE_BYTES, SIZE_BUDGET};

/// Runs the collective sweep of `phase` as member `rank`, on this thread, within `window`.
/// Returns by the window's end (or soon after `stop` is set) with every result measured so far.
pub fn run(
    dp: &DataPlane,
    rank: usize,
    phase: &FabricPhase,
    params: &CollectiveParams,
    mac: &PhaseMac,
    window: &PhaseWindow,
    stop: &AtomicBool,
) -> FabricReport {
    let members = &phase.members;
    if rank >= members.len() {
        return FabricReport {
            faults: vec![FabricFault {
                peer: None,
                message: format!(
                    "collective: rank {rank} is outside the phase's {} members; the phase is inconsistent",
                    members.len()
                ),
            }],
            ..FabricReport::default()
        };
    }
    // Started early: wait for the window (in steps, so that `stop` is seen).
    while Instant::now() < window.start && !stop.load(Ordering::Relaxed) {
        let left = window.start.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_millis(10)));
    }
    let links = if members.len() == 1 {
        link::Links::alone()
    } else {
        match mesh::connect(dp, rank, members, mac, window.end, stop) {
            Ok(l) => l,
            Err(faults) => {
                return FabricReport {
                    faults,
                    ..FabricReport::default()
                }
            }
        }
    };
    let sweep = sweep::Sweep {
        links: &links,
        rank,
        members,
        params,
        window,
        stop,
    };
    let (collectives, faults) = sweep.run();
    FabricReport {
        latency: Vec::new(),
        collectives,
        faults,
    }
}

/// A byte count as people write it: `8 B`, `64 KiB`, `256 MiB`, `3000 B`.
pub fn size_name(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} B")
}
