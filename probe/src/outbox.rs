//! What the probe has to send and the control stream has not taken yet, so that back-pressure
//! holds back only the sending, never the session's loop.
//!
//! When the coordinator's store falls behind, the coordinator stops reading this probe's
//! connection and QUIC flow control stops the control stream's writes. The shell
//! ([`crate::client`]) writes one message at a time from this queue, concurrently with reading
//! the coordinator's messages and running the session's timers (phase starts and ends, sampling,
//! the dead-man and temperature interlocks), so those keep running however long the stream is
//! held; the queue only grows meanwhile.
//!
//! It is bounded: past [`MAX_QUEUED`] messages the oldest message that can be given up goes — a
//! telemetry batch (the coordinator then sees a hole in the batch sequence and records it as a gap;
//! the batch itself stays in the runner's replay buffer until acknowledged, so a reconnect sends it
//! again) or, failing that, a clock-sync answer (stale long before: a burst closes after 1 s).
//! Phase starts and reports, errors and NCCL ids are never given up. Nothing goes silently: every
//! batch given up is counted ([`Outbox::dropped_batches`]) and logged by the shell. Sans-IO.

use hallmark_protocol::ProbeMessage;
use std::collections::VecDeque;

/// Messages held at most: an hour of telemetry (one batch a second, as the replay buffer keeps)
/// plus room for the messages that are never given up.
pub const MAX_QUEUED: usize = crate::runner::MAX_UNACKED_BATCHES + 512;

/// The queue of messages waiting for the control stream.
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<ProbeMessage>,
    max: usize,
    dropped_batches: u64,
    dropped_pongs: u64,
    /// Batches given up since the shell last asked (their sequence numbers).
    newly_dropped: Vec<u64>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::with_limit(MAX_QUEUED)
    }
}

impl Outbox {
    /// An empty queue holding at most `max` messages (at least 1).
    pub fn with_limit(max: usize) -> Self {
        Outbox {
            queue: VecDeque::new(),
            max: max.max(1),
            dropped_batches: 0,
            dropped_pongs: 0,
            newly_dropped: Vec::new(),
        }
    }

    /// Queues `msgs` in order, giving up the oldest telemetry batch (else clock answer) for each
    /// message past the limit. A message that cannot be given up is always queued.
    pub fn extend(&mut self, msgs: impl IntoIterator<Item = ProbeMessage>) {
        for m in msgs {
            self.queue.push_back(m);
            if self.queue.len() > self.max {
                self.give_up_one();
            }
        }
    }

    fn give_up_one(&mut self) {
        let batch = self
            .queue
            .iter()
            .position(|m| matches!(m, ProbeMessage::Telemetry(_)));
        let victim = batch.or_else(|| {
            self.queue
                .iter()
                .position(|m| matches!(m, ProbeMessage::ClockPong(_)))
        });
        match victim.and_then(|i| self.queue.remove(i)) {
            Some(ProbeMessage::Telemetry(b)) => {
                self.dropped_batches += 1;
                self.newly_dropped.push(b.seq);
            }
            Some(_) => self.dropped_pongs += 1,
            None => {}
        }
    }

    /// The next message to write, taken off the queue.
    pub fn pop(&mut self) -> Option<ProbeMessage> {
        self.queue.pop_front()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Telemetry batches given up since the probe started.
    pub fn dropped_batches(&self) -> u64 {
        self.dropped_batches
    }

    /// Clock-sync answers given up since the probe started.
    pub fn dropped_pongs(&self) -> u64 {
        self.dropped_pongs
    }

    /// Sequence numbers of the batches given up since the last call.
    pub fn take_dropped(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.newly_dropped)
    }

    /// Everything still queued, oldest first (at the end of a session: the rest is given up; the
    /// runner replays unacknowledged telemetry after the next Welcome, the session its reports).
    pub fn drain(&mut self) -> impl Iterator<Item = ProbeMessage> + '_ {
        self.queue.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallmark_protocol::{ClockPong, TelemetryBatch};

    fn batch(seq: u64) -> ProbeMessage {
        ProbeMessage::Telemetry(TelemetryBatch {
            seq,
            node_power_w: Vec::new(),
            samples: Vec::new(),
            gaps: Vec::new(),
        })
    }

    fn pong(seq: u32) -> ProbeMessage {
        ProbeMessage::ClockPong(ClockPong {
            seq,
            t1: 0,
            t2: 1,
            t3: 2,
        })
    }

    fn started(phase_id: u32) -> ProbeMessage {
        ProbeMessage::PhaseStarted {
            phase_id,
            actual_start_ns: 0,
        }
    }

    #[test]
    fn the_oldest_batch_goes_first_then_clock_answers_never_phase_messages() {
        let mut o = Outbox::with_limit(3);
        o.extend([started(0), pong(1), batch(0), batch(1)]);
        assert_eq!(o.len(), 3);
        assert_eq!(o.dropped_batches(), 1);
        assert_eq!(o.take_dropped(), vec![0]);
        assert!(o.take_dropped().is_empty());
        o.extend([started(1)]);
        assert_eq!(o.take_dropped(), vec![1]);
        o.extend([started(2)]);
        assert_eq!(o.dropped_pongs(), 1);
        // Nothing left that may be given up: phase messages are kept past the limit.
        o.extend([started(3)]);
        let left: Vec<_> = o.drain().collect();
        assert_eq!(left, vec![started(0), started(1), started(2), started(3)]);
    }

    #[test]
    fn order_is_kept() {
        let mut o = Outbox::default();
        o.extend([batch(5), pong(2), started(1)]);
        assert_eq!(o.pop(), Some(batch(5)));
        let all: Vec<_> = o.drain().collect();
        assert_eq!(all, vec![pong(2), started(1)]);
        assert!(o.is_empty());
        assert_eq!(o.dropped_batches(), 0);
    }
}
