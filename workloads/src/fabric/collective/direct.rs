//! The latency-optimal algorithms: the fewest sequential steps, for small messages.
//!
//! * all-reduce: recursive doubling — log₂ n exchanges of the whole vector with the partner at
//!   distance 1, 2, 4, …; for a rank count that is not a power of two, the first 2·rem ranks
//!   (rem = n − largest power of two ≤ n) pair up first: each even one hands its vector to the
//!   odd one above it, which takes part in the doubling and hands the result back at the end.
//! * all-gather: direct — each rank sends its block to every other rank at once.
//! * reduce-scatter: direct — each rank sends block j of its input to rank j and sums the n − 1
//!   blocks it receives.
//! * broadcast: a binomial tree from rank 0 (⌈log₂ n⌉ rounds), pieces forwarded as they arrive.
//! * all-to-all: direct — every block sent at once, received in order of distance.
//!
//! Sends are queued in order of increasing distance (r + 1, r + 2, …) and receives taken in
//! order of decreasing distance (r − 1, r − 2, …), so the first block a rank waits for is the
//! first one its sender writes: no cycle of waits.

use super::link::CollError;
use super::ring::{a2a_block, a2a_own_block, copy_all, place_own_block};
use super::verify::Shape;
use super::xfer::{Base, Xfer};

/// Largest power of two not above `n` (n ≥ 1).
fn pow2_floor(n: usize) -> usize {
    if n == 0 {
        return 1;
    }
    1 << (usize::BITS - 1 - n.leading_zeros())
}

pub(super) fn all_reduce(x: &mut Xfer, r: usize, n: usize) -> Result<(), CollError> {
    if n == 1 {
        return copy_all(x);
    }
    let lay = x.layout();
    let bytes = lay.out_bytes;
    let ids = 0..lay.pieces.len();
    let p2 = pow2_floor(n);
    let rem = n - p2;
    let mut have_out = false;
    let v = if r < 2 * rem {
        if r.is_multiple_of(2) {
            x.send_input(&[r + 1], 0..bytes)?;
            for id in ids {
                x.recv_piece(r + 1, id)?;
            }
            return x.flush();
        }
        x.recv_scratch(r - 1, 0..bytes)?;
        for id in ids.clone() {
            x.reduce_scratch(id, Base::Input(lay.pieces[id].start))?;
        }
        have_out = true;
        r / 2
    } else {
        r - rem
    };
    let mut mask = 1;
    while mask < p2 {
        let pv = v ^ mask;
        let peer = if pv < rem { 2 * pv + 1 } else { pv + rem };
        if have_out {
            for id in ids.clone() {
                x.send_piece(&[peer], id)?;
            }
        } else {
            x.send_input(&[peer], 0..bytes)?;
        }
        x.recv_scratch(peer, 0..bytes)?;
        for id in ids.clone() {
            let base = if have_out {
                Base::Own
            } else {
                Base::Input(lay.pieces[id].start)
            };
            x.reduce_scratch(id, base)?;
        }
        have_out = true;
        mask <<= 1;
    }
    if r < 2 * rem {
        for id in ids {
            x.send_piece(&[r - 1], id)?;
        }
    }
    x.flush()
}

pub(super) fn all_gather(x: &mut Xfer, r: usize, n: usize) -> Result<(), CollError> {
    let lay = x.layout();
    let others: Vec<usize> = (1..n).map(|s| (r + s) % n).collect();
    x.send_input(&others, 0..lay.in_bytes)?;
    place_own_block(x, r)?;
    for s in 1..n {
        let src = (r + n - s) % n;
        for id in lay.seg(src) {
            x.recv_piece(src, id)?;
        }
    }
    x.flush()
}

pub(super) fn reduce_scatter(x: &mut Xfer, r: usize, n: usize) -> Result<(), CollError> {
    if n == 1 {
        return copy_all(x);
    }
    let lay = x.layout();
    for s in 1..n {
        let dst = (r + s) % n;
        x.send_input(&[dst], lay.seg_bytes(dst))?;
    }
    for s in 1..n {
        let src = (r + n - s) % n;
        for id in lay.seg(r) {
            let base = if s == 1 {
                Base::Input(lay.pieces[id].start)
            } else {
                Base::Own
            };
            x.recv_reduce(src, id, base)?;
        }
    }
    x.flush()
}

/// Rank `r`'s parent and children in the binomial tree rooted at 0 (children in the order they
/// are served: the largest subtree first).
pub(super) fn binomial(r: usize, n: usize) -> (Option<usize>, Vec<usize>) {
    let bits = (usize::BITS - r.leading_zeros()) as usize;
    let parent = (r > 0).then(|| r - (1 << (bits - 1)));
    let mut children = Vec::new();
    let mut k = bits;
    while k < usize::BITS as usize - 1 {
        let Some(c) = r.checked_add(1 << k) else {
            break;
        };
        if c >= n {
            break;
        }
        children.push(c);
        k += 1;
    }
    (parent, children)
}

pub(super) fn broadcast(x: &mut Xfer, r: usize, n: usize) -> Result<(), CollError> {
    let lay = x.layout();
    let (parent, children) = binomial(r, n);
    match parent {
        None => {
            for p in &lay.pieces {
                x.send_input(&children, p.clone())?;
            }
            copy_all(x)?;
        }
        Some(parent) => {
            for id in 0..lay.pieces.len() {
                x.recv_piece(parent, id)?;
                x.send_piece(&children, id)?;
            }
        }
    }
    x.flush()
}

pub(super) fn all_to_all(x: &mut Xfer, shape: &Shape, r: usize, n: usize) -> Result<(), CollError> {
    for s in 1..n {
        let dst = (r + s) % n;
        x.send_input(&[dst], a2a_block(shape, dst))?;
    }
    a2a_own_block(x, shape, r)?;
    let lay = x.layout();
    for s in 1..n {
        let src = (r + n - s) % n;
        for id in lay.seg(src) {
            x.recv_piece(src, id)?;
        }
    }
    x.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binomial_tree_reaches_every_rank_once() {
        for n in 1..40 {
            let mut reached = vec![0u32; n];
            reached[0] = 1;
            for r in 0..n {
                let (parent, children) = binomial(r, n);
                assert_eq!(parent.is_none(), r == 0);
                for c in children {
                    assert_eq!(binomial(c, n).0, Some(r));
                    reached[c] += 1;
                }
            }
            assert!(reached.iter().all(|&k| k == 1), "n = {n}: {reached:?}");
        }
        assert_eq!(pow2_floor(7), 4);
        assert_eq!(pow2_floor(8), 8);
        assert_eq!(pow2_floor(1), 1);
    }
}
