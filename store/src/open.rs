//! Opening a store: a SQLite file in a results directory ([`Store::open`],
//! [`Store::open_read_only`]), a PostgreSQL database ([`Store::open_postgres`]), or whichever a
//! `--results` argument names ([`Store::open_location`], [`Store::open_location_read_only`]).
//!
//! Opening for writing creates what is missing and brings the schema up to date (SQLite: in one
//! `BEGIN IMMEDIATE` transaction; PostgreSQL: in one transaction under an advisory lock, so two
//! coordinators starting together migrate once). Opening for reading creates nothing and refuses a
//! store whose schema is older or newer than this build's, with what to do.

use crate::db::pg::{self, Timeouts};
use crate::db::Db;
use crate::error::StoreError;
use crate::location::{Location, PgTarget};
use crate::schema;
use crate::store::Store;
use std::path::{Path, PathBuf};

/// File name of the database inside the results directory.
pub const DB_FILE: &str = "hallmark.sqlite";

impl Store {
    /// Opens `dir/hallmark.sqlite` for writing, creating the directory and the database if needed and
    /// bringing the schema up to date.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let db = Db::from_sqlite(schema::open_write(&path)?, path.display().to_string());
        Ok(Store::from_db(db, path))
    }

    /// Opens an existing `dir/hallmark.sqlite` for reading only (`hallmark runs list/show` while a
    /// coordinator writes). Creates nothing; writer calls fail.
    pub fn open_read_only(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(DB_FILE);
        let db = Db::from_sqlite(schema::open_read(&path)?, path.display().to_string());
        Ok(Store::from_db(db, path))
    }

    /// Opens the hallmark store in a PostgreSQL database for writing: connects, checks that the
    /// database is hallmark's (or empty) and brings the schema up to date ([`pg::open`], the same
    /// migrations as SQLite's, their types mapped by [`crate::db::sql::ddl_to_pg`]).
    /// [`Store::path`] is then the URL without its password.
    pub fn open_postgres(target: &PgTarget, timeouts: &Timeouts) -> Result<Store, StoreError> {
        let mut db = pg::open(target, timeouts, &PG_MIGRATIONS).map_err(connect_error)?;
        let path = PathBuf::from(db.store());
        db.execute_batch(&crate::telemetry::stage_ddl())
            .map_err(|e| StoreError::db(&path, "creating the telemetry stage", e))?;
        Ok(Store::from_db(db, path))
    }

    /// Opens an existing hallmark store in a PostgreSQL database for reading only: nothing is
    /// created or migrated, and the session's transactions are read-only ([`pg::open_read`]).
    pub fn open_postgres_read_only(
        target: &PgTarget,
        timeouts: &Timeouts,
    ) -> Result<Store, StoreError> {
        let supported = PG_MIGRATIONS.len() as i64;
        let db = pg::open_read(target, timeouts, supported).map_err(connect_error)?;
        let path = PathBuf::from(db.store());
        Ok(Store::from_db(db, path))
    }

    /// Opens what a `--results` argument names for writing ([`Store::open`] or
    /// [`Store::open_postgres`] with the default timeouts).
    pub fn open_location(location: &Location) -> Result<Store, StoreError> {
        match location {
            Location::Dir(dir) => Store::open(dir),
            Location::Postgres(target) => Store::open_postgres(target, &Timeouts::default()),
        }
    }

    /// Opens what a `--results` argument names for reading only ([`Store::open_read_only`] or
    /// [`Store::open_postgres_read_only`] with the default timeouts).
    pub fn open_location_read_only(location: &Location) -> Result<Store, StoreError> {
        match location {
            Location::Dir(dir) => Store::open_read_only(dir),
            Location::Postgres(target) => {
                Store::open_postgres_read_only(target, &Timeouts::default())
            }
        }
    }
}

fn connect_error(e: pg::ConnectError) -> StoreError {
    StoreError::Connect(Box::new(e))
}

/// The schema's migrations for PostgreSQL: the same text as SQLite's ([`schema::MIGRATIONS`]),
/// mapped by `Db::execute_batch`. Version 3 also drops the version 1 table `phase_histograms`,
/// which a PostgreSQL store never filled (SQLite drops it when empty).
const PG_MIGRATIONS: [pg::Migration; 8] = [
    |db| db.execute_batch(schema::MIGRATIONS[0]),
    |db| db.execute_batch(schema::MIGRATIONS[1]),
    |db| {
        db.execute_batch(schema::MIGRATIONS[2])?;
        db.execute_batch("DROP TABLE phase_histograms")
    },
    |db| db.execute_batch(schema::MIGRATIONS[3]),
    // Version 5: a PostgreSQL store has never held row telemetry (its ingest is columnar only), so
    // the new batch table replaces the empty row tables without a conversion.
    |db| {
        db.execute_batch(schema::MIGRATIONS[4])?;
        db.execute_batch(schema::V5_FINISH)
    },
    |db| db.execute_batch(schema::MIGRATIONS[5]),
    |db| db.execute_batch(schema::MIGRATIONS[6]),
    |db| db.execute_batch(schema::MIGRATIONS[7]),
];

// A schema version added for SQLite needs its PostgreSQL step here too.
const _: () = assert!(PG_MIGRATIONS.len() == schema::MIGRATIONS.len());
