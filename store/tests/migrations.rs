//! A version 1 database (moved here from `results/tests/spec_certify.rs`): migrated to the current
//! version keeping its runs, then certified like any other.

#[path = "../../results/tests/spec_support/mod.rs"]
mod spec_support;

use hallmark_results::spec::{evaluate, parse_spec, Spec};
use hallmark_results::{Status, Store, StoreExt};
use spec_support::*;

fn one(lines: &str) -> Spec {
    let text = format!("name = \"t\"\n[[criterion]]\nid = \"c\"\n{lines}\n");
    parse_spec(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_version_1_database_migrates_to_the_current_version_keeping_its_runs() {
    let dir = TempDir::new("migrate");
    std::fs::create_dir_all(dir.path()).unwrap();
    let path = dir.path().join(hallmark_results::DB_FILE);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(hallmark_results::MIGRATIONS[0]).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = 1;",
            hallmark_results::APPLICATION_ID
        ))
        .unwrap();
        conn.execute(
            "INSERT INTO runs (run_id, name, plan_name, plan_toml, plan_sha256, started_at_ns, status, \
             hallmark_version, sample_hz) VALUES ('20261129T021500Z-aaaaaa', 'old', 'p', '', '', 1, \
             'complete', '0.1.0', 10.0)",
            [],
        )
        .unwrap();
    }
    let err = Store::open_read_only(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("open it once for writing"),
        "{err}"
    );
    let mut store = Store::open(dir.path()).unwrap();
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 8);
    assert_eq!(hallmark_results::SCHEMA_VERSION, 8);
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 1);
    let id = runs[0].run_id.as_str().to_string();
    assert!(store.certifications(&id).unwrap().is_empty());
    let spec = one("kind = \"inventory\"\nnodes = 1");
    let v = evaluate(&store, &id, &spec).unwrap();
    assert_eq!(
        v[0].status,
        Status::Fail,
        "a run without probes lacks its node"
    );
    store.store_certification(&id, "t", "", &v).unwrap();
    assert_eq!(store.certifications(&id).unwrap()[0].verdicts, v);
    // The new run of a migrated store is evaluated like any other.
    let new = Run::default().store(&mut store);
    assert_eq!(
        evaluate(&store, new.as_str(), &spec).unwrap()[0].status,
        Status::Pass
    );
}
