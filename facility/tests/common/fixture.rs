//! The tests' small facility (a rack PDU, a CDU, a chassis) and the helpers that walk it.
#![allow(dead_code)]

use super::{routes, serve, Reply, Routes};
use hallmark_facility::{
    discover, ClientOptions, FacilityError, FindingKind, Inventory, RedfishClient, WalkOptions,
};
use serde_json::{json, Value};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

pub fn now_text(offset_s: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_s))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

pub fn excerpt(reading: Value, sensor: &str) -> Value {
    json!({"Reading": reading, "DataSourceUri": format!("/redfish/v1/Chassis/X/Sensors/{sensor}")})
}

pub fn sensor(reading: Value, reading_time: &str) -> Reply {
    Reply::Json(
        json!({"Reading": reading, "ReadingTime": reading_time, "SensingInterval": "PT0.5S", "Accuracy": 1.5}),
    )
}

/// A rack PDU at 6438 W, a CDU whose primary loop balances (1000 kg/m³, 4 kJ/(kg·K), 60 L/min,
/// 10 K → 40 kW, reported 40.5 kW), and a chassis at 374 W with one power supply at 380 W.
pub fn facility() -> Routes {
    let fresh = now_text(-2);
    let p = |s: &str| format!("/redfish/v1{s}");
    routes([
        (
            "/redfish/v1/",
            Reply::Json(
                json!({"PowerEquipment": {"@odata.id": p("/PowerEquipment")}, "ThermalEquipment": {"@odata.id": p("/ThermalEquipment")}, "Chassis": {"@odata.id": p("/Chassis")}}),
            ),
        ),
        (
            "/redfish/v1/PowerEquipment",
            Reply::Json(json!({"RackPDUs": {"@odata.id": p("/PowerEquipment/RackPDUs")}})),
        ),
        (
            "/redfish/v1/PowerEquipment/RackPDUs",
            Reply::Json(json!({"Members": [{"@odata.id": p("/PowerEquipment/RackPDUs/1")}]})),
        ),
        (
            "/redfish/v1/PowerEquipment/RackPDUs/1",
            Reply::Json(
                json!({"Id": "1", "Name": "PDU 1", "Metrics": {"@odata.id": p("/PowerEquipment/RackPDUs/1/Metrics")}, "Outlets": {"@odata.id": p("/PowerEquipment/RackPDUs/1/Outlets")}}),
            ),
        ),
        (
            "/redfish/v1/PowerEquipment/RackPDUs/1/Metrics",
            Reply::Json(
                json!({"PowerWatts": excerpt(json!(6438), "PDUPower"), "EnergykWh": {"Reading": 56438}}),
            ),
        ),
        (
            "/redfish/v1/PowerEquipment/RackPDUs/1/Outlets",
            Reply::Json(
                json!({"Members": [{"@odata.id": p("/PowerEquipment/RackPDUs/1/Outlets/A1")}]}),
            ),
        ),
        (
            "/redfish/v1/PowerEquipment/RackPDUs/1/Outlets/A1",
            Reply::Json(
                json!({"Name": "A1", "PowerWatts": {"Reading": 197.4}, "CurrentAmps": {"Reading": 1.68}}),
            ),
        ),
        (
            "/redfish/v1/Chassis/X/Sensors/PDUPower",
            sensor(json!(6438), &fresh),
        ),
        (
            "/redfish/v1/ThermalEquipment",
            Reply::Json(json!({"CDUs": {"@odata.id": p("/ThermalEquipment/CDUs")}})),
        ),
        (
            "/redfish/v1/ThermalEquipment/CDUs",
            Reply::Json(json!({"Members": [{"@odata.id": p("/ThermalEquipment/CDUs/1")}]})),
        ),
        (
            "/redfish/v1/ThermalEquipment/CDUs/1",
            Reply::Json(
                json!({"Name": "CDU 1", "Coolant": {"DensityKgPerCubicMeter": 1000, "SpecificHeatkJoulesPerKgK": 4.0}, "PrimaryCoolantConnectors": {"@odata.id": p("/ThermalEquipment/CDUs/1/Primary")}}),
            ),
        ),
        (
            "/redfish/v1/ThermalEquipment/CDUs/1/Primary",
            Reply::Json(
                json!({"Members": [{"@odata.id": p("/ThermalEquipment/CDUs/1/Primary/1")}]}),
            ),
        ),
        (
            "/redfish/v1/ThermalEquipment/CDUs/1/Primary/1",
            Reply::Json(json!({
            "FlowLitersPerMinute": excerpt(json!(60), "Flow"), "SupplyTemperatureCelsius": {"Reading": 30}, "ReturnTemperatureCelsius": {"Reading": 40},
            "DeltaTemperatureCelsius": {"Reading": 10}, "SupplyPressurekPa": {"Reading": 300}, "HeatRemovedkW": {"Reading": 40.5}})),
        ),
        (
            "/redfish/v1/Chassis/X/Sensors/Flow",
            sensor(json!(60), &fresh),
        ),
        (
            "/redfish/v1/Chassis",
            Reply::Json(json!({"Members": [{"@odata.id": p("/Chassis/1U")}]})),
        ),
        (
            "/redfish/v1/Chassis/1U",
            Reply::Json(
                json!({"Name": "node 1", "ChassisType": "RackMount", "EnvironmentMetrics": {"@odata.id": p("/Chassis/1U/EnvironmentMetrics")}, "PowerSubsystem": {"@odata.id": p("/Chassis/1U/PowerSubsystem")}}),
            ),
        ),
        (
            "/redfish/v1/Chassis/1U/EnvironmentMetrics",
            Reply::Json(json!({"PowerWatts": {"Reading": 374}})),
        ),
        (
            "/redfish/v1/Chassis/1U/PowerSubsystem",
            Reply::Json(
                json!({"PowerSupplies": {"@odata.id": p("/Chassis/1U/PowerSubsystem/PowerSupplies")}}),
            ),
        ),
        (
            "/redfish/v1/Chassis/1U/PowerSubsystem/PowerSupplies",
            Reply::Json(
                json!({"Members": [{"@odata.id": p("/Chassis/1U/PSU/1")}, {"@odata.id": p("/Chassis/1U/PSU/2")}]}),
            ),
        ),
        (
            "/redfish/v1/Chassis/1U/PSU/1",
            Reply::Json(json!({"Metrics": {"@odata.id": p("/Chassis/1U/PSU/1/Metrics")}})),
        ),
        (
            "/redfish/v1/Chassis/1U/PSU/1/Metrics",
            Reply::Json(json!({"InputPowerWatts": {"Reading": 380}})),
        ),
        (
            "/redfish/v1/Chassis/1U/PSU/2",
            Reply::Json(json!({"Status": {"State": "Absent"}})),
        ),
    ])
}

pub fn set(routes: &mut Routes, path: &str, reply: Reply) {
    routes.insert(format!("GET {path}"), reply);
}

pub async fn walk(
    url: &str,
    opts: ClientOptions,
    walk: WalkOptions,
) -> Result<Inventory, FacilityError> {
    let mut client = RedfishClient::new(url, opts).unwrap();
    let r = discover(&mut client, walk, LIMIT).await;
    client.close().await;
    r
}

pub async fn inventory(routes: Routes) -> (Inventory, Value) {
    let server = serve(routes).await;
    let inv = walk(
        &server.url(),
        ClientOptions::default(),
        WalkOptions::default(),
    )
    .await
    .unwrap();
    let v = serde_json::to_value(&inv).unwrap();
    (inv, v)
}

pub fn kinds(inv: &Inventory) -> Vec<FindingKind> {
    inv.findings.iter().map(|f| f.kind).collect()
}
