//! Telemetry ingest: [`Store::insert_batch`] and [`Store::insert_batches`].
//!
//! Samples and node-power readings are appended to `sample_rows` / `node_power_rows` with explicit,
//! consecutive row ids (read once per transaction from the table's maximum), so every batch's rows form
//! a contiguous range that `telemetry_batches` records: that batch index replaces a per-row index, which
//! cost three quarters of the ingest rate. Rows are written with multi-row `INSERT`s of [`CHUNK`] rows
//! through cached prepared statements. A batch whose `(run, node, seq)` is stored already is a replay
//! and is skipped.

use crate::error::{to_i64, StoreError};
use crate::model::{Inserted, RunId};
use crate::store::Store;
use hallmark_protocol::{NodeId, Sample, TelemetryBatch};
use rusqlite::{params, Statement, Transaction, TransactionBehavior};
use std::sync::OnceLock;

/// Rows per multi-row `INSERT` of samples and node power (fewer statement executions per batch).
const CHUNK: usize = 32;
const SAMPLE_COLS: &str =
    "sample_row, node_key, device, t_ns, power_w, energy_j, gpu_temp_c, mem_temp_c, \
     sm_clock_mhz, util_pct, throttle_reasons";
const SAMPLE_NCOLS: usize = 11;
const POWER_COLS: &str = "node_power_row, node_key, t_ns, power_w";
const POWER_NCOLS: usize = 4;
const BATCH_EXISTS: &str =
    "SELECT 1 FROM telemetry_batches WHERE run_id = ?1 AND node_id = ?2 AND seq = ?3";
const INSERT_BATCH: &str =
    "INSERT INTO telemetry_batches (run_id, node_id, seq, received_at_ns, from_ns, \
     to_ns, samples, first_sample_row, node_power, first_node_power_row) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// `INSERT INTO table (cols) VALUES (?, ...), ...` for `rows` rows of `ncols` columns.
fn insert_sql(table: &str, cols: &str, ncols: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; ncols].join(", "));
    format!(
        "INSERT INTO {table} ({cols}) VALUES {}",
        vec![row; rows].join(", ")
    )
}

/// The four insert statements of telemetry rows: (one sample, CHUNK samples, one reading, CHUNK readings).
fn insert_sqls() -> &'static [String; 4] {
    static SQL: OnceLock<[String; 4]> = OnceLock::new();
    SQL.get_or_init(|| {
        [
            insert_sql("sample_rows", SAMPLE_COLS, SAMPLE_NCOLS, 1),
            insert_sql("sample_rows", SAMPLE_COLS, SAMPLE_NCOLS, CHUNK),
            insert_sql("node_power_rows", POWER_COLS, POWER_NCOLS, 1),
            insert_sql("node_power_rows", POWER_COLS, POWER_NCOLS, CHUNK),
        ]
    })
}

impl Store {
    /// Stores one telemetry batch in its own transaction.
    pub fn insert_batch(
        &mut self,
        run: &RunId,
        node: &NodeId,
        batch: &TelemetryBatch,
        received_at_ns: i64,
    ) -> Result<Inserted, StoreError> {
        let mut done = self.insert_batches(run, &[(node, batch, received_at_ns)])?;
        Ok(done.pop().unwrap_or(Inserted {
            new: false,
            samples: 0,
        }))
    }

    /// Stores many telemetry batches (of any nodes of `run`) in ONE transaction; returns what happened to
    /// each, in order. A batch whose sequence number is stored already — earlier, or earlier in this
    /// slice — is skipped (`new: false`). On error nothing of the call is stored.
    pub fn insert_batches(
        &mut self,
        run: &RunId,
        batches: &[(&NodeId, &TelemetryBatch, i64)],
    ) -> Result<Vec<Inserted>, StoreError> {
        let mut keys = Vec::with_capacity(batches.len());
        for (node, batch, _) in batches {
            keys.push((self.node_key(run, node)?, to_i64("batch seq", batch.seq)?));
        }
        let path = self.path.clone();
        let tx = self
            .sqlite_mut()?
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::sql(&path, "starting a telemetry transaction", e))?;
        let out = write_batches(&tx, run, batches, &keys)
            .map_err(|e| StoreError::sql(&path, "storing telemetry", e))?;
        tx.commit()
            .map_err(|e| StoreError::sql(&path, "committing telemetry", e))?;
        Ok(out)
    }
}

/// A reading that is not a finite number (a broken sensor's NaN or infinity) is stored as NULL, like
/// an absent one; SQLite would turn NaN into NULL anyway.
fn finite32(v: Option<f32>) -> Option<f32> {
    v.filter(|x| x.is_finite())
}

fn finite64(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

fn bind_sample(
    stmt: &mut Statement<'_>,
    base: usize,
    row: i64,
    key: i64,
    s: &Sample,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(base, row)?;
    stmt.raw_bind_parameter(base + 1, key)?;
    stmt.raw_bind_parameter(base + 2, s.device)?;
    stmt.raw_bind_parameter(base + 3, s.t_ns)?;
    stmt.raw_bind_parameter(base + 4, finite32(s.power_w))?;
    stmt.raw_bind_parameter(base + 5, finite64(s.energy_j))?;
    stmt.raw_bind_parameter(base + 6, finite32(s.gpu_temp_c))?;
    stmt.raw_bind_parameter(base + 7, finite32(s.mem_temp_c))?;
    stmt.raw_bind_parameter(base + 8, s.sm_clock_mhz)?;
    stmt.raw_bind_parameter(base + 9, finite32(s.util_pct))?;
    // NVML's reason bits, stored bit for bit as SQLite's signed 64-bit integer.
    stmt.raw_bind_parameter(base + 10, s.throttle_reasons as i64)
}

fn bind_power(
    stmt: &mut Statement<'_>,
    base: usize,
    row: i64,
    key: i64,
    &(t, w): &(i64, f32),
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(base, row)?;
    stmt.raw_bind_parameter(base + 1, key)?;
    stmt.raw_bind_parameter(base + 2, t)?;
    stmt.raw_bind_parameter(base + 3, finite32(Some(w)))
}

/// Writes `items` with row ids from `next` on: full chunks with `many`, the rest with `one`.
fn write_rows<T>(
    one: &mut Statement<'_>,
    many: &mut Statement<'_>,
    ncols: usize,
    next: &mut i64,
    key: i64,
    items: &[T],
    bind: fn(&mut Statement<'_>, usize, i64, i64, &T) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut chunks = items.chunks_exact(CHUNK);
    for chunk in &mut chunks {
        for (i, item) in chunk.iter().enumerate() {
            bind(many, 1 + i * ncols, *next, key, item)?;
            *next += 1;
        }
        many.raw_execute()?;
    }
    for item in chunks.remainder() {
        bind(one, 1, *next, key, item)?;
        *next += 1;
        one.raw_execute()?;
    }
    Ok(())
}

fn write_batches(
    tx: &Transaction<'_>,
    run: &RunId,
    batches: &[(&NodeId, &TelemetryBatch, i64)],
    keys: &[(i64, i64)],
) -> Result<Vec<Inserted>, rusqlite::Error> {
    let sql = insert_sqls();
    let mut exists = tx.prepare_cached(BATCH_EXISTS)?;
    let mut batch_stmt = tx.prepare_cached(INSERT_BATCH)?;
    let mut sample_one = tx.prepare_cached(&sql[0])?;
    let mut sample_many = tx.prepare_cached(&sql[1])?;
    let mut power_one = tx.prepare_cached(&sql[2])?;
    let mut power_many = tx.prepare_cached(&sql[3])?;
    // Row ids are given explicitly so that each batch's rows form a known contiguous range.
    let mut next_sample: i64 = tx.query_row(
        "SELECT coalesce(max(sample_row), 0) + 1 FROM sample_rows",
        [],
        |r| r.get(0),
    )?;
    let mut next_power: i64 = tx.query_row(
        "SELECT coalesce(max(node_power_row), 0) + 1 FROM node_power_rows",
        [],
        |r| r.get(0),
    )?;
    let mut out = Vec::with_capacity(batches.len());
    for ((node, batch, received), &(key, seq)) in batches.iter().zip(keys) {
        if exists.exists(params![run.as_str(), node.as_str(), seq])? {
            out.push(Inserted {
                new: false,
                samples: 0,
            });
            continue;
        }
        let times = batch
            .samples
            .iter()
            .map(|s| s.t_ns)
            .chain(batch.node_power_w.iter().map(|p| p.0));
        let from = times.clone().min();
        let to = times.max();
        let first_sample = next_sample;
        write_rows(
            &mut sample_one,
            &mut sample_many,
            SAMPLE_NCOLS,
            &mut next_sample,
            key,
            &batch.samples,
            bind_sample,
        )?;
        let first_power = next_power;
        write_rows(
            &mut power_one,
            &mut power_many,
            POWER_NCOLS,
            &mut next_power,
            key,
            &batch.node_power_w,
            bind_power,
        )?;
        batch_stmt.execute(params![
            run.as_str(),
            node.as_str(),
            seq,
            received,
            from,
            to,
            batch.samples.len() as i64,
            first_sample,
            batch.node_power_w.len() as i64,
            first_power
        ])?;
        out.push(Inserted {
            new: true,
            samples: batch.samples.len(),
        });
    }
    Ok(out)
}
