//! The store's writer and read API on both backends: the same calls on a SQLite store and on a
//! PostgreSQL store (`Store::open_postgres`, a fresh database of the test server) read back the
//! same records, and a run's telemetry gives the same scan, summary and verdicts. PostgreSQL is skipped outside CI
//! when its binaries are missing, and a failure in CI.

mod common;
#[path = "../../results/tests/common/mod.rs"]
mod run;

use hallmark_protocol::facility::{
    FacilityBatch, FacilityQuantity, FacilityReading, SourceKind, Subject,
};
use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{ClockEstimate, DeviceResult, FabricMember, Labels, PhaseReport, Workload};
use hallmark_results::{demo_spec, evaluate, StoreExt};
use hallmark_store::db::pg::Timeouts;
use hallmark_store::testing::stores::stores;
use hallmark_store::{PhaseRow, ProbeRow, RunId, RunStatus, Store, StoreError, VerdictRow};
use hallmark_store::{ScanOptions, ScanOrder, Telemetry};
use run::{device_info, new_run, node, MS, T0};

fn probe(id: &str, at: i64, clock: Option<ClockEstimate>) -> ProbeRow {
    ProbeRow {
        node_id: node(id),
        labels: Labels {
            hall: "h".into(),
            row: "r1".into(),
            rack: "k1".into(),
        },
        backend: "sim".into(),
        hallmark_version: "0.1.0".into(),
        remote: Some("127.0.0.1:1".into()),
        registered_at_ns: at,
        clock,
    }
}

fn phase(phase_id: u32, name: &str, start: i64) -> PhaseRow {
    PhaseRow {
        phase_id,
        name: name.into(),
        workload: Workload::Burn,
        pattern: Pattern::Steady { level: 1.0 },
        scheduled_start_ns: start,
        duration_ms: 1000,
    }
}

fn report(phase_id: u32, gflops: f64, wrong: u64, stopped: Option<&str>) -> PhaseReport {
    PhaseReport {
        phase_id,
        ended_at_ns: T0 + 2000 * MS,
        stopped_early: stopped.map(Into::into),
        devices: (0..2)
            .map(|device| DeviceResult {
                device,
                gflops: Some(gflops + f64::from(device)),
                mem_bandwidth_gbps: None,
                wrong_elements: wrong,
            })
            .collect(),
        fabric: None,
    }
}

fn verdict(criterion: &str, measured: Option<f64>) -> VerdictRow {
    VerdictRow {
        criterion: criterion.into(),
        title: "t".into(),
        scope: "node".into(),
        subject: "n1".into(),
        status: "PASS".into(),
        measured,
        limit: Some(1.0),
        comparison: ">=".into(),
        unit: "W".into(),
        from_ns: Some(T0),
        to_ns: None,
        subjects_json: "[]".into(),
        detail: String::new(),
    }
}

/// Writes one run through every writer but telemetry, with the replacements a run makes
/// (a reconnect, devices and reports sent again, a resumed coordinator), and reads everything back
/// as text in which the run id and the certification time are masked.
/// Facility readings with values a backend could round differently, absent fields, a value that
/// is not a finite number, and a replay; what each call did goes into the readings' notes.
fn store_facility(store: &mut Store, run: &RunId) {
    let c = node("facility-1");
    let reading = |i: usize, value: Option<f64>| FacilityReading {
        source: format!("cdu-{i}"),
        kind: SourceKind::Cdu,
        subject: Subject::Row("row-1".into()),
        point: ["", "primary", "secondary"][i % 3].into(),
        quantity: FacilityQuantity::ALL[i % FacilityQuantity::ALL.len()],
        uri: format!("/redfish/v1/ThermalEquipment/CDUs/{i}#/Reading"),
        t_ns: T0 + (5 - i as i64) * MS,
        value,
        device_time_ns: i.is_multiple_of(2).then_some(T0 - 1),
        latency_us: (!i.is_multiple_of(2)).then_some(250),
        note: None,
    };
    let values = [0.1 + 0.2, 1e-300, -0.0, f64::MAX, f64::NAN, -273.15];
    let batch = FacilityBatch {
        seq: 0,
        readings: values
            .iter()
            .enumerate()
            .map(|(i, v)| reading(i, Some(*v)))
            .chain([reading(9, None)])
            .collect(),
    };
    let done = store
        .insert_facility_batches(run, &[(&c, &batch, T0), (&c, &batch, T0)])
        .unwrap();
    assert_eq!(
        done.iter().map(|d| (d.new, d.samples)).collect::<Vec<_>>(),
        [(true, 7), (false, 0)]
    );
}

fn write_and_read(store: &mut Store) -> String {
    let run = store.create_run(&new_run()).unwrap();
    let (a, b) = (node("n1"), node("n2"));
    let clock = ClockEstimate {
        offset_ns: 5,
        uncertainty_ns: 2,
        rtt_ns: 9,
        measured_at_ns: T0,
    };
    store
        .add_probe(&run, &probe("n1", T0, Some(clock)))
        .unwrap();
    store.add_probe(&run, &probe("n2", T0 + 1, None)).unwrap();
    // A reconnect keeps the first registration and the clock it does not replace.
    store.add_probe(&run, &probe("n1", T0 + 5, None)).unwrap();
    store
        .update_clock(
            &run,
            &b,
            &ClockEstimate {
                offset_ns: -3,
                ..clock
            },
        )
        .unwrap();
    store
        .add_devices(&run, &a, &[device_info(0), device_info(1)])
        .unwrap();
    let mut again = device_info(1);
    again.power_limit_w = Some(650.0);
    store.add_devices(&run, &a, &[again]).unwrap();
    store.add_devices(&run, &b, &[device_info(0)]).unwrap();
    store.add_phase(&run, &phase(1, "burn", T0)).unwrap();
    store
        .add_phase(&run, &phase(2, "first name", T0 + 1000 * MS))
        .unwrap();
    store
        .add_phase(&run, &phase(2, "second", T0 + 1000 * MS))
        .unwrap();
    store.phase_started(&run, 1, &a, T0 + 1).unwrap();
    store.phase_started(&run, 1, &a, T0 + 2).unwrap();
    store.phase_started(&run, 1, &b, T0 + 3).unwrap();
    let unknown = store.phase_started(&run, 9, &a, T0).unwrap_err();
    assert!(
        matches!(
            unknown,
            StoreError::Invalid {
                what: "phase id",
                ..
            }
        ),
        "{unknown}"
    );
    store
        .record_gap(&run, &b, T0, T0 + 100, Some(7), "lost batch")
        .unwrap();
    store
        .event(&run, T0 + 7, None, "note", "a run event")
        .unwrap();
    store
        .event(&run, T0 + 7, Some(&a), "note", "a node event")
        .unwrap();
    store
        .phase_report(&run, &a, &report(1, 10.0, 0, None))
        .unwrap();
    store
        .phase_report(&run, &a, &report(1, 20.0, 3, Some("interlock")))
        .unwrap();
    store
        .phase_report(&run, &b, &report(1, 30.0, 0, None))
        .unwrap();
    let members = [
        FabricMember {
            node_id: a.clone(),
            addr: "127.0.0.1:7001".parse().unwrap(),
        },
        FabricMember {
            node_id: b.clone(),
            addr: "127.0.0.1:7002".parse().unwrap(),
        },
    ];
    store.fabric_members(&run, 2, &members).unwrap();
    store.fabric_members(&run, 2, &members[1..]).unwrap();
    store
        .probe_lost(&run, &b, T0 + 50, "connection reset")
        .unwrap();
    store.set_coordinator(&run, "host-a", 41, T0).unwrap();
    store.set_coordinator(&run, "host-b", 42, T0 + 10).unwrap();
    store.coordinator_heartbeat(&run, T0 + 30).unwrap();
    // An older heartbeat does not move it back.
    store.coordinator_heartbeat(&run, T0 + 20).unwrap();
    let id = run.as_str();
    store
        .store_certification_rows(id, "spec", "a = 1", "FAIL", &[verdict("c0", Some(0.5))])
        .unwrap();
    store
        .store_certification_rows(
            id,
            "spec",
            "a = 2",
            "PASS",
            &[verdict("c1", Some(2.0)), verdict("c2", Some(f64::NAN))],
        )
        .unwrap();
    store_facility(store, &run);
    let before_finish = store.run_status(id).unwrap();
    store
        .finish_run(&run, T0 + 3000 * MS, RunStatus::Complete, Some("done"))
        .unwrap();

    let prefix = &id[..id.len() - 2];
    let mut out = String::new();
    let mut put = |what: &str, v: String| out.push_str(&format!("{what}: {v}\n"));
    put("status before finish", format!("{before_finish:?}"));
    put("run", format!("{:?}", store.run(id).unwrap()));
    put("unknown run", format!("{:?}", store.run("nope").unwrap()));
    put("has run", format!("{}", store.has_run(id).unwrap()));
    put("list", format!("{:?}", store.list_runs().unwrap()));
    put("latest", store.resolve_run("latest").unwrap().to_string());
    put("prefix", store.resolve_run(prefix).unwrap().to_string());
    put(
        "no prefix",
        format!("{:?}", store.resolve_run("zz").is_err()),
    );
    put("probes", format!("{:?}", store.probes(id).unwrap()));
    put("devices", format!("{:?}", store.devices(id).unwrap()));
    put("phases", format!("{:?}", store.phases(id).unwrap()));
    put("starts", format!("{:?}", store.phase_starts(id).unwrap()));
    put("reports", format!("{:?}", store.phase_reports(id).unwrap()));
    let mut results = store.phase_results(id).unwrap();
    results.sort_by(|x, y| (&x.node, x.device).cmp(&(&y.node, y.device)));
    put("results", format!("{results:?}"));
    put("gaps", format!("{:?}", store.gaps(id).unwrap()));
    put("events", format!("{:?}", store.events(id).unwrap()));
    put(
        "members",
        format!("{:?}", store.fabric_members_of(id).unwrap()),
    );
    put(
        "latency",
        format!("{:?}", store.fabric_latency(id, false).unwrap()),
    );
    put(
        "collectives",
        format!("{:?}", store.fabric_collectives(id).unwrap()),
    );
    put("faults", format!("{:?}", store.fabric_faults(id).unwrap()));
    put(
        "facility",
        format!("{:?}", store.facility_readings(id).unwrap()),
    );
    put("simulation", format!("{:?}", store.simulation(id).unwrap()));
    put(
        "coordinator",
        format!("{:?}", store.coordinator_of(id).unwrap()),
    );
    put("status", format!("{:?}", store.run_status(id).unwrap()));
    put("plan", store.run_plan_toml(id).unwrap());
    put("resume", format!("{:?}", store.resume_points(id).unwrap()));
    put(
        "legacy",
        format!("{}", store.legacy_histograms(id).unwrap()),
    );
    put(
        "last data",
        format!("{:?}", store.last_data_ns(id).unwrap()),
    );
    let mut certs = store.certification_rows(id).unwrap();
    certs.iter_mut().for_each(|c| c.certified_at_ns = 0);
    put("certifications", format!("{certs:?}"));
    out.replace(id, "RUN")
}

#[test]
fn both_backends_store_and_read_back_the_same() {
    let mut seen = Vec::new();
    for mut b in stores("backends") {
        let text = write_and_read(&mut b.store);
        seen.push((b.backend, text));
    }
    let (_, sqlite) = &seen[0];
    // What the calls mean, checked on SQLite (and so on PostgreSQL, which must read the same).
    for want in [
        "status before finish: Running",
        "status: Complete",
        "registered_at_ns: 1795918500000000000, lost: None, clock_offset_ns: Some(5)",
        "power_limit_w: Some(650.0)",
        "name: \"second\"",
        "actual_start_ns: 1795918500000000002",
        "stopped_early: Some(\"interlock\"), gflops: Some(41.0), wrong_elements: 6",
        "rank: 0, node: \"n2\"",
        "heartbeat_ns: 1795918500000000030",
        "host: \"host-b\", pid: 42",
        "simulated_devices: 3, devices: 3, simulated_nodes: 2, nodes: 2",
        "probes: 2, samples: 0",
        "next_seq: 0",
        "legacy: 0",
        "last data: None",
        "spec_toml: \"a = 2\"",
        "measured: None",
        "value: Some(0.30000000000000004)",
        "value: Some(1e-300)",
        "point: \"secondary\", quantity: SupplyTempC, uri: \"/redfish/v1/ThermalEquipment/CDUs/2#/Reading\", t_ns: 1795918500003000000, value: Some(0.0)",
        "value: Some(-273.15)",
        "value: None, device_time_ns: Some(1795918499999999999), latency_us: None, note: Some(\"not a finite number\")",
    ] {
        assert!(sqlite.contains(want), "{want:?} not in\n{sqlite}");
    }
    assert!(
        !sqlite.contains("criterion: \"c0\"") && sqlite.contains("criterion: \"c2\""),
        "the replaced certification is gone\n{sqlite}"
    );
    for (name, text) in &seen[1..] {
        for (s, p) in sqlite.lines().zip(text.lines()) {
            assert_eq!(s, p, "sqlite vs {name}");
        }
        assert_eq!(
            sqlite.lines().count(),
            text.lines().count(),
            "sqlite vs {name}"
        );
    }
}

/// What a run's telemetry gives on one backend: every scan record in both orders, the summary
/// (without the run id, which is drawn at random) and the demo spec's verdicts, as JSON.
fn telemetry_results(store: &mut Store) -> (Vec<Telemetry>, serde_json::Value, serde_json::Value) {
    let run = run::build(store);
    let mut records = Vec::new();
    for order in [ScanOrder::Stored, ScanOrder::NodeSequence] {
        let opts = ScanOptions {
            order,
            ..ScanOptions::ALL
        };
        store
            .scan_telemetry::<StoreError>(run.as_str(), opts, |r| {
                records.push(r);
                Ok(())
            })
            .unwrap();
    }
    let mut summary = serde_json::to_value(store.run_summary(run.as_str()).unwrap()).unwrap();
    summary.as_object_mut().unwrap().remove("run_id");
    let verdicts = evaluate(store, run.as_str(), &demo_spec()).unwrap();
    (records, summary, serde_json::to_value(verdicts).unwrap())
}

#[test]
fn telemetry_reads_back_the_same_on_both_backends() {
    let mut seen = Vec::new();
    for mut t in stores("telemetry") {
        seen.push((t.backend, telemetry_results(&mut t.store)));
    }
    let (_, (records, summary, verdicts)) = &seen[0];
    // 4 nodes × 120 instants of node power, 2 devices each, less r2n2's lost batch of 10 instants.
    assert_eq!(records.len(), 2 * (4 * 120 * 3 - 10 * 3), "both orders");
    assert!(summary["samples_stored"].as_u64() > Some(0), "{summary}");
    assert!(
        verdicts.as_array().is_some_and(|v| !v.is_empty()),
        "{verdicts}"
    );
    for (name, (r, s, v)) in &seen[1..] {
        assert!(r == records, "{name}: the scan differs from SQLite's");
        assert_eq!(s, summary, "{name}: the summary differs from SQLite's");
        assert_eq!(v, verdicts, "{name}: the verdicts differ from SQLite's");
    }
}

#[test]
fn a_postgres_store_opens_again_at_the_same_version() {
    let Some(db) = common::database() else {
        return;
    };
    let mut first = Store::open_postgres(&db.target, &Timeouts::default()).unwrap();
    let run = first.create_run(&new_run()).unwrap();
    drop(first);
    let again = Store::open_postgres(&db.target, &Timeouts::default()).unwrap();
    assert!(again.has_run(run.as_str()).unwrap());
    assert!(again.path().to_string_lossy().starts_with("postgres://"));
}

#[test]
fn a_postgres_store_can_be_dropped_inside_async_code() {
    let Some(db) = common::database() else {
        return;
    };
    let store = Store::open_postgres(&db.target, &Timeouts::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // The sync client's own drop blocks on its runtime, which panics on a runtime's thread.
    runtime.block_on(async move { drop(store) });
    // The connection is closed once the drop returns: the database can be dropped at once.
    drop(db);
}

#[test]
fn text_sorts_in_byte_order_whatever_the_databases_collation() {
    let Some(server) = common::server() else {
        return;
    };
    // A database whose default collation is ICU's en-US, where "a" < "b" < "B" (byte order: "B" <
    // "a" < "b"), as a site's database may well be.
    let name = format!("hallmark_t_icu_{}", std::process::id());
    let mut admin = hallmark_store::db::pg::connect(server.admin(), &Timeouts::default()).unwrap();
    admin
        .execute_batch(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' \
             LOCALE 'C'"
        ))
        .unwrap();
    let mut target = server.admin().clone();
    target.dbname = name.clone();
    let ids = ["b", "B", "a"];
    let sorted: Vec<String> = {
        let mut store = Store::open_postgres(&target, &Timeouts::default()).unwrap();
        let run = store.create_run(&new_run()).unwrap();
        for id in ids {
            store.add_probe(&run, &probe(id, T0, None)).unwrap();
        }
        store
            .probes(run.as_str())
            .unwrap()
            .into_iter()
            .map(|p| p.node)
            .collect()
    };
    admin
        .execute_batch(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .unwrap();
    assert_eq!(sorted, ["B", "a", "b"], "byte order, as on SQLite");
}
