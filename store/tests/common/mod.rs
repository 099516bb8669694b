#![allow(dead_code)]

//! What the store's integration tests share: the throw-away PostgreSQL server
//! (`hallmark_store::testing::pg`), skipped outside CI and failing in CI when PostgreSQL is missing
//! (the root crate's `tests/common/prereq.rs`), and both backends side by side.

#[path = "../../../tests/common/prereq.rs"]
pub mod prereq;

use hallmark_store::db::Db;
use hallmark_store::testing::pg::{self, PgServer, TestDb, Unavailable};

/// The test process's server; `None` (after saying why) when PostgreSQL is missing outside CI.
pub fn server() -> Option<&'static PgServer> {
    match pg::shared() {
        Ok(s) => Some(s),
        Err(Unavailable::Missing(why)) => {
            prereq::missing(&why);
            None
        }
        Err(Unavailable::Broken(why)) => panic!("the test PostgreSQL server: {why}"),
    }
}

/// A fresh PostgreSQL database, `None` when skipping.
pub fn database() -> Option<TestDb> {
    hallmark_store::testing::stores::postgres_database()
}

/// One connection per backend: SQLite in memory, and PostgreSQL when there is a server. The
/// `TestDb` lives as long as its connection.
pub struct Backend {
    pub db: Db,
    _pg: Option<TestDb>,
}

pub fn backends() -> Vec<Backend> {
    let sqlite = rusqlite::Connection::open_in_memory().expect("SQLite in memory");
    let mut out = vec![Backend {
        db: Db::from_sqlite(sqlite, ":memory:"),
        _pg: None,
    }];
    if let Some(test_db) = database() {
        out.push(Backend {
            db: test_db.connect(),
            _pg: Some(test_db),
        });
    }
    out
}
