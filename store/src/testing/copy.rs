//! A SQLite store copied into a PostgreSQL database, table by table and row by row, for tests that
//! read the same data through both backends (`hallmark runs show`, `certify`, `report` on a demo
//! run in each must give the same output).
//!
//! The PostgreSQL store is created by [`Store::open_postgres`] (the same migrations), then every
//! non-empty table of the SQLite store is appended with binary `COPY` ([`Db::insert_rows`]), its
//! columns read by their declared types, with foreign-key checks off for the session (so the
//! order of the tables does not matter; it needs a superuser, as the test server's is). The
//! identity columns' sequences are then moved past the copied ids, so rows written afterwards
//! (a certification) get fresh ones. A table that holds rows in the SQLite store and does not
//! exist in the PostgreSQL one is an error: the copy would not be the same data.

use crate::db::pg::{self, Timeouts};
use crate::db::{Db, DbError, Value};
use crate::location::PgTarget;
use crate::Store;
use crate::DB_FILE;
use std::path::Path;

/// Copies the store in the results directory `dir` into the database `target` (which must be
/// empty); returns the number of rows copied.
pub fn sqlite_to_postgres(dir: &Path, target: &PgTarget) -> Result<u64, String> {
    let path = dir.join(DB_FILE);
    drop(Store::open_postgres(target, &Timeouts::default()).map_err(|e| e.to_string())?);
    let conn = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let from = Db::from_sqlite(conn, path.display().to_string());
    let mut to = pg::connect(target, &Timeouts::default()).map_err(|e| e.to_string())?;
    let text = |e: DbError| e.to_string();
    let tables = from
        .query_map(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY rowid",
            &[],
            |r| r.text(0),
        )
        .map_err(text)?;
    let existing = to
        .query_map(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
            &[],
            |r| r.text(0),
        )
        .map_err(text)?;
    to.execute_batch("SET session_replication_role = replica")
        .map_err(text)?;
    let mut copied = 0;
    for table in &tables {
        let columns = from
            .query_map(&format!("PRAGMA table_info({table})"), &[], |r| {
                Ok((r.text(1)?, r.text(2)?.to_ascii_uppercase()))
            })
            .map_err(text)?;
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let sql = format!("SELECT {} FROM {table}", names.join(", "));
        let rows = from
            .query_map(&sql, &[], |r| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, ty))| read(r, i, ty))
                    .collect::<Result<Vec<Value>, DbError>>()
            })
            .map_err(text)?;
        if rows.is_empty() {
            continue;
        }
        if !existing.contains(table) {
            return Err(format!(
                "table {table} holds {} rows in {} and does not exist in {target}",
                rows.len(),
                path.display()
            ));
        }
        copied += to.insert_rows(table, &names, rows).map_err(text)?;
    }
    to.execute_batch("SET session_replication_role = origin")
        .map_err(text)?;
    let identities = to
        .query_map(
            "SELECT table_name, column_name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND is_identity = 'YES'",
            &[],
            |r| Ok((r.text(0)?, r.text(1)?)),
        )
        .map_err(text)?;
    for (table, column) in identities {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), max({column})) \
             FROM {table} HAVING max({column}) IS NOT NULL"
        );
        to.query_map(&sql, &[], |r| r.i64(0)).map_err(text)?;
    }
    Ok(copied)
}

/// Column `i` of a SQLite row as the value its declared type says.
fn read(r: &crate::db::Row<'_>, i: usize, ty: &str) -> Result<Value, DbError> {
    let value = if ty.contains("INT") {
        r.opt_i64(i)?.map(Value::I64)
    } else if ty.contains("REAL") || ty.contains("FLOA") || ty.contains("DOUB") {
        r.opt_f64(i)?.map(Value::F64)
    } else if ty.contains("BLOB") {
        r.opt_blob(i)?.map(Value::Blob)
    } else {
        r.opt_text(i)?.map(Value::Text)
    };
    Ok(value.unwrap_or(Value::Null))
}
