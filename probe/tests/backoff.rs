//! The pauses between connection attempts, from a fixed seed: bounded by the cap, jittered (no two
//! probes' schedules alike, a "busy" pause anywhere in its window), the first start spread over
//! the start jitter, and the same seed giving the same schedule.

use hallmark_probe::{Backoff, Jitter, LastFailure, RetrySchedule};
use std::time::Duration;

const BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(200),
    max: Duration::from_secs(5),
};
const START: Duration = Duration::from_secs(2);

/// The first `n` pauses of a schedule seeded with `seed`, every failure `last`.
fn pauses(seed: u64, n: u32, last: LastFailure) -> Vec<Duration> {
    let mut s = RetrySchedule::new(BACKOFF, START, Jitter::new(seed));
    (1..=n).map(|attempt| s.pause(attempt, last)).collect()
}

#[test]
fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
    for last in [LastFailure::Busy, LastFailure::Other] {
        assert_eq!(pauses(7, 50, last), pauses(7, 50, last));
        assert_ne!(pauses(7, 50, last), pauses(8, 50, last));
    }
}

#[test]
fn the_first_start_is_spread_over_the_start_jitter_and_later_ones_are_not_delayed_by_it() {
    let firsts: Vec<Duration> = (0..200)
        .map(|seed| pauses(seed, 1, LastFailure::None)[0])
        .collect();
    assert!(firsts.iter().all(|d| *d <= START), "{firsts:?}");
    let early = firsts.iter().filter(|d| **d < START / 4).count();
    let late = firsts.iter().filter(|d| **d > START * 3 / 4).count();
    // Uniform over 2 s: about 50 of 200 in each quarter.
    assert!(
        (20..=80).contains(&early) && (20..=80).contains(&late),
        "{early} {late}"
    );
    // A session lost later starts its attempts over at 1: immediate, no second start jitter.
    let mut s = RetrySchedule::new(BACKOFF, START, Jitter::new(3));
    s.pause(1, LastFailure::None);
    assert_eq!(s.pause(1, LastFailure::None), Duration::ZERO);
    // No start jitter configured: the first attempt is immediate.
    let mut s = RetrySchedule::new(BACKOFF, Duration::ZERO, Jitter::new(3));
    assert_eq!(s.pause(1, LastFailure::None), Duration::ZERO);
}

#[test]
fn pauses_are_bounded_by_the_cap_and_grow_up_to_it() {
    for seed in 0..50 {
        for last in [LastFailure::Busy, LastFailure::Other] {
            let p = pauses(seed, 1000, last);
            assert!(p.iter().all(|d| *d <= BACKOFF.max), "{p:?}");
            if last == LastFailure::Other {
                // Jittered into [½, 1] of the capped exponential value: attempt 2 waits 100–200 ms,
                // from attempt 7 on (6.4 s before the cap) at least 2.5 s.
                assert!(p[1] >= Duration::from_millis(100) && p[1] <= Duration::from_millis(200));
                assert!(p[6..].iter().all(|d| *d >= BACKOFF.max / 2), "{p:?}");
            }
        }
    }
}

#[test]
fn a_busy_pause_is_fully_jittered_over_its_window() {
    // After the cap is reached, a "busy" pause is uniform over [0, 5 s]: of many, some in each
    // fifth of the window (the ordinary backoff never goes below half of it).
    let p = pauses(11, 2000, LastFailure::Busy);
    let capped = &p[10..];
    for fifth in 0..5u32 {
        let (lo, hi) = (BACKOFF.max * fifth / 5, BACKOFF.max * (fifth + 1) / 5);
        let n = capped.iter().filter(|d| **d >= lo && **d < hi).count();
        assert!(n > 250 && n < 550, "{n} pauses in [{lo:?}, {hi:?})");
    }
}
