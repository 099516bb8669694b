//! The facility tables of schema 7 on both backends: the same columns (PostgreSQL's text in byte
//! order), a kind, quantity or scope a newer hallmark wrote refused by name when read, and a
//! version 6 store upgraded to the current version (7 added the facility tables) keeping its data.

#[path = "../../results/tests/common/mod.rs"]
mod run;

use hallmark_protocol::facility::{
    FacilityBatch, FacilityQuantity, FacilityReading, SourceKind, Subject,
};
use hallmark_results::StoreExt;
use hallmark_store::db::{Db, Value};
use hallmark_store::location::Location;
use hallmark_store::testing::stores::{stores, TestStore};
use hallmark_store::{RunId, Store, StoreError, DB_FILE, SCHEMA_VERSION};
use run::{new_run, node, T0};

fn reading(source: &str, t_ns: i64, value: Option<f64>) -> FacilityReading {
    FacilityReading {
        source: source.into(),
        kind: SourceKind::Pdu,
        subject: Subject::Rack("r01".into()),
        point: String::new(),
        quantity: FacilityQuantity::PowerW,
        uri: format!("/redfish/v1/PowerEquipment/RackPDUs/{source}/Metrics#/PowerWatts/Reading"),
        t_ns,
        value,
        device_time_ns: None,
        latency_us: Some(800),
        note: None,
    }
}

fn batch(seq: u64, readings: Vec<FacilityReading>) -> FacilityBatch {
    FacilityBatch { seq, readings }
}

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
                    other => panic!("a type the facility tables do not use: {other}"),
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
fn the_facility_tables_have_the_same_columns_on_both_backends() {
    let mut seen = Vec::new();
    for t in stores("facility-columns") {
        eprintln!("on {}", t.backend);
        let got = [
            columns(&t, "facility_batches"),
            columns(&t, "facility_readings"),
        ];
        seen.push(got);
    }
    let [batches, readings] = &seen[0];
    let names = |cols: &[(String, String, bool)]| -> Vec<String> {
        cols.iter().map(|c| c.0.clone()).collect()
    };
    assert_eq!(
        names(batches),
        ["run_id", "collector", "seq", "received_at_ns", "readings"]
    );
    assert_eq!(readings.len(), 16);
    let nullable: Vec<_> = readings.iter().filter(|c| !c.2).map(|c| &c.0).collect();
    assert_eq!(nullable, ["value", "device_time_ns", "latency_us", "note"]);
    assert!(readings.contains(&("value".into(), "double precision".into(), false)));
    for other in &seen[1..] {
        assert_eq!(other, &seen[0], "sqlite vs postgres");
    }
}

/// Stores one reading, then rewrites `column` of it to `name` as a newer hallmark might have.
fn with_unknown_name(t: &mut TestStore, column: &str, name: &str) -> RunId {
    let run = t.store.create_run(&new_run()).unwrap();
    let c = node("facility-1");
    let b = batch(3, vec![reading("pdu-1", T0, Some(1.0))]);
    t.store
        .insert_facility_batches(&run, &[(&c, &b, T0)])
        .unwrap();
    let changed = raw(t)
        .execute(
            &format!("UPDATE facility_readings SET {column} = ?1 WHERE run_id = ?2"),
            &[Value::from(name), Value::from(run.as_str())],
        )
        .unwrap();
    assert_eq!(changed, 1);
    run
}

#[test]
fn a_name_this_build_does_not_know_is_refused_by_name() {
    for mut t in stores("facility-unknown-name") {
        eprintln!("on {}", t.backend);
        for (column, name) in [
            ("kind", "ups"),
            ("quantity", "humidity_pct"),
            ("scope", "pod"),
        ] {
            let run = with_unknown_name(&mut t, column, name);
            let err = t.store.facility_readings(run.as_str()).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
            for part in [run.as_str(), name, "newer hallmark", column] {
                assert!(text.contains(part), "{part:?} missing from: {text}");
            }
        }
    }
}

/// Makes the test store a version 6 store: version 7 only added the facility tables, version 8
/// only the metric tables and `probe_software`.
fn downgrade_to_6(t: &TestStore) {
    let mut db = raw(t);
    db.execute_batch(
        "DROP TABLE probe_software; DROP TABLE metric_values; DROP TABLE metric_names; DROP TABLE metric_subjects; \
         DROP TABLE metric_sets; DROP TABLE facility_readings; DROP TABLE facility_batches;",
    )
    .unwrap();
    match t.pg() {
        Some(_) => db
            .execute_batch("UPDATE hallmark_meta SET value = '6' WHERE key = 'schema_version'")
            .unwrap(),
        None => db.execute_batch("PRAGMA user_version = 6").unwrap(),
    }
}

#[test]
fn a_version_6_store_upgrades_to_the_current_version_keeping_its_data() {
    assert_eq!(SCHEMA_VERSION, 8);
    for mut t in stores("facility-upgrade") {
        eprintln!("on {}", t.backend);
        let id = run::build(&mut t.store);
        let summary = serde_json::to_value(t.store.run_summary(id.as_str()).unwrap()).unwrap();
        let gaps = t.store.gaps(id.as_str()).unwrap();
        assert!(!gaps.is_empty(), "the built run has a gap to keep");
        downgrade_to_6(&t);

        let err = Store::open_location_read_only(&t.location).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("version 6") && text.contains("open it once for writing"),
            "{text}"
        );
        let mut store = t.reopen();
        assert_eq!(
            serde_json::to_value(store.run_summary(id.as_str()).unwrap()).unwrap(),
            summary
        );
        assert_eq!(store.gaps(id.as_str()).unwrap(), gaps);
        assert_eq!(store.facility_readings(id.as_str()).unwrap(), []);
        let c = node("facility-1");
        let b = batch(0, vec![reading("pdu-1", T0, Some(1.5))]);
        let done = store.insert_facility_batches(&id, &[(&c, &b, T0)]).unwrap();
        assert_eq!((done[0].new, done[0].samples), (true, 1));
        let read = t.reopen_read_only();
        assert_eq!(read.facility_readings(id.as_str()).unwrap().len(), 1);
        // The summary gains its facility block (results' facility figures) and nothing else.
        let mut after = serde_json::to_value(read.run_summary(id.as_str()).unwrap()).unwrap();
        let facility = after.as_object_mut().unwrap().remove("facility").unwrap();
        assert_eq!(facility["readings"], 1, "{facility}");
        assert_eq!(summary["facility"], serde_json::Value::Null);
        let mut before = summary.clone();
        before.as_object_mut().unwrap().remove("facility");
        assert_eq!(
            after, before,
            "facility readings change nothing of the run's summary but its facility block"
        );
    }
}
