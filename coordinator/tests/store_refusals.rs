//! The store recorder: a record the store refuses (one probe's bad data) is left out and noted;
//! other nodes' records and their acknowledgements go on, and the call does not fail (which would
//! abort the run).

mod common;

use common::{batch, labels, node};
use hallmark_coordinator::record::{Record, Recorder};
use hallmark_coordinator::StoreRecorder;
use hallmark_protocol::NodeId;
use hallmark_results::StoreExt;
use hallmark_store::{NewRun, ProbeRow, Store};

const T0: i64 = 1_700_000_000_000_000_000;

struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn telemetry(node: &NodeId, seq: u64) -> Record {
    Record::Telemetry {
        node_id: node.clone(),
        batch: batch(seq, T0 + seq as i64 * 1_000_000_000, 1, 1, 0),
        received_at_ns: T0 + seq as i64 * 1_000_000_000,
    }
}

#[test]
fn a_refused_record_keeps_other_nodes_records_and_acks() {
    let dir = Dir(std::env::temp_dir().join(format!("hallmark-refusals-{}", std::process::id())));
    let mut store = Store::open(&dir.0).unwrap();
    let run = store
        .create_run(&NewRun {
            name: "refusals".into(),
            plan_name: "p".into(),
            plan_toml: "[plan]\nname = \"p\"\n".into(),
            hall: None,
            started_at_ns: T0,
            hallmark_version: "0".into(),
            sample_hz: 1.0,
        })
        .unwrap();
    let (good, bad) = (node("good"), node("bad"));
    for n in [&good, &bad] {
        let row = ProbeRow {
            node_id: n.clone(),
            labels: labels("k"),
            backend: "sim".into(),
            hallmark_version: "0".into(),
            remote: None,
            registered_at_ns: T0,
            clock: None,
        };
        store.add_probe(&run, &row).unwrap();
    }
    let mut rec = StoreRecorder::new(store, run.clone());
    let records = vec![
        telemetry(&good, 0),
        // A sequence number SQLite cannot hold, in the same transaction as good's batches.
        telemetry(&bad, u64::MAX - 1),
        telemetry(&good, 1),
        // Gaps are written together: good's two around bad's that ends before it starts, which
        // is left out alone. Then a phase that does not exist.
        gap(&good, T0, T0 + 100, "sampler late"),
        Record::Gap {
            node_id: bad.clone(),
            from_ns: T0 + 5,
            to_ns: T0,
            instants: Some(1),
            reason: "forged".into(),
        },
        gap(&good, T0 + 200, T0 + 300, "sampler late again"),
        Record::PhaseStarted {
            node_id: bad.clone(),
            phase_id: 99,
            actual_start_ns: T0,
        },
        telemetry(&good, 2),
    ];
    let written = rec
        .record(records)
        .expect("refused records must not fail the call (that aborts the run)");
    assert_eq!(
        written.stored,
        vec![(good.clone(), 0), (good.clone(), 1), (good.clone(), 2)]
    );
    // Said refused, so that it stops counting against bad's telemetry budget.
    assert_eq!(written.refused, vec![(bad.clone(), u64::MAX - 1)]);
    let store = Store::open(&dir.0).unwrap();
    let s = store.run_summary(run.as_str()).unwrap();
    assert_eq!(s.samples_stored, 3, "good's three samples stored");
    let notes: Vec<_> = s
        .events
        .iter()
        .filter(|e| e.node.as_deref() == Some("bad"))
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(notes.len(), 3, "{notes:?}");
    for what in ["telemetry batch", "a gap", "a phase start"] {
        assert!(notes.iter().any(|n| n.contains(what)), "{what}: {notes:?}");
    }
    let gaps: Vec<_> = store
        .gaps(run.as_str())
        .unwrap()
        .into_iter()
        .map(|g| (g.node, g.from_ns, g.reason))
        .collect();
    assert_eq!(
        gaps,
        vec![
            ("good".to_string(), T0, "sampler late".to_string()),
            (
                "good".to_string(),
                T0 + 200,
                "sampler late again".to_string()
            ),
        ]
    );
}

fn gap(node: &NodeId, from_ns: i64, to_ns: i64, reason: &str) -> Record {
    Record::Gap {
        node_id: node.clone(),
        from_ns,
        to_ns,
        instants: Some(1),
        reason: reason.into(),
    }
}
