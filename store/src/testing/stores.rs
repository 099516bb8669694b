//! Both backends side by side, for tests that must give the same results on each: [`stores`] opens
//! a fresh SQLite store in a temporary directory and, when a PostgreSQL server is at hand
//! ([`super::pg::shared`]), a fresh store in a database of its own. Without PostgreSQL the list
//! holds SQLite only, after saying `skipped: …` on stderr; in CI (`CI` set to anything but empty,
//! `0` or `false`) a missing PostgreSQL is a panic instead, so a suite that never ran on it cannot
//! pass as green.

use super::pg::{self, TestDb, Unavailable};
use crate::db::pg::Timeouts;
use crate::location::Location;
use crate::store::Store;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// One backend's store, with what keeps it alive (its directory, or its database).
pub struct TestStore {
    /// `"sqlite"` or `"postgres"`.
    pub backend: &'static str,
    pub store: Store,
    /// Where the store is, as `--results` would name it.
    pub location: Location,
    keep: Keep,
}

enum Keep {
    Dir(PathBuf),
    Pg(Box<TestDb>),
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Keep::Dir(dir) = &self.keep {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl TestStore {
    /// Opens the same store again for writing, as another process would.
    pub fn reopen(&self) -> Store {
        Store::open_location(&self.location)
            .unwrap_or_else(|e| panic!("reopening the {} store: {e}", self.backend))
    }

    /// Opens the same store again for reading only.
    pub fn reopen_read_only(&self) -> Store {
        Store::open_location_read_only(&self.location)
            .unwrap_or_else(|e| panic!("reopening the {} store to read: {e}", self.backend))
    }

    /// The PostgreSQL test database, `None` for SQLite.
    pub fn pg(&self) -> Option<&TestDb> {
        match &self.keep {
            Keep::Pg(db) => Some(db),
            Keep::Dir(_) => None,
        }
    }
}

/// A fresh store on each backend at hand (see the module's documentation); `name` tells the
/// temporary directory apart.
pub fn stores(name: &str) -> Vec<TestStore> {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hallmark-store-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let location = Location::Dir(dir.clone());
    let mut out = vec![TestStore {
        backend: "sqlite",
        store: Store::open(&dir).unwrap_or_else(|e| panic!("SQLite test store: {e}")),
        location,
        keep: Keep::Dir(dir),
    }];
    if let Some(db) = postgres_database() {
        let store = Store::open_postgres(&db.target, &Timeouts::default())
            .unwrap_or_else(|e| panic!("PostgreSQL test store: {e}"));
        out.push(TestStore {
            backend: "postgres",
            store,
            location: Location::Postgres(db.target.clone()),
            keep: Keep::Pg(Box::new(db)),
        });
    }
    out
}

/// A fresh database of the test server; `None` (after saying why) when PostgreSQL is missing
/// outside CI, a panic in CI or when the server is broken.
pub fn postgres_database() -> Option<TestDb> {
    let server = match pg::shared() {
        Ok(server) => server,
        Err(Unavailable::Missing(why)) => {
            let ci = std::env::var("CI").ok().is_some_and(|v| {
                let v = v.trim();
                !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
            });
            if ci {
                panic!(
                    "a test prerequisite is missing in CI: {why}. CI must run every test: \
                     install it (.ci/run installs the tests' tools) rather than skip"
                );
            }
            eprintln!("skipped on PostgreSQL: {why}");
            return None;
        }
        Err(Unavailable::Broken(why)) => panic!("the test PostgreSQL server: {why}"),
    };
    Some(
        server
            .database()
            .unwrap_or_else(|e| panic!("creating a test database: {e:?}")),
    )
}
