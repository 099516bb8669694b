//! What the mesh keeps of each directed pair this member initiates: its outstanding ping, the
//! overdue ones a late pong may still answer, its counts; and where an arriving pong fits
//! ([`match_pong`]). The rules are in the module docs of `mesh.rs`.

use super::mesh::MAX_OVERDUE;
use std::collections::VecDeque;
use std::io;
use std::time::Instant;

/// The ping waiting for its pong.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    pub(super) seq: u64,
    pub(super) sent_at: Instant,
    pub(super) deadline: Instant,
}

/// What one directed pair initiated here has counted so far.
#[derive(Debug)]
pub(super) struct PairRun {
    pub(super) peer: usize,
    /// The sequence number of the pair's first ping (pongs below it belong to an earlier pair).
    pub(super) first_seq: u64,
    pub(super) sent: u64,
    /// Pings given up for good (only past [`MAX_OVERDUE`] before the half-slot ends).
    pub(super) lost: u64,
    /// Pongs received, late ones included.
    pub(super) pongs: u64,
    /// Of `pongs`, those that came after their ping's `PONG_TIMEOUT`.
    pub(super) late: u64,
    /// Pings past their timeout, not answered yet: (seq, sent at), oldest first.
    pub(super) overdue: VecDeque<(u64, Instant)>,
    pub(super) send_errors: u64,
    pub(super) first_send_error: Option<io::Error>,
}

impl PairRun {
    pub(super) fn new(peer: usize, first_seq: u64) -> PairRun {
        PairRun {
            peer,
            first_seq,
            sent: 0,
            lost: 0,
            pongs: 0,
            late: 0,
            overdue: VecDeque::new(),
            send_errors: 0,
            first_send_error: None,
        }
    }

    /// `p` got no pong within its timeout: it waits among the overdue pings.
    pub(super) fn timed_out(&mut self, p: Pending) {
        if self.overdue.len() >= MAX_OVERDUE {
            self.overdue.pop_front();
            self.lost += 1;
        }
        self.overdue.push_back((p.seq, p.sent_at));
    }

    /// Takes the overdue ping `seq` out, returning its send instant.
    pub(super) fn answer_overdue(&mut self, seq: u64) -> Option<Instant> {
        let i = self.overdue.iter().position(|&(s, _)| s == seq)?;
        self.overdue.remove(i).map(|(_, at)| at)
    }

    /// Pings never answered: lost ones and those still overdue (at the half-slot's end).
    pub(super) fn unanswered(&self) -> u64 {
        self.lost + self.overdue.len() as u64
    }
}

/// Where a pong fits.
pub(super) enum PongMatch {
    /// It answers the outstanding ping or an overdue one, sent at this instant.
    Answer(Instant),
    /// A ping of the current pair that is answered already (or was given up): a duplicate.
    Duplicate,
    /// Nothing this member is waiting for: a pong past its half-slot or not for this pair.
    Stale,
}

/// Where a pong from `src` with sequence number `seq` fits (before its tag is checked), given the
/// pair being measured, its outstanding ping and the last sequence number sent.
pub(super) fn match_pong(
    pair: Option<&PairRun>,
    pending: Option<Pending>,
    last_seq: u64,
    src: usize,
    seq: u64,
) -> PongMatch {
    let Some(pr) = pair.filter(|pr| pr.peer == src) else {
        return PongMatch::Stale;
    };
    if let Some(p) = pending.filter(|p| p.seq == seq) {
        return PongMatch::Answer(p.sent_at);
    }
    if let Some(&(_, at)) = pr.overdue.iter().find(|&&(s, _)| s == seq) {
        return PongMatch::Answer(at);
    }
    if (pr.first_seq..=last_seq).contains(&seq) {
        PongMatch::Duplicate
    } else {
        PongMatch::Stale
    }
}
