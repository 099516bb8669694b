//! The metric tables and `probe_software` of schema 8 on both backends: the same columns
//! (PostgreSQL's text in byte order), and a version 7 store upgraded to 8 keeping its runs.

#[path = "../../results/tests/common/mod.rs"]
mod run;

use hallmark_store::db::{Db, Value};
use hallmark_store::location::Location;
use hallmark_store::testing::stores::{stores, TestStore};
use hallmark_store::{MetricRow, Store, DB_FILE, SCHEMA_VERSION};
use run::T0;

/// A connection of its own to the test store's database, for what the API cannot do.
fn raw(t: &TestStore) -> Db {
    match (&t.location, t.pg()) {
        (_, Some(pg)) => pg.connect(),
        (Location::Dir(dir), None) => Db::from_sqlite(
            rusqlite::Connection::open(dir.join(DB_FILE)).expect("opening the SQLite file"),
            "raw",
        ),
        (other, None) => panic!("unexpected test store location {other:?}"),
    }
}

/// (column, type as PostgreSQL names it, not null) of `table`, in column order; on PostgreSQL a
/// text column that does not sort in byte order (`COLLATE "C"`) fails the test.
fn columns(t: &TestStore, table: &str) -> Vec<(String, String, bool)> {
    let db = raw(t);
    let cols = match t.pg() {
        None => db.query_map(
            "SELECT name, type, \"notnull\" OR pk > 0 FROM pragma_table_info(?1) ORDER BY cid",
            &[Value::from(table)],
            |r| {
                let ty = match r.text(1)?.as_str() {
                    "INTEGER" => "bigint",
                    "REAL" => "double precision",
                    "TEXT" => "text",
                    other => panic!("a type the metric tables do not use: {other}"),
                };
                Ok((r.text(0)?, ty.to_owned(), r.i64(2)? != 0))
            },
        ),
        Some(_) => db.query_map(
            "SELECT column_name::text, data_type::text, is_nullable::text, \
             coalesce(collation_name::text, '') FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position",
            &[Value::from(table)],
            |r| {
                let (name, ty) = (r.text(0)?, r.text(1)?);
                let collation = r.text(3)?;
                assert!(
                    ty != "text" || collation == "C",
                    "{table}.{name} collates {collation:?}"
                );
                Ok((name, ty, r.text(2)? == "NO"))
            },
        ),
    };
    cols.unwrap()
}

#[test]
fn the_metric_tables_have_the_same_columns_on_both_backends() {
    let tables = [
        "metric_sets",
        "metric_subjects",
        "metric_names",
        "metric_values",
    ];
    let mut seen = Vec::new();
    for t in stores("metrics-columns") {
        eprintln!("on {}", t.backend);
        seen.push(tables.map(|table| columns(&t, table)));
    }
    let names = |cols: &[(String, String, bool)]| -> Vec<String> {
        cols.iter().map(|c| c.0.clone()).collect()
    };
    let [sets, subjects, metric_names, values] = &seen[0];
    assert_eq!(
        names(sets),
        [
            "set_id",
            "run_id",
            "computed_at_ns",
            "hallmark_version",
            "metrics"
        ]
    );
    assert_eq!(names(subjects), ["subject_id", "kind", "subject"]);
    assert_eq!(names(metric_names), ["metric_id", "metric", "base", "unit"]);
    assert_eq!(
        values,
        &[
            ("set_id".into(), "bigint".into(), true),
            ("metric_id".into(), "bigint".into(), true),
            ("subject_id".into(), "bigint".into(), true),
            ("value".into(), "double precision".into(), false),
        ]
    );
    for other in &seen[1..] {
        assert_eq!(other, &seen[0], "sqlite vs postgres");
    }
}

#[test]
fn probe_software_has_the_same_columns_on_both_backends() {
    let mut seen = Vec::new();
    for t in stores("software-columns") {
        eprintln!("on {}", t.backend);
        seen.push(columns(&t, "probe_software"));
    }
    let text = |name: &str| (name.to_string(), "text".to_string(), true);
    assert_eq!(
        seen[0],
        [
            text("run_id"),
            text("node_id"),
            text("name"),
            text("version")
        ]
    );
    for other in &seen[1..] {
        assert_eq!(other, &seen[0], "sqlite vs postgres");
    }
}

fn some_rows() -> Vec<MetricRow> {
    ["r1n1/0", "r1n1/1"]
        .iter()
        .map(|subject| MetricRow {
            kind: "device".into(),
            subject: subject.to_string(),
            metric: "sustained_tflops".into(),
            value: Some(600.0),
            unit: "TFLOP/s".into(),
        })
        .collect()
}

/// Makes the test store a version 7 store: version 8 only added the metric tables and
/// `probe_software`.
fn downgrade_to_7(t: &TestStore) {
    let mut db = raw(t);
    db.execute_batch(
        "DROP TABLE probe_software; DROP TABLE metric_values; DROP TABLE metric_names; DROP TABLE metric_subjects; \
         DROP TABLE metric_sets;",
    )
    .unwrap();
    match t.pg() {
        Some(_) => db
            .execute_batch("UPDATE hallmark_meta SET value = '7' WHERE key = 'schema_version'")
            .unwrap(),
        None => db.execute_batch("PRAGMA user_version = 7").unwrap(),
    }
}

#[test]
fn a_version_7_store_upgrades_to_8_keeping_its_runs() {
    assert_eq!(SCHEMA_VERSION, 8);
    for mut t in stores("metrics-upgrade") {
        eprintln!("on {}", t.backend);
        let id = run::build(&mut t.store);
        let runs = t.store.list_runs().unwrap();
        let devices = t.store.devices(id.as_str()).unwrap();
        downgrade_to_7(&t);

        let err = Store::open_location_read_only(&t.location).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("version 7") && text.contains("open it once for writing"),
            "{text}"
        );
        let mut store = t.reopen();
        assert_eq!(store.list_runs().unwrap(), runs);
        assert_eq!(store.devices(id.as_str()).unwrap(), devices);
        assert_eq!(store.run_metrics(id.as_str()).unwrap(), None);
        store
            .store_run_metrics(id.as_str(), T0, "0.9.0", &some_rows())
            .unwrap();
        let read = t.reopen_read_only();
        assert_eq!(
            read.run_metrics(id.as_str()).unwrap().unwrap().rows,
            some_rows()
        );
        let version = match t.pg() {
            Some(_) => raw(&t)
                .query_opt(
                    "SELECT value FROM hallmark_meta WHERE key = 'schema_version'",
                    &[],
                    |r| r.text(0),
                )
                .unwrap()
                .unwrap(),
            None => raw(&t)
                .query_opt("PRAGMA user_version", &[], |r| r.i64(0))
                .unwrap()
                .unwrap()
                .to_string(),
        };
        assert_eq!(version, "8");
    }
}
