//! One streaming pass over a run's device samples: every row goes to `samples.csv` as it is read, and
//! the pass keeps only what the charts need — each device's highest GPU temperature and, per rack and
//! time bucket, how many samples were thermally throttled.

use super::data::{batch_ranges, ProbeInfo, Timeline};
use super::export::{csv_field, f32ish};
use crate::aggregate::throttle;
use crate::error::StoreError;
use crate::store::Store;
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

fn opt<T: std::fmt::Display>(out: &mut Vec<u8>, v: Option<T>) {
    if let Some(v) = v {
        let _ = write!(out, "{v}");
    }
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
    let e = || store.err("reading samples");
    let mut stmt = store
        .conn
        .prepare_cached(
            "SELECT node_key, device, t_ns, power_w, energy_j, gpu_temp_c, mem_temp_c, sm_clock_mhz, \
             util_pct, throttle_reasons FROM sample_rows \
             WHERE sample_row >= ?1 AND sample_row < ?2 ORDER BY sample_row",
        )
        .map_err(e())?;
    let mut line: Vec<u8> = Vec::with_capacity(256);
    for (from, to) in batch_ranges(store, run_id, false)? {
        let mut rows = stmt.query([from, to]).map_err(e())?;
        while let Some(r) = rows.next().map_err(e())? {
            let key: i64 = r.get(0).map_err(e())?;
            let Some(&i) = slot.get(&key) else {
                continue;
            };
            let device: i64 = r.get(1).map_err(e())?;
            let t: i64 = r.get(2).map_err(e())?;
            let power: Option<f64> = r.get(3).map_err(e())?;
            let energy: Option<f64> = r.get(4).map_err(e())?;
            let temp: Option<f64> = r.get(5).map_err(e())?;
            let mem: Option<f64> = r.get(6).map_err(e())?;
            let clock: Option<i64> = r.get(7).map_err(e())?;
            let util: Option<f64> = r.get(8).map_err(e())?;
            let reasons = r.get::<_, i64>(9).map_err(e())? as u64;

            line.clear();
            line.extend_from_slice(prefix[i].as_bytes());
            let _ = write!(line, "{device},{t},");
            opt(&mut line, power.map(f32ish));
            line.push(b',');
            opt(&mut line, energy);
            line.push(b',');
            opt(&mut line, temp.map(f32ish));
            line.push(b',');
            opt(&mut line, mem.map(f32ish));
            line.push(b',');
            opt(&mut line, clock);
            line.push(b',');
            opt(&mut line, util.map(f32ish));
            let _ = writeln!(line, ",{reasons}");
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
        }
    }
    Ok(stats)
}
