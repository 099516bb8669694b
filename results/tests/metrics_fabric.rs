//! `compute_metrics` on the constructed fabric phases (`fabric_support`): latency per directed
//! pair `A->B` and for the hall, busbw per collective `op/size_bytes`; a pair that lost every
//! packet is emitted without a value, never as 0.

mod fabric_support;
mod spec_support;

use fabric_support::{Fabric, MIB};
use hallmark_results::{compute_metrics, MetricValue, Store, SubjectKind};
use spec_support::{Run, TempDir};

fn metrics(f: &Fabric) -> Vec<MetricValue> {
    let dir = TempDir::new("metrics-fabric");
    let mut store = Store::open(dir.path()).unwrap();
    let run = Run::default().store(&mut store);
    f.store(&mut store, &run);
    compute_metrics(&store, run.as_str()).unwrap()
}

fn value(m: &[MetricValue], kind: SubjectKind, subject: &str, metric: &str) -> Option<f64> {
    m.iter()
        .find(|x| x.kind == kind && x.subject == subject && x.metric == metric)
        .unwrap_or_else(|| panic!("no {kind} {subject} {metric}"))
        .value
}

fn near(got: Option<f64>, want: f64) {
    let got = got.unwrap_or_else(|| panic!("no value, expected {want}"));
    assert!((got - want).abs() <= want * 1e-3, "{got} vs {want}");
}

#[test]
fn pairs_the_hall_and_collectives() {
    let m = metrics(&Fabric::default());
    // 100 round trips of (10 + 10 s + d) µs per pair: r2n2 (3) → r2n1 (2) is 42 µs.
    near(
        value(&m, SubjectKind::Pair, "r2n2->r2n1", "latency_p99_us"),
        42.0,
    );
    near(
        value(&m, SubjectKind::Pair, "r1n1->r1n2", "latency_p50_us"),
        11.0,
    );
    let pairs = m
        .iter()
        .filter(|x| x.kind == SubjectKind::Pair && x.metric == "latency_p99_us")
        .count();
    assert_eq!(pairs, 12);
    near(
        value(&m, SubjectKind::Hall, "hall-t", "latency_p99_us"),
        42.0,
    );
    let unit = &m.iter().find(|x| x.kind == SubjectKind::Hall).unwrap().unit;
    assert_eq!(unit, "µs");
    // Every op and size measured, each a subject of its own.
    for op in ["all-reduce", "all-gather"] {
        for size in [MIB, 16 * MIB, 64 * MIB] {
            let v = value(
                &m,
                SubjectKind::Collective,
                &format!("{op}/{size}"),
                "busbw_gbps",
            );
            assert!(v.is_some_and(|v| v > 0.0), "{op} {size}: {v:?}");
        }
    }
}

#[test]
fn a_pair_that_lost_every_packet_has_no_value() {
    let lost = Fabric {
        rtt: Box::new(|s, d| {
            if (s, d) == (1, 2) {
                Some(Vec::new())
            } else {
                Some(vec![(10_000, 100)])
            }
        }),
        lost: Box::new(|s, d| if (s, d) == (1, 2) { 50 } else { 0 }),
        ..Fabric::default()
    };
    let m = metrics(&lost);
    assert_eq!(
        value(&m, SubjectKind::Pair, "r1n2->r2n1", "latency_p99_us"),
        None
    );
    near(
        value(&m, SubjectKind::Pair, "r2n1->r1n2", "latency_p99_us"),
        10.0,
    );
    // A rank that did not report: the collective's figure is unknown.
    let missing = Fabric {
        collective: Box::new(|n, _, size| {
            (n != 2).then_some((
                (size as f64 / (64 * MIB) as f64 * 10e6).max(1000.0) as u64,
                0,
            ))
        }),
        ..Fabric::default()
    };
    let m = metrics(&missing);
    let name = format!("all-reduce/{MIB}");
    assert_eq!(
        value(&m, SubjectKind::Collective, &name, "busbw_gbps"),
        None
    );
}
