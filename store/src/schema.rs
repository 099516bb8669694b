//! The SQLite schema of the run store and its migrations (documented column by column in
//! `docs/SCHEMA.md`).
//!
//! A database is recognised by `PRAGMA application_id` ([`APPLICATION_ID`], "HLMK") and versioned by
//! `PRAGMA user_version`. [`MIGRATIONS`]`[i]` takes a database from version `i` to `i + 1`; opening for
//! writing applies the missing ones in one `BEGIN IMMEDIATE` transaction, so two processes opening a new
//! directory at once cannot both create the schema.
//!
//! Telemetry is columnar (version 5): one row of `telemetry_batches` per stored batch, holding the
//! batch's samples and node-power readings as two blobs of `crate::columnar`, its counts and its time
//! span; the table is the (per-run, per-node, per-time) index of the data. Up to version 4 samples and
//! readings were rows of `sample_rows` / `node_power_rows` found by row-id ranges; the upgrade to 5
//! converts them (`crate::upgrade_v5`) in the migration's transaction and drops those tables.
//!
//! Versions: 1 the run store, 2 certifications and verdicts, 3 the fabric phases (`fabric_members`,
//! `fabric_latency`, `fabric_collectives`, `fabric_faults`); the upgrade to 3 drops the v1 table
//! `phase_histograms` when it is empty, which it is in every store hallmark wrote; 4 the
//! coordinator's liveness per run (`run_coordinators`), from which readers tell an interrupted run;
//! 5 columnar telemetry (above); 6 the missed sampling instants of a gap (`gaps.instants`); 7 the
//! readings of the hall's own meters (rack PDUs, CDUs, BMCs) that facility collectors send
//! (`facility_batches`, `facility_readings`; `crate::facility`); 8 the metrics computed once per
//! run for each subject (`metric_sets`, `metric_subjects`, `metric_names`, `metric_values`;
//! `crate::metrics`) and the probes' driver and library versions (`probe_software`;
//! `crate::software`).

use crate::error::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

mod migrations;
pub use migrations::MIGRATIONS;
use migrations::TO_V5;
pub(crate) use migrations::V5_FINISH;

/// `PRAGMA application_id` of a hallmark results database: "HLMK" in ASCII.
pub const APPLICATION_ID: i64 = 0x484c_4d4b;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a statement waits for another process's lock before failing with [`StoreError::Locked`].
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Drops the version 1 table `phase_histograms` when it holds no row. No hallmark probe ever filled
/// it (probes of protocol version 1 always sent an empty list, and version 2 has no such field), so
/// on every store hallmark wrote it is empty and goes; a store whose table holds rows written by
/// something else keeps it, read-only: nothing writes it any more and nothing of it is lost.
fn drop_empty_legacy(tx: &Connection, path: &Path) -> Result<(), StoreError> {
    let sql = |op| move |e| StoreError::sql(path, op, e);
    let exists: i64 = tx
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'phase_histograms'",
            [],
            |r| r.get(0),
        )
        .map_err(sql("looking for the legacy histogram table"))?;
    if exists == 0 {
        return Ok(());
    }
    let rows: i64 = tx
        .query_row("SELECT count(*) FROM phase_histograms", [], |r| r.get(0))
        .map_err(sql("counting legacy histograms"))?;
    if rows == 0 {
        tx.execute_batch("DROP TABLE phase_histograms")
            .map_err(sql("dropping the empty legacy histogram table"))?;
    }
    Ok(())
}

/// Per-connection settings: WAL journal, `synchronous=NORMAL`, foreign keys on, a busy timeout.
fn configure(conn: &Connection, path: &Path, write: bool) -> Result<(), StoreError> {
    let sql = |op| move |e| StoreError::sql(path, op, e);
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sql("setting the busy timeout"))?;
    if write {
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql("switching to the WAL journal"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::invalid(
                "journal mode",
                format!(
                    "{} stays in journal mode {mode:?}; the file system must support WAL (shared memory \
                     and locks): use a local directory",
                    path.display()
                ),
            ));
        }
    }
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -65536;",
    )
    .map_err(sql("setting pragmas"))
}

fn ids(conn: &Connection, path: &Path) -> Result<(i64, i64, i64), StoreError> {
    let sql = |op| move |e| StoreError::sql(path, op, e);
    let app: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sql("reading the application id"))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql("reading the schema version"))?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(sql("listing tables"))?;
    Ok((app, version, objects))
}

fn check_identity(path: &Path, app: i64, version: i64, objects: i64) -> Result<(), StoreError> {
    let not_ours = |detail: String| StoreError::NotHallmark {
        path: path.to_path_buf(),
        detail,
    };
    if app == 0 && version == 0 && objects > 0 {
        return Err(not_ours(format!(
            "it is an SQLite database of another application ({objects} tables or indexes)"
        )));
    }
    if version < 0 {
        return Err(not_ours(format!("its schema version is {version}")));
    }
    if app != 0 && app != APPLICATION_ID {
        return Err(not_ours(format!(
            "its application id is {app:#x}, not hallmark's {APPLICATION_ID:#x}"
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Opens (creating if needed) the database at `path` for writing, and brings its schema up to date.
pub(crate) fn open_write(path: &Path) -> Result<Connection, StoreError> {
    let sql = |op| move |e| StoreError::sql(path, op, e);
    let mut conn = Connection::open(path).map_err(sql("opening"))?;
    let (app, version, objects) = ids(&conn, path)?;
    check_identity(path, app, version, objects)?;
    configure(&conn, path, true)?;
    if version < SCHEMA_VERSION {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql("starting the schema migration"))?;
        // Another process may have migrated between our first look and the lock.
        let (app, version, objects) = ids(&tx, path)?;
        check_identity(path, app, version, objects)?;
        let from = usize::try_from(version).unwrap_or(0);
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(from) {
            tx.execute_batch(migration)
                .map_err(sql("creating the schema"))?;
            if i == TO_V5 {
                crate::upgrade_v5::convert_rows(&tx, path)?;
                tx.execute_batch(V5_FINISH)
                    .map_err(sql("dropping the version 4 telemetry tables"))?;
            }
        }
        if from < 3 {
            drop_empty_legacy(&tx, path)?;
        }
        tx.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
        ))
        .map_err(sql("recording the schema version"))?;
        tx.commit().map_err(sql("committing the schema"))?;
    }
    Ok(conn)
}

/// Opens an existing database for reading only; never creates or migrates anything.
pub(crate) fn open_read(path: &Path) -> Result<Connection, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Missing {
            path: path.to_path_buf(),
        });
    }
    let sql = |op| move |e| StoreError::sql(path, op, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sql("opening"))?;
    configure(&conn, path, false)?;
    let (app, version, objects) = ids(&conn, path)?;
    check_identity(path, app, version, objects)?;
    if version < SCHEMA_VERSION {
        if version == 0 {
            return Err(StoreError::NotHallmark {
                path: path.to_path_buf(),
                detail: "the file is empty".into(),
            });
        }
        return Err(StoreError::NeedsUpgrade {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}
