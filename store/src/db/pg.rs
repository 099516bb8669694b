//! Connecting to a PostgreSQL store, recognising it as hallmark's, and migrating it.
//!
//! [`connect`] makes a [`Db`] with bounded waits (connect timeout from the [`PgTarget`], a statement
//! timeout, TCP keepalives) and turns the client's failures into [`ConnectError`]s that name the store
//! (its URL without password) and say what to do: server unreachable or refusing, wrong or missing
//! credentials, database missing.
//!
//! A hallmark database holds the table [`META_TABLE`] (`key TEXT PRIMARY KEY, value TEXT`) with
//! `application_id` = [`APPLICATION_ID`] and `schema_version`; [`open`] refuses a database holding
//! other tables without it, one whose `application_id` differs, and one whose schema is newer than the
//! binary, and migrates an older one. Migrations run in one transaction holding
//! `pg_advisory_xact_lock(`[`MIGRATION_LOCK`]`)`, so processes opening the same database at once
//! migrate it once, one after the other; the wait for the lock is bounded by `lock_timeout`.

use super::{Db, DbError, Value};
use crate::location::PgTarget;
use postgres::error::SqlState;
use std::time::Duration;

/// The table that marks a database as hallmark's.
pub const META_TABLE: &str = "hallmark_meta";
/// `application_id` in [`META_TABLE`]: the same "HLMK" as SQLite's `PRAGMA application_id`.
pub const APPLICATION_ID: &str = "HLMK";
/// The advisory lock key migrations hold: "HLMK" in ASCII.
pub const MIGRATION_LOCK: i64 = 0x484C_4D4B;

/// One migration: takes the schema from version `i` to `i + 1` (its index in the list is `i`).
pub type Migration = fn(&mut Db) -> Result<(), DbError>;

/// Bounds on waiting, beyond the connect timeout of the [`PgTarget`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// Longest a single statement may run (`statement_timeout`).
    pub statement: Duration,
    /// Longest to wait for another process's migration (`lock_timeout` while migrating).
    pub migration_lock: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            statement: Duration::from_secs(600),
            migration_lock: Duration::from_secs(120),
        }
    }
}

/// Why a PostgreSQL store could not be opened. Each names the store and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "{store}: cannot reach the PostgreSQL server ({why}); check that it runs and listens on that \
         host and port (the URL, or PGHOST and PGPORT) and that nothing blocks the way"
    )]
    Unreachable { store: String, why: String },
    #[error(
        "{store}: the PostgreSQL server refuses connections ({why}); retry when it accepts them, or ask \
         its administrator"
    )]
    Refused { store: String, why: String },
    #[error(
        "{store}: the server refused user {user}'s credentials ({why}); check the user name and the \
         password in PGPASSWORD or the password file (PGPASSFILE, or ~/.pgpass, mode 0600)"
    )]
    Credentials {
        store: String,
        user: String,
        why: String,
    },
    #[error(
        "{store}: the server asks for a password and none was found; put it in PGPASSWORD or in a \
         password file (PGPASSFILE, or ~/.pgpass with mode 0600: HOST:PORT:DB:USER:PASSWORD)"
    )]
    NoPassword { store: String },
    #[error(
        "{store}: database {dbname} does not exist; create it (createdb {dbname}, or CREATE DATABASE \
         {dbname}) or name an existing one"
    )]
    NoDatabase { store: String, dbname: String },
    #[error(
        "{store}: this database holds tables of another application ({tables}) and no {META_TABLE} \
         table; hallmark writes only into its own databases: name a new, empty database"
    )]
    Foreign { store: String, tables: String },
    #[error(
        "{store}: {META_TABLE} names application {found:?}, not hallmark's {APPLICATION_ID:?}; \
         name a database of hallmark's, or a new, empty one"
    )]
    ForeignApplication { store: String, found: String },
    #[error(
        "{store}: {META_TABLE} holds a schema version hallmark cannot read ({found:?}); the table was \
         changed by hand: restore it or use a new database"
    )]
    BadVersion { store: String, found: String },
    #[error(
        "{store}: the schema is at version {found}, newer than this hallmark supports ({supported}); \
         use the hallmark that wrote it, or a newer one"
    )]
    SchemaNewer {
        store: String,
        found: i64,
        supported: i64,
    },
    #[error(
        "{store}: another process has held the migration lock for over {waited:?}; retry when it is \
         done (pg_locks shows the holder)"
    )]
    MigrationLocked { store: String, waited: Duration },
    #[error(
        "{store}: the database holds no hallmark store yet; run a plan or `hallmark demo` with \
         --results naming it first, or name the database that holds the runs"
    )]
    NoStore { store: String },
    #[error(
        "{store}: the schema is at version {found}, older than this hallmark's {supported}; open it \
         once for writing (run a plan or `hallmark demo` with --results naming it) to upgrade it"
    )]
    SchemaOlder {
        store: String,
        found: i64,
        supported: i64,
    },
    #[error("{store}: {why}")]
    Other { store: String, why: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What a database holds, read by [`inspect`].
#[derive(Debug, Clone, PartialEq)]
pub enum MetaState {
    /// No tables at all: a new database for hallmark.
    Empty,
    /// hallmark's, at this schema version.
    Hallmark { version: i64 },
}

/// Connects, with the target's connect timeout and `timeouts.statement` as statement timeout.
pub fn connect(target: &PgTarget, timeouts: &Timeouts) -> Result<Db, ConnectError> {
    let store = target.to_string();
    let mut config = postgres::Config::new();
    if target.host.starts_with('/') {
        config.host_path(&target.host);
    } else {
        config.host(&target.host);
    }
    config
        .port(target.port)
        .user(&target.user)
        .dbname(&target.dbname)
        .connect_timeout(target.connect_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .tcp_user_timeout(Duration::from_secs(60))
        .ssl_mode(postgres::config::SslMode::Disable)
        .application_name(target.application_name.as_deref().unwrap_or("hallmark"))
        .options(&format!(
            "-c statement_timeout={}",
            timeouts.statement.as_millis()
        ));
    if let Some(p) = &target.password {
        config.password(p.expose());
    }
    let client = config
        .connect(postgres::NoTls)
        .map_err(|e| classify(target, &store, e))?;
    Ok(Db::from_postgres(client, store))
}

/// Turns a failed connect into what the person has to do.
fn classify(target: &PgTarget, store: &str, e: postgres::Error) -> ConnectError {
    let store = store.to_owned();
    if let Some(db) = e.as_db_error() {
        let why = db.message().to_owned();
        let code = db.code();
        return if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            ConnectError::Credentials {
                store,
                user: target.user.clone(),
                why,
            }
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            ConnectError::NoDatabase {
                store,
                dbname: target.dbname.clone(),
            }
        } else if *code == SqlState::CANNOT_CONNECT_NOW || *code == SqlState::TOO_MANY_CONNECTIONS {
            ConnectError::Refused { store, why }
        } else {
            ConnectError::Other { store, why }
        };
    }
    // The client's error says "invalid configuration" or "error connecting to server"; the cause is
    // in its source chain.
    let mut why = e.to_string();
    let mut io = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    for _ in 0..8 {
        let Some(s) = source else { break };
        io |= s.is::<std::io::Error>();
        why = format!("{why}: {s}");
        source = s.source();
    }
    if why.contains("password missing") {
        return ConnectError::NoPassword { store };
    }
    if io {
        return ConnectError::Unreachable { store, why };
    }
    if why.contains("timed out") || why.contains("timeout") {
        return ConnectError::Unreachable { store, why };
    }
    ConnectError::Other { store, why }
}

/// Connects, checks that the database is hallmark's (or empty), and migrates it to
/// `migrations.len()`, serialised with other processes by an advisory lock.
pub fn open(
    target: &PgTarget,
    timeouts: &Timeouts,
    migrations: &[Migration],
) -> Result<Db, ConnectError> {
    let mut db = connect(target, timeouts)?;
    migrate(&mut db, timeouts, migrations)?;
    Ok(db)
}

/// Connects for reading only: the session's transactions are read-only, so a writer call fails in
/// the server, and nothing is created or migrated. A database without a hallmark store, or with
/// another schema version than `supported`, is refused with what to do.
pub fn open_read(
    target: &PgTarget,
    timeouts: &Timeouts,
    supported: i64,
) -> Result<Db, ConnectError> {
    let mut db = connect(target, timeouts)?;
    db.execute_batch("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")?;
    let store = db.store().to_owned();
    match inspect(&mut db)? {
        MetaState::Empty => Err(ConnectError::NoStore { store }),
        MetaState::Hallmark { version } if version > supported => Err(ConnectError::SchemaNewer {
            store,
            found: version,
            supported,
        }),
        MetaState::Hallmark { version } if version < supported => Err(ConnectError::SchemaOlder {
            store,
            found: version,
            supported,
        }),
        MetaState::Hallmark { .. } => Ok(db),
    }
}

/// Brings `db` to schema version `migrations.len()` (see [`open`]).
pub fn migrate(
    db: &mut Db,
    timeouts: &Timeouts,
    migrations: &[Migration],
) -> Result<(), ConnectError> {
    let supported = migrations.len() as i64;
    db.transaction(|db| {
        let lock_ms = timeouts.migration_lock.as_millis().max(1);
        db.execute_batch(&format!("SET LOCAL lock_timeout = {lock_ms}"))?;
        match db.execute("SELECT pg_advisory_xact_lock(?1)", &[Value::I64(MIGRATION_LOCK)]) {
            Ok(_) => {}
            Err(DbError::Postgres { source, .. })
                if source.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) =>
            {
                return Err(ConnectError::MigrationLocked {
                    store: db.store().to_owned(),
                    waited: timeouts.migration_lock,
                })
            }
            Err(e) => return Err(e.into()),
        }
        let version = match inspect(db)? {
            MetaState::Empty => {
                db.execute_batch(&format!(
                    "CREATE TABLE {META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                ))?;
                db.execute(
                    &format!("INSERT INTO {META_TABLE} (key, value) VALUES ('application_id', ?1), ('schema_version', '0')"),
                    &[Value::from(APPLICATION_ID)],
                )?;
                0
            }
            MetaState::Hallmark { version } => version,
        };
        if version > supported {
            return Err(ConnectError::SchemaNewer {
                store: db.store().to_owned(),
                found: version,
                supported,
            });
        }
        for (i, step) in migrations.iter().enumerate().skip(version as usize) {
            step(db)?;
            db.execute(
                &format!("UPDATE {META_TABLE} SET value = ?1 WHERE key = 'schema_version'"),
                &[Value::Text((i + 1).to_string())],
            )?;
        }
        if version < supported {
            tracing::info!(store = %db.store(), "schema migrated from version {version} to {supported}");
        }
        Ok(())
    })
}

/// What the database holds: empty, or hallmark's at some version; anything else is an error.
pub fn inspect(db: &mut Db) -> Result<MetaState, ConnectError> {
    let tables = db.query_map(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() \
         ORDER BY table_name",
        &[],
        |r| r.text(0),
    )?;
    if tables.is_empty() {
        return Ok(MetaState::Empty);
    }
    let store = db.store().to_owned();
    if !tables.iter().any(|t| t == META_TABLE) {
        let mut shown: Vec<_> = tables.iter().take(5).cloned().collect();
        if tables.len() > shown.len() {
            shown.push(format!("and {} more", tables.len() - 5));
        }
        return Err(ConnectError::Foreign {
            store,
            tables: shown.join(", "),
        });
    }
    let meta = db.query_map(&format!("SELECT key, value FROM {META_TABLE}"), &[], |r| {
        Ok((r.text(0)?, r.opt_text(1)?))
    })?;
    let get = |key: &str| {
        meta.iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.clone())
    };
    let app = get("application_id").unwrap_or_default();
    if app != APPLICATION_ID {
        return Err(ConnectError::ForeignApplication { store, found: app });
    }
    let raw = get("schema_version").unwrap_or_default();
    let version = raw
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or(ConnectError::BadVersion { store, found: raw })?;
    Ok(MetaState::Hallmark { version })
}
