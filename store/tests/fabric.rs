//! Fabric phases in the store: members, latency pairs (histograms decoded, percentiles as columns),
//! collectives and faults written with the phase report, refused whole when a histogram does not
//! decode, replaced by a repeated report; the summary's numbers worked by hand; `hallmark runs show`;
//! the schema upgrade from version 2 (with the report note on a legacy histogram row it keeps).

#[path = "../../results/tests/fabric_support/mod.rs"]
mod fabric_support;
#[path = "../../results/tests/spec_support/mod.rs"]
mod spec_support;

use fabric_support::{blob, nid, Fabric, COLL, MESH, MIB, T0};
use hallmark_protocol::{CollectiveOp, FabricMember, FabricReport, LatencyPair, PhaseReport};
use hallmark_results::{render_text, RunId, Store, StoreError, StoreExt};
use spec_support::{Run, TempDir};

fn stored(dir: &TempDir, f: &Fabric) -> (Store, RunId) {
    let mut store = Store::open(dir.path()).unwrap();
    let run = Run::default().store(&mut store);
    f.store(&mut store, &run);
    (store, run)
}

/// Within HDR's precision at 3 significant digits (and exact below it).
fn near(got: f64, want: f64) {
    assert!(
        (got - want).abs() <= want.abs() * 1e-3,
        "{got} is not within 0.1 % of {want}"
    );
}

fn count(store: &Store, sql: &str) -> i64 {
    rusqlite::Connection::open(store.path())
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Node r2n1 is slow (its pairs: 99 round trips of 50 µs and one of 1 ms), every packet from
/// r1n2 to r2n2 is lost, r2n2 does not report its pair to r1n1; the other pairs take
/// (10 + 10 src + dst) µs. r1n2 misses all-gather at 16 MiB; r2n1 finds 5 wrong elements in
/// all-gather at 1 MiB; r1n2 reports a fault.
fn hand_worked() -> Fabric {
    Fabric {
        rtt: Box::new(|s, d| match (s, d) {
            (3, 0) => None,
            (1, 3) => Some(Vec::new()),
            (2, _) | (_, 2) => Some(vec![(50_000, 99), (1_000_000, 1)]),
            _ => Some(vec![(fabric_support::default_rtt(s, d), 100)]),
        }),
        lost: Box::new(|s, d| if (s, d) == (1, 3) { 100 } else { 0 }),
        collective: Box::new(|n, op, size| {
            if (n, op, size) == (1, CollectiveOp::AllGather, 16 * MIB) {
                return None;
            }
            let wrong = if (n, op, size) == (2, CollectiveOp::AllGather, MIB) {
                5
            } else {
                0
            };
            let base = size as f64 / (64 * MIB) as f64 * 10e6;
            Some(((base * if n == 3 { 1.05 } else { 1.0 }) as u64, wrong))
        }),
        faults: vec![(1, Some(3), "no answer from r2n2 within 2 s")],
        ..Fabric::default()
    }
}

#[test]
fn a_fabric_run_is_stored_and_summarised() {
    let dir = TempDir::new("fabric");
    let (store, run) = stored(&dir, &hand_worked());
    let s = store.fabric_summary(run.as_str()).unwrap();
    assert_eq!(s.phases.len(), 2);
    let mesh = &s.phases[0];
    assert_eq!((mesh.phase_id, mesh.name.as_str()), (MESH, "mesh"));
    assert!(mesh.members_stored && mesh.is_latency() && !mesh.is_collective());
    assert_eq!(mesh.members[2].node, "r2n1");
    assert_eq!(mesh.members[2].addr, "127.0.0.1:47002");
    let l = mesh.latency.as_ref().unwrap();
    assert_eq!((l.pairs_expected, l.pairs_reported), (12, 11));
    assert_eq!(l.missing.len(), 1);
    assert_eq!(l.missing[0].to_string(), "r2n2→r1n1");
    assert_eq!(l.all_lost.len(), 1);
    assert_eq!(l.all_lost[0].to_string(), "r1n2→r2n2");
    assert_eq!((l.sent, l.lost), (1100, 100));
    // Hall: 1000 round trips, 100 each of 11, 13, 20 and 41 µs, 594 of 50 µs, 6 of 1 ms.
    let h = l.hall.unwrap();
    assert_eq!(h.count, 1000);
    near(h.p50_us, 50.0);
    near(h.p99_us, 50.0);
    near(h.p999_us, 1000.0);
    near(h.max_us, 1000.0);
    // r1n1: its 5 reported pairs, 100 each of 11, 13, 20 µs, 198 of 50 µs and 2 of 1 ms.
    let n0 = &l.nodes[0];
    assert_eq!(
        (n0.node.as_str(), n0.pairs, n0.sent, n0.lost),
        ("r1n1", 5, 500, 0)
    );
    let r = n0.rtt.unwrap();
    assert_eq!(r.count, 500);
    near(r.p50_us, 20.0);
    near(r.p99_us, 50.0);
    near(r.p999_us, 1000.0);
    // r2n2: the lost pair counts in its packets, not in its round trips.
    let n3 = &l.nodes[3];
    assert_eq!((n3.pairs, n3.sent, n3.lost), (5, 500, 100));
    assert_eq!(n3.rtt.unwrap().count, 400);
    // The worst pairs all involve r2n1.
    let worst: Vec<String> = l.worst.iter().map(|p| p.pair().to_string()).collect();
    assert_eq!(
        worst,
        [
            "r1n1→r2n1",
            "r1n2→r2n1",
            "r2n1→r1n1",
            "r2n1→r1n2",
            "r2n1→r2n2"
        ]
    );
    near(l.worst[0].rtt.unwrap().p99_us, 50.0);
    let slow = l.slow_node.as_ref().unwrap();
    assert_eq!(
        (slow.node.as_str(), slow.in_worst, slow.worst),
        ("r2n1", 5, 5)
    );

    // Percentile columns for queries.
    let p99 = count(
        &store,
        "SELECT rtt_p99_ns FROM fabric_latency WHERE src = 'r1n1' AND dst = 'r1n2'",
    );
    near(p99 as f64, 11_000.0);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM fabric_latency WHERE rtt_p50_ns IS NULL"
        ),
        1,
        "the lost pair has no percentiles"
    );

    let coll = &s.phases[1];
    assert_eq!(
        (coll.phase_id, coll.workload.as_str()),
        (COLL, "collective")
    );
    assert!(coll.latency.is_none());
    let ops: Vec<(&str, u64)> = coll
        .collectives
        .iter()
        .map(|c| (c.op.as_str(), c.size_bytes))
        .collect();
    assert_eq!(
        ops,
        [
            ("all-reduce", MIB),
            ("all-reduce", 16 * MIB),
            ("all-reduce", 64 * MIB),
            ("all-gather", MIB),
            ("all-gather", 16 * MIB),
            ("all-gather", 64 * MIB)
        ]
    );
    // all-reduce 64 MiB: the slowest rank (r2n2) 10.5 ms; algbw = 67 108 864 B / 10.5 ms, busbw
    // × 2 · 3 / 4.
    let ar = &coll.collectives[2];
    assert_eq!((ar.ranks, ar.ranks_reported, ar.iterations), (4, 4, 20));
    assert_eq!(
        (ar.slowest.as_str(), ar.algorithm.as_str()),
        ("r2n2", "ring")
    );
    assert!((ar.time_us - 10_500.0).abs() < 1e-6);
    assert!((ar.algbw_gb_s - 6.391_320_380_952_381).abs() < 1e-9);
    assert!((ar.busbw_gb_s - 9.586_980_571_428_57).abs() < 1e-9);
    assert_eq!(ar.count, 16 * MIB);
    // all-gather: 5 wrong elements on r2n1 at 1 MiB, r1n2 missing at 16 MiB (bus factor 3/4).
    let ag = &coll.collectives[3];
    assert_eq!(
        (ag.wrong_elements, ag.wrong_nodes.clone()),
        (5, vec!["r2n1".to_string()])
    );
    let ag16 = &coll.collectives[4];
    assert_eq!((ag16.ranks, ag16.ranks_reported), (4, 3));
    assert_eq!(ag16.missing, ["r1n2"]);
    assert!((ag16.busbw_gb_s - ag16.algbw_gb_s * 0.75).abs() < 1e-12);
    assert_eq!(mesh.faults.len(), 1);
    assert_eq!(mesh.faults[0].peer.as_deref(), Some("r2n2"));

    // The run summary carries the same phases, and `runs show` prints them.
    let summary = store.run_summary(run.as_str()).unwrap();
    assert_eq!(summary.fabric, s.phases);
    let text = render_text(&summary);
    println!("{text}");
    for line in [
        "Fabric phase 3 \"mesh\" (latency, 4 members, 4 reported)",
        "latency mesh: 11 of 12 pairs reported, 1100 packets sent, 100 lost (9.091 %)",
        "worst pairs by p99: r1n1→r2n1 50.02 µs",
        "! pairs involving r2n1 are the slowest: 5 of the 5 worst pairs",
        "! 1 pair(s) not measured: r2n2→r1n1",
        "! every packet lost on 1 pair(s): r1n2→r2n2",
        "! fault on r1n2 (peer r2n2): no answer from r2n2 within 2 s",
        "Fabric phase 4 \"allreduce\" (collective, 4 members, 4 reported)",
        "! all-gather 16 MiB: 1 of 4 ranks did not report: r1n2",
        "! 5 wrong elements in collective results (marked !)",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let row = text
        .lines()
        .find(|l| l.contains("67108864"))
        .expect("the all-reduce 64 MiB row");
    for cell in [
        "16777216",
        "all-reduce",
        "ring",
        "10500.00",
        "6.391",
        "9.587",
        " 0",
    ] {
        assert!(row.contains(cell), "{cell:?} in {row:?}");
    }
    // JSON keeps it.
    let json = serde_json::to_string(&summary).unwrap();
    assert!(json.contains("\"busbw_gb_s\":9.58698057142857"));
}

#[test]
fn a_histogram_that_does_not_decode_refuses_the_whole_report() {
    let dir = TempDir::new("fabric-bad");
    let (mut store, run) = stored(
        &dir,
        &Fabric {
            mesh_report: Box::new(|n| n != 0),
            ..Fabric::default()
        },
    );
    let pair = |dst: usize, hist: Vec<u8>| LatencyPair {
        src: nid(0),
        dst: nid(dst),
        sent: 10,
        lost: 0,
        rtt_ns_hist: hist,
    };
    let mut bad = blob(&[(10_000, 10)]);
    let len = bad.len();
    bad.truncate(len - 5);
    let report = |latency: Vec<LatencyPair>| PhaseReport {
        phase_id: MESH,
        ended_at_ns: T0,
        stopped_early: None,
        devices: Vec::new(),
        fabric: Some(FabricReport {
            latency,
            collectives: Vec::new(),
            faults: Vec::new(),
        }),
    };
    let before = count(&store, "SELECT count(*) FROM fabric_latency");
    let reports = count(
        &store,
        "SELECT count(*) FROM phase_reports WHERE phase_id = 3",
    );
    let err = store
        .phase_report(
            &run,
            &nid(0),
            &report(vec![pair(1, blob(&[(10_000, 10)])), pair(2, bad)]),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    assert!(
        msg.contains("pair r1n1→r2n1")
            && msg.contains("does not decode")
            && msg.contains("announces"),
        "{msg}"
    );
    assert_eq!(count(&store, "SELECT count(*) FROM fabric_latency"), before);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM phase_reports WHERE phase_id = 3"
        ),
        reports,
        "not even the report's row"
    );
    // Another node's pair, a pair twice, more lost than sent: refused the same way.
    let mut other = pair(1, blob(&[(10_000, 10)]));
    other.src = nid(3);
    let err = store
        .phase_report(&run, &nid(0), &report(vec![other]))
        .unwrap_err();
    assert!(err.to_string().contains("pairs it initiated"), "{err}");
    let twice = vec![pair(1, blob(&[])), pair(1, blob(&[]))];
    let err = store
        .phase_report(&run, &nid(0), &report(twice))
        .unwrap_err();
    assert!(err.to_string().contains("given twice"), "{err}");
    let mut lossy = pair(1, blob(&[]));
    lossy.lost = 11;
    let err = store
        .phase_report(&run, &nid(0), &report(vec![lossy]))
        .unwrap_err();
    assert!(
        err.to_string().contains("11 packets lost of 10 sent"),
        "{err}"
    );
    assert_eq!(count(&store, "SELECT count(*) FROM fabric_latency"), before);

    // A good report goes in; a repeated one replaces it.
    store
        .phase_report(
            &run,
            &nid(0),
            &report(vec![
                pair(1, blob(&[(10_000, 10)])),
                pair(2, blob(&[(20_000, 10)])),
            ]),
        )
        .unwrap();
    assert_eq!(
        count(&store, "SELECT count(*) FROM fabric_latency"),
        before + 2
    );
    store
        .phase_report(&run, &nid(0), &report(vec![pair(3, blob(&[(30_000, 10)]))]))
        .unwrap();
    assert_eq!(
        count(&store, "SELECT count(*) FROM fabric_latency"),
        before + 1
    );
    let dsts = count(
        &store,
        "SELECT count(*) FROM fabric_latency WHERE src = 'r1n1' AND dst = 'r2n2'",
    );
    assert_eq!(dsts, 1);
    // A report without fabric data removes the node's fabric rows of that phase.
    let mut plain = report(Vec::new());
    plain.fabric = None;
    store.phase_report(&run, &nid(0), &plain).unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM fabric_latency"), before);
}

#[test]
fn fabric_members_are_idempotent_and_checked() {
    let dir = TempDir::new("fabric-members");
    let (mut store, run) = stored(&dir, &Fabric::default());
    let members: Vec<FabricMember> = (0..4)
        .map(|i| FabricMember {
            node_id: nid(3 - i),
            addr: format!("[::1]:{}", 5000 + i).parse().unwrap(),
        })
        .collect();
    store.fabric_members(&run, MESH, &members).unwrap();
    store.fabric_members(&run, MESH, &members).unwrap();
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM fabric_members WHERE phase_id = 3"
        ),
        4
    );
    let s = store.fabric_summary(run.as_str()).unwrap();
    let m: Vec<(u32, &str, &str)> = s.phases[0]
        .members
        .iter()
        .map(|m| (m.rank, m.node.as_str(), m.addr.as_str()))
        .collect();
    assert_eq!(m[0], (0, "r2n2", "[::1]:5000"));
    assert_eq!(m[3], (3, "r1n1", "[::1]:5003"));

    let twice = vec![members[0].clone(), members[0].clone()];
    let err = store.fabric_members(&run, MESH, &twice).unwrap_err();
    assert!(err.to_string().contains("listed twice"), "{err}");
    let err = store.fabric_members(&run, 99, &members).unwrap_err();
    assert!(err.to_string().contains("phase 99"), "{err}");
    assert!(err.to_string().contains("add_phase"), "{err}");
    let stranger = vec![FabricMember {
        node_id: hallmark_protocol::NodeId::new("r9n9").unwrap(),
        addr: "127.0.0.1:1".parse().unwrap(),
    }];
    let err = store.fabric_members(&run, MESH, &stranger).unwrap_err();
    assert!(matches!(err, StoreError::UnknownNode { .. }), "{err:?}");
    // Nothing of the refused calls changed the stored members.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM fabric_members WHERE phase_id = 3"
        ),
        4
    );
    assert!(matches!(
        store.fabric_summary("no-such-run").unwrap_err(),
        StoreError::UnknownRun { .. }
    ));
}

#[test]
fn without_stored_members_the_nodes_seen_stand_in() {
    let dir = TempDir::new("fabric-inferred");
    let (store, run) = stored(
        &dir,
        &Fabric {
            members: false,
            ..Fabric::default()
        },
    );
    let s = store.fabric_summary(run.as_str()).unwrap();
    let mesh = &s.phases[0];
    assert!(!mesh.members_stored);
    assert_eq!(mesh.members.len(), 4);
    assert_eq!(mesh.latency.as_ref().unwrap().pairs_expected, 12);
    assert!(render_text(&store.run_summary(run.as_str()).unwrap())
        .contains("(latency, 4 nodes seen; members not stored, 4 reported)"));
}

#[test]
fn a_version_2_store_upgrades_to_version_3() {
    for legacy_row in [false, true] {
        let dir = TempDir::new("fabric-migrate");
        std::fs::create_dir_all(dir.path()).unwrap();
        let path = dir.path().join(hallmark_results::DB_FILE);
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            for m in &hallmark_results::MIGRATIONS[..2] {
                conn.execute_batch(m).unwrap();
            }
            conn.execute_batch(&format!(
                "PRAGMA application_id = {}; PRAGMA user_version = 2;",
                hallmark_results::APPLICATION_ID
            ))
            .unwrap();
            conn.execute(
                "INSERT INTO runs (run_id, name, plan_name, plan_toml, plan_sha256, started_at_ns, \
                 status, hallmark_version, sample_hz) VALUES ('20261129T021500Z-aaaaaa', 'old', 'p', \
                 '', '', 1, 'complete', '0.1.0', 10.0)",
                [],
            )
            .unwrap();
            if legacy_row {
                conn.execute_batch(
                    "PRAGMA foreign_keys = OFF; INSERT INTO phase_histograms VALUES \
                     ('20261129T021500Z-aaaaaa', 1, 'n1', 'rtt', x'00');",
                )
                .unwrap();
            }
        }
        let err = Store::open_read_only(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("open it once for writing"),
            "{err}"
        );
        let mut store = Store::open(dir.path()).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, hallmark_results::SCHEMA_VERSION);
        let legacy: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'phase_histograms'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(legacy, i64::from(legacy_row), "dropped only when empty");
        let old = store.list_runs().unwrap()[0].run_id.clone();
        assert!(store
            .fabric_summary(old.as_str())
            .unwrap()
            .phases
            .is_empty());
        assert!(store.run_summary(old.as_str()).unwrap().fabric.is_empty());
        // The upgraded store takes a fabric run like a new one.
        let run = Run::default().store(&mut store);
        Fabric::default().store(&mut store, &run);
        assert_eq!(store.fabric_summary(run.as_str()).unwrap().phases.len(), 2);
        if legacy_row {
            let out = dir.path().join("report");
            hallmark_report::write_report(&store, old.as_str(), &[], &out).unwrap();
            let html = std::fs::read_to_string(out.join("index.html")).unwrap();
            assert!(html.contains("holds 1 row(s) of this run"), "legacy note");
        }
    }
    // A new store has no legacy table at all.
    let dir = TempDir::new("fabric-new");
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM sqlite_master WHERE name = 'phase_histograms'"
        ),
        0
    );
}
