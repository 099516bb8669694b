//! Run store behaviour: replays, unknown ids, foreign and newer files, reopening, unfinished runs.

#[path = "../../results/tests/common/mod.rs"]
mod common;

use common::*;
use hallmark_results::{
    render_text, NewRun, ProbeRow, RunId, RunStatus, Store, StoreError, StoreExt, DB_FILE,
};
use hallmark_store::testing::stores::stores;
use hallmark_store::{ScanOptions, Telemetry};

#[test]
fn duplicate_batch_is_not_stored_twice() {
    for mut t in stores("dup") {
        eprintln!("on {}", t.backend);
        let store = &mut t.store;
        let run = store.create_run(&new_run()).unwrap();
        let n = node("r1n1");
        store
            .add_probe(&run, &probe_row(n.as_str(), "h", "r", "k"))
            .unwrap();
        let b = batch(0, 3);
        let first = store.insert_batch(&run, &n, &b, T0).unwrap();
        assert!(first.new);
        assert_eq!(first.samples, 20);
        let again = store.insert_batch(&run, &n, &b, T0 + 1).unwrap();
        assert!(!again.new);
        assert_eq!(again.samples, 0);
        // Duplicates inside one call, and a new batch beside them.
        let b4 = batch(0, 4);
        let done = store
            .insert_batches(&run, &[(&n, &b, T0), (&n, &b4, T0), (&n, &b4, T0)])
            .unwrap();
        assert_eq!(
            done.iter().map(|d| d.new).collect::<Vec<_>>(),
            vec![false, true, false]
        );
        let s = store.run_summary(run.as_str()).unwrap();
        assert_eq!(s.samples_stored, 40);
        let runs = store.list_runs().unwrap();
        assert_eq!(runs[0].samples, 40);
    }
}

#[test]
fn unknown_run_and_node_are_clear_errors() {
    for mut t in stores("unknown") {
        eprintln!("on {}", t.backend);
        let store = &mut t.store;
        let err = store.run_summary("20260101T000000Z-000000").unwrap_err();
        assert!(matches!(err, StoreError::UnknownRun { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("20260101T000000Z-000000") && msg.contains("hallmark runs list"),
            "{msg}"
        );
        assert!(msg.contains(&*store.path().to_string_lossy()), "{msg}");

        let run = store.create_run(&new_run()).unwrap();
        let err = store
            .insert_batch(&run, &node("ghost"), &batch(0, 0), T0)
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownNode { .. }), "{err:?}");
        assert!(err.to_string().contains("ghost"), "{err}");
        let err = store
            .finish_run(&RunId::new("nope"), T0, RunStatus::Complete, None)
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownRun { .. }), "{err:?}");
        let err = store.resolve_run("nope").unwrap_err();
        assert!(matches!(err, StoreError::UnknownRun { .. }), "{err:?}");
    }
}

#[test]
fn resolve_run_by_prefix_and_latest() {
    for mut t in stores("resolve") {
        eprintln!("on {}", t.backend);
        let store = &mut t.store;
        let a = store.create_run(&new_run()).unwrap();
        let b = store
            .create_run(&NewRun {
                started_at_ns: T0 + 86_400_000 * MS,
                ..new_run()
            })
            .unwrap();
        assert_eq!(store.resolve_run("latest").unwrap(), b);
        assert_eq!(store.resolve_run(a.as_str()).unwrap(), a);
        assert_eq!(store.resolve_run("20261129").unwrap(), a);
        assert_eq!(store.resolve_run("20261130").unwrap(), b);
        let err = store.resolve_run("2026").unwrap_err();
        assert!(
            matches!(err, StoreError::AmbiguousRun { count: 2, .. }),
            "{err:?}"
        );
    }
}

#[test]
fn reopening_keeps_runs_and_unfinished_run_stays_running() {
    for t in stores("reopen") {
        eprintln!("on {}", t.backend);
        let run = {
            let mut store = t.reopen();
            let run = store.create_run(&new_run()).unwrap();
            store
                .add_probe(&run, &probe_row("r1n1", "h", "r", "k"))
                .unwrap();
            store
                .insert_batch(&run, &node("r1n1"), &batch(0, 0), T0)
                .unwrap();
            run // dropped without finish_run: the coordinator "crashed"
        };
        let store = t.reopen();
        let runs = store.list_runs().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].run_id, run);
        assert_eq!(runs[0].status, RunStatus::Running);
        assert_eq!(runs[0].ended_at_ns, None);
        assert_eq!((runs[0].probes, runs[0].samples), (1, 20));
        let s = store.run_summary(run.as_str()).unwrap();
        assert_eq!(s.status, RunStatus::Running);
        assert_eq!(s.samples_stored, 20);
        assert!(render_text(&s).contains("not ended"));

        // A reader beside a writer; it cannot write.
        let mut reader = t.reopen_read_only();
        assert_eq!(reader.list_runs().unwrap().len(), 1);
        assert_eq!(reader.run_summary(run.as_str()).unwrap().samples_stored, 20);
        assert!(reader.create_run(&new_run()).is_err());
    }
}

#[test]
fn garbage_file_is_a_clear_error() {
    let dir = TempDir::new("garbage");
    std::fs::create_dir_all(dir.path()).unwrap();
    let path = dir.path().join(DB_FILE);
    std::fs::write(
        &path,
        b"this is not a database, just some text that happens to be here\n".repeat(20),
    )
    .unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotHallmark { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("not a hallmark results database") && msg.contains(DB_FILE),
        "{msg}"
    );
    let err = Store::open_read_only(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotHallmark { .. }), "{err:?}");
}

#[test]
fn foreign_sqlite_database_is_refused() {
    let dir = TempDir::new("foreign");
    std::fs::create_dir_all(dir.path()).unwrap();
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute_batch("CREATE TABLE recipes (name TEXT)")
        .unwrap();
    drop(conn);
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotHallmark { .. }), "{err:?}");
    assert!(err.to_string().contains("another application"), "{err}");
}

#[test]
fn newer_schema_is_refused() {
    let dir = TempDir::new("newer");
    drop(Store::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 99, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer hallmark"), "{err}");
}

#[test]
fn missing_database_for_reading_is_a_clear_error() {
    let dir = TempDir::new("missing");
    let err = Store::open_read_only(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Missing { .. }), "{err:?}");
    assert!(!dir.path().exists(), "reading must not create anything");
}

#[test]
fn open_creates_nested_dir_and_sets_pragmas() {
    let dir = TempDir::new("pragmas");
    let nested = dir.path().join("a/b");
    let store = Store::open(&nested).unwrap();
    assert!(nested.join(DB_FILE).is_file());
    assert_eq!(store.path(), nested.join(DB_FILE));
    drop(store);
    let conn = rusqlite::Connection::open(nested.join(DB_FILE)).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, hallmark_results::SCHEMA_VERSION);
}

fn probe(id: &str, rack: &str, at: i64) -> ProbeRow {
    ProbeRow {
        registered_at_ns: at,
        ..probe_row(id, "h", "row-a", rack)
    }
}

#[test]
fn interleaved_runs_and_late_batches_summarise_independently() {
    for mut t in stores("interleaved") {
        eprintln!("on {}", t.backend);
        let store = &mut t.store;
        let a = store.create_run(&new_run()).unwrap();
        let b = store.create_run(&new_run()).unwrap();
        for run in [&a, &b] {
            store.add_probe(run, &probe("r1n1", "rack-01", T0)).unwrap();
        }
        let n = node("r1n1");
        // Run a gets seconds 0, 2, 1 (a late batch after a reconnect); run b gets 0..3 in between.
        for (run, sec) in [(&a, 0), (&b, 0), (&a, 2), (&b, 1), (&b, 2), (&a, 1)] {
            let done = store.insert_batch(run, &n, &batch(0, sec), T0).unwrap();
            assert!(done.new);
        }
        for run in [&a, &b] {
            let s = store.run_summary(run.as_str()).unwrap();
            assert_eq!(s.samples_stored, 60);
            assert_eq!(s.racks[0].peak_kw, Some(1.0));
            assert_eq!(s.racks[0].mean_kw, Some(1.0));
            assert_eq!(s.racks[0].sustained_window_s, 3.0);
        }
    }
}

#[test]
fn failed_insert_batches_stores_nothing() {
    for mut t in stores("atomic") {
        eprintln!("on {}", t.backend);
        let store = &mut t.store;
        let run = run_with_r1n1(store);
        let (ok, ghost) = (node("r1n1"), node("ghost"));
        let (b0, b1) = (batch(0, 0), batch(0, 1));
        let err = store
            .insert_batches(&run, &[(&ok, &b0, T0), (&ghost, &b1, T0)])
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownNode { .. }), "{err:?}");
        assert_eq!(store.run_summary(run.as_str()).unwrap().samples_stored, 0);
        // The same batch goes in afterwards: it was not half-stored.
        assert!(store.insert_batch(&run, &ok, &b0, T0).unwrap().new);
    }
}

#[test]
fn reconnected_probe_is_no_longer_lost() {
    for mut t in stores("reconnect") {
        eprintln!("on {}", t.backend);
        let store = &mut t.store;
        let run = run_with_r1n1(store);
        store
            .probe_lost(&run, &node("r1n1"), T0 + 5, "connection lost")
            .unwrap();
        assert_eq!(
            store.run_summary(run.as_str()).unwrap().lost_probes.len(),
            1
        );
        store
            .add_probe(&run, &probe("r1n1", "rack-01", T0 + 10))
            .unwrap();
        let s = store.run_summary(run.as_str()).unwrap();
        assert!(s.lost_probes.is_empty());
        assert_eq!(s.probes, 1);
        // The loss stays in the events.
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.events[0].kind, "probe_lost");
    }
}

#[test]
fn phase_data_for_an_unknown_phase_is_a_clear_error() {
    for mut t in stores("phase") {
        eprintln!("on {}", t.backend);
        let store = &mut t.store;
        let run = run_with_r1n1(store);
        let err = store.phase_started(&run, 7, &node("r1n1"), T0).unwrap_err();
        assert!(err.to_string().contains("phase 7"), "{err}");
        assert!(err.to_string().contains("add_phase"), "{err}");
    }
}

#[test]
fn zero_or_negative_sample_rate_is_refused() {
    for mut t in stores("hz") {
        eprintln!("on {}", t.backend);
        let store = &mut t.store;
        for hz in [0.0, -1.0, f64::NAN] {
            let err = store
                .create_run(&NewRun {
                    sample_hz: hz,
                    ..new_run()
                })
                .unwrap_err();
            assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
        }
    }
}

#[test]
fn non_finite_readings_are_stored_as_null() {
    for mut t in stores("nan") {
        eprintln!("on {}", t.backend);
        let store = &mut t.store;
        let run = run_with_r1n1(store);
        let mut b = batch(0, 0);
        b.node_power_w[3].1 = f32::NAN;
        b.samples[0].gpu_temp_c = Some(f32::INFINITY);
        b.samples[1].power_w = Some(f32::NAN);
        assert!(store.insert_batch(&run, &node("r1n1"), &b, T0).unwrap().new);
        let s = store.run_summary(run.as_str()).unwrap();
        assert_eq!(s.samples_stored, 20);
        assert_eq!(s.max_gpu_temp_c, Some(50.0));
        assert_eq!(s.racks[0].peak_kw, Some(1.0));
        // Read back through the store's one telemetry scan (schema 5 keeps no row tables to query).
        let mut nulls = 0;
        store
            .scan_telemetry::<StoreError>(run.as_str(), ScanOptions::ALL, |t| {
                nulls += match t {
                    Telemetry::Sample(s) => {
                        usize::from(s.gpu_temp_c.is_none() || s.power_w.is_none())
                    }
                    Telemetry::NodePower(p) => usize::from(p.power_w.is_none()),
                };
                Ok(())
            })
            .unwrap();
        assert_eq!(nulls, 3);
    }
}

#[test]
fn a_database_locked_by_another_process_is_named() {
    let dir = TempDir::new("locked");
    let mut store = Store::open(dir.path()).unwrap();
    store
        .set_busy_timeout(std::time::Duration::from_millis(50))
        .unwrap();
    // Another writer holds the write lock.
    let other = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = store.create_run(&new_run()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("locked by another hallmark process") && msg.contains(DB_FILE),
        "{msg}"
    );
    other.execute_batch("ROLLBACK").unwrap();
    store.create_run(&new_run()).unwrap();
}

// Moved from results/tests/summary.rs: what the store writes for absent sensors, and its views.

#[test]
fn absent_sensors_are_null_and_views_are_readable() {
    for mut t in stores("nulls") {
        eprintln!("on {}", t.backend);
        let store = &mut t.store;
        let run = build(store);
        // Read back through the store's one telemetry scan (schema 5 keeps no row views to query).
        let r2n1 = store
            .probes(run.as_str())
            .unwrap()
            .into_iter()
            .find(|p| p.node == "r2n1")
            .unwrap()
            .key;
        let (mut nulls, mut zeros, mut w) = (0, 0, Vec::new());
        store
            .scan_telemetry::<StoreError>(run.as_str(), ScanOptions::ALL, |t| {
                match t {
                    Telemetry::Sample(s) => {
                        nulls += usize::from(s.mem_temp_c.is_none() && s.util_pct.is_none());
                        zeros += usize::from(s.mem_temp_c == Some(0.0));
                    }
                    Telemetry::NodePower(p)
                        if p.node_key == r2n1 && p.t_ns == T0 + 100 * 100 * MS =>
                    {
                        w.push(p.power_w)
                    }
                    Telemetry::NodePower(_) => {}
                }
                Ok(())
            })
            .unwrap();
        assert_eq!((nulls, zeros), (940, 0));
        assert_eq!(w, vec![Some(2500.0)]);
    }
}

#[test]
fn a_nodes_batches_are_read_through_the_batch_index() {
    let dir = TempDir::new("plan");
    let mut store = Store::open(dir.path()).unwrap();
    build(&mut store);
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let mut stmt = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT samples_blob FROM telemetry_batches \
             WHERE run_id = ?1 AND node_id = ?2 ORDER BY seq",
        )
        .unwrap();
    let plan: Vec<String> = stmt
        .query_map(["x", "y"], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter().all(|step| step.starts_with("SEARCH")),
        "expected index searches only: {plan:?}"
    );
}

#[test]
fn a_gap_keeps_the_instants_the_probe_counted_or_none() {
    for mut t in stores("gap-instants") {
        eprintln!("on {}", t.backend);
        let store = &mut t.store;
        let run = run_with_r1n1(store);
        let n = node("r1n1");
        store
            .record_gap(&run, &n, T0, T0 + 300 * MS, Some(3), "late by 310 ms")
            .unwrap();
        store
            .record_gap(
                &run,
                &n,
                T0 + 1000 * MS,
                T0 + 2000 * MS,
                None,
                "never arrived",
            )
            .unwrap();
        let gaps = store.gaps(run.as_str()).unwrap();
        let got: Vec<_> = gaps
            .iter()
            .map(|g| (g.reason.as_str(), g.instants))
            .collect();
        assert_eq!(got, [("late by 310 ms", Some(3)), ("never arrived", None)]);
        let text = render_text(&store.run_summary(run.as_str()).unwrap());
        assert!(
            text.contains("(0.300 s, 3 instants missed)  late by 310 ms"),
            "{text}"
        );
        assert!(text.contains("(1.000 s)  never arrived"), "{text}");
    }
}

/// A new run with probe r1n1 in rack-01 registered.
fn run_with_r1n1(store: &mut Store) -> RunId {
    let run = store.create_run(&new_run()).unwrap();
    store
        .add_probe(&run, &probe("r1n1", "rack-01", T0))
        .unwrap();
    run
}
