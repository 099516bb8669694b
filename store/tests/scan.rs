//! The telemetry scan: every column of every record comes back, absent values as `None`, in the
//! order asked for (as stored, or node by node in sequence order), and only the kinds asked for, on
//! both backends (SQLite, and PostgreSQL when a server is at hand: `hallmark_store::testing::stores`).

use hallmark_protocol::{DeviceInfo, DeviceKind, Labels, NodeId, Sample, TelemetryBatch};
use hallmark_store::testing::stores::stores;
use hallmark_store::{
    NewRun, ProbeRow, RunId, ScanOptions, ScanOrder, Store, StoreError, Telemetry,
};

const T0: i64 = 1_795_918_500_000_000_000;

fn setup(store: &mut Store) -> (RunId, Vec<NodeId>) {
    let run = store
        .create_run(&NewRun {
            name: "scan".into(),
            plan_name: "p".into(),
            plan_toml: String::new(),
            hall: None,
            started_at_ns: T0,
            hallmark_version: "test".into(),
            sample_hz: 10.0,
        })
        .unwrap();
    let nodes: Vec<NodeId> = ["a", "b"]
        .iter()
        .map(|n| NodeId::new(*n).unwrap())
        .collect();
    for id in &nodes {
        store
            .add_probe(
                &run,
                &ProbeRow {
                    node_id: id.clone(),
                    labels: Labels {
                        hall: "h".into(),
                        row: "r".into(),
                        rack: "k".into(),
                    },
                    backend: "sim".into(),
                    hallmark_version: "test".into(),
                    remote: None,
                    registered_at_ns: T0,
                    clock: None,
                },
            )
            .unwrap();
        let device = DeviceInfo {
            index: 0,
            kind: DeviceKind::SimulatedGpu,
            model: "sim".into(),
            uuid: format!("sim-{id}"),
            serial: None,
            memory_bytes: None,
            power_limit_w: None,
            idle_power_w: None,
            slowdown_temp_c: None,
            shutdown_temp_c: None,
            max_operating_temp_c: None,
        };
        store.add_devices(&run, id, &[device]).unwrap();
    }
    (run, nodes)
}

/// A batch whose one sample and one power reading are at `T0 + t_ms` ms.
fn batch(seq: u64, t_ms: i64, full: bool) -> TelemetryBatch {
    let t = T0 + t_ms * 1_000_000;
    TelemetryBatch {
        seq,
        node_power_w: vec![(t, if full { 1000.0 } else { f32::NAN })],
        samples: vec![Sample {
            t_ns: t,
            device: 0,
            power_w: full.then_some(500.0),
            energy_j: full.then_some(12.5),
            gpu_temp_c: full.then_some(70.0),
            mem_temp_c: full.then_some(60.0),
            sm_clock_mhz: full.then_some(1980),
            util_pct: full.then_some(99.0),
            throttle_reasons: if full { 0x40 } else { 0 },
        }],
        gaps: Vec::new(),
    }
}

fn collect(store: &Store, run: &RunId, opts: ScanOptions) -> Vec<Telemetry> {
    let mut out = Vec::new();
    store
        .scan_telemetry::<StoreError>(run.as_str(), opts, |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
    out
}

#[test]
fn the_scan_returns_every_column_in_the_order_asked_for() {
    for mut t in stores("order") {
        eprintln!("on {}", t.backend);
        let store = &mut t.store;
        let (run, nodes) = setup(store);
        // Arrival: b#0 (t 0), a#1 (t 200, absent values), a#0 (t 100, a late batch).
        store
            .insert_batch(&run, &nodes[1], &batch(0, 0, true), T0)
            .unwrap();
        store
            .insert_batch(&run, &nodes[0], &batch(1, 200, false), T0)
            .unwrap();
        store
            .insert_batch(&run, &nodes[0], &batch(0, 100, true), T0)
            .unwrap();
        let keys: Vec<i64> = store
            .probes(run.as_str())
            .unwrap()
            .iter()
            .map(|p| p.key)
            .collect();
        let sample_t = |recs: &[Telemetry]| -> Vec<i64> {
            recs.iter()
                .filter_map(|r| match r {
                    Telemetry::Sample(s) => Some((s.t_ns - T0) / 1_000_000),
                    Telemetry::NodePower(_) => None,
                })
                .collect()
        };

        let stored = collect(store, &run, ScanOptions::ALL);
        assert_eq!(stored.len(), 6);
        assert_eq!(sample_t(&stored), [0, 200, 100], "as stored");

        let by_node = collect(
            store,
            &run,
            ScanOptions {
                order: ScanOrder::NodeSequence,
                node_power: false,
                samples: true,
            },
        );
        assert_eq!(
            sample_t(&by_node),
            [100, 200, 0],
            "node a by sequence, then b"
        );
        let Telemetry::Sample(full) = by_node[0] else {
            panic!("samples only")
        };
        assert_eq!(full.node_key, keys[0]);
        assert_eq!(
            (
                full.device,
                full.power_w,
                full.energy_j,
                full.gpu_temp_c,
                full.mem_temp_c
            ),
            (0, Some(500.0), Some(12.5), Some(70.0), Some(60.0))
        );
        assert_eq!(
            (full.sm_clock_mhz, full.util_pct, full.throttle_reasons),
            (Some(1980), Some(99.0), 0x40)
        );
        let Telemetry::Sample(absent) = by_node[1] else {
            panic!("samples only")
        };
        assert_eq!(
            (
                absent.power_w,
                absent.energy_j,
                absent.gpu_temp_c,
                absent.mem_temp_c
            ),
            (None, None, None, None)
        );
        assert_eq!((absent.sm_clock_mhz, absent.util_pct), (None, None));

        let power = collect(
            store,
            &run,
            ScanOptions {
                order: ScanOrder::NodeSequence,
                node_power: true,
                samples: false,
            },
        );
        let readings: Vec<(i64, i64, Option<f64>)> = power
            .iter()
            .map(|r| match r {
                Telemetry::NodePower(p) => (p.node_key, (p.t_ns - T0) / 1_000_000, p.power_w),
                Telemetry::Sample(_) => panic!("node power only"),
            })
            .collect();
        assert_eq!(
            readings,
            [
                (keys[0], 100, Some(1000.0)),
                (keys[0], 200, None),
                (keys[1], 0, Some(1000.0))
            ]
        );
        assert!(collect(store, &RunId::new("nope"), ScanOptions::ALL).is_empty());
    }
}

#[test]
fn the_visitor_error_stops_the_scan() {
    for mut t in stores("stop") {
        eprintln!("on {}", t.backend);
        let store = &mut t.store;
        let (run, nodes) = setup(store);
        for seq in 0..3 {
            let b = batch(seq, seq as i64 * 100, true);
            store.insert_batch(&run, &nodes[0], &b, T0).unwrap();
        }
        let mut seen = 0;
        let err = store
            .scan_telemetry::<StoreError>(run.as_str(), ScanOptions::ALL, |_| {
                seen += 1;
                Err(StoreError::Invalid {
                    what: "test",
                    detail: "stop".into(),
                })
            })
            .unwrap_err();
        assert_eq!(seen, 1);
        assert!(err.to_string().contains("stop"), "{err}");
    }
}
