//! The latency mesh: every directed pair of a fabric phase's members ping-pongs over UDP, one pair
//! at a time per member, and the round trips go into HDR histograms.
//!
//! * [`mod@schedule`] — the round-robin schedule (circle method) and this member's half-slots.
//! * [`packet`] — the authenticated test packet (header, padding, truncated HMAC tag); its size is
//!   the phase's `packet_bytes` clamped to 40..=1472 bytes.
//!
//! One loop on the fabric thread does everything: in its own half-slots it sends a ping to the peer,
//! waits for the matching pong and sends the next one at once (back-to-back, like sockperf's
//! ping-pong mode); throughout the phase it answers every authenticated ping addressed to it, so a
//! peer whose clock runs a few ms off still gets answers. Packets that are malformed, from another
//! phase, addressed to another rank or whose tag does not verify are dropped without an answer.
//! The socket reads block with a short read timeout; round trips are timed with `Instant` right
//! before `send_to` and right after `recv_from`, the tag computed before and verified after.

mod mesh;
pub mod packet;
mod pairs;
pub mod schedule;

#[cfg(test)]
mod tests;

use super::{auth::PhaseMac, DataPlane, PhaseWindow};
use hallmark_protocol::{FabricFault, FabricPhase, FabricReport, LatencyParams};
#[cfg(test)]
use hdrhistogram::serialization::{DeserializeError, Deserializer};
#[cfg(test)]
use hdrhistogram::Histogram;
use std::sync::atomic::AtomicBool;

pub use schedule::schedule;

// Decoding is for this module's tests only. The coordinator's side decodes the histograms that
// peers send in the results crate, which inflates them under a size limit and checks the header
// first: hdrhistogram's decoder alone reserves whatever length a forged header claims.

/// The most bytes `decode_histogram` accepts (a round-trip histogram is a few hundred bytes).
#[cfg(test)]
pub const MAX_ENCODED_HISTOGRAM: usize = 1 << 20;

/// Errors of the latency mesh's results.
#[cfg(test)]
#[derive(Debug, thiserror::Error)]
pub enum LatencyError {
    #[error(
        "a latency histogram of {len} bytes exceeds the {max}-byte limit; hallmark probes send a few \
         hundred bytes, so these bytes are corrupted or not from a hallmark probe"
    )]
    TooLarge { len: usize, max: usize },
    #[error(
        "cannot decode a latency histogram of {len} bytes ({source}); hallmark probes send HDR \
         histograms in the V2 + deflate encoding, so the bytes are corrupted or the probe runs an \
         incompatible version"
    )]
    Decode {
        len: usize,
        #[source]
        source: DeserializeError,
    },
}

/// Decodes a [`hallmark_protocol::LatencyPair::rtt_ns_hist`]: round-trip times in nanoseconds.
#[cfg(test)]
pub fn decode_histogram(bytes: &[u8]) -> Result<Histogram<u64>, LatencyError> {
    if bytes.len() > MAX_ENCODED_HISTOGRAM {
        return Err(LatencyError::TooLarge {
            len: bytes.len(),
            max: MAX_ENCODED_HISTOGRAM,
        });
    }
    let mut reader = bytes;
    Deserializer::new()
        .deserialize(&mut reader)
        .map_err(|source| LatencyError::Decode {
            len: bytes.len(),
            source,
        })
}

/// Runs the latency mesh for member `rank` of `phase` within `window`; returns by the window's end
/// (plus a few ms) or soon after `stop` is set. The report holds one [`hallmark_protocol::LatencyPair`]
/// for every pair this member initiated (every pair when the phase ran to its end; the pairs whose
/// half-slot had begun when `stop` was set), and a fault for every peer that answered nothing in its
/// half-slot and for every socket error.
pub fn run(
    dp: &DataPlane,
    rank: usize,
    phase: &FabricPhase,
    params: &LatencyParams,
    mac: &PhaseMac,
    window: &PhaseWindow,
    stop: &AtomicBool,
) -> FabricReport {
    let n = phase.members.len();
    if n < 2 {
        return FabricReport::default();
    }
    if rank >= n {
        return fault_only(format!(
            "latency mesh: rank {rank} is outside the phase's {n} members; the coordinator's phase \
             order is inconsistent"
        ));
    }
    if n > usize::from(u16::MAX) + 1 {
        return fault_only(format!(
            "latency mesh: {n} members exceed the {} ranks a test packet can address; split the \
             nodes over several latency phases",
            usize::from(u16::MAX) + 1
        ));
    }
    if mac.phase_id() != window.phase_id {
        return fault_only(format!(
            "latency mesh: the MAC is for phase {} but the window for phase {}; this is a bug in \
             hallmark",
            mac.phase_id(),
            window.phase_id
        ));
    }
    let halves = schedule::my_halves(n, rank, window.start, window.end);
    let len = packet::packet_len(params.packet_bytes);
    match mesh::Mesh::new(dp.udp(), rank, phase, mac, len) {
        Ok(mut m) => m.run(&halves, window, stop),
        Err(message) => fault_only(message),
    }
}

fn fault_only(message: String) -> FabricReport {
    FabricReport {
        faults: vec![FabricFault {
            peer: None,
            message,
        }],
        ..FabricReport::default()
    }
}
