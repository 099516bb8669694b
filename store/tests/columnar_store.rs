//! Columnar telemetry in the store (schema 5): the upgrade of version 4 rows keeps every value bit
//! for bit (and refuses one that would not convert exactly), and a corrupt blob is a clear error
//! naming the store, the run, the node and the batch.

#[path = "../../results/tests/common/mod.rs"]
mod common;

use common::*;
use hallmark_results::{Store, StoreError, StoreExt, APPLICATION_ID, DB_FILE, MIGRATIONS};
use hallmark_store::db::{Db, Value};
use hallmark_store::testing::stores::{stores, TestStore};
use hallmark_store::{NodePowerRecord, SampleRecord, ScanOptions, Telemetry};
use rusqlite::{params, Connection};

const RUN: &str = "20261129T021500Z-aaaaaa";

/// A version 4 store with one run, one probe (node key 7) and one batch (seq 3) of the given rows:
/// samples `(device, t_ns, power_w, energy_j, gpu_temp_c, mem_temp_c, sm_clock_mhz, util_pct,
/// throttle_reasons)` and node power `(t_ns, power_w)`.
#[allow(clippy::type_complexity)]
fn v4_store(
    dir: &TempDir,
    samples: &[(
        i64,
        i64,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<i64>,
        Option<f64>,
        i64,
    )],
    power: &[(i64, Option<f64>)],
) {
    std::fs::create_dir_all(dir.path()).unwrap();
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    for m in &MIGRATIONS[..4] {
        conn.execute_batch(m).unwrap();
    }
    conn.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 4;"
    ))
    .unwrap();
    conn.execute(
        "INSERT INTO runs (run_id, name, plan_name, plan_toml, plan_sha256, started_at_ns, status, \
         hallmark_version, sample_hz) VALUES (?1, 'old', 'p', '', '', 1, 'complete', '0.1.0', 10.0)",
        [RUN],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO probes (node_key, run_id, node_id, hall, row, rack, backend, hallmark_version, \
         registered_at_ns) VALUES (7, ?1, 'n1', 'h', 'r', 'k', 'sim', '0.1.0', 1)",
        [RUN],
    )
    .unwrap();
    // A batch of another run's rows before it: row ids of this batch do not start at 1.
    conn.execute(
        "INSERT INTO telemetry_batches VALUES (?1, 'n1', 3, 5, 1, 2, ?2, 11, ?3, 21)",
        params![RUN, samples.len() as i64, power.len() as i64],
    )
    .unwrap();
    for (i, s) in samples.iter().enumerate() {
        conn.execute(
            "INSERT INTO sample_rows VALUES (?1, 7, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![11 + i as i64, s.0, s.1, s.2, s.3, s.4, s.5, s.6, s.7, s.8],
        )
        .unwrap();
    }
    for (i, p) in power.iter().enumerate() {
        conn.execute(
            "INSERT INTO node_power_rows VALUES (?1, 7, ?2, ?3)",
            params![21 + i as i64, p.0, p.1],
        )
        .unwrap();
    }
}

fn version(dir: &TempDir) -> i64 {
    Connection::open(dir.path().join(DB_FILE))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn scan(store: &Store, run: &str) -> Result<Vec<Telemetry>, StoreError> {
    let mut out = Vec::new();
    store.scan_telemetry::<StoreError>(run, ScanOptions::ALL, |t| {
        out.push(t);
        Ok(())
    })?;
    Ok(out)
}

#[test]
fn version_4_rows_convert_bit_for_bit() {
    let dir = TempDir::new("v5-exact");
    let tiny = f64::from(f32::from_bits(1)); // the smallest subnormal f32
    let energy = 123_456.789_012_345_6_f64; // not an f32: energy is f64 end to end
    v4_store(
        &dir,
        &[
            (
                0,
                10,
                Some(f64::from(0.1f32)),
                Some(energy),
                Some(-12.25),
                None,
                Some(4_000_000_000),
                Some(tiny),
                -1,
            ),
            (65535, 10, None, None, None, None, None, None, 0),
            (
                1,
                20,
                Some(f64::from(f32::MAX)),
                Some(0.0),
                Some(50.0),
                Some(40.5),
                Some(0),
                Some(100.0),
                1 << 62,
            ),
        ],
        &[(10, Some(f64::from(2500.3f32))), (20, None)],
    );
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(version(&dir), 5);
    let got = scan(&store, RUN).unwrap();
    let sample = |device, t_ns, p: Option<f64>, e, g: Option<f64>, m, c, u, th| {
        Telemetry::Sample(SampleRecord {
            node_key: 7,
            device,
            t_ns,
            power_w: p,
            energy_j: e,
            gpu_temp_c: g,
            mem_temp_c: m,
            sm_clock_mhz: c,
            util_pct: u,
            throttle_reasons: th,
        })
    };
    let want = vec![
        Telemetry::NodePower(NodePowerRecord {
            node_key: 7,
            t_ns: 10,
            power_w: Some(f64::from(2500.3f32)),
        }),
        Telemetry::NodePower(NodePowerRecord {
            node_key: 7,
            t_ns: 20,
            power_w: None,
        }),
        sample(
            0,
            10,
            Some(f64::from(0.1f32)),
            Some(energy),
            Some(-12.25),
            None,
            Some(4_000_000_000),
            Some(tiny),
            u64::MAX,
        ),
        sample(65535, 10, None, None, None, None, None, None, 0),
        sample(
            1,
            20,
            Some(f64::from(f32::MAX)),
            Some(0.0),
            Some(50.0),
            Some(40.5),
            Some(0),
            Some(100.0),
            1 << 62,
        ),
    ];
    assert_eq!(got, want);
    assert_eq!(store.run_summary(RUN).unwrap().samples_stored, 3);
}

#[test]
fn a_version_4_value_that_is_not_an_f32_stops_the_upgrade_and_keeps_the_store() {
    let dir = TempDir::new("v5-lossy");
    v4_store(
        &dir,
        &[(0, 10, Some(0.1), None, None, None, None, None, 0)],
        &[],
    );
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    for part in [
        DB_FILE,
        RUN,
        "node n1",
        "batch seq 3",
        "power_w 0.1",
        "version 4",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    assert_eq!(version(&dir), 4, "the failed upgrade changed nothing");
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM sample_rows", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
}

/// A second connection to `t`'s database, for changing what the store wrote.
fn raw(t: &TestStore) -> Db {
    match t.pg() {
        Some(db) => db.connect(),
        None => {
            let file = t.store.path().to_path_buf();
            Db::from_sqlite(Connection::open(&file).unwrap(), file.display().to_string())
        }
    }
}

#[test]
fn a_corrupt_blob_is_an_error_naming_the_store_run_node_and_batch() {
    for mut t in stores("v5-corrupt") {
        eprintln!("on {}", t.backend);
        let store = &mut t.store;
        let run = store.create_run(&new_run()).unwrap();
        store
            .add_probe(&run, &probe_row("r1n1", "h", "a", "k"))
            .unwrap();
        for seq in 0..3 {
            let mut b = batch(0, seq);
            b.seq = seq as u64;
            store.insert_batch(&run, &node("r1n1"), &b, T0).unwrap();
        }
        assert!(scan(store, run.as_str()).is_ok());
        let name = store.path().display().to_string();
        let conn = raw(&t);
        let store = &t.store;
        for (column, blob) in [
            ("samples_blob", vec![1u8, b'S', 5, 0xff]),
            ("node_power_blob", vec![1u8, b'S', 0]),
        ] {
            let old = conn
                .query_opt(
                    &format!("SELECT {column} FROM telemetry_batches WHERE seq = 1"),
                    &[],
                    |r| r.blob(0),
                )
                .unwrap()
                .unwrap();
            let restore = format!("UPDATE telemetry_batches SET {column} = ?1 WHERE seq = 1");
            conn.execute(&restore, &[Value::Blob(blob)]).unwrap();
            let err = scan(store, run.as_str()).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
            for part in [name.as_str(), run.as_str(), "node r1n1", "batch seq 1"] {
                assert!(msg.contains(part), "{part:?} missing from: {msg}");
            }
            assert!(store.run_summary(run.as_str()).is_err());
            conn.execute(&restore, &[Value::Blob(old)]).unwrap();
        }
        assert!(scan(store, run.as_str()).is_ok(), "restored");
        // A blob that decodes but holds another count than its row says.
        conn.execute(
            "UPDATE telemetry_batches SET samples = samples + 1 WHERE seq = 2",
            &[],
        )
        .unwrap();
        let msg = scan(store, run.as_str()).unwrap_err().to_string();
        assert!(
            msg.contains("batch seq 2") && msg.contains("records"),
            "{msg}"
        );
    }
}
