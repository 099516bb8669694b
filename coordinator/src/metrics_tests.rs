//! The metrics' figures and their text: sums per rack and hall from each node's latest reading,
//! stale nodes left out and counted, both text formats, label escaping.

use super::*;
use crate::run::Outcome;
use hallmark_protocol::{DeviceInfo, DeviceKind, PhaseStart, Sample, Workload};

const T0: i64 = 1_795_918_500_000_000_000;
const S: i64 = 1_000_000_000;

fn probe(node: &str, rack: &str, devices: u16) -> Event {
    Event::Registered(ProbeRecord {
        node_id: NodeId::new(node).unwrap(),
        labels: Labels {
            hall: "hall-a".into(),
            row: "row1".into(),
            rack: rack.into(),
        },
        inventory: (0..devices)
            .map(|index| DeviceInfo {
                index,
                kind: DeviceKind::SimulatedGpu,
                model: "sim".into(),
                uuid: format!("{node}-{index}"),
                serial: None,
                memory_bytes: None,
                power_limit_w: None,
                idle_power_w: None,
                slowdown_temp_c: None,
                shutdown_temp_c: None,
                max_operating_temp_c: None,
            })
            .collect(),
        backend: "sim".into(),
        hallmark_version: "test".into(),
        instance_id: 1,
        session_id: 1,
        remote: "127.0.0.1:1".into(),
        registered_at_ns: T0,
        clock: None,
        data_plane: None,
        role: ProbeRole::Node,
        software: Vec::new(),
    })
}

/// A batch at `t`: node power `node_w`, each device at `gpu_w` (None: no reading).
fn batch(node: &str, t: i64, node_w: f32, gpu_w: &[Option<f32>]) -> Event {
    Event::Telemetry {
        node_id: NodeId::new(node).unwrap(),
        received_at_ns: t,
        batch: TelemetryBatch {
            seq: 0,
            node_power_w: vec![(t - S / 10, node_w - 1000.0), (t, node_w)],
            samples: gpu_w
                .iter()
                .enumerate()
                .map(|(d, w)| Sample {
                    t_ns: t,
                    device: d as u16,
                    power_w: *w,
                    energy_j: None,
                    gpu_temp_c: None,
                    mem_temp_c: None,
                    sm_clock_mhz: None,
                    util_pct: None,
                    throttle_reasons: 0,
                })
                .collect(),
            gaps: Vec::new(),
        },
    }
}

/// A facility collector's batch at `t`: the whole-unit power of each (source, rack, W).
fn pdus(t: i64, readings: &[(&str, &str, Option<f64>)]) -> Event {
    use hallmark_protocol::{FacilityBatch, FacilityQuantity, FacilityReading, FacilitySubject};
    Event::Facility {
        node_id: NodeId::new("fac").unwrap(),
        received_at_ns: t,
        batch: FacilityBatch {
            seq: 0,
            readings: readings
                .iter()
                .map(|(source, rack, w)| FacilityReading {
                    source: (*source).into(),
                    kind: hallmark_protocol::SourceKind::Pdu,
                    subject: FacilitySubject::Rack((*rack).into()),
                    point: String::new(),
                    quantity: FacilityQuantity::PowerW,
                    uri: String::new(),
                    t_ns: t,
                    value: *w,
                    device_time_ns: None,
                    latency_us: Some(1000),
                    note: None,
                })
                .collect(),
        },
    }
}

#[test]
fn a_racks_pdu_power_stands_beside_its_gpu_side_power_and_collectors_are_no_nodes() {
    let mut m = Metrics::new();
    m.on_event(&probe("n1", "r01", 2));
    let Event::Registered(mut collector) = probe("fac", "mgmt", 0) else {
        unreachable!()
    };
    collector.role = ProbeRole::Facility;
    m.on_event(&Event::Registered(collector));
    m.on_event(&batch("n1", T0 + S, 2500.0, &[Some(700.0), Some(700.0)]));
    m.on_event(&pdus(
        T0 + S,
        &[
            ("pdu-a", "r01", Some(1500.0)),
            ("pdu-b", "r01", Some(1200.0)),
        ],
    ));
    let text = m.render(T0 + 2 * S, Format::Prometheus);
    assert_eq!(
        line(&text, "hallmark_rack_pdu_power_watts{"),
        Some(r#"hallmark_rack_pdu_power_watts{hall="hall-a",row="row1",rack="r01"} 2700"#)
    );
    assert_eq!(
        line(&text, "hallmark_facility_collectors_connected "),
        Some("hallmark_facility_collectors_connected 1")
    );
    assert!(
        !text.contains("mgmt"),
        "a collector is no node of a rack:\n{text}"
    );
    assert_eq!(
        line(&text, "hallmark_facility_readings_received_total "),
        Some("hallmark_facility_readings_received_total 2")
    );
    // One PDU without a reading: no rack figure, one stale PDU.
    m.on_event(&pdus(
        T0 + 3 * S,
        &[("pdu-a", "r01", Some(1500.0)), ("pdu-b", "r01", None)],
    ));
    let text = m.render(T0 + 3 * S, Format::OpenMetrics);
    assert_eq!(line(&text, "hallmark_rack_pdu_power_watts{"), None);
    assert_eq!(
        line(&text, "hallmark_rack_pdus_stale{"),
        Some(r#"hallmark_rack_pdus_stale{hall="hall-a",row="row1",rack="r01"} 1"#)
    );
    assert_eq!(
        line(&text, "hallmark_facility_readings_absent_total "),
        Some("hallmark_facility_readings_absent_total 1")
    );
}

fn line<'a>(text: &'a str, start: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(start))
}

#[test]
fn racks_and_the_hall_sum_their_nodes_latest_fresh_readings() {
    let mut m = Metrics::new();
    for (node, rack) in [("n1", "r01"), ("n2", "r01"), ("n3", "r02")] {
        m.on_event(&probe(node, rack, 2));
    }
    m.on_event(&batch("n1", T0 + S, 5000.0, &[Some(600.0), Some(650.5)]));
    m.on_event(&batch("n2", T0 + S, 4000.0, &[Some(500.0), None]));
    m.on_event(&batch("n3", T0 + S, 3000.0, &[None, None]));
    // An older batch arriving late does not replace the latest reading.
    m.on_event(&batch("n1", T0, 100.0, &[Some(1.0), Some(1.0)]));
    let text = m.render(T0 + 2 * S, Format::Prometheus);
    let rack = "{hall=\"hall-a\",row=\"row1\",rack=\"r01\"}";
    assert_eq!(
        line(&text, &format!("hallmark_rack_power_watts{rack}")),
        Some(format!("hallmark_rack_power_watts{rack} 9000").as_str())
    );
    assert_eq!(
        line(&text, &format!("hallmark_rack_gpu_power_watts{rack}")),
        Some(format!("hallmark_rack_gpu_power_watts{rack} 1750.5").as_str())
    );
    assert!(
        text.contains("hallmark_hall_power_watts{hall=\"hall-a\"} 12000\n"),
        "{text}"
    );
    // n3 reported no device power: absent, not 0, for the node and for its rack.
    assert!(
        !text.contains("hallmark_rack_gpu_power_watts{hall=\"hall-a\",row=\"row1\",rack=\"r02\"}"),
        "{text}"
    );
    assert!(
        !text.contains(
            "hallmark_node_gpu_power_watts{hall=\"hall-a\",row=\"row1\",rack=\"r02\",node=\"n3\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("hallmark_samples_received_total 8\n"),
        "{text}"
    );
    assert!(
        text.contains("hallmark_probes_registered{backend=\"sim\"} 3\n"),
        "{text}"
    );

    // 11 s later only n3 has reported again: the others are stale, left out, and counted.
    m.on_event(&batch(
        "n3",
        T0 + 12 * S,
        3500.0,
        &[Some(400.0), Some(400.0)],
    ));
    let text = m.render(T0 + 12 * S, Format::Prometheus);
    assert!(
        line(&text, &format!("hallmark_rack_power_watts{rack}")).is_none(),
        "{text}"
    );
    assert!(
        text.contains(&format!("hallmark_rack_nodes_stale{rack} 2\n")),
        "{text}"
    );
    assert!(
        text.contains("hallmark_hall_power_watts{hall=\"hall-a\"} 3500\n"),
        "{text}"
    );
}

#[test]
fn connections_turned_away_are_counted_by_cause_in_both_formats() {
    let mut m = Metrics::new();
    let zero = m.render(T0, Format::Prometheus);
    assert!(
        zero.contains("hallmark_connections_turned_away_total{cause=\"resent_initial\"} 0\n"),
        "{zero}"
    );
    m.set_turned_away(crate::LoadRefusals {
        handshakes_in_flight: 53_868,
        connections_open: 2,
        resent_initials: 6_437,
    });
    for (format, family) in [
        (Format::Prometheus, "hallmark_connections_turned_away_total"),
        (Format::OpenMetrics, "hallmark_connections_turned_away"),
    ] {
        let text = m.render(T0, format);
        assert!(
            text.contains(&format!("# TYPE {family} counter\n")),
            "{text}"
        );
        for line in [
            "hallmark_connections_turned_away_total{cause=\"handshakes_in_flight\"} 53868\n",
            "hallmark_connections_turned_away_total{cause=\"connections_open\"} 2\n",
            "hallmark_connections_turned_away_total{cause=\"resent_initial\"} 6437\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}

#[test]
fn the_run_its_phase_losses_gaps_and_storage_are_counted() {
    let mut m = Metrics::new();
    m.on_event(&probe("n1", "r01", 1));
    m.on_event(&probe("n2", "r01", 1));
    let phase = |id, name: &str, start| PhaseStart {
        phase_id: id,
        name: name.into(),
        workload: Workload::Burn,
        pattern: hallmark_protocol::pattern::Pattern::Steady { level: 1.0 },
        start_at_ns: start,
        duration_ms: 10_000,
        sample_hz: 10.0,
        fabric: None,
        target_power_w: None,
    };
    m.on_run_requested("20261203T000000Z-abcdef");
    let text = m.render(T0, Format::Prometheus);
    assert!(
        text.contains("hallmark_run_state{run_id=\"20261203T000000Z-abcdef\",outcome=\"\"} 0\n"),
        "{text}"
    );
    m.on_event(&Event::RunStarted {
        run_id: "20261203T000000Z-abcdef".into(),
        nodes: Vec::new(),
        phases: vec![phase(0, "idle", T0), phase(1, "burn", T0 + 10 * S)],
    });
    let text = m.render(T0 + 12 * S, Format::Prometheus);
    assert!(
        text.contains("hallmark_run_state{run_id=\"20261203T000000Z-abcdef\",outcome=\"\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("hallmark_run_phase{run_id=\"20261203T000000Z-abcdef\",phase=\"burn\"} 1\n"),
        "{text}"
    );
    m.on_event(&Event::ProbeLost {
        node_id: NodeId::new("n2").unwrap(),
        at_ns: T0 + 13 * S,
        reason: "gone".into(),
    });
    m.on_event(&Event::Gap {
        node_id: NodeId::new("n1").unwrap(),
        from_ns: T0,
        to_ns: T0 + S,
        instants: Some(3),
        reason: "late".into(),
    });
    m.on_event(&Event::Gap {
        node_id: NodeId::new("n1").unwrap(),
        from_ns: T0,
        to_ns: T0 + S,
        instants: None,
        reason: "never arrived".into(),
    });
    m.on_event(&batch("n1", T0 + 14 * S, 1000.0, &[Some(1.0)]));
    m.on_stored(&NodeId::new("n1").unwrap(), 0);
    // Stored twice (a replay acknowledged again) counts once; an unknown batch not at all; a
    // replayed batch (its sequence number below the next new one) is not counted again.
    m.on_stored(&NodeId::new("n1").unwrap(), 0);
    m.on_event(&batch("n1", T0 + 14 * S, 1000.0, &[Some(1.0)]));
    m.on_stored(&NodeId::new("n1").unwrap(), 0);
    m.on_stored(&NodeId::new("n2").unwrap(), 5);
    m.on_event(&Event::RunFinished {
        run_id: "20261203T000000Z-abcdef".into(),
        outcome: Outcome::Incomplete,
        reason: "a probe was lost".into(),
        at_ns: T0 + 20 * S,
    });
    let text = m.render(T0 + 21 * S, Format::Prometheus);
    for want in [
        "hallmark_run_state{run_id=\"20261203T000000Z-abcdef\",outcome=\"incomplete\"} 2\n",
        "hallmark_probes_lost{backend=\"sim\"} 1\n",
        "hallmark_probes_registered{backend=\"sim\"} 1\n",
        "hallmark_gaps_total 2\n",
        "hallmark_gap_instants_missed_total 3\n",
        "hallmark_samples_stored_total 1\n",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    assert!(
        !text.contains("hallmark_run_phase{"),
        "no phase after the run: {text}"
    );
}

#[test]
fn both_formats_declare_every_family_once_and_openmetrics_ends_with_eof() {
    let mut m = Metrics::new();
    m.on_event(&probe("n1", "r\"1\\", 1));
    m.on_event(&batch("n1", T0, 1000.0, &[Some(100.0)]));
    let prom = m.render(T0, Format::Prometheus);
    let open = m.render(T0, Format::OpenMetrics);
    assert!(
        prom.contains("# TYPE hallmark_samples_stored_total counter\n"),
        "{prom}"
    );
    assert!(
        open.contains("# TYPE hallmark_samples_stored counter\n"),
        "{open}"
    );
    assert!(open.ends_with("# EOF\n") && !prom.contains("# EOF"));
    assert!(
        prom.contains("rack=\"r\\\"1\\\\\""),
        "escaped label: {prom}"
    );
    for text in [&prom, &open] {
        let mut types: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let n = types.len();
        types.sort();
        types.dedup();
        assert_eq!(types.len(), n, "a family declared twice");
        // Every sample belongs to a declared family.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let family = name
                .strip_suffix("_total")
                .filter(|_| text == &open)
                .unwrap_or(name);
            assert!(types.contains(&family), "{name} undeclared in\n{text}");
        }
    }
    assert_eq!(
        Format::from_accept(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
        )),
        Format::OpenMetrics
    );
    assert_eq!(Format::from_accept(None), Format::Prometheus);
}

/// Every `expr` and variable query of the Grafana dashboard (`deploy/grafana/hallmark.json`).
fn dashboard_queries() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/hallmark.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            out.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            out.push(q.to_owned());
        }
    }
    out
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_hallmark_serves() {
    let mut m = Metrics::new();
    m.on_event(&probe("n1", "r01", 1));
    m.on_run_requested("r");
    let text = m.render(T0, Format::Prometheus);
    let served: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let queries = dashboard_queries();
    assert!(queries.len() >= 13, "{queries:?}");
    let mut used = 0;
    for q in &queries {
        let mut rest = q.as_str();
        while let Some(i) = rest.find("hallmark_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                served.contains(&name.as_str()),
                "{name} (in `{q}`) is not served"
            );
            used += 1;
            rest = &rest[i + name.len()..];
        }
    }
    assert!(used >= queries.len(), "every query names a hallmark metric");
}
