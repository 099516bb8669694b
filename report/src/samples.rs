//! One streaming pass over a run's device samples (the store's `Store::scan_telemetry`, node by node
//! in sequence order): every row goes to `samples.csv` as it is read, and
//! the pass keeps only what the charts need — each device's highest GPU temperature and, per rack and
//! time bucket, how many samples were thermally throttled.

use super::data::{ProbeInfo, Timeline};
use super::export::{csv_field, f32ish};
use hallmark_results::aggregate::throttle;
use hallmark_store::{ScanOptions, ScanOrder, Store, StoreError, Telemetry};
use std::collections::HashMap;
use std::io::Write;

/// The throttle bits counted as thermal throttling in the timeline.
pub const THERMAL: u64 = throttle::SW_THERMAL | throttle::HW_THERMAL;

/// Header of `samples.csv`.
pub const HEADER: &str = "run_id,node,rack,device,t_ns,power_w,energy_j,gpu_temp_c,mem_temp_c,\
sm_clock_mhz,util_pct,throttle_reasons";

/// What the pass kept.
#[derive(Debug, Default)]
pub struct SampleStats {
    /// Rows read (= rows written to `samples.csv`).
    pub rows: u64,
    /// Highest GPU temperature per (probe index, device), °C.
    pub device_max: HashMap<(usize, i64), f64>,
    /// Per rack, per bucket: (samples, thermally throttled samples).
    pub throttle: Vec<Vec<(u32, u32)>>,
}

/// Why the pass stopped.
#[derive(Debug)]
pub enum ScanError {
    Store(StoreError),
    Write(std::io::Error),
}

impl From<StoreError> for ScanError {
    fn from(e: StoreError) -> Self {
        ScanError::Store(e)
    }
}

/// Significant digits of a float's text (leading zeros not counted).
fn sig_digits(s: &str) -> usize {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .skip_while(|&b| b == b'0')
        .count()
}

/// Appends `v` exactly as `write!(out, "{v}")` would, faster (`samples.csv` has tens of millions).
///
/// `zmij` and `Display` both write the shortest digits that read back as `v`, the closest to `v`
/// when several are as short; they differ in form — `zmij` writes an exponent for very large and
/// small magnitudes and `.0` on whole numbers (those go to `Display`, or lose the `.0`) — and in
/// an exact tie between two shortest texts (`-271183.625f32`: `Display` `-271183.63`, `zmij`
/// `-271183.62`). A tie needs the last digit's unit below the value's ulp, so at least 16
/// significant digits for an `f64`, 7 for an `f32`: those go to `Display` (f64), or are checked
/// against the exact value (f32, below).
fn put_f64(out: &mut Vec<u8>, bufs: &mut Floats, v: f64) {
    let s = bufs.0.format(v);
    if s.bytes().any(|b| b.is_ascii_alphabetic()) || sig_digits(s) >= 16 {
        let _ = write!(out, "{v}");
    } else {
        out.extend_from_slice(s.strip_suffix(".0").unwrap_or(s).as_bytes());
    }
}

/// Appends `v` exactly as `write!(out, "{v}")` would, faster (see [`put_f64`]). An `f32`'s exact
/// value has a short text as an `f64` when a tie is possible (one digit more than the shortest,
/// ending in 5): that is the tie, written by `Display`.
fn put_f32(out: &mut Vec<u8>, bufs: &mut Floats, v: f32) {
    let s = bufs.0.format(v);
    let n = sig_digits(s);
    let tie = n >= 6 && {
        let exact = bufs.1.format(f64::from(v));
        sig_digits(exact) == n + 1 && exact.ends_with('5')
    };
    if tie || s.bytes().any(|b| b.is_ascii_alphabetic()) {
        let _ = write!(out, "{v}");
    } else {
        out.extend_from_slice(s.strip_suffix(".0").unwrap_or(s).as_bytes());
    }
}

/// Two float text buffers (a value's, and an `f32`'s exact value's).
#[derive(Default)]
struct Floats(zmij::Buffer, zmij::Buffer);

/// Appends a reading as [`f32ish`] writes it: an `f32` reading in the `f32`'s shortest form (fast),
/// any other value (none since columnar telemetry stores `f32` readings) as `f32ish` writes it.
fn put_f32ish(out: &mut Vec<u8>, buf: &mut Floats, v: Option<f64>) {
    if let Some(v) = v {
        let narrow = v as f32;
        if f64::from(narrow) == v {
            put_f32(out, buf, narrow);
        } else {
            let _ = write!(out, "{}", f32ish(v));
        }
    }
}

/// Appends an integer as `{}` writes it.
fn put_int(out: &mut Vec<u8>, buf: &mut itoa::Buffer, v: impl itoa::Integer) {
    out.extend_from_slice(buf.format(v).as_bytes());
}

/// Streams the run's samples into `csv` (header first) and collects [`SampleStats`].
/// `rack_of[i]` is the rack index of `probes[i]`.
pub fn scan(
    store: &Store,
    run_id: &str,
    probes: &[ProbeInfo],
    rack_of: &[usize],
    racks: usize,
    tl: &Timeline,
    csv: &mut impl Write,
) -> Result<SampleStats, ScanError> {
    let slot: HashMap<i64, usize> = probes.iter().enumerate().map(|(i, p)| (p.key, i)).collect();
    // The text of the per-node columns, escaped once.
    let prefix: Vec<String> = probes
        .iter()
        .map(|p| {
            format!(
                "{},{},{},",
                csv_field(run_id),
                csv_field(&p.node),
                csv_field(&p.rack)
            )
        })
        .collect();
    let mut stats = SampleStats {
        throttle: vec![vec![(0, 0); tl.buckets]; racks],
        ..SampleStats::default()
    };
    writeln!(csv, "{HEADER}").map_err(ScanError::Write)?;
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let (mut floats, mut ints) = (Floats::default(), itoa::Buffer::new());
    let opts = ScanOptions {
        order: ScanOrder::NodeSequence,
        node_power: false,
        samples: true,
    };
    store.scan_telemetry::<ScanError>(run_id, opts, |rec| {
        let Telemetry::Sample(r) = rec else {
            return Ok(());
        };
        let Some(&i) = slot.get(&r.node_key) else {
            return Ok(());
        };
        let device = i64::from(r.device);
        let t = r.t_ns;
        let temp = r.gpu_temp_c;
        let reasons = r.throttle_reasons;

        line.clear();
        line.extend_from_slice(prefix[i].as_bytes());
        put_int(&mut line, &mut ints, device);
        line.push(b',');
        put_int(&mut line, &mut ints, t);
        line.push(b',');
        put_f32ish(&mut line, &mut floats, r.power_w);
        line.push(b',');
        if let Some(e) = r.energy_j {
            put_f64(&mut line, &mut floats, e);
        }
        line.push(b',');
        put_f32ish(&mut line, &mut floats, temp);
        line.push(b',');
        put_f32ish(&mut line, &mut floats, r.mem_temp_c);
        line.push(b',');
        if let Some(c) = r.sm_clock_mhz {
            put_int(&mut line, &mut ints, c);
        }
        line.push(b',');
        put_f32ish(&mut line, &mut floats, r.util_pct);
        line.push(b',');
        put_int(&mut line, &mut ints, reasons);
        line.push(b'\n');
        csv.write_all(&line).map_err(ScanError::Write)?;
        stats.rows += 1;

        if let Some(t) = temp.filter(|t| t.is_finite()) {
            let m = stats.device_max.entry((i, device)).or_insert(t);
            if t > *m {
                *m = t;
            }
        }
        if let (Some(&rack), Some(b)) = (rack_of.get(i), tl.bucket(t)) {
            if let Some(cell) = stats.throttle.get_mut(rack).and_then(|s| s.get_mut(b)) {
                cell.0 = cell.0.saturating_add(1);
                if reasons & THERMAL != 0 {
                    cell.1 = cell.1.saturating_add(1);
                }
            }
        }
        Ok(())
    })?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of 64-bit values (splitmix64).
    fn bits(n: usize) -> impl Iterator<Item = u64> {
        let mut z = 0x9E37_79B9_7F4A_7C15u64;
        (0..n).map(move |_| {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        })
    }

    fn fast64(v: f64) -> String {
        let mut out = Vec::new();
        put_f64(&mut out, &mut Floats::default(), v);
        String::from_utf8(out).unwrap()
    }

    fn fast32ish(v: f64) -> String {
        let mut out = Vec::new();
        put_f32ish(&mut out, &mut Floats::default(), Some(v));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fast_float_text_is_display_text() {
        let special = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            300.0,
            -271_183.625,
            123_456_789_012_345.62,
            150.1104,
            1e15,
            1e16,
            1e17,
            1e21,
            1e22,
            1e-5,
            1e-7,
            123_456.789,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            f64::EPSILON,
            9_007_199_254_740_993.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for v in special {
            assert_eq!(fast64(v), v.to_string(), "{v:e}");
            assert_eq!(fast32ish(v), f32ish(v).to_string(), "{v:e}");
            let n = v as f32;
            assert_eq!(fast32ish(f64::from(n)), n.to_string(), "{n:e}");
        }
        for b in bits(1_000_000) {
            let v = f64::from_bits(b);
            assert_eq!(fast64(v), v.to_string(), "{b:#x}");
            let n = f32::from_bits(b as u32);
            assert_eq!(fast32ish(f64::from(n)), n.to_string(), "{:#x}", b as u32);
            // Readings of realistic magnitude (W, °C, J): whole, tenths, arbitrary fractions.
            let r = (b % 2_000_000) as f64 / [1.0, 10.0, 1000.0, 7.0][(b >> 60) as usize % 4];
            assert_eq!(fast64(r), r.to_string());
            assert_eq!(fast32ish(f64::from(r as f32)), (r as f32).to_string());
        }
    }
}
