//! Telemetry ingest: [`Store::insert_batch`] and [`Store::insert_batches`], on both backends.
//!
//! Each stored batch is ONE row of `telemetry_batches` (schema 5): its samples and its node-power
//! readings encoded by [`crate::columnar`] as two blobs, beside its sequence number, arrival time,
//! time span and counts. A batch whose `(run, node, seq)` is stored already is a replay and is
//! skipped. A reading that is not a finite number is stored as absent (the codec's rule).
//!
//! * SQLite: one cached prepared `INSERT … ON CONFLICT DO NOTHING` per batch, in one
//!   `BEGIN IMMEDIATE` transaction per call.
//! * PostgreSQL: the call's batches go into the session's temporary table `telemetry_stage` with
//!   one binary `COPY`, then one `INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING` moves them
//!   into `telemetry_batches` and says which were new; one transaction per call. `COPY` alone has
//!   no `ON CONFLICT`, and a replayed batch must not fail the call.

use crate::columnar::Encoder;
use crate::db::{Backend, Db, DbError, Value};
use crate::error::{to_i64, StoreError};
use crate::model::{Inserted, RunId};
use crate::store::Store;
use hallmark_protocol::{NodeId, TelemetryBatch};
use std::collections::HashMap;

/// The columns a batch row is written with, in the order of [`BatchRow::values`].
const COLUMNS: [&str; 10] = [
    "run_id",
    "node_id",
    "seq",
    "received_at_ns",
    "from_ns",
    "to_ns",
    "samples",
    "node_power",
    "node_power_blob",
    "samples_blob",
];

const INSERT_BATCH: &str =
    "INSERT INTO telemetry_batches (run_id, node_id, seq, received_at_ns, from_ns, to_ns, \
     samples, node_power, node_power_blob, samples_blob) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
     ON CONFLICT (run_id, node_id, seq) DO NOTHING";

/// The PostgreSQL session's staging table for [`Store::insert_batches`], emptied at every commit.
/// Created once per session when a store is opened for writing ([`stage_ddl`]).
const STAGE: &str = "telemetry_stage";

/// Moves the staged batches into `telemetry_batches` in call order; returns the new ones.
const MOVE_STAGED: &str =
    "INSERT INTO telemetry_batches (run_id, node_id, seq, received_at_ns, from_ns, to_ns, \
     samples, node_power, node_power_blob, samples_blob) \
     SELECT run_id, node_id, seq, received_at_ns, from_ns, to_ns, \
            samples, node_power, node_power_blob, samples_blob \
     FROM telemetry_stage ORDER BY ord \
     ON CONFLICT (run_id, node_id, seq) DO NOTHING \
     RETURNING node_id, seq";

/// The DDL of the PostgreSQL staging table (a temporary table: the session's own, never seen by
/// another connection, gone when the session ends).
pub(crate) fn stage_ddl() -> String {
    format!(
        "CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} (\
           ord BIGINT NOT NULL, run_id TEXT NOT NULL, node_id TEXT NOT NULL, seq BIGINT NOT NULL, \
           received_at_ns BIGINT NOT NULL, from_ns BIGINT, to_ns BIGINT, samples BIGINT NOT NULL, \
           node_power BIGINT NOT NULL, node_power_blob BYTEA NOT NULL, samples_blob BYTEA NOT NULL\
         ) ON COMMIT DELETE ROWS"
    )
}

/// One batch, encoded and ready to store.
struct BatchRow {
    node: String,
    seq: i64,
    received_at_ns: i64,
    from_ns: Option<i64>,
    to_ns: Option<i64>,
    samples: usize,
    node_power: usize,
    node_power_blob: Vec<u8>,
    samples_blob: Vec<u8>,
}

impl BatchRow {
    /// The row's values in [`COLUMNS`] order; the blobs move into them.
    fn values(&mut self, run: &RunId) -> Vec<Value> {
        let opt = |v: Option<i64>| v.map_or(Value::Null, Value::I64);
        vec![
            run.as_str().into(),
            self.node.as_str().into(),
            Value::I64(self.seq),
            Value::I64(self.received_at_ns),
            opt(self.from_ns),
            opt(self.to_ns),
            Value::I64(self.samples as i64),
            Value::I64(self.node_power as i64),
            Value::Blob(std::mem::take(&mut self.node_power_blob)),
            Value::Blob(std::mem::take(&mut self.samples_blob)),
        ]
    }
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
    /// each, in order, once the transaction is committed. A batch whose sequence number is stored
    /// already — earlier, or earlier in this slice — is skipped (`new: false`). On error nothing of the
    /// call is stored.
    pub fn insert_batches(
        &mut self,
        run: &RunId,
        batches: &[(&NodeId, &TelemetryBatch, i64)],
    ) -> Result<Vec<Inserted>, StoreError> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = Vec::with_capacity(batches.len());
        let mut encoder = Encoder::new();
        for (node, batch, received_at_ns) in batches {
            // Checks that the node is registered (the same error as ever for one that is not).
            self.node_key(run, node)?;
            rows.push(encode(&mut encoder, node, batch, *received_at_ns)?);
        }
        let path = self.path.clone();
        let new = self
            .db
            .transaction_immediate(|db| match db.backend() {
                Backend::Sqlite => insert_each(db, run, &mut rows),
                Backend::Postgres => copy_staged(db, run, &mut rows),
            })
            .map_err(|e| StoreError::db(&path, "storing telemetry", e))?;
        Ok(rows
            .iter()
            .zip(new)
            .map(|(row, new)| Inserted {
                new,
                samples: if new { row.samples } else { 0 },
            })
            .collect())
    }
}

/// Encodes one batch into its row.
fn encode(
    encoder: &mut Encoder,
    node: &NodeId,
    batch: &TelemetryBatch,
    received_at_ns: i64,
) -> Result<BatchRow, StoreError> {
    let seq = to_i64("batch seq", batch.seq)?;
    let mut samples_blob = Vec::new();
    let mut node_power_blob = Vec::new();
    encoder
        .encode_samples(&batch.samples, &mut samples_blob)
        .and_then(|()| encoder.encode_node_power(&batch.node_power_w, &mut node_power_blob))
        .map_err(|e| StoreError::invalid("telemetry batch", e.to_string()))?;
    let times = batch
        .samples
        .iter()
        .map(|s| s.t_ns)
        .chain(batch.node_power_w.iter().map(|p| p.0));
    Ok(BatchRow {
        node: node.as_str().to_owned(),
        seq,
        received_at_ns,
        from_ns: times.clone().min(),
        to_ns: times.max(),
        samples: batch.samples.len(),
        node_power: batch.node_power_w.len(),
        node_power_blob,
        samples_blob,
    })
}

/// SQLite: one prepared insert per batch; whether each was new.
fn insert_each(db: &mut Db, run: &RunId, rows: &mut [BatchRow]) -> Result<Vec<bool>, DbError> {
    rows.iter_mut()
        .map(|row| Ok(db.execute(INSERT_BATCH, &row.values(run))? == 1))
        .collect()
}

/// PostgreSQL: binary `COPY` into the staging table, then one move; whether each was new. Of
/// batches with the same node and sequence number in one call, the first is new.
fn copy_staged(db: &mut Db, run: &RunId, rows: &mut [BatchRow]) -> Result<Vec<bool>, DbError> {
    let mut columns = vec!["ord"];
    columns.extend(COLUMNS);
    let staged = rows.iter_mut().enumerate().map(|(i, row)| {
        let mut values = vec![Value::I64(i as i64)];
        values.extend(row.values(run));
        values
    });
    db.insert_rows(STAGE, &columns, staged)?;
    let mut stored: HashMap<(String, i64), usize> = HashMap::new();
    db.for_each(MOVE_STAGED, &[], |r| {
        *stored.entry((r.text(0)?, r.i64(1)?)).or_default() += 1;
        Ok(())
    })?;
    Ok(rows
        .iter()
        .map(|row| {
            let key = (row.node.clone(), row.seq);
            match stored.get_mut(&key) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            }
        })
        .collect())
}
