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
    let mut line: Vec<u8> = Vec::with_capacity(256);
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
        let _ = write!(line, "{device},{t},");
        opt(&mut line, r.power_w.map(f32ish));
        line.push(b',');
        opt(&mut line, r.energy_j);
        line.push(b',');
        opt(&mut line, temp.map(f32ish));
        line.push(b',');
        opt(&mut line, r.mem_temp_c.map(f32ish));
        line.push(b',');
        opt(&mut line, r.sm_clock_mhz);
        line.push(b',');
        opt(&mut line, r.util_pct.map(f32ish));
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
        Ok(())
    })?;
    Ok(stats)
}
