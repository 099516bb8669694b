//! `hallmark runs starts RUN [--json]`: every probe's start of every phase against its scheduled
//! start, from a real (simulated-hall) run and from a store written here; absent clock estimates
//! are null, never 0; an unknown run, a store without the run and a store that is not there are
//! refused with what to do.

mod common;

use common::process::*;
use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{ClockEstimate, Labels, NodeId, Workload};
use hallmark_store::{NewRun, PhaseRow, ProbeRow, Store};
use std::path::Path;

fn ok(args: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {err}");
    String::from_utf8(out.stdout).unwrap()
}

fn refused(args: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn a_simulated_run_shows_every_probe_phase_start_against_its_schedule() {
    let dir = tempdir("starts-sim");
    let plan = dir.join("plan.toml");
    std::fs::write(&plan, TWO_NODE_PLAN).unwrap();
    let hall = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hall-small.toml");
    let results = dir.join("results");
    let r = results.to_str().unwrap();
    ok(&[
        "run",
        plan.to_str().unwrap(),
        "--simulate",
        hall,
        "--results",
        r,
    ]);

    let show: serde_json::Value =
        serde_json::from_str(&ok(&["runs", "show", "latest", "--json", "--results", r])).unwrap();
    let rows: serde_json::Value =
        serde_json::from_str(&ok(&["runs", "starts", "latest", "--json", "--results", r])).unwrap();
    let rows = rows.as_array().expect("a JSON array");
    // 2 nodes × 2 phases, in phase then node order.
    let keys: Vec<(u64, &str)> = rows
        .iter()
        .map(|s| (s["phase_id"].as_u64().unwrap(), s["node"].as_str().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            (0, "row1-rack01-n01"),
            (0, "row1-rack01-n02"),
            (1, "row1-rack01-n01"),
            (1, "row1-rack01-n02")
        ]
    );
    for phase in show["phases"].as_array().unwrap() {
        let id = phase["phase_id"].as_u64().unwrap();
        let mine: Vec<_> = rows.iter().filter(|s| s["phase_id"] == id).collect();
        let mut actual = Vec::new();
        for s in &mine {
            assert_eq!(s["phase"], phase["name"]);
            assert_eq!(s["scheduled_start_ns"], phase["scheduled_start_ns"]);
            let (a, t) = (
                s["actual_start_ns"].as_i64().unwrap(),
                s["scheduled_start_ns"].as_i64().unwrap(),
            );
            assert_eq!(s["offset_ns"].as_i64(), Some(a - t), "{s}");
            // Every probe of a simulated hall has a clock estimate, stored with the run.
            assert!(s["clock_offset_ns"].is_i64(), "{s}");
            assert!(s["clock_uncertainty_ns"].as_i64().unwrap() > 0, "{s}");
            actual.push(a);
        }
        // The same starts as `runs show` summarises: its skew is latest − earliest.
        let skew_ms = (actual.iter().max().unwrap() - actual.iter().min().unwrap()) as f64 / 1e6;
        let shown = phase["start_skew_ms"].as_f64().unwrap();
        assert!((skew_ms - shown).abs() < 1e-6, "{skew_ms} vs {shown}");
    }

    let text = ok(&["runs", "starts", "latest", "--results", r]);
    assert!(text.contains("4 phase starts"), "{text}");
    for node in ["row1-rack01-n01", "row1-rack01-n02"] {
        assert!(text.matches(node).count() >= 2, "{text}");
    }
    assert!(text.contains("latest start: row1-rack01-n0"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn node(id: &str) -> NodeId {
    NodeId::new(id).unwrap()
}

fn probe(id: &str, clock: Option<ClockEstimate>) -> ProbeRow {
    ProbeRow {
        node_id: node(id),
        labels: Labels {
            hall: "h".into(),
            row: "row1".into(),
            rack: "rack1".into(),
        },
        backend: "sim".into(),
        hallmark_version: "0".into(),
        remote: None,
        registered_at_ns: 1_000,
        clock,
    }
}

/// A run of two probes, one without a clock estimate, and one phase both started: `b` 2.5 ms late,
/// `a` 0.5 ms early.
fn written_store(dir: &Path) -> String {
    const T0: i64 = 1_800_000_000_000_000_000;
    let mut store = Store::open(dir).unwrap();
    let run = store
        .create_run(&NewRun {
            name: "r".into(),
            plan_name: "p".into(),
            plan_toml: String::new(),
            hall: None,
            started_at_ns: T0,
            hallmark_version: "0".into(),
            sample_hz: 10.0,
        })
        .unwrap();
    let clock = ClockEstimate {
        offset_ns: -20_000,
        uncertainty_ns: 7_000,
        rtt_ns: 30_000,
        measured_at_ns: T0,
    };
    store.add_probe(&run, &probe("a", Some(clock))).unwrap();
    store.add_probe(&run, &probe("b", None)).unwrap();
    store
        .add_phase(
            &run,
            &PhaseRow {
                phase_id: 0,
                name: "steady".into(),
                workload: Workload::Burn,
                pattern: Pattern::Steady { level: 1.0 },
                scheduled_start_ns: T0 + 1_000_000_000,
                duration_ms: 1000,
            },
        )
        .unwrap();
    store
        .phase_started(&run, 0, &node("a"), T0 + 999_500_000)
        .unwrap();
    store
        .phase_started(&run, 0, &node("b"), T0 + 1_002_500_000)
        .unwrap();
    run.as_str().to_string()
}

#[test]
fn a_clock_estimate_not_stored_is_null_and_a_dash_never_zero() {
    let dir = tempdir("starts-null");
    let run = written_store(&dir);
    let r = dir.to_str().unwrap();
    let rows: serde_json::Value =
        serde_json::from_str(&ok(&["runs", "starts", &run, "--json", "--results", r])).unwrap();
    assert_eq!(rows[0]["node"], "a");
    assert_eq!(rows[0]["offset_ns"], -500_000);
    assert_eq!(rows[0]["clock_offset_ns"], -20_000);
    assert_eq!(rows[0]["clock_uncertainty_ns"], 7_000);
    assert_eq!(rows[1]["node"], "b");
    assert_eq!(rows[1]["offset_ns"], 2_500_000);
    assert!(rows[1]["clock_offset_ns"].is_null(), "{rows}");
    assert!(rows[1]["clock_uncertainty_ns"].is_null(), "{rows}");

    // A unique prefix of the id works as `runs show` takes it.
    let text = ok(&["runs", "starts", &run[..20], "--results", r]);
    let b = text
        .lines()
        .find(|l| l.contains(" b "))
        .expect("a line for b");
    assert!(b.contains("+2.500"), "{b}");
    let cols: Vec<&str> = b.split_whitespace().collect();
    assert_eq!(cols[cols.len() - 2..], ["-", "-"], "no clock estimate: {b}");
    assert!(
        text.contains("latest start: b in phase 0 (steady), +2.500 ms"),
        "{text}"
    );
    assert!(
        text.contains("earliest start: a in phase 0 (steady), -0.500 ms"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_run_or_a_store_without_it_is_refused_saying_what_to_do() {
    let dir = tempdir("starts-refused");
    written_store(&dir);
    let r = dir.to_str().unwrap();
    let db = dir.join("hallmark.sqlite");

    let err = refused(&["runs", "starts", "no-such-run", "--results", r]);
    assert!(err.contains("no run \"no-such-run\""), "{err}");
    assert!(err.contains(db.to_str().unwrap()), "{err}");
    assert!(err.contains("hallmark runs list"), "{err}");

    // A store that holds no run at all.
    let empty = dir.join("empty");
    drop(Store::open(&empty).unwrap());
    let err = refused(&[
        "runs",
        "starts",
        "latest",
        "--results",
        empty.to_str().unwrap(),
    ]);
    assert!(err.contains("no run \"latest\""), "{err}");
    assert!(err.contains("hallmark runs list"), "{err}");

    // No store there at all: nothing is created.
    let none = dir.join("none");
    let err = refused(&[
        "runs",
        "starts",
        "latest",
        "--results",
        none.to_str().unwrap(),
    ]);
    assert!(err.contains("no results database"), "{err}");
    assert!(err.contains("run a plan first"), "{err}");
    assert!(!none.exists());

    // A password on the command line is refused before anything is opened (clap's message
    // quotes the value as typed; the store's part of it never shows the password).
    let out = run(&[
        "runs",
        "starts",
        "latest",
        "--results",
        "postgres://u:secret@127.0.0.1:1/db",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("PGPASSWORD"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // A PostgreSQL server that is not there: named, with the error, no panic.
    let err = refused(&[
        "runs",
        "starts",
        "latest",
        "--results",
        "postgres://hallmark@127.0.0.1:1/hallmark",
    ]);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
