//! Sampling instants of a phase: instant `k` is due at start + k / sample_hz (k before the end), on
//! the probe's clock for the runner's timers, and stamped on the coordinator's clock from the phase
//! order itself; instants the sampler reached too late become a [`TelemetryGap`] with the cause.

use super::Active;
use hallmark_protocol::TelemetryGap;

impl Active {
    /// Offset of sampling instant `k` from the phase's start, ns.
    pub(super) fn instant_offset_ns(&self, k: u64) -> i64 {
        let hz = self.spec.sample_hz.clamp(0.01, 1000.0);
        (k as f64 * 1e9 / hz).round() as i64
    }

    /// Sampling instant `k` on the probe's clock.
    pub(super) fn instant_ns(&self, k: u64) -> i64 {
        self.start_ns.saturating_add(self.instant_offset_ns(k))
    }

    /// Sampling instant `k` on the coordinator's clock, computed from the phase order itself: the
    /// stamp of sample `k`, inside the phase's window whatever the clock estimate did meanwhile.
    pub(super) fn stamp_ns(&self, k: u64) -> i64 {
        self.spec
            .start_at_ns
            .saturating_add(self.instant_offset_ns(k))
    }

    /// The phase's end on the coordinator's clock.
    pub(super) fn end_stamp_ns(&self) -> i64 {
        self.spec
            .start_at_ns
            .saturating_add(self.end_ns - self.start_ns)
    }

    pub(super) fn sample_due_ns(&self) -> i64 {
        self.instant_ns(self.next_sample)
    }

    /// Instants of the phase: every k with start + k / sample_hz before the end.
    pub(super) fn instants(&self) -> u64 {
        let duration = self.end_ns - self.start_ns;
        if duration <= 0 {
            return 0;
        }
        let hz = self.spec.sample_hz.clamp(0.01, 1000.0);
        let mut n = (duration as f64 * hz / 1e9).ceil() as u64;
        // Bounded correction of floating-point rounding at the edge.
        for _ in 0..2 {
            if n > 0 && self.instant_offset_ns(n - 1) >= duration {
                n -= 1;
            } else if self.instant_offset_ns(n) < duration {
                n += 1;
            }
        }
        n
    }

    /// The latest instant due at `now` (probe clock), if any is; never past the last instant.
    pub(super) fn latest_due(&self, now: i64) -> Option<u64> {
        let n = self.instants();
        if n == 0 || now < self.start_ns {
            return None;
        }
        let hz = self.spec.sample_hz.clamp(0.01, 1000.0);
        let mut k =
            ((now.saturating_sub(self.start_ns) as f64 * hz / 1e9).floor() as u64).min(n - 1);
        // Bounded correction of floating-point rounding at the edge.
        for _ in 0..2 {
            if k > 0 && self.instant_ns(k) > now {
                k -= 1;
            } else if k + 1 < n && self.instant_ns(k + 1) <= now {
                k += 1;
            }
        }
        Some(k)
    }
}

/// Instants `from..to` of phase `a` missed because the sampler ran at `now`, after their periods.
pub(super) fn missed(a: &Active, from: u64, to: u64, now: i64) -> TelemetryGap {
    let late_ms = now.saturating_sub(a.instant_ns(from)) / 1_000_000;
    TelemetryGap {
        from_ns: a.stamp_ns(from),
        to_ns: a.stamp_ns(to).min(a.end_stamp_ns()),
        instants: to - from,
        reason: hallmark_protocol::bounded_gap_reason(format!(
            "probe overloaded: sampler late by {late_ms} ms; {} sampling instant{} of phase {} \
             (from #{from}) not taken",
            to - from,
            if to - from == 1 { "" } else { "s" },
            a.spec.name
        )),
    }
}
