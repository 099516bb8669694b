//! Errors of the run store.
//!
//! Every error names the database file it concerns and, where the user can do something about it, says
//! what to do. SQLite errors are classified on the way in ([`StoreError::sql`]): a busy or locked
//! database becomes [`StoreError::Locked`], a file that is not SQLite becomes [`StoreError::NotHallmark`],
//! a full disk or a failed write (SQLite reports `ENOSPC` as `SQLITE_FULL`, and `EFBIG`, a file at its
//! size limit, as a write I/O error) becomes [`StoreError::DiskFull`]; so does PostgreSQL's
//! `disk_full` (SQLSTATE 53100).

use crate::db::DbError;
use rusqlite::ErrorCode;
use std::path::{Path, PathBuf};

/// What went wrong in the run store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the results directory {dir}: {source}; check that the parent exists and is writable, or choose another results directory")]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("no results database at {path}; run a plan first, or point at the directory that holds hallmark.sqlite")]
    Missing { path: PathBuf },

    #[error("{path} is not a hallmark results database ({detail}); move the file away or choose another results directory")]
    NotHallmark { path: PathBuf, detail: String },

    #[error("{path} was written by a newer hallmark (schema version {found}; this build reads up to {supported}); use a newer hallmark to read it")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error("{path} has schema version {found}, older than this build's {supported}; open it once for writing (e.g. run a plan) to upgrade it")]
    NeedsUpgrade {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error("{path} is locked by another hallmark process (while {op}); wait for it to finish or use another results directory")]
    Locked { path: PathBuf, op: &'static str },

    /// The store cannot grow: its disk is full, or a write failed as it does then.
    #[error(
        "cannot write to the run store {path} while {op}: {cause}; free space on the disk that \
         holds it, or store the runs elsewhere with room (another results directory, --results), \
         then run the plan again"
    )]
    DiskFull {
        path: PathBuf,
        op: &'static str,
        cause: &'static str,
    },

    #[error("no run {run_id:?} in {path}; list the stored runs with `hallmark runs list`")]
    UnknownRun { path: PathBuf, run_id: String },

    #[error("run id {query:?} matches {count} runs in {path}; give more characters of the id (see `hallmark runs list`)")]
    AmbiguousRun {
        path: PathBuf,
        query: String,
        count: usize,
    },

    #[error("node {node_id} is not registered in run {run_id}; store its probe (add_probe) before its data")]
    UnknownNode { run_id: String, node_id: String },

    #[error("invalid value for {what}: {detail}")]
    Invalid { what: &'static str, detail: String },

    #[error("corrupt record in {path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },

    #[error("SQLite error in {path} while {op}: {source}")]
    Sqlite {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    /// A PostgreSQL store that could not be opened (unreachable, refused, not hallmark's, newer);
    /// the message names the store and the fix.
    #[error(transparent)]
    Connect(Box<crate::db::pg::ConnectError>),

    /// A failure of the connection interface that is not SQLite's own (PostgreSQL's, or a misuse);
    /// its message names the store and the statement.
    #[error("while {op}: {source}")]
    Db {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: Box<DbError>,
    },
}

impl StoreError {
    /// Classifies a SQLite error that happened while doing `op` on the database at `path`.
    pub(crate) fn sql(path: &Path, op: &'static str, source: rusqlite::Error) -> StoreError {
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => StoreError::Locked {
                path: path.to_path_buf(),
                op,
            },
            Some(ErrorCode::NotADatabase) => StoreError::NotHallmark {
                path: path.to_path_buf(),
                detail: "the file is not an SQLite database".into(),
            },
            Some(ErrorCode::DiskFull) => StoreError::DiskFull {
                path: path.to_path_buf(),
                op,
                cause: "the disk is full",
            },
            _ if failed_write(&source) => StoreError::DiskFull {
                path: path.to_path_buf(),
                op,
                cause: "writing the file failed (disk I/O error: the disk is full, the file \
                        reached its size limit, or the device failed)",
            },
            _ => StoreError::Sqlite {
                path: path.to_path_buf(),
                op,
                source,
            },
        }
    }

    /// Classifies an error of the connection interface that happened while doing `op` on the store
    /// at `path`: SQLite's errors as [`StoreError::sql`] does, a column that cannot be read as
    /// [`StoreError::Corrupt`], the rest as [`StoreError::Db`].
    pub(crate) fn db(path: &Path, op: &'static str, source: DbError) -> StoreError {
        match source {
            DbError::Sqlite { source, .. } => StoreError::sql(path, op, source),
            DbError::Postgres { source, .. }
                if source.code() == Some(&postgres::error::SqlState::DISK_FULL) =>
            {
                StoreError::DiskFull {
                    path: path.to_path_buf(),
                    op,
                    cause: "the database server's disk is full",
                }
            }
            DbError::Column { .. } => StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: source.to_string(),
            },
            other => StoreError::Db {
                path: path.to_path_buf(),
                op,
                source: Box::new(other),
            },
        }
    }

    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> StoreError {
        StoreError::Invalid {
            what,
            detail: detail.into(),
        }
    }
}

/// Whether SQLite failed to write or grow a file (the database, its journal or its shared
/// memory): what a full disk or a file at its size limit (`EFBIG`) gives besides `SQLITE_FULL`.
fn failed_write(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi;
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _) if matches!(
            f.extended_code,
            ffi::SQLITE_IOERR_WRITE | ffi::SQLITE_IOERR_TRUNCATE | ffi::SQLITE_IOERR_SHMSIZE
        )
    )
}

/// Converts an unsigned value to SQLite's signed 64-bit integer, or says which value did not fit.
pub(crate) fn to_i64(what: &'static str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v)
        .map_err(|_| StoreError::invalid(what, format!("{v} is larger than {}", i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> DbError {
        DbError::Sqlite {
            store: "/r/hallmark.sqlite".into(),
            statement: "INSERT INTO runs …".into(),
            source: rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None),
        }
    }

    #[test]
    fn db_errors_are_classified_as_sqlite_errors_were() {
        let path = Path::new("/r/hallmark.sqlite");
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED] {
            let e = StoreError::db(path, "storing a run", sqlite(code));
            assert!(
                matches!(
                    e,
                    StoreError::Locked {
                        op: "storing a run",
                        ..
                    }
                ),
                "{e:?}"
            );
        }
        let e = StoreError::db(path, "opening", sqlite(rusqlite::ffi::SQLITE_NOTADB));
        assert!(matches!(e, StoreError::NotHallmark { .. }), "{e:?}");
        let e = StoreError::db(path, "storing", sqlite(rusqlite::ffi::SQLITE_CORRUPT));
        assert!(matches!(e, StoreError::Sqlite { .. }), "{e:?}");
        let column = DbError::Column {
            column: "status".into(),
            index: 6,
            expected: "text".into(),
            found: "an integer".into(),
            statement: "SELECT …".into(),
        };
        let e = StoreError::db(path, "reading a run", column);
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
        assert!(e.to_string().contains("column status"), "{e}");
        let usage = DbError::Usage {
            store: "postgres://u@h/db".into(),
            statement: "SELECT 1".into(),
            what: "a misuse".into(),
        };
        let e = StoreError::db(Path::new("postgres://u@h/db"), "reading", usage);
        let msg = e.to_string();
        assert!(
            msg.contains("while reading") && msg.contains("postgres://u@h/db"),
            "{msg}"
        );
    }

    #[test]
    fn a_full_disk_or_a_failed_write_names_the_store_and_the_fix() {
        let path = Path::new("/r/hallmark.sqlite");
        for (code, cause) in [
            (rusqlite::ffi::SQLITE_FULL, "the disk is full"),
            // What SQLite makes of EFBIG (a file at its RLIMIT_FSIZE) on a write.
            (
                rusqlite::ffi::SQLITE_IOERR_WRITE,
                "the file reached its size limit",
            ),
            (rusqlite::ffi::SQLITE_IOERR_TRUNCATE, "the disk is full"),
            (rusqlite::ffi::SQLITE_IOERR_SHMSIZE, "the disk is full"),
        ] {
            let e = StoreError::db(path, "committing telemetry", sqlite(code));
            assert!(matches!(e, StoreError::DiskFull { .. }), "{code}: {e:?}");
            let msg = e.to_string();
            for part in [
                "/r/hallmark.sqlite",
                "while committing telemetry",
                cause,
                "free space",
                "another results directory",
            ] {
                assert!(msg.contains(part), "{part:?} not in {msg}");
            }
        }
        // A read that fails is not a full disk.
        let e = StoreError::db(path, "reading", sqlite(rusqlite::ffi::SQLITE_IOERR_READ));
        assert!(matches!(e, StoreError::Sqlite { .. }), "{e:?}");
    }
}
