//! Facility readings (schema 7) on both backends: every field round-trips (absent ones too), a
//! replayed batch is not stored again, a value that is not a finite number is stored as absent with a note,
//! readings come back in time order, and an unknown run, a text the store cannot hold or a call the
//! database refuses half-way stores nothing. The tables themselves, names a newer hallmark wrote
//! and the upgrade from version 6 are in `facility_schema.rs`.

#[path = "../../results/tests/common/mod.rs"]
mod run;

use hallmark_protocol::facility::{
    FacilityBatch, FacilityQuantity, FacilityReading, SourceKind, Subject,
};
use hallmark_store::db::Db;
use hallmark_store::location::Location;
use hallmark_store::testing::stores::{stores, TestStore};
use hallmark_store::{
    Inserted, RunId, StoreError, StoredFacilityReading, DB_FILE, FACILITY_NOT_FINITE,
};
use run::{new_run, node, MS, T0};

/// A PDU's input power at `t_ns`, with every optional field given.
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
        device_time_ns: Some(1_795_918_499_000_000_000),
        latency_us: Some(1234),
        note: None,
    }
}

fn batch(seq: u64, readings: Vec<FacilityReading>) -> FacilityBatch {
    FacilityBatch { seq, readings }
}

fn stored(collector: &str, seq: u64, reading: FacilityReading) -> StoredFacilityReading {
    StoredFacilityReading {
        collector: collector.into(),
        seq,
        reading,
    }
}

fn new_flags(done: &[Inserted]) -> Vec<(bool, usize)> {
    done.iter().map(|d| (d.new, d.samples)).collect()
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

/// Every kind, scope and quantity, and every optional field both given and absent.
fn every_field() -> Vec<FacilityReading> {
    let kinds = [SourceKind::Pdu, SourceKind::Cdu, SourceKind::Chassis];
    let subjects = [
        Subject::Hall,
        Subject::Row("row-1".into()),
        Subject::Rack("r01".into()),
        Subject::Node("r01n1".into()),
    ];
    FacilityQuantity::ALL
        .iter()
        .enumerate()
        .map(|(i, &quantity)| {
            let given = i.is_multiple_of(2);
            FacilityReading {
                source: format!("src-{i}"),
                kind: kinds[i % kinds.len()],
                subject: subjects[i % subjects.len()].clone(),
                point: if given {
                    format!("outlet/{i}")
                } else {
                    String::new()
                },
                quantity,
                uri: format!("1.3.6.1.4.1.318.1.1.{i}"),
                t_ns: T0 + i as i64 * MS,
                value: given.then_some(-12.5 + i as f64 * 1000.25),
                device_time_ns: given.then_some(-(i as i64)),
                latency_us: given.then_some(u32::MAX - i as u32),
                note: (!given).then(|| format!("timed out after {i} s; «é»")),
            }
        })
        .collect()
}

#[test]
fn every_field_round_trips_absent_ones_too() {
    for mut t in stores("facility-round-trip") {
        eprintln!("on {}", t.backend);
        let run = t.store.create_run(&new_run()).unwrap();
        let c = node("facility-1");
        let readings = every_field();
        let b = batch(0, readings.clone());
        let done = t
            .store
            .insert_facility_batches(&run, &[(&c, &b, T0 + 5 * MS)])
            .unwrap();
        assert_eq!(new_flags(&done), [(true, readings.len())]);
        let want: Vec<_> = readings
            .into_iter()
            .map(|r| stored("facility-1", 0, r))
            .collect();
        assert_eq!(t.store.facility_readings(run.as_str()).unwrap(), want);
        // Another process reads the same, also a read-only one.
        assert_eq!(
            t.reopen_read_only()
                .facility_readings(run.as_str())
                .unwrap(),
            want
        );
        // A run without facility readings, and a run that does not exist, read as empty.
        let other = t.store.create_run(&new_run()).unwrap();
        assert_eq!(t.store.facility_readings(other.as_str()).unwrap(), []);
        assert_eq!(t.store.facility_readings("no-such-run").unwrap(), []);
    }
}

#[test]
fn a_replayed_batch_is_not_stored_again_earlier_or_in_the_same_call() {
    for mut t in stores("facility-replay") {
        eprintln!("on {}", t.backend);
        let run = t.store.create_run(&new_run()).unwrap();
        let (a, b) = (node("facility-a"), node("facility-b"));
        let first = batch(0, vec![reading("pdu-1", T0, Some(100.0))]);
        let done = t
            .store
            .insert_facility_batches(&run, &[(&a, &first, T0)])
            .unwrap();
        assert_eq!(new_flags(&done), [(true, 1)]);
        // The replay carries other readings: the stored batch stays as first stored.
        let replay = batch(0, vec![reading("pdu-1", T0, Some(999.0)); 3]);
        let second = batch(
            1,
            vec![
                reading("pdu-1", T0 + MS, Some(101.0)),
                reading("pdu-2", T0 + MS, None),
            ],
        );
        let other = batch(0, vec![reading("pdu-9", T0 + 2 * MS, Some(5.0))]);
        let done = t
            .store
            .insert_facility_batches(
                &run,
                &[
                    (&a, &replay, T0 + 10 * MS),
                    (&a, &second, T0 + 10 * MS),
                    (&a, &second, T0 + 11 * MS),
                    (&b, &other, T0 + 11 * MS),
                ],
            )
            .unwrap();
        assert_eq!(
            new_flags(&done),
            [(false, 0), (true, 2), (false, 0), (true, 1)],
            "a collector's seq 0 is not another collector's"
        );
        let got: Vec<_> = t
            .store
            .facility_readings(run.as_str())
            .unwrap()
            .into_iter()
            .map(|s| (s.collector, s.seq, s.reading.source, s.reading.value))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "facility-a".to_string(),
                    0,
                    "pdu-1".to_string(),
                    Some(100.0)
                ),
                ("facility-a".into(), 1, "pdu-1".into(), Some(101.0)),
                ("facility-a".into(), 1, "pdu-2".into(), None),
                ("facility-b".into(), 0, "pdu-9".into(), Some(5.0)),
            ]
        );
        // A new process (a restarted coordinator) recognises the replay too.
        let mut again = t.reopen();
        let done = again
            .insert_facility_batches(&run, &[(&a, &first, T0 + 20 * MS)])
            .unwrap();
        assert_eq!(new_flags(&done), [(false, 0)]);
        assert_eq!(again.facility_readings(run.as_str()).unwrap().len(), 4);
        // An empty batch is stored (its number is taken) with no readings.
        let empty = batch(2, Vec::new());
        let done = again
            .insert_facility_batches(&run, &[(&a, &empty, T0), (&a, &empty, T0)])
            .unwrap();
        assert_eq!(new_flags(&done), [(true, 0), (false, 0)]);
        assert_eq!(again.insert_facility_batches(&run, &[]).unwrap(), []);
    }
}

#[test]
fn a_value_that_is_not_a_finite_number_is_stored_as_absent_with_a_note() {
    for mut t in stores("facility-nan") {
        eprintln!("on {}", t.backend);
        let run = t.store.create_run(&new_run()).unwrap();
        let c = node("facility-1");
        let mut doubtful = reading("pdu-4", T0 + 4, Some(f64::NAN));
        doubtful.note = Some("reading older than 30 s".into());
        let mut unread = reading("pdu-6", T0 + 6, None);
        unread.note = Some("HTTP 503".into());
        let b = batch(
            7,
            vec![
                reading("pdu-1", T0 + 1, Some(f64::NAN)),
                reading("pdu-2", T0 + 2, Some(f64::INFINITY)),
                reading("pdu-3", T0 + 3, Some(f64::NEG_INFINITY)),
                doubtful,
                reading("pdu-5", T0 + 5, Some(0.0)),
                unread,
            ],
        );
        t.store
            .insert_facility_batches(&run, &[(&c, &b, T0)])
            .unwrap();
        let got: Vec<_> = t
            .store
            .facility_readings(run.as_str())
            .unwrap()
            .into_iter()
            .map(|s| (s.reading.source, s.reading.value, s.reading.note))
            .collect();
        let not_finite = Some(FACILITY_NOT_FINITE.to_string());
        assert_eq!(
            got,
            [
                ("pdu-1".to_string(), None, not_finite.clone()),
                ("pdu-2".into(), None, not_finite.clone()),
                ("pdu-3".into(), None, not_finite),
                (
                    "pdu-4".into(),
                    None,
                    Some(format!("{FACILITY_NOT_FINITE}; reading older than 30 s"))
                ),
                ("pdu-5".into(), Some(0.0), None),
                ("pdu-6".into(), None, Some("HTTP 503".into())),
            ]
        );
        assert_eq!(FACILITY_NOT_FINITE, "not a finite number");
    }
}

#[test]
fn readings_come_back_by_time_then_collector_batch_and_position() {
    for mut t in stores("facility-order") {
        eprintln!("on {}", t.backend);
        let run = t.store.create_run(&new_run()).unwrap();
        let (a, b) = (node("facility-a"), node("facility-b"));
        // Stored out of every order: later batches first, readings not in time order, equal times.
        let b_1 = batch(
            1,
            vec![
                reading("x", T0 + 30, Some(1.0)),
                reading("y", T0 + 10, Some(2.0)),
            ],
        );
        let a_0 = batch(
            0,
            vec![
                reading("p", T0 + 10, Some(3.0)),
                reading("q", T0 + 10, Some(4.0)),
                reading("r", T0 - 5, Some(5.0)),
            ],
        );
        let a_1 = batch(1, vec![reading("s", T0 + 10, Some(6.0))]);
        let b_0 = batch(0, vec![reading("z", T0 + 20, Some(7.0))]);
        t.store
            .insert_facility_batches(&run, &[(&b, &b_1, T0), (&a, &a_1, T0)])
            .unwrap();
        t.store
            .insert_facility_batches(&run, &[(&a, &a_0, T0), (&b, &b_0, T0)])
            .unwrap();
        let got: Vec<_> = t
            .store
            .facility_readings(run.as_str())
            .unwrap()
            .into_iter()
            .map(|s| s.reading.source)
            .collect();
        assert_eq!(got, ["r", "p", "q", "s", "y", "z", "x"]);
    }
}

#[test]
fn an_unknown_run_or_a_seq_the_store_cannot_hold_stores_nothing() {
    for mut t in stores("facility-refused") {
        eprintln!("on {}", t.backend);
        let c = node("facility-1");
        let ok = batch(0, vec![reading("pdu-1", T0, Some(1.0))]);
        let ghost = RunId::new("20261203T000000Z-000000");
        let err = t
            .store
            .insert_facility_batches(&ghost, &[(&c, &ok, T0)])
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownRun { .. }), "{err:?}");
        assert!(err.to_string().contains("20261203T000000Z-000000"), "{err}");

        let run = t.store.create_run(&new_run()).unwrap();
        let huge = batch(u64::MAX, vec![reading("pdu-2", T0, Some(2.0))]);
        let err = t
            .store
            .insert_facility_batches(&run, &[(&c, &ok, T0), (&c, &huge, T0)])
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains(&u64::MAX.to_string()), "{err}");
        assert_eq!(
            t.store.facility_readings(run.as_str()).unwrap(),
            [],
            "nothing of the refused call is stored"
        );
        // The batch refused with its call is new when it comes again.
        let done = t
            .store
            .insert_facility_batches(&run, &[(&c, &ok, T0)])
            .unwrap();
        assert_eq!(new_flags(&done), [(true, 1)]);
    }
}

#[test]
fn a_text_with_a_nul_character_is_refused_by_name_on_both_backends() {
    for mut t in stores("facility-nul") {
        eprintln!("on {}", t.backend);
        let run = t.store.create_run(&new_run()).unwrap();
        let c = node("facility-1");
        let ok = batch(0, vec![reading("pdu-1", T0, Some(1.0))]);
        let mut bad = reading("pdu-2", T0, None);
        bad.note = Some("HTTP\0 500".into());
        let bad = batch(1, vec![reading("pdu-1", T0, Some(2.0)), bad]);
        let err = t
            .store
            .insert_facility_batches(&run, &[(&c, &ok, T0), (&c, &bad, T0)])
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
        let text = err.to_string();
        for part in ["reading #1", "batch 1", "facility-1", "note", "NUL"] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
        assert_eq!(t.store.facility_readings(run.as_str()).unwrap(), []);
    }
}

/// Makes the database refuse a reading whose source is `poison`, as a failing write would.
fn poison(t: &TestStore) {
    let mut db = raw(t);
    let sql = match t.pg() {
        Some(_) => {
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.source = 'poison' THEN RAISE EXCEPTION 'poisoned reading'; END IF; \
               RETURN NEW; END $$; \
             CREATE TRIGGER poison BEFORE INSERT ON facility_readings \
               FOR EACH ROW EXECUTE FUNCTION poison();"
        }
        None => {
            "CREATE TRIGGER poison BEFORE INSERT ON facility_readings \
               WHEN NEW.source = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned reading'); END;"
        }
    };
    db.execute_batch(sql).unwrap();
}

#[test]
fn a_call_the_database_refuses_half_way_stores_nothing() {
    for mut t in stores("facility-rollback") {
        eprintln!("on {}", t.backend);
        let run = t.store.create_run(&new_run()).unwrap();
        poison(&t);
        let c = node("facility-1");
        let ok = batch(0, vec![reading("pdu-1", T0, Some(1.0))]);
        let bad = batch(
            1,
            vec![
                reading("pdu-1", T0 + MS, Some(2.0)),
                reading("poison", T0 + MS, Some(3.0)),
            ],
        );
        let err = t
            .store
            .insert_facility_batches(&run, &[(&c, &ok, T0), (&c, &bad, T0)])
            .unwrap_err();
        // The whole chain: PostgreSQL's message is in the source of its `db error`.
        let mut text = err.to_string();
        let mut cause = std::error::Error::source(&err);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        assert!(text.contains("poisoned reading"), "{text}");
        assert!(text.contains("storing facility readings"), "{text}");
        assert_eq!(t.store.facility_readings(run.as_str()).unwrap(), []);
        // Neither batch row stayed: both are new when they come again without the poison.
        let cured = batch(1, vec![reading("pdu-1", T0 + MS, Some(2.0))]);
        let done = t
            .store
            .insert_facility_batches(&run, &[(&c, &ok, T0), (&c, &cured, T0)])
            .unwrap();
        assert_eq!(new_flags(&done), [(true, 1), (true, 1)]);
    }
}

#[test]
fn full_batches_round_trip_in_one_call() {
    use hallmark_protocol::facility::MAX_FACILITY_READINGS;
    for mut t in stores("facility-full") {
        eprintln!("on {}", t.backend);
        let run = t.store.create_run(&new_run()).unwrap();
        let (a, b) = (node("facility-a"), node("facility-b"));
        let full = |seq: u64, offset: i64| {
            let readings = (0..MAX_FACILITY_READINGS)
                .map(|i| {
                    let mut r = reading(&format!("pdu-{i}"), T0 + 2 * i as i64 + offset, None);
                    r.value = (!i.is_multiple_of(7)).then_some(i as f64 * 0.5);
                    r
                })
                .collect();
            batch(seq, readings)
        };
        let (a0, b0) = (full(0, 0), full(0, 1));
        let done = t
            .store
            .insert_facility_batches(&run, &[(&a, &a0, T0), (&b, &b0, T0)])
            .unwrap();
        let n = MAX_FACILITY_READINGS;
        assert_eq!(new_flags(&done), [(true, n), (true, n)]);
        let got = t.store.facility_readings(run.as_str()).unwrap();
        assert_eq!(got.len(), 2 * n);
        // Interleaved in time: a's reading i, then b's.
        let want: Vec<_> = a0
            .readings
            .iter()
            .zip(&b0.readings)
            .flat_map(|(x, y)| {
                [
                    stored("facility-a", 0, x.clone()),
                    stored("facility-b", 0, y.clone()),
                ]
            })
            .collect();
        assert!(got == want, "the readings differ from those sent");
    }
}
