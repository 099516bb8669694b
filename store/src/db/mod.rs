//! One connection interface over both backends: [`Db`] holds a SQLite connection (a results
//! directory's file) or a PostgreSQL client (a shared database), and runs the same SQL on either.
//!
//! SQL is written once, in the dialect both accept, with SQLite's numbered placeholders `?1, ?2…`
//! (turned into `$1, $2…` for PostgreSQL by [`sql::placeholders_to_pg`]); the schema is written in
//! SQLite's types and mapped by [`sql::ddl_to_pg`]. Parameters are [`Value`]s, rows are read through
//! [`Row`]'s typed getters. [`Db::for_each`] streams a result on both backends (SQLite steps its
//! statement; PostgreSQL's rows arrive through `query_raw`, whose client reads the socket only as
//! fast as rows are taken). [`Db::insert_rows`] bulk-inserts with binary `COPY` on PostgreSQL and
//! multi-row prepared `INSERT`s on SQLite. Connecting to PostgreSQL and checking that a database is
//! hallmark's is in [`pg`].
//!
//! Statements and reads take `&self` (the store's readers do); transactions take `&mut self`.
//! [`Db::transaction_immediate`] takes SQLite's write lock at `BEGIN`. On PostgreSQL one
//! statement runs at a time: a statement started from a row callback of [`Db::for_each`] is a
//! [`DbError::Usage`] (SQLite runs it).

pub mod pg;
pub mod sql;
mod value;

pub use value::{Row, Value};

use postgres::types::ToSql;
use std::cell::{RefCell, RefMut};
use std::collections::HashMap;
use value::RowInner;

/// What a statement on either backend can fail with. Every variant names the statement (its start)
/// and, where the connection knows it, the store.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{store}: SQLite failed on `{statement}`: {source}")]
    Sqlite {
        store: String,
        statement: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{store}: PostgreSQL failed on `{statement}`: {source}")]
    Postgres {
        store: String,
        statement: String,
        #[source]
        source: postgres::Error,
    },
    #[error("column {column} (#{index}) of `{statement}`: expected {expected}, found {found}")]
    Column {
        column: String,
        index: usize,
        expected: String,
        found: String,
        statement: String,
    },
    /// A misuse of the interface by the store's own code (a bug, never bad input).
    #[error("{store}: {what} (in `{statement}`)")]
    Usage {
        store: String,
        statement: String,
        what: String,
    },
}

impl DbError {
    /// Whether the statement broke a constraint (a foreign key, a unique key, NOT NULL, a CHECK).
    pub fn is_constraint_violation(&self) -> bool {
        match self {
            DbError::Sqlite { source, .. } => {
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
            }
            DbError::Postgres { source, .. } => {
                source.code().is_some_and(|c| c.code().starts_with("23"))
            }
            _ => false,
        }
    }
}

/// Which backend a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection to a store, on either backend.
pub struct Db {
    conn: Conn,
    /// The store as shown to people: a file path or a URL without its password.
    store: String,
    in_transaction: bool,
}

enum Conn {
    Sqlite(rusqlite::Connection),
    /// Behind a `RefCell` so that reads take `&self` like SQLite's (a row callback that runs
    /// another statement on the same PostgreSQL connection gets a [`DbError::Usage`], not a panic).
    Postgres(RefCell<PgConn>),
}

struct PgConn {
    /// Dropped on a thread of its own ([`PgConn`]'s `Drop`).
    client: std::mem::ManuallyDrop<Box<postgres::Client>>,
    /// Prepared statements by their SQL as written (`?N`), so a statement run per batch is
    /// parsed once per connection.
    statements: HashMap<String, postgres::Statement>,
}

impl Drop for PgConn {
    /// The sync client ends its connection by blocking on its own runtime, which panics on a
    /// thread of another tokio runtime (a store dropped inside async code). It is dropped on a
    /// short-lived thread of its own instead, and waited for: the connection is closed when this
    /// returns.
    fn drop(&mut self) {
        // SAFETY: `client` is taken once, here, and never used again: `self` is being dropped.
        let client = unsafe { std::mem::ManuallyDrop::take(&mut self.client) };
        let closer = std::thread::Builder::new()
            .name("hallmark-pg-close".into())
            .spawn(move || drop(client));
        match closer {
            Ok(handle) => {
                if handle.join().is_err() {
                    tracing::warn!("closing a PostgreSQL connection panicked");
                }
            }
            Err(e) => tracing::warn!(
                "no thread to close a PostgreSQL connection on ({e}); closing it on this thread"
            ),
        }
    }
}

/// How many prepared PostgreSQL statements a connection keeps before it forgets them all.
const PG_STATEMENT_CACHE: usize = 256;
/// Most rows per multi-row `INSERT` on SQLite.
const SQLITE_ROWS_PER_INSERT: usize = 500;
/// SQLite's limit on parameters per statement (SQLITE_MAX_VARIABLE_NUMBER of the bundled build).
const SQLITE_MAX_PARAMS: usize = 32_766;

/// The first line of a statement, whitespace collapsed, at most 80 characters: what errors show.
pub(crate) fn statement_head(sql: &str) -> String {
    let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

impl Db {
    /// A SQLite connection; `store` is how errors name it (the file's path).
    pub fn from_sqlite(conn: rusqlite::Connection, store: impl Into<String>) -> Db {
        Db {
            conn: Conn::Sqlite(conn),
            store: store.into(),
            in_transaction: false,
        }
    }

    /// A PostgreSQL client; `store` is how errors name it (the URL without password). Use
    /// [`pg::connect`] to make one with hallmark's timeouts and errors.
    pub fn from_postgres(client: postgres::Client, store: impl Into<String>) -> Db {
        Db {
            conn: Conn::Postgres(RefCell::new(PgConn {
                client: std::mem::ManuallyDrop::new(Box::new(client)),
                statements: HashMap::new(),
            })),
            store: store.into(),
            in_transaction: false,
        }
    }

    pub fn backend(&self) -> Backend {
        match self.conn {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres { .. } => Backend::Postgres,
        }
    }

    /// The store as errors and logs name it (never with a password).
    pub fn store(&self) -> &str {
        &self.store
    }

    /// Runs several statements without parameters (schema, migrations). On PostgreSQL the schema's
    /// SQLite types are mapped first ([`sql::ddl_to_pg`]), and prepared statements are forgotten
    /// (a changed table invalidates them).
    pub fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        match &mut self.conn {
            Conn::Sqlite(c) => c
                .execute_batch(sql)
                .map_err(|e| sqlite_err(&self.store, sql, e)),
            Conn::Postgres(pg) => {
                let pg = pg.get_mut();
                pg.statements.clear();
                pg.client
                    .batch_execute(&sql::ddl_to_pg(sql))
                    .map_err(|e| pg_err(&self.store, sql, e))
            }
        }
    }

    /// Runs one statement; returns the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match &self.conn {
            Conn::Sqlite(c) => c
                .prepare_cached(sql)
                .and_then(|mut s| s.execute(rusqlite::params_from_iter(params)))
                .map(|n| n as u64)
                .map_err(|e| sqlite_err(&self.store, sql, e)),
            Conn::Postgres(pg) => {
                let mut pg = self.pg_borrow(pg, sql)?;
                let stmt = pg_prepare(&mut pg, sql).map_err(|e| pg_err(&self.store, sql, e))?;
                pg.client
                    .execute(&stmt, &pg_params(params))
                    .map_err(|e| pg_err(&self.store, sql, e))
            }
        }
    }

    /// Every row of a query, each turned into a `T` by `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[Value],
        mut f: impl FnMut(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        let mut out = Vec::new();
        self.for_each(sql, params, |row| {
            out.push(f(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The one row of a query, `None` when there is none; more than one row is an error.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[Value],
        mut f: impl FnMut(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError> {
        let mut out = None;
        let mut rows = 0u64;
        self.for_each(sql, params, |row| {
            rows += 1;
            if rows == 1 {
                out = Some(f(row)?);
            }
            Ok(())
        })?;
        if rows > 1 {
            return Err(self.usage(
                sql,
                format!("expected at most one row, the query returned {rows}"),
            ));
        }
        Ok(out)
    }

    /// Calls `f` on each row as it arrives, without holding the result in memory; stops at the
    /// first error `f` returns. Returns the number of rows seen.
    pub fn for_each(
        &self,
        sql: &str,
        params: &[Value],
        mut f: impl FnMut(&Row<'_>) -> Result<(), DbError>,
    ) -> Result<u64, DbError> {
        let store = &self.store;
        let mut seen = 0u64;
        match &self.conn {
            Conn::Sqlite(c) => {
                let mut stmt = c
                    .prepare_cached(sql)
                    .map_err(|e| sqlite_err(store, sql, e))?;
                let mut rows = stmt
                    .query(rusqlite::params_from_iter(params))
                    .map_err(|e| sqlite_err(store, sql, e))?;
                while let Some(r) = rows.next().map_err(|e| sqlite_err(store, sql, e))? {
                    seen += 1;
                    f(&Row {
                        inner: RowInner::Sqlite(r),
                        statement: sql,
                    })?;
                }
            }
            Conn::Postgres(pg) => {
                use postgres::fallible_iterator::FallibleIterator;
                let mut pg = self.pg_borrow(pg, sql)?;
                let stmt = pg_prepare(&mut pg, sql).map_err(|e| pg_err(store, sql, e))?;
                let mut rows = pg
                    .client
                    .query_raw(&stmt, params.iter())
                    .map_err(|e| pg_err(store, sql, e))?;
                while let Some(r) = rows.next().map_err(|e| pg_err(store, sql, e))? {
                    seen += 1;
                    f(&Row {
                        inner: RowInner::Postgres(&r),
                        statement: sql,
                    })?;
                }
            }
        }
        Ok(seen)
    }

    /// Runs `f` in a transaction: committed when `f` returns `Ok`, rolled back when it returns
    /// `Err` (whose error is returned; a failed rollback is logged). Transactions do not nest.
    pub fn transaction<T, E: From<DbError>>(
        &mut self,
        f: impl FnOnce(&mut Db) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transaction_with("BEGIN", f)
    }

    /// [`Db::transaction`] that takes SQLite's write lock at once (`BEGIN IMMEDIATE`): a writer
    /// that would wait for another process's lock waits (up to the busy timeout) before doing any
    /// work, rather than failing half-way when a read turns into a write. On PostgreSQL, whose
    /// writers lock rows, not the database, it is a plain `BEGIN`.
    pub fn transaction_immediate<T, E: From<DbError>>(
        &mut self,
        f: impl FnOnce(&mut Db) -> Result<T, E>,
    ) -> Result<T, E> {
        let begin = match self.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        self.transaction_with(begin, f)
    }

    fn transaction_with<T, E: From<DbError>>(
        &mut self,
        begin: &str,
        f: impl FnOnce(&mut Db) -> Result<T, E>,
    ) -> Result<T, E> {
        if self.in_transaction {
            return Err(self
                .usage(begin, "a transaction inside a transaction".into())
                .into());
        }
        self.simple(begin)?;
        self.in_transaction = true;
        let result = f(self);
        self.in_transaction = false;
        match result {
            Ok(v) => {
                self.simple("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                if let Err(rollback) = self.simple("ROLLBACK") {
                    tracing::warn!(store = %self.store, "rolling back failed: {rollback}");
                }
                Err(e)
            }
        }
    }

    /// Whether a [`Db::transaction`] is open.
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Appends rows to `table`'s `columns`, each row one value per column. PostgreSQL: one binary
    /// `COPY … FROM STDIN BINARY` (atomic by itself). SQLite: multi-row prepared `INSERT`s, inside a
    /// transaction of their own unless one is open. Returns the number of rows written.
    pub fn insert_rows(
        &mut self,
        table: &str,
        columns: &[&str],
        rows: impl IntoIterator<Item = Vec<Value>>,
    ) -> Result<u64, DbError> {
        let what = format!("bulk insert into {table}");
        if columns.is_empty() || !is_identifier(table) || !columns.iter().all(|c| is_identifier(c))
        {
            return Err(self.usage(
                &what,
                format!("bad table or column names {table} {columns:?}"),
            ));
        }
        match self.backend() {
            Backend::Postgres => self.copy_in(table, columns, rows.into_iter()),
            Backend::Sqlite if self.in_transaction => {
                self.sqlite_inserts(table, columns, rows.into_iter())
            }
            Backend::Sqlite => {
                self.transaction(|db| db.sqlite_inserts(table, columns, rows.into_iter()))
            }
        }
    }

    fn copy_in(
        &mut self,
        table: &str,
        columns: &[&str],
        rows: impl Iterator<Item = Vec<Value>>,
    ) -> Result<u64, DbError> {
        let Conn::Postgres(pg) = &mut self.conn else {
            unreachable!("copy_in is called for PostgreSQL only")
        };
        let client = &mut pg.get_mut().client;
        let store = &self.store;
        let list = columns.join(", ");
        // The columns' types, which binary COPY must state, from the table itself.
        let probe = format!("SELECT {list} FROM {table} LIMIT 0");
        let types: Vec<_> = client
            .prepare(&probe)
            .map_err(|e| pg_err(store, &probe, e))?
            .columns()
            .iter()
            .map(|c| c.type_().clone())
            .collect();
        let copy = format!("COPY {table} ({list}) FROM STDIN BINARY");
        let sink = client.copy_in(&copy).map_err(|e| pg_err(store, &copy, e))?;
        let mut writer = postgres::binary_copy::BinaryCopyInWriter::new(sink, &types);
        for row in rows {
            if row.len() != columns.len() {
                // Dropping the unfinished writer aborts the COPY: nothing of it is stored.
                return Err(DbError::Usage {
                    store: store.clone(),
                    statement: copy,
                    what: format!(
                        "a row of {} values for {} columns",
                        row.len(),
                        columns.len()
                    ),
                });
            }
            writer
                .write_raw(row.iter())
                .map_err(|e| pg_err(store, &copy, e))?;
        }
        writer.finish().map_err(|e| pg_err(store, &copy, e))
    }

    fn sqlite_inserts(
        &mut self,
        table: &str,
        columns: &[&str],
        rows: impl Iterator<Item = Vec<Value>>,
    ) -> Result<u64, DbError> {
        let width = columns.len();
        let chunk = (SQLITE_MAX_PARAMS / width).clamp(1, SQLITE_ROWS_PER_INSERT);
        let mut buffer: Vec<Value> = Vec::with_capacity(chunk * width);
        let mut written = 0u64;
        for row in rows {
            if row.len() != width {
                let what = format!("a row of {} values for {width} columns", row.len());
                return Err(self.usage(&format!("INSERT INTO {table}"), what));
            }
            buffer.extend(row);
            if buffer.len() == chunk * width {
                written += self.execute(&multi_row_insert(table, columns, chunk), &buffer)?;
                buffer.clear();
            }
        }
        if !buffer.is_empty() {
            let rows = buffer.len() / width;
            written += self.execute(&multi_row_insert(table, columns, rows), &buffer)?;
        }
        Ok(written)
    }

    /// A statement without parameters or result (transaction control).
    fn simple(&mut self, sql: &str) -> Result<(), DbError> {
        match &mut self.conn {
            Conn::Sqlite(c) => c
                .execute_batch(sql)
                .map_err(|e| sqlite_err(&self.store, sql, e)),
            Conn::Postgres(pg) => pg
                .get_mut()
                .client
                .batch_execute(sql)
                .map_err(|e| pg_err(&self.store, sql, e)),
        }
    }

    /// The SQLite connection under this `Db` (`None` on PostgreSQL), for the store's code that is
    /// still written against rusqlite (telemetry ingest and scan, schema).
    pub(crate) fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.conn {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres(_) => None,
        }
    }

    /// The PostgreSQL connection for one statement; a statement started while another one's rows
    /// are being read (from a row callback) is refused rather than interleaved.
    fn pg_borrow<'c>(
        &self,
        pg: &'c RefCell<PgConn>,
        sql: &str,
    ) -> Result<RefMut<'c, PgConn>, DbError> {
        pg.try_borrow_mut().map_err(|_| {
            self.usage(
                sql,
                "a statement run while another statement's rows are read on the same PostgreSQL connection"
                    .into(),
            )
        })
    }

    fn usage(&self, sql: &str, what: String) -> DbError {
        DbError::Usage {
            store: self.store.clone(),
            statement: statement_head(sql),
            what,
        }
    }
}

use sql::is_identifier;

/// `INSERT INTO table (a, b) VALUES (?1, ?2), (?3, ?4)…` for `rows` rows.
fn multi_row_insert(table: &str, columns: &[&str], rows: usize) -> String {
    let width = columns.len();
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('?');
            sql.push_str(&(r * width + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

fn pg_prepare(pg: &mut PgConn, sql: &str) -> Result<postgres::Statement, postgres::Error> {
    if let Some(s) = pg.statements.get(sql) {
        return Ok(s.clone());
    }
    let stmt = pg.client.prepare(&sql::placeholders_to_pg(sql))?;
    if pg.statements.len() >= PG_STATEMENT_CACHE {
        pg.statements.clear();
    }
    pg.statements.insert(sql.to_owned(), stmt.clone());
    Ok(stmt)
}

fn pg_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn sqlite_err(store: &str, sql: &str, source: rusqlite::Error) -> DbError {
    DbError::Sqlite {
        store: store.to_owned(),
        statement: statement_head(sql),
        source,
    }
}

fn pg_err(store: &str, sql: &str, source: postgres::Error) -> DbError {
    DbError::Postgres {
        store: store.to_owned(),
        statement: statement_head(sql),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_insert_numbers_every_value() {
        assert_eq!(
            multi_row_insert("t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES (?1, ?2), (?3, ?4)"
        );
    }

    #[test]
    fn statement_head_is_one_short_line() {
        assert_eq!(statement_head("SELECT a\n   FROM t\n"), "SELECT a FROM t");
        let long = "x ".repeat(100);
        assert_eq!(statement_head(&long).chars().count(), 81);
    }
}
