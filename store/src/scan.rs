//! The one streaming pass over a run's telemetry: [`Store::scan_telemetry`] hands every node-power
//! reading ([`NodePowerRecord`]) and every device sample ([`SampleRecord`]) of a run to a visitor,
//! one at a time, without holding the run in memory. The run summary, the spec evaluation and the
//! report's charts and `samples.csv` are all built on it.
//!
//! How telemetry is laid out (today the row tables `sample_rows` and `node_power_rows`, found
//! through the batch index `telemetry_batches` by row-id ranges) is known only here: a consumer sees
//! records, in the order it asked for ([`ScanOrder`]).

use crate::error::StoreError;
use crate::store::Store;

/// One node-power reading. `node_key` is [`crate::ProbeRecord::key`] of the node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodePowerRecord {
    pub node_key: i64,
    /// Coordinator clock, ns.
    pub t_ns: i64,
    /// Whole-node power, W; `None` when the probe had no reading.
    pub power_w: Option<f64>,
}

/// One device sample, every column; a value the probe did not measure is `None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRecord {
    /// [`crate::ProbeRecord::key`] of the node.
    pub node_key: i64,
    /// The device's index on its node.
    pub device: u16,
    /// Coordinator clock, ns.
    pub t_ns: i64,
    pub power_w: Option<f64>,
    /// Device energy counter, J.
    pub energy_j: Option<f64>,
    pub gpu_temp_c: Option<f64>,
    pub mem_temp_c: Option<f64>,
    pub sm_clock_mhz: Option<i64>,
    pub util_pct: Option<f64>,
    /// NVML clock-throttle reason bits (0: not throttled).
    pub throttle_reasons: u64,
}

/// One record of the scan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Telemetry {
    NodePower(NodePowerRecord),
    Sample(SampleRecord),
}

/// The order records come in. Within one kind the order is as chosen; whether node-power readings
/// and samples interleave is not specified (today: all readings of one kind, then the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanOrder {
    /// As stored: batch after batch in the order they were written, each batch's rows in order.
    #[default]
    Stored,
    /// Node after node (by node id), each node's batches in sequence order, each batch's rows in
    /// order: a node's records in the order its probe sent them.
    NodeSequence,
}

/// What [`Store::scan_telemetry`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    pub order: ScanOrder,
    /// Visit node-power readings.
    pub node_power: bool,
    /// Visit device samples.
    pub samples: bool,
}

impl ScanOptions {
    /// Everything, in stored order.
    pub const ALL: ScanOptions = ScanOptions {
        order: ScanOrder::Stored,
        node_power: true,
        samples: true,
    };
}

/// Row ids `[from, to)`.
type Range = (i64, i64);

impl Store {
    /// Calls `visit` with every node-power reading and every device sample of run `run_id` that
    /// `opts` asks for (an unknown run has none). The first error `visit` returns stops the scan and
    /// is returned; a store error becomes `E` through `From`.
    pub fn scan_telemetry<E: From<StoreError>>(
        &self,
        run_id: &str,
        opts: ScanOptions,
        mut visit: impl FnMut(Telemetry) -> Result<(), E>,
    ) -> Result<(), E> {
        let (samples, power) = self.row_ranges(run_id, opts.order)?;
        if opts.node_power {
            self.scan_power(&power, &mut visit)?;
        }
        if opts.samples {
            self.scan_samples(&samples, &mut visit)?;
        }
        Ok(())
    }

    /// The run's row-id ranges of samples and of node-power readings, in `order`.
    fn row_ranges(
        &self,
        run_id: &str,
        order: ScanOrder,
    ) -> Result<(Vec<Range>, Vec<Range>), StoreError> {
        let sql = match order {
            ScanOrder::Stored => {
                "SELECT first_sample_row, samples, first_node_power_row, node_power \
                 FROM telemetry_batches WHERE run_id = ?1"
            }
            ScanOrder::NodeSequence => {
                "SELECT first_sample_row, samples, first_node_power_row, node_power \
                 FROM telemetry_batches WHERE run_id = ?1 ORDER BY node_id, seq"
            }
        };
        let mut stmt = self
            .sqlite()?
            .prepare_cached(sql)
            .map_err(self.err("reading the batch index"))?;
        let rows: Vec<(i64, i64, i64, i64)> = stmt
            .query_map([run_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(self.err("reading the batch index"))?;
        let samples = rows.iter().map(|r| (r.0, r.0.saturating_add(r.1)));
        let power = rows.iter().map(|r| (r.2, r.2.saturating_add(r.3)));
        Ok(match order {
            ScanOrder::Stored => (merge_ranges(samples), merge_ranges(power)),
            ScanOrder::NodeSequence => (join_adjacent(samples), join_adjacent(power)),
        })
    }

    fn scan_power<E: From<StoreError>>(
        &self,
        ranges: &[Range],
        visit: &mut impl FnMut(Telemetry) -> Result<(), E>,
    ) -> Result<(), E> {
        let e = || self.err("reading node power");
        let mut stmt = self
            .sqlite()?
            .prepare_cached(
                "SELECT node_key, t_ns, power_w FROM node_power_rows \
                 WHERE node_power_row >= ?1 AND node_power_row < ?2 ORDER BY node_power_row",
            )
            .map_err(e())?;
        for (from, to) in ranges {
            let mut rows = stmt.query([from, to]).map_err(e())?;
            while let Some(r) = rows.next().map_err(e())? {
                visit(Telemetry::NodePower(NodePowerRecord {
                    node_key: r.get(0).map_err(e())?,
                    t_ns: r.get(1).map_err(e())?,
                    power_w: r.get(2).map_err(e())?,
                }))?;
            }
        }
        Ok(())
    }

    fn scan_samples<E: From<StoreError>>(
        &self,
        ranges: &[Range],
        visit: &mut impl FnMut(Telemetry) -> Result<(), E>,
    ) -> Result<(), E> {
        let e = || self.err("reading samples");
        let mut stmt = self.sqlite()?
            .prepare_cached(
                "SELECT node_key, device, t_ns, power_w, energy_j, gpu_temp_c, mem_temp_c, sm_clock_mhz, \
                 util_pct, throttle_reasons FROM sample_rows \
                 WHERE sample_row >= ?1 AND sample_row < ?2 ORDER BY sample_row",
            )
            .map_err(e())?;
        for (from, to) in ranges {
            let mut rows = stmt.query([from, to]).map_err(e())?;
            while let Some(r) = rows.next().map_err(e())? {
                visit(Telemetry::Sample(SampleRecord {
                    node_key: r.get(0).map_err(e())?,
                    device: r.get(1).map_err(e())?,
                    t_ns: r.get(2).map_err(e())?,
                    power_w: r.get(3).map_err(e())?,
                    energy_j: r.get(4).map_err(e())?,
                    gpu_temp_c: r.get(5).map_err(e())?,
                    mem_temp_c: r.get(6).map_err(e())?,
                    sm_clock_mhz: r.get(7).map_err(e())?,
                    util_pct: r.get(8).map_err(e())?,
                    throttle_reasons: r.get::<_, i64>(9).map_err(e())? as u64,
                }))?;
            }
        }
        Ok(())
    }
}

/// Sorts `[from, to)` ranges and merges those that touch or overlap; drops empty ones.
fn merge_ranges(ranges: impl Iterator<Item = Range>) -> Vec<Range> {
    let mut v: Vec<Range> = ranges.filter(|r| r.1 > r.0).collect();
    v.sort_unstable();
    let mut out: Vec<Range> = Vec::with_capacity(v.len().min(16));
    for r in v {
        match out.last_mut() {
            Some(last) if r.0 <= last.1 => last.1 = last.1.max(r.1),
            _ => out.push(r),
        }
    }
    out
}

/// Keeps the ranges' order, joining a range to the one before when it starts where that one ends;
/// drops empty ones.
fn join_adjacent(ranges: impl Iterator<Item = Range>) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    for r in ranges.filter(|r| r.1 > r.0) {
        match out.last_mut() {
            Some(last) if last.1 == r.0 => last.1 = r.1,
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn merge_ranges_joins_adjacent() {
        let r = super::merge_ranges([(10, 20), (0, 10), (30, 30), (25, 40), (35, 38)].into_iter());
        assert_eq!(r, vec![(0, 20), (25, 40)]);
    }

    #[test]
    fn join_adjacent_keeps_order() {
        let r = super::join_adjacent([(10, 20), (20, 25), (0, 10), (30, 30), (40, 50)].into_iter());
        assert_eq!(r, vec![(10, 25), (0, 10), (40, 50)]);
    }
}
