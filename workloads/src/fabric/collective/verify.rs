//! What each rank's buffers hold for one operation at one size ([`Shape`]: how many f32 elements
//! in and out, and how the output splits into segments), the deterministic input pattern, and
//! the exact check of the output.
//!
//! Element `i` of rank `r`'s contribution at iteration `it` is `(h(i, it) + g(r)) mod 16`: small
//! integers, so every sum the operations form (at most 15 × ranks) is exact in f32 whatever the
//! order of additions, and the expected output is computed exactly. `h` hashes the position (a
//! misplaced block shows), `g` shifts by rank (another rank's data shows, for up to 16 ranks).
//! The sum over all ranks depends only on `h`, so it comes from a 16-entry table: checking is
//! O(elements) for every operation. Buffers are bytes holding little-endian f32.

use hallmark_protocol::CollectiveOp;

/// Elements of part `k` when `count` elements are split over `n` parts: the first `count % n`
/// parts hold one element more.
pub fn part_len(count: usize, n: usize, k: usize) -> usize {
    let n = n.max(1);
    count / n + usize::from(k < count % n)
}

/// Index of the first element of part `k`.
pub fn part_off(count: usize, n: usize, k: usize) -> usize {
    let n = n.max(1);
    k * (count / n) + k.min(count % n)
}

/// The buffers of one operation at one size on one rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub op: CollectiveOp,
    pub ranks: usize,
    pub rank: usize,
    /// nccl-tests' element count: the message size / 4.
    pub count: usize,
    /// Elements of this rank's input.
    pub in_elems: usize,
    /// Output segments in order, in elements: per rank for all-reduce, all-gather,
    /// reduce-scatter and broadcast; per source rank for all-to-all.
    pub segs: Vec<usize>,
}

impl Shape {
    pub fn new(op: CollectiveOp, ranks: usize, rank: usize, count: usize) -> Shape {
        let n = ranks.max(1);
        let parts: Vec<usize> = (0..n).map(|k| part_len(count, n, k)).collect();
        let (in_elems, segs) = match op {
            CollectiveOp::AllReduce | CollectiveOp::ReduceScatter | CollectiveOp::Broadcast => {
                (count, parts)
            }
            CollectiveOp::AllGather => (part_len(count, n, rank), parts),
            CollectiveOp::AllToAll => (count, vec![part_len(count, n, rank); n]),
        };
        Shape {
            op,
            ranks: n,
            rank,
            count,
            in_elems,
            segs,
        }
    }
}

/// The position hash: 0..16.
fn h(i: usize, it: u32) -> u32 {
    let x = (i as u64) ^ (u64::from(it) << 40);
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as u32
}

/// The rank shift: distinct for ranks below 16.
fn g(rank: usize) -> u32 {
    ((rank as u64).wrapping_mul(7).wrapping_add(rank as u64 / 16) % 16) as u32
}

/// Rank `rank`'s contribution at element `i`, iteration `it`.
pub fn value(rank: usize, i: usize, it: u32) -> f32 {
    ((h(i, it) + g(rank)) % 16) as f32
}

/// The sum over ranks 0..n for each of the 16 values of `h`.
fn sum_table(n: usize) -> [f32; 16] {
    let mut t = [0u32; 16];
    for (hv, slot) in t.iter_mut().enumerate() {
        for r in 0..n {
            *slot += (hv as u32 + g(r)) % 16;
        }
    }
    t.map(|s| s as f32)
}

fn put(buf: &mut [u8], j: usize, v: f32) {
    if let Some(b) = buf.get_mut(4 * j..4 * j + 4) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

/// Fills this rank's input for iteration `it` (`buf` holds at least `in_elems` elements). A
/// broadcast's input matters on the root only; other ranks leave theirs. With `corrupt` the first
/// element is off by one: a test's faulty contribution.
pub fn fill_input(shape: &Shape, it: u32, buf: &mut [u8], corrupt: bool) {
    if shape.op == CollectiveOp::Broadcast && shape.rank != 0 {
        return;
    }
    let base = match shape.op {
        CollectiveOp::AllGather => part_off(shape.count, shape.ranks, shape.rank),
        _ => 0,
    };
    let len = shape.in_elems.min(buf.len() / 4);
    for (j, b) in buf[..4 * len].chunks_exact_mut(4).enumerate() {
        b.copy_from_slice(&value(shape.rank, base + j, it).to_le_bytes());
    }
    if corrupt && len > 0 {
        put(buf, 0, value(shape.rank, base, it) + 1.0);
    }
}

/// Counts the output elements that differ from what the operation must produce at iteration
/// `it` (NaN never equals anything, so a NaN is always counted). `out` holds the output segments.
pub fn count_wrong(shape: &Shape, it: u32, out: &[u8]) -> u64 {
    let n = shape.ranks;
    let mut wrong = 0u64;
    let mut check = |start: usize, len: usize, expect: &dyn Fn(usize) -> f32| {
        let Some(bytes) = out.get(4 * start..4 * (start + len)) else {
            wrong += len as u64;
            return;
        };
        for (j, b) in bytes.chunks_exact(4).enumerate() {
            let got = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if got != expect(j) {
                wrong += 1;
            }
        }
    };
    match shape.op {
        CollectiveOp::AllReduce => {
            let t = sum_table(n);
            check(0, shape.count, &|i| t[h(i, it) as usize]);
        }
        CollectiveOp::ReduceScatter => {
            let t = sum_table(n);
            let off = part_off(shape.count, n, shape.rank);
            let len = part_len(shape.count, n, shape.rank);
            check(off, len, &|j| t[h(off + j, it) as usize]);
        }
        CollectiveOp::AllGather => {
            for q in 0..n {
                let off = part_off(shape.count, n, q);
                check(off, part_len(shape.count, n, q), &|j| value(q, off + j, it));
            }
        }
        CollectiveOp::Broadcast => check(0, shape.count, &|i| value(0, i, it)),
        CollectiveOp::AllToAll => {
            let len = part_len(shape.count, n, shape.rank);
            let src_off = part_off(shape.count, n, shape.rank);
            for q in 0..n {
                check(q * len, len, &|j| value(q, src_off + j, it));
            }
        }
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_count_unevenly() {
        for count in [0, 1, 2, 5, 7, 10, 1000] {
            for n in 1..6 {
                let total: usize = (0..n).map(|k| part_len(count, n, k)).sum();
                assert_eq!(total, count);
                for k in 1..n {
                    assert_eq!(
                        part_off(count, n, k),
                        part_off(count, n, k - 1) + part_len(count, n, k - 1)
                    );
                }
            }
        }
        assert_eq!(
            (0..3).map(|k| part_len(7, 3, k)).collect::<Vec<_>>(),
            [3, 2, 2]
        );
    }

    #[test]
    fn values_are_small_integers_and_the_table_sums_them() {
        for i in 0..1000 {
            let v = value(3, i, 1);
            assert!((0.0..16.0).contains(&v) && v.fract() == 0.0);
        }
        let t = sum_table(5);
        for i in 0..200 {
            let s: f32 = (0..5).map(|r| value(r, i, 2)).sum();
            assert_eq!(t[h(i, 2) as usize], s);
        }
        let distinct: std::collections::HashSet<u32> = (0..16).map(g).collect();
        assert_eq!(distinct.len(), 16);
    }

    #[test]
    fn a_correct_all_reduce_output_checks_clean_and_nan_counts() {
        let shape = Shape::new(CollectiveOp::AllReduce, 3, 1, 10);
        let mut out = vec![0u8; 40];
        for i in 0..10 {
            let s: f32 = (0..3).map(|r| value(r, i, 4)).sum();
            put(&mut out, i, s);
        }
        assert_eq!(count_wrong(&shape, 4, &out), 0);
        assert_eq!(count_wrong(&shape, 5, &out).min(1), 1, "another iteration");
        put(&mut out, 9, f32::NAN);
        assert_eq!(count_wrong(&shape, 4, &out), 1);
    }
}
