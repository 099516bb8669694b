//! Telemetry ingest: [`Store::insert_batch`] and [`Store::insert_batches`].
//!
//! Each stored batch is ONE row of `telemetry_batches` (schema 5): its samples and its node-power
//! readings encoded by [`crate::columnar`] as two blobs, beside its sequence number, arrival time,
//! time span and counts. One cached prepared `INSERT … ON CONFLICT DO NOTHING` per batch: a batch
//! whose `(run, node, seq)` is stored already is a replay and is skipped. A reading that is not a
//! finite number is stored as absent (the codec's rule).

use crate::columnar::Encoder;
use crate::error::{to_i64, StoreError};
use crate::model::{Inserted, RunId};
use crate::store::Store;
use hallmark_protocol::{NodeId, TelemetryBatch};
use rusqlite::{params, Transaction, TransactionBehavior};

const INSERT_BATCH: &str =
    "INSERT INTO telemetry_batches (run_id, node_id, seq, received_at_ns, from_ns, to_ns, \
     samples, node_power, node_power_blob, samples_blob) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
     ON CONFLICT (run_id, node_id, seq) DO NOTHING";

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
        let mut encoded = Vec::with_capacity(batches.len());
        let mut encoder = Encoder::new();
        for (node, batch, _) in batches {
            // Checks that the node is registered (the same error as ever for one that is not).
            self.node_key(run, node)?;
            let seq = to_i64("batch seq", batch.seq)?;
            let mut samples = Vec::new();
            let mut power = Vec::new();
            encoder
                .encode_samples(&batch.samples, &mut samples)
                .and_then(|()| encoder.encode_node_power(&batch.node_power_w, &mut power))
                .map_err(|e| StoreError::invalid("telemetry batch", e.to_string()))?;
            encoded.push((seq, samples, power));
        }
        let path = self.path.clone();
        let tx = self
            .sqlite_mut()?
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::sql(&path, "starting a telemetry transaction", e))?;
        let out = write_batches(&tx, run, batches, &encoded)
            .map_err(|e| StoreError::sql(&path, "storing telemetry", e))?;
        tx.commit()
            .map_err(|e| StoreError::sql(&path, "committing telemetry", e))?;
        Ok(out)
    }
}

/// A batch ready to store: its sequence number, samples blob and node-power blob.
type Encoded = (i64, Vec<u8>, Vec<u8>);

fn write_batches(
    tx: &Transaction<'_>,
    run: &RunId,
    batches: &[(&NodeId, &TelemetryBatch, i64)],
    encoded: &[Encoded],
) -> Result<Vec<Inserted>, rusqlite::Error> {
    let mut insert = tx.prepare_cached(INSERT_BATCH)?;
    let mut out = Vec::with_capacity(batches.len());
    for ((node, batch, received), (seq, samples, power)) in batches.iter().zip(encoded) {
        let times = batch
            .samples
            .iter()
            .map(|s| s.t_ns)
            .chain(batch.node_power_w.iter().map(|p| p.0));
        let from = times.clone().min();
        let to = times.max();
        let stored = insert.execute(params![
            run.as_str(),
            node.as_str(),
            seq,
            received,
            from,
            to,
            batch.samples.len() as i64,
            batch.node_power_w.len() as i64,
            power,
            samples
        ])?;
        out.push(Inserted {
            new: stored == 1,
            samples: if stored == 1 { batch.samples.len() } else { 0 },
        });
    }
    Ok(out)
}
