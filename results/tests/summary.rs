//! Round trip of the constructed run (see `common`) with exact expected summary numbers, its text
//! rendering (the SQL views are tested with the store, `store/tests/store.rs`).

mod common;

use common::*;
use hallmark_results::{render_text, RunStatus, Store, StoreExt};

#[test]
fn round_trip_summary() {
    let dir = TempDir::new("roundtrip");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build(&mut store);
    let s = store.run_summary(run.as_str()).unwrap();

    assert_eq!(s.run_id, run.as_str());
    assert!(s.run_id.starts_with("20261129T021500Z-"), "{}", s.run_id);
    assert_eq!(s.status, RunStatus::Incomplete);
    assert_eq!(s.status_reason.as_deref(), Some("probe r2n2 lost"));
    assert_eq!(s.started_at_ns, T0);
    assert_eq!(s.ended_at_ns, Some(T0 + 13_000 * MS));
    assert_eq!(s.hall.as_deref(), Some("sim-hall-a"));
    assert_eq!(s.plan_sha256.len(), 64);
    assert_eq!(s.probes, 4);
    // 4 nodes × 2 devices × (80 + 40) sample instants.
    assert_eq!(s.samples_expected, 960);
    // r2n2 lost one batch: 10 instants × 2 devices.
    assert_eq!(s.samples_stored, 940);

    assert_eq!(s.racks.len(), 2);
    let r1 = &s.racks[0];
    assert_eq!((r1.row.as_str(), r1.rack.as_str()), ("row-a", "rack-01"));
    assert_eq!(r1.nodes, vec!["r1n1", "r1n2"]);
    // 3000 W for 80 bins, then 1500 W for 40.
    assert_close!(r1.peak_kw.unwrap(), 3.0);
    assert_close!(r1.mean_kw.unwrap(), 2.5);
    assert_close!(r1.sustained_kw.unwrap(), 2.7); // first 100 bins: (80×3000 + 20×1500)/100
    assert_close!(r1.sustained_window_s, 10.0);
    assert_close!(r1.max_gpu_temp_c.unwrap(), 65.5);
    let hot = r1.hottest_device.as_ref().unwrap();
    assert_eq!((hot.node.as_str(), hot.device), ("r1n2", 0));
    assert_eq!(r1.throttle_s, 0.0);
    assert!(r1.throttle_s_by_reason.is_empty());

    let r2 = &s.racks[1];
    assert_eq!(r2.rack, "rack-02");
    // 3000 W except bins 50..60 (r2n2 missing: incomplete, 1500 W) and bin 100 (4000 W).
    assert_close!(r2.peak_kw.unwrap(), 4.0);
    assert_close!(
        r2.mean_kw.unwrap(),
        (109.0 * 3000.0 + 4000.0) / 110.0 / 1000.0
    );
    // Longest stretch of complete bins is 60..120: the window shrinks to 6 s.
    assert_close!(r2.sustained_window_s, 6.0);
    assert_close!(
        r2.sustained_kw.unwrap(),
        (59.0 * 3000.0 + 4000.0) / 60.0 / 1000.0
    );
    assert_close!(r2.max_gpu_temp_c.unwrap(), 91.0);
    let hot = r2.hottest_device.as_ref().unwrap();
    assert_eq!((hot.node.as_str(), hot.device), ("r2n1", 1));
    // 15 samples of hw+sw thermal count; 5 of the power cap alone and GPU_IDLE do not.
    assert_close!(r2.throttle_s, 1.5);
    assert_eq!(r2.throttle_s_by_reason.len(), 3);
    assert_close!(r2.throttle_s_by_reason["hw_thermal"], 1.5);
    assert_close!(r2.throttle_s_by_reason["sw_thermal"], 1.5);
    assert_close!(r2.throttle_s_by_reason["sw_power_cap"], 0.5);

    assert_close!(s.peak_kw.unwrap(), 6.0);
    assert_close!(s.max_gpu_temp_c.unwrap(), 91.0);
    assert_close!(s.throttle_s, 1.5);

    assert_eq!(s.phases.len(), 2);
    let p1 = &s.phases[0];
    assert_eq!(
        (p1.phase_id, p1.name.as_str(), p1.workload.as_str()),
        (1, "burn", "burn")
    );
    assert_eq!(p1.nodes_started, 4);
    assert_close!(p1.start_skew_ms.unwrap(), 1.5);
    // Σ readings: 80×1000 + 80×2000 + 80×1500 + 70×1500 = 465 000 W × 0.1 s = 46 500 J.
    assert_close!(p1.energy_kwh.unwrap(), 46_500.0 / 3.6e6);
    assert_close!(p1.mean_kw.unwrap(), 5.8125);
    assert_eq!((p1.samples_expected, p1.samples_stored), (640, 620));
    assert_close!(p1.gflops.unwrap(), 150.0);
    assert_eq!(p1.wrong_elements, 3);
    assert_eq!(p1.stopped_early.len(), 1);
    assert_eq!(p1.stopped_early[0].node, "r2n1");

    let p2 = &s.phases[1];
    assert_eq!(p2.nodes_started, 3);
    assert_close!(p2.start_skew_ms.unwrap(), 0.2);
    // 40×1000 + 40×500 + (39×1500 + 2500) + 40×1500 = 181 000 W × 0.1 s = 18 100 J.
    assert_close!(p2.energy_kwh.unwrap(), 18_100.0 / 3.6e6);
    assert_close!(p2.mean_kw.unwrap(), 4.525);
    assert_eq!((p2.samples_expected, p2.samples_stored), (320, 320));
    assert_eq!(p2.gflops, None);

    assert_eq!(s.lost_probes.len(), 1);
    assert_eq!(s.lost_probes[0].node, "r2n2");
    assert_eq!(s.lost_probes[0].at_ns, T0 + 12_500 * MS);
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.events[0].kind, "probe_lost");

    // The JSON round-trips to the same summary.
    let json = serde_json::to_string_pretty(&s).unwrap();
    let back: hallmark_results::RunSummary = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    assert!(json.contains("\"throttle_s_by_reason\""));
}

#[test]
fn text_summary_names_throttled_rack_gap_and_lost_probe() {
    let dir = TempDir::new("render");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build(&mut store);
    let s = store.run_summary(run.as_str()).unwrap();
    let text = render_text(&s);
    println!("{text}");
    assert_eq!(text, s.to_string());
    let rack2 = text.lines().find(|l| l.contains("rack-02")).unwrap();
    assert!(rack2.starts_with('!'), "{rack2}");
    assert!(
        rack2.contains("THROTTLED: hw_thermal 1.5 s, sw_thermal 1.5 s, sw_power_cap 0.5 s"),
        "{rack2}"
    );
    let rack1 = text.lines().find(|l| l.contains("rack-01")).unwrap();
    assert!(rack1.starts_with(' '), "{rack1}");
    assert!(
        text.contains("Samples: 940 stored of 960 expected (97.91 %)"),
        "{text}"
    );
    assert!(
        text.contains("r2n2  +5.000 s → +5.900 s (0.900 s)  batch 5 never arrived"),
        "{text}"
    );
    assert!(
        text.contains("r2n2 at +12.500 s: connection lost: idle timeout"),
        "{text}"
    );
    assert!(
        text.contains("Status: INCOMPLETE — probe r2n2 lost"),
        "{text}"
    );
    assert!(text.contains("3 wrong elements"), "{text}");
}

/// Phases `burn` [0, 8 s) and `idle` [8 s, 12 s) are back to back: the sample at 8 s belongs to
/// `idle` alone, the one at 7.9 s to `burn` alone; every stored sample is in exactly one phase.
#[test]
fn a_sample_at_a_phase_boundary_belongs_to_the_phase_that_starts_there() {
    let dir = TempDir::new("boundary");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build(&mut store);
    let s = store.run_summary(run.as_str()).unwrap();
    let (burn, idle) = (&s.phases[0], &s.phases[1]);
    assert_eq!((burn.name.as_str(), idle.name.as_str()), ("burn", "idle"));
    // burn: instants 0–79 of 4 nodes × 2 devices, less r2n2's lost second (10 × 2).
    assert_eq!(burn.samples_stored, 80 * 8 - 20);
    // idle: instants 80–119, the boundary instant 80 (at 8 s) included.
    assert_eq!(idle.samples_stored, 40 * 8);
    assert_eq!(
        burn.samples_stored + idle.samples_stored,
        s.samples_stored,
        "no sample counted twice or in no phase"
    );
    assert!(idle.samples_stored <= idle.samples_expected);
}

#[test]
fn gap_is_named_in_summary() {
    let dir = TempDir::new("gap");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build(&mut store);
    let s = store.run_summary(run.as_str()).unwrap();
    assert_eq!(s.gaps.len(), 1);
    let g = &s.gaps[0];
    assert_eq!(g.node, "r2n2");
    assert_eq!((g.from_ns, g.to_ns), (T0 + 5000 * MS, T0 + 5900 * MS));
    assert_eq!(g.reason, "batch 5 never arrived");
    let err = store
        .record_gap(&run, &node("r2n2"), T0 + 2, T0 + 1, Some(1), "backwards")
        .unwrap_err();
    assert!(err.to_string().contains("ends"), "{err}");
}

#[test]
fn phases_without_power_readings_have_no_energy_rather_than_zero() {
    let dir = TempDir::new("nopower");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build_without_node_power(&mut store);
    let s = store.run_summary(run.as_str()).unwrap();
    assert_eq!(s.phases.len(), 2);
    for p in &s.phases {
        assert_eq!(
            (p.energy_kwh, p.mean_kw),
            (None, None),
            "phase {}",
            p.phase_id
        );
    }
    // As the rack figures already are.
    assert!(s
        .racks
        .iter()
        .all(|r| r.mean_kw.is_none() && r.peak_kw.is_none()));
    let json: serde_json::Value = serde_json::to_value(&s).unwrap();
    assert!(
        json["phases"][0]["energy_kwh"].is_null(),
        "{}",
        json["phases"][0]
    );
    assert!(json["phases"][0]["mean_kw"].is_null());
    // The text table shows "-" in both columns, never 0.
    let text = render_text(&s);
    let burn = text
        .lines()
        .find(|l| l.trim_start().starts_with("1 burn"))
        .unwrap_or_else(|| panic!("no phase row in:\n{text}"));
    let cols: Vec<&str> = burn.split_whitespace().collect();
    assert_eq!(&cols[4..6], ["-", "-"], "{burn}");
    assert!(!burn.contains("0.0000"), "{burn}");
}
