//! The process clock: nanoseconds since the UNIX epoch that never go backwards.
//!
//! The wall clock is read once at start; after that time advances with the monotonic clock, so a
//! step of the system clock (NTP, an operator) during a run cannot reorder samples or fire timers
//! early. The coordinator's instance of this clock is *the* clock every stored time is on; probes'
//! instances are related to it by clock sync.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A monotonic clock anchored to the wall clock at creation.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    anchor: Instant,
    anchor_ns: i64,
}

impl WallClock {
    /// Reads the wall clock once and anchors to it.
    pub fn new() -> Self {
        let anchor_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        WallClock {
            anchor: Instant::now(),
            anchor_ns,
        }
    }

    /// A clock that reads `anchor_ns` now and is shifted by nothing else: tests use it to give a
    /// probe a deliberately wrong clock.
    pub fn with_offset(offset_ns: i64) -> Self {
        let c = WallClock::new();
        WallClock {
            anchor_ns: c.anchor_ns.saturating_add(offset_ns),
            ..c
        }
    }

    /// Now, in ns since the UNIX epoch.
    pub fn now_ns(&self) -> i64 {
        let elapsed = i64::try_from(self.anchor.elapsed().as_nanos()).unwrap_or(i64::MAX);
        self.anchor_ns.saturating_add(elapsed)
    }

    /// The tokio instant corresponding to `ns` on this clock (for timers).
    pub fn instant_at(&self, ns: i64) -> Instant {
        let delta = ns.saturating_sub(self.anchor_ns);
        if delta >= 0 {
            self.anchor + std::time::Duration::from_nanos(delta as u64)
        } else {
            self.anchor
                .checked_sub(std::time::Duration::from_nanos(delta.unsigned_abs()))
                .unwrap_or(self.anchor)
        }
    }
}

impl Default for WallClock {
    fn default() -> Self {
        WallClock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards_and_maps_to_instants() {
        let c = WallClock::new();
        let a = c.now_ns();
        let b = c.now_ns();
        assert!(b >= a);
        let i = c.instant_at(a + 1_000_000);
        assert!(i >= c.instant_at(a));
        let shifted = WallClock::with_offset(5_000_000_000);
        assert!(shifted.now_ns() - c.now_ns() >= 4_900_000_000);
    }
}
