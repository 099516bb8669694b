//! The connection interface on both backends, for real: every value type round-trips, transactions
//! commit and roll back, type errors name their column, binary COPY / multi-row INSERT of 100 000
//! rows read back streamed, and the schema's DDL makes the same columns on SQLite and PostgreSQL.

mod common;

use hallmark_store::db::{Backend, Db, DbError, Value};

const TABLE: &str = "CREATE TABLE v (id INTEGER PRIMARY KEY, i INTEGER, f REAL, t TEXT, b BLOB)";

/// A row of `v`: id, i, f, t, b.
type VRow = (
    i64,
    Option<i64>,
    Option<f64>,
    Option<String>,
    Option<Vec<u8>>,
);

fn rows(db: &mut Db) -> Vec<VRow> {
    db.query_map("SELECT id, i, f, t, b FROM v ORDER BY id", &[], |r| {
        Ok((
            r.i64(0)?,
            r.opt_i64(1)?,
            r.opt_f64(2)?,
            r.opt_text(3)?,
            r.opt_blob(4)?,
        ))
    })
    .unwrap()
}

#[test]
fn every_value_type_round_trips_on_both_backends() {
    for mut b in common::backends() {
        let db = &mut b.db;
        db.execute_batch(TABLE).unwrap();
        let written = [
            [
                Value::I64(i64::MIN),
                Value::F64(-0.5),
                Value::from("it's ?1 ünïcode"),
                Value::Blob(vec![0, 1, 255, 0]),
            ],
            [
                Value::I64(i64::MAX),
                Value::F64(1e300),
                Value::from(""),
                Value::Blob(vec![]),
            ],
            [
                Value::I64(0),
                Value::F64(f64::MIN_POSITIVE),
                Value::from("\"quoted\" -- not a comment"),
                Value::Blob(vec![7; 1000]),
            ],
            [Value::Null, Value::Null, Value::Null, Value::Null],
        ];
        // Keys generated on both (SQLite's rowid alias, PostgreSQL's identity): 1, 2, 3, 4.
        for row in &written {
            let changed = db
                .execute("INSERT INTO v (i, f, t, b) VALUES (?1, ?2, ?3, ?4)", row)
                .unwrap();
            assert_eq!(changed, 1, "{:?}", db.backend());
        }
        let read = rows(db);
        assert_eq!(read.len(), written.len());
        for (got, want) in read.iter().zip(&written) {
            let as_values = [
                Value::from(got.1),
                Value::from(got.2),
                Value::from(got.3.clone()),
                Value::from(got.4.clone()),
            ];
            assert_eq!(&as_values, want, "{:?}", db.backend());
        }
        // A parameter used twice and out of order; a literal `?` that is not a parameter.
        let hit = db
            .query_opt(
                "SELECT t FROM v WHERE i = ?2 AND t <> '?1' AND id = ?1",
                &[Value::I64(2), Value::I64(i64::MAX)],
                |r| r.text(0),
            )
            .unwrap();
        assert_eq!(hit.as_deref(), Some(""), "{:?}", db.backend());
        // RETURNING gives the generated key on both.
        let id = db
            .query_opt(
                "INSERT INTO v (i) VALUES (?1) RETURNING id",
                &[Value::I64(42)],
                |r| r.i64(0),
            )
            .unwrap();
        assert_eq!(id, Some(5), "{:?}", db.backend());
        let changed = db
            .execute("UPDATE v SET t = ?1 WHERE i IS NULL", &[Value::from("x")])
            .unwrap();
        assert_eq!(changed, 1, "{:?}", db.backend());
    }
}

#[test]
fn transactions_commit_or_roll_back() {
    for mut b in common::backends() {
        let db = &mut b.db;
        db.execute_batch(TABLE).unwrap();
        db.transaction(|tx| tx.execute("INSERT INTO v (id) VALUES (1)", &[]).map(|_| ()))
            .unwrap();
        let failed: Result<(), DbError> = db.transaction(|tx| {
            tx.execute("INSERT INTO v (id) VALUES (2)", &[])?;
            tx.execute("INSERT INTO v (id) VALUES (1)", &[])?; // a duplicate key
            Ok(())
        });
        let err = failed.expect_err("duplicate key");
        assert!(
            err.to_string().contains("INSERT INTO v (id) VALUES (1)"),
            "{err}"
        );
        let ids: Vec<i64> = db
            .query_map("SELECT id FROM v ORDER BY id", &[], |r| r.i64(0))
            .unwrap();
        assert_eq!(
            ids,
            [1],
            "{:?}: the failed transaction left nothing",
            db.backend()
        );
        let nested = db.transaction(|tx| tx.transaction(|_| Ok::<_, DbError>(())));
        assert!(matches!(nested, Err(DbError::Usage { .. })), "{nested:?}");
        assert!(!db.in_transaction());
    }
}

#[test]
fn type_errors_name_the_column_and_the_statement() {
    for mut b in common::backends() {
        let db = &mut b.db;
        db.execute_batch(TABLE).unwrap();
        db.execute("INSERT INTO v (id, t) VALUES (1, 'text')", &[])
            .unwrap();
        let err = db
            .query_map("SELECT id, t FROM v", &[], |r| r.i64(1))
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, DbError::Column { .. }), "{err:?}");
        assert!(
            text.contains("column t (#1)") && text.contains("SELECT id, t FROM v"),
            "{text}"
        );
        let err = db
            .query_map("SELECT i FROM v", &[], |r| r.i64(0))
            .unwrap_err();
        assert!(err.to_string().contains("found NULL"), "{err}");
        db.execute("INSERT INTO v (id) VALUES (2)", &[]).unwrap();
        let err = db
            .query_opt("SELECT id FROM v", &[], |r| r.i64(0))
            .unwrap_err();
        assert!(err.to_string().contains("at most one row"), "{err}");
    }
}

/// Row `n` of the bulk table.
fn bulk_row(n: i64) -> Vec<Value> {
    let f = if n % 7 == 0 {
        Value::Null
    } else {
        Value::F64(n as f64 / 4.0)
    };
    vec![
        Value::I64(n),
        f,
        Value::Text(format!("node-{n}")),
        Value::Blob(n.to_le_bytes().to_vec()),
    ]
}

#[test]
fn a_hundred_thousand_rows_in_bulk_and_streamed_back() {
    const N: i64 = 100_000;
    for mut b in common::backends() {
        let db = &mut b.db;
        db.execute_batch(
            "CREATE TABLE bulk (n INTEGER NOT NULL, f REAL, t TEXT NOT NULL, b BLOB NOT NULL)",
        )
        .unwrap();
        let written = db
            .insert_rows("bulk", &["n", "f", "t", "b"], (0..N).map(bulk_row))
            .unwrap();
        assert_eq!(written, N as u64, "{:?}", db.backend());
        let mut next = 0i64;
        let seen = db
            .for_each("SELECT n, f, t, b FROM bulk ORDER BY n", &[], |r| {
                let want = bulk_row(next);
                let got = vec![
                    Value::I64(r.i64(0)?),
                    Value::from(r.opt_f64(1)?),
                    Value::Text(r.text(2)?),
                    Value::Blob(r.blob(3)?),
                ];
                assert_eq!(got, want);
                next += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!((seen, next), (N as u64, N), "{:?}", db.backend());
        // A short row aborts the whole bulk insert: nothing of it is stored.
        let bad = (0..10).map(|n| {
            if n == 5 {
                vec![Value::I64(n)]
            } else {
                bulk_row(N + n)
            }
        });
        let err = db
            .insert_rows("bulk", &["n", "f", "t", "b"], bad)
            .unwrap_err();
        assert!(
            err.to_string().contains("a row of 1 values for 4 columns"),
            "{err}"
        );
        let count = db
            .query_opt("SELECT count(*) FROM bulk", &[], |r| r.i64(0))
            .unwrap();
        assert_eq!(count, Some(N), "{:?}", db.backend());
        let err = db
            .insert_rows("bulk; DROP TABLE bulk", &["n"], std::iter::empty())
            .unwrap_err();
        assert!(matches!(err, DbError::Usage { .. }), "{err:?}");
    }
}

/// Representative tables of the SQLite schema as results/src/schema.rs writes them (columns cut for
/// length): `runs`, `probes`, `telemetry_batches` of version 4, and `phase_histograms` of version 1
/// (dropped in 3) for its BLOB.
const SCHEMA: &str = "
CREATE TABLE runs (
    run_id            TEXT PRIMARY KEY NOT NULL,
    name              TEXT NOT NULL,
    hall              TEXT,
    started_at_ns     INTEGER NOT NULL,
    ended_at_ns       INTEGER,
    status            TEXT NOT NULL CHECK (status IN ('running', 'complete', 'incomplete', 'aborted')),
    sample_hz         REAL NOT NULL CHECK (sample_hz > 0)
);
CREATE INDEX runs_by_start ON runs (started_at_ns);

CREATE TABLE probes (
    node_key              INTEGER PRIMARY KEY,
    run_id                TEXT NOT NULL REFERENCES runs (run_id),
    node_id               TEXT NOT NULL,
    row                   TEXT NOT NULL,
    clock_offset_ns       INTEGER,
    UNIQUE (run_id, node_id)
);

CREATE TABLE telemetry_batches (
    run_id                TEXT NOT NULL,
    node_id               TEXT NOT NULL,
    seq                   INTEGER NOT NULL,
    from_ns               INTEGER,
    samples               INTEGER NOT NULL,
    PRIMARY KEY (run_id, node_id, seq),
    FOREIGN KEY (run_id, node_id) REFERENCES probes (run_id, node_id)
) WITHOUT ROWID;

CREATE TABLE phase_histograms (
    run_id      TEXT NOT NULL,
    phase_id    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    v2_deflate  BLOB NOT NULL,
    PRIMARY KEY (run_id, phase_id, name)
) WITHOUT ROWID;
";

/// (table, column, type as PostgreSQL names it, not null) of every table, in column order.
fn columns(db: &mut Db, tables: &[&str]) -> Vec<(String, String, String, bool)> {
    let mut out = Vec::new();
    for table in tables {
        let t = Value::from(*table);
        let cols = match db.backend() {
            Backend::Sqlite => db.query_map(
                "SELECT name, type, \"notnull\" OR pk > 0 FROM pragma_table_info(?1) ORDER BY cid",
                &[t],
                |r| {
                    let ty = match r.text(1)?.as_str() {
                        "INTEGER" => "bigint",
                        "REAL" => "double precision",
                        "TEXT" => "text",
                        "BLOB" => "bytea",
                        other => panic!("a type the mapping lacks: {other}"),
                    };
                    Ok((table.to_string(), r.text(0)?, ty.to_owned(), r.i64(2)? != 0))
                },
            ),
            Backend::Postgres => db.query_map(
                "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position",
                &[t],
                |r| Ok((table.to_string(), r.text(0)?, r.text(1)?, r.text(2)? == "NO")),
            ),
        };
        out.extend(cols.unwrap());
    }
    out
}

#[test]
fn the_schema_makes_the_same_columns_on_both_backends() {
    let tables = ["runs", "probes", "telemetry_batches", "phase_histograms"];
    let mut seen = Vec::new();
    for mut b in common::backends() {
        b.db.execute_batch(SCHEMA).unwrap();
        seen.push(columns(&mut b.db, &tables));
        // The rowid alias generates keys on both.
        b.db.execute(
            "INSERT INTO runs VALUES ('r', 'n', NULL, 1, NULL, 'running', 10.0)",
            &[],
        )
        .unwrap();
        let key = b.db
            .query_opt("INSERT INTO probes (run_id, node_id, row) VALUES ('r', 'a', '1') RETURNING node_key", &[], |r| r.i64(0))
            .unwrap();
        assert_eq!(key, Some(1), "{:?}", b.db.backend());
    }
    assert_eq!(seen[0].len(), 21);
    assert!(seen[0].contains(&("probes".into(), "node_key".into(), "bigint".into(), true)));
    if let [sqlite, postgres] = &seen[..] {
        assert_eq!(sqlite, postgres);
    }
}

#[test]
fn an_immediate_transaction_takes_sqlite_write_lock_at_once() {
    let path = std::env::temp_dir().join(format!(
        "hallmark-db-immediate-{}.sqlite",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let mut a = Db::from_sqlite(rusqlite::Connection::open(&path).unwrap(), "a");
    a.execute_batch(TABLE).unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.busy_timeout(std::time::Duration::ZERO).unwrap();
    // Another writer is refused while the immediate transaction is open, before it wrote anything.
    let inside = a.transaction_immediate(|_| {
        Ok::<_, DbError>(other.execute_batch("BEGIN IMMEDIATE; ROLLBACK"))
    });
    let refused = inside.unwrap().expect_err("the write lock is held");
    assert_eq!(
        refused.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy),
        "{refused}"
    );
    // A deferred transaction that has not written holds no write lock.
    let inside =
        a.transaction(|_| Ok::<_, DbError>(other.execute_batch("BEGIN IMMEDIATE; ROLLBACK")));
    inside.unwrap().expect("no lock yet");
    // It commits and rolls back like any transaction.
    a.transaction_immediate(|tx| tx.execute("INSERT INTO v (id) VALUES (1)", &[]))
        .unwrap();
    let failed = a.transaction_immediate(|tx| tx.execute("INSERT INTO v (id) VALUES (1)", &[]));
    assert!(failed.is_err());
    assert!(!a.in_transaction());
    drop(a);
    drop(other);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn an_immediate_transaction_commits_and_rolls_back_on_both_backends() {
    for mut b in common::backends() {
        let db = &mut b.db;
        db.execute_batch(TABLE).unwrap();
        db.transaction_immediate(|tx| tx.execute("INSERT INTO v (id) VALUES (1)", &[]))
            .unwrap();
        let failed: Result<(), DbError> = db.transaction_immediate(|tx| {
            tx.execute("INSERT INTO v (id) VALUES (2)", &[])?;
            tx.execute("INSERT INTO v (id) VALUES (1)", &[])?;
            Ok(())
        });
        assert!(failed.is_err(), "{:?}", db.backend());
        let ids = db
            .query_map("SELECT id FROM v ORDER BY id", &[], |r| r.i64(0))
            .unwrap();
        assert_eq!(ids, [1], "{:?}", db.backend());
    }
}

#[test]
fn a_statement_run_from_a_row_callback_is_an_error_on_postgres_not_a_panic() {
    for mut b in common::backends() {
        let db = &mut b.db;
        db.execute_batch(TABLE).unwrap();
        db.execute("INSERT INTO v (id) VALUES (1), (2)", &[])
            .unwrap();
        let db = &*db;
        let nested = db.for_each("SELECT id FROM v ORDER BY id", &[], |r| {
            db.execute("UPDATE v SET i = ?1 WHERE id = ?1", &[r.i64(0)?.into()])
                .map(|_| ())
        });
        match db.backend() {
            // SQLite steps one statement while running another.
            Backend::Sqlite => assert_eq!(nested.unwrap(), 2),
            // PostgreSQL's connection is busy with the rows: refused, and still usable after.
            Backend::Postgres => {
                let err = nested.expect_err("refused");
                assert!(matches!(err, DbError::Usage { .. }), "{err}");
                assert!(err.to_string().contains("UPDATE v"), "{err}");
            }
        }
        let n = db
            .query_opt("SELECT count(*) FROM v", &[], |r| r.i64(0))
            .unwrap();
        assert_eq!(n, Some(2), "{:?}", db.backend());
    }
}
