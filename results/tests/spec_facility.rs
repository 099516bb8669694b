//! The facility criteria and the summary's facility figures on a constructed run
//! (`spec_support`: racks `rack-01` and `rack-02` of two 5 kW nodes each during phase `burn`,
//! 0–8 s, 1 kW each in `idle`) with facility readings stored beside it: a PDU and a CDU per rack
//! polled every second, healthy or with the simulated hall's faults (a PDU reading 0.8× low, a
//! CDU at 0.4× flow), or stopping, or absent.

mod spec_support;

use hallmark_protocol::facility::{
    FacilityBatch, FacilityQuantity as Q, FacilityReading, SourceKind, Subject,
};
use hallmark_results::spec::{evaluate, parse_spec, Spec};
use hallmark_results::{Status, StoreExt, Verdict};
use spec_support::*;

const S: i64 = 1000 * MS;

#[derive(Clone, Copy, PartialEq)]
enum Rack {
    Healthy,
    PduLow,
    LowFlow,
    /// The PDU's readings stop after 3 s.
    PduStops,
    /// No facility source at all.
    Absent,
}

fn reading(
    src: &str,
    kind: SourceKind,
    rack: &str,
    point: &str,
    q: Q,
    t: i64,
    v: f64,
) -> FacilityReading {
    FacilityReading {
        source: src.into(),
        kind,
        subject: Subject::Rack(rack.into()),
        point: point.into(),
        quantity: q,
        uri: format!("http://127.0.0.1:1/redfish/v1/{src}"),
        t_ns: t,
        value: Some(v),
        device_time_ns: None,
        latency_us: Some(900),
        note: None,
    }
}

/// Readings of one rack over the run's 12 s: meters that average over a second, polled at the
/// end of each second (the reading at `sec + 1` s is the mean over the second before it).
fn rack_readings(rack: &str, how: Rack) -> Vec<FacilityReading> {
    let mut out = Vec::new();
    if how == Rack::Absent {
        return out;
    }
    for sec in 0..12 {
        let t = T0 + (sec + 1) * S;
        let kw = if sec < 8 { 10.0 } else { 2.0 };
        let pdu = format!("pdu-{rack}");
        let scale = if how == Rack::PduLow { 0.8 } else { 1.0 };
        if how != Rack::PduStops || sec <= 3 {
            out.push(reading(
                &pdu,
                SourceKind::Pdu,
                rack,
                "",
                Q::PowerW,
                t,
                kw * 1000.0 * scale,
            ));
        }
        let flow = if how == Rack::LowFlow { 6.0 } else { 15.0 };
        // PG25: ρ c_p = 1020 × 3.93; ΔT = heat ÷ (ρ c_p flow).
        let dt = kw / (1020.0 * 3.93 * flow / 60_000.0);
        let cdu = format!("cdu-{rack}");
        for (q, v) in [
            (Q::SupplyTempC, 30.0),
            (Q::ReturnTempC, 30.0 + dt),
            (Q::FlowLpm, flow),
            (Q::HeatRemovedKw, kw),
        ] {
            out.push(reading(&cdu, SourceKind::Cdu, rack, "secondary", q, t, v));
        }
    }
    out
}

/// The constructed run with facility readings of both racks stored by collector `fac-1`.
fn stored_with(dir: &TempDir, r1: Rack, r2: Rack) -> (hallmark_results::Store, String) {
    let (mut store, id) = stored(dir, &Run::default());
    let mut readings = rack_readings("rack-01", r1);
    readings.extend(rack_readings("rack-02", r2));
    readings.sort_by_key(|r| r.t_ns);
    let collector = node("fac-1");
    let batch = FacilityBatch { seq: 0, readings };
    if !batch.readings.is_empty() {
        store
            .insert_facility_batches(&id, &[(&collector, &batch, T0 + 13 * S)])
            .unwrap();
    }
    (store, id.as_str().to_string())
}

const SPEC: &str = r#"name = "facility"
[[criterion]]
id = "pdu-peak"
kind = "pdu_peak_power"
max = "12 kW"
[[criterion]]
id = "pdu-sustained"
kind = "pdu_sustained_power"
phase = "burn"
min = "9.5 kW"
window = "5 s"
[[criterion]]
id = "supply"
kind = "coolant_supply_temperature"
max = "35 °C"
[[criterion]]
id = "delta-t"
kind = "coolant_delta_t"
max = "15 K"
[[criterion]]
id = "heat-removed"
kind = "heat_removed"
min = "9 kW"
window = "5 s"
[[criterion]]
id = "energy"
kind = "energy_balance"
tolerance = "5 %"
[[criterion]]
id = "heat"
kind = "heat_balance"
tolerance = "10 %"
capture_min = "85 %"
capture_max = "110 %"
"#;

fn spec() -> Spec {
    parse_spec(SPEC, "facility.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn verdicts(r1: Rack, r2: Rack) -> Vec<Verdict> {
    let dir = TempDir::new("facility");
    let (store, id) = stored_with(&dir, r1, r2);
    evaluate(&store, &id, &spec()).unwrap()
}

fn status(vs: &[Verdict], criterion: &str, rack: &str) -> Status {
    let v = vs
        .iter()
        .find(|v| v.criterion == criterion && v.subject == rack)
        .unwrap_or_else(|| panic!("no verdict {criterion} {rack}: {vs:#?}"));
    v.status
}

fn verdict<'a>(vs: &'a [Verdict], criterion: &str, rack: &str) -> &'a Verdict {
    vs.iter()
        .find(|v| v.criterion == criterion && v.subject == rack)
        .unwrap()
}

const ALL: [&str; 7] = [
    "pdu-peak",
    "pdu-sustained",
    "supply",
    "delta-t",
    "heat-removed",
    "energy",
    "heat",
];

#[test]
fn a_healthy_rack_passes_every_facility_criterion() {
    let vs = verdicts(Rack::Healthy, Rack::Healthy);
    assert_eq!(vs.len(), 14);
    for v in &vs {
        assert_eq!(v.status, Status::Pass, "{v:#?}");
    }
    let peak = verdict(&vs, "pdu-peak", "rack-01");
    assert!((peak.measured.unwrap() - 10.0).abs() < 1e-9, "{peak:?}");
    assert_eq!(peak.evidence.subjects, vec!["pdu-rack-01", "cdu-rack-01"]);
    let energy = verdict(&vs, "energy", "rack-01");
    assert_eq!((energy.unit.as_str(), energy.limit), ("%", Some(105.0)));
    assert!(
        (energy.measured.unwrap() - 100.0).abs() < 1e-6,
        "{energy:?}"
    );
    let dt = verdict(&vs, "delta-t", "rack-01");
    assert_eq!(dt.unit, "K");
    assert!((dt.measured.unwrap() - 9.98).abs() < 0.01, "{dt:?}");
}

#[test]
fn a_pdu_reading_low_fails_the_energy_balance_and_low_flow_fails_delta_t() {
    let vs = verdicts(Rack::PduLow, Rack::LowFlow);
    let energy = verdict(&vs, "energy", "rack-01");
    assert_eq!(energy.status, Status::Fail, "{energy:#?}");
    assert!(
        (energy.measured.unwrap() - 125.0).abs() < 1e-6,
        "{energy:?}"
    );
    assert!(
        energy.evidence.detail.contains("PDU 8.00 kW"),
        "{}",
        energy.evidence.detail
    );
    // The PDU's own figures read low, but within what the criteria allow.
    assert_eq!(status(&vs, "pdu-peak", "rack-01"), Status::Pass);
    assert_eq!(status(&vs, "delta-t", "rack-01"), Status::Pass);

    let dt = verdict(&vs, "delta-t", "rack-02");
    assert_eq!(dt.status, Status::Fail, "{dt:#?}");
    assert!((dt.measured.unwrap() - 24.95).abs() < 0.01, "{dt:?}");
    // Low flow with a 2.5× ΔT carries the same heat: the heat balance holds.
    assert_eq!(status(&vs, "heat", "rack-02"), Status::Pass);
    assert_eq!(status(&vs, "energy", "rack-02"), Status::Pass);
}

#[test]
fn a_rack_without_a_source_or_with_a_stale_one_is_incomplete_never_pass() {
    let vs = verdicts(Rack::PduStops, Rack::Absent);
    for c in ALL {
        let v = verdict(&vs, c, "rack-02");
        assert_eq!(v.status, Status::Incomplete, "{v:#?}");
        assert_eq!(v.measured, None, "absent, never 0: {v:?}");
        assert!(v.evidence.detail.contains("no facility source"), "{v:?}");
    }
    for c in ["pdu-sustained", "energy", "heat"] {
        let v = verdict(&vs, c, "rack-01");
        assert_eq!(v.status, Status::Incomplete, "{v:#?}");
        assert!(
            v.evidence.detail.contains("stale"),
            "{c}: {}",
            v.evidence.detail
        );
    }
    // The CDU's criteria do not rest on the PDU.
    assert_eq!(status(&vs, "delta-t", "rack-01"), Status::Pass);
}

#[test]
fn the_summary_carries_the_pdu_and_cdu_figures_and_null_where_absent() {
    let dir = TempDir::new("facility-summary");
    let (store, id) = stored_with(&dir, Rack::PduLow, Rack::Absent);
    let s = store.run_summary(&id).unwrap();
    let r1 = &s.racks[0];
    assert_eq!(r1.rack, "rack-01");
    assert!((r1.pdu_peak_kw.unwrap() - 8.0).abs() < 1e-9, "{r1:?}");
    // The same 10 s window as the GPU-side `sustained_kw` (8 s of 10 kW and 2 s of 2 kW): the PDU
    // reads 0.8 of it, the CDU all of it.
    let gpu = r1.sustained_kw.unwrap();
    assert!((gpu - 8.4).abs() < 1e-9, "{r1:?}");
    assert!(
        (r1.pdu_sustained_kw.unwrap() - 0.8 * gpu).abs() < 1e-9,
        "{r1:?}"
    );
    assert!(
        (r1.cdu_heat_removed_kw.unwrap() - gpu).abs() < 1e-9,
        "{r1:?}"
    );
    let r2 = &s.racks[1];
    assert_eq!((r2.pdu_peak_kw, r2.cdu_heat_removed_kw), (None, None));
    let f = s.facility.as_ref().unwrap();
    assert!(
        f.racks[1].problems[0].contains("no facility source"),
        "{:?}",
        f.racks[1]
    );
    assert_eq!(f.racks[0].energy.status, Status::Fail);
    assert_eq!(f.racks[1].energy.status, Status::Incomplete);
    let json = serde_json::to_value(&s).unwrap();
    assert!(
        json["racks"][1]["pdu_peak_kw"].is_null(),
        "{}",
        json["racks"][1]
    );
    assert_eq!(json["facility"]["racks"][0]["energy"]["status"], "FAIL");
    let text = s.to_string();
    assert!(text.contains("Facility: "), "{text}");
    assert!(text.contains("FAIL 125.0%"), "{text}");

    // A run without facility readings: no facility block, every figure null, and the text says so.
    let dir = TempDir::new("facility-none");
    let (store, id) = stored(&dir, &Run::default());
    let s = store.run_summary(id.as_str()).unwrap();
    assert!(s.facility.is_none());
    assert!(s
        .racks
        .iter()
        .all(|r| r.pdu_peak_kw.is_none() && r.pdu_sustained_kw.is_none()));
    assert!(s.to_string().contains("no facility readings"));
}

#[test]
fn facility_criteria_parse_and_bad_input_says_what_and_where() {
    let spec = spec();
    assert_eq!(spec.criteria.len(), 7);
    let err = |lines: &str| {
        let text = format!("name = \"t\"\n[[criterion]]\nid = \"c\"\n{lines}\n");
        parse_spec(&text, "t.toml").unwrap_err().to_string()
    };
    let e = err("kind = \"coolant_delta_t\"\nmax = \"15 kW\"");
    assert!(
        e.starts_with("t.toml:5:7: ") && e.contains("a temperature"),
        "{e}"
    );
    let e = err("kind = \"energy_balance\"\ntolerance = 0.05");
    assert!(
        e.contains("without a unit") && e.contains("a percentage"),
        "{e}"
    );
    let e = err("kind = \"energy_balance\"");
    assert!(e.contains("needs the key `tolerance`"), "{e}");
    let e = err("kind = \"heat_balance\"\ntolerance = \"10 %\"\ncapture_min = \"90 %\"\ncapture_max = \"80 %\"");
    assert!(
        e.starts_with("t.toml:7:") && e.contains("below `capture_min`"),
        "{e}"
    );
    let e = err("kind = \"heat_balance\"\ntolerance = \"10 %\"\ncoolant = \"glycol\"");
    assert!(e.contains("pg25") && e.contains("water"), "{e}");
    let e = err("kind = \"pdu_peak_power\"\nmax = \"12 kW\"\nscope = \"hall\"");
    assert!(e.contains("allowed: rack"), "{e}");
    let e = err("kind = \"coolant_supply_temperature\"\nmax = \"300 °C\"");
    assert!(e.contains("out of range"), "{e}");
    let e = err(
        "kind = \"pdu_sustained_power\"\nmin = \"9 kW\"\ntolerance = \"5 %\"\nwindow = \"5 s\"",
    );
    assert!(e.contains("does not take `tolerance`"), "{e}");
}
