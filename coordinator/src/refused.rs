//! Connections refused for load, remembered for a few seconds by the connection id their probe
//! chose, so that a copy of a refused Initial is refused again instead of admitted.
//!
//! A probe whose Initial waits in a busy coordinator's socket longer than its retransmission
//! timeout sends a copy. The coordinator refuses the first one ("coordinator busy") and quinn
//! forgets it; the copy then looks like a new connection and, once a handshake place is free, was
//! admitted. But its probe had already read the refusal and gone to its backoff, so the handshake
//! held its place unanswered until the handshake timeout (5 s), while other probes were turned
//! away: about 50 to 70 places for 5 s in each 10 000-probe storm measured. A copy carries the
//! destination connection id of the original, which the probe draws at random for each attempt,
//! so the ids of refused attempts tell copies from new attempts. The caller passes the time: no
//! clock in here.

use crate::admit::{Admission, Place};
use crate::conn::refuse_for_load;
use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};
use tracing::debug;

/// How long a refused attempt's id is kept: twice the probe's connect timeout (5 s), after which
/// it sends no more copies of that attempt.
pub(crate) const KEEP: Duration = Duration::from_secs(10);

/// Most ids kept; past it the oldest goes first (a storm of 10 000 probes refuses about 3 000 a
/// second).
pub(crate) const MOST: usize = 100_000;

/// A new connection's place, with the connection to start; `None` when it was refused: for load,
/// or as the copy of an attempt refused within [`KEEP`] (counted apart,
/// [`crate::LoadRefusals::resent_initials`]).
pub(crate) fn admit(
    incoming: quinn::Incoming,
    admission: &Admission,
    recent: &mut RecentRefusals<quinn::ConnectionId>,
    now: Instant,
) -> Option<(quinn::Incoming, Place)> {
    let id = incoming.orig_dst_cid();
    if recent.contains(&id, now) {
        admission.count_resent_initial();
        debug!(
            "refused connection from {} again: a copy of an attempt refused for load",
            incoming.remote_address()
        );
        incoming.refuse();
        return None;
    }
    match admission.enter() {
        Ok(place) => Some((incoming, place)),
        Err(full) => {
            recent.refused(id, now);
            refuse_for_load(incoming, full, admission);
            None
        }
    }
}

/// Ids of refused attempts, oldest first, for [`KEEP`] and at most [`MOST`] of them.
#[derive(Debug)]
pub(crate) struct RecentRefusals<K> {
    order: VecDeque<(Instant, K)>,
    ids: HashSet<K>,
    keep: Duration,
    most: usize,
}

impl<K: Hash + Eq + Clone> RecentRefusals<K> {
    pub(crate) fn new(keep: Duration, most: usize) -> Self {
        RecentRefusals {
            order: VecDeque::new(),
            ids: HashSet::new(),
            keep,
            most: most.max(1),
        }
    }

    /// The attempt `id` was refused at `now`.
    pub(crate) fn refused(&mut self, id: K, now: Instant) {
        self.expire(now);
        if self.ids.contains(&id) {
            return;
        }
        if self.ids.len() >= self.most {
            if let Some((_, oldest)) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
        self.ids.insert(id.clone());
        self.order.push_back((now, id));
    }

    /// Whether the attempt `id` was refused within [`KEEP`] of `now`.
    pub(crate) fn contains(&mut self, id: &K, now: Instant) -> bool {
        self.expire(now);
        self.ids.contains(id)
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.keep {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.ids.remove(&id);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_id_is_known_for_its_time_only() {
        let t0 = Instant::now();
        let mut r = RecentRefusals::new(Duration::from_secs(10), 100);
        r.refused(7u64, t0);
        r.refused(8u64, t0 + Duration::from_secs(4));
        assert!(r.contains(&7, t0 + Duration::from_secs(9)));
        assert!(!r.contains(&9, t0 + Duration::from_secs(9)));
        // 7 expires at 10 s, 8 at 14 s.
        assert!(!r.contains(&7, t0 + Duration::from_secs(10)));
        assert!(r.contains(&8, t0 + Duration::from_secs(13)));
        assert!(!r.contains(&8, t0 + Duration::from_secs(14)));
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn the_oldest_go_first_past_the_bound() {
        let t0 = Instant::now();
        let mut r = RecentRefusals::new(Duration::from_secs(10), 3);
        for id in 0u64..5 {
            r.refused(id, t0);
        }
        // Refusing one already kept neither doubles nor pushes anything out.
        r.refused(4, t0);
        assert_eq!(r.len(), 3);
        assert!(!r.contains(&0, t0) && !r.contains(&1, t0));
        assert!(r.contains(&2, t0) && r.contains(&3, t0) && r.contains(&4, t0));
    }
}
