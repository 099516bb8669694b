//! The data step of the upgrade from schema 4 to 5: every stored batch's rows of `sample_rows` and
//! `node_power_rows` become the batch's two columnar blobs in `telemetry_batches_v5`, in the order
//! the batches were stored, inside the migration's transaction.
//!
//! Nothing is lost: the row tables hold REAL columns that hallmark wrote from `f32` readings (and
//! the `f64` energy counter), integers, and NULL for an absent or non-finite reading. Every REAL is
//! converted back to `f32` only when that is exact, every integer only when it fits its field
//! (`device` a `u16`, `sm_clock_mhz` a `u32`), and NULL stays absent; a row that does not convert
//! exactly, or that names another node than its batch, stops the upgrade with
//! [`StoreError::Corrupt`] naming the run, the node and the batch, and the store stays at version 4.

use crate::columnar::Encoder;
use crate::error::StoreError;
use hallmark_protocol::Sample;
use rusqlite::{Connection, Row};
use std::path::Path;

/// One version 4 batch: where its rows are.
struct OldBatch {
    run_id: String,
    node_id: String,
    seq: i64,
    received_at_ns: i64,
    from_ns: Option<i64>,
    to_ns: Option<i64>,
    samples: i64,
    first_sample_row: i64,
    node_power: i64,
    first_node_power_row: i64,
    node_key: Option<i64>,
}

/// Converts every version 4 batch into a row of `telemetry_batches_v5` (created by the migration's SQL).
pub(crate) fn convert_rows(tx: &Connection, path: &Path) -> Result<(), StoreError> {
    let sql = |op| move |e| StoreError::sql(path, op, e);
    let mut batches = tx
        .prepare(
            "SELECT b.run_id, b.node_id, b.seq, b.received_at_ns, b.from_ns, b.to_ns, b.samples, \
             b.first_sample_row, b.node_power, b.first_node_power_row, p.node_key \
             FROM telemetry_batches AS b LEFT JOIN probes AS p \
               ON p.run_id = b.run_id AND p.node_id = b.node_id \
             ORDER BY b.first_sample_row, b.first_node_power_row",
        )
        .map_err(sql("reading the version 4 batch index"))?;
    let mut sample_rows = tx
        .prepare(
            "SELECT node_key, device, t_ns, power_w, energy_j, gpu_temp_c, mem_temp_c, sm_clock_mhz, \
             util_pct, throttle_reasons FROM sample_rows \
             WHERE sample_row >= ?1 AND sample_row < ?2 ORDER BY sample_row",
        )
        .map_err(sql("reading version 4 samples"))?;
    let mut power_rows = tx
        .prepare(
            "SELECT node_key, t_ns, power_w FROM node_power_rows \
             WHERE node_power_row >= ?1 AND node_power_row < ?2 ORDER BY node_power_row",
        )
        .map_err(sql("reading version 4 node power"))?;
    let mut insert = tx
        .prepare(
            "INSERT INTO telemetry_batches_v5 (run_id, node_id, seq, received_at_ns, from_ns, to_ns, \
             samples, node_power, node_power_blob, samples_blob) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(sql("storing converted telemetry"))?;
    let mut rows = batches
        .query([])
        .map_err(sql("reading the version 4 batch index"))?;
    let mut encoder = Encoder::new();
    let (mut samples, mut power) = (Vec::new(), Vec::new());
    let (mut samples_blob, mut power_blob) = (Vec::new(), Vec::new());
    while let Some(r) = rows
        .next()
        .map_err(sql("reading the version 4 batch index"))?
    {
        let b = old_batch(r).map_err(sql("reading the version 4 batch index"))?;
        let corrupt = |detail: String| {
            StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "run {} node {} batch seq {}: {detail}; the upgrade to schema 5 stopped and the \
                 store is unchanged (version 4): read it with the hallmark that wrote it, or restore \
                 a backup",
                b.run_id, b.node_id, b.seq
            ),
        }
        };
        samples.clear();
        let mut q = sample_rows
            .query([
                b.first_sample_row,
                b.first_sample_row.saturating_add(b.samples),
            ])
            .map_err(sql("reading version 4 samples"))?;
        while let Some(row) = q.next().map_err(sql("reading version 4 samples"))? {
            let (key, s) = old_sample(row).map_err(sql("reading version 4 samples"))?;
            check_key(key, b.node_key).map_err(&corrupt)?;
            samples.push(s.map_err(&corrupt)?);
        }
        power.clear();
        let mut q = power_rows
            .query([
                b.first_node_power_row,
                b.first_node_power_row.saturating_add(b.node_power),
            ])
            .map_err(sql("reading version 4 node power"))?;
        while let Some(row) = q.next().map_err(sql("reading version 4 node power"))? {
            let key: i64 = row.get(0).map_err(sql("reading version 4 node power"))?;
            check_key(key, b.node_key).map_err(&corrupt)?;
            let t: i64 = row.get(1).map_err(sql("reading version 4 node power"))?;
            let w: Option<f64> = row.get(2).map_err(sql("reading version 4 node power"))?;
            // NaN is the codec's "absent" (a non-finite reading is not stored).
            power.push((
                t,
                exact_f32("node power_w", w)
                    .map_err(&corrupt)?
                    .unwrap_or(f32::NAN),
            ));
        }
        if samples.len() as i64 != b.samples || power.len() as i64 != b.node_power {
            return Err(corrupt(format!(
                "the batch index names {} samples and {} node-power readings, the row tables hold {} and {}",
                b.samples,
                b.node_power,
                samples.len(),
                power.len()
            )));
        }
        samples_blob.clear();
        power_blob.clear();
        encoder
            .encode_samples(&samples, &mut samples_blob)
            .map_err(|e| corrupt(e.to_string()))?;
        encoder
            .encode_node_power(&power, &mut power_blob)
            .map_err(|e| corrupt(e.to_string()))?;
        insert
            .execute(rusqlite::params![
                b.run_id,
                b.node_id,
                b.seq,
                b.received_at_ns,
                b.from_ns,
                b.to_ns,
                b.samples,
                b.node_power,
                power_blob,
                samples_blob
            ])
            .map_err(sql("storing converted telemetry"))?;
    }
    Ok(())
}

fn old_batch(r: &Row<'_>) -> rusqlite::Result<OldBatch> {
    Ok(OldBatch {
        run_id: r.get(0)?,
        node_id: r.get(1)?,
        seq: r.get(2)?,
        received_at_ns: r.get(3)?,
        from_ns: r.get(4)?,
        to_ns: r.get(5)?,
        samples: r.get(6)?,
        first_sample_row: r.get(7)?,
        node_power: r.get(8)?,
        first_node_power_row: r.get(9)?,
        node_key: r.get(10)?,
    })
}

fn check_key(row_key: i64, batch_key: Option<i64>) -> Result<(), String> {
    if Some(row_key) != batch_key {
        return Err(format!(
            "a row of the batch names node key {row_key}, not the batch's node ({batch_key:?})"
        ));
    }
    Ok(())
}

/// A stored REAL as the `f32` it was written from; `None` stays `None`, and so does a non-finite
/// value (which the codec does not store).
fn exact_f32(what: &str, v: Option<f64>) -> Result<Option<f32>, String> {
    match v {
        Some(x) if x.is_finite() => {
            let f = x as f32;
            if f64::from(f) == x {
                Ok(Some(f))
            } else {
                Err(format!(
                    "{what} {x} is not an f32 value and would not convert exactly"
                ))
            }
        }
        _ => Ok(None),
    }
}

/// One version 4 sample row: its node key, and the sample (or what does not convert exactly).
fn old_sample(r: &Row<'_>) -> rusqlite::Result<(i64, Result<Sample, String>)> {
    let key: i64 = r.get(0)?;
    let device: i64 = r.get(1)?;
    let t_ns: i64 = r.get(2)?;
    let reals: [Option<f64>; 5] = [r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(8)?];
    let clock: Option<i64> = r.get(7)?;
    let throttle: i64 = r.get(9)?;
    let sample = (|| {
        Ok(Sample {
            t_ns,
            device: u16::try_from(device).map_err(|_| format!("device {device} is not a u16"))?,
            power_w: exact_f32("power_w", reals[0])?,
            energy_j: reals[1].filter(|x| x.is_finite()),
            gpu_temp_c: exact_f32("gpu_temp_c", reals[2])?,
            mem_temp_c: exact_f32("mem_temp_c", reals[3])?,
            sm_clock_mhz: clock
                .map(|c| u32::try_from(c).map_err(|_| format!("sm_clock_mhz {c} is not a u32")))
                .transpose()?,
            util_pct: exact_f32("util_pct", reals[4])?,
            // Stored bit for bit as SQLite's signed 64-bit integer.
            throttle_reasons: throttle as u64,
        })
    })();
    Ok((key, sample))
}
