//! The Redfish resources of a served facility as JSON, from the board's states: pure functions of
//! the path, the states and the time, no I/O. Shapes follow DMTF's public-pdu and
//! public-cooling-unit mockups: `PowerDistribution` with `PowerDistributionMetrics`, `CoolingUnit`
//! with `CoolantConnector`s, and the `Sensor`s behind each reading under the equipment's `Chassis`
//! (`/redfish/v1/Chassis/PDU-{id}/Sensors/Power`), named by each reading's `DataSourceUri`.

use super::{CduState, ConnectorState, PduState};
use serde_json::{json, Map, Value};
use std::time::SystemTime;

/// The service root.
pub const ROOT: &str = "/redfish/v1";

/// The path of the rack PDU `id`.
pub fn pdu_path(id: &str) -> String {
    format!("{ROOT}/PowerEquipment/RackPDUs/{id}")
}

/// The path of the CDU `id`.
pub fn cdu_path(id: &str) -> String {
    format!("{ROOT}/ThermalEquipment/CDUs/{id}")
}

fn pdu_chassis(id: &str) -> String {
    format!("PDU-{id}")
}

fn cdu_chassis(id: &str) -> String {
    format!("CDU-{id}")
}

fn sensor_path(chassis: &str, sensor: &str) -> String {
    format!("{ROOT}/Chassis/{chassis}/Sensors/{sensor}")
}

fn link(path: &str) -> Value {
    json!({ "@odata.id": path })
}

/// What a path holds, given the states now; `None`: no such resource.
pub fn resource(path: &str, pdus: &[PduState], cdus: &[CduState]) -> Option<Value> {
    let rest = path.strip_prefix(ROOT)?;
    let rest = rest.trim_end_matches('/');
    let segments: Vec<&str> = if rest.is_empty() {
        vec![]
    } else {
        rest.strip_prefix('/')?.split('/').collect()
    };
    let pdu = |id: &str| pdus.iter().find(|p| p.id == id);
    let cdu = |id: &str| cdus.iter().find(|c| c.id == id);
    match segments.as_slice() {
        [] => Some(service_root()),
        ["PowerEquipment"] => Some(json!({
            "@odata.type": "#PowerEquipment.v1_2_3.PowerEquipment",
            "@odata.id": format!("{ROOT}/PowerEquipment"),
            "Id": "PowerEquipment",
            "Name": "Simulated hall power equipment",
            "Status": {"State": "Enabled", "HealthRollup": "OK"},
            "RackPDUs": link(&format!("{ROOT}/PowerEquipment/RackPDUs")),
        })),
        ["PowerEquipment", "RackPDUs"] => Some(collection(
            "#PowerDistributionCollection.PowerDistributionCollection",
            &format!("{ROOT}/PowerEquipment/RackPDUs"),
            "RackPDU Collection",
            pdus.iter().map(|p| pdu_path(&p.id)),
        )),
        ["PowerEquipment", "RackPDUs", id] => pdu(id).map(pdu_resource),
        ["PowerEquipment", "RackPDUs", id, "Metrics"] => pdu(id).map(pdu_metrics),
        ["ThermalEquipment"] => Some(json!({
            "@odata.type": "#ThermalEquipment.v1_2_0.ThermalEquipment",
            "@odata.id": format!("{ROOT}/ThermalEquipment"),
            "Id": "ThermalEquipment",
            "Name": "Simulated hall cooling equipment",
            "Status": {"State": "Enabled", "HealthRollup": "OK"},
            "CDUs": link(&format!("{ROOT}/ThermalEquipment/CDUs")),
        })),
        ["ThermalEquipment", "CDUs"] => Some(collection(
            "#CoolingUnitCollection.CoolingUnitCollection",
            &format!("{ROOT}/ThermalEquipment/CDUs"),
            "CDU Collection",
            cdus.iter().map(|c| cdu_path(&c.id)),
        )),
        ["ThermalEquipment", "CDUs", id] => cdu(id).map(cdu_resource),
        ["ThermalEquipment", "CDUs", id, side] => {
            let (_, side) = side_named(side)?;
            let c = cdu(id)?;
            Some(collection(
                "#CoolantConnectorCollection.CoolantConnectorCollection",
                &format!("{}/{side}", cdu_path(&c.id)),
                side,
                [format!("{}/{side}/1", cdu_path(&c.id))].into_iter(),
            ))
        }
        ["ThermalEquipment", "CDUs", id, side, "1"] => {
            let (primary, _) = side_named(side)?;
            cdu(id).map(|c| connector(c, primary))
        }
        ["Chassis"] => Some(collection(
            "#ChassisCollection.ChassisCollection",
            &format!("{ROOT}/Chassis"),
            "Chassis Collection",
            pdus.iter()
                .map(|p| format!("{ROOT}/Chassis/{}", pdu_chassis(&p.id)))
                .chain(
                    cdus.iter()
                        .map(|c| format!("{ROOT}/Chassis/{}", cdu_chassis(&c.id))),
                ),
        )),
        ["Chassis", chassis, more @ ..] => chassis_resource(chassis, more, pdus, cdus),
        _ => None,
    }
}

fn service_root() -> Value {
    json!({
        "@odata.type": "#ServiceRoot.v1_20_0.ServiceRoot",
        "@odata.id": format!("{ROOT}/"),
        "Id": "RootService",
        "Name": "hallmark simulated facility",
        "RedfishVersion": "1.15.0",
        "PowerEquipment": link(&format!("{ROOT}/PowerEquipment")),
        "ThermalEquipment": link(&format!("{ROOT}/ThermalEquipment")),
        "Chassis": link(&format!("{ROOT}/Chassis")),
    })
}

fn collection(
    odata_type: &str,
    path: &str,
    name: &str,
    members: impl Iterator<Item = String>,
) -> Value {
    let members: Vec<Value> = members.map(|m| link(&m)).collect();
    json!({
        "@odata.type": odata_type,
        "@odata.id": path,
        "Name": name,
        "Members@odata.count": members.len(),
        "Members": members,
    })
}

fn pdu_resource(p: &PduState) -> Value {
    let path = pdu_path(&p.id);
    json!({
        "@odata.type": "#PowerDistribution.v1_6_0.PowerDistribution",
        "@odata.id": path,
        "Id": p.id,
        "EquipmentType": "RackPDU",
        "Name": format!("Rack PDU of {}", p.rack),
        "Manufacturer": "hallmark",
        "Model": "simulated rack PDU",
        "Status": {"State": "Enabled", "Health": "OK"},
        "Location": {"Placement": {"Rack": p.rack}},
        "Metrics": link(&format!("{path}/Metrics")),
        "Links": {"Chassis": [link(&format!("{ROOT}/Chassis/{}", pdu_chassis(&p.id)))]},
    })
}

fn excerpt(reading: Option<f64>, source: String) -> Value {
    json!({ "Reading": reading, "DataSourceUri": source })
}

fn pdu_metrics(p: &PduState) -> Value {
    let chassis = pdu_chassis(&p.id);
    json!({
        "@odata.type": "#PowerDistributionMetrics.v1_4_0.PowerDistributionMetrics",
        "@odata.id": format!("{}/Metrics", pdu_path(&p.id)),
        "Id": "Metrics",
        "Name": "Summary Metrics",
        "PowerWatts": excerpt(p.power_w, sensor_path(&chassis, "Power")),
        "EnergykWh": excerpt(p.energy_kwh, sensor_path(&chassis, "Energy")),
    })
}

fn coolant(c: &CduState) -> Value {
    json!({
        "CoolantType": "Water",
        "AdditivePercent": 0,
        "DensityKgPerCubicMeter": c.density_kg_per_m3,
        "SpecificHeatkJoulesPerKgK": c.specific_heat_kj_per_kg_k,
    })
}

fn cdu_resource(c: &CduState) -> Value {
    let path = cdu_path(&c.id);
    json!({
        "@odata.type": "#CoolingUnit.v1_5_0.CoolingUnit",
        "@odata.id": path,
        "Id": c.id,
        "EquipmentType": "CDU",
        "Name": format!("Cooling Distribution Unit of {}", c.rack),
        "Manufacturer": "hallmark",
        "Model": "simulated CDU",
        "Status": {"State": "Enabled", "Health": "OK"},
        "Location": {"Placement": {"Rack": c.rack}},
        "Coolant": coolant(c),
        "PrimaryCoolantConnectors": link(&format!("{path}/PrimaryCoolantConnectors")),
        "SecondaryCoolantConnectors": link(&format!("{path}/SecondaryCoolantConnectors")),
        "Links": {"Chassis": [link(&format!("{ROOT}/Chassis/{}", cdu_chassis(&c.id)))]},
    })
}

/// (primary?, collection name) of a connector collection's path segment.
fn side_named(segment: &str) -> Option<(bool, &'static str)> {
    match segment {
        "PrimaryCoolantConnectors" => Some((true, "PrimaryCoolantConnectors")),
        "SecondaryCoolantConnectors" => Some((false, "SecondaryCoolantConnectors")),
        _ => None,
    }
}

fn delta(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(b? - a?)
}

fn connector(c: &CduState, primary: bool) -> Value {
    let (k, side, name) = if primary {
        (&c.primary, "Primary", "Facility water (primary loop)")
    } else {
        (&c.secondary, "Secondary", "Rack coolant (secondary loop)")
    };
    let chassis = cdu_chassis(&c.id);
    let s = |sensor: &str| sensor_path(&chassis, &format!("{side}{sensor}"));
    json!({
        "@odata.type": "#CoolantConnector.v1_3_0.CoolantConnector",
        "@odata.id": format!("{}/{side}CoolantConnectors/1", cdu_path(&c.id)),
        "Id": "1",
        "Name": name,
        "Status": {"State": "Enabled", "Health": "OK"},
        "CoolantConnectorType": "Pair",
        "Coolant": coolant(c),
        "FlowLitersPerMinute": excerpt(k.flow_lpm, s("Flow")),
        "SupplyTemperatureCelsius": excerpt(k.supply_temp_c, s("SupplyTemp")),
        "ReturnTemperatureCelsius": excerpt(k.return_temp_c, s("ReturnTemp")),
        "DeltaTemperatureCelsius": excerpt(delta(k.supply_temp_c, k.return_temp_c), s("DeltaTemp")),
        "HeatRemovedkW": excerpt(k.heat_removed_kw, s("HeatRemoved")),
    })
}

fn chassis_resource(
    chassis: &str,
    more: &[&str],
    pdus: &[PduState],
    cdus: &[CduState],
) -> Option<Value> {
    let path = format!("{ROOT}/Chassis/{chassis}");
    let (sensors, time, interval, accuracy, equipment) =
        if let Some(id) = chassis.strip_prefix("PDU-") {
            let p = pdus.iter().find(|p| p.id == id)?;
            let sensors = vec![
                ("Power", "Power", "W", "Total input power", p.power_w),
                (
                    "Energy",
                    "EnergykWh",
                    "kW.h",
                    "Total input energy",
                    p.energy_kwh,
                ),
            ];
            let equipment = json!({"PowerDistribution": link(&pdu_path(id))});
            (
                sensors,
                p.reading_time,
                p.sensing_interval_s,
                p.accuracy_pct,
                equipment,
            )
        } else {
            let id = chassis.strip_prefix("CDU-")?;
            let c = cdus.iter().find(|c| c.id == id)?;
            let equipment = json!({"CoolingUnits": [link(&cdu_path(id))]});
            (
                cdu_sensors(c),
                c.reading_time,
                c.sensing_interval_s,
                c.accuracy_pct,
                equipment,
            )
        };
    match more {
        [] => Some(json!({
            "@odata.type": "#Chassis.v1_25_0.Chassis",
            "@odata.id": path,
            "Id": chassis,
            "Name": format!("Chassis of {chassis}"),
            "ChassisType": "RackMount",
            "Status": {"State": "Enabled", "Health": "OK"},
            "Sensors": link(&format!("{path}/Sensors")),
            "Links": equipment,
        })),
        ["Sensors"] => Some(collection(
            "#SensorCollection.SensorCollection",
            &format!("{path}/Sensors"),
            "Sensors",
            sensors.iter().map(|s| sensor_path(chassis, s.0)),
        )),
        ["Sensors", id] => {
            let &(sid, kind, units, name, reading) = sensors.iter().find(|s| s.0 == *id)?;
            let mut v = Map::new();
            v.insert("@odata.type".into(), json!("#Sensor.v1_7_0.Sensor"));
            v.insert("@odata.id".into(), json!(sensor_path(chassis, sid)));
            v.insert("Id".into(), json!(sid));
            v.insert("Name".into(), json!(name));
            v.insert("ReadingType".into(), json!(kind));
            v.insert("ReadingUnits".into(), json!(units));
            v.insert("Reading".into(), json!(reading));
            v.insert("ReadingTime".into(), json!(rfc3339(time)));
            v.insert("SensingInterval".into(), json!(iso8601(interval)));
            if let Some(a) = accuracy {
                v.insert("Accuracy".into(), json!(a));
            }
            v.insert("Status".into(), json!({"State": "Enabled", "Health": "OK"}));
            Some(Value::Object(v))
        }
        _ => None,
    }
}

type SensorRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<f64>,
);

fn cdu_sensors(c: &CduState) -> Vec<SensorRow> {
    let side = |k: &ConnectorState, primary: bool| -> Vec<SensorRow> {
        let ids: [&'static str; 5] = if primary {
            [
                "PrimaryFlow",
                "PrimarySupplyTemp",
                "PrimaryReturnTemp",
                "PrimaryDeltaTemp",
                "PrimaryHeatRemoved",
            ]
        } else {
            [
                "SecondaryFlow",
                "SecondarySupplyTemp",
                "SecondaryReturnTemp",
                "SecondaryDeltaTemp",
                "SecondaryHeatRemoved",
            ]
        };
        vec![
            (ids[0], "LiquidFlowLPM", "L/min", "Coolant flow", k.flow_lpm),
            (
                ids[1],
                "Temperature",
                "Cel",
                "Supply temperature",
                k.supply_temp_c,
            ),
            (
                ids[2],
                "Temperature",
                "Cel",
                "Return temperature",
                k.return_temp_c,
            ),
            (
                ids[3],
                "Temperature",
                "Cel",
                "Return less supply temperature",
                delta(k.supply_temp_c, k.return_temp_c),
            ),
            (ids[4], "Heat", "kW", "Heat removed", k.heat_removed_kw),
        ]
    };
    let mut out = side(&c.primary, true);
    out.extend(side(&c.secondary, false));
    out
}

/// RFC 3339 in UTC, to the millisecond.
pub fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let t = t
        .replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// An ISO 8601 duration of seconds (`PT1S`, `PT0.25S`).
pub fn iso8601(seconds: f64) -> String {
    format!("PT{seconds}S")
}

/// A Redfish error body (DMTF Base message registry).
pub fn error_body(message_id: &str, message: &str, args: &[&str], resolution: &str) -> Value {
    json!({
        "error": {
            "code": format!("Base.1.8.{message_id}"),
            "message": message,
            "@Message.ExtendedInfo": [{
                "@odata.type": "#Message.v1_1_1.Message",
                "MessageId": format!("Base.1.8.{message_id}"),
                "Message": message,
                "MessageArgs": args,
                "Severity": "Critical",
                "Resolution": resolution,
            }],
        }
    })
}
