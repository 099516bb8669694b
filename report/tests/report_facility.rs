//! The report's facility section: present for a run with facility readings (the PDU beside the
//! GPU-side power per rack, the CDU table, the balance table), absent without.

#[path = "../../results/tests/spec_support/mod.rs"]
mod spec_support;

use hallmark_protocol::facility::{
    FacilityBatch, FacilityQuantity as Q, FacilityReading, SourceKind, Subject,
};
use hallmark_report::write_report;
use hallmark_results::Store;
use spec_support::{node, Run, TempDir, MS, T0};

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A PDU reading 0.8× low on rack-01 and a healthy CDU on rack-02, polled every second.
fn readings() -> Vec<FacilityReading> {
    let mut out = Vec::new();
    for sec in 0..12i64 {
        // Meters averaging over a second, polled at its end.
        let t = T0 + (sec + 1) * 1000 * MS;
        let kw = if sec < 8 { 10.0 } else { 2.0 };
        let r = |src: &str, kind, rack: &str, point: &str, q, v: f64| FacilityReading {
            source: src.into(),
            kind,
            subject: Subject::Rack(rack.into()),
            point: point.into(),
            quantity: q,
            uri: format!("http://127.0.0.1:1/{src}"),
            t_ns: t,
            value: Some(v),
            device_time_ns: None,
            latency_us: None,
            note: None,
        };
        out.push(r(
            "pdu-1",
            SourceKind::Pdu,
            "rack-01",
            "",
            Q::PowerW,
            kw * 800.0,
        ));
        let dt = kw / (1020.0 * 3.93 * 15.0 / 60_000.0);
        for (q, v) in [
            (Q::SupplyTempC, 30.0),
            (Q::ReturnTempC, 30.0 + dt),
            (Q::FlowLpm, 15.0),
            (Q::HeatRemovedKw, kw),
        ] {
            out.push(r("cdu-2", SourceKind::Cdu, "rack-02", "secondary", q, v));
        }
    }
    out
}

#[test]
fn the_facility_section_appears_with_readings_and_not_without() {
    let dir = TempDir::new("report-facility");
    let mut store = Store::open(dir.path()).unwrap();
    let run = Run::default().store(&mut store);
    let plain = dir.path().join("plain");
    let files = write_report(&store, run.as_str(), &[], &plain).unwrap();
    let html = read(&files.index());
    assert!(
        !html.contains("<section id=\"facility\">"),
        "no readings, no section"
    );

    let batch = FacilityBatch {
        seq: 0,
        readings: readings(),
    };
    store
        .insert_facility_batches(&run, &[(&node("fac-1"), &batch, T0 + 13_000 * MS)])
        .unwrap();
    let out = dir.path().join("report");
    let files = write_report(&store, run.as_str(), &[], &out).unwrap();
    let html = read(&files.index());
    let start = html
        .find("<section id=\"facility\">")
        .expect("the facility section");
    let section = &html[start..start + html[start..].find("</section>").unwrap()];
    assert!(section.contains("<svg"), "the PDU chart");
    assert!(section.contains("Coolant (CDU) under load"));
    assert!(section.contains("cdu-2"));
    // rack-01: the PDU reads 8 kW against 10 kW GPU-side: the energy balance fails.
    assert!(section.contains("125.0 %"), "{section}");
    assert!(section.contains("badge fail"), "{section}");
    // rack-02 has no PDU: its PDU figure is a dash, never 0.
    assert!(section.contains("no PDU source"), "{section}");
    let json: serde_json::Value = serde_json::from_str(&read(&out.join("summary.json"))).unwrap();
    let racks = &json["summary"]["racks"];
    assert!(
        (racks[0]["pdu_peak_kw"].as_f64().unwrap() - 8.0).abs() < 1e-9,
        "{racks}"
    );
    assert!(racks[1]["pdu_peak_kw"].is_null(), "{racks}");
}
