//! The Redfish client and `discover` against small services on loopback started by the tests:
//! a facility that reads right, and the bad input of issue 10 (unreachable, 401, a redirect
//! loop, malformed and huge JSON, a missing property, out-of-range readings, a ReadingTime far
//! from now, physical inconsistencies, the walk's bound). Needs nothing outside this crate.

mod common;

use common::fixture::{facility, inventory, kinds, now_text, sensor, set, walk};
use common::{redirect, serve, Reply};
use hallmark_facility::{ClientOptions, FacilityError, FindingKind, RedfishClient, WalkOptions};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn discover_reads_pdus_cdus_and_chassis() {
    let (inv, v) = inventory(facility()).await;
    assert!(inv.findings.is_empty(), "{:#?}", inv.findings);
    let pdu = &v["pdus"][0];
    assert!(
        pdu["uri"]
            .as_str()
            .unwrap()
            .ends_with("/redfish/v1/PowerEquipment/RackPDUs/1"),
        "{pdu}"
    );
    assert_eq!(
        (pdu["power_w"].as_f64(), pdu["energy_kwh"].as_f64()),
        (Some(6438.0), Some(56438.0))
    );
    assert_eq!(pdu["outlets"][0]["power_w"].as_f64(), Some(197.4));
    assert_eq!(
        pdu["outlets"][0]["energy_kwh"],
        Value::Null,
        "absent, not 0"
    );
    assert_eq!(
        pdu["sensors"]["power_w"]["accuracy_pct"].as_f64(),
        Some(1.5)
    );
    assert_eq!(
        pdu["sensors"]["power_w"]["sensing_interval_s"].as_f64(),
        Some(0.5)
    );
    let c = &v["cdus"][0]["connectors"][0];
    assert_eq!(c["side"], "primary");
    assert_eq!(
        (
            c["supply_temp_c"].as_f64(),
            c["return_temp_c"].as_f64(),
            c["flow_lpm"].as_f64()
        ),
        (Some(30.0), Some(40.0), Some(60.0))
    );
    assert_eq!(c["heat_removed_kw"].as_f64(), Some(40.5));
    assert!(
        (c["computed_heat_kw"].as_f64().unwrap() - 40.0).abs() < 1e-9,
        "{c}"
    );
    assert_eq!(c["coolant_used"]["source"], "cdu");
    assert_eq!(c["return_pressure_kpa"], Value::Null);
    let ch = &v["chassis"][0];
    assert_eq!(
        (ch["power_w"].as_f64(), ch["psu_input_w"].as_f64()),
        (Some(374.0), Some(380.0))
    );
    assert_eq!(ch["power_supplies"][1]["absent"], true);
}

#[tokio::test]
async fn unreachable_service_is_an_error_naming_it() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let e = walk(&url, ClientOptions::default(), WalkOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, FacilityError::Connect { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port}/redfish/v1/"))
            && text.contains("check the address"),
        "{text}"
    );
}

#[tokio::test]
async fn unauthorized_stops_the_walk_and_says_what_to_check() {
    let mut r = facility();
    set(
        &mut r,
        "/redfish/v1/PowerEquipment",
        Reply::Status {
            status: 401,
            headers: vec![],
            body: String::new(),
        },
    );
    let server = serve(r).await;
    let e = walk(
        &server.url(),
        ClientOptions::default(),
        WalkOptions::default(),
    )
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, FacilityError::Unauthorized { status: 401, .. }),
        "{e:?}"
    );
    assert!(
        text.contains("/redfish/v1/PowerEquipment") && text.contains("--password-file"),
        "{text}"
    );
    assert_eq!(
        server.count("GET", "/redfish/v1/ThermalEquipment/CDUs/1"),
        0,
        "the walk went on after a 401"
    );
}

#[tokio::test]
async fn a_redirect_loop_is_an_error_naming_the_uri() {
    let mut r = facility();
    set(&mut r, "/redfish/v1/", redirect("/redfish/v1/a"));
    set(&mut r, "/redfish/v1/a", redirect("/redfish/v1/"));
    let server = serve(r).await;
    let e = walk(
        &server.url(),
        ClientOptions::default(),
        WalkOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, FacilityError::RedirectLoop { .. }), "{e:?}");
    assert!(
        e.to_string().contains("/redfish/v1/a") && e.to_string().contains("loop"),
        "{e}"
    );
    // A chain longer than the bound without a loop.
    let mut r = facility();
    for i in 0..8 {
        set(
            &mut r,
            &format!("/redfish/v1/r{i}"),
            redirect(&format!("/redfish/v1/r{}", i + 1)),
        );
    }
    set(&mut r, "/redfish/v1/", redirect("/redfish/v1/r0"));
    let server = serve(r).await;
    let e = walk(
        &server.url(),
        ClientOptions::default(),
        WalkOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, FacilityError::TooManyRedirects { limit: 5, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn malformed_json_is_a_finding_and_the_rest_is_read() {
    let mut r = facility();
    set(
        &mut r,
        "/redfish/v1/PowerEquipment/RackPDUs/1/Metrics",
        Reply::Status {
            status: 200,
            headers: vec![],
            body: "{\"PowerWatts\": {\"Reading\": 64".into(),
        },
    );
    set(
        &mut r,
        "/redfish/v1/Chassis/1U/EnvironmentMetrics",
        Reply::Json(json!({"PowerWatts": 374})),
    );
    let (inv, v) = inventory(r).await;
    assert_eq!(v["pdus"][0]["power_w"], Value::Null);
    assert_eq!(v["chassis"][0]["power_w"], Value::Null);
    let k = kinds(&inv);
    assert!(k.contains(&FindingKind::Unreadable), "{:#?}", inv.findings);
    let bad = inv
        .findings
        .iter()
        .find(|f| f.uri.ends_with("/Metrics"))
        .unwrap();
    assert!(
        bad.message.contains("did not answer valid JSON"),
        "{}",
        bad.message
    );
    let env = inv
        .findings
        .iter()
        .find(|f| f.uri.ends_with("/EnvironmentMetrics"))
        .unwrap();
    assert!(
        env.message.contains("not a valid EnvironmentMetrics"),
        "{}",
        env.message
    );
    assert_eq!(
        v["cdus"][0]["connectors"][0]["flow_lpm"].as_f64(),
        Some(60.0),
        "the rest was read"
    );
    // The root itself malformed: nothing to walk, an error.
    let mut r = facility();
    set(
        &mut r,
        "/redfish/v1/",
        Reply::Status {
            status: 200,
            headers: vec![],
            body: "<html>".into(),
        },
    );
    let server = serve(r).await;
    let e = walk(
        &server.url(),
        ClientOptions::default(),
        WalkOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, FacilityError::Json { .. }) && e.to_string().contains("/redfish/v1/"),
        "{e}"
    );
}

#[tokio::test]
async fn huge_json_is_refused() {
    let mut r = facility();
    set(
        &mut r,
        "/redfish/v1/ThermalEquipment/CDUs",
        Reply::Huge(5 << 20),
    );
    let (inv, v) = inventory(r).await;
    assert_eq!(v["cdus"], json!([]));
    let f = inv
        .findings
        .iter()
        .find(|f| f.uri.ends_with("/ThermalEquipment/CDUs"))
        .unwrap();
    assert!(
        f.message.contains("larger than 4194304 bytes"),
        "{}",
        f.message
    );
    // Chunked, no Content-Length: refused as it streams in.
    let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..80 {
        chunked.extend_from_slice(format!("{:x}\r\n{}\r\n", 65536, " ".repeat(65536)).as_bytes());
    }
    let (addr, task) = common::raw_server(chunked, Duration::from_secs(5)).await;
    let mut client =
        RedfishClient::new(&format!("http://{addr}"), ClientOptions::default()).unwrap();
    let root = client.root().clone();
    let e = client.get_json(&root).await.unwrap_err();
    assert!(
        matches!(e, FacilityError::BodyTooLarge { limit: 4194304, .. }),
        "{e:?}"
    );
    task.abort();
}

#[tokio::test]
async fn a_slow_service_times_out() {
    let mut r = facility();
    set(&mut r, "/redfish/v1/", Reply::Hang);
    let server = serve(r).await;
    let opts = ClientOptions {
        read_timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    };
    let e = walk(&server.url(), opts, WalkOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, FacilityError::Timeout { after_ms: 300, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_missing_property_is_absent_with_a_finding() {
    let mut r = facility();
    set(
        &mut r,
        "/redfish/v1/PowerEquipment/RackPDUs/1/Metrics",
        Reply::Json(json!({"EnergykWh": {"Reading": 56438}})),
    );
    let (inv, v) = inventory(r).await;
    assert_eq!(v["pdus"][0]["power_w"], Value::Null);
    assert_eq!(v["pdus"][0]["energy_kwh"].as_f64(), Some(56438.0));
    let f = &inv.findings[0];
    assert_eq!(
        (f.kind, inv.findings.len()),
        (FindingKind::MissingReading, 1),
        "{:#?}",
        inv.findings
    );
    assert!(
        f.message.contains("Metrics.PowerWatts") && f.uri.ends_with("/RackPDUs/1/Metrics"),
        "{f:?}"
    );
}

#[tokio::test]
async fn out_of_range_readings_are_absent_with_findings() {
    let mut r = facility();
    set(
        &mut r,
        "/redfish/v1/PowerEquipment/RackPDUs/1/Metrics",
        Reply::Json(
            json!({"PowerWatts": {"Reading": 10_000_000}, "EnergykWh": {"Reading": "N/A"}}),
        ),
    );
    set(
        &mut r,
        "/redfish/v1/ThermalEquipment/CDUs/1/Primary/1",
        Reply::Json(
            json!({"FlowLitersPerMinute": {"Reading": -5}, "SupplyTemperatureCelsius": {"Reading": 30}, "ReturnTemperatureCelsius": {"Reading": 40}, "HeatRemovedkW": {"Reading": 40}}),
        ),
    );
    let (inv, v) = inventory(r).await;
    assert_eq!(v["pdus"][0]["power_w"], Value::Null);
    assert_eq!(v["pdus"][0]["energy_kwh"], Value::Null);
    let c = &v["cdus"][0]["connectors"][0];
    assert_eq!(
        (c["flow_lpm"].clone(), c["computed_heat_kw"].clone()),
        (Value::Null, Value::Null)
    );
    let out: Vec<_> = inv
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::OutOfRange)
        .collect();
    assert_eq!(out.len(), 2, "{:#?}", inv.findings);
    assert_eq!(out[0].values["reading"], 10_000_000.0);
    assert!(
        out[0].message.contains("PowerWatts") && out[0].message.contains("500000"),
        "{}",
        out[0].message
    );
    assert_eq!(out[1].values["reading"], -5.0);
    assert!(kinds(&inv).contains(&FindingKind::MalformedReading));
}

#[tokio::test]
async fn a_reading_time_far_from_now_makes_the_reading_absent() {
    let mut r = facility();
    set(
        &mut r,
        "/redfish/v1/Chassis/X/Sensors/PDUPower",
        sensor(json!(6438), "2019-08-13T04:14:33+06:00"),
    );
    set(
        &mut r,
        "/redfish/v1/Chassis/X/Sensors/Flow",
        sensor(json!(60), &now_text(3600)),
    );
    let (inv, v) = inventory(r.clone()).await;
    assert_eq!(v["pdus"][0]["power_w"], Value::Null);
    assert_eq!(v["cdus"][0]["connectors"][0]["flow_lpm"], Value::Null);
    let stale: Vec<_> = inv
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::StaleReading)
        .collect();
    assert_eq!(stale.len(), 2, "{:#?}", inv.findings);
    assert_eq!(
        stale[0].reading_time.as_deref(),
        Some("2019-08-13T04:14:33+06:00")
    );
    assert!(
        stale[0].values["age_s"] > 1e8 && stale[0].uri.ends_with("/Sensors/PDUPower"),
        "{:?}",
        stale[0]
    );
    assert!(
        stale[1].values["age_s"] < -3000.0 && stale[1].message.contains("in the future"),
        "{:?}",
        stale[1]
    );
    // Without the age check the readings stand.
    let server = serve(r).await;
    let inv = walk(
        &server.url(),
        ClientOptions::default(),
        WalkOptions {
            max_reading_age_s: None,
            ..WalkOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(inv.pdus[0].power_w, Some(6438.0));
}

#[tokio::test]
async fn physical_inconsistencies_are_findings() {
    let mut r = facility();
    // Heat: 40 kW computed, 25 kW reported. Return colder than supply on the secondary loop.
    set(
        &mut r,
        "/redfish/v1/ThermalEquipment/CDUs/1/Primary/1",
        Reply::Json(
            json!({"FlowLitersPerMinute": {"Reading": 60}, "SupplyTemperatureCelsius": {"Reading": 30}, "ReturnTemperatureCelsius": {"Reading": 40}, "DeltaTemperatureCelsius": {"Reading": 14}, "HeatRemovedkW": {"Reading": 25}}),
        ),
    );
    set(
        &mut r,
        "/redfish/v1/Chassis/1U/PSU/1/Metrics",
        Reply::Json(json!({"InputPowerWatts": {"Reading": 937.4}})),
    );
    let (inv, _) = inventory(r).await;
    let k = kinds(&inv);
    for want in [
        FindingKind::HeatMismatch,
        FindingKind::DeltaTMismatch,
        FindingKind::PsuInputMismatch,
    ] {
        assert!(k.contains(&want), "{want:?} in {:#?}", inv.findings);
    }
    let h = inv
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::HeatMismatch)
        .unwrap();
    assert_eq!(
        (h.values["heat_removed_kw"], h.values["tolerance_relative"]),
        (25.0, 0.1)
    );
    assert!((h.values["computed_heat_kw"] - 40.0).abs() < 1e-9);

    let mut r = facility();
    set(
        &mut r,
        "/redfish/v1/ThermalEquipment/CDUs/1/Primary/1",
        Reply::Json(
            json!({"FlowLitersPerMinute": {"Reading": 60}, "SupplyTemperatureCelsius": {"Reading": 40}, "ReturnTemperatureCelsius": {"Reading": 30}, "HeatRemovedkW": {"Reading": 0}}),
        ),
    );
    let (inv, _) = inventory(r).await;
    let f = inv
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::ReturnColderThanSupply)
        .expect("return colder than supply");
    assert_eq!(
        (f.values["supply_temp_c"], f.values["return_temp_c"]),
        (40.0, 30.0)
    );
}

#[tokio::test]
async fn the_walk_is_bounded_in_resources() {
    let server = serve(facility()).await;
    let inv = walk(
        &server.url(),
        ClientOptions::default(),
        WalkOptions {
            max_resources: 4,
            ..WalkOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(inv.resources_read, 4);
    let f = inv
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::WalkBounded)
        .unwrap();
    assert!(
        f.message.contains("--max-resources") && f.values["resources_not_read"] > 0.0,
        "{f:?}"
    );
    assert_eq!(server.seen.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn the_walk_is_bounded_in_time() {
    let mut r = facility();
    set(&mut r, "/redfish/v1/Chassis/1U/PSU/2", Reply::Hang);
    let server = serve(r).await;
    let mut client = RedfishClient::new(&server.url(), ClientOptions::default()).unwrap();
    let started = std::time::Instant::now();
    let inv = hallmark_facility::discover(
        &mut client,
        WalkOptions::default(),
        Duration::from_millis(700),
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let f = inv
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::WalkBounded)
        .expect("walk_bounded");
    assert!(f.message.contains("time bound"), "{}", f.message);
    assert_eq!(inv.pdus.len(), 1, "what was read before the bound is kept");
}

#[tokio::test]
async fn links_to_another_host_are_not_followed() {
    let mut r = facility();
    set(
        &mut r,
        "/redfish/v1/PowerEquipment",
        Reply::Json(
            json!({"RackPDUs": {"@odata.id": "http://127.0.0.1:9/redfish/v1/PowerEquipment/RackPDUs"}}),
        ),
    );
    set(
        &mut r,
        "/redfish/v1/Chassis/1U/EnvironmentMetrics",
        Reply::Json(
            json!({"PowerWatts": {"Reading": 374, "DataSourceUri": "http://127.0.0.1:9/redfish/v1/Sensors/P"}}),
        ),
    );
    let (inv, _) = inventory(r).await;
    assert!(inv.pdus.is_empty());
    let off: Vec<_> = inv
        .findings
        .iter()
        .filter(|f| f.message.contains("outside the service"))
        .collect();
    assert_eq!(off.len(), 2, "{:#?}", inv.findings);
    assert_eq!(
        (off[0].kind, off[1].kind),
        (FindingKind::Unreadable, FindingKind::SensorUnreadable)
    );
    assert_eq!(
        inv.chassis[0].power_w,
        Some(374.0),
        "the reading stands without its Sensor"
    );
}

#[tokio::test]
async fn a_forbidden_resource_is_a_finding_and_the_walk_goes_on() {
    let mut r = facility();
    set(
        &mut r,
        "/redfish/v1/Chassis/X/Sensors/Flow",
        Reply::Status {
            status: 403,
            headers: vec![],
            body: String::new(),
        },
    );
    let (inv, _) = inventory(r).await;
    let f = inv
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::SensorUnreadable)
        .expect("403 on the Sensor");
    assert!(
        f.message.contains("HTTP 403") && f.message.contains("FlowLitersPerMinute"),
        "{}",
        f.message
    );
    assert_eq!(inv.cdus[0].connectors[0].flow_lpm, Some(60.0));
    assert_eq!(inv.pdus[0].power_w, Some(6438.0));
}
