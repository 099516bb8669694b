//! The latency mesh's schedule: which pairs of members exchange in which round, and when this
//! member's half-slots begin and end.
//!
//! Rounds come from the circle method (a round-robin tournament): with `n` members, `n − 1` rounds
//! for even `n` and `n` rounds for odd `n` (a dummy member makes one member sit out each round).
//! Every unordered pair meets in exactly one round and every member is in at most one pair per
//! round. In its round a pair `(a, b)` spends the first half of the slot with `a` pinging `b` and
//! the second half with `b` pinging `a`, so every directed pair gets exactly one half-slot.

use std::time::{Duration, Instant};

/// Share of a half-slot left quiet at its end, so that members whose clocks disagree by a few ms do
/// not pile their exchanges onto each other.
const GUARD_FRACTION: u32 = 10;
/// The least guard at the end of a half-slot (unless that would take half of the half-slot).
const MIN_GUARD: Duration = Duration::from_millis(2);

/// The rounds of the mesh for `n` members: in each round, the pairs `(a, b)` that meet; `a` pings
/// `b` in the first half of the slot, `b` pings `a` in the second. Empty for `n < 2`.
pub fn schedule(n: usize) -> Vec<Vec<(usize, usize)>> {
    if n < 2 {
        return Vec::new();
    }
    // With an odd count a dummy member (index n) joins; whoever meets it has a bye.
    let m = if n.is_multiple_of(2) { n } else { n + 1 };
    let rotating = m - 1; // members 0..m-1 rotate around the fixed member m-1
    let mut rounds = Vec::with_capacity(rotating);
    for r in 0..rotating {
        let mut round = Vec::with_capacity(m / 2);
        let mut meet = |x: usize, y: usize| {
            if x < n && y < n {
                // Alternate who starts, so no member always pings first.
                round.push(if r.is_multiple_of(2) { (x, y) } else { (y, x) });
            }
        };
        meet(m - 1, r);
        for k in 1..m / 2 {
            meet((r + k) % rotating, (r + rotating - k) % rotating);
        }
        rounds.push(round);
    }
    rounds
}

/// One half-slot in which this member pings `peer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Half {
    /// The rank pinged.
    pub peer: usize,
    /// When the first ping may go out.
    pub start: Instant,
    /// No ping is sent from here on (the guard begins).
    pub send_end: Instant,
    /// The half-slot's end: an answer later than this is lost.
    pub end: Instant,
}

/// The half-slots in which `rank` pings, in time order, for a phase of `n` members running from
/// `start` to `end`: round `r` occupies `[start + r·slot, start + (r+1)·slot)` with
/// `slot = (end − start) / rounds`.
pub fn my_halves(n: usize, rank: usize, start: Instant, end: Instant) -> Vec<Half> {
    let rounds = schedule(n);
    let Ok(count) = u32::try_from(rounds.len()) else {
        return Vec::new();
    };
    if count == 0 {
        return Vec::new();
    }
    let slot = end.saturating_duration_since(start) / count;
    let half = slot / 2;
    let guard = (half / GUARD_FRACTION).max(MIN_GUARD).min(half / 2);
    let mut out = Vec::new();
    for (r, round) in (0u32..).zip(&rounds) {
        let slot_start = start + slot * r;
        for &(a, b) in round {
            let (peer, first) = if a == rank {
                (b, true)
            } else if b == rank {
                (a, false)
            } else {
                continue;
            };
            let h_start = if first { slot_start } else { slot_start + half };
            let h_end = if first {
                slot_start + half
            } else {
                slot_start + slot
            };
            out.push(Half {
                peer,
                start: h_start,
                send_end: h_end - guard,
                end: h_end,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_directed_pair_gets_exactly_one_half_slot_and_nobody_is_double_booked() {
        for n in 1..=40usize {
            let rounds = schedule(n);
            let expected_rounds = match n {
                1 => 0,
                n if n.is_multiple_of(2) => n - 1,
                n => n,
            };
            assert_eq!(rounds.len(), expected_rounds, "n = {n}");
            let mut seen = vec![vec![0u32; n]; n];
            for (r, round) in rounds.iter().enumerate() {
                let mut busy = vec![false; n];
                for &(a, b) in round {
                    assert!(a < n && b < n && a != b, "n = {n}, round {r}: ({a}, {b})");
                    assert!(!busy[a] && !busy[b], "n = {n}, round {r}: double booking");
                    busy[a] = true;
                    busy[b] = true;
                    seen[a][b] += 1; // first half
                    seen[b][a] += 1; // second half
                }
                // Everyone plays in every round, except one bye per round for odd n.
                let idle = busy.iter().filter(|b| !**b).count();
                assert_eq!(idle, n % 2, "n = {n}, round {r}");
            }
            for (i, row) in seen.iter().enumerate() {
                for (j, &c) in row.iter().enumerate() {
                    assert_eq!(c, u32::from(i != j), "n = {n}: pair {i}→{j} seen {c} times");
                }
            }
        }
    }

    #[test]
    fn halves_tile_the_window_with_a_guard_at_each_end() {
        let start = Instant::now();
        let end = start + Duration::from_millis(1200);
        let n = 4;
        let mut all = Vec::new();
        for rank in 0..n {
            let halves = my_halves(n, rank, start, end);
            assert_eq!(halves.len(), n - 1, "one half per peer");
            for w in halves.windows(2) {
                assert!(w[0].end <= w[1].start, "in time order, no overlap");
            }
            for h in &halves {
                assert!(h.start >= start && h.end <= end);
                assert_eq!(h.end - h.start, Duration::from_millis(200));
                assert_eq!(h.end - h.send_end, Duration::from_millis(20), "10 % guard");
                all.push((rank, h.peer));
            }
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n * (n - 1));
        // A short window keeps a guard of at least 2 ms, but never more than half a half-slot.
        let h = my_halves(2, 0, start, start + Duration::from_millis(6));
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].end - h[0].send_end, Duration::from_micros(1500));
        assert!(my_halves(1, 0, start, end).is_empty());
        assert!(my_halves(3, 0, end, start).iter().all(|h| h.start == h.end));
    }
}
