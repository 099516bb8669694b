//! When each source is polled: a sans-IO schedule driven by `now_ns` (the caller's clock; no clock
//! or entropy here).
//!
//! - Each source is due on a grid of its interval, raised to the slowest `SensingInterval` its
//!   Sensors state (polling faster than a meter updates only loads its BMC); a poll that ends late
//!   skips the grid points it missed instead of firing them in a burst.
//! - The first due instants are spread over each interval by a low-discrepancy sequence of the
//!   source index and a caller-given seed (golden-ratio steps), so 1 000 sources never fire at
//!   one instant.
//! - A source is never due again while its poll is in flight.
//! - After a failure the next try waits the interval doubled per consecutive failure, at most
//!   [`MAX_BACKOFF_NS`] (or the interval, if longer); the reason is kept, and whether the state
//!   changed (ok → failing, another reason, failing → ok) is returned, so the shell logs once per
//!   change and not once per poll.

/// The longest wait after repeated failures (unless the interval itself is longer).
pub const MAX_BACKOFF_NS: i64 = 30_000_000_000;

/// The golden ratio's fractional part: successive multiples fill [0, 1) evenly.
const PHI_FRAC: f64 = 0.618_033_988_749_894_9;

/// A source's place in the schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceState {
    /// The interval from the configuration, ns.
    pub interval_ns: i64,
    /// The slowest `SensingInterval` the source's Sensors state, ns (0: none stated).
    pub sensing_ns: i64,
    /// When it is next due.
    pub next_due_ns: i64,
    pub in_flight: bool,
    /// Consecutive failed polls.
    pub failures: u32,
    /// Why the last poll failed, while it is failing.
    pub reason: Option<String>,
}

impl SourceState {
    /// The period it is polled at: its interval, never shorter than its Sensors' interval.
    pub fn period_ns(&self) -> i64 {
        self.interval_ns.max(self.sensing_ns).max(1)
    }
}

/// What a poll's end changed in a source's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Same as before (still fine, or failing for the same reason).
    None,
    /// It failed, for the first time or for another reason than before.
    Failing,
    /// It read again after failing.
    Recovered,
}

/// The schedule of every source of a collector.
#[derive(Debug, Clone)]
pub struct Schedule {
    sources: Vec<SourceState>,
}

impl Schedule {
    /// Sources with these intervals (ns, each > 0), their first polls spread from `start_ns` over
    /// one interval by `seed`.
    pub fn new(intervals_ns: &[i64], start_ns: i64, seed: u64) -> Schedule {
        let base = (seed % 1_000_003) as f64 / 1_000_003.0;
        let sources = intervals_ns
            .iter()
            .enumerate()
            .map(|(i, &interval)| {
                let interval = interval.max(1);
                let phase = (base + i as f64 * PHI_FRAC).fract();
                SourceState {
                    interval_ns: interval,
                    sensing_ns: 0,
                    next_due_ns: start_ns.saturating_add((phase * interval as f64) as i64),
                    in_flight: false,
                    failures: 0,
                    reason: None,
                }
            })
            .collect();
        Schedule { sources }
    }

    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    pub fn state(&self, i: usize) -> &SourceState {
        &self.sources[i]
    }

    /// The sources due at `now_ns`, marked in flight, in index order.
    pub fn due(&mut self, now_ns: i64) -> Vec<usize> {
        self.due_and_next(now_ns).0
    }

    /// [`Schedule::due`] and then [`Schedule::next_wake_ns`], in one pass over the sources.
    pub fn due_and_next(&mut self, now_ns: i64) -> (Vec<usize>, Option<i64>) {
        let mut out = Vec::new();
        let mut next: Option<i64> = None;
        for (i, s) in self.sources.iter_mut().enumerate() {
            if s.in_flight {
                continue;
            }
            if s.next_due_ns <= now_ns {
                s.in_flight = true;
                out.push(i);
            } else {
                next = Some(next.map_or(s.next_due_ns, |n| n.min(s.next_due_ns)));
            }
        }
        (out, next)
    }

    /// The earliest instant a source not in flight is due; `None` when all are in flight.
    pub fn next_wake_ns(&self) -> Option<i64> {
        self.sources
            .iter()
            .filter(|s| !s.in_flight)
            .map(|s| s.next_due_ns)
            .min()
    }

    /// Source `i` was read at `now_ns`; `sensing_s` is the slowest `SensingInterval` its
    /// Sensors state, where any does.
    pub fn on_success(&mut self, i: usize, now_ns: i64, sensing_s: Option<f64>) -> Change {
        let s = &mut self.sources[i];
        s.in_flight = false;
        if let Some(v) = sensing_s.filter(|v| v.is_finite() && *v > 0.0) {
            // At most an hour: a Sensor stating days must not stop the polling.
            s.sensing_ns = (v.min(3600.0) * 1e9) as i64;
        }
        let period = s.period_ns();
        let mut next = s.next_due_ns.saturating_add(period);
        if next <= now_ns {
            // Late: the next grid point after now (the missed ones are skipped).
            let behind = now_ns - s.next_due_ns;
            next = s.next_due_ns.saturating_add((behind / period + 1) * period);
        }
        s.next_due_ns = next;
        let change = if s.reason.is_some() {
            Change::Recovered
        } else {
            Change::None
        };
        s.failures = 0;
        s.reason = None;
        change
    }

    /// Source `i` could not be read at `now_ns` for `reason`: retried after a backoff.
    pub fn on_failure(&mut self, i: usize, now_ns: i64, reason: String) -> Change {
        let s = &mut self.sources[i];
        s.in_flight = false;
        s.failures = s.failures.saturating_add(1);
        let period = s.period_ns();
        let cap = MAX_BACKOFF_NS.max(period);
        let shift = (s.failures - 1).min(20);
        let wait = period.saturating_mul(1i64 << shift).min(cap);
        s.next_due_ns = now_ns.saturating_add(wait);
        let change = if s.reason.as_deref() == Some(reason.as_str()) {
            Change::None
        } else {
            Change::Failing
        };
        s.reason = Some(reason);
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn first_polls_are_spread_over_the_interval() {
        let n = 1000;
        let sched = Schedule::new(&vec![S; n], 0, 7);
        let mut buckets = [0usize; 10];
        for i in 0..n {
            let t = sched.state(i).next_due_ns;
            assert!((0..S).contains(&t), "{t}");
            buckets[(t / (S / 10)) as usize] += 1;
        }
        // Golden-ratio steps: every tenth of the interval gets 100 ± a few.
        assert!(
            buckets.iter().all(|&b| (95..=105).contains(&b)),
            "{buckets:?}"
        );
        // At most a handful share any one millisecond.
        let mut ms: Vec<i64> = (0..n)
            .map(|i| sched.state(i).next_due_ns / 1_000_000)
            .collect();
        ms.sort();
        let max_same = ms.chunk_by(|a, b| a == b).map(<[i64]>::len).max().unwrap();
        assert!(max_same <= 3, "{max_same}");
        // Deterministic; another seed, other phases.
        let again = Schedule::new(&vec![S; n], 0, 7);
        let other = Schedule::new(&vec![S; n], 0, 8);
        assert_eq!(again.state(5), sched.state(5));
        assert_ne!(other.state(5).next_due_ns, sched.state(5).next_due_ns);
    }

    #[test]
    fn simulated_time_polls_on_the_grid_and_passes_over_missed_points() {
        let mut sched = Schedule::new(&[S, S / 2], 0, 0);
        let mut polls = [0u32; 2];
        let mut now = 0;
        // Ten simulated seconds, polls taking 10 ms.
        while now < 10 * S {
            for i in sched.due(now) {
                polls[i] += 1;
                assert!(sched.due(now).is_empty(), "in flight: not due again");
                sched.on_success(i, now + 10_000_000, None);
            }
            now = sched.next_wake_ns().unwrap().max(now + 1);
        }
        assert_eq!(polls, [10, 20]);
        let (mut a, mut b) = (sched.clone(), sched.clone());
        let (due, next) = a.due_and_next(now + S / 4);
        assert_eq!((due, next), (b.due(now + S / 4), b.next_wake_ns()));
        // A poll that ends 3.5 periods late passes over the missed points: next due on the grid after now.
        let due = sched.state(0).next_due_ns;
        let i = sched.due(due)[0];
        sched.on_success(i, due + 3 * S + S / 2, None);
        assert_eq!(sched.state(0).next_due_ns, due + 4 * S);
    }

    #[test]
    fn never_faster_than_the_sensing_interval() {
        let mut sched = Schedule::new(&[S / 4], 0, 0);
        let t = sched.state(0).next_due_ns;
        sched.due(t);
        sched.on_success(0, t, Some(2.0));
        assert_eq!(sched.state(0).next_due_ns, t + 2 * S);
        assert_eq!(sched.state(0).period_ns(), 2 * S);
    }

    #[test]
    fn failures_back_off_to_a_bound_and_report_changes_once() {
        let mut sched = Schedule::new(&[S], 0, 0);
        let mut now = sched.state(0).next_due_ns;
        let mut waits = Vec::new();
        let mut changes = Vec::new();
        for k in 0..8 {
            assert_eq!(sched.due(now), vec![0]);
            let reason = if k < 6 { "refused" } else { "timeout" };
            changes.push(sched.on_failure(0, now, reason.into()));
            let next = sched.state(0).next_due_ns;
            waits.push((next - now) / S);
            now = next;
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(changes[0], Change::Failing);
        assert!(changes[1..6].iter().all(|c| *c == Change::None));
        assert_eq!(changes[6], Change::Failing, "another reason is a change");
        assert_eq!(sched.state(0).reason.as_deref(), Some("timeout"));
        sched.due(now);
        assert_eq!(sched.on_success(0, now, None), Change::Recovered);
        assert_eq!(sched.state(0).failures, 0);
        // An interval longer than the bound backs off by the interval.
        let mut slow = Schedule::new(&[60 * S], 0, 0);
        let t = slow.state(0).next_due_ns;
        slow.due(t);
        slow.on_failure(0, t, "x".into());
        assert_eq!(slow.state(0).next_due_ns - t, 60 * S);
    }
}
