//! Facility readings (schema 7): what facility collectors read from the hall's own meters (rack
//! PDUs, CDUs, node BMCs), stored with the run ([`Store::insert_facility_batches`]) and read back
//! in time order ([`Store::facility_readings`]).
//!
//! A collector is a probe registered with `ProbeRole::Facility`; it sends numbered
//! [`FacilityBatch`]es (from 0 per collector process, like telemetry batches). Each stored batch
//! is one row of `facility_batches`, keyed by `(run_id, collector, seq)`: a batch whose key is
//! stored already is a replay and is skipped. Each reading is one row of `facility_readings`,
//! keyed by its batch and its position in it, its kind, scope and quantity by the protocol's names.
//!
//! Absent is never 0: a reading without a value is stored with `value` NULL. A value that is not a
//! finite number (NaN, ±∞) is no reading either: it is stored as NULL with the note
//! [`FACILITY_NOT_FINITE`] (before the collector's own note, if it gave one).
//!
//! One transaction per call, on both backends: the batch rows first (a prepared
//! `INSERT … ON CONFLICT DO NOTHING` each, which says whether the batch is new, also against an
//! earlier batch of the same call), then the readings of the new batches in one bulk insert
//! ([`Db::insert_rows`]: binary `COPY` on PostgreSQL, multi-row `INSERT`s on SQLite).

use crate::db::{Db, DbError, Value};
use crate::error::{to_i64, StoreError};
use crate::model::{Inserted, RunId, StoredFacilityReading};
use crate::store::Store;
use hallmark_protocol::facility::{
    bounded_text, FacilityBatch, FacilityQuantity, FacilityReading, SourceKind, Subject,
    MAX_FACILITY_NOTE_BYTES,
};
use hallmark_protocol::NodeId;

/// The note of a reading whose value was not a finite number and is stored as absent.
pub const FACILITY_NOT_FINITE: &str = "not a finite number";

const INSERT_BATCH: &str =
    "INSERT INTO facility_batches (run_id, collector, seq, received_at_ns, readings) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (run_id, collector, seq) DO NOTHING";

/// The columns a reading row is written with, in the order of [`reading_values`].
const COLUMNS: [&str; 16] = [
    "run_id",
    "collector",
    "seq",
    "idx",
    "source",
    "kind",
    "scope",
    "subject",
    "point",
    "quantity",
    "uri",
    "t_ns",
    "value",
    "device_time_ns",
    "latency_us",
    "note",
];

const SELECT_READINGS: &str = "SELECT collector, seq, idx, source, kind, scope, subject, point, \
     quantity, uri, t_ns, value, device_time_ns, latency_us, note \
     FROM facility_readings WHERE run_id = ?1 ORDER BY t_ns, collector, seq, idx";

impl Store {
    /// Stores facility batches (of any collectors of `run`) in ONE transaction; returns what
    /// happened to each, in order, once the transaction is committed (`samples`: the readings
    /// written). A batch whose `(run, collector, seq)` is stored already — earlier, or earlier in
    /// this slice — is skipped (`new: false`, `samples: 0`). On error nothing of the call is stored.
    /// An unknown run is [`StoreError::UnknownRun`]; the collector need not be a registered probe
    /// of the run (a facility collector loads nothing and has no inventory).
    pub fn insert_facility_batches(
        &mut self,
        run: &RunId,
        batches: &[(&NodeId, &FacilityBatch, i64)],
    ) -> Result<Vec<Inserted>, StoreError> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_run(run)?;
        let mut seqs = Vec::with_capacity(batches.len());
        for (collector, batch, _) in batches {
            seqs.push(to_i64("facility batch seq", batch.seq)?);
            check_text(collector, batch)?;
        }
        let path = self.path.clone();
        let new = self
            .db
            .transaction_immediate(|db| insert(db, run, batches, &seqs))
            .map_err(|e| StoreError::db(&path, "storing facility readings", e))?;
        Ok(batches
            .iter()
            .zip(new)
            .map(|((_, batch, _), new)| Inserted {
                new,
                samples: if new { batch.readings.len() } else { 0 },
            })
            .collect())
    }

    /// Every facility reading of `run_id`, ordered by `t_ns`, then collector, batch and position
    /// in the batch; an unknown run gives an empty list (as the other reads). A kind, scope or
    /// quantity this build does not know (a newer hallmark wrote it) is a [`StoreError::Corrupt`]
    /// naming the run, the reading and the value.
    pub fn facility_readings(
        &self,
        run_id: &str,
    ) -> Result<Vec<StoredFacilityReading>, StoreError> {
        let rows = self
            .db
            .query_map(SELECT_READINGS, &[run_id.into()], |r| {
                Ok(RawReading {
                    collector: r.text(0)?,
                    seq: r.int(1)?,
                    idx: r.i64(2)?,
                    source: r.text(3)?,
                    kind: r.text(4)?,
                    scope: r.text(5)?,
                    subject: r.text(6)?,
                    point: r.text(7)?,
                    quantity: r.text(8)?,
                    uri: r.text(9)?,
                    t_ns: r.i64(10)?,
                    value: r.opt_f64(11)?,
                    device_time_ns: r.opt_i64(12)?,
                    latency_us: r.opt_int(13)?,
                    note: r.opt_text(14)?,
                })
            })
            .map_err(self.db_err("reading facility readings"))?;
        rows.into_iter()
            .map(|raw| raw.into_stored(self, run_id))
            .collect()
    }
}

/// Refuses a text with a NUL character, which PostgreSQL cannot hold in `TEXT` (SQLite can): the
/// same batch is refused on both backends, by name, before anything is written.
fn check_text(collector: &NodeId, batch: &FacilityBatch) -> Result<(), StoreError> {
    for (idx, r) in batch.readings.iter().enumerate() {
        let fields = [
            ("source", Some(r.source.as_str())),
            ("subject", Some(r.subject.name())),
            ("point", Some(r.point.as_str())),
            ("uri", Some(r.uri.as_str())),
            ("note", r.note.as_deref()),
        ];
        if let Some((field, _)) = fields
            .iter()
            .find(|(_, text)| text.is_some_and(|t| t.contains('\0')))
        {
            return Err(StoreError::invalid(
                "facility reading",
                format!(
                    "reading #{idx} of batch {} of collector {collector} has a NUL character in \
                     its {field}, which the store cannot hold; the collector must send text \
                     without NUL characters",
                    batch.seq
                ),
            ));
        }
    }
    Ok(())
}

/// The batch rows, then the readings of the new batches; whether each batch was new.
fn insert(
    db: &mut Db,
    run: &RunId,
    batches: &[(&NodeId, &FacilityBatch, i64)],
    seqs: &[i64],
) -> Result<Vec<bool>, DbError> {
    let mut new = Vec::with_capacity(batches.len());
    for ((collector, batch, received_at_ns), seq) in batches.iter().zip(seqs) {
        let params = [
            run.as_str().into(),
            collector.as_str().into(),
            Value::I64(*seq),
            Value::I64(*received_at_ns),
            Value::I64(batch.readings.len() as i64),
        ];
        new.push(db.execute(INSERT_BATCH, &params)? == 1);
    }
    let rows = batches
        .iter()
        .zip(seqs)
        .zip(&new)
        .filter(|(_, new)| **new)
        .flat_map(|(((collector, batch, _), seq), _)| {
            batch
                .readings
                .iter()
                .enumerate()
                .map(move |(idx, reading)| reading_values(run, collector, *seq, idx, reading))
        });
    let any = batches
        .iter()
        .zip(&new)
        .any(|((_, batch, _), new)| *new && !batch.readings.is_empty());
    if any {
        db.insert_rows("facility_readings", &COLUMNS, rows)?;
    }
    Ok(new)
}

/// One reading's row in [`COLUMNS`] order; a value that is not a finite number becomes NULL with
/// the note [`FACILITY_NOT_FINITE`], and −0 becomes 0.
fn reading_values(
    run: &RunId,
    collector: &NodeId,
    seq: i64,
    idx: usize,
    r: &FacilityReading,
) -> Vec<Value> {
    let (value, note) = match r.value {
        Some(v) if !v.is_finite() => {
            let note = match &r.note {
                Some(n) => format!("{FACILITY_NOT_FINITE}; {n}"),
                None => FACILITY_NOT_FINITE.to_string(),
            };
            (None, Some(bounded_text(note, MAX_FACILITY_NOTE_BYTES)))
        }
        // −0 is stored as 0, as SQLite does with any zero: the same on both backends.
        v => (v.map(|v| if v == 0.0 { 0.0 } else { v }), r.note.clone()),
    };
    vec![
        run.as_str().into(),
        collector.as_str().into(),
        Value::I64(seq),
        Value::I64(idx as i64),
        r.source.as_str().into(),
        r.kind.as_str().into(),
        r.subject.scope().into(),
        r.subject.name().into(),
        r.point.as_str().into(),
        r.quantity.as_str().into(),
        r.uri.as_str().into(),
        Value::I64(r.t_ns),
        value.into(),
        r.device_time_ns.into(),
        r.latency_us.into(),
        note.into(),
    ]
}

/// A row of `facility_readings` as read, before its names are checked.
struct RawReading {
    collector: String,
    seq: u64,
    idx: i64,
    source: String,
    kind: String,
    scope: String,
    subject: String,
    point: String,
    quantity: String,
    uri: String,
    t_ns: i64,
    value: Option<f64>,
    device_time_ns: Option<i64>,
    latency_us: Option<u32>,
    note: Option<String>,
}

impl RawReading {
    fn into_stored(self, store: &Store, run_id: &str) -> Result<StoredFacilityReading, StoreError> {
        let unknown = |what: &str, name: &str| StoreError::Corrupt {
            path: store.path.clone(),
            detail: format!(
                "run {run_id}: facility reading #{} of batch {} of collector {} has the {what} \
                 {name:?}, which this hallmark does not know (a newer hallmark wrote it); read \
                 the run with that version",
                self.idx, self.seq, self.collector
            ),
        };
        let kind = SourceKind::parse(&self.kind).ok_or_else(|| unknown("kind", &self.kind))?;
        let quantity = FacilityQuantity::parse(&self.quantity)
            .ok_or_else(|| unknown("quantity", &self.quantity))?;
        let subject = Subject::from_parts(&self.scope, &self.subject)
            .ok_or_else(|| unknown("scope", &self.scope))?;
        Ok(StoredFacilityReading {
            reading: FacilityReading {
                source: self.source,
                kind,
                subject,
                point: self.point,
                quantity,
                uri: self.uri,
                t_ns: self.t_ns,
                value: self.value,
                device_time_ns: self.device_time_ns,
                latency_us: self.latency_us,
                note: self.note,
            },
            collector: self.collector,
            seq: self.seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite reads a run's readings through `facility_readings_by_time`, already in order.
    #[test]
    fn a_runs_readings_are_read_through_the_time_index_without_sorting() {
        let dir =
            std::env::temp_dir().join(format!("hallmark-facility-plan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let conn = store.db.sqlite().expect("a SQLite store");
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {SELECT_READINGS}"))
            .unwrap();
        let plan: Vec<String> = stmt
            .query_map(["run"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        drop(stmt);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert!(
            plan[0].starts_with("SEARCH") && plan[0].contains("facility_readings_by_time"),
            "{plan:?}"
        );
    }
}
