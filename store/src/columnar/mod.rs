//! The columnar telemetry codec (schema 5): one stored batch's samples, and its node-power
//! readings, as two compact blobs. Pure: no SQL, no I/O; [`Encoder`] and [`Decoder`] keep their
//! scratch buffers between batches, so a scan decodes without allocating per sample.
//!
//! Finite values only: a reading that is not a finite number (a broken sensor's NaN or infinity) is
//! stored as absent, like an absent one — the rule row storage applied (SQLite turns NaN into NULL).
//! [`Encoder::encode_samples`] and [`Encoder::encode_node_power`] apply it; everything else
//! round-trips bit for bit (`-0.0`, subnormals, any `i64` instant, devices up to `u16::MAX`, any
//! order of instants).
//!
//! # Format (version 1)
//!
//! Notation: *varint* = unsigned LEB128 (7 bits per byte, least significant group first, high bit =
//! more follows; at most 10 bytes). *zigzag(x)* maps the signed 64-bit `x` to `(x << 1) ^ (x >> 63)`
//! (0, −1, 1, −2 … → 0, 1, 2, 3 …). All arithmetic on values is wrapping 64-bit.
//!
//! **Samples blob**: byte `1` (format version), byte `b'S'`, varint `n` (samples); if `n > 0`:
//! 1. instants, as runs of equal consecutive `t_ns`: varint `R` (runs), a stream of `R` run instants
//!    (`t_ns` as `i64` bits), a stream of `R` run lengths minus one;
//! 2. `device`: a stream of `n` values — the *lanes* of every per-sample stream are the length of the
//!    first run (devices per instant);
//! 3. six optional columns, each a presence field then a stream of its present values only:
//!    `power_w` (`f32` bits), `energy_j` (`f64` bits), `gpu_temp_c`, `mem_temp_c` (`f32` bits),
//!    `sm_clock_mhz` (`u32`), `util_pct` (`f32` bits);
//! 4. `throttle_reasons`: a stream of `n` values (`u64`).
//!
//! Nothing follows. **Node-power blob**: byte `1`, byte `b'P'`, varint `n` (readings); if `n > 0`: a
//! stream of `n` instants (`t_ns`), then `power_w` as an optional column (presence, stream of `f32`
//! bits). Lanes are 1.
//!
//! **Presence field** of `n` values: byte `0` none present, `1` all present, or `2` then a bitmap of
//! `ceil(n / 8)` bytes (value `i` present when bit `i % 8` of byte `i / 8` is set; unused bits zero).
//!
//! **Stream** of `c > 0` values `v[0..c]` (nothing at all when `c = 0`): a header byte (bits 0–1 the
//! prediction order `k`, bit 2 *constant*, other bits zero); if `k > 0` a varint stride `s ≥ 1`; the
//! varint zigzag(`v[0]`); then residuals `r[i] = zigzag(v[i] − p(i))` for `i = 1..c`, where the
//! prediction `p(i)` is 0 if `k = 0`; `v[i−1]` if `i < s` (the lanes' heads); otherwise, with
//! `q = min(k, i / s)`: `v[i−s]` (q = 1), `2·v[i−s] − v[i−2s]` (q = 2), `3·v[i−s] − 3·v[i−2s] + v[i−3s]`
//! (q = 3) — each lane (every `s`-th value) extrapolated linearly or quadratically. The residuals
//! of `i < max(1, k·s)` (the warm-up) are varints; the rest come in blocks of 16: a width byte `w`
//! (0–64), then `2·w` bytes holding 16 `w`-bit residuals, least significant bit first (residual `j`
//! of the block at bits `j·w …`), the last block padded with zero residuals. If *constant* is set,
//! no blocks follow and those residuals are all 0. This encoder writes `s` = the lanes and picks the
//! order `k` per stream and blob, whichever takes the fewest bytes; a reader accepts any `s`.
//!
//! Decoding checks everything: version and kind, counts (at most [`MAX_ITEMS`], and at most 16 per
//! byte of the blob — the encoder keeps `device` and node-power instants out of the constant form,
//! which guarantees it — so no unchecked length is ever allocated), truncation, reserved bits,
//! widths, value ranges (`u16`, 32-bit), run lengths summing to `n`, and trailing bytes.

mod stream;

#[cfg(test)]
mod demo_data;
#[cfg(test)]
mod tests;

use hallmark_protocol::Sample;
use stream::{put_presence, put_stream, put_varint, read_presence, read_stream, Class, Reader};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Kind byte of a samples blob.
pub const KIND_SAMPLES: u8 = b'S';
/// Kind byte of a node-power blob.
pub const KIND_NODE_POWER: u8 = b'P';
/// Most samples (or readings) one blob holds: more than a probe's telemetry frame (16 MiB, at least
/// 9 bytes per sample) can carry.
pub const MAX_ITEMS: usize = 1 << 21;
/// Most values a blob may declare per byte of its length (see the module's format notes).
const ITEMS_PER_BYTE: usize = 16;

/// What stops a batch from being encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error(
        "a telemetry batch of {count} {what} is larger than a stored batch may be ({MAX_ITEMS}); \
         split it into smaller batches"
    )]
    TooMany { what: &'static str, count: usize },
}

/// What is wrong with a blob (corrupt, truncated, or from another format version).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("telemetry blob is empty (expected a format version byte)")]
    Empty,
    #[error(
        "telemetry blob has format version {found}, which this hallmark does not know (it reads \
         version {FORMAT_VERSION}): read the store with the hallmark that wrote it (a newer one), or \
         the blob is corrupt"
    )]
    UnknownVersion { found: u8 },
    #[error(
        "telemetry blob is of kind {found:#04x} where a {expected} blob was expected: the store's \
         telemetry columns are mixed up or corrupt"
    )]
    WrongKind { found: u8, expected: &'static str },
    #[error(
        "telemetry blob is truncated: {what} at byte {offset} is cut off (the store is corrupt)"
    )]
    Truncated { what: &'static str, offset: usize },
    #[error("telemetry blob declares {count} {what}, more than it can hold ({limit}): the store is corrupt")]
    TooMany {
        what: &'static str,
        count: u64,
        limit: u64,
    },
    #[error("telemetry blob is corrupt: {what} at byte {offset}: {problem}")]
    Invalid {
        what: &'static str,
        offset: usize,
        problem: &'static str,
    },
}

/// Encodes batches; keeps its scratch buffers from one batch to the next.
#[derive(Debug, Default)]
pub struct Encoder {
    values: Vec<u64>,
    lengths: Vec<u64>,
    bitmap: Vec<u8>,
}

/// Decodes blobs; keeps its scratch buffers from one blob to the next.
#[derive(Debug, Default)]
pub struct Decoder {
    runs: Vec<u64>,
    lengths: Vec<u64>,
    devices: Vec<u64>,
    columns: [Vec<u64>; 6],
    throttle: Vec<u64>,
}

fn finite32(v: Option<f32>) -> Option<u64> {
    v.filter(|x| x.is_finite()).map(|x| u64::from(x.to_bits()))
}

fn finite64(v: Option<f64>) -> Option<u64> {
    v.filter(|x| x.is_finite()).map(f64::to_bits)
}

/// The optional columns of a sample, in blob order, as stored values (non-finite floats absent).
const OPTIONAL_COLUMNS: [fn(&Sample) -> Option<u64>; 6] = [
    |s| finite32(s.power_w),
    |s| finite64(s.energy_j),
    |s| finite32(s.gpu_temp_c),
    |s| finite32(s.mem_temp_c),
    |s| s.sm_clock_mhz.map(u64::from),
    |s| finite32(s.util_pct),
];

const COLUMN_NAMES: [&str; 6] = [
    "power_w",
    "energy_j",
    "gpu_temp_c",
    "mem_temp_c",
    "sm_clock_mhz",
    "util_pct",
];
const COLUMN_CLASSES: [Class; 6] = [
    Class::U32,
    Class::U64,
    Class::U32,
    Class::U32,
    Class::U32,
    Class::U32,
];

fn header(out: &mut Vec<u8>, kind: u8, what: &'static str, n: usize) -> Result<(), EncodeError> {
    if n > MAX_ITEMS {
        return Err(EncodeError::TooMany { what, count: n });
    }
    out.push(FORMAT_VERSION);
    out.push(kind);
    put_varint(out, n as u64);
    Ok(())
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the samples blob of `samples` to `out`.
    pub fn encode_samples(
        &mut self,
        samples: &[Sample],
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        header(out, KIND_SAMPLES, "samples", samples.len())?;
        if samples.is_empty() {
            return Ok(());
        }
        self.values.clear();
        self.lengths.clear();
        for s in samples {
            let t = s.t_ns as u64;
            match (self.values.last(), self.lengths.last_mut()) {
                (Some(&last), Some(len)) if last == t => *len += 1,
                _ => {
                    self.values.push(t);
                    self.lengths.push(0);
                }
            }
        }
        let lanes = self.lengths[0] as usize + 1;
        put_varint(out, self.values.len() as u64);
        put_stream(out, &self.values, 1, false);
        put_stream(out, &self.lengths, 1, false);
        self.values.clear();
        self.values
            .extend(samples.iter().map(|s| u64::from(s.device)));
        put_stream(out, &self.values, lanes, true);
        for column in OPTIONAL_COLUMNS {
            self.optional(out, lanes, samples.iter().map(column));
        }
        self.values.clear();
        self.values
            .extend(samples.iter().map(|s| s.throttle_reasons));
        put_stream(out, &self.values, lanes, false);
        Ok(())
    }

    /// Appends the node-power blob of `readings` (instant, W) to `out`.
    pub fn encode_node_power(
        &mut self,
        readings: &[(i64, f32)],
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        header(out, KIND_NODE_POWER, "node-power readings", readings.len())?;
        if readings.is_empty() {
            return Ok(());
        }
        self.values.clear();
        self.values.extend(readings.iter().map(|r| r.0 as u64));
        put_stream(out, &self.values, 1, true);
        self.optional(out, 1, readings.iter().map(|r| finite32(Some(r.1))));
        Ok(())
    }

    /// Writes one optional column: its presence, then its present values.
    fn optional(
        &mut self,
        out: &mut Vec<u8>,
        lanes: usize,
        column: impl ExactSizeIterator<Item = Option<u64>>,
    ) {
        let n = column.len();
        self.values.clear();
        self.bitmap.clear();
        self.bitmap.resize(n.div_ceil(8), 0);
        for (i, v) in column.enumerate() {
            if let Some(v) = v {
                self.bitmap[i / 8] |= 1 << (i % 8);
                self.values.push(v);
            }
        }
        put_presence(out, &self.bitmap, n, self.values.len());
        if !self.values.is_empty() {
            put_stream(out, &self.values, lanes, false);
        }
    }
}

/// Checks version and kind; returns the reader after them and the declared count.
fn open<'a>(
    blob: &'a [u8],
    kind: u8,
    expected: &'static str,
) -> Result<(Reader<'a>, usize), DecodeError> {
    let mut r = Reader::new(blob);
    let version = r.byte("format version").map_err(|_| DecodeError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion { found: version });
    }
    let found = r.byte("kind")?;
    if found != kind {
        return Err(DecodeError::WrongKind { found, expected });
    }
    let limit = MAX_ITEMS.min(blob.len().saturating_mul(ITEMS_PER_BYTE));
    let n = r.count(expected, limit)?;
    Ok((r, n))
}

fn finish(r: &Reader<'_>) -> Result<(), DecodeError> {
    if r.remaining() != 0 {
        return Err(r.invalid("end of blob", "bytes follow the last column"));
    }
    Ok(())
}

/// How many samples a samples blob holds (reads only its header).
pub fn sample_count(blob: &[u8]) -> Result<usize, DecodeError> {
    open(blob, KIND_SAMPLES, "samples").map(|(_, n)| n)
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the samples of `blob` to `out`. On error `out` is left as it was.
    pub fn decode_samples(
        &mut self,
        blob: &[u8],
        out: &mut Vec<Sample>,
    ) -> Result<(), DecodeError> {
        let (mut r, n) = open(blob, KIND_SAMPLES, "samples")?;
        if n == 0 {
            return finish(&r);
        }
        let runs = r.count("instant runs", n)?;
        if runs == 0 {
            return Err(r.invalid("instant runs", "no runs for a non-empty batch"));
        }
        read_stream(&mut r, runs, Class::U64, "instants", &mut self.runs)?;
        read_stream(&mut r, runs, Class::U64, "run lengths", &mut self.lengths)?;
        let mut total: u64 = 0;
        for len in &self.lengths {
            total = total.saturating_add(len.saturating_add(1));
        }
        if total != n as u64 {
            return Err(r.invalid(
                "run lengths",
                "run lengths do not add up to the sample count",
            ));
        }
        read_stream(&mut r, n, Class::U16, "device", &mut self.devices)?;
        let mut presence = [stream::Presence::None; 6];
        for c in 0..6 {
            let (p, present) = read_presence(&mut r, n, COLUMN_NAMES[c])?;
            presence[c] = p;
            read_stream(
                &mut r,
                present,
                COLUMN_CLASSES[c],
                COLUMN_NAMES[c],
                &mut self.columns[c],
            )?;
        }
        read_stream(
            &mut r,
            n,
            Class::U64,
            "throttle_reasons",
            &mut self.throttle,
        )?;
        finish(&r)?;
        out.reserve(n);
        let mut next = [0usize; 6];
        let mut i = 0;
        for (&t, &len) in self.runs.iter().zip(&self.lengths) {
            for _ in 0..=len {
                let mut col = |c: usize| {
                    if presence[c].get(i) {
                        next[c] += 1;
                        self.columns[c].get(next[c] - 1).copied()
                    } else {
                        None
                    }
                };
                let f32_of = |v: Option<u64>| v.map(|b| f32::from_bits(b as u32));
                out.push(Sample {
                    t_ns: t as i64,
                    device: self.devices[i] as u16,
                    power_w: f32_of(col(0)),
                    energy_j: col(1).map(f64::from_bits),
                    gpu_temp_c: f32_of(col(2)),
                    mem_temp_c: f32_of(col(3)),
                    sm_clock_mhz: col(4).map(|v| v as u32),
                    util_pct: f32_of(col(5)),
                    throttle_reasons: self.throttle[i],
                });
                i += 1;
            }
        }
        Ok(())
    }

    /// Appends the node-power readings of `blob` (instant, W; `None` where not stored) to `out`. On
    /// error `out` is left as it was.
    pub fn decode_node_power(
        &mut self,
        blob: &[u8],
        out: &mut Vec<(i64, Option<f32>)>,
    ) -> Result<(), DecodeError> {
        let (mut r, n) = open(blob, KIND_NODE_POWER, "node-power readings")?;
        if n == 0 {
            return finish(&r);
        }
        read_stream(&mut r, n, Class::U64, "node-power instants", &mut self.runs)?;
        let (presence, present) = read_presence(&mut r, n, "node power_w")?;
        read_stream(
            &mut r,
            present,
            Class::U32,
            "node power_w",
            &mut self.columns[0],
        )?;
        finish(&r)?;
        out.reserve(n);
        let mut next = 0;
        for (i, &t) in self.runs.iter().enumerate() {
            let w = if presence.get(i) {
                next += 1;
                self.columns[0]
                    .get(next - 1)
                    .map(|&b| f32::from_bits(b as u32))
            } else {
                None
            };
            out.push((t as i64, w));
        }
        Ok(())
    }
}
