//! The pauses between a probe's connection attempts: capped exponential backoff, jittered so that
//! probes that failed together do not return together; wider ("full") jitter after the coordinator
//! turned an attempt away for load; and an optional jittered first start, so that a fleet started
//! at the same second (Slurm, a DaemonSet) does not arrive at the same millisecond.
//!
//! The jitter comes from a [`Jitter`] generator seeded by the caller (the probe seeds it from its
//! node id and the clock unless [`crate::ProbeOptions::jitter_seed`] fixes it): nothing here draws
//! entropy, so a schedule is reproducible from its seed.

use std::time::Duration;

/// Capped exponential backoff between connection attempts.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The capped exponential value before attempt `attempt` (≥ 2): `initial · 2^(attempt-2)`, at
    /// most `max`.
    fn capped(&self, attempt: u32) -> Duration {
        self.initial
            .saturating_mul(1u32 << attempt.saturating_sub(2).min(20))
            .min(self.max)
    }

    /// The pause before attempt `attempt` (1-based; attempt 1 is immediate), jittered into
    /// [½, 1] of the capped exponential value by `jitter` in 0..1.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        self.capped(attempt)
            .mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// The pause before attempt `attempt` when the last one was turned away for load (the
    /// coordinator was busy): "full jitter", anywhere in [0, 1] of the capped exponential value by
    /// `jitter` in 0..1, so that the refused probes of a storm spread over the whole window and
    /// come back a few at a time. Attempt 1 is immediate.
    pub fn busy_delay(&self, attempt: u32, jitter: f64) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        self.capped(attempt).mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// A small deterministic generator of jitter (xorshift64): the same seed gives the same sequence.
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// A generator from `seed` (any value; 0 is mapped to a non-zero state).
    pub fn new(seed: u64) -> Self {
        // One round of splitmix64, so that neighbouring seeds start far apart.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Jitter {
            state: if z == 0 { 0x2545_f491_4f6c_dd1d } else { z },
        }
    }

    /// A generator for node `node`, mixed with `salt` (the probe passes the clock's nanoseconds,
    /// so that two starts of one node differ and nodes differ from each other).
    pub fn for_node(node: &str, salt: u64) -> Self {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ salt;
        for b in node.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Jitter::new(h)
    }

    /// The next value, uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        let s = &mut self.state;
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Why the last connection attempt failed, as far as the next pause cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastFailure {
    /// Nothing failed yet: the first attempt (or the first after a lost session).
    None,
    /// The coordinator turned the attempt away for load ("coordinator busy").
    Busy,
    /// Anything else worth a retry (a timeout, a reset, a lost connection).
    Other,
}

/// One probe's schedule of pauses: [`Backoff`], its [`Jitter`], and the jittered first start.
#[derive(Debug, Clone)]
pub struct RetrySchedule {
    backoff: Backoff,
    start_jitter: Duration,
    jitter: Jitter,
    started: bool,
}

impl RetrySchedule {
    /// The first attempt waits a random part of `start_jitter` (`Duration::ZERO`: none).
    pub fn new(backoff: Backoff, start_jitter: Duration, jitter: Jitter) -> Self {
        RetrySchedule {
            backoff,
            start_jitter,
            jitter,
            started: false,
        }
    }

    /// The pause before attempt `attempt` (1-based, counted since the probe last registered),
    /// given why the previous attempt failed. Only the probe's very first attempt is delayed by
    /// the start jitter; later first attempts (after a lost session) are immediate, as before.
    pub fn pause(&mut self, attempt: u32, last: LastFailure) -> Duration {
        let u = self.jitter.unit();
        if !self.started {
            self.started = true;
            return self.start_jitter.mul_f64(u);
        }
        match last {
            LastFailure::Busy => self.backoff.busy_delay(attempt, u),
            LastFailure::None | LastFailure::Other => self.backoff.delay(attempt, u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, 0.3), Duration::ZERO);
        assert_eq!(b.delay(2, 1.0), Duration::from_millis(200));
        assert_eq!(b.delay(3, 1.0), Duration::from_millis(400));
        assert_eq!(b.delay(2, 0.0), Duration::from_millis(100));
        assert_eq!(b.delay(40, 1.0), Duration::from_secs(5));
        assert!(b.delay(40, 0.0) >= Duration::from_millis(2500));
        assert_eq!(b.busy_delay(1, 0.9), Duration::ZERO);
        assert_eq!(b.busy_delay(3, 0.0), Duration::ZERO);
        assert_eq!(b.busy_delay(3, 0.5), Duration::from_millis(200));
        assert_eq!(b.busy_delay(u32::MAX, 1.0), Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_in_the_unit_interval_and_repeats_from_its_seed() {
        let (mut a, mut b, mut c) = (Jitter::new(0), Jitter::new(0), Jitter::new(1));
        let mut differs = false;
        for _ in 0..1000 {
            let (x, y, z) = (a.unit(), b.unit(), c.unit());
            assert!((0.0..1.0).contains(&x), "{x}");
            assert_eq!(x, y);
            differs |= x != z;
        }
        assert!(differs);
        assert_ne!(
            Jitter::for_node("n1", 7).unit(),
            Jitter::for_node("n2", 7).unit()
        );
    }
}
