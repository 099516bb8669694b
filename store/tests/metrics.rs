//! Per-subject metrics (schema 8) on both backends: a set round-trips with its absent values
//! (stored NULL), storing again replaces it, what the store cannot hold is refused without
//! touching the stored set, a history lists the runs with a stored set in start order and filters
//! them by plan, hall (also a probe's label), metric (base or qualified), subject (exact or
//! prefix) and start, and a run's context holds what makes runs comparable (the probes' software
//! versions among it). The tables themselves
//! and the upgrade from version 7 are in `metrics_schema.rs`.

#[path = "../../results/tests/common/mod.rs"]
mod run;

use hallmark_protocol::{NodeId, SoftwareVersion};
use hallmark_store::db::Db;
use hallmark_store::location::Location;
use hallmark_store::testing::stores::{stores, TestStore};
use hallmark_store::{
    ContextDevice, ContextProbe, HistoryQuery, MetricRow, NewRun, RunId, Store, StoreError, DB_FILE,
};
use run::{new_run, probe_row, MS, T0};

const S: i64 = 1_000 * MS;

fn row(kind: &str, subject: &str, metric: &str, value: Option<f64>, unit: &str) -> MetricRow {
    MetricRow {
        kind: kind.into(),
        subject: subject.into(),
        metric: metric.into(),
        value,
        unit: unit.into(),
    }
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

fn count(t: &TestStore, sql: &str) -> i64 {
    raw(t).query_opt(sql, &[], |r| r.i64(0)).unwrap().unwrap()
}

/// A device's, a node's, a rack's and a pair's metrics, one of them not measured, in no order.
fn some_rows() -> Vec<MetricRow> {
    vec![
        row("rack", "rack-01", "power_kw", Some(120.5), "kW"),
        row(
            "device",
            "r1n1/1",
            "sustained_tflops",
            Some(612.25),
            "TFLOP/s",
        ),
        row(
            "device",
            "r1n1/0",
            "sustained_tflops",
            Some(-0.0),
            "TFLOP/s",
        ),
        row("device", "r1n1/0", "thermal_resistance", None, "K/W"),
        row("device", "r1n1/0", "throttle_s.sw_thermal", Some(1.5), "s"),
        row("pair", "r1n1→r1n2", "latency_p99_us", Some(12.0), "µs"),
        row("node", "r1n1", "power_kw", Some(f64::MAX), "kW"),
    ]
}

fn sorted(mut rows: Vec<MetricRow>) -> Vec<MetricRow> {
    rows.sort_by(|a, b| (&a.kind, &a.subject, &a.metric).cmp(&(&b.kind, &b.subject, &b.metric)));
    rows
}

#[test]
fn a_set_round_trips_with_its_absent_values() {
    for mut t in stores("metrics-round-trip") {
        eprintln!("on {}", t.backend);
        let id = t.store.create_run(&new_run()).unwrap();
        assert_eq!(t.store.run_metrics(id.as_str()).unwrap(), None);
        assert_eq!(t.store.run_metrics("no-such-run").unwrap(), None);
        let rows = some_rows();
        t.store
            .store_run_metrics(id.as_str(), T0 + 5 * S, "0.9.0", &rows)
            .unwrap();
        let mut want = sorted(rows);
        // −0 is stored as 0, the same on both backends.
        want.iter_mut()
            .filter(|r| r.value == Some(0.0))
            .for_each(|r| r.value = Some(0.0));
        for store in [&t.store, &t.reopen_read_only()] {
            let set = store.run_metrics(id.as_str()).unwrap().unwrap();
            assert_eq!(set.run_id, id);
            assert_eq!(set.computed_at_ns, T0 + 5 * S);
            assert_eq!(set.hallmark_version, "0.9.0");
            assert_eq!(set.rows, want);
            let zero = set.rows.iter().find(|r| r.subject == "r1n1/0").unwrap();
            assert!(zero.value.unwrap().is_sign_positive());
        }
        // Not measured is NULL in the table, never 0.
        assert_eq!(
            count(&t, "SELECT count(*) FROM metric_values WHERE value IS NULL"),
            1
        );
        assert_eq!(count(&t, "SELECT count(*) FROM metric_values"), 7);
        assert_eq!(
            count(&t, "SELECT metrics FROM metric_sets"),
            7,
            "the set counts its values"
        );
    }
}

#[test]
fn storing_again_replaces_the_set_and_shares_the_names() {
    for mut t in stores("metrics-replace") {
        eprintln!("on {}", t.backend);
        let a = t.store.create_run(&new_run()).unwrap();
        let b = t.store.create_run(&new_run()).unwrap();
        t.store
            .store_run_metrics(a.as_str(), T0, "0.9.0", &some_rows())
            .unwrap();
        t.store
            .store_run_metrics(b.as_str(), T0, "0.9.0", &some_rows())
            .unwrap();
        let again = vec![
            row(
                "device",
                "r1n1/0",
                "sustained_tflops",
                Some(600.0),
                "TFLOP/s",
            ),
            row("device", "r9n9/0", "sustained_tflops", None, "TFLOP/s"),
        ];
        t.store
            .store_run_metrics(a.as_str(), T0 + S, "0.9.1", &again)
            .unwrap();
        let set = t.store.run_metrics(a.as_str()).unwrap().unwrap();
        assert_eq!(
            (set.computed_at_ns, set.hallmark_version.as_str()),
            (T0 + S, "0.9.1")
        );
        assert_eq!(set.rows, again);
        assert_eq!(
            t.store.run_metrics(b.as_str()).unwrap().unwrap().rows.len(),
            7,
            "the other run's set is untouched"
        );
        assert_eq!(count(&t, "SELECT count(*) FROM metric_sets"), 2);
        assert_eq!(count(&t, "SELECT count(*) FROM metric_values"), 7 + 2);
        // Subjects and names are stored once, whatever the runs naming them.
        assert_eq!(count(&t, "SELECT count(*) FROM metric_subjects"), 6);
        assert_eq!(count(&t, "SELECT count(*) FROM metric_names"), 5);
        // An empty set replaces too: the metrics were computed, and none came out.
        t.store
            .store_run_metrics(a.as_str(), T0 + 2 * S, "0.9.1", &[])
            .unwrap();
        let set = t.store.run_metrics(a.as_str()).unwrap().unwrap();
        assert_eq!((set.computed_at_ns, set.rows.len()), (T0 + 2 * S, 0));
        assert_eq!(count(&t, "SELECT count(*) FROM metric_values"), 7);
    }
}

#[test]
fn what_the_store_cannot_hold_is_refused_and_the_stored_set_stays() {
    for mut t in stores("metrics-refused") {
        eprintln!("on {}", t.backend);
        let id = t.store.create_run(&new_run()).unwrap();
        t.store
            .store_run_metrics(id.as_str(), T0, "0.9.0", &some_rows())
            .unwrap();
        let before = t.store.run_metrics(id.as_str()).unwrap();
        for (bad, parts) in [
            (
                row(
                    "device",
                    "r1n2/1",
                    "sustained_tflops",
                    Some(f64::NAN),
                    "TFLOP/s",
                ),
                vec!["r1n2/1", "sustained_tflops", "not a finite number"],
            ),
            (
                row("rack", "rack-02", "power_kw", Some(f64::INFINITY), "kW"),
                vec!["rack-02", "power_kw", "not a finite number"],
            ),
            (
                row("", "rack-02", "power_kw", Some(1.0), "kW"),
                vec!["rack-02", "power_kw", "no kind"],
            ),
            (
                row("rack", "rack-02", ".x", Some(1.0), "kW"),
                vec!["rack-02", ".x", "base"],
            ),
            (
                row("rack", "rack\0", "power_kw", Some(1.0), "kW"),
                vec!["power_kw", "NUL"],
            ),
            (
                row("rack", "rack-01", "power_kw", Some(2.0), "kW"),
                vec!["rack-01", "power_kw", "twice"],
            ),
        ] {
            let mut rows = some_rows();
            rows.push(bad);
            let err = t
                .store
                .store_run_metrics(id.as_str(), T0 + S, "0.9.1", &rows)
                .unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
            for part in parts.iter().copied().chain([id.as_str()]) {
                assert!(text.contains(part), "{part:?} missing from: {text}");
            }
            assert_eq!(t.store.run_metrics(id.as_str()).unwrap(), before);
        }
        let err = t
            .store
            .store_run_metrics("20991231T000000Z-000000", T0, "0.9.0", &some_rows())
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownRun { .. }), "{err:?}");
        assert_eq!(count(&t, "SELECT count(*) FROM metric_sets"), 1);
    }
}

/// A run of `plan` started `start_s` seconds after [`T0`] in the simulated hall `hall`, with a
/// probe in `probe_hall` when given.
fn a_run(
    store: &mut Store,
    plan: &str,
    start_s: i64,
    hall: Option<&str>,
    probe_hall: Option<&str>,
) -> RunId {
    let id = store
        .create_run(&NewRun {
            plan_name: plan.into(),
            hall: hall.map(str::to_owned),
            started_at_ns: T0 + start_s * S,
            ..new_run()
        })
        .unwrap();
    if let Some(h) = probe_hall {
        store
            .add_probe(&id, &probe_row("r01n01", h, "row-1", "rack-01"))
            .unwrap();
    }
    id
}

/// Device and node metrics whose names and subjects test the filters' edges: `throttle_seconds`
/// does not have the base `throttle_s`, `r01n010/0` is not under `r01n01`.
fn history_rows(tflops: f64) -> Vec<MetricRow> {
    vec![
        row(
            "device",
            "r01n01/0",
            "sustained_tflops",
            Some(tflops),
            "TFLOP/s",
        ),
        row("device", "r01n01/1", "sustained_tflops", None, "TFLOP/s"),
        row(
            "device",
            "r01n010/0",
            "sustained_tflops",
            Some(1.0),
            "TFLOP/s",
        ),
        row("device", "r01n01/0", "throttle_s", Some(2.0), "s"),
        row(
            "device",
            "r01n01/0",
            "throttle_s.sw_thermal",
            Some(1.0),
            "s",
        ),
        row("device", "r01n01/0", "throttle_seconds", Some(3.0), "s"),
        row("node", "r01n01", "power_kw", Some(9.5), "kW"),
        row("node", "r01n01x", "power_kw", Some(9.0), "kW"),
    ]
}

/// (run id, subject/metric of each row) of a history, for short assertions.
fn shape(store: &Store, q: &HistoryQuery) -> Vec<(RunId, Vec<String>)> {
    store
        .metric_history(q)
        .unwrap()
        .into_iter()
        .map(|h| {
            let rows = h
                .rows
                .iter()
                .map(|r| format!("{}:{}", r.subject, r.metric))
                .collect();
            (h.run.run_id, rows)
        })
        .collect()
}

#[test]
fn a_history_lists_the_runs_with_metrics_oldest_first_filtered() {
    for mut t in stores("metrics-history") {
        eprintln!("on {}", t.backend);
        let s = &mut t.store;
        let late = a_run(s, "p", 2, Some("sim-a"), None);
        let early = a_run(s, "p", 0, None, Some("hall-b"));
        let other_plan = a_run(s, "q", 1, Some("sim-a"), Some("sim-a"));
        let without_set = a_run(s, "p", 3, Some("sim-a"), None);
        let tie_1 = a_run(s, "p", 4, Some("sim-c"), None);
        let tie_2 = a_run(s, "p", 4, Some("sim-c"), None);
        let (tie_1, tie_2) = if tie_1 < tie_2 {
            (tie_1, tie_2)
        } else {
            (tie_2, tie_1)
        };
        for (i, id) in [&late, &early, &other_plan].into_iter().enumerate() {
            s.store_run_metrics(id.as_str(), T0, "0.9.0", &history_rows(i as f64))
                .unwrap();
        }
        // One tie has no sustained TFLOP/s at all: a point where the metric was absent.
        let power_only = vec![row("node", "r01n01", "power_kw", Some(9.0), "kW")];
        s.store_run_metrics(tie_1.as_str(), T0, "0.9.0", &power_only)
            .unwrap();
        s.store_run_metrics(tie_2.as_str(), T0, "0.9.0", &history_rows(5.0))
            .unwrap();
        let store = &t.store;
        let runs = |q: &HistoryQuery| -> Vec<RunId> {
            shape(store, q).into_iter().map(|(id, _)| id).collect()
        };

        let all = store.metric_history(&HistoryQuery::default()).unwrap();
        let ids: Vec<_> = all.iter().map(|h| h.run.run_id.clone()).collect();
        assert_eq!(
            ids,
            [&early, &other_plan, &late, &tie_1, &tie_2].map(Clone::clone),
            "start order, then run id; {without_set} has no set and is not listed"
        );
        assert_eq!(all[0].rows, sorted(history_rows(1.0)));
        assert_eq!(all[0].halls, ["hall-b"]);
        assert_eq!(
            all[1].halls,
            ["sim-a"],
            "the run's hall and its probe's, once"
        );
        assert_eq!(all[0].run.plan_name, "p");
        assert_eq!(all[0].run.probes, 1);
        assert_eq!(all[0].plan_sha256.len(), 64);

        let plan_p = HistoryQuery {
            plan_name: Some("p".into()),
            ..Default::default()
        };
        assert_eq!(
            runs(&plan_p),
            [&early, &late, &tie_1, &tie_2].map(Clone::clone)
        );
        let hall = |h: &str| HistoryQuery {
            hall: Some(h.into()),
            ..Default::default()
        };
        assert_eq!(
            runs(&hall("hall-b")),
            std::slice::from_ref(&early),
            "a probe's hall label"
        );
        assert_eq!(runs(&hall("sim-a")), [other_plan.clone(), late.clone()]);
        assert_eq!(runs(&hall("nowhere")), Vec::<RunId>::new());
        let until = HistoryQuery {
            until_ns: Some(T0 + S),
            ..Default::default()
        };
        assert_eq!(
            runs(&until),
            [early.clone(), other_plan.clone()],
            "at or before"
        );

        let metric = |m: &str| HistoryQuery {
            plan_name: Some("p".into()),
            subject: Some("r01n01/0".into()),
            metric: Some(m.into()),
            ..Default::default()
        };
        let got = shape(store, &metric("throttle_s"));
        assert_eq!(
            got[0].1,
            ["r01n01/0:throttle_s", "r01n01/0:throttle_s.sw_thermal"],
            "a base matches its qualified names, not another name it begins"
        );
        let got = shape(store, &metric("throttle_s.sw_thermal"));
        assert_eq!(got[0].1, ["r01n01/0:throttle_s.sw_thermal"]);

        let tflops = HistoryQuery {
            plan_name: Some("p".into()),
            metric: Some("sustained_tflops".into()),
            subject: Some("r01n01".into()),
            ..Default::default()
        };
        let got = shape(store, &tflops);
        assert_eq!(got.len(), 4, "every run of the plan with a set: {got:?}");
        assert_eq!(
            got[0].1,
            ["r01n01/0:sustained_tflops", "r01n01/1:sustained_tflops"],
            "a prefix matches subject/…, not r01n010/0"
        );
        assert_eq!(got[2], (tie_1.clone(), vec![]), "listed, with no rows");
        let history = store.metric_history(&tflops).unwrap();
        assert_eq!(history[1].rows[0].value, Some(0.0));
        assert_eq!(history[1].rows[1].value, None, "absent, not 0");
        assert_eq!(history[3].rows[0].value, Some(5.0));

        let node = HistoryQuery {
            subject: Some("r01n01".into()),
            metric: Some("power_kw".into()),
            ..Default::default()
        };
        let got = shape(store, &node);
        assert!(
            got.iter().all(|(_, rows)| rows == &["r01n01:power_kw"]),
            "an exact subject, not r01n01x: {got:?}"
        );
    }
}

#[test]
fn a_runs_context_holds_what_makes_runs_comparable() {
    for mut t in stores("metrics-context") {
        eprintln!("on {}", t.backend);
        let id = run::build(&mut t.store);
        let sw = |pairs: &[(&str, &str)]| -> Vec<SoftwareVersion> {
            let v = |(name, version): &(&str, &str)| SoftwareVersion {
                name: name.to_string(),
                version: version.to_string(),
            };
            pairs.iter().map(v).collect()
        };
        let (n1, n2) = (NodeId::new("r1n1").unwrap(), NodeId::new("r1n2").unwrap());
        let store = &mut t.store;
        store
            .add_probe_software(&id, &n1, &sw(&[("kernel", "6.1")]))
            .unwrap();
        // Registering again replaces the list.
        let driver = sw(&[("nvml_driver", "580.65.06"), ("cuda_driver", "13.0")]);
        store.add_probe_software(&id, &n1, &driver).unwrap();
        store
            .add_probe_software(&id, &n2, &sw(&[("cuda_driver", "12.9")]))
            .unwrap();
        let stranger = NodeId::new("nobody").unwrap();
        let err = store
            .add_probe_software(&id, &stranger, &driver)
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownNode { .. }), "{err:?}");
        let ctx = t.store.run_context(id.as_str()).unwrap();
        assert_eq!(ctx.run, t.store.list_runs().unwrap()[0]);
        let record = t.store.run(id.as_str()).unwrap().unwrap();
        assert_eq!(ctx.plan_sha256, record.plan_sha256);
        assert_eq!(ctx.hallmark_version, "0.1.0");
        assert_eq!(ctx.halls, ["sim-hall-a"]);
        assert_eq!((ctx.spec_name, ctx.spec_sha256), (None, None));
        assert_eq!(
            ctx.probes[0],
            ContextProbe {
                node_id: "r1n1".into(),
                backend: "sim".into(),
                hallmark_version: "0.1.0".into(),
                hall: "sim-hall-a".into(),
                row: "row-a".into(),
                rack: "rack-01".into(),
                software: vec![
                    ("cuda_driver".into(), "13.0".into()),
                    ("nvml_driver".into(), "580.65.06".into()),
                ],
            }
        );
        assert_eq!(
            ctx.probes[1].software,
            [("cuda_driver".into(), "12.9".into())]
        );
        assert!(ctx.probes[2].software.is_empty(), "listed none: none");
        let read_only = t.reopen_read_only().run_context(id.as_str()).unwrap();
        assert_eq!(read_only.probes, ctx.probes);
        let nodes: Vec<_> = ctx.probes.iter().map(|p| p.node_id.as_str()).collect();
        assert_eq!(nodes, ["r1n1", "r1n2", "r2n1", "r2n2"]);
        assert_eq!(ctx.devices.len(), 8);
        assert_eq!(
            ctx.devices[7],
            ContextDevice {
                node_id: "r2n2".into(),
                device: 1,
                kind: "simulated_gpu".into(),
                model: "SimH200".into(),
                uuid: "GPU-sim-1".into(),
                serial: None,
                power_limit_w: Some(700.0),
            }
        );

        t.store
            .store_certification_rows(id.as_str(), "first", "name = \"first\"\n", "PASS", &[])
            .unwrap();
        t.store
            .store_certification_rows(id.as_str(), "second", "name = \"second\"\n", "FAIL", &[])
            .unwrap();
        let ctx = t.reopen_read_only().run_context(id.as_str()).unwrap();
        let second = t
            .store
            .certification_rows(id.as_str())
            .unwrap()
            .into_iter()
            .find(|c| c.spec_name == "second")
            .unwrap();
        assert_eq!(ctx.spec_name.as_deref(), Some("second"), "the latest");
        assert_eq!(ctx.spec_sha256, Some(second.spec_sha256));
        let json = serde_json::to_value(&ctx).unwrap();
        assert_eq!(json["spec_name"], "second", "flat: {json}");

        let err = t.store.run_context("20991231T000000Z-000000").unwrap_err();
        assert!(matches!(err, StoreError::UnknownRun { .. }), "{err:?}");
    }
}

/// A hall's worth of devices in one set: more dictionary entries than one insert statement takes,
/// values in bulk, a history of one device read back through the keys.
#[test]
fn a_large_set_is_stored_and_searched() {
    const DEVICES: usize = 1_200;
    let names = ["sustained_tflops", "throttle_s.sw_thermal", "power_w"];
    let rows: Vec<MetricRow> = (0..DEVICES)
        .flat_map(|d| {
            names.iter().enumerate().map(move |(m, metric)| {
                let value = (d % 11 != 0).then_some(d as f64 + m as f64 / 4.0);
                row(
                    "device",
                    &format!("r{:03}n1/{}", d / 8, d % 8),
                    metric,
                    value,
                    "u",
                )
            })
        })
        .collect();
    for mut t in stores("metrics-large") {
        eprintln!("on {}", t.backend);
        let id = t.store.create_run(&new_run()).unwrap();
        let started = std::time::Instant::now();
        t.store
            .store_run_metrics(id.as_str(), T0, "0.9.0", &rows)
            .unwrap();
        let stored = started.elapsed();
        let set = t.store.run_metrics(id.as_str()).unwrap().unwrap();
        assert_eq!(set.rows, sorted(rows.clone()));
        let started = std::time::Instant::now();
        let h = t
            .store
            .metric_history(&HistoryQuery {
                metric: Some("throttle_s".into()),
                subject: Some("r100n1/4".into()),
                ..Default::default()
            })
            .unwrap();
        eprintln!(
            "{} values stored in {stored:?}, one device's history read in {:?}",
            rows.len(),
            started.elapsed()
        );
        assert_eq!(h.len(), 1);
        assert_eq!(
            h[0].rows,
            [row(
                "device",
                "r100n1/4",
                "throttle_s.sw_thermal",
                Some(804.25),
                "u"
            )]
        );
    }
}
