//! Clock synchronisation: NTP-style four-timestamp exchanges with a minimum-RTT filter.
//!
//! The coordinator sends a [`ClockPing`] stamped `t1` (its clock); the probe stamps its receive
//! instant `t2` and send instant `t3` (probe clock) into a [`ClockPong`]; the coordinator stamps the
//! arrival `t4`. With θ = probe − coordinator and δ the round trip spent on the network,
//!
//! ```text
//! θ̂ = ((t2 − t1) + (t3 − t4)) / 2        δ = (t4 − t1) − (t3 − t2)
//! ```
//!
//! Whatever the split of δ between the two directions, |θ̂ − θ| ≤ δ/2, so δ/2 is the estimate's
//! uncertainty. Queueing only ever adds delay, so the exchange with the smallest δ in a burst is the
//! most trustworthy: [`ClockSync`] sends bursts of pings and keeps the minimum-RTT sample of each,
//! refreshing periodically so that drift is tracked during long runs.
//!
//! [`ClockSync`] is a sans-IO state machine: it is driven by `now` (coordinator ns) and incoming
//! pongs, and returns pings to send and estimates to publish.

use crate::message::{ClockEstimate, ClockPing, ClockPong};

/// One evaluated exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    /// Estimated probe − coordinator offset, ns.
    pub offset_ns: i64,
    /// Network round trip, ns (the probe's processing time excluded).
    pub rtt_ns: i64,
    /// Coordinator instant of the ping.
    pub t1: i64,
}

impl ClockSample {
    /// Evaluates an exchange completed at coordinator instant `t4`. `None` when the timestamps are
    /// inconsistent (negative round trip or processing time), which a sane peer never produces.
    pub fn from_exchange(pong: &ClockPong, t4: i64) -> Option<ClockSample> {
        let (t1, t2, t3) = (pong.t1 as i128, pong.t2 as i128, pong.t3 as i128);
        let t4 = t4 as i128;
        let processing = t3 - t2;
        let rtt = (t4 - t1) - processing;
        if processing < 0 || rtt < 0 {
            return None;
        }
        let offset = ((t2 - t1) + (t3 - t4)).div_euclid(2);
        Some(ClockSample {
            offset_ns: i64::try_from(offset).ok()?,
            rtt_ns: i64::try_from(rtt).ok()?,
            t1: pong.t1,
        })
    }

    /// The estimate this sample gives: uncertainty δ/2 (rounded up).
    pub fn estimate(&self) -> ClockEstimate {
        ClockEstimate {
            offset_ns: self.offset_ns,
            uncertainty_ns: (self.rtt_ns + 1) / 2,
            rtt_ns: self.rtt_ns,
            measured_at_ns: self.t1,
        }
    }
}

impl ClockEstimate {
    /// Converts a coordinator instant into the probe's clock.
    pub fn to_probe(&self, coordinator_ns: i64) -> i64 {
        coordinator_ns.saturating_add(self.offset_ns)
    }

    /// Converts a probe instant into the coordinator's clock.
    pub fn to_coordinator(&self, probe_ns: i64) -> i64 {
        probe_ns.saturating_sub(self.offset_ns)
    }
}

/// How bursts are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSyncConfig {
    /// Pings per burst.
    pub burst_len: u32,
    /// Time between the pings of a burst, ns.
    pub ping_spacing_ns: i64,
    /// Time from the start of one burst to the start of the next, ns.
    pub refresh_interval_ns: i64,
    /// How long after its last ping a burst waits for late pongs before it is closed, ns.
    pub burst_timeout_ns: i64,
}

impl Default for ClockSyncConfig {
    /// Bursts of 8 pings 5 ms apart, one every 30 s. Between two bursts a node's clock drifts from
    /// the estimate by its frequency error × 30 s: 1.5 ms for a free-running crystal at 50 ppm,
    /// far less on an NTP- or PTP-disciplined node, and either well inside the 10 ms a hall's
    /// start skew is warned at. A burst every 10 s was about a tenth of a fleet's packets (measured
    /// at 1 000 probes, docs/PERFORMANCE.md).
    fn default() -> Self {
        ClockSyncConfig {
            burst_len: 8,
            ping_spacing_ns: 5_000_000,
            refresh_interval_ns: 30_000_000_000,
            burst_timeout_ns: 1_000_000_000,
        }
    }
}

/// Sans-IO clock-sync driver for one probe, on the coordinator's side.
#[derive(Debug, Clone)]
pub struct ClockSync {
    config: ClockSyncConfig,
    next_seq: u32,
    /// First sequence number of the current burst.
    burst_first_seq: u32,
    /// Pings of the current burst sent so far.
    sent_in_burst: u32,
    answered_in_burst: u32,
    burst_best: Option<ClockSample>,
    /// Coordinator instant of the current burst's first ping.
    burst_started_ns: i64,
    /// When the next ping is due, or the current burst closes.
    next_event_ns: i64,
    current: Option<ClockEstimate>,
}

impl ClockSync {
    /// Starts a burst at `now`.
    pub fn new(config: ClockSyncConfig, now: i64) -> Self {
        ClockSync {
            config,
            next_seq: 0,
            burst_first_seq: 0,
            sent_in_burst: 0,
            answered_in_burst: 0,
            burst_best: None,
            burst_started_ns: now,
            next_event_ns: now,
            current: None,
        }
    }

    /// The latest published estimate.
    pub fn estimate(&self) -> Option<ClockEstimate> {
        self.current
    }

    /// When [`ClockSync::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> i64 {
        self.next_event_ns
    }

    /// Advances time: returns a ping to send when one is due, and an estimate when a burst
    /// closes with at least one answered exchange.
    pub fn handle_timeout(&mut self, now: i64) -> (Option<ClockPing>, Option<ClockEstimate>) {
        if now < self.next_event_ns {
            return (None, None);
        }
        if self.sent_in_burst < self.config.burst_len {
            if self.sent_in_burst == 0 {
                self.burst_started_ns = now;
            }
            let ping = ClockPing {
                seq: self.next_seq,
                t1: now,
            };
            self.next_seq = self.next_seq.wrapping_add(1);
            self.sent_in_burst += 1;
            self.next_event_ns = if self.sent_in_burst < self.config.burst_len {
                now + self.config.ping_spacing_ns
            } else {
                now + self.config.burst_timeout_ns
            };
            return (Some(ping), None);
        }
        // The burst's last ping timed out: close with what arrived.
        (None, self.close_burst(now))
    }

    /// Takes a pong that arrived at `now`. Returns the new estimate when this pong completes the
    /// burst. Pongs from earlier bursts, unknown sequence numbers and inconsistent timestamps are
    /// ignored (`None`).
    pub fn on_pong(&mut self, pong: &ClockPong, now: i64) -> Option<ClockEstimate> {
        let in_burst = pong.seq.wrapping_sub(self.burst_first_seq) < self.sent_in_burst;
        if !in_burst {
            return None;
        }
        let sample = ClockSample::from_exchange(pong, now)?;
        self.answered_in_burst += 1;
        if self.burst_best.is_none_or(|b| sample.rtt_ns < b.rtt_ns) {
            self.burst_best = Some(sample);
        }
        if self.answered_in_burst >= self.config.burst_len {
            return self.close_burst(now);
        }
        None
    }

    fn close_burst(&mut self, now: i64) -> Option<ClockEstimate> {
        let best = self.burst_best.take();
        self.burst_first_seq = self.next_seq;
        self.sent_in_burst = 0;
        self.answered_in_burst = 0;
        self.next_event_ns = (self.burst_started_ns + self.config.refresh_interval_ns).max(now);
        if let Some(b) = best {
            self.current = Some(b.estimate());
        }
        best.map(|b| b.estimate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    /// A probe whose clock reads `coordinator + offset`, behind links with the given one-way delays.
    fn exchange(t1: i64, offset: i64, out: i64, back: i64, processing: i64) -> (ClockPong, i64) {
        let t2 = t1 + out + offset;
        let t3 = t2 + processing;
        let t4 = t3 - offset + back;
        (ClockPong { seq: 0, t1, t2, t3 }, t4)
    }

    #[test]
    fn symmetric_delays_give_the_exact_offset() {
        let (pong, t4) = exchange(1_000, -123_456_789, 40_000, 40_000, 7_000);
        let s = ClockSample::from_exchange(&pong, t4).unwrap();
        assert_eq!(s.offset_ns, -123_456_789);
        assert_eq!(s.rtt_ns, 80_000);
    }

    #[test]
    fn asymmetric_delays_stay_within_half_the_round_trip() {
        let mut rng = SmallRng::seed_from_u64(0x5eed);
        for _ in 0..10_000 {
            let offset = rng.random_range(-5_000_000_000i64..5_000_000_000);
            let out = rng.random_range(1_000i64..2_000_000);
            let back = rng.random_range(1_000i64..2_000_000);
            let proc_ = rng.random_range(0i64..100_000);
            let (pong, t4) = exchange(
                rng.random_range(0..1_000_000_000_000),
                offset,
                out,
                back,
                proc_,
            );
            let est = ClockSample::from_exchange(&pong, t4).unwrap().estimate();
            let err = (est.offset_ns - offset).abs();
            assert_eq!(est.rtt_ns, out + back);
            assert!(
                err <= est.uncertainty_ns,
                "error {err} > bound {}",
                est.uncertainty_ns
            );
            // The error is exactly half the asymmetry (within rounding).
            assert!((err - (out - back).abs() / 2).abs() <= 1);
        }
    }

    #[test]
    fn inconsistent_timestamps_are_rejected() {
        let pong = ClockPong {
            seq: 0,
            t1: 100,
            t2: 50,
            t3: 40,
        };
        assert!(ClockSample::from_exchange(&pong, 200).is_none());
        let pong = ClockPong {
            seq: 0,
            t1: 100,
            t2: 0,
            t3: 1_000,
        };
        assert!(ClockSample::from_exchange(&pong, 150).is_none());
    }

    /// Drives a whole burst under a simulated clock with jittery asymmetric links and checks that the
    /// minimum-RTT exchange is the one kept and that the error is within its bound.
    #[test]
    fn burst_keeps_the_minimum_rtt_exchange() {
        let offset = 2_500_000_123i64;
        let config = ClockSyncConfig::default();
        let mut rng = SmallRng::seed_from_u64(7);
        let mut sync = ClockSync::new(config, 0);
        let mut now = 0i64;
        let mut min_rtt = i64::MAX;
        let mut in_flight = Vec::new();
        let mut published = None;
        for _ in 0..100 {
            now = now.max(sync.poll_timeout());
            let (ping, est) = sync.handle_timeout(now);
            assert!(
                est.is_none(),
                "no burst may time out when every pong arrives"
            );
            let Some(ping) = ping else { break };
            // Out: 100 µs base + queueing; back: 300 µs base + queueing (asymmetric).
            let out = 100_000 + rng.random_range(0..400_000);
            let back = 300_000 + rng.random_range(0..400_000);
            let (mut pong, t4) = exchange(ping.t1, offset, out, back, 10_000);
            pong.seq = ping.seq;
            min_rtt = min_rtt.min(out + back);
            in_flight.push((pong, t4));
            if in_flight.len() as u32 == config.burst_len {
                for (p, t4) in in_flight.drain(..) {
                    if let Some(e) = sync.on_pong(&p, t4) {
                        published = Some(e);
                    }
                }
                break;
            }
        }
        let est = published.expect("a complete burst publishes an estimate");
        assert_eq!(est.rtt_ns, min_rtt);
        assert!((est.offset_ns - offset).abs() <= est.uncertainty_ns);
        assert_eq!(sync.estimate(), Some(est));
        // The next burst starts one refresh interval after the first ping.
        assert_eq!(sync.poll_timeout(), config.refresh_interval_ns);
    }

    #[test]
    fn a_burst_with_lost_pongs_closes_on_timeout() {
        let config = ClockSyncConfig {
            burst_len: 3,
            ..ClockSyncConfig::default()
        };
        let mut sync = ClockSync::new(config, 0);
        let mut pings = Vec::new();
        for _ in 0..3 {
            let now = sync.poll_timeout();
            pings.push(sync.handle_timeout(now).0.unwrap());
        }
        // Only the first pong comes back.
        let (mut pong, t4) = exchange(pings[0].t1, 42, 1_000, 1_000, 0);
        pong.seq = pings[0].seq;
        assert!(sync.on_pong(&pong, t4).is_none());
        let deadline = sync.poll_timeout();
        assert_eq!(deadline, pings[2].t1 + config.burst_timeout_ns);
        let (ping, est) = sync.handle_timeout(deadline);
        assert!(ping.is_none());
        assert_eq!(est.unwrap().offset_ns, 42);
        // A late pong of the closed burst is ignored.
        let (mut late, t4) = exchange(pings[1].t1, 42, 1_000, 1_000, 0);
        late.seq = pings[1].seq;
        assert!(sync.on_pong(&late, t4 + deadline).is_none());
    }

    /// The default cadence, answered at once: a burst of 8 every 30 s, so 4 bursts in the first
    /// two minutes, each publishing an estimate.
    #[test]
    fn the_default_cadence_is_a_burst_every_30_s() {
        let mut sync = ClockSync::new(ClockSyncConfig::default(), 0);
        let (mut pings, mut estimates) = (0, 0);
        for _ in 0..1_000 {
            let now = sync.poll_timeout();
            if now >= 120_000_000_000 {
                break;
            }
            let (ping, _) = sync.handle_timeout(now);
            let ping = ping.expect("every pong is answered: the next step is a ping");
            pings += 1;
            let (mut pong, t4) = exchange(ping.t1, 5, 1_000, 1_000, 0);
            pong.seq = ping.seq;
            estimates += usize::from(sync.on_pong(&pong, t4).is_some());
        }
        assert_eq!((pings, estimates), (32, 4));
    }

    #[test]
    fn conversions_are_inverse() {
        let e = ClockEstimate {
            offset_ns: -77,
            uncertainty_ns: 5,
            rtt_ns: 10,
            measured_at_ns: 0,
        };
        assert_eq!(e.to_coordinator(e.to_probe(1_000)), 1_000);
        assert_eq!(e.to_probe(1_000), 923);
    }
}
