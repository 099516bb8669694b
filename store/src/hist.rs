//! Latency histograms as the probes send them: HDR histograms of round-trip nanoseconds, V2 +
//! deflate. Decoding under size limits (a blob comes from a network peer), the percentiles the store
//! keeps as columns and the summaries show, and merging (per node, per hall).
//!
//! hdrhistogram's reader trusts the length fields inside a blob (it allocates what the inner header
//! claims before reading it), so a blob is inflated here first, at most [`MAX_INFLATED`] bytes, and
//! its inner header checked against what is actually there before hdrhistogram parses it.

use flate2::read::ZlibDecoder;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::io::Read;

/// First 4 bytes of a V2 histogram (hdrhistogram's V2 cookie with the 8-byte word size).
const V2_COOKIE: u32 = 0x1c84_9313;
/// First 4 bytes of a V2 + deflate histogram.
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;
/// Bytes of a V2 header: cookie, payload length, normalising offset, significant digits, lowest and
/// highest trackable value, integer-to-double ratio.
const V2_HEADER: usize = 40;
/// The most bytes a blob may inflate to. A histogram of 3 significant digits over the whole `u64`
/// range with a different count in every bucket encodes to about 1 MiB.
pub const MAX_INFLATED: usize = 16 << 20;
/// The most significant digits accepted (hdrhistogram allows 5; the probes send 3).
const MAX_SIGFIG: u32 = 5;

/// A histogram of round-trip times, ns.
pub type RttHistogram = Histogram<u64>;

/// Decodes a V2 (+ deflate) histogram blob, or says why it cannot be read.
pub fn decode(blob: &[u8]) -> Result<RttHistogram, String> {
    let cookie = be_u32(blob, 0).ok_or_else(|| {
        format!(
            "it is {} bytes long, shorter than a histogram header",
            blob.len()
        )
    })?;
    let inflated;
    let v2: &[u8] = match cookie {
        V2_DEFLATE_COOKIE => {
            let len = be_u32(blob, 4).ok_or("its compressed length is missing")? as usize;
            let body = blob.get(8..).unwrap_or_default();
            if len > body.len() {
                return Err(format!(
                    "it announces {len} compressed bytes but holds {}",
                    body.len()
                ));
            }
            let mut out = Vec::new();
            ZlibDecoder::new(&body[..len])
                .take(MAX_INFLATED as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("it does not inflate: {e}"))?;
            if out.len() > MAX_INFLATED {
                return Err(format!(
                    "it inflates to more than {MAX_INFLATED} bytes, more than any latency histogram"
                ));
            }
            inflated = out;
            &inflated
        }
        V2_COOKIE => blob,
        other => {
            return Err(format!(
                "its first bytes {other:#010x} are not an HDR histogram V2 or V2 + deflate cookie"
            ))
        }
    };
    if be_u32(v2, 0) != Some(V2_COOKIE) {
        return Err("the inflated data is not a V2 histogram".into());
    }
    let payload = be_u32(v2, 4).ok_or("its header is truncated")? as usize;
    let sigfig = be_u32(v2, 12).ok_or("its header is truncated")?;
    if v2.len() < V2_HEADER || payload > v2.len() - V2_HEADER {
        return Err(format!(
            "its header announces {payload} bytes of counts but {} follow",
            v2.len().saturating_sub(V2_HEADER)
        ));
    }
    if sigfig > MAX_SIGFIG {
        return Err(format!(
            "it has {sigfig} significant digits; at most {MAX_SIGFIG} are supported"
        ));
    }
    let mut reader = &v2[..V2_HEADER + payload];
    Deserializer::new()
        .deserialize(&mut reader)
        .map_err(|e| format!("hdrhistogram cannot read it: {e}"))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// Round-trip percentiles of a histogram, ns, as HDR reports them: each is the highest value
/// equivalent to its bucket (within 0.1 % of the recorded value at 3 significant digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NsPercentiles {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl NsPercentiles {
    /// `None` for an empty histogram (no round trip came back).
    pub fn of(h: &RttHistogram) -> Option<NsPercentiles> {
        if h.is_empty() {
            return None;
        }
        Some(NsPercentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        })
    }

    pub fn micros(self) -> Percentiles {
        let us = |ns: u64| ns as f64 / 1e3;
        Percentiles {
            count: self.count,
            p50_us: us(self.p50),
            p99_us: us(self.p99),
            p999_us: us(self.p999),
            max_us: us(self.max),
        }
    }
}

/// Round-trip percentiles in microseconds, for summaries and verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Round trips in the histogram.
    pub count: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// An empty histogram that others are added into: auto-resizing, 3 significant digits like the
/// probes'.
pub fn merged() -> Result<RttHistogram, String> {
    Histogram::new(3).map_err(|e| format!("cannot create a histogram: {e:?}"))
}

/// The values a histogram recorded: (the highest value equivalent to each non-empty bucket, its
/// count). Adding these to a histogram of the same precision reproduces the buckets exactly, and
/// costs one pass over the source's counts however many histograms they go into.
pub fn recorded(h: &RttHistogram) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Adds recorded values (from [`recorded`]) into `into`, which grows as needed.
pub fn add(into: &mut RttHistogram, values: &[(u64, u64)]) -> Result<(), String> {
    for &(v, n) in values {
        into.record_n(v, n)
            .map_err(|e| format!("cannot merge histograms: {e:?}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::{Serializer, V2DeflateSerializer, V2Serializer};

    fn blob(h: &RttHistogram) -> Vec<u8> {
        let mut out = Vec::new();
        V2DeflateSerializer::new().serialize(h, &mut out).unwrap();
        out
    }

    fn hist(values: impl IntoIterator<Item = (u64, u64)>) -> RttHistogram {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for (v, n) in values {
            h.record_n(v, n).unwrap();
        }
        h
    }

    /// Within HDR's precision at 3 significant digits.
    fn near(got: u64, want: u64) {
        let err = (got as f64 - want as f64).abs() / want as f64;
        assert!(err <= 1e-3, "{got} is not within 0.1 % of {want}");
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        // 1000 round trips of 1, 2, …, 1000 µs: p50 = 500 µs, p99 = 990 µs, p99.9 = 999 µs, max 1 ms.
        let h = hist((1..=1000).map(|i| (i * 1000, 1)));
        let p = NsPercentiles::of(&decode(&blob(&h)).unwrap()).unwrap();
        assert_eq!(p.count, 1000);
        near(p.p50, 500_000);
        near(p.p99, 990_000);
        near(p.p999, 999_000);
        near(p.max, 1_000_000);
        let us = p.micros();
        assert!((us.p99_us - 990.0).abs() <= 1.0, "{}", us.p99_us);
        assert_eq!(NsPercentiles::of(&hist([])), None);
    }

    #[test]
    fn merging_two_pairs_into_a_node() {
        // Pair A: 100 round trips of 10 µs; pair B: 100 of 1000 µs. Merged: 200, p50 = 10 µs
        // (the 100th value), p99 = 1000 µs (the 198th), max 1000 µs.
        let a = decode(&blob(&hist([(10_000, 100)]))).unwrap();
        let b = decode(&blob(&hist([(1_000_000, 100)]))).unwrap();
        let mut node = merged().unwrap();
        add(&mut node, &recorded(&a)).unwrap();
        add(&mut node, &recorded(&b)).unwrap();
        let p = NsPercentiles::of(&node).unwrap();
        assert_eq!(p.count, 200);
        near(p.p50, 10_000);
        near(p.p99, 1_000_000);
        near(p.max, 1_000_000);
        // 1 % of 10 µs round trips and 99 % of 20 µs: p50 = p99 = 20 µs, p99.9 = 20 µs.
        let mut m = merged().unwrap();
        add(&mut m, &recorded(&hist([(10_000, 1)]))).unwrap();
        add(&mut m, &recorded(&hist([(20_000, 99)]))).unwrap();
        // Merging reproduces the source's buckets: the same percentiles as the source itself.
        let one = hist([(10_000, 1), (20_000, 99)]);
        assert_eq!(NsPercentiles::of(&m), NsPercentiles::of(&one));
        let p = NsPercentiles::of(&m).unwrap();
        near(p.p50, 20_000);
        near(p.p99, 20_000);
    }

    #[test]
    fn plain_v2_is_read_too() {
        let h = hist([(5_000, 3)]);
        let mut out = Vec::new();
        V2Serializer::new().serialize(&h, &mut out).unwrap();
        assert_eq!(decode(&out).unwrap().len(), 3);
    }

    #[test]
    fn bad_blobs_are_refused_with_a_reason() {
        assert!(decode(&[])
            .unwrap_err()
            .contains("shorter than a histogram header"));
        assert!(decode(b"not a histogram at all")
            .unwrap_err()
            .contains("not an HDR histogram"));
        let good = blob(&hist([(1_000, 1)]));
        // Truncated compressed data.
        let cut = &good[..good.len() - 4];
        assert!(decode(cut).unwrap_err().contains("announces"));
        // A compressed length past the end.
        let mut long = good.clone();
        long[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&long).unwrap_err().contains("announces"));
        // Garbage where the deflate stream should be.
        let mut junk = good.clone();
        for b in junk.iter_mut().skip(8) {
            *b = 0xff;
        }
        assert!(decode(&junk).is_err());
        // A V2 header that claims 4 GiB of counts is refused before anything is allocated.
        let mut plain = Vec::new();
        V2Serializer::new()
            .serialize(&hist([(1_000, 1)]), &mut plain)
            .unwrap();
        plain[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&plain).unwrap_err().contains("announces"));
    }

    #[test]
    fn a_deflate_bomb_is_refused() {
        use flate2::write::ZlibEncoder;
        use std::io::Write;
        // A V2 header announcing 32 MiB of zero counts, compressed to a few KiB.
        let payload = 32usize << 20;
        let mut v2 = Vec::new();
        v2.extend_from_slice(&V2_COOKIE.to_be_bytes());
        v2.extend_from_slice(&(payload as u32).to_be_bytes());
        v2.extend_from_slice(&0u32.to_be_bytes());
        v2.extend_from_slice(&3u32.to_be_bytes());
        v2.extend_from_slice(&1u64.to_be_bytes());
        v2.extend_from_slice(&1_000_000u64.to_be_bytes());
        v2.extend_from_slice(&1f64.to_be_bytes());
        let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&v2).unwrap();
        z.write_all(&vec![0u8; payload]).unwrap();
        let body = z.finish().unwrap();
        let mut blob = Vec::new();
        blob.extend_from_slice(&V2_DEFLATE_COOKIE.to_be_bytes());
        blob.extend_from_slice(&(body.len() as u32).to_be_bytes());
        blob.extend_from_slice(&body);
        assert!(decode(&blob).unwrap_err().contains("inflates to more than"));
    }
}
