//! The building blocks of the telemetry blobs ([`super`] documents the format): LEB128 varints,
//! zig-zag, presence maps, and integer streams (lane prediction, a varint warm-up, bit-packed
//! residual blocks). Reading never panics and never allocates more than its caller allowed.

use super::DecodeError;

/// Residuals per bit-packed block.
pub(super) const BLOCK: usize = 16;
/// Highest prediction order.
const MAX_ORDER: u8 = 3;
/// Header bit of a stream whose block residuals are all zero (no blocks follow).
const CONSTANT: u8 = 0b100;

/// The widest value a stream may decode to (a `u16` device, a 32-bit value, a 64-bit value).
#[derive(Debug, Clone, Copy)]
pub(super) enum Class {
    U16,
    U32,
    U64,
}

impl Class {
    fn max(self) -> u64 {
        match self {
            Class::U16 => u64::from(u16::MAX),
            Class::U32 => u64::from(u32::MAX),
            Class::U64 => u64::MAX,
        }
    }
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn zigzag(v: u64) -> u64 {
    let s = v as i64;
    ((s << 1) ^ (s >> 63)) as u64
}

fn unzigzag(z: u64) -> u64 {
    ((z >> 1) as i64 ^ -((z & 1) as i64)) as u64
}

/// A cursor over a blob that reports where it stopped.
pub(super) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub(super) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(super) fn invalid(&self, what: &'static str, problem: &'static str) -> DecodeError {
        DecodeError::Invalid {
            what,
            offset: self.pos,
            problem,
        }
    }

    pub(super) fn byte(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let b = *self.data.get(self.pos).ok_or(DecodeError::Truncated {
            what,
            offset: self.pos,
        })?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                what,
                offset: self.pos,
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// An unsigned LEB128 varint of at most 10 bytes.
    pub(super) fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte(what)?;
            if i == 9 && b > 1 {
                return Err(self.invalid(what, "varint longer than 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.invalid(what, "varint longer than 64 bits"))
    }

    /// A count that must not exceed `limit`.
    pub(super) fn count(&mut self, what: &'static str, limit: usize) -> Result<usize, DecodeError> {
        let v = self.varint(what)?;
        match usize::try_from(v) {
            Ok(n) if n <= limit => Ok(n),
            _ => Err(DecodeError::TooMany {
                what,
                count: v,
                limit: limit as u64,
            }),
        }
    }
}

/// The value of lane prediction: `order` 0 predicts 0; otherwise index `i < stride` (a lane's head)
/// is predicted by the value before it, and later indices by extrapolating their lane (every
/// `stride`-th value) with a polynomial of degree `min(order, i / stride) - 1`. Wrapping arithmetic.
#[inline(always)]
fn predict(v: &[u64], i: usize, order: u8, stride: usize) -> u64 {
    if order == 0 || i == 0 {
        return 0;
    }
    if i < stride {
        return v[i - 1];
    }
    let lane = i / stride;
    let a = v[i - stride];
    match (order as usize).min(lane) {
        1 => a,
        2 => a.wrapping_mul(2).wrapping_sub(v[i - 2 * stride]),
        _ => a
            .wrapping_sub(v[i - 2 * stride])
            .wrapping_mul(3)
            .wrapping_add(v[i - 3 * stride]),
    }
}

/// First index whose residual goes into the blocks (earlier ones are the varint warm-up).
fn warm_up_end(n: usize, order: u8, stride: usize) -> usize {
    if order == 0 {
        return 1.min(n);
    }
    stride.saturating_mul(usize::from(order)).clamp(1, n.max(1))
}

fn width(z: u64) -> u32 {
    64 - z.leading_zeros()
}

/// Bytes of the stream body for a choice, and whether its block residuals are all zero (the
/// reference [`costs`] is tested against).
#[cfg(test)]
fn cost(v: &[u64], order: u8, stride: usize) -> (usize, bool) {
    let end = warm_up_end(v.len(), order, stride);
    let mut bytes = usize::from(order > 0) * varint_len(stride as u64);
    for i in 1..end {
        bytes += varint_len(zigzag(v[i].wrapping_sub(predict(v, i, order, stride))));
    }
    let mut all_zero = true;
    let mut i = end;
    while i < v.len() {
        let stop = (i + BLOCK).min(v.len());
        let mut w = 0;
        for j in i..stop {
            w = w.max(width(zigzag(
                v[j].wrapping_sub(predict(v, j, order, stride)),
            )));
        }
        all_zero &= w == 0;
        bytes += 1 + 2 * w as usize;
        i = stop;
    }
    (bytes, all_zero)
}

/// [`cost`] of every order 0..=3 at `stride`, in one pass over `v` (the encoder's hot loop).
fn costs(v: &[u64], stride: usize) -> [(usize, bool); 4] {
    let n = v.len();
    let mut out = [(0usize, true); 4];
    let mut ends = [1usize; 4];
    for k in 1..4 {
        out[k].0 = varint_len(stride as u64);
        ends[k] = warm_up_end(n, k as u8, stride);
    }
    let mut widest = [0u32; 4];
    let mut filled = [0usize; 4];
    for i in 1..n {
        let x = v[i];
        let mut r = [zigzag(x); 4];
        if i < stride {
            let h = zigzag(x.wrapping_sub(v[i - 1]));
            r[1] = h;
            r[2] = h;
            r[3] = h;
        } else {
            let lane = i / stride;
            let a = v[i - stride];
            r[1] = zigzag(x.wrapping_sub(a));
            r[2] = r[1];
            r[3] = r[1];
            if lane >= 2 {
                let b = v[i - 2 * stride];
                r[2] = zigzag(x.wrapping_sub(a.wrapping_mul(2).wrapping_sub(b)));
                r[3] = r[2];
                if lane >= 3 {
                    let c = v[i - 3 * stride];
                    let p = a.wrapping_sub(b).wrapping_mul(3).wrapping_add(c);
                    r[3] = zigzag(x.wrapping_sub(p));
                }
            }
        }
        for k in 0..4 {
            if i < ends[k] {
                out[k].0 += varint_len(r[k]);
            } else {
                widest[k] = widest[k].max(width(r[k]));
                filled[k] += 1;
                if filled[k] == BLOCK {
                    out[k].0 += 1 + 2 * widest[k] as usize;
                    out[k].1 &= widest[k] == 0;
                    widest[k] = 0;
                    filled[k] = 0;
                }
            }
        }
    }
    for k in 0..4 {
        if filled[k] > 0 {
            out[k].0 += 1 + 2 * widest[k] as usize;
            out[k].1 &= widest[k] == 0;
        }
    }
    out
}

/// Writes `v` as a stream (`v` not empty) with stride `lanes`, choosing the order that takes the
/// fewest bytes (trying stride 1 as well when `lanes > 1` saved 1 % of the demo's bytes for 40 % more
/// encoding time). An `anchor` stream never uses the constant form, so that its blob keeps at least
/// one byte per [`BLOCK`] values (the bound [`super`]'s decoder checks counts against).
pub(super) fn put_stream(out: &mut Vec<u8>, v: &[u64], lanes: usize, anchor: bool) {
    let stride = lanes.max(1);
    let mut best = (usize::MAX, 0u8, false);
    for (order, (mut bytes, all_zero)) in (0..=MAX_ORDER).zip(costs(v, stride)) {
        let constant = all_zero && !anchor;
        if constant {
            // Block width bytes that the constant form leaves out.
            let end = warm_up_end(v.len(), order, stride);
            bytes -= (v.len() - end).div_ceil(BLOCK);
        }
        if bytes < best.0 {
            best = (bytes, order, constant);
        }
    }
    let (_, order, constant) = best;
    out.push(order | if constant { CONSTANT } else { 0 });
    if order > 0 {
        put_varint(out, stride as u64);
    }
    put_varint(out, zigzag(v[0]));
    let end = warm_up_end(v.len(), order, stride);
    for i in 1..end {
        put_varint(out, zigzag(v[i].wrapping_sub(predict(v, i, order, stride))));
    }
    if constant {
        return;
    }
    let mut block = [0u64; BLOCK];
    let mut i = end;
    while i < v.len() {
        let stop = (i + BLOCK).min(v.len());
        block.fill(0);
        for j in i..stop {
            block[j - i] = zigzag(v[j].wrapping_sub(predict(v, j, order, stride)));
        }
        pack_block(&block, out);
        i = stop;
    }
}

/// One block: its width byte `w`, then the 16 values as `w`-bit fields, least significant bit first.
fn pack_block(block: &[u64; BLOCK], out: &mut Vec<u8>) {
    let w = block.iter().map(|&z| width(z)).max().unwrap_or(0);
    out.push(w as u8);
    let mut acc: u128 = 0;
    let mut bits = 0u32;
    for &z in block {
        acc |= u128::from(z) << bits;
        bits += w;
        if bits >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            bits -= 64;
        }
    }
    // 16 × w bits is a whole number of bytes.
    out.extend_from_slice(&acc.to_le_bytes()[..(bits / 8) as usize]);
}

fn unpack_block(bytes: &[u8], w: u32, dst: &mut [u64; BLOCK]) {
    if w == 0 {
        dst.fill(0);
        return;
    }
    let mut buf = [0u8; 2 * 64 + 16];
    buf[..bytes.len()].copy_from_slice(bytes);
    let mask = u64::MAX >> (64 - w);
    for (j, d) in dst.iter_mut().enumerate() {
        let bit = j * w as usize;
        let mut word = [0u8; 16];
        word.copy_from_slice(&buf[bit / 8..bit / 8 + 16]);
        *d = (u128::from_le_bytes(word) >> (bit % 8)) as u64 & mask;
    }
}

/// Reads a stream of `count` values (already checked against the blob's limits) into `out`.
pub(super) fn read_stream(
    r: &mut Reader<'_>,
    count: usize,
    class: Class,
    what: &'static str,
    out: &mut Vec<u64>,
) -> Result<(), DecodeError> {
    out.clear();
    if count == 0 {
        return Ok(());
    }
    out.reserve(count);
    let header = r.byte(what)?;
    if header & !(CONSTANT | MAX_ORDER) != 0 {
        return Err(r.invalid(what, "reserved bits of the stream header are set"));
    }
    let order = header & MAX_ORDER;
    let stride = if order > 0 {
        match usize::try_from(r.varint(what)?) {
            Ok(s) if s >= 1 => s,
            _ => return Err(r.invalid(what, "stride is 0 or too large")),
        }
    } else {
        1
    };
    let check = |r: &Reader<'_>, v: u64| {
        if v > class.max() {
            Err(r.invalid(what, "value out of range for the column"))
        } else {
            Ok(v)
        }
    };
    let base = unzigzag(r.varint(what)?);
    out.push(check(r, base)?);
    let end = warm_up_end(count, order, stride);
    for i in 1..end {
        let z = r.varint(what)?;
        let v = predict(out, i, order, stride).wrapping_add(unzigzag(z));
        out.push(check(r, v)?);
    }
    if header & CONSTANT != 0 {
        for i in end..count {
            let v = predict(out, i, order, stride);
            out.push(check(r, v)?);
        }
        return Ok(());
    }
    let mut block = [0u64; BLOCK];
    let mut i = end;
    while i < count {
        let w = u32::from(r.byte(what)?);
        if w > 64 {
            return Err(r.invalid(what, "block width above 64 bits"));
        }
        unpack_block(r.take(2 * w as usize, what)?, w, &mut block);
        let stop = (i + BLOCK).min(count);
        for (j, &z) in block.iter().enumerate() {
            if i + j >= stop {
                if z != 0 {
                    return Err(r.invalid(what, "padding of the last block is not zero"));
                }
                continue;
            }
            let v = predict(out, i + j, order, stride).wrapping_add(unzigzag(z));
            out.push(check(r, v)?);
        }
        i = stop;
    }
    Ok(())
}

/// Presence byte of an optional column: absent everywhere, present everywhere, or a bitmap.
const NONE: u8 = 0;
const ALL: u8 = 1;
const MAP: u8 = 2;

/// Writes the presence of `n` values given as a bitmap (bit `i % 8` of byte `i / 8`) with `present`
/// bits set.
pub(super) fn put_presence(out: &mut Vec<u8>, bitmap: &[u8], n: usize, present: usize) {
    if present == 0 {
        out.push(NONE);
    } else if present == n {
        out.push(ALL);
    } else {
        out.push(MAP);
        out.extend_from_slice(&bitmap[..n.div_ceil(8)]);
    }
}

/// Which of `n` values are present.
#[derive(Debug, Clone, Copy)]
pub(super) enum Presence<'a> {
    None,
    All,
    Map(&'a [u8]),
}

impl Presence<'_> {
    #[inline]
    pub(super) fn get(&self, i: usize) -> bool {
        match self {
            Presence::None => false,
            Presence::All => true,
            Presence::Map(m) => m.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1),
        }
    }
}

/// Reads a presence byte (and bitmap) of `n` values; returns it and how many are present.
pub(super) fn read_presence<'a>(
    r: &mut Reader<'a>,
    n: usize,
    what: &'static str,
) -> Result<(Presence<'a>, usize), DecodeError> {
    match r.byte(what)? {
        NONE => Ok((Presence::None, 0)),
        ALL => Ok((Presence::All, n)),
        MAP => {
            let map = r.take(n.div_ceil(8), what)?;
            if !n.is_multiple_of(8) && map.last().is_some_and(|b| b >> (n % 8) != 0) {
                return Err(r.invalid(what, "presence bits set beyond the last value"));
            }
            let present = map.iter().map(|b| b.count_ones() as usize).sum();
            Ok((Presence::Map(map), present))
        }
        _ => Err(r.invalid(what, "unknown presence mode (0 none, 1 all, 2 bitmap)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip_at_the_edges() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u64::MAX / 2, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            assert_eq!(Reader::new(&out).varint("v").unwrap(), v);
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag((-1i64) as u64), 1);
        assert_eq!(zigzag(1), 2);
        // An 11-byte varint, and a 10th byte carrying more than the 64th bit.
        assert!(Reader::new(&[0xff; 11]).varint("v").is_err());
        let mut ten = vec![0xff; 9];
        ten.push(0x02);
        assert!(Reader::new(&ten).varint("v").is_err());
    }

    #[test]
    fn streams_round_trip_every_order_and_stride() {
        let v: Vec<u64> = (0..100u64).map(|i| (i * i * 7) ^ (i % 8)).collect();
        for lanes in [1, 3, 8, 200] {
            for anchor in [false, true] {
                let mut out = Vec::new();
                put_stream(&mut out, &v, lanes, anchor);
                let mut r = Reader::new(&out);
                let mut back = Vec::new();
                read_stream(&mut r, v.len(), Class::U64, "v", &mut back).unwrap();
                assert_eq!(back, v);
                assert_eq!(r.remaining(), 0);
            }
        }
    }

    #[test]
    fn one_pass_costs_match_the_reference() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for n in [1, 2, 5, 16, 17, 33, 100] {
            let v: Vec<u64> = (0..n)
                .map(|i| {
                    x = x.rotate_left(7).wrapping_mul(0x2545_f491_4f6c_dd1d);
                    if i % 3 == 0 {
                        (i as u64) * 1000
                    } else {
                        x >> (x % 64)
                    }
                })
                .collect();
            for stride in [1, 2, 8, 200] {
                let all = costs(&v, stride);
                for order in 0..=MAX_ORDER {
                    assert_eq!(
                        all[order as usize],
                        cost(&v, order, stride),
                        "n {n} stride {stride} order {order}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_linear_lane_costs_no_blocks() {
        let v: Vec<u64> = (0..160u64)
            .map(|i| 1_000_000 + (i / 8) * 100 + i % 8)
            .collect();
        let mut out = Vec::new();
        put_stream(&mut out, &v, 8, false);
        assert!(out.len() < 40, "{} bytes", out.len());
    }
}
