//! The one streaming pass over a run's telemetry: [`Store::scan_telemetry`] hands every node-power
//! reading ([`NodePowerRecord`]) and every device sample ([`SampleRecord`]) of a run to a visitor,
//! one at a time, without holding the run in memory. The run summary, the spec evaluation and the
//! report's charts and `samples.csv` are all built on it.
//!
//! How telemetry is laid out (schema 5: one row of `telemetry_batches` per stored batch, holding
//! its samples and node-power readings as two `crate::columnar` blobs) is known only here: a consumer
//! sees records, in the order it asked for ([`ScanOrder`]). The scan reads the run's batch index
//! first (row ids and counts, no blobs), then the blobs a chunk of batches at a time by row id,
//! decoding with one reusable `Decoder` into one reusable buffer: memory stays at one chunk. The
//! same statements run on SQLite and PostgreSQL (through `crate::db::Db`). A blob that does not
//! decode, or holds another count than its row says, is a [`StoreError::Corrupt`] naming the store,
//! the run, the node and the batch.

use crate::columnar::Decoder;
use crate::db::{DbError, Value};
use crate::error::StoreError;
use crate::store::Store;
use hallmark_protocol::Sample;
use std::collections::HashMap;

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

/// One stored batch of a scan: its row, node, sequence number and counts.
#[derive(Debug, Clone, Copy)]
struct BatchRef {
    row: i64,
    node_key: Option<i64>,
    seq: i64,
    samples: i64,
    node_power: i64,
}

/// Which blob a pass decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NodePower,
    Samples,
}

impl Store {
    /// Calls `visit` with every node-power reading and every device sample of run `run_id` that
    /// `opts` asks for (an unknown run has none). The first error `visit` returns stops the scan and
    /// is returned; a store error (a corrupt blob among them) becomes `E` through `From`.
    pub fn scan_telemetry<E: From<StoreError>>(
        &self,
        run_id: &str,
        opts: ScanOptions,
        mut visit: impl FnMut(Telemetry) -> Result<(), E>,
    ) -> Result<(), E> {
        let batches = self.batch_refs(run_id, opts.order)?;
        if opts.node_power {
            self.scan_kind(run_id, &batches, Kind::NodePower, &mut visit)?;
        }
        if opts.samples {
            self.scan_kind(run_id, &batches, Kind::Samples, &mut visit)?;
        }
        Ok(())
    }

    /// The run's batches (not their blobs), in `order`.
    fn batch_refs(&self, run_id: &str, order: ScanOrder) -> Result<Vec<BatchRef>, StoreError> {
        let sql = match order {
            ScanOrder::Stored => {
                "SELECT b.batch_row, p.node_key, b.seq, b.samples, b.node_power \
                 FROM telemetry_batches AS b LEFT JOIN probes AS p \
                   ON p.run_id = b.run_id AND p.node_id = b.node_id \
                 WHERE b.run_id = ?1 ORDER BY b.batch_row"
            }
            ScanOrder::NodeSequence => {
                "SELECT b.batch_row, p.node_key, b.seq, b.samples, b.node_power \
                 FROM telemetry_batches AS b LEFT JOIN probes AS p \
                   ON p.run_id = b.run_id AND p.node_id = b.node_id \
                 WHERE b.run_id = ?1 ORDER BY b.node_id, b.seq"
            }
        };
        self.db
            .query_map(sql, &[run_id.into()], |r| {
                Ok(BatchRef {
                    row: r.i64(0)?,
                    node_key: r.opt_i64(1)?,
                    seq: r.i64(2)?,
                    samples: r.i64(3)?,
                    node_power: r.i64(4)?,
                })
            })
            .map_err(self.db_err("reading the batch index"))
    }

    /// Decodes one blob of every batch (node power or samples) and visits its records. The blobs
    /// are fetched [`BLOBS_PER_QUERY`] batches at a time by row id (one statement text, the list
    /// padded with its last id), so memory stays at one chunk and round trips to a server are few.
    fn scan_kind<E: From<StoreError>>(
        &self,
        run_id: &str,
        batches: &[BatchRef],
        kind: Kind,
        visit: &mut impl FnMut(Telemetry) -> Result<(), E>,
    ) -> Result<(), E> {
        let (column, op) = match kind {
            Kind::NodePower => ("node_power_blob", "reading node power"),
            Kind::Samples => ("samples_blob", "reading samples"),
        };
        let sql = blob_query(column);
        let expected = |b: &BatchRef| match kind {
            Kind::NodePower => b.node_power,
            Kind::Samples => b.samples,
        };
        let mut decoder = Decoder::new();
        let mut samples: Vec<Sample> = Vec::new();
        let mut power: Vec<(i64, Option<f32>)> = Vec::new();
        let mut blobs: HashMap<i64, Vec<u8>> = HashMap::with_capacity(BLOBS_PER_QUERY);
        let wanted: Vec<&BatchRef> = batches.iter().filter(|b| expected(b) != 0).collect();
        for chunk in wanted.chunks(BLOBS_PER_QUERY) {
            let last = chunk[chunk.len() - 1].row;
            let ids: Vec<Value> = (0..BLOBS_PER_QUERY)
                .map(|i| Value::I64(chunk.get(i).map_or(last, |b| b.row)))
                .collect();
            blobs.clear();
            self.db
                .for_each(&sql, &ids, |r| {
                    blobs.insert(r.i64(0)?, r.opt_blob(1)?.unwrap_or_default());
                    Ok(())
                })
                .map_err(|e| match e {
                    e @ DbError::Column { .. } => self.corrupt(run_id, chunk[0], &e.to_string()),
                    e => StoreError::db(&self.path, op, e),
                })?;
            for &b in chunk {
                let node_key = b
                    .node_key
                    .ok_or_else(|| self.corrupt(run_id, b, "its node is not a registered probe"))?;
                let blob = blobs
                    .get(&b.row)
                    .ok_or_else(|| self.corrupt(run_id, b, "the batch went while it was read"))?;
                samples.clear();
                power.clear();
                let decoded = match kind {
                    Kind::NodePower => decoder
                        .decode_node_power(blob, &mut power)
                        .map(|()| power.len()),
                    Kind::Samples => decoder
                        .decode_samples(blob, &mut samples)
                        .map(|()| samples.len()),
                };
                let n = decoded.map_err(|e| self.corrupt(run_id, b, &e.to_string()))?;
                if n as i64 != expected(b) {
                    let what = format!("its blob holds {n} records, its row says {}", expected(b));
                    return Err(self.corrupt(run_id, b, &what).into());
                }
                for &(t_ns, w) in &power {
                    visit(Telemetry::NodePower(NodePowerRecord {
                        node_key,
                        t_ns,
                        power_w: w.map(f64::from),
                    }))?;
                }
                for s in &samples {
                    visit(Telemetry::Sample(record(node_key, s)))?;
                }
            }
        }
        Ok(())
    }

    /// A corrupt stored batch: names the store, the run, the node and the batch.
    fn corrupt(&self, run_id: &str, b: &BatchRef, problem: &str) -> StoreError {
        let node: Option<String> = self
            .db
            .query_opt(
                "SELECT node_id FROM telemetry_batches WHERE batch_row = ?1",
                &[Value::I64(b.row)],
                |r| r.text(0),
            )
            .ok()
            .flatten();
        StoreError::Corrupt {
            path: self.path.clone(),
            detail: format!(
                "telemetry of run {run_id} node {} batch seq {}: {problem}; the batch cannot be \
                 read: restore the store from a backup, or delete the run",
                node.as_deref().unwrap_or("(unknown)"),
                b.seq
            ),
        }
    }
}

/// How many batches' blobs one query of the scan fetches.
const BLOBS_PER_QUERY: usize = 128;

/// The statement fetching `column` of [`BLOBS_PER_QUERY`] batches by row id.
fn blob_query(column: &str) -> String {
    let ids: Vec<String> = (1..=BLOBS_PER_QUERY).map(|i| format!("?{i}")).collect();
    format!(
        "SELECT batch_row, {column} FROM telemetry_batches WHERE batch_row IN ({})",
        ids.join(", ")
    )
}

/// The scan's record of a decoded sample.
fn record(node_key: i64, s: &Sample) -> SampleRecord {
    SampleRecord {
        node_key,
        device: s.device,
        t_ns: s.t_ns,
        power_w: s.power_w.map(f64::from),
        energy_j: s.energy_j,
        gpu_temp_c: s.gpu_temp_c.map(f64::from),
        mem_temp_c: s.mem_temp_c.map(f64::from),
        sm_clock_mhz: s.sm_clock_mhz.map(i64::from),
        util_pct: s.util_pct.map(f64::from),
        throttle_reasons: s.throttle_reasons,
    }
}
