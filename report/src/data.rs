//! What the report reads from the store besides [`hallmark_results::RunSummary`], through the store's typed
//! reads: the probes with their labels, versions and clock estimates, the device inventory, the plan
//! text, the latest instant of stored data, the count of legacy histograms, and rack power over time
//! in chart buckets (from the store's telemetry scan).

use hallmark_store::{ScanOptions, ScanOrder, Store, StoreError, Telemetry};
use std::collections::HashMap;

/// A registered probe, with what the inventory and provenance sections show.
#[derive(Debug, Clone)]
pub struct ProbeInfo {
    pub key: i64,
    pub node: String,
    pub hall: String,
    pub row: String,
    pub rack: String,
    pub backend: String,
    pub version: String,
    /// Probe clock − coordinator clock, ns, with its ± uncertainty and round trip.
    pub clock_offset_ns: Option<i64>,
    pub clock_uncertainty_ns: Option<i64>,
    pub clock_rtt_ns: Option<i64>,
}

/// One device of the inventory.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub node: String,
    pub device: i64,
    pub kind: String,
    pub model: String,
    pub power_limit_w: Option<f64>,
    pub slowdown_temp_c: Option<f64>,
    pub max_operating_temp_c: Option<f64>,
}

/// The run's inventory and provenance records.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    pub plan_toml: String,
    pub probes: Vec<ProbeInfo>,
    pub devices: Vec<DeviceInfo>,
    /// Rows of the version 1 table `phase_histograms`, which the schema upgrade keeps only when it
    /// is not empty (hallmark never wrote it; the fabric data is in the `fabric_*` tables).
    pub legacy_histograms: u64,
    /// Latest instant of any stored batch, ns.
    pub last_data_ns: Option<i64>,
}

/// Reads the probes, devices, plan and legacy histogram count of a run.
pub fn context(store: &Store, run_id: &str) -> Result<RunContext, StoreError> {
    let plan_toml = store.run_known(run_id)?.plan_toml;
    let probes = store
        .probes(run_id)?
        .into_iter()
        .map(|p| ProbeInfo {
            key: p.key,
            node: p.node,
            hall: p.hall,
            row: p.row,
            rack: p.rack,
            backend: p.backend,
            version: p.hallmark_version,
            clock_offset_ns: p.clock_offset_ns,
            clock_uncertainty_ns: p.clock_uncertainty_ns,
            clock_rtt_ns: p.clock_rtt_ns,
        })
        .collect();
    let devices = store
        .devices(run_id)?
        .into_iter()
        .map(|d| DeviceInfo {
            node: d.node,
            device: i64::from(d.device),
            kind: d.kind,
            model: d.model,
            power_limit_w: d.power_limit_w,
            slowdown_temp_c: d.slowdown_temp_c,
            max_operating_temp_c: d.max_operating_temp_c,
        })
        .collect();
    Ok(RunContext {
        plan_toml,
        probes,
        devices,
        legacy_histograms: store.legacy_histograms(run_id)?,
        last_data_ns: store.last_data_ns(run_id)?,
    })
}

/// The run's time axis for charts: `buckets` buckets of `width_ns`, bucket `i` centred on
/// `start_ns + i × width_ns`. A bucket is one sample interval unless the run is long.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    pub start_ns: i64,
    pub width_ns: i64,
    pub buckets: usize,
}

impl Timeline {
    /// At most `max_buckets` buckets over `[start_ns, end_ns]`, none narrower than one sample interval.
    pub fn new(start_ns: i64, end_ns: i64, sample_hz: f64, max_buckets: usize) -> Timeline {
        let sample_ns = if sample_hz.is_finite() && sample_hz > 0.0 {
            (1e9 / sample_hz).round().max(1.0) as i64
        } else {
            1_000_000_000
        };
        let span = end_ns.saturating_sub(start_ns).max(sample_ns);
        let max_buckets = max_buckets.max(2) as i64;
        let per = max_buckets - 1;
        let width_ns = sample_ns.max(span / per + i64::from(span % per != 0));
        let buckets = (span / width_ns + 1) as usize;
        Timeline {
            start_ns,
            width_ns,
            buckets,
        }
    }

    /// The bucket of an instant, or `None` outside the timeline.
    pub fn bucket(&self, t_ns: i64) -> Option<usize> {
        let b = t_ns
            .saturating_sub(self.start_ns)
            .saturating_add(self.width_ns / 2)
            .div_euclid(self.width_ns);
        (0..self.buckets as i64).contains(&b).then_some(b as usize)
    }

    /// Seconds from the run's start to the centre of bucket `i`.
    pub fn x_s(&self, i: usize) -> f64 {
        i as f64 * self.width_ns as f64 / 1e9
    }

    /// Seconds from the run's start to `t_ns`.
    pub fn rel_s(&self, t_ns: i64) -> f64 {
        t_ns.saturating_sub(self.start_ns) as f64 / 1e9
    }

    /// The whole span in seconds.
    pub fn span_s(&self) -> f64 {
        self.x_s(self.buckets.saturating_sub(1)).max(1e-3)
    }
}

/// Rack power per bucket, kW (`None` where a node of the rack that reported at all has no reading in
/// the bucket nor in the one before it). `rack_of[i]` is the rack index of `probes[i]`.
pub fn rack_power(
    store: &Store,
    run_id: &str,
    probes: &[ProbeInfo],
    rack_of: &[usize],
    racks: usize,
    tl: &Timeline,
) -> Result<Vec<Vec<Option<f64>>>, StoreError> {
    let slot: HashMap<i64, usize> = probes.iter().enumerate().map(|(i, p)| (p.key, i)).collect();
    // Per node, per bucket: Σ W and readings.
    let mut acc: Vec<Vec<(f64, u32)>> = vec![Vec::new(); probes.len()];
    let opts = ScanOptions {
        order: ScanOrder::NodeSequence,
        node_power: true,
        samples: false,
    };
    store.scan_telemetry::<StoreError>(run_id, opts, |rec| {
        let Telemetry::NodePower(r) = rec else {
            return Ok(());
        };
        let (Some(&i), Some(w), Some(b)) = (slot.get(&r.node_key), r.power_w, tl.bucket(r.t_ns))
        else {
            return Ok(());
        };
        if !w.is_finite() {
            return Ok(());
        }
        let node = &mut acc[i];
        if node.is_empty() {
            node.resize(tl.buckets, (0.0, 0));
        }
        node[b].0 += w;
        node[b].1 += 1;
        Ok(())
    })?;
    let mut out = vec![vec![Some(0.0); tl.buckets]; racks];
    let mut reporting = vec![false; racks];
    for (node, &r) in acc.iter().zip(rack_of) {
        if node.is_empty() || r >= racks {
            continue;
        }
        reporting[r] = true;
        for (b, cell) in out[r].iter_mut().enumerate() {
            let here = node[b];
            let value = if here.1 > 0 {
                Some(here.0 / f64::from(here.1))
            } else if b > 0 && node[b - 1].1 > 0 {
                Some(node[b - 1].0 / f64::from(node[b - 1].1))
            } else {
                None
            };
            *cell = match (*cell, value) {
                (Some(sum), Some(w)) => Some(sum + w / 1000.0),
                _ => None,
            };
        }
    }
    for (series, rep) in out.iter_mut().zip(reporting) {
        if !rep {
            series.iter_mut().for_each(|c| *c = None);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_buckets() {
        let tl = Timeline::new(0, 60_000_000_000, 10.0, 2000);
        assert_eq!((tl.width_ns, tl.buckets), (100_000_000, 601));
        assert_eq!(tl.bucket(0), Some(0));
        assert_eq!(tl.bucket(149_999_999), Some(1));
        assert_eq!(tl.bucket(-60_000_000), None);
        assert_eq!(tl.bucket(61_000_000_000), None);
        let long = Timeline::new(0, 3_600_000_000_000, 10.0, 2000);
        assert!(long.buckets <= 2000 && long.width_ns > 100_000_000);
        let odd = Timeline::new(5, 5, f64::NAN, 0);
        assert!(odd.buckets >= 1 && odd.width_ns > 0);
    }
}
