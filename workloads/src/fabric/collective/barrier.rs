//! The barrier that starts each stage of a size: every rank sends rank 0 a ready message (with
//! whether it was asked to stop), rank 0 decides for all — go, with the timed iteration count,
//! or stop, and why — and sends the decision back. Every message names the barrier's sequence
//! number, operation, size and stage, so members that disagree on the schedule (another version
//! or plan, a corrupted stream) end in a fault instead of exchanging the wrong data.

use super::link::CollError;
use super::size_name;
use super::sweep::Sweep;
use hallmark_protocol::CollectiveOp;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const CTRL_LEN: usize = 24;
const CTRL_MAGIC: &[u8; 4] = b"HMCB";
const READY: u8 = 1;
const GO: u8 = 2;

/// Why rank 0 ended the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Requested,
    Window,
}

/// Rank 0's decision at a barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go on (with this many timed iterations, where the barrier decides them).
    Go(u32),
    Stop(StopReason),
}

fn op_index(op: CollectiveOp) -> u8 {
    CollectiveOp::ALL.iter().position(|o| *o == op).unwrap_or(0) as u8
}

impl Sweep<'_> {
    /// A barrier: every rank tells rank 0 it is ready (and whether it was asked to stop); rank 0
    /// decides with `decide(time left in its window)` and tells everyone.
    pub(super) fn barrier(
        &self,
        seq: &mut u32,
        op: CollectiveOp,
        size: u64,
        stage: u8,
        decide: impl FnOnce(Duration) -> Decision,
    ) -> Result<Decision, CollError> {
        *seq = seq.wrapping_add(1);
        let n = self.n();
        let deadline = self.window.end;
        let me = Ctrl {
            kind: READY,
            stage,
            op: op_index(op),
            flag: u8::from(self.stop.load(Ordering::Relaxed)),
            seq: *seq,
            iters: 0,
            size,
        };
        if self.rank != 0 {
            self.links.write(0, &me.encode(), deadline)?;
            let mut buf = [0u8; CTRL_LEN];
            self.links.read(0, &mut buf, deadline)?;
            let go =
                Ctrl::decode(&buf).ok_or_else(|| out_of_step(0, "a malformed control message"))?;
            me.expect(&go, GO, 0)?;
            return Ok(match go.flag {
                0 => Decision::Go(go.iters),
                1 => Decision::Stop(StopReason::Requested),
                _ => Decision::Stop(StopReason::Window),
            });
        }
        let mut stop = me.flag != 0;
        for peer in 1..n {
            let mut buf = [0u8; CTRL_LEN];
            self.links.read(peer, &mut buf, deadline)?;
            let ready = Ctrl::decode(&buf)
                .ok_or_else(|| out_of_step(peer, "a malformed control message"))?;
            me.expect(&ready, READY, peer)?;
            stop |= ready.flag != 0;
        }
        let decision = if stop || self.stop.load(Ordering::Relaxed) {
            Decision::Stop(StopReason::Requested)
        } else {
            decide(deadline.saturating_duration_since(Instant::now()))
        };
        let (flag, iters) = match decision {
            Decision::Go(k) => (0, k),
            Decision::Stop(StopReason::Requested) => (1, 0),
            Decision::Stop(StopReason::Window) => (2, 0),
        };
        let go = Ctrl {
            kind: GO,
            flag,
            iters,
            ..me
        }
        .encode();
        for peer in 1..n {
            self.links.write(peer, &go, deadline)?;
        }
        Ok(decision)
    }
}

fn out_of_step(peer: usize, detail: &str) -> CollError {
    CollError::OutOfStep {
        peer,
        detail: detail.into(),
    }
}

/// A barrier message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ctrl {
    kind: u8,
    stage: u8,
    op: u8,
    /// Ready: 1 = this rank was asked to stop. Go: 0 = go, 1 = stop requested, 2 = window.
    flag: u8,
    seq: u32,
    iters: u32,
    size: u64,
}

impl Ctrl {
    fn encode(&self) -> [u8; CTRL_LEN] {
        let mut b = [0u8; CTRL_LEN];
        b[..4].copy_from_slice(CTRL_MAGIC);
        b[4] = self.kind;
        b[5] = self.stage;
        b[6] = self.op;
        b[7] = self.flag;
        b[8..12].copy_from_slice(&self.seq.to_be_bytes());
        b[12..16].copy_from_slice(&self.iters.to_be_bytes());
        b[16..24].copy_from_slice(&self.size.to_be_bytes());
        b
    }

    fn decode(b: &[u8; CTRL_LEN]) -> Option<Ctrl> {
        if &b[..4] != CTRL_MAGIC {
            return None;
        }
        Some(Ctrl {
            kind: b[4],
            stage: b[5],
            op: b[6],
            flag: b[7],
            seq: u32::from_be_bytes(b[8..12].try_into().ok()?),
            iters: u32::from_be_bytes(b[12..16].try_into().ok()?),
            size: u64::from_be_bytes(b[16..24].try_into().ok()?),
        })
    }

    /// Checks that `got` (from `peer`) is the `kind` message of this same barrier.
    fn expect(&self, got: &Ctrl, kind: u8, peer: usize) -> Result<(), CollError> {
        if got.kind != kind
            || got.seq != self.seq
            || got.stage != self.stage
            || got.op != self.op
            || got.size != self.size
        {
            return Err(CollError::OutOfStep {
                peer,
                detail: format!(
                    "it is at barrier {} (operation #{}, {}, stage {}, kind {}) while this rank is at barrier {} (operation #{}, {}, stage {})",
                    got.seq,
                    got.op,
                    size_name(got.size),
                    got.stage,
                    got.kind,
                    self.seq,
                    self.op,
                    size_name(self.size),
                    self.stage
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_round_trip() {
        let c = Ctrl {
            kind: GO,
            stage: 1,
            op: 3,
            flag: 2,
            seq: 77,
            iters: 20,
            size: 1 << 33,
        };
        assert_eq!(Ctrl::decode(&c.encode()), Some(c));
        let mut bad = c.encode();
        bad[0] = b'X';
        assert_eq!(Ctrl::decode(&bad), None);
        assert!(c.expect(&Ctrl { seq: 78, ..c }, GO, 1).is_err());
        assert!(c.expect(&c, GO, 1).is_ok());
    }
}
