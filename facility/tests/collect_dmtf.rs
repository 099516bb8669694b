//! The collector's extraction against DMTF's own mockups (excerpts in tests/data/dmtf, BSD-3),
//! without a server: links, readings, Sensor metadata, a CDU's total.

use hallmark_facility::collect::extract::{self, Role, SourceMeta, Stamp};
use hallmark_facility::model::Sensor;
use hallmark_facility::reading::SensorInfo;
use hallmark_protocol::facility::{FacilityQuantity as Q, FacilityReading, SourceKind, Subject};

fn json(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/data/dmtf/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn meta(kind: SourceKind) -> SourceMeta {
    SourceMeta {
        name: "dmtf".into(),
        kind,
        subject: Subject::Rack("r4".into()),
        max_reading_age_s: Some(300.0),
    }
}

const STAMP: Stamp = Stamp {
    t_ns: 1_700_000_000_000_000_000,
    latency_us: Some(850),
};

fn values(ex: &[extract::Extracted]) -> Vec<(String, Q, Option<f64>)> {
    ex.iter()
        .map(|x| (x.reading.point.clone(), x.reading.quantity, x.reading.value))
        .collect()
}

#[test]
fn public_pdu_links_metrics_and_sensor() {
    let links = extract::links(SourceKind::Pdu, &json("pdu")).unwrap();
    assert_eq!(
        links.targets[0].path,
        "/redfish/v1/PowerEquipment/RackPDUs/1/Metrics"
    );
    assert_eq!(links.targets[0].role, Role::PduMetrics);
    assert_eq!(
        links.collections,
        [
            (
                "/redfish/v1/PowerEquipment/RackPDUs/1/Mains".to_string(),
                "mains"
            ),
            (
                "/redfish/v1/PowerEquipment/RackPDUs/1/Outlets".to_string(),
                "outlet"
            )
        ]
    );
    let uri = "http://127.0.0.1:1/redfish/v1/PowerEquipment/RackPDUs/1/Metrics";
    let ex = extract::extract(
        &meta(SourceKind::Pdu),
        &Role::PduMetrics,
        uri,
        &json("pdu-metrics"),
        STAMP,
    )
    .unwrap();
    assert_eq!(
        values(&ex),
        [
            ("".into(), Q::PowerW, Some(6438.0)),
            ("".into(), Q::EnergyKwh, Some(56438.0))
        ]
    );
    assert_eq!(ex[0].reading.uri, format!("{uri}#/PowerWatts/Reading"));
    assert_eq!(
        (ex[0].reading.t_ns, ex[0].reading.latency_us),
        (STAMP.t_ns, Some(850))
    );
    assert_eq!(
        ex[0].sensor.as_deref(),
        Some("/redfish/v1/Chassis/PDU/Sensors/PDUPower")
    );

    // Its Sensor: ReadingTime 2019-08-13T04:14:33+06:00, 0.2 % accuracy.
    let s: Sensor = serde_json::from_value(json("pdu-power-sensor")).unwrap();
    let info = SensorInfo::from_sensor("…/Sensors/PDUPower", &s);
    assert_eq!(info.sensing_interval_s, Some(0.25));
    let device_ns = 1_565_648_073_000_000_000; // 2019-08-12T22:14:33Z
    let mut fresh = ex[0].reading.clone();
    extract::apply_sensor(&mut fresh, &info, device_ns + 1_000_000_000, Some(300.0));
    assert_eq!(
        (fresh.value, fresh.device_time_ns),
        (Some(6438.0), Some(device_ns))
    );
    assert_eq!(fresh.note.as_deref(), Some("accuracy ±0.2 % (Sensor)"));
    let mut stale: FacilityReading = ex[0].reading.clone();
    extract::apply_sensor(&mut stale, &info, STAMP.t_ns, Some(300.0));
    assert_eq!(stale.value, None, "a 2019 reading time in 2023 is stale");
    assert!(
        stale
            .note
            .as_deref()
            .unwrap()
            .starts_with("stale: Sensor ReadingTime 2019-08-13T04:14:33+06:00 is"),
        "{stale:?}"
    );
    let mut unchecked = ex[0].reading.clone();
    extract::apply_sensor(&mut unchecked, &info, STAMP.t_ns, None);
    assert_eq!(
        unchecked.value,
        Some(6438.0),
        "max_reading_age_s = 0: no check"
    );
}

#[test]
fn public_cooling_unit_connectors_and_total() {
    let links = extract::links(SourceKind::Cdu, &json("cdu")).unwrap();
    assert!(links.targets.is_empty());
    assert_eq!(
        links.collections.iter().map(|c| c.1).collect::<Vec<_>>(),
        ["primary", "secondary"]
    );
    let m = meta(SourceKind::Cdu);
    let base = "http://127.0.0.1:1/redfish/v1/ThermalEquipment/CDUs/1";
    let p = extract::extract(
        &m,
        &Role::Connector {
            point: "primary".into(),
        },
        &format!("{base}/PrimaryCoolantConnectors/1"),
        &json("cdu-primary-1"),
        STAMP,
    )
    .unwrap();
    assert_eq!(
        values(&p),
        [
            ("primary".into(), Q::SupplyTempC, Some(30.0)),
            ("primary".into(), Q::ReturnTempC, Some(40.0)),
            ("primary".into(), Q::FlowLpm, Some(42.0)),
            ("primary".into(), Q::HeatRemovedKw, Some(25.48)),
            ("primary".into(), Q::DeltaTK, Some(10.0)),
            ("primary".into(), Q::SupplyPressureKpa, Some(827.0)),
            ("primary".into(), Q::ReturnPressureKpa, Some(965.0)),
        ]
    );
    let s = extract::extract(
        &m,
        &Role::Connector {
            point: "secondary".into(),
        },
        &format!("{base}/SecondaryCoolantConnectors/1"),
        &json("cdu-secondary-1"),
        STAMP,
    )
    .unwrap();
    let heat = s
        .iter()
        .find(|x| x.reading.quantity == Q::HeatRemovedKw)
        .unwrap();
    assert_eq!(heat.reading.value, Some(25.31));
    let all: Vec<FacilityReading> = p.iter().chain(&s).map(|x| x.reading.clone()).collect();
    let total = extract::cdu_total(&m, base, &all, STAMP);
    assert_eq!(
        (total.point.as_str(), total.value),
        ("", Some(25.31)),
        "the rack side's heat"
    );
    assert_eq!(total.uri, format!("{base}#/secondaryCoolantConnectors"));
}

#[test]
fn public_rackmount1_chassis_power() {
    let uri = "http://127.0.0.1:1/redfish/v1/Chassis/1U/EnvironmentMetrics";
    let ex = extract::extract(
        &meta(SourceKind::Chassis),
        &Role::EnvMetrics,
        uri,
        &json("chassis-1u-environment"),
        STAMP,
    )
    .unwrap();
    assert_eq!(values(&ex), [("".into(), Q::PowerW, Some(374.0))]);
    // A resource that is not what its role expects is an error naming what it should be.
    let e = extract::extract(
        &meta(SourceKind::Chassis),
        &Role::EnvMetrics,
        uri,
        &serde_json::json!({"PowerWatts": 5}),
        STAMP,
    )
    .unwrap_err();
    assert!(e.contains("not a valid EnvironmentMetrics"), "{e}");
}

/// A connector that states its coolant gives its density and specific heat as readings; a density
/// in kg/L (1.03) is refused as out of range, absent with its note, never read as 1.03 kg/m³.
#[test]
fn a_connectors_stated_coolant_is_read() {
    let m = meta(SourceKind::Cdu);
    let uri = "http://127.0.0.1:1/redfish/v1/ThermalEquipment/CDUs/1/SecondaryCoolantConnectors/1";
    let role = Role::Connector {
        point: "secondary".into(),
    };
    let mut body = json("cdu-secondary-1");
    body["Coolant"] = serde_json::json!({
        "CoolantType": "Water", "DensityKgPerCubicMeter": 997.0, "SpecificHeatkJoulesPerKgK": 4.18
    });
    let got = values(&extract::extract(&m, &role, uri, &body, STAMP).unwrap());
    assert!(got.contains(&("secondary".into(), Q::CoolantDensityKgM3, Some(997.0))));
    assert!(got.contains(&("secondary".into(), Q::CoolantSpecificHeatKjKgK, Some(4.18))));
    body["Coolant"]["DensityKgPerCubicMeter"] = serde_json::json!(1.03);
    let ex = extract::extract(&m, &role, uri, &body, STAMP).unwrap();
    let density = ex
        .iter()
        .find(|x| x.reading.quantity == Q::CoolantDensityKgM3)
        .unwrap();
    assert_eq!(density.reading.value, None);
    assert!(
        density.reading.note.as_deref().unwrap().contains("outside"),
        "{:?}",
        density.reading
    );
    assert!(density
        .reading
        .uri
        .ends_with("#/Coolant/DensityKgPerCubicMeter"));
    // Without a stated coolant, no such reading (absent, not 0, and not invented).
    let plain = values(&extract::extract(&m, &role, uri, &json("cdu-secondary-1"), STAMP).unwrap());
    assert!(!plain.iter().any(|(_, q, _)| *q == Q::CoolantDensityKgM3));
}
