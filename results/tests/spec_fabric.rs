//! The interconnect criteria judged against constructed fabric phases (`fabric_support`):
//! `latency_p99` per hall and per node (worst pair, pairs that lost every packet, pairs not
//! measured, phase selection) and `collective_busbw` (all-reduce busbw at a size, sizes not
//! measured, wrong elements, ranks that did not report), with their evidence.

mod fabric_support;
mod spec_support;

use fabric_support::{Fabric, MIB};
use hallmark_protocol::CollectiveOp;
use hallmark_results::spec::{evaluate, parse_spec, Spec};
use hallmark_results::{Status, Store, Verdict};
use spec_support::{Run, TempDir};

fn one(lines: &str) -> Spec {
    let text = format!("name = \"t\"\n[[criterion]]\nid = \"c\"\n{lines}\n");
    parse_spec(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn judge(f: &Fabric, lines: &str) -> Vec<Verdict> {
    let dir = TempDir::new("fabric-spec");
    let mut store = Store::open(dir.path()).unwrap();
    let run = Run::default().store(&mut store);
    f.store(&mut store, &run);
    evaluate(&store, run.as_str(), &one(lines)).unwrap()
}

fn statuses(vs: &[Verdict]) -> Vec<(String, Status)> {
    vs.iter().map(|v| (v.subject.clone(), v.status)).collect()
}

fn near(got: Option<f64>, want: f64) {
    let got = got.unwrap_or_else(|| panic!("no measured value, expected {want}"));
    assert!(
        (got - want).abs() <= want * 1e-3,
        "{got} is not within 0.1 % of {want}"
    );
}

const P99: &str = "kind = \"latency_p99\"\nmax = \"45 µs\"";

#[test]
fn latency_p99_judges_the_worst_pair_of_the_hall() {
    // Default pairs: 100 round trips of (10 + 10 src + dst) µs; the worst is r2n2→r2n1, 42 µs.
    let v = judge(&Fabric::default(), P99);
    assert_eq!(statuses(&v), [("hall-t".into(), Status::Pass)]);
    near(v[0].measured, 42.0);
    assert_eq!((v[0].limit, v[0].unit.as_str()), (Some(45.0), "µs"));
    let ev = &v[0].evidence;
    assert_eq!(ev.subjects, ["r2n2", "r2n1"]);
    assert!(
        ev.detail.contains("r2n2→r2n1 in phase mesh")
            && ev.detail.contains("12 measured node pair"),
        "{}",
        ev.detail
    );
    let start = fabric_support::T0 + 12_000 * fabric_support::MS;
    assert_eq!(
        (ev.from_ns, ev.to_ns),
        (Some(start), Some(start + 2_000 * fabric_support::MS))
    );
    let v = judge(
        &Fabric::default(),
        "kind = \"latency_p99\"\nmax = \"45 µs\"\nwarn_max = \"40 µs\"",
    );
    assert_eq!(v[0].status, Status::Warn);
    assert!(v[0].evidence.detail.contains("warning threshold 40.0 µs"));
    let v = judge(
        &Fabric::default(),
        "kind = \"latency_p99\"\nmax = \"0.03 ms\"",
    );
    assert_eq!(v[0].status, Status::Fail);
}

#[test]
fn latency_p99_per_node_takes_the_pairs_it_initiated_and_answered() {
    let v = judge(
        &Fabric::default(),
        "kind = \"latency_p99\"\nmax = \"35 µs\"\nscope = \"node\"",
    );
    // r1n1: worst pair r2n2→r1n1 (40 µs); r1n2: r2n2→r1n2 (41); r2n1: r2n2→r2n1 (42);
    // r2n2: r2n2→r2n1 (42).
    assert_eq!(
        statuses(&v),
        [
            ("r1n1".into(), Status::Fail),
            ("r1n2".into(), Status::Fail),
            ("r2n1".into(), Status::Fail),
            ("r2n2".into(), Status::Fail)
        ]
    );
    near(v[0].measured, 40.0);
    near(v[1].measured, 41.0);
    near(v[3].measured, 42.0);
    assert_eq!(v[0].evidence.subjects, ["r1n1"]);
    assert_eq!(v[0].title, "Latency p99 of the node's pairs");
    let slow_src = Fabric {
        rtt: Box::new(|s, _| Some(vec![(if s == 3 { 500_000 } else { 10_000 }, 100)])),
        ..Fabric::default()
    };
    // r2n2 is slow to start its round trips: every node answers its pings, so every node has a
    // slow pair.
    let v = judge(
        &slow_src,
        "kind = \"latency_p99\"\nmax = \"100 µs\"\nscope = \"node\"",
    );
    assert!(v.iter().all(|v| v.status == Status::Fail));
    let one_slow_pair = Fabric {
        rtt: Box::new(|s, d| Some(vec![(if (s, d) == (0, 1) { 500_000 } else { 10_000 }, 100)])),
        ..Fabric::default()
    };
    let v = judge(
        &one_slow_pair,
        "kind = \"latency_p99\"\nmax = \"100 µs\"\nscope = \"node\"",
    );
    assert_eq!(
        statuses(&v),
        [
            ("r1n1".into(), Status::Fail),
            ("r1n2".into(), Status::Fail),
            ("r2n1".into(), Status::Pass),
            ("r2n2".into(), Status::Pass)
        ]
    );
    near(v[2].measured, 10.0);
}

#[test]
fn a_pair_that_lost_every_packet_fails_and_a_missing_pair_is_incomplete() {
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
    let v = judge(&lost, P99);
    assert_eq!(v[0].status, Status::Fail);
    near(v[0].measured, 10.0);
    assert!(
        v[0].evidence
            .detail
            .contains("every packet lost on 1 pair(s): r1n2→r2n1"),
        "{}",
        v[0].evidence.detail
    );
    assert!(
        v[0].evidence
            .detail
            .contains("; 50 of 1150 test packets lost"),
        "{}",
        v[0].evidence.detail
    );
    let missing = Fabric {
        rtt: Box::new(|s, d| ((s, d) != (3, 0)).then(|| vec![(10_000, 100)])),
        ..Fabric::default()
    };
    let v = judge(&missing, P99);
    assert_eq!(v[0].status, Status::Incomplete);
    assert_eq!(v[0].measured, None);
    assert!(
        v[0].evidence
            .detail
            .contains("1 expected pair(s) not measured: r2n2→r1n1"),
        "{}",
        v[0].evidence.detail
    );
    // A node that reported nothing leaves three pairs unmeasured; a failing pair still fails.
    let silent = Fabric {
        mesh_report: Box::new(|n| n != 2),
        rtt: Box::new(|s, d| Some(vec![(if (s, d) == (0, 1) { 90_000 } else { 10_000 }, 100)])),
        ..Fabric::default()
    };
    let v = judge(&silent, P99);
    assert_eq!(v[0].status, Status::Fail);
    near(v[0].measured, 90.0);
    let v = judge(
        &silent,
        "kind = \"latency_p99\"\nmax = \"45 µs\"\nscope = \"node\"",
    );
    assert_eq!(
        statuses(&v),
        [
            ("r1n1".into(), Status::Fail),
            ("r1n2".into(), Status::Fail),
            ("r2n1".into(), Status::Incomplete),
            ("r2n2".into(), Status::Incomplete)
        ]
    );
}

#[test]
fn latency_p99_looks_in_the_phases_it_names() {
    let v = judge(
        &Fabric::default(),
        "kind = \"latency_p99\"\nmax = \"45 µs\"\nphase = \"mesh\"",
    );
    assert_eq!(v[0].status, Status::Pass);
    let v = judge(
        &Fabric::default(),
        "kind = \"latency_p99\"\nmax = \"45 µs\"\nphase = \"burn\"",
    );
    assert_eq!(v[0].status, Status::Incomplete);
    assert!(
        v[0].evidence
            .detail
            .contains("no latency phase ran in phase burn"),
        "{}",
        v[0].evidence.detail
    );
    let v = judge(
        &Fabric::default(),
        "kind = \"latency_p99\"\nmax = \"45 µs\"\nphase = \"nope\"",
    );
    assert_eq!(v[0].status, Status::Incomplete);
}

const BUSBW: &str = "kind = \"collective_busbw\"\nmin = \"9 GB/s\"\nsize = \"64 MiB\"";

#[test]
fn collective_busbw_of_the_all_reduce_at_its_size() {
    // Default: 10 ms per 64 MiB, rank r2n2 5 % slower: busbw = 64 MiB / 10.5 ms × 1.5.
    let want = 67_108_864.0 / 10.5e6 * 1.5;
    let v = judge(&Fabric::default(), BUSBW);
    assert_eq!(statuses(&v), [("hall-t".into(), Status::Pass)]);
    assert!((v[0].measured.unwrap() - want).abs() < 1e-9);
    assert_eq!((v[0].limit, v[0].unit.as_str()), (Some(9.0), "GB/s"));
    assert_eq!(v[0].evidence.subjects, ["r2n2"]);
    assert!(
        v[0].evidence
            .detail
            .contains("all-reduce of 64 MiB on 4 ranks in phase allreduce")
            && v[0]
                .evidence
                .detail
                .contains("slowest rank (r2n2) took 10500.00 µs"),
        "{}",
        v[0].evidence.detail
    );
    let v = judge(
        &Fabric::default(),
        "kind = \"collective_busbw\"\nmin = \"9 GB/s\"\nwarn_min = \"10 GB/s\"\nsize = \"64 MiB\"",
    );
    assert_eq!(v[0].status, Status::Warn);
    let v = judge(
        &Fabric::default(),
        "kind = \"collective_busbw\"\nmin = \"80 Gbit/s\"\nsize = \"64 MiB\"",
    );
    assert_eq!(v[0].status, Status::Fail, "80 Gbit/s = 10 GB/s");
}

#[test]
fn collective_busbw_without_its_size_names_the_sizes_measured() {
    let v = judge(
        &Fabric::default(),
        "kind = \"collective_busbw\"\nmin = \"9 GB/s\"\nsize = \"128 MiB\"",
    );
    assert_eq!(v[0].status, Status::Incomplete);
    assert!(
        v[0].evidence.detail.contains("not measured at 128 MiB")
            && v[0]
                .evidence
                .detail
                .contains("measured at 1 MiB, 16 MiB, 64 MiB"),
        "{}",
        v[0].evidence.detail
    );
    let gather_only = Fabric {
        ops: vec![CollectiveOp::AllGather],
        ..Fabric::default()
    };
    let v = judge(&gather_only, BUSBW);
    assert_eq!(v[0].status, Status::Incomplete);
    assert!(v[0].evidence.detail.contains("no all-reduce was measured"));
    let v = judge(&Fabric::default(), &format!("{BUSBW}\nphase = \"mesh\""));
    assert_eq!(v[0].status, Status::Incomplete);
    assert!(v[0]
        .evidence
        .detail
        .contains("no collective phase ran in phase mesh"));
}

#[test]
fn wrong_elements_and_missing_ranks() {
    let wrong = Fabric {
        collective: Box::new(|n, op, size| {
            let w = u64::from((n, op, size) == (1, CollectiveOp::AllGather, MIB)) * 7;
            Some(((size as f64 / (64 * MIB) as f64 * 10e6) as u64, w))
        }),
        ..Fabric::default()
    };
    let v = judge(&wrong, BUSBW);
    assert_eq!(v[0].status, Status::Fail);
    assert!(v[0].measured.is_some(), "the busbw is still shown");
    assert_eq!(v[0].evidence.subjects, ["r1n2"]);
    assert!(
        v[0].evidence.detail.contains(
            "7 wrong elements in collective results (all-gather 1 MiB in phase allreduce: 7)"
        ),
        "{}",
        v[0].evidence.detail
    );
    let missing = Fabric {
        collective: Box::new(|n, _, size| {
            (n != 2).then(|| ((size as f64 / (64 * MIB) as f64 * 10e6) as u64, 0))
        }),
        ..Fabric::default()
    };
    let v = judge(&missing, BUSBW);
    assert_eq!(v[0].status, Status::Incomplete, "r2n1 could be slower");
    assert!(v[0]
        .evidence
        .detail
        .contains("1 of 4 ranks did not report it: r2n1"));
    // Below the limit already with three ranks: a FAIL.
    let v = judge(
        &missing,
        "kind = \"collective_busbw\"\nmin = \"20 GB/s\"\nsize = \"64 MiB\"",
    );
    assert_eq!(v[0].status, Status::Fail);
}

#[test]
fn spec_files_take_phase_and_node_scope_where_they_apply() {
    let text = "name = \"t\"\n[[criterion]]\nid = \"c\"\nkind = \"collective_busbw\"\nmin = \"9 GB/s\"\nsize = \"64 MiB\"\nscope = \"node\"\n";
    let err = parse_spec(text, "t.toml").unwrap_err().to_string();
    assert!(
        err.contains("scope `node` is not allowed") && err.contains("allowed: hall"),
        "{err}"
    );
    let text = "name = \"t\"\n[[criterion]]\nid = \"c\"\nkind = \"latency_p99\"\nmax = \"9 µs\"\nscope = \"rack\"\n";
    let err = parse_spec(text, "t.toml").unwrap_err().to_string();
    assert!(err.contains("allowed: hall, node"), "{err}");
    let s = one("kind = \"latency_p99\"\nmax = \"25 us\"\nscope = \"node\"\nphase = [\"mesh\"]");
    assert_eq!(s.criteria[0].phases, ["mesh"]);
}
