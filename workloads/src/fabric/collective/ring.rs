//! The bandwidth-optimal algorithms: rings, a chain, and pairwise exchange.
//!
//! * all-reduce: reduce-scatter then all-gather around the ring, 2(n − 1) steps; each step sends
//!   one segment to rank + 1 while it receives one from rank − 1, and every piece is forwarded as
//!   soon as it is reduced or received, so the steps overlap (pipelined in pieces).
//! * reduce-scatter: the first half of that; rank r ends with the sum of segment r.
//! * all-gather: the second half, starting from each rank's own block.
//! * broadcast: a pipelined chain 0 → 1 → … → n − 1, each piece forwarded once received.
//! * all-to-all: pairwise exchange — at step s rank r sends its block for r + s and receives
//!   the block from r − s, and the step completes before the next begins (one pair in flight
//!   per rank, no incast).
//!
//! Segments are the uneven parts of [`part_len`](super::verify::part_len): segment k holds
//! count / n elements, one more for the first count mod n.

use super::link::CollError;
use super::verify::{part_len, part_off, Shape};
use super::xfer::{Base, Xfer};

/// Output = input, for a single rank.
pub(super) fn copy_all(x: &mut Xfer) -> Result<(), CollError> {
    let lay = x.layout();
    for (id, r) in lay.pieces.iter().enumerate() {
        x.copy_input(id, r.start)?;
    }
    Ok(())
}

/// Reduce-scatter around the ring; with `then_gather` the all-gather follows (all-reduce).
fn reduce_scatter_ring(
    x: &mut Xfer,
    r: usize,
    n: usize,
    then_gather: bool,
) -> Result<(), CollError> {
    let lay = x.layout();
    let (next, prev) = ((r + 1) % n, (r + n - 1) % n);
    // Step s sends segment r − s − 1 and receives segment r − s − 2; step 0 sends from the
    // input, later steps forward what the previous step reduced.
    for id in lay.seg(r + n - 1) {
        x.send_input(&[next], lay.pieces[id].clone())?;
    }
    for s in 0..n - 1 {
        let seg = (r + 2 * n - s - 2) % n;
        for id in lay.seg(seg) {
            let off = lay.pieces[id].start;
            x.recv_reduce(prev, id, Base::Input(off))?;
            // At the last step this is segment r, complete: the all-gather's first send.
            if s + 2 < n || then_gather {
                x.send_piece(&[next], id)?;
            }
        }
    }
    if then_gather {
        gather_ring(x, r, n)?;
    }
    x.flush()
}

/// The all-gather steps: step s receives segment r − s − 1 and forwards it unless it is the last.
fn gather_ring(x: &mut Xfer, r: usize, n: usize) -> Result<(), CollError> {
    let lay = x.layout();
    let (next, prev) = ((r + 1) % n, (r + n - 1) % n);
    for s in 0..n - 1 {
        let seg = (r + 2 * n - s - 1) % n;
        for id in lay.seg(seg) {
            x.recv_piece(prev, id)?;
            if s + 2 < n {
                x.send_piece(&[next], id)?;
            }
        }
    }
    Ok(())
}

pub(super) fn all_reduce(x: &mut Xfer, r: usize, n: usize) -> Result<(), CollError> {
    if n == 1 {
        return copy_all(x);
    }
    reduce_scatter_ring(x, r, n, true)
}

pub(super) fn reduce_scatter(x: &mut Xfer, r: usize, n: usize) -> Result<(), CollError> {
    if n == 1 {
        return copy_all(x);
    }
    reduce_scatter_ring(x, r, n, false)
}

/// Copies this rank's input (its block of an all-gather) into output segment `r`.
pub(super) fn place_own_block(x: &mut Xfer, r: usize) -> Result<(), CollError> {
    let lay = x.layout();
    let base = lay.seg_bytes(r).start;
    for id in lay.seg(r) {
        x.copy_input(id, lay.pieces[id].start - base)?;
    }
    Ok(())
}

pub(super) fn all_gather(x: &mut Xfer, r: usize, n: usize) -> Result<(), CollError> {
    let lay = x.layout();
    if n > 1 {
        let base = lay.seg_bytes(r).start;
        for id in lay.seg(r) {
            let p = &lay.pieces[id];
            x.send_input(&[(r + 1) % n], p.start - base..p.end - base)?;
        }
    }
    place_own_block(x, r)?;
    if n > 1 {
        gather_ring(x, r, n)?;
    }
    x.flush()
}

pub(super) fn broadcast(x: &mut Xfer, r: usize, n: usize) -> Result<(), CollError> {
    let lay = x.layout();
    if r == 0 {
        if n > 1 {
            for p in &lay.pieces {
                x.send_input(&[1], p.clone())?;
            }
        }
        copy_all(x)?;
    } else {
        for id in 0..lay.pieces.len() {
            x.recv_piece(r - 1, id)?;
            if r + 1 < n {
                x.send_piece(&[r + 1], id)?;
            }
        }
    }
    x.flush()
}

/// The input bytes of the block this rank sends to rank `dst` in an all-to-all.
pub(super) fn a2a_block(shape: &Shape, dst: usize) -> std::ops::Range<usize> {
    let off = part_off(shape.count, shape.ranks, dst);
    4 * off..4 * (off + part_len(shape.count, shape.ranks, dst))
}

/// Output segment `r` of an all-to-all = this rank's own input block.
pub(super) fn a2a_own_block(x: &mut Xfer, shape: &Shape, r: usize) -> Result<(), CollError> {
    let lay = x.layout();
    let seg_base = lay.seg_bytes(r).start;
    let in_base = a2a_block(shape, r).start;
    for id in lay.seg(r) {
        x.copy_input(id, in_base + lay.pieces[id].start - seg_base)?;
    }
    Ok(())
}

pub(super) fn all_to_all(x: &mut Xfer, shape: &Shape, r: usize, n: usize) -> Result<(), CollError> {
    a2a_own_block(x, shape, r)?;
    let lay = x.layout();
    for s in 1..n {
        let (dst, src) = ((r + s) % n, (r + n - s) % n);
        x.send_input(&[dst], a2a_block(shape, dst))?;
        for id in lay.seg(src) {
            x.recv_piece(src, id)?;
        }
        x.flush()?;
    }
    Ok(())
}
