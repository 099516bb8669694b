//! Certification specs judged against constructed runs (see `spec_support`): PASS, FAIL and
//! INCOMPLETE of every criterion kind, WARN thresholds and evidence. Spec-file errors are tested in
//! `spec_files.rs`; storing certifications, the schema migration and the rendering in
//! `spec_certify.rs`.

mod spec_support;

use hallmark_results::spec::{evaluate, parse_spec, Spec};
use hallmark_results::{overall, throttle, Status, Verdict};
use spec_support::*;

/// A spec of one criterion: `[[criterion]]` with `id = "c"` and the given lines.
fn one(lines: &str) -> Spec {
    let text = format!("name = \"t\"\n[[criterion]]\nid = \"c\"\n{lines}\n");
    parse_spec(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn judge(run: &Run, lines: &str) -> Vec<Verdict> {
    let dir = TempDir::new("judge");
    let (store, id) = stored(&dir, run);
    evaluate(&store, id.as_str(), &one(lines)).unwrap()
}

fn find<'a>(vs: &'a [Verdict], subject: &str) -> &'a Verdict {
    vs.iter()
        .find(|v| v.subject == subject)
        .unwrap_or_else(|| panic!("no verdict for {subject}: {vs:#?}"))
}

fn statuses(vs: &[Verdict]) -> Vec<(String, Status)> {
    vs.iter().map(|v| (v.subject.clone(), v.status)).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

const SUSTAINED: &str = "kind = \"sustained_power\"\nphase = \"burn\"\nwindow = \"5 s\"\n";

#[test]
fn sustained_power_passes_fails_and_is_incomplete() {
    let run = Run::default(); // 2 nodes × 5 kW per rack during burn
    let v = judge(&run, &format!("{SUSTAINED}min = \"9.5 kW\""));
    assert_eq!(v.len(), 2);
    let r = find(&v, "rack-01");
    assert_eq!(r.status, Status::Pass);
    assert!(close(r.measured.unwrap(), 10.0), "{r:?}");
    assert_eq!((r.limit, r.unit.as_str()), (Some(9.5), "kW"));
    // The first 5 s window (50 bins of 100 ms centred on T0 + k × 100 ms).
    assert_eq!(r.evidence.from_ns, Some(T0 - 50 * MS));
    assert_eq!(r.evidence.to_ns, Some(T0 + 4950 * MS));
    assert_eq!(r.evidence.subjects, vec!["r1n1", "r1n2"]);
    assert!(
        r.evidence.detail.contains("in phase burn"),
        "{}",
        r.evidence.detail
    );

    let v = judge(&run, &format!("{SUSTAINED}min = \"10.5 kW\""));
    assert!(v.iter().all(|v| v.status == Status::Fail), "{v:#?}");
    let v = judge(
        &run,
        &format!("{SUSTAINED}min = \"9 kW\"\nwarn_min = \"10.5 kW\""),
    );
    assert!(v.iter().all(|v| v.status == Status::Warn), "{v:#?}");

    // A window longer than the phase cannot be shown: INCOMPLETE, never a shrunken PASS.
    let v = judge(
        &run,
        "kind = \"sustained_power\"\nphase = \"burn\"\nwindow = \"9 s\"\nmin = \"1 kW\"",
    );
    assert!(v
        .iter()
        .all(|v| v.status == Status::Incomplete && v.measured.is_none()));
    assert!(
        v[0].evidence.detail.contains("longest stretch"),
        "{}",
        v[0].evidence.detail
    );

    // r2n2 sends no node power: rack-02's power is a lower bound; too low is INCOMPLETE, not FAIL.
    let silent = Run {
        node_power: Box::new(|n, _| (n != 3).then_some(5000.0)),
        ..Run::default()
    };
    let v = judge(&silent, &format!("{SUSTAINED}min = \"9 kW\""));
    assert_eq!(find(&v, "rack-02").status, Status::Incomplete);
    assert!(find(&v, "rack-02").evidence.detail.contains("r2n2"));
    let v = judge(&silent, &format!("{SUSTAINED}min = \"4 kW\""));
    assert_eq!(
        find(&v, "rack-02").status,
        Status::Pass,
        "a lower bound above the minimum passes"
    );
}

#[test]
fn peak_power_passes_fails_and_is_incomplete_at_each_scope() {
    // A 2 kW spike on r2n1 at instant 30.
    let spiky = Run {
        node_power: Box::new(|n, k| Some(if (n, k) == (2, 30) { 7000.0 } else { 5000.0 })),
        ..Run::default()
    };
    let v = judge(&spiky, "kind = \"peak_power\"\nmax = \"11 kW\"");
    assert_eq!(
        statuses(&v),
        [
            ("rack-01".into(), Status::Pass),
            ("rack-02".into(), Status::Fail)
        ]
    );
    let r = find(&v, "rack-02");
    assert!(close(r.measured.unwrap(), 12.0));
    assert_eq!(r.evidence.from_ns, Some(T0 + 2950 * MS));
    let v = judge(
        &spiky,
        "kind = \"peak_power\"\nscope = \"hall\"\nmax = \"25000 W\"\nwarn_max = \"21 kW\"",
    );
    assert_eq!(statuses(&v), [("hall-t".into(), Status::Warn)]);
    assert!(close(v[0].measured.unwrap(), 22.0));
    let v = judge(
        &spiky,
        "kind = \"peak_power\"\nscope = \"row\"\nmax = \"0.03 MW\"",
    );
    assert_eq!(statuses(&v), [("row-a".into(), Status::Pass)]);

    let silent = Run {
        node_power: Box::new(|n, _| (n != 0).then_some(5000.0)),
        ..Run::default()
    };
    let v = judge(&silent, "kind = \"peak_power\"\nmax = \"11 kW\"");
    assert_eq!(find(&v, "rack-01").status, Status::Incomplete);
    assert_eq!(find(&v, "rack-02").status, Status::Pass);
    let v = judge(&silent, "kind = \"peak_power\"\nmax = \"4 kW\"");
    assert_eq!(
        find(&v, "rack-01").status,
        Status::Fail,
        "a lower bound above the maximum fails"
    );
}

#[test]
fn gpu_temperature_against_each_devices_max_operating() {
    let run = Run {
        temp: Box::new(|n, d, k| {
            Some(match (n, d, k) {
                (2, 1, 70) => 91.0,
                (0, 0, _) => 81.0,
                _ => 60.0,
            })
        }),
        max_op: Box::new(|n, d| ((n, d) != (3, 1)).then_some(85.0)),
        ..Run::default()
    };
    let v = judge(
        &run,
        "kind = \"gpu_temperature\"\nmargin = \"2 °C\"\nwarn_margin = \"5 degC\"",
    );
    assert_eq!(v.len(), 8);
    let hot = find(&v, "r2n1/1");
    assert_eq!(hot.status, Status::Fail);
    assert_eq!(
        (hot.measured, hot.limit, hot.unit.as_str()),
        (Some(91.0), Some(83.0), "°C")
    );
    assert_eq!(
        hot.evidence.from_ns,
        Some(T0 + 7000 * MS),
        "the hottest reading's instant"
    );
    assert_eq!(
        find(&v, "r1n1/0").status,
        Status::Warn,
        "81 °C is within 5 °C of 85"
    );
    assert_eq!(find(&v, "r1n2/0").status, Status::Pass);
    let unknown = find(&v, "r2n2/1");
    assert_eq!(
        unknown.status,
        Status::Incomplete,
        "no max-operating temperature"
    );
    assert!(unknown.evidence.detail.contains("absolute `max`"));

    let v = judge(&run, "kind = \"gpu_temperature\"\nmax = \"90 C\"");
    assert_eq!(find(&v, "r2n2/1").status, Status::Pass);
    assert_eq!(find(&v, "r2n1/1").status, Status::Fail);

    let cold = Run {
        temp: Box::new(|n, _, _| (n != 1).then_some(60.0)),
        ..Run::default()
    };
    let v = judge(&cold, "kind = \"gpu_temperature\"\nmargin = \"0 °C\"");
    assert_eq!(
        find(&v, "r1n2/0").status,
        Status::Incomplete,
        "no temperature reading"
    );
    assert_eq!(overall(&v), Status::Incomplete);
}

fn throttled() -> Run {
    Run {
        // r2n1/1: sw_thermal for 15 samples; r1n1/0: the power cap only.
        reasons: Box::new(|n, d, k| match (n, d) {
            (2, 1) if (70..85).contains(&k) => throttle::SW_THERMAL | throttle::SW_POWER_CAP,
            (0, 0) => throttle::SW_POWER_CAP,
            _ => 0,
        }),
        ..Run::default()
    }
}

#[test]
fn throttle_budgets_by_duration_per_device_and_per_rack() {
    let v = judge(
        &throttled(),
        "kind = \"throttle\"\nreason = \"sw_thermal\"\nmax = \"1 s\"",
    );
    assert_eq!(v.len(), 8);
    let f = find(&v, "r2n1/1");
    assert_eq!(f.status, Status::Fail);
    assert!(
        close(f.measured.unwrap(), 1.5),
        "15 samples × 100 ms: {f:?}"
    );
    assert_eq!(
        (f.evidence.from_ns, f.evidence.to_ns),
        (Some(T0 + 7000 * MS), Some(T0 + 8400 * MS))
    );
    assert_eq!(
        v.iter().filter(|v| v.status == Status::Pass).count(),
        7,
        "the power cap is another reason"
    );

    let v = judge(
        &throttled(),
        "kind = \"throttle\"\nreason = \"sw_thermal\"\nmax = \"2000 ms\"\nwarn_max = \"1 s\"",
    );
    assert_eq!(find(&v, "r2n1/1").status, Status::Warn);
    let v = judge(
        &throttled(),
        "kind = \"throttle\"\nscope = \"rack\"\nreason = \"sw_power_cap\"\nmax = \"0 s\"",
    );
    assert_eq!(
        statuses(&v),
        [
            ("rack-01".into(), Status::Fail),
            ("rack-02".into(), Status::Fail)
        ]
    );
    assert!(
        close(find(&v, "rack-01").measured.unwrap(), 12.0),
        "120 samples of r1n1/0"
    );
    assert_eq!(find(&v, "rack-02").evidence.subjects, vec!["r2n1/1"]);
    let v = judge(
        &throttled(),
        "kind = \"throttle\"\nreason = \"hw_thermal\"\nmax = \"0 s\"\nphase = \"idle\"",
    );
    assert!(v
        .iter()
        .all(|v| v.status == Status::Pass && v.measured == Some(0.0)));

    // A device that sent no samples has no evidence.
    let quiet = Run {
        sample: Box::new(|n, d, _| (n, d) != (3, 1)),
        ..Run::default()
    };
    let v = judge(
        &quiet,
        "kind = \"throttle\"\nreason = \"hw_thermal\"\nmax = \"0 s\"",
    );
    assert_eq!(find(&v, "r2n2/1").status, Status::Incomplete);
    let v = judge(
        &quiet,
        "kind = \"throttle\"\nscope = \"node\"\nreason = \"hw_thermal\"\nmax = \"0 s\"",
    );
    assert_eq!(find(&v, "r2n2").status, Status::Incomplete);
    assert_eq!(find(&v, "r2n1").status, Status::Pass);
}

#[test]
fn tflops_against_the_fleet_median_with_mad_outliers() {
    // GFLOP/s: median 100 000, MAD 500 (scaled 741.3).
    const G: [f64; 8] = [100.0, 100.0, 100.0, 101.0, 99.0, 100.0, 95.0, 80.0];
    let run = Run {
        result: Box::new(|n, d, p| (p == 1).then_some((Some(G[n * 2 + d as usize] * 1000.0), 0))),
        ..Run::default()
    };
    let v = judge(
        &run,
        "kind = \"tflops\"\nmin_fraction_of_median = 0.9\nmad_outlier = 3",
    );
    let low = find(&v, "r2n2/1");
    assert_eq!(low.status, Status::Fail);
    assert_eq!((low.measured, low.unit.as_str()), (Some(80.0), "TFLOP/s"));
    assert!(close(low.limit.unwrap(), 90.0), "{low:?}");
    assert_eq!(low.evidence.from_ns, Some(T0));
    assert_eq!(
        find(&v, "r2n2/0").status,
        Status::Warn,
        "95 is 6.7 scaled MADs below 100"
    );
    assert_eq!(find(&v, "r1n1/0").status, Status::Pass);
    let v = judge(&run, "kind = \"tflops\"\nmin_fraction_of_median = \"90 %\"");
    assert_eq!(
        find(&v, "r2n2/0").status,
        Status::Pass,
        "no outlier test without mad_outlier"
    );

    let none = Run {
        result: Box::new(|_, _, p| (p == 1).then_some((None, 0))),
        ..Run::default()
    };
    let v = judge(&none, "kind = \"tflops\"\nmin_fraction_of_median = 0.9");
    assert!(v.iter().all(|v| v.status == Status::Incomplete), "{v:#?}");
    assert!(v[0].evidence.detail.contains("no GFLOP/s"));
}

#[test]
fn wrong_elements_zero_some_or_unchecked() {
    let run = Run {
        result: Box::new(|n, d, p| match (n, d) {
            (1, 1) if p == 1 => Some((Some(1.0), 3)),
            (3, _) => None,
            _ => (p == 1).then_some((Some(1.0), 0)),
        }),
        ..Run::default()
    };
    let v = judge(&run, "kind = \"wrong_elements\"\nmax = 0");
    assert_eq!(find(&v, "r1n1/0").status, Status::Pass);
    let bad = find(&v, "r1n2/1");
    assert_eq!(
        (bad.status, bad.measured, bad.unit.as_str()),
        (Status::Fail, Some(3.0), "elements")
    );
    assert_eq!(find(&v, "r2n2/0").status, Status::Incomplete);
    let v = judge(&run, "kind = \"wrong_elements\"\nphase = \"idle\"");
    assert!(
        v.iter().all(|v| v.status == Status::Incomplete),
        "no report in the idle phase"
    );
}

#[test]
fn start_skew_per_phase() {
    let run = Run {
        start: Box::new(|n, p| (p == 1 || n != 3).then_some(n as i64 * MS)),
        ..Run::default()
    };
    let v = judge(&run, "kind = \"start_skew\"\nmax = \"50 ms\"");
    assert_eq!(
        statuses(&v),
        [
            ("hall-t/burn".into(), Status::Pass),
            ("hall-t/idle".into(), Status::Incomplete)
        ]
    );
    let burn = find(&v, "hall-t/burn");
    assert_eq!(
        (burn.measured, burn.unit.as_str(), burn.limit),
        (Some(3.0), "ms", Some(50.0))
    );
    assert_eq!(burn.evidence.subjects, vec!["r1n1", "r2n2"]);
    assert!(find(&v, "hall-t/idle").evidence.detail.contains("r2n2"));
    let v = judge(
        &run,
        "kind = \"start_skew\"\nmax = \"1 ms\"\nphase = [\"burn\", \"idle\"]",
    );
    assert_eq!(
        statuses(&v),
        [
            ("hall-t/burn".into(), Status::Fail),
            ("hall-t/idle".into(), Status::Fail)
        ]
    );
    let v = judge(
        &run,
        "kind = \"start_skew\"\nmax = \"0.05 s\"\nwarn_max = \"2500 us\"\nphase = \"burn\"",
    );
    assert_eq!(statuses(&v), [("hall-t/burn".into(), Status::Warn)]);
}

#[test]
fn interconnect_criteria_are_incomplete_without_their_workloads() {
    let v = judge(&Run::default(), "kind = \"latency_p99\"\nmax = \"25 µs\"");
    assert_eq!(statuses(&v), [("hall-t".into(), Status::Incomplete)]);
    assert_eq!((v[0].limit, v[0].unit.as_str()), (Some(25.0), "µs"));
    assert!(
        v[0].evidence.detail.contains("no latency phase ran"),
        "{}",
        v[0].evidence.detail
    );
    let v = judge(
        &Run::default(),
        "kind = \"collective_busbw\"\nmin = \"40 GB/s\"\nsize = \"64 MiB\"",
    );
    assert_eq!(statuses(&v), [("hall-t".into(), Status::Incomplete)]);
    assert!(v[0].evidence.detail.contains("no collective phase ran"));
    assert!(v[0].evidence.detail.contains("64 MiB"));
}

#[test]
fn inventory_from_the_plan_and_the_spec() {
    let v = judge(&Run::default(), "kind = \"inventory\"");
    assert_eq!(statuses(&v), [("hall-t".into(), Status::Pass)]);
    assert_eq!((v[0].measured, v[0].limit), (Some(4.0), Some(4.0)));
    let v = judge(
        &Run::default(),
        "kind = \"inventory\"\nnodes = 6\ndevices_per_node = 4",
    );
    assert_eq!(v[0].status, Status::Fail);
    assert!(
        v[0].evidence.detail.contains("2 of 6 expected nodes"),
        "{}",
        v[0].evidence.detail
    );
    assert!(v[0].evidence.detail.contains("the plan expects 4"));
    let named = Run {
        plan_toml: PLAN.replace("nodes = 4", "").replace(
            "devices_per_node = 2\n",
            "devices_per_node = 2\n[expect.racks]\nrack-01 = [\"r1n1\", \"r1n2\"]\nrack-02 = [\"r2n1\", \"r2n3\"]\n",
        ),
        ..Run::default()
    };
    let v = judge(&named, "kind = \"inventory\"");
    assert_eq!(v[0].status, Status::Fail);
    assert!(v[0]
        .evidence
        .detail
        .contains("node `r2n3` (rack `rack-02`) has not registered"));
    let unreadable = Run {
        plan_toml: "not a plan".into(),
        ..Run::default()
    };
    let v = judge(&unreadable, "kind = \"inventory\"");
    assert_eq!(v[0].status, Status::Incomplete);
    let v = judge(&unreadable, "kind = \"inventory\"\nnodes = 4");
    assert_eq!(v[0].status, Status::Pass, "the spec's own expectation");
}

#[test]
fn coverage_of_hall_and_nodes() {
    let v = judge(&Run::default(), "kind = \"coverage\"\nmin = \"99.9 %\"");
    assert_eq!(
        (v[0].status, v[0].measured, v[0].unit.as_str()),
        (Status::Pass, Some(100.0), "%")
    );
    // r2n2 loses 10 instants × 2 devices of 960 expected samples.
    let lossy = Run {
        sample: Box::new(|n, _, k| !(n == 3 && (50..60).contains(&k))),
        ..Run::default()
    };
    let v = judge(&lossy, "kind = \"coverage\"\nmin = \"99.9 %\"");
    assert_eq!(v[0].status, Status::Fail);
    assert!(close(v[0].measured.unwrap(), 940.0 / 960.0 * 100.0));
    assert_eq!(v[0].evidence.subjects, vec!["r2n2"]);
    let v = judge(
        &lossy,
        "kind = \"coverage\"\nscope = \"node\"\nmin = \"90 %\"\nwarn_min = \"99 %\"",
    );
    assert_eq!(find(&v, "r2n2").status, Status::Warn);
    assert_eq!(find(&v, "r1n1").status, Status::Pass);
    let v = judge(
        &lossy,
        "kind = \"coverage\"\nmin = \"99 %\"\nphase = \"idle\"",
    );
    assert_eq!(v[0].status, Status::Pass, "the loss was in phase burn");
    let none = Run {
        phases: false,
        ..Run::default()
    };
    let v = judge(&none, "kind = \"coverage\"\nmin = \"99 %\"");
    assert_eq!(v[0].status, Status::Incomplete);
}

#[test]
fn a_phase_the_run_does_not_have_makes_every_subject_incomplete() {
    let v = judge(
        &Run::default(),
        "kind = \"peak_power\"\nmax = \"11 kW\"\nphase = \"steady\"",
    );
    assert_eq!(v.len(), 2);
    assert!(v.iter().all(|v| v.status == Status::Incomplete));
    assert!(v[0]
        .evidence
        .detail
        .contains("no phase `steady` (its phases: burn, idle)"));
}
